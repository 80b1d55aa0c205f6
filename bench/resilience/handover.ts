// Queries lost across a lameduck hand-over (issue 14, item 4): instance A
// (the kubeadm Corefile, `health { lameduck 5s }`) serves port P under a
// steady paced UDP load (cluster names and unique forwarded names, from many
// source ports so the kernel spreads them as it does pods' queries); instance
// B starts on the same port P (clusterdns sets SO_REUSEPORT on configured
// ports), and once B's /ready answers, A gets SIGTERM. The load goes on until
// A has exited and `--after-ms` more. A query is lost when no answer came
// within 2 s (over UDP, or over TCP after a truncated answer, as a stub
// resolver retries). --delay makes the upstream answer after that many ms, so
// forwarded queries are still in flight when A closes.
//
//   npx node bench/resilience/handover.ts [--qps 2000] [--delay 0] [--before-ms 3000] [--after-ms 3000]

import { mixedQuestions, option, pacedLoad, printLoad, sleep, startScenarioServer, startUpstream, watchUdpDrops, type LoadReport, type ScenarioServer } from './common.ts';

export interface HandoverOptions {
  qps: number;
  /** The upstream answers after this long. */
  upstreamDelayMs: number;
  /** Load on A alone before B starts. */
  beforeMs: number;
  /** Load on B alone after A exited. */
  afterMs: number;
}

export interface HandoverResult {
  load: LoadReport;
  upstreamDelayMs: number;
  /** How long B took to start and answer /ready. */
  bStartMs: number;
  /** From A's SIGTERM to its exit (lameduck 5 s, then the drain). */
  aExitMs: number;
  /** Datagrams the kernel dropped at A's and B's sockets on the port (their receive queue was full). */
  kernelDrops: Record<string, number>;
}

/** kubeadm's `health { lameduck 5s }`. */
const LAMEDUCK_MS = 5000;

export async function handoverScenario(options: HandoverOptions): Promise<HandoverResult> {
  const upstream = await startUpstream(options.upstreamDelayMs);
  let a: ScenarioServer | null = null;
  let b: ScenarioServer | null = null;
  try {
    a = await startScenarioServer({ upstream });
    const port = a.dnsPort;
    const drops = watchUdpDrops(port, () => ({ A: a?.pid, B: b?.pid }));
    const maxSeconds = (options.beforeMs + options.afterMs) / 1000 + 60;
    const load = await pacedLoad(port, { qps: options.qps, maxSeconds, question: mixedQuestions(a.cluster, 0.3, `handover${Date.now()}`), phase: 'A alone' });
    await sleep(options.beforeMs);
    load.mark('B starting');
    const bStarted = performance.now();
    b = await startScenarioServer({ upstream, dnsPort: port });
    const bStartMs = performance.now() - bStarted;
    load.mark('A lameduck, B serving');
    const exiting = a.terminate();
    const closing = setTimeout(() => load.mark('A closing, B serving'), LAMEDUCK_MS);
    const aExitMs = await exiting;
    clearTimeout(closing);
    load.mark('A exited, B alone');
    await sleep(options.afterMs);
    return { load: await load.finish(), upstreamDelayMs: options.upstreamDelayMs, bStartMs, aExitMs, kernelDrops: drops.stop() };
  } finally {
    await a?.stop();
    await b?.stop();
    upstream.stop();
  }
}

if (import.meta.main) {
  const result = await handoverScenario({ qps: option('qps', 2000), upstreamDelayMs: option('delay', 0), beforeMs: option('before-ms', 3000), afterMs: option('after-ms', 3000) });
  process.stdout.write(`upstream delay ${result.upstreamDelayMs} ms; B ready after ${result.bStartMs.toFixed(0)} ms; A exited ${result.aExitMs.toFixed(0)} ms after SIGTERM; ` +
    `datagrams dropped by the kernel (full receive queue): ${JSON.stringify(result.kernelDrops)}\n`);
  printLoad(result.load);
}
