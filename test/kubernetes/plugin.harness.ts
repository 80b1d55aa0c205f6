// Test harness for the kubernetes plugin: a Corefile snippet to a plugin
// instance with a hand-filled store, and queries through `serve` whose replies
// are also encoded and decoded with dns-packet, as a client would see them.

import dnsPacket, { type Packet } from 'dns-packet';
import { normalizeKey } from '../../src/corefile/address.ts';
import { parseCorefile } from '../../src/corefile/parser.ts';
import type { Directive } from '../../src/corefile/types.ts';
import { quietLog, type Logger } from '../../src/log.ts';
import type { BlockContext, Next, Request } from '../../src/plugin.ts';
import { isDirective } from '../../src/registry.ts';
import { Rcode } from '../../src/wire/constants.ts';
import { emptyReply, encodeReply, type Reply } from '../../src/wire/message.ts';
import { decodeQuery, isRejection, type Query } from '../../src/wire/query.ts';
import { KubernetesInstance, type InstanceOptions } from '../../plugins/kubernetes/instance.ts';
import { parseKubernetes } from '../../plugins/kubernetes/setup.ts';
import { ClusterIndex } from '../../plugins/kubernetes/store.ts';
import type { EndpointRecord, EndpointSliceRecord, ServicePort, ServiceRecord } from '../../plugins/kubernetes/model.ts';

export const COREFILE_PATH = '/etc/coredns/Corefile';

/** The first server block of `corefile`: its context and its kubernetes directives. */
export function blockOf(corefile: string, file = COREFILE_PATH): { context: BlockContext; directives: Directive[] } {
  const [source] = parseCorefile(corefile, file, { isDirective, env: {} });
  if (!source) throw new Error('no server block');
  const addresses = source.keys.flatMap((key) => normalizeKey(key, 53));
  const context: BlockContext = {
    zones: [...new Set(addresses.map((address) => address.zone))],
    addresses,
    bindAddresses: [],
    corefile: file,
    authorities: [],
    plugins: [],
    settings: { reload: null, lameduckMs: 0 },
    log: quietLog,
    memoryClusters: new Map(),
  };
  return { context, directives: source.directives.filter((directive) => directive.name.text === 'kubernetes') };
}

export function configOf(corefile: string, file = COREFILE_PATH) {
  const { context, directives } = blockOf(corefile, file);
  return parseKubernetes(directives, context);
}

export interface CapturedLog extends Logger {
  lines: string[];
}

export function captureLog(): CapturedLog {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => lines.push(`[INFO] ${message}`),
    warning: (message) => lines.push(`[WARNING] ${message}`),
    error: (message) => lines.push(`[ERROR] ${message}`),
    debug: (message) => lines.push(`[DEBUG] ${message}`),
    write: (level, line) => lines.push(`[${level}] ${line}`),
  };
}

export function pluginOf(corefile: string, options: InstanceOptions & { log?: Logger; bind?: string[] } = {}): KubernetesInstance {
  const { context, directives } = blockOf(corefile);
  if (options.bind) context.bindAddresses = options.bind;
  const config = parseKubernetes(directives, context);
  return new KubernetesInstance(config, context, options.log ?? captureLog(), {
    localIPs: () => ['10.244.0.5'],
    ...options,
  });
}

/** What the rest of the chain answers in these tests: a marker reply. */
export const NEXT_REPLY: Reply = Object.freeze(emptyReply(Rcode.REFUSED));

export interface Asked {
  reply: Reply;
  /** The reply as a client decodes it. */
  wire: Packet & { rcode: string; flag_aa: boolean; flag_ra: boolean; flag_tc: boolean };
  raw: Buffer;
  query: Query;
  /** How many times the next plugin was called. */
  nextCalls: number;
}

export interface AskOptions {
  /** The question name as sent (case preserved); defaults to `name`. */
  reenter?: Next;
  next?: Next;
}

export function buildRequest(name: string, type: string, reenter?: Next): Request {
  const packet = dnsPacket.encode({
    type: 'query',
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: 'IN' }],
  });
  const query = decodeQuery(packet);
  if (isRejection(query)) throw new Error(`bad query ${name}`);
  return {
    query,
    transport: 'udp',
    remoteAddress: '10.244.3.3',
    remotePort: 40000,
    family: 1,
    localAddress: '10.244.0.5',
    localPort: 53,
    zone: '.',
    server: 'dns://:53',
    reenter: reenter ?? (() => NEXT_REPLY),
    overloaded: false,
  };
}

