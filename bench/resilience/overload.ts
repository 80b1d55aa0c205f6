// Unpaced overload: 200 UDP clients send as fast as this process can for 15 s
// (no waiting for answers), a query mix like pods send plus a share of unique
// external names (cache misses the server must forward), against the kubeadm
// Corefile. Prints RSS before, peak (VmHWM) and 10 s after, replies per
// second, how many were REFUSED (shed), and the time from the end of the load
// until a cluster name and a forwarded name are both answered normally.
//
//   npx node bench/resilience/overload.ts [--clients 200] [--seconds 15] [--unique 0.3]
//
// Server environment (CLUSTERDNS_MAX_IN_FLIGHT...) passes through.
// overloadScenario() is the same run for the suite (bench/resilience/suite.ts).

import dgram from 'node:dgram';
import { generateQueries } from '../synthetic.ts';
import { cpuSeconds, encodeQuery, isNormalAnswer, measurePeak, memory, metricValue, option, rcodeOf, report, settledRss, sleep, startScenarioServer, traceMemory, type ScenarioResult, type ScenarioServer } from './common.ts';

export interface OverloadOptions {
  clients: number;
  seconds: number;
  /** Share of unique external names (forwarded) in the load. */
  unique: number;
  /** Queries each client sends per turn of the event loop. */
  burst: number;
  /** Idle time before RSS is read and the peak measured (V8 settles ~8 s after startup). */
  settleMs: number;
  /** Time after the recovery before the peak and RSS after are read. */
  afterMs: number;
}

export const OVERLOAD_DEFAULTS: OverloadOptions = { clients: 200, seconds: 15, unique: 0.3, burst: 4, settleMs: 10_000, afterMs: 10_000 };

/** At most this many queries a second per client (the bound; this process sends ~100k/s in all). */
const MAX_CLIENT_QPS = 10_000;

const typeCodes: Record<string, number> = { A: 1, AAAA: 28, SRV: 33, PTR: 12 };

/** Milliseconds from `since` until the first normal answer to a cluster name and to a forwarded name (NaN: none within 5 s). */
async function measureRecovery(server: ScenarioServer, since: number): Promise<{ localMs: number; forwardedMs: number }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  let localMs = NaN;
  let forwardedMs = NaN;
  // IDs tell the kinds apart: even for the cluster name, odd for forwarded names.
  socket.on('message', (reply) => {
    if (!isNormalAnswer(reply)) return;
    const elapsed = performance.now() - since;
    if (reply.readUInt16BE(0) % 2 === 0) localMs = Number.isNaN(localMs) ? elapsed : localMs;
    else forwardedMs = Number.isNaN(forwardedMs) ? elapsed : forwardedMs;
  });
  for (let probe = 0; probe < 1000 && (Number.isNaN(localMs) || Number.isNaN(forwardedMs)); probe++) {
    socket.send(encodeQuery(server.clusterName, (probe * 2) & 0xffff), server.dnsPort, '127.0.0.1');
    socket.send(encodeQuery(`probe${probe}.recovery.example.com`, (probe * 2 + 1) & 0xffff), server.dnsPort, '127.0.0.1');
    await sleep(5);
  }
  socket.close();
  return { localMs, forwardedMs };
}

/** Counters both clusterdns and CoreDNS export under these names (0 before their first increment). */
async function servingCounters(server: ScenarioServer): Promise<{ hits: number; misses: number; upstream: number }> {
  const [hits, misses, upstream] = await Promise.all(['coredns_cache_hits_total', 'coredns_cache_misses_total', 'coredns_forward_requests_total']
    .map(async (name) => (await metricValue(server, name)) || 0));
  return { hits: hits!, misses: misses!, upstream: upstream! };
}

export async function overloadScenario(options: OverloadOptions): Promise<ScenarioResult> {
  const server = await startScenarioServer();
  try {
    return await overload(server, options);
  } finally {
    await server.stop();
  }
}

