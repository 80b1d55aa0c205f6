// autopath (AP-1..4, KP-39): the server walks a pod's search path. Queries go
// over real UDP from a client socket bound to the pod's own address (any
// 127/8 address works on Linux loopback), to a server started through the
// embedding API with an in-memory cluster, and a real upstream for names
// outside the cluster.

import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseSearchDomains } from '../plugins/autopath/resolv-conf.ts';
import { createCluster, startServer, type ClusterDnsServer } from '../src/index.ts';
import { registry } from '../src/metrics.ts';
import { buildQuery, decodeReply, queryUdp, type DecodedReply } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { TestUpstream } from './support/upstreams.ts';

/** dns-packet's records, with the fields its union type hides behind OPT. */
type Rec = { name: string; type: string; ttl: number; data: any };
const records = (list: unknown[] | undefined): Rec[] => (list ?? []) as Rec[];

const POD_IP = '127.0.0.2';
/** A client no pod has. */
const OTHER_IP = '127.0.0.9';

const CLUSTER = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec: { clusterIP: 10.96.100.10, ports: [{ name: http, port: 80, protocol: TCP }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: other }
spec: { clusterIP: 10.96.200.10, ports: [{ name: http, port: 80, protocol: TCP }] }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: demo }
status: { phase: Running, podIP: ${POD_IP} }
---
apiVersion: v1
kind: Pod
metadata: { name: starting, namespace: other }
status: { phase: Pending, podIP: 127.0.0.3 }
`;

let upstream: TestUpstream;
beforeAll(async () => {
  upstream = await TestUpstream.start({
    records: { 'www.example.com A': [{ type: 'A', name: 'www.example.com', ttl: 300, data: '93.184.216.34' }] },
  });
});
afterAll(async () => {
  await upstream.stop();
});

const running: ClusterDnsServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

function corefile(pods = 'verified', autopath = 'autopath @kubernetes'): string {
  return `.:0 {
    ${autopath}
    kubernetes cluster.local {
        memory
        pods ${pods}
    }
    forward . ${upstream.hostPort}
}
`;
}

async function serve(text = corefile()): Promise<number> {
  const server = await startServer({ corefile: text, dnsPort: 0, clusters: { default: createCluster(CLUSTER) } });
  running.push(server);
  return server.listeners.find((listener) => listener.transport === 'udp')!.port;
}

/** One UDP query from a socket bound to `source`, as the pod at that address sends it. */
function queryFrom(source: string, port: number, name: string, type = 'A'): Promise<DecodedReply> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no reply for ${name} from ${source}`));
    }, 3000);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(decodeReply(reply));
    });
    socket.on('error', reject);
    socket.bind(0, source, () => socket.send(buildQuery(name, { type }), port, '127.0.0.1'));
  });
}

/**
 * A pod's stub resolver (glibc, options ndots:5): a name with fewer than 5
 * dots is tried under each search domain, then as it is, until a reply that
 * is not NXDOMAIN. Returns every query it sent and the reply it kept.
 */
