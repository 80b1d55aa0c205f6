// End-to-end harness for the kubernetes plugin: the test API server
// (test/support/apiserver.ts) feeding clusterdns started in-process from a
// Corefile (test/support/dns.ts), queried over real UDP and TCP, with log
// lines captured and /ready and /metrics fetched over HTTP.
//
// Everything a test starts is stopped after it (cleanup()).

import type { DecodedReply } from '../support/dns.ts';
import { queryTcp, queryUdp, startServer, type RunningServer } from '../support/dns.ts';
import { TestApiServer, type ApiServerOptions, type KubeObject } from '../support/apiserver.ts';
import { setLogSink } from '../../src/log.ts';

export { freePort } from '../support/process.ts';

const cleanups: (() => Promise<void> | void)[] = [];

/** Stops everything started since the last call, newest first (call it in afterEach). */
export async function cleanup(): Promise<void> {
  for (const step of cleanups.splice(0).reverse()) await step();
}

/** The log lines of the servers started in this test (plugin/kubernetes: ... and the rest). */
export const logLines: string[] = [];

let restoreSink: ((line: string) => void) | null = null;

function captureLogs(): void {
  if (restoreSink) return;
  logLines.length = 0;
  restoreSink = setLogSink((line) => logLines.push(line));
  cleanups.unshift(() => {
    // First in, last out: restored after the servers stopped (their last lines are kept).
    if (restoreSink) setLogSink(restoreSink);
    restoreSink = null;
  });
}

export async function startApi(options: ApiServerOptions = {}): Promise<TestApiServer> {
  const api = await TestApiServer.start(options);
  cleanups.push(() => api.stop());
  return api;
}

export async function startDns(corefile: string): Promise<RunningServer> {
  captureLogs();
  const server = await startServer(corefile);
  cleanups.push(() => server.stop());
  return server;
}

/** Starts clusterdns without waiting for its start hooks (the kubernetes startup wait). */
export function startDnsInBackground(corefile: string): Promise<RunningServer> {
  captureLogs();
  const started = startServer(corefile);
  cleanups.push(async () => {
    const server = await started.catch(() => null);
    await server?.stop();
  });
  return started;
}

// ---------------------------------------------------------------------------
// Corefiles

export interface CorefileOptions {
  /** Extra lines inside the kubernetes { } block. */
  kubernetes?: string[];
  readyPort?: number;
  metricsPort?: number;
}

function extra(options: CorefileOptions): { plugin: string[]; ready: string[]; prometheus: string[] } {
  return {
    plugin: (options.kubernetes ?? []).map((line) => `  ${line}`),
    ready: options.readyPort ? [` ready 127.0.0.1:${options.readyPort}`] : [],
    prometheus: options.metricsPort ? [` prometheus 127.0.0.1:${options.metricsPort}`] : [],
  };
}

/** The plugin alone on its zones: no cache in front. */
export function plainCorefile(api: TestApiServer, options: CorefileOptions = {}): string {
  const { plugin, ready, prometheus } = extra(options);
  return [
    'cluster.local in-addr.arpa {',
    ...ready,
    ...prometheus,
    ' kubernetes cluster.local in-addr.arpa {',
    `  endpoint ${api.url}`,
    ...plugin,
    ' }',
    '}',
    '',
  ].join('\n');
}

/**
 * kubeadm's Corefile (STOCK-1) on a kernel-chosen port, pointed at the test
 * API server: `cache 30` in front of the plugin. forward and loop are left
 * out (no upstream here), and with them `fallthrough in-addr.arpa ip6.arpa`
 * (nothing after the plugin would answer the PTRs it passes on); health and
 * reload too.
 */