async function overload(server: ScenarioServer, { clients: CLIENTS, seconds: SECONDS, unique: UNIQUE_SHARE, burst: BURST, settleMs, afterMs }: OverloadOptions): Promise<ScenarioResult> {
  const mix = generateQueries(server.cluster, 20_000, 11).map((line, index) => {
    const [name, type] = line.split(' ');
    return encodeQuery(name!, index & 0xffff, typeCodes[type!] ?? 1);
  });
  const before = await settledRss(server, settleMs);
  const peak = measurePeak(server.pid);
  const stopTrace = traceMemory(server);

  let sent = 0;
  let replies = 0;
  let refused = 0;
  let servfail = 0;
  const sockets = await Promise.all(Array.from({ length: CLIENTS }, () => new Promise<dgram.Socket>((resolve) => {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    socket.on('message', (reply) => {
      replies++;
      const rcode = rcodeOf(reply);
      if (rcode === 5) refused++;
      else if (rcode === 2) servfail++;
    });
    socket.on('error', () => {});
    socket.bind(0, '127.0.0.1', () => resolve(socket));
  })));
  let running = true;
  let unique = 0;
  const started = performance.now();
  const cpuBefore = cpuSeconds(server.pid);
  const countersBefore = await servingCounters(server);
  const maxSent = CLIENTS * MAX_CLIENT_QPS * SECONDS;
  const turn = () => {
    if (!running || sent >= maxSent) return;
    for (const socket of sockets) {
      for (let i = 0; i < BURST; i++) {
        const packet = Math.random() < UNIQUE_SHARE
          ? encodeQuery(`u${unique++}.load.example.com`, unique & 0xffff)
          : mix[sent % mix.length]!;
        socket.send(packet, server.dnsPort, '127.0.0.1');
        sent++;
      }
    }
    setImmediate(turn);
  };
  turn();
  await sleep(SECONDS * 1000);
  running = false;
  const loadSeconds = (performance.now() - started) / 1000;
  const serverCpu = (cpuSeconds(server.pid) - cpuBefore) / loadSeconds;
  const countersAfter = await servingCounters(server);
  const stoppedAt = performance.now();
  for (const socket of sockets) socket.close();

  // Recovery: a cluster name and a forwarded name each answered normally (the later of the two counts).
  // Probes go out every 5 ms without waiting for each other: one sent into a full socket queue
  // is dropped by the kernel, and waiting out its timeout would measure the probe, not the server.
  const { localMs, forwardedMs } = await measureRecovery(server, stoppedAt);
  const recoveryMs = Math.max(localMs, forwardedMs);
  await sleep(afterMs);
  const peakRss = peak.stop();
  stopTrace();
  const after = memory(server.pid);
  return {
    scenario: 'overload',
    clients: CLIENTS,
    seconds: SECONDS,
    rssBeforeMiB: before,
    peakRssMiB: peakRss,
    rssAfterMiB: after.rss,
    sentPerSecond: sent / loadSeconds,
    repliesPerSecond: replies / loadSeconds,
    refusedPerSecond: refused / loadSeconds,
    servfailPerSecond: servfail / loadSeconds,
    // Cores the server used during the load, and what it answered with each.
    serverCores: serverCpu,
    repliesPerCoreSecond: replies / loadSeconds / serverCpu,
    // What the server did with what it read: answered from the cache, and asked upstream.
    cacheHitShare: (countersAfter.hits - countersBefore.hits) / (countersAfter.hits - countersBefore.hits + countersAfter.misses - countersBefore.misses),
    upstreamPerSecond: (countersAfter.upstream - countersBefore.upstream) / loadSeconds,
    recoveryMs,
    recoveryLocalMs: localMs,
    recoveryForwardedMs: forwardedMs,
    shedTotal: await metricValue(server, 'clusterdns_shed_queries_total'),
    droppedByKernel: await metricValue(server, 'clusterdns_udp_queries_dropped_total'),
    // Times the server cut its receive queue short while the kernel dropped (src/udp-receive-queue.ts), and gave it back.
    queueCuts: server.log.filter((line) => /the queue is cut to/.test(line)).length,
    queueRestores: server.log.filter((line) => /receive queue is back/.test(line)).length,
  };
}

if (import.meta.main) {
  report(await overloadScenario({
    clients: option('clients', OVERLOAD_DEFAULTS.clients),
    seconds: option('seconds', OVERLOAD_DEFAULTS.seconds),
    unique: option('unique', OVERLOAD_DEFAULTS.unique),
    burst: option('burst', OVERLOAD_DEFAULTS.burst),
    settleMs: OVERLOAD_DEFAULTS.settleMs,
    afterMs: OVERLOAD_DEFAULTS.afterMs,
  }));
}