async function resolveLikeAPod(source: string, port: number, name: string): Promise<{ sent: string[]; reply: DecodedReply }> {
  const search = ['demo.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];
  const dots = name.split('.').length - 1;
  const candidates = dots < 5 ? [...search.map((domain) => `${name}.${domain}`), name] : [name];
  const sent: string[] = [];
  let reply: DecodedReply | null = null;
  for (const candidate of candidates) {
    sent.push(candidate);
    reply = await queryFrom(source, port, `${candidate}.`);
    if (reply.rcode !== 'NXDOMAIN') break;
  }
  return { sent, reply: reply! };
}

async function successes(): Promise<number> {
  const metric = await registry.getSingleMetric('coredns_autopath_success_total')!.get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

describe('autopath @kubernetes, end to end', () => {
  it("AP-2, AP-3, KP-39: a pod's 4-query ndots walk for web.demo.svc.cluster.local becomes one query answered with the CNAME", async () => {
    const port = await serve();

    // A client that is no pod: the resolver walks the whole search path itself.
    const plain = await resolveLikeAPod(OTHER_IP, port, 'web.demo.svc.cluster.local');
    expect(plain.sent).toEqual([
      'web.demo.svc.cluster.local.demo.svc.cluster.local',
      'web.demo.svc.cluster.local.svc.cluster.local',
      'web.demo.svc.cluster.local.cluster.local',
      'web.demo.svc.cluster.local',
    ]);

    // The pod in namespace demo: its first query is answered, with the CNAME the resolver follows.
    const before = await successes();
    const pod = await resolveLikeAPod(POD_IP, port, 'web.demo.svc.cluster.local');
    expect(pod.sent).toEqual(['web.demo.svc.cluster.local.demo.svc.cluster.local']);
    expect(pod.reply.rcode).toBe('NOERROR');
    expect(pod.reply.flags! & 0x0400).toBeTruthy(); // AA, from the kubernetes plugin's answer
    expect(pod.reply.questions).toEqual([{ name: 'web.demo.svc.cluster.local.demo.svc.cluster.local', type: 'A', class: 'IN' }]);
    expect(pod.reply.answers).toEqual([
      { name: 'web.demo.svc.cluster.local.demo.svc.cluster.local', type: 'CNAME', class: 'IN', ttl: 5, flush: false, data: 'web.demo.svc.cluster.local' },
      { name: 'web.demo.svc.cluster.local', type: 'A', class: 'IN', ttl: 5, flush: false, data: '10.96.100.10' },
    ]);
    expect(await successes()).toBe(before + 1);
  });

  it('AP-3: a name in another namespace is found under svc.<zone>; a hit on the first element needs no CNAME', async () => {
    const port = await serve();
    const other = await queryFrom(POD_IP, port, 'web.other.demo.svc.cluster.local.');
    expect(records(other.answers).map(({ name, type, data }) => [name, type, data])).toEqual([
      ['web.other.demo.svc.cluster.local', 'CNAME', 'web.other.svc.cluster.local'],
      ['web.other.svc.cluster.local', 'A', '10.96.200.10'],
    ]);
    const first = await queryFrom(POD_IP, port, 'web.demo.svc.cluster.local.');
    expect(records(first.answers).map(({ name, type, data }) => [name, type, data])).toEqual([['web.demo.svc.cluster.local', 'A', '10.96.100.10']]);
  });

  it("AP-3: a name outside the cluster is the walk's last step, the bare name, answered by forward with its own TTL and flags", async () => {
    const port = await serve();
    const reply = await queryFrom(POD_IP, port, 'www.example.com.demo.svc.cluster.local.');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flags! & 0x0400).toBe(0); // no AA: forward's reply
    expect(records(reply.answers).map(({ name, type, ttl, data }) => [name, type, ttl, data])).toEqual([
      ['www.example.com.demo.svc.cluster.local', 'CNAME', 300, 'www.example.com'],
      ['www.example.com', 'A', 300, '93.184.216.34'],
    ]);
  });

  it('AP-2.6: when every name is NXDOMAIN the first reply goes back unchanged and nothing is counted', async () => {
    const port = await serve();
    const before = await successes();
    const reply = await queryFrom(POD_IP, port, 'nope.demo.svc.cluster.local.');
    expect(reply.rcode).toBe('NXDOMAIN');
    expect(reply.answers).toEqual([]);
    expect(reply.authorities?.[0]).toMatchObject({ name: 'cluster.local', type: 'SOA' });
    expect(await successes()).toBe(before);
  });

  it('AP-2.5, AP-3: a NODATA win is returned as it is (no CNAME) and counted', async () => {
    const port = await serve();
    const before = await successes();
    const reply = await queryFrom(POD_IP, port, 'web.demo.svc.cluster.local.demo.svc.cluster.local.', 'AAAA');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.answers).toEqual([]);
    expect(reply.authorities?.[0]).toMatchObject({ name: 'cluster.local', type: 'SOA' });
    expect(await successes()).toBe(before + 1);
  });

  it('AP-3: the CNAME target keeps the letter case the client used for the searched part', async () => {
    const port = await serve();
    const reply = await queryFrom(POD_IP, port, 'WeB.OtHer.demo.svc.cluster.local.');
    expect(records(reply.answers).map(({ name, type, data }) => [name, type, data])).toEqual([
      ['WeB.OtHer.demo.svc.cluster.local', 'CNAME', 'WeB.OtHer.svc.cluster.local'],
      ['WeB.OtHer.svc.cluster.local', 'A', '10.96.200.10'],
    ]);
  });

  it('AP-2.2: names not under the first search element pass; the first element itself is SERVFAIL, as in CoreDNS', async () => {
    const port = await serve();
    const passed = await queryFrom(POD_IP, port, 'web.demo.svc.cluster.local.svc.cluster.local.');
    expect(passed.rcode).toBe('NXDOMAIN');
    expect(passed.answers).toEqual([]);
    const apex = await queryFrom(POD_IP, port, 'demo.svc.cluster.local.');
    expect(apex.rcode).toBe('SERVFAIL');
  });

  it('KP-39: the pod is found by IP whatever its phase (CoreDNS 1.11 takes the first pod with the address)', async () => {
    const port = await serve();
    const reply = await queryFrom('127.0.0.3', port, 'web.demo.svc.cluster.local.other.svc.cluster.local.');
    expect(records(reply.answers).map(({ type, data }) => [type, data])).toEqual([['CNAME', 'web.demo.svc.cluster.local'], ['A', '10.96.100.10']]);
  });

  it('AP-2.1, KP-39: without `pods verified` the kubernetes plugin gives no search path, and queries pass', async () => {
    const port = await serve(corefile('insecure'));
    const reply = await queryFrom(POD_IP, port, 'web.demo.svc.cluster.local.demo.svc.cluster.local.');
    expect(reply.rcode).toBe('NXDOMAIN');
  });
});