function decodeWire(query: Query, reply: Reply): { raw: Buffer; wire: Asked['wire'] } {
  const raw = encodeReply(query, reply, 65535);
  return { raw, wire: dnsPacket.decode(raw) as unknown as Asked['wire'] };
}

/** Asks the plugin; `name` is sent as written (mixed case stays mixed). */
export async function ask(plugin: KubernetesInstance, name: string, type = 'A', options: AskOptions = {}): Promise<Asked> {
  const request = buildRequest(name, type, options.reenter);
  let nextCalls = 0;
  const next: Next = (forwarded) => {
    nextCalls++;
    return options.next ? options.next(forwarded) : NEXT_REPLY;
  };
  const reply = await plugin.serve!(request, next);
  return { reply, ...decodeWire(request.query, reply), query: request.query, nextCalls };
}

/** Synchronous ask, for answers that must not allocate a promise. */
export function askSync(plugin: KubernetesInstance, name: string, type = 'A'): Reply {
  const result = plugin.serve!(buildRequest(name, type), () => NEXT_REPLY);
  if (result instanceof Promise) throw new Error('expected a synchronous answer');
  return result;
}

/** Answer data as strings: "name TTL TYPE data". */
export function rrs(section: Packet['answers']): string[] {
  return (section ?? []).map((record) => {
    const r = record as { name: string; ttl?: number; type: string; data: unknown };
    let data: string;
    if (r.type === 'SRV') {
      const srv = r.data as { priority: number; weight: number; port: number; target: string };
      data = `${srv.priority} ${srv.weight} ${srv.port} ${srv.target}`;
    } else if (r.type === 'SOA') {
      const soa = r.data as { mname: string; rname: string; refresh: number; retry: number; expire: number; minimum: number };
      data = `${soa.mname} ${soa.rname} ${soa.refresh} ${soa.retry} ${soa.expire} ${soa.minimum}`;
    } else if (r.type === 'TXT') {
      data = (r.data as Buffer[]).map((part) => part.toString()).join(' ');
    } else {
      data = String(r.data);
    }
    return `${r.name} ${r.ttl} ${r.type} ${data}`;
  });
}

// ---- cluster fixtures ----

export function port(name: string, number: number, protocol = 'tcp'): ServicePort {
  return { name, protocol, port: number };
}

export function clusterIP(namespace: string, name: string, ips: string[], ports: ServicePort[] = [port('http', 80)]): ServiceRecord {
  return { namespace, name, clusterIPs: ips, headless: false, externalName: null, ports };
}

export function headless(namespace: string, name: string, ports: ServicePort[] = [port('http', 80)]): ServiceRecord {
  return { namespace, name, clusterIPs: [], headless: true, externalName: null, ports };
}

export function externalName(namespace: string, name: string, target: string): ServiceRecord {
  return { namespace, name, clusterIPs: [], headless: false, externalName: target, ports: [] };
}

export function endpoint(address: string, extra: Partial<EndpointRecord> = {}): EndpointRecord {
  return { addresses: [address], ready: true, hostname: null, podName: null, zone: null, ...extra };
}

export function slice(
  namespace: string,
  service: string,
  name: string,
  endpoints: EndpointRecord[],
  ports: ServicePort[] = [port('http', 80)],
  addressType: 'IPv4' | 'IPv6' = 'IPv4',
): EndpointSliceRecord {
  return { namespace, name, serviceName: service, addressType, endpoints, ports, lastChangeTriggerTime: null };
}

