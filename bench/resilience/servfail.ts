// Time to SERVFAIL when every upstream is broken (issue 14): the kubeadm
// Corefile forwarding to two upstreams that are both dead (a closed port),
// slow (answer after 10 s, past forward's 5 s timeout) or send garbage under
// the query's ID (random bytes, never a real answer; `cut`: a reply cut short).
// One server per kind, started side by side; each is asked --queries new names
// one after another. --kinds garbage,cut measures only those (side by side, the
// servers and this process share the CPUs: a few ms more per answer).
//
//   npx node bench/resilience/servfail.ts [--queries 3] [--kinds dead,slow,garbage,cut]

import { TestUpstream, type Mode } from '../../test/support/upstreams.ts';
import { freePort } from '../tools.ts';
import { encodeQuery, option, rcodeOf, startScenarioServer, stringOption, udpQuery } from './common.ts';

export type BrokenKind = 'dead' | 'slow' | 'garbage' | 'cut';

export interface ServfailTimes {
  kind: BrokenKind;
  /** Milliseconds to each answer (NaN: none within 10 s). */
  times: number[];
  /** The RCODEs answered (2 is SERVFAIL), -1 for none. */
  rcodes: number[];
}

const MODES: Record<Exclude<BrokenKind, 'dead'>, Mode> = {
  slow: { kind: 'slow', delayMs: 10_000 },
  garbage: { kind: 'garbage', send: ['junk'], answer: false },
  cut: { kind: 'garbage', send: ['cut'], answer: false },
};

async function brokenUpstreams(kind: BrokenKind): Promise<{ hostPorts: string[]; stop(): Promise<void> }> {
  if (kind === 'dead') {
    const ports = await Promise.all([freePort(), freePort()]);
    return { hostPorts: ports.map((port) => `127.0.0.1:${port}`), stop: async () => {} };
  }
  const upstreams = await Promise.all([TestUpstream.start({ mode: MODES[kind] }), TestUpstream.start({ mode: MODES[kind] })]);
  return { hostPorts: upstreams.map((upstream) => upstream.hostPort), stop: async () => void (await Promise.all(upstreams.map((upstream) => upstream.stop()))) };
}

async function timesFor(kind: BrokenKind, queries: number): Promise<ServfailTimes> {
  const upstreams = await brokenUpstreams(kind);
  try {
    const server = await startScenarioServer({ forward: `. ${upstreams.hostPorts.join(' ')}` });
    try {
      const result: ServfailTimes = { kind, times: [], rcodes: [] };
      for (let i = 0; i < queries; i++) {
        const started = performance.now();
        const reply = await udpQuery(server.dnsPort, encodeQuery(`t${i}-${Date.now()}.servfail.example.com`, i), 10_000);
        result.times.push(reply ? performance.now() - started : NaN);
        result.rcodes.push(reply ? rcodeOf(reply) : -1);
      }
      return result;
    } finally {
      await server.stop();
    }
  } finally {
    await upstreams.stop();
  }
}

export async function servfailScenario(queries: number, kinds: BrokenKind[] = ['dead', 'slow', 'garbage']): Promise<ServfailTimes[]> {
  return Promise.all(kinds.map((kind) => timesFor(kind, queries)));
}

if (import.meta.main) {
  const kinds = (stringOption('kinds') ?? 'dead,slow,garbage,cut').split(',') as BrokenKind[];
  for (const { kind, times, rcodes } of await servfailScenario(option('queries', 3), kinds)) {
    process.stdout.write(`${kind.padEnd(8)} rcodes ${rcodes.join('/')}, ms ${times.map((time) => time.toFixed(1)).join(', ')}\n`);
  }
}
