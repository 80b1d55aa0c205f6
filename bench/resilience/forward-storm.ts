// Forward storm: the kubeadm Corefile (forward, cache 30) under 2,000
// queries per second of distinct names whose upstream is dead (silent), for
// 15 s (issue 14, users.md P3). Prints the server's RSS before, its peak
// (VmHWM) and after, replies per second by RCODE, and how long they took.
// The time to SERVFAIL when every upstream is dead, slow or sends garbage is
// servfail.ts.
//
//   npx node bench/resilience/forward-storm.ts [--qps 2000] [--seconds 15] [--max-concurrent N] [--binary PATH]
//
// --max-concurrent N writes `max_concurrent N` into the forward block (by
// default the plugin's own default applies); --binary runs another server on
// the same Corefile (see common.ts).

import dgram from 'node:dgram';
import net from 'node:net';
import { generateCluster } from '../synthetic.ts';
import { percentile } from '../tools.ts';
import { encodeQuery, measurePeak, memory, option, rcodeOf, sleep, startScenarioServer, stringOption } from './common.ts';

const QPS = option('qps', 2000);
const SECONDS = option('seconds', 15);
const MAX_CONCURRENT = stringOption('max-concurrent');
/** After the storm, replies still due (a query may take 5 s upstream) are waited for this long. */
const DRAIN_MS = 7000;

const mib = (value: number) => `${value.toFixed(0)} MiB`;
const ms = (value: number) => (Number.isFinite(value) ? `${value < 10 ? value.toFixed(1) : Math.round(value)} ms` : '-');

/** A dead upstream: reads everything on UDP, accepts TCP and never answers. Counts what it got. */
async function deadUpstream(): Promise<{ address: string; received: () => number; close: () => void }> {
  const udp = dgram.createSocket('udp4');
  let received = 0;
  udp.on('message', () => received++);
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const port = udp.address().port;
  const held = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    held.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => held.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', resolve);
  });
  return {
    address: `127.0.0.1:${port}`,
    received: () => received,
    close: () => {
      udp.close();
      for (const socket of held) socket.destroy();
      tcp.close();
    },
  };
}

const RCODES: Record<number, string> = { 0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED' };

interface Outcome {
  rcode: string;
  ms: number;
}

/** A UDP client that sends queries and matches replies by ID, one socket per 60,000 outstanding. */
class Client {
  private readonly sockets: dgram.Socket[] = [];
  private readonly pending: Map<number, { sent: number; resolve: (outcome: Outcome | null) => void }>[] = [];
  private next = 0;

  static async open(count: number): Promise<Client> {
    const client = new Client();
    for (let i = 0; i < count; i++) {
      const socket = dgram.createSocket('udp4');
      const pending = new Map<number, { sent: number; resolve: (outcome: Outcome | null) => void }>();
      socket.on('message', (message) => {
        if (message.length < 12) return;
        const waiter = pending.get(message.readUInt16BE(0));
        if (!waiter) return;
        pending.delete(message.readUInt16BE(0));
        waiter.resolve({ rcode: RCODES[rcodeOf(message)] ?? String(rcodeOf(message)), ms: performance.now() - waiter.sent });
      });
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      client.sockets.push(socket);
      client.pending.push(pending);
    }
    return client;
  }

  /** Resolves with the reply's RCODE and time, or null when none came within `timeoutMs`. */
  ask(port: number, name: string, timeoutMs: number): Promise<Outcome | null> {
    const index = this.next++ % this.sockets.length;
    const pending = this.pending[index]!;
    let id = Math.floor(Math.random() * 65536);
    while (pending.has(id)) id = (id + 1) & 0xffff;
    const packet = encodeQuery(name, id);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve(null);
      }, timeoutMs);
      pending.set(id, {
        sent: performance.now(),
        resolve: (outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        },
      });
      this.sockets[index]!.send(packet, port, '127.0.0.1');
    });
  }

  close(): void {
    for (const socket of this.sockets) socket.close();
  }
}

async function storm(): Promise<void> {
  const dead = await deadUpstream();
  const maxConcurrent = MAX_CONCURRENT === undefined ? '' : ` {\n       max_concurrent ${MAX_CONCURRENT}\n    }`;
  const server = await startScenarioServer({
    forward: `. ${dead.address}${maxConcurrent}`,
    cluster: generateCluster({ namespaces: 5, services: 200, headlessShare: 0.1, endpointsPerService: 2, seed: 7 }),
  });
  const pid = server.pid;
  await sleep(1000);
  const rssBefore = memory(pid).rss;
  const peak = measurePeak(pid);
  const client = await Client.open(16);
  const outcomes: Promise<Outcome | null>[] = [];
  const started = performance.now();
  const total = QPS * SECONDS;
  let sent = 0;
  const run = Math.random().toString(36).slice(2, 8);
  // Paced in 10 ms steps: each step sends what the schedule owes so far.
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * QPS));
    for (; sent < due; sent++) outcomes.push(client.ask(server.dnsPort, `q${sent}-${run}.storm.example.`, SECONDS * 1000 + DRAIN_MS));
    await sleep(10);
  }
  const sendSeconds = (performance.now() - started) / 1000;
  const results = await Promise.all(outcomes);
  const peakRss = peak.stop();
  const rssAfter = memory(pid).rss;
  await server.stop();
  client.close();
  dead.close();

  const byRcode = new Map<string, number[]>();
  for (const result of results) {
    const key = result?.rcode ?? 'no reply';
    const times = byRcode.get(key) ?? [];
    times.push(result?.ms ?? NaN);
    byRcode.set(key, times);
  }
  const replies = results.filter((result) => result !== null).length;
  console.log(`forward storm: ${total} distinct names at ${QPS} q/s for ${SECONDS} s (sent in ${sendSeconds.toFixed(1)} s), one dead upstream`);
  console.log(`  server:            ${stringOption('binary') ?? 'bin/clusterdns.js (repository build)'}`);
  console.log(`  upstream received: ${dead.received()} queries`);
  console.log(`  RSS:               ${mib(rssBefore)} before, peak ${mib(peakRss)}, ${mib(rssAfter)} after`);
  console.log(`  replies:           ${replies} of ${total} (${Math.round(replies / sendSeconds)} replies/s over the send time)`);
  for (const [rcode, times] of [...byRcode].sort((a, b) => b[1].length - a[1].length)) {
    const sorted = times.filter(Number.isFinite).sort((a, b) => a - b);
    const latency = sorted.length ? `, p50 ${ms(percentile(sorted, 0.5))}, p99 ${ms(percentile(sorted, 0.99))}, max ${ms(sorted.at(-1)!)}` : '';
    console.log(`    ${rcode.padEnd(9)} ${String(times.length).padStart(6)}${latency}`);
  }
}

await storm();
