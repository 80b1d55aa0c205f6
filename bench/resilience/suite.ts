// The resilience suite (issue 14): one command that measures, against the
// kubeadm Corefile run as users run it (`node bin/clusterdns.js -conf`):
//
//   a. queries lost across reloads (Corefile edits + SIGUSR1) under a paced load (reload.ts);
//   b. queries lost across a lameduck hand-over to a second instance on the same
//      port, with a fast upstream and one answering after 300 ms (handover.ts);
//   c. wrong answers while the API server is down, and the time until a Service
//      created at its return is answered (api-server.ts);
//   d. wrong answers across 410 re-lists under load (api-server.ts);
//   e. unpaced overload: peak RSS, replies/s, recovery after it (overload.ts);
//   f. time to SERVFAIL when every upstream is dead, slow or sends garbage (servfail.ts).
//
// Everything runs on loopback (a loopback upstream, the test API server), with
// every load bounded in count and time. Prints a table, each load's phases,
// and a final JSON line. --short is the CI-sized run (test/resilience.test.ts).
//
//   npx node bench/resilience/suite.ts [--short]

import { cpus } from 'node:os';
import { outageScenario, relistScenario, startApiSetup, type OutageOptions, type RelistOptions } from './api-server.ts';
import { formatLoad, type LoadReport, type LoadTally } from './common.ts';
import { handoverScenario, type HandoverOptions } from './handover.ts';
import { OVERLOAD_DEFAULTS, overloadScenario, type OverloadOptions } from './overload.ts';
import { reloadScenario, type ReloadOptions } from './reload.ts';
import { servfailScenario } from './servfail.ts';

export interface SuiteParameters {
  reload: ReloadOptions;
  handover: Omit<HandoverOptions, 'upstreamDelayMs'>;
  /** The slow upstream of the second hand-over. */
  slowUpstreamMs: number;
  outage: OutageOptions;
  relist: RelistOptions;
  overload: OverloadOptions;
  /** Questions asked one after another per broken-upstream kind. */
  servfailQueries: number;
}

export const FULL: SuiteParameters = {
  reload: { qps: 2000, reloads: 5, intervalMs: 2000 },
  handover: { qps: 2000, beforeMs: 3000, afterMs: 3000 },
  slowUpstreamMs: 300,
  outage: { qps: 1000, outageMs: 20_000, marginMs: 5000 },
  relist: { qps: 1000, relists: 3, listDelayMs: 300, gapMs: 3000 },
  overload: OVERLOAD_DEFAULTS,
  servfailQueries: 3,
};

export const SHORT: SuiteParameters = {
  reload: { qps: 1000, reloads: 3, intervalMs: 1000 },
  handover: { qps: 1000, beforeMs: 500, afterMs: 500 },
  slowUpstreamMs: 300,
  outage: { qps: 500, outageMs: 3000, marginMs: 1000 },
  relist: { qps: 500, relists: 2, listDelayMs: 300, gapMs: 1000 },
  // afterMs: the receive queue gets its depth back 2 s after the kernel's last drop.
  overload: { ...OVERLOAD_DEFAULTS, seconds: 3, settleMs: 2000, afterMs: 3000 },
  servfailQueries: 1,
};

const ms = (value: number) => (Number.isFinite(value) ? `${value < 10 ? value.toFixed(1) : Math.round(value)} ms` : 'none');
const tallyOf = ({ sent, right, wrong, lost, retriedOverTcp }: LoadTally): LoadTally => ({ sent, right, wrong, lost, retriedOverTcp });

interface Row {
  scenario: string;
  load?: LoadReport;
  other: string;
}