/**
 * A small cluster:
 *   default/kubernetes          ClusterIP 10.96.0.1 https/443
 *   kube-system/kube-dns        ClusterIP 10.96.0.10 dns/53 udp, dns-tcp/53 tcp; endpoint 10.244.0.5 (this server)
 *   testns/svc1                 ClusterIP 10.0.0.1 http/80; endpoint 172.0.0.2 (pod svc1-pod)
 *   testns/dual                 ClusterIP 10.0.0.2 + fd00::2 http/80
 *   testns/multi                ClusterIP 10.0.0.3 http/80, dns/53 udp, unnamed 8080
 *   testns/portless             ClusterIP 10.0.0.4, no ports
 *   testns/empty                ClusterIP 10.0.0.5, no endpoints
 *   testns/hdls1                headless http/80 + https/443; endpoints 172.0.0.2, 172.0.0.3 (hostname web-0), 172.0.0.4 not ready
 *   testns/hdls-none            headless, only a not-ready endpoint
 *   testns/hdls-v6              headless, endpoint fd00::5 and fd00:1:: (trailing ::)
 *   testns/hdls-portless        headless, endpoint 172.0.0.9, slice without ports
 *   testns/external             ExternalName ext.interwebs.test
 *   testns/ext-ip               ExternalName 1.2.3.4
 *   testns/ext-internal         ExternalName svc1.testns.svc.cluster.local
 *   testns/ext-loop             ExternalName ext-loop.testns.svc.cluster.local
 *   testns/ext-a → ext-b → ext-a  (a loop of two)
 *   other/svc2                  ClusterIP 10.0.1.1 (namespace "other")
 */
export function fixtureStore(): ClusterIndex {
  const store = new ClusterIndex();
  for (const ns of ['default', 'kube-system', 'testns', 'other']) store.upsertNamespace({ name: ns });
  store.upsertService(clusterIP('default', 'kubernetes', ['10.96.0.1'], [port('https', 443)]));
  store.upsertService(clusterIP('kube-system', 'kube-dns', ['10.96.0.10'], [port('dns', 53, 'udp'), port('dns-tcp', 53)]));
  store.upsertEndpointSlice(slice('kube-system', 'kube-dns', 'kube-dns-x1', [endpoint('10.244.0.5')], [port('dns', 53, 'udp'), port('dns-tcp', 53)]));
  store.upsertService(clusterIP('testns', 'svc1', ['10.0.0.1']));
  store.upsertEndpointSlice(slice('testns', 'svc1', 'svc1-a', [endpoint('172.0.0.2', { podName: 'svc1-pod' })]));
  store.upsertService(clusterIP('testns', 'dual', ['10.0.0.2', 'fd00::2']));
  store.upsertService(clusterIP('testns', 'multi', ['10.0.0.3'], [port('http', 80), port('dns', 53, 'udp'), port('', 8080)]));
  store.upsertService(clusterIP('testns', 'portless', ['10.0.0.4'], []));
  store.upsertService(clusterIP('testns', 'empty', ['10.0.0.5']));
  store.upsertService(headless('testns', 'hdls1', [port('http', 80), port('https', 443)]));
  store.upsertEndpointSlice(
    slice(
      'testns',
      'hdls1',
      'hdls1-a',
      [endpoint('172.0.0.2'), endpoint('172.0.0.3', { hostname: 'web-0' }), endpoint('172.0.0.4', { ready: false })],
      [port('http', 80), port('https', 443)],
    ),
  );
  store.upsertService(headless('testns', 'hdls-none'));
  store.upsertEndpointSlice(slice('testns', 'hdls-none', 'hdls-none-a', [endpoint('172.0.0.8', { ready: false })]));
  store.upsertService(headless('testns', 'hdls-v6'));
  store.upsertEndpointSlice(slice('testns', 'hdls-v6', 'hdls-v6-a', [endpoint('fd00::5'), endpoint('fd00:1::')], [port('http', 80)], 'IPv6'));
  store.upsertService(headless('testns', 'hdls-portless', []));
  store.upsertEndpointSlice(slice('testns', 'hdls-portless', 'hdls-portless-a', [endpoint('172.0.0.9')], []));
  store.upsertService(externalName('testns', 'external', 'ext.interwebs.test'));
  store.upsertService(externalName('testns', 'ext-ip', '1.2.3.4'));
  store.upsertService(externalName('testns', 'ext-internal', 'svc1.testns.svc.cluster.local'));
  store.upsertService(externalName('testns', 'ext-loop', 'ext-loop.testns.svc.cluster.local'));
  store.upsertService(externalName('testns', 'ext-a', 'ext-b.testns.svc.cluster.local'));
  store.upsertService(externalName('testns', 'ext-b', 'ext-a.testns.svc.cluster.local'));
  store.upsertService(clusterIP('other', 'svc2', ['10.0.1.1']));
  store.markSynced();
  return store;
}

export const STOCK = `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
}`;
