// Queries lost across reloads under load (issue 14): the kubeadm Corefile
// under a steady paced UDP load (cluster names and unique forwarded names),
// while the Corefile is edited (`cache 30` <-> `cache 29`, a real change, so
// the whole configuration is set up again) and SIGUSR1 reloads it, as the
// `reload` plugin does when it sees the edit. A query is lost when no answer
// came within 2 s. Prints sent, lost and wrong answers, per phase.
//
//   npx node bench/resilience/reload.ts [--qps 2000] [--reloads 5] [--interval-ms 2000]

import { readFileSync, writeFileSync } from 'node:fs';
import { mixedQuestions, option, pacedLoad, printLoad, sleep, startScenarioServer, type LoadReport } from './common.ts';

export interface ReloadOptions {
  qps: number;
  reloads: number;
  /** Load before the first reload, between reloads and after the last. */
  intervalMs: number;
}

export interface ReloadResult {
  load: LoadReport;
  reloads: number;
  /** Reloads the server logged as done (its new configuration's hash). */
  reloadsDone: number;
  /** The longest time from SIGUSR1 to the log line of the new configuration. */
  slowestReloadMs: number;
}

export async function reloadScenario(options: ReloadOptions): Promise<ReloadResult> {
  const server = await startScenarioServer();
  try {
    const running = /plugin\/reload: Running configuration SHA512/;
    await server.waitForLog(running);
    const maxSeconds = ((options.reloads + 1) * options.intervalMs) / 1000 + options.reloads * 10;
    const load = await pacedLoad(server.dnsPort, { qps: options.qps, maxSeconds, question: mixedQuestions(server.cluster, 0.3, `reload${Date.now()}`), phase: 'before' });
    await sleep(options.intervalMs);
    let reloadsDone = 0;
    let slowestReloadMs = 0;
    for (let i = 1; i <= options.reloads; i++) {
      const text = readFileSync(server.corefile, 'utf8');
      writeFileSync(server.corefile, text.replace(/cache \d+/, `cache ${i % 2 ? 29 : 30}`));
      load.mark(`reload ${i}`);
      const signalled = performance.now();
      server.child.kill('SIGUSR1');
      const done = await server.waitForLog(running, 1 + i).then(() => true, () => false);
      if (done) reloadsDone++;
      slowestReloadMs = Math.max(slowestReloadMs, performance.now() - signalled);
      await sleep(options.intervalMs);
    }
    return { load: await load.finish(), reloads: options.reloads, reloadsDone, slowestReloadMs };
  } finally {
    await server.stop();
  }
}

if (import.meta.main) {
  const result = await reloadScenario({ qps: option('qps', 2000), reloads: option('reloads', 5), intervalMs: option('interval-ms', 2000) });
  process.stdout.write(`reloads: ${result.reloadsDone} of ${result.reloads} done, slowest ${result.slowestReloadMs.toFixed(0)} ms after SIGUSR1\n`);
  printLoad(result.load);
}