function table(rows: Row[]): string {
  const header = ['scenario', 'sent', 'lost', 'wrong', 'via TCP', 'other'];
  const cells = rows.map((row) => [row.scenario, ...(row.load ? [row.load.sent, row.load.lost, row.load.wrong, row.load.retriedOverTcp].map(String) : ['', '', '', '']), row.other]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const format = (line: string[]) => line.map((cell, column) => (column === 0 || column === 5 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd();
  return [format(header), format(widths.map((width) => '-'.repeat(width))), ...cells.map(format)].join('\n');
}

export async function runSuite(parameters: SuiteParameters, say: (line: string) => void = () => {}) {
  const started = performance.now();
  const rows: Row[] = [];
  const details: string[] = [];
  const step = (row: Row) => {
    rows.push(row);
    say(`${row.scenario}: ${row.load ? `${formatLoad(row.load)}\n` : ''}${row.other}`);
    if (row.load) details.push(`${row.scenario}\n${formatLoad(row.load)}`);
  };

  const reload = await reloadScenario(parameters.reload);
  step({ scenario: `a. ${reload.reloads} reloads (Corefile edit + SIGUSR1)`, load: reload.load, other: `${reload.reloadsDone} done, slowest ${ms(reload.slowestReloadMs)}` });

  const handoverFast = await handoverScenario({ ...parameters.handover, upstreamDelayMs: 0 });
  const handoverSlow = await handoverScenario({ ...parameters.handover, upstreamDelayMs: parameters.slowUpstreamMs });
  for (const result of [handoverFast, handoverSlow]) {
    step({
      scenario: `b. lameduck hand-over, upstream ${result.upstreamDelayMs ? `+${result.upstreamDelayMs} ms` : 'fast'}`,
      load: result.load,
      other: `B ready in ${ms(result.bStartMs)}, A exited ${ms(result.aExitMs)} after SIGTERM`,
    });
  }

  const setup = await startApiSetup();
  let outage, relist;
  try {
    outage = await outageScenario(setup, parameters.outage);
    step({
      scenario: `c. API server down ${outage.outageMs / 1000} s`,
      load: outage.load,
      other: `new Service answered ${ms(outage.newServiceMs)} after the API's return; cache hits while down ${(outage.outageCacheHitShare * 100).toFixed(0)} %`,
    });
    relist = await relistScenario(setup, parameters.relist);
    step({ scenario: `d. ${relist.relists} re-lists after 410 Gone`, load: relist.load, other: `${relist.relistsDone} done, watches back within ${ms(relist.slowestRelistMs)}` });
  } finally {
    await setup.stop();
  }

  const overload = await overloadScenario(parameters.overload);
  step({
    scenario: `e. unpaced overload, ${overload.clients} clients × ${overload.seconds} s`,
    other: `peak RSS ${Number(overload.peakRssMiB).toFixed(0)} MiB (before ${Number(overload.rssBeforeMiB).toFixed(0)}), ` +
      `${Math.round(Number(overload.repliesPerSecond))} replies/s, recovery ${ms(Number(overload.recoveryMs))}`,
  });

  const servfail = await servfailScenario(parameters.servfailQueries);
  for (const { kind, times, rcodes } of servfail) {
    step({
      scenario: `f. every upstream ${kind}`,
      other: `${rcodes.map((rcode) => (rcode === 2 ? 'SERVFAIL' : rcode === -1 ? 'no answer' : `rcode ${rcode}`)).join('/')} after ${times.map(ms).join(', ')}`,
    });
  }

  const seconds = (performance.now() - started) / 1000;
  const results = {
    reload: { ...tallyOf(reload.load), reloads: reload.reloads, reloadsDone: reload.reloadsDone, slowestReloadMs: reload.slowestReloadMs },
    handoverFast: { ...tallyOf(handoverFast.load), bStartMs: handoverFast.bStartMs, aExitMs: handoverFast.aExitMs },
    handoverSlow: { ...tallyOf(handoverSlow.load), upstreamDelayMs: handoverSlow.upstreamDelayMs, bStartMs: handoverSlow.bStartMs, aExitMs: handoverSlow.aExitMs },
    outage: { ...tallyOf(outage.load), outageMs: outage.outageMs, newServiceMs: outage.newServiceMs, outageCacheHitShare: outage.outageCacheHitShare },
    relist: { ...tallyOf(relist.load), relists: relist.relists, relistsDone: relist.relistsDone, slowestRelistMs: relist.slowestRelistMs },
    overload,
    servfail: Object.fromEntries(servfail.map(({ kind, times, rcodes }) => [kind, { times, rcodes }])),
  };
  return { seconds, table: table(rows), details, results, loads: { reload: reload.load, handoverFast: handoverFast.load, handoverSlow: handoverSlow.load, outage: outage.load, relist: relist.load } };
}

if (import.meta.main) {
  const short = process.argv.includes('--short');
  process.stdout.write(`resilience suite${short ? ' (--short)' : ''}: kubeadm Corefile, node bin/clusterdns.js -conf, ${cpus().length} cores, Node ${process.version}\n`);
  const suite = await runSuite(short ? SHORT : FULL, (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(`\n${suite.table}\n\nphases (queries tallied by when they were sent):\n${suite.details.join('\n')}\n\nsuite took ${suite.seconds.toFixed(0)} s\n`);
  process.stdout.write(`${JSON.stringify({ suite: 'resilience', short, seconds: suite.seconds, ...suite.results })}\n`);
}
