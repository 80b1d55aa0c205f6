// Forward storm: the kubeadm Corefile (kubernetes from the test API server,
// forward, cache 30) under 2,000 queries per second of distinct names whose
// upstream is dead (silent), for 15 s (issue 14, users.md P3). Prints the
// server's peak RSS (VmHWM) and RSS before and after, replies per second by
// RCODE, and how long SERVFAILs took. Then, with a fresh server each, the
// time to SERVFAIL when every upstream is dead, slow (answers after the
// per-try timeout) or answers garbage under the query's ID (random bytes, or
// a reply cut short).
//
//   npx node bench/resilience/forward-storm.ts [--qps 2000] [--seconds 15] [--max-concurrent N] [--binary PATH]
//
// --binary runs another server that takes `-conf Corefile` (for example a
// CoreDNS release) on the same Corefile, for comparison; by default the
// repository build (bin/clusterdns.js) is measured. STORM_NODE_FLAGS adds
// Node flags to the repository build's command line, to try V8 settings
// (e.g. STORM_NODE_FLAGS=--max-semi-space-size=2). --no-storm and
// --no-servfail skip either part.

import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { TestApiServer } from '../../test/support/apiserver.ts';
import { TestUpstream, type Mode } from '../../test/support/upstreams.ts';
import { generateCluster, clusterObjects } from '../synthetic.ts';
import { freePort, median, percentile, rssBytes, stop } from '../tools.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : undefined;
};
const QPS = Number(option('qps') ?? 2000);
const SECONDS = Number(option('seconds') ?? 15);
const BINARY = option('binary');
/** --max-concurrent N writes `max_concurrent N` into the forward block (default: none, the plugin's default applies). */
const MAX_CONCURRENT = option('max-concurrent');
/** After the storm, replies still due (a query may take 5 s upstream) are waited for this long. */
const DRAIN_MS = 7000;

const work = mkdtempSync(join(tmpdir(), 'clusterdns-storm-'));
const api = await TestApiServer.start();
for (const object of clusterObjects(generateCluster({ namespaces: 5, services: 200, headlessShare: 0.1, endpointsPerService: 2, seed: 7 }))) {
  api.add(object as never);
}

function kubeadmCorefile(dnsPort: number, healthPort: number, readyPort: number, upstreams: string[]): string {
  return `.:${dnsPort} {
    errors
    health 127.0.0.1:${healthPort}
    ready 127.0.0.1:${readyPort}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       endpoint ${api.url}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    forward . ${upstreams.join(' ')}${MAX_CONCURRENT === undefined ? '' : ` {\n       max_concurrent ${MAX_CONCURRENT}\n    }`}
    cache 30
    loop
    loadbalance
}
`;
}

interface Server {
  child: ChildProcess;
  port: number;
}

