// Micro-benchmarks of the per-query work, each beside a baseline measured in
// the same run: copying a prepared reply is the least any server must do.
// The chains are real plans from Corefiles (no sockets), serving the
// synthetic cluster of the load benchmark from its manifests.
//
//   npm run bench:hotpath

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import b from 'benny';
import dnsPacket from 'dns-packet';
import { planFromCorefile, type ServerPlan } from '../src/config.ts';
import { startPlugins, stopPlugins } from '../src/lifecycle.ts';
import type { Request } from '../src/plugin.ts';
import { encodeReply, type Reply } from '../src/wire/message.ts';
import { decodeQuery, isRejection, type Query } from '../src/wire/query.ts';
import { DEFAULT_SHAPE, generateCluster, writeManifests } from './synthetic.ts';

const work = mkdtempSync(join(tmpdir(), 'clusterdns-hotpath-'));
const cluster = generateCluster(DEFAULT_SHAPE);
writeManifests(cluster, join(work, 'cluster'));
// A headless Service with several endpoints: loadbalance gives each answer its own order.
const headless = cluster.services.find((service) => service.headless && service.endpoints.length >= 3)!;

function packet(name: string, type: string): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: 1234,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as never],
  });
}

function decode(bytes: Buffer): Query {
  const query = decodeQuery(bytes);
  if (isRejection(query)) throw new Error('benchmark query rejected');
  return query;
}

function request(query: Query, plan: ServerPlan): Request {
  return {
    query,
    transport: 'udp',
    remoteAddress: '10.244.0.7',
    remotePort: 40000,
    family: 1,
    localAddress: '10.244.0.2',
    localPort: 53,
    zone: '.',
    server: 'dns://:53',
    reenter: plan.blocks[0]!.chain!,
    overloaded: false,
  };
}

const kubernetesOnly = `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests ${join(work, 'cluster')}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
}`;
// kubeadm's default (STOCK-1) without the HTTP endpoints, which do not act per query.
const kubeadm = `.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests ${join(work, 'cluster')}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . 127.0.0.1:9 {
        max_concurrent 1000
    }
    cache 30
    loadbalance
}`;

const plans = [planFromCorefile(kubernetesOnly, join(work, 'Corefile'), { dnsPort: 53 }), planFromCorefile(kubeadm, join(work, 'Corefile'), { dnsPort: 53 })];
for (const plan of plans) await startPlugins(plan);
const [k8sPlan, kubeadmPlan] = plans as [ServerPlan, ServerPlan];

const clusterIPPacket = packet('svc-1.ns-1.svc.cluster.local', 'A');
const nxdomainPacket = packet('api.github.com.ns-1.svc.cluster.local', 'A');
const headlessPacket = packet(`${headless.name}.${headless.namespace}.svc.cluster.local`, 'A');
const clusterIPQuery = decode(clusterIPPacket);
const k8sRequest = request(clusterIPQuery, k8sPlan);
const kubeadmRequest = request(clusterIPQuery, kubeadmPlan);
const nxRequest = request(decode(nxdomainPacket), kubeadmPlan);
const k8sChain = k8sPlan.blocks[0]!.chain!;
const kubeadmChain = kubeadmPlan.blocks[0]!.chain!;
const answer = k8sChain(k8sRequest) as Reply;
const prepared = encodeReply(clusterIPQuery, answer, 1232);
const corefileText = readFileSync(new URL('../Corefile.example', import.meta.url), 'utf8');

await b.suite(
  'hot path, per query (svc-1.ns-1.svc.cluster.local A unless noted)',
  b.add('baseline: copy a prepared reply and set the ID', () => {
    const out = Buffer.allocUnsafe(prepared.length);
    prepared.copy(out);
    out.writeUInt16BE(clusterIPQuery.id, 0);
  }),
  b.add('decodeQuery (header, question, OPT)', () => {
    decodeQuery(clusterIPPacket);
  }),
  b.add('kubernetes lookup (memoised answer)', () => {
    k8sChain(k8sRequest);
  }),
  b.add('kubeadm chain: errors, loadbalance, cache hit', () => {
    kubeadmChain(kubeadmRequest);
  }),
  b.add('kubeadm chain: search-path NXDOMAIN (cache hit)', () => {
    kubeadmChain(nxRequest);
  }),
  b.add('encodeReply of a precompiled answer', () => {
    encodeReply(clusterIPQuery, answer, 1232);
  }),
  b.add('whole query: decode, kubeadm chain, encode', () => {
    const query = decodeQuery(clusterIPPacket) as Query;
    encodeReply(query, kubeadmChain(request(query, kubeadmPlan)) as Reply, 1232);
  }),
  b.add(`whole query, headless Service (${headless.endpoints.length} A records, shuffled)`, () => {
    const query = decodeQuery(headlessPacket) as Query;
    encodeReply(query, kubeadmChain(request(query, kubeadmPlan)) as Reply, 1232);
  }),
  b.cycle(),
  b.complete(),
);

await b.suite(
  'setup (cold path)',
  b.add('parse and plan Corefile.example', () => {
    planFromCorefile(corefileText, join(work, 'Corefile'), { dnsPort: 1053 });
  }),
  b.cycle(),
  b.complete(),
);

for (const plan of plans) await stopPlugins(plan);