export function kubeadmCorefile(api: TestApiServer, options: CorefileOptions = {}): string {
  const { plugin, ready, prometheus } = extra(options);
  return [
    '. {',
    ' errors',
    ...ready,
    ' kubernetes cluster.local in-addr.arpa ip6.arpa {',
    `  endpoint ${api.url}`,
    '  pods insecure',
    '  ttl 30',
    ...plugin,
    ' }',
    ...prometheus,
    ' cache 30',
    ' loadbalance',
    '}',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// Queries

export type Transport = 'udp' | 'tcp';

export function ask(port: number, name: string, type = 'A', transport: Transport = 'udp'): Promise<DecodedReply> {
  const options = { type, timeoutMs: 2000 };
  return transport === 'udp' ? queryUdp(port, name, options) : queryTcp(port, name, options);
}

/** The answer records' data of one type, sorted: addresses, PTR targets, or `priority weight port target` for SRV. */
export function data(reply: DecodedReply, type = reply.questions?.[0]?.type ?? 'A'): string[] {
  return (reply.answers ?? [])
    .filter((record) => record.type === type)
    .map((record) => {
      const value = (record as { data: unknown }).data;
      if (type === 'SRV') {
        const srv = value as { priority: number; weight: number; port: number; target: string };
        return `${srv.priority} ${srv.weight} ${srv.port} ${srv.target}`;
      }
      return String(value);
    })
    .sort();
}

/** rcode and sorted answer data in one line, for messages and comparisons. */
export function show(reply: DecodedReply): string {
  return `${reply.rcode} [${data(reply).join(', ')}]`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Asks until `expected` holds for the reply, within `withinMs` of now; returns
 * the reply and how long it took. Fails with the last reply seen.
 */
export async function answersWithin(
  port: number,
  name: string,
  type: string,
  expected: (reply: DecodedReply) => boolean,
  withinMs: number,
  transport: Transport = 'udp',
): Promise<{ reply: DecodedReply; elapsedMs: number }> {
  const started = Date.now();
  let last: DecodedReply | null = null;
  for (;;) {
    last = await ask(port, name, type, transport);
    const elapsedMs = Date.now() - started;
    if (expected(last)) return { reply: last, elapsedMs };
    if (elapsedMs > withinMs) {
      throw new Error(`${name} ${type} over ${transport}: still ${show(last)} after ${elapsedMs} ms (limit ${withinMs} ms)`);
    }
    await sleep(10);
  }
}

export const is = {
  /** NOERROR with exactly these answer data (sorted comparison). */
  answer:
    (...values: string[]) =>
    (reply: DecodedReply) =>
      reply.rcode === 'NOERROR' && JSON.stringify(data(reply)) === JSON.stringify([...values].sort()),
  rcode: (rcode: string) => (reply: DecodedReply) => reply.rcode === rcode,
};

/**
 * Queries `name` in a loop until stop() and records every reply: what a
 * client polling during a re-list or an outage would have seen.
 */
export function pollContinuously(port: number, name: string, type = 'A'): { stop(): Promise<DecodedReply[]>; replies: DecodedReply[] } {
  const replies: DecodedReply[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      replies.push(await ask(port, name, type));
      await sleep(5);
    }
  })();
  return {
    replies,
    async stop() {
      running = false;
      await loop;
      return replies;
    },
  };
}

// ---------------------------------------------------------------------------
// HTTP (ready, prometheus)

export async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

/** One sample of the Prometheus text format: the value of `name{labels}` (labels in any order), or null. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) found.set(pair[1]!, pair[2]!);
    if (found.size !== Object.keys(labels).length) continue;
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) return Number(match[3]);
  }
  return null;
}

// ---------------------------------------------------------------------------
// Kubernetes objects as the API server stores them

export function namespace(name: string): KubeObject {
  return { kind: 'Namespace', metadata: { name } };
}

export interface Port {
  name: string;
  port: number;
  protocol?: string;
}

export function clusterIPService(ns: string, name: string, clusterIP: string, ports: Port[] = [{ name: 'http', port: 80 }]): KubeObject {
  return {
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { type: 'ClusterIP', clusterIP, clusterIPs: [clusterIP], ports: ports.map((p) => ({ protocol: 'TCP', ...p })) },
  };
}

export function headlessService(ns: string, name: string, ports: Port[] = [{ name: 'pg', port: 5432 }]): KubeObject {
  return {
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { clusterIP: 'None', clusterIPs: ['None'], selector: { app: name }, ports: ports.map((p) => ({ protocol: 'TCP', ...p })) },
  };
}

export interface Endpoint {
  ip: string;
  hostname?: string;
  ready?: boolean;
  pod?: string;
}

/** An EndpointSlice as the controller writes it, with its last-change-trigger-time annotation when given. */
export function endpointSlice(
  ns: string,
  name: string,
  service: string,
  endpoints: Endpoint[],
  options: { ports?: Port[]; triggerTime?: Date } = {},
): KubeObject {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: {
      name,
      namespace: ns,
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      ...(options.triggerTime ? { annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': options.triggerTime.toISOString() } } : {}),
    },
    addressType: 'IPv4',
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.ready ?? true, terminating: false },
      ...(e.hostname ? { hostname: e.hostname } : {}),
      ...(e.pod ? { targetRef: { kind: 'Pod', namespace: ns, name: e.pod } } : {}),
    })),
    ports: (options.ports ?? [{ name: 'pg', port: 5432 }]).map((p) => ({ protocol: 'TCP', ...p })),
  };
}

/** PTR owner name of an IPv4 address. */
export function reverse(ip: string): string {
  return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
}