async function startServer(name: string, upstreams: string[]): Promise<Server> {
  const [port, healthPort, readyPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const file = join(work, `Corefile.${name}`);
  writeFileSync(file, kubeadmCorefile(port, healthPort, readyPort, upstreams));
  const command = BINARY ?? process.execPath;
  const child = spawn(command, [...(BINARY ? [] : [...(process.env.STORM_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), join(root, 'bin/clusterdns.js')]), '-conf', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Logs are read and dropped: a full pipe would stall the server.
  child.stdout!.resume();
  child.stderr!.resume();
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`${command} not ready after 60 s`);
    const ready = await fetch(`http://127.0.0.1:${readyPort}/ready`).then((reply) => reply.status === 200, () => false);
    if (ready) return { child, port };
    await sleep(100);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function peakRss(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
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
        waiter.resolve({ rcode: RCODES[message.readUInt16BE(2) & 0xf] ?? String(message.readUInt16BE(2) & 0xf), ms: performance.now() - waiter.sent });
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
    const packet = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
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
  const server = await startServer('storm', [dead.address]);
  const pid = server.child.pid!;
  console.log(`server pid ${pid}`);
  await sleep(1000);
  const rssBefore = rssBytes(pid);
  const client = await Client.open(16);
  const outcomes: Promise<Outcome | null>[] = [];
  let rssPeakSampled = rssBefore;
  const sampler = setInterval(() => (rssPeakSampled = Math.max(rssPeakSampled, rssBytes(pid))), 100);
  const started = performance.now();
  const total = QPS * SECONDS;
  let sent = 0;
  const run = Math.random().toString(36).slice(2, 8);
  // Paced in 10 ms steps: each step sends what the schedule owes so far.
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * QPS));
    for (; sent < due; sent++) outcomes.push(client.ask(server.port, `q${sent}-${run}.storm.example.`, SECONDS * 1000 + DRAIN_MS));
    await sleep(10);
  }
  const sendSeconds = (performance.now() - started) / 1000;
  const results = await Promise.all(outcomes);
  clearInterval(sampler);
  const rssAfter = rssBytes(pid);
  const peak = peakRss(pid);
  await stop(server.child);
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
  console.log(`  server:            ${BINARY ?? 'bin/clusterdns.js (repository build)'}`);
  console.log(`  upstream received: ${dead.received()} queries`);
  console.log(`  RSS:               ${mb(rssBefore)} before, peak ${mb(peak)} (VmHWM; sampled max ${mb(rssPeakSampled)}), ${mb(rssAfter)} after`);
  console.log(`  replies:           ${replies} of ${total} (${Math.round(replies / sendSeconds)} replies/s over the send time)`);
  for (const [rcode, times] of [...byRcode].sort((a, b) => b[1].length - a[1].length)) {
    const sorted = times.filter(Number.isFinite).sort((a, b) => a - b);
    const latency = sorted.length ? `, p50 ${ms(percentile(sorted, 0.5))}, p99 ${ms(percentile(sorted, 0.99))}, max ${ms(sorted.at(-1)!)}` : '';
    console.log(`    ${rcode.padEnd(9)} ${String(times.length).padStart(6)}${latency}`);
  }
}

const SCENARIOS: { name: string; mode: Mode }[] = [
  { name: 'dead (silent)', mode: { kind: 'silent' } },
  { name: 'slow (answers after 2.5 s)', mode: { kind: 'slow', delayMs: 2500 } },
  { name: 'garbage (random bytes under the query ID)', mode: { kind: 'garbage', send: ['junk'], answer: false } },
  { name: 'garbage (reply cut short)', mode: { kind: 'garbage', send: ['cut'], answer: false } },
];

/** Time to SERVFAIL with two upstreams that both behave badly: the first query, then later ones. */
async function servfailTimes(): Promise<void> {
  console.log('time to SERVFAIL, every upstream (two) broken, queries one after another:');
  const client = await Client.open(1);
  for (const scenario of SCENARIOS) {
    const upstreams = await Promise.all([TestUpstream.start({ mode: scenario.mode }), TestUpstream.start({ mode: scenario.mode })]);
    const server = await startServer('servfail', upstreams.map((upstream) => upstream.hostPort));
    const outcomes: (Outcome | null)[] = [];
    for (let i = 0; i < 3; i++) outcomes.push(await client.ask(server.port, `t${i}-${Date.now()}.servfail.example.`, 10_000));
    await stop(server.child);
    await Promise.all(upstreams.map((upstream) => upstream.stop()));
    const sent = upstreams.reduce((sum, upstream) => sum + upstream.queries.length, 0);
    const rcodes = [...new Set(outcomes.map((outcome) => outcome?.rcode ?? 'no reply'))].join('/');
    const times = outcomes.map((outcome) => outcome?.ms ?? NaN);
    console.log(`  ${scenario.name.padEnd(44)} ${rcodes.padEnd(9)} first ${ms(times[0]!).padStart(8)}, median of 3 ${ms(median(times)).padStart(8)}; ${sent} upstream queries`);
  }
  client.close();
}

try {
  if (!args.includes('--no-storm')) await storm();
  if (!args.includes('--no-servfail')) await servfailTimes();
} finally {
  await api.stop();
}