describe('autopath RESOLV-CONF', () => {
  it('AP-1: the search line of a file applies to every client; the last search or domain line wins', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-autopath-'));
    const file = path.join(dir, 'resolv.conf');
    fs.writeFileSync(file, 'domain example.org\nsearch Demo.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n');
    const port = await serve(corefile('disabled', `autopath ${file}`));
    const reply = await queryUdp(port, 'web.other.demo.svc.cluster.local.');
    expect(records(reply.answers).map(({ name, type, data }) => [name, type, data])).toEqual([
      ['web.other.demo.svc.cluster.local', 'CNAME', 'web.other.svc.cluster.local'],
      ['web.other.svc.cluster.local', 'A', '10.96.200.10'],
    ]);
  });

  it('AP-1: search domains are read as Go reads resolv.conf: lowercased, fully qualified, the last line wins', () => {
    expect(parseSearchDomains('search a.example B.example.\n# search c.example\n')).toEqual(['a.example.', 'b.example.']);
    expect(parseSearchDomains('search a.example\ndomain d.example\n')).toEqual(['d.example.']);
    expect(parseSearchDomains('nameserver 10.0.0.1\n')).toEqual([]);
  });

  it('AP-1: autopath outside its zones does nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-autopath-'));
    const file = path.join(dir, 'resolv.conf');
    fs.writeFileSync(file, 'search demo.svc.cluster.local svc.cluster.local\n');
    const port = await serve(corefile('disabled', `autopath example.org ${file}`));
    expect((await queryUdp(port, 'web.other.demo.svc.cluster.local.')).rcode).toBe('NXDOMAIN');
  });
});

describe('autopath setup', () => {
  it('AP-1: a missing RESOLV-CONF, a block, or an unreadable file are setup errors with file:line', () => {
    expectSetupError('.:53 {\n    autopath\n    whoami\n}\n', 2, /^plugin\/autopath: no resolv-conf specified$/);
    expectSetupError('.:53 {\n    autopath @kubernetes {\n    }\n    whoami\n}\n', 2, /^plugin\/autopath: no resolv-conf specified$/);
    expectSetupError('.:53 {\n    whoami\n    autopath /nonexistent/resolv.conf\n}\n', 3, /^plugin\/autopath: failed to parse "\/nonexistent\/resolv.conf": ENOENT/);
  });

  it('AP-1: @PLUGIN must be a plugin that knows search paths; one absent from the block leaves autopath idle, as in CoreDNS', async () => {
    await expect(startServer({ corefile: '.:0 {\n    autopath @hosts\n    hosts\n}\n', dnsPort: 0 })).rejects.toThrow(
      'Corefile:2 - Error during parsing: plugin/autopath: hosts does not implement the AutoPather interface',
    );
    const server = await startServer({ corefile: '.:0 {\n    autopath @kubernetes\n    whoami\n}\n', dnsPort: 0 });
    running.push(server);
    const reply = await server.resolve('web.demo.svc.cluster.local', 'A');
    expect(reply.rcode).toBe('NOERROR');
  });
});
