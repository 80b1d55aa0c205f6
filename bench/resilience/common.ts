// Shared pieces of the resilience scenarios (bench/resilience/*.ts): the
// server under test started as users run it (`bin/clusterdns.js -conf`) with
// the kubeadm Corefile over a synthetic cluster and a loopback upstream in
// its own process, its memory read from /proc, probes that check a normal
// answer, and the result line every scenario prints.

import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import dnsPacket from 'dns-packet';
import { sendUdp } from '../../test/support/dns.ts';
import { TestApiServer } from '../../test/support/apiserver.ts';
import { readUdpTable, socketInodes } from '../../src/udp-receive-queue.ts';
import { clusterObjects, DEFAULT_SHAPE, generateCluster, kubeadmCorefile, random, writeManifests, type SyntheticCluster } from '../synthetic.ts';
import { summarizeProfiles } from '../profile.ts';
import { freePort, stop, waitForHttp } from '../tools.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PROFILE_DIR = join(root, 'bench/results/resilience-profile');
// Profiles of an earlier run would be summarised with this one's.
if (process.argv.includes('--profile')) rmSync(PROFILE_DIR, { recursive: true, force: true });

export interface ScenarioServer {
  child: ChildProcess;
  pid: number;
  dnsPort: number;
  readyPort: number;
  metricsPort: number;
  /** The Corefile's path (a reload scenario edits it). */
  corefile: string;
  cluster: SyntheticCluster;
  /** A name the kubernetes plugin answers with one A record. */
  clusterName: string;
  /** Lines the server logged (stdout), kept so a scenario can look for the shedding messages. */
  log: string[];
  /** Resolves once `count` logged lines match `pattern` (rejects after timeoutMs). */
  waitForLog(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  /** SIGTERM, as a pod's shutdown: resolves with the milliseconds until the process exited (NaN: killed after 30 s). */
  terminate(): Promise<number>;
  stop(): Promise<void>;
}

/** A loopback upstream (bench/resilience/upstream.ts) in its own process, so the load generator cannot starve it. */
export interface Upstream {
  hostPort: string;
  stop(): void;
}

/** Starts the loopback upstream; every reply goes out `delayMs` after its query came in. */
export async function startUpstream(delayMs = 0): Promise<Upstream> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(root, 'bench/resilience/upstream.ts'), String(port), '--delay', String(delayMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`upstream exited with ${code}`)));
  });
  return { hostPort: `127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

export interface ScenarioOptions {
  /** Goes to the server (CLUSTERDNS_MAX_IN_FLIGHT...). */
  env?: NodeJS.ProcessEnv;
  /** The DNS port: another instance's, to take it over (SO_REUSEPORT); default a free one. */
  dnsPort?: number;
  /** The upstream to forward to, shared and left running; default a fast one of the server's own. */
  upstream?: Upstream;
  /** forward's argument (upstreams and options block) instead of an upstream. */
  forward?: string;
  /** The kubernetes plugin reads this API server (endpoint URL) holding `cluster`, instead of manifests. */
  apiServer?: string;
  /** The cluster (default: DEFAULT_SHAPE's), written as manifests unless apiServer is given. */
  cluster?: SyntheticCluster;
}

/**
 * Starts clusterdns with the kubeadm Corefile, forwarding to a loopback
 * upstream (its own unless given), and waits for /ready.
 */
export async function startScenarioServer(options: ScenarioOptions = {}): Promise<ScenarioServer> {
  const work = mkdtempSync(join(tmpdir(), 'clusterdns-resilience-'));
  const cluster = options.cluster ?? generateCluster(DEFAULT_SHAPE);
  // Another server (--binary) reads the cluster from an API server of the scenario's own.
  const ownApi = options.apiServer === undefined && stringOption('binary') !== undefined ? await startClusterApi(cluster) : null;
  const apiServer = options.apiServer ?? ownApi?.url;
  if (apiServer === undefined) writeManifests(cluster, join(work, 'cluster'));
  const [dnsPort, healthPort, readyPort, metricsPort] = await Promise.all([options.dnsPort ?? freePort(), freePort(), freePort(), freePort()]);
  const ownUpstream = options.upstream === undefined && options.forward === undefined ? await startUpstream() : null;
  const forward = options.forward ?? `. ${(options.upstream ?? ownUpstream)!.hostPort}`;
  const source = apiServer === undefined ? { manifests: join(work, 'cluster') } : { endpoint: apiServer };
  const corefile = join(work, 'Corefile');
  writeFileSync(corefile, kubeadmCorefile({ dns: dnsPort, health: healthPort, ready: readyPort, metrics: metricsPort }, source, forward));
  const [file, ...args] = serverCommand();
  const child = spawn(file!, [...args, '-conf', corefile], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...options.env },
  });
  const log: string[] = [];
  const logWaiters = new Set<() => void>();
  let partial = '';
  // Read stdout all the time: a pipe nobody reads would block the server's log writes.
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    // Only the server's own lines matter here; the errors plugin's per-query lines would fill memory.
    for (const line of lines) if (!line.includes('plugin/errors')) log.push(line);
    for (const waiter of logWaiters) waiter();
  });
  let stopping = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`clusterdns exited during the scenario: code ${code}, signal ${signal}\n`);
  });
  await waitForHttp(`http://127.0.0.1:${readyPort}/ready`);
  const service = cluster.services.find((candidate) => !candidate.headless)!;
  return {
    child,
    pid: child.pid!,
    dnsPort,
    readyPort,
    metricsPort,
    corefile,
    cluster,
    clusterName: `${service.name}.${service.namespace}.svc.cluster.local`,
    log,
    waitForLog(pattern, count = 1, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (log.filter((line) => pattern.test(line)).length < count) return;
          clearTimeout(timer);
          logWaiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          logWaiters.delete(check);
          reject(new Error(`clusterdns did not log ${pattern} ${count} times within ${timeoutMs} ms`));
        }, timeoutMs);
        logWaiters.add(check);
        check();
      });
    },
    async terminate() {
      stopping = true;
      const started = performance.now();
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, 30_000, false)))]);
      clearTimeout(timer);
      if (!inTime) child.kill('SIGKILL');
      return inTime ? performance.now() - started : NaN;
    },
    async stop() {
      stopping = true;
      // The measurements are done: no lameduck wait. A second SIGINT exits at once (a CPU profile is still written).
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        await sleep(100);
        child.kill('SIGINT');
      }
      await stop(child);
      ownUpstream?.stop();
      await ownApi?.stop();
      if (process.argv.includes('--profile')) process.stdout.write(`server CPU profile (${PROFILE_DIR}):\n${summarizeProfiles(PROFILE_DIR)}\n`);
    },
  };
}

/** The test API server holding `cluster`. */
async function startClusterApi(cluster: SyntheticCluster): Promise<TestApiServer> {
  const api = await TestApiServer.start();
  for (const object of clusterObjects(cluster)) api.add(object as never);
  return api;
}

/**
 * How the server is started (the executable first): the repository's command
 * (`bin/clusterdns.js`, which runs the TypeScript sources through Node's type
 * stripping), or with `--dist` the JavaScript that `npm run build` compiles
 * into dist/ and the package and the image run. Type stripping's compiler
 * alone holds ~40 MiB of RSS, so the two differ by that much at every load.
 *
 * `--binary PATH` runs another DNS server that takes `-conf` (CoreDNS,
 * to compare by hand on the same machine and load); it cannot read manifests,
 * so the scenario serves the cluster from the test API server instead
 * (see startScenarioServer). Its metrics have other names: clusterdns's own
 * counters read as NaN.
 */
export function serverCommand(): string[] {
  const otherServer = stringOption('binary');
  if (otherServer !== undefined) return [otherServer];
  // --profile: the server writes a CPU profile at exit, summarised by stop().
  const profile = process.argv.includes('--profile') ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  if (!process.argv.includes('--dist')) return [process.execPath, ...profile, join(root, 'bin/clusterdns.js')];
  const main = join(root, 'dist/src/main.js');
  if (!existsSync(main)) throw new Error('--dist: run `npm run build` first');
  return [process.execPath, ...profile, '--input-type=module', '-e', `const { main } = await import(${JSON.stringify(pathToFileURL(main).href)}); process.exit(await main(process.argv.slice(1)));`, '--'];
}

/** VmRSS and VmHWM (the kernel's own peak) in MiB. */
export function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** CPU seconds the process has used (user + system, all its threads), from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A standard query (RD set) for `name`, type A unless given. */
export function encodeQuery(name: string, id: number, qtype = 1): Buffer {
  const labels = name.split('.').filter(Boolean);
  const length = 12 + labels.reduce((sum, label) => sum + label.length + 1, 1) + 4;
  const packet = Buffer.alloc(length);
  packet.writeUInt16BE(id, 0);
  packet.writeUInt16BE(0x0100, 2);
  packet.writeUInt16BE(1, 4);
  let offset = 12;
  for (const label of labels) {
    packet[offset++] = label.length;
    offset += packet.write(label, offset, 'latin1');
  }
  packet[offset++] = 0;
  packet.writeUInt16BE(qtype, offset);
  packet.writeUInt16BE(1, offset + 2);
  return packet;
}

export const rcodeOf = (reply: Buffer) => reply[3]! & 0x0f;
export const answerCount = (reply: Buffer) => reply.readUInt16BE(6);

/** One UDP query from 127.0.0.1; resolves with the reply or null after timeoutMs (or on a socket error). */
export function udpQuery(port: number, packet: Buffer, timeoutMs = 1000): Promise<Buffer | null> {
  return sendUdp(port, packet, timeoutMs).catch(() => null);
}

/** One query on a fresh TCP connection; resolves with the reply or null (closed, reset, timed out). */
export function tcpQuery(port: number, packet: Buffer, timeoutMs = 1000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => finish(null), timeoutMs);
    const finish = (reply: Buffer | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    socket.on('connect', () => {
      const frame = Buffer.alloc(packet.length + 2);
      frame.writeUInt16BE(packet.length, 0);
      packet.copy(frame, 2);
      socket.write(frame);
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) finish(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
    });
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(null));
  });
}

/** A normal answer for the cluster name: NOERROR with an A record. */
export function isNormalAnswer(reply: Buffer | null): boolean {
  return reply !== null && rcodeOf(reply) === 0 && answerCount(reply) > 0;
}

/**
 * Times one probe over `transport` in ms; NaN when it was not answered
 * normally within timeoutMs. Over UDP it asks again every 200 ms, as a stub
 * resolver would: a datagram that meets a full socket queue under a flood is
 * dropped by the kernel, which says nothing about the server.
 */
export async function probe(server: ScenarioServer, transport: 'udp' | 'tcp', timeoutMs = 1000): Promise<number> {
  const started = performance.now();
  const packet = () => encodeQuery(server.clusterName, Math.floor(Math.random() * 65536));
  if (transport === 'tcp') return isNormalAnswer(await tcpQuery(server.dnsPort, packet(), timeoutMs)) ? performance.now() - started : NaN;
  while (performance.now() - started < timeoutMs) {
    const reply = await udpQuery(server.dnsPort, packet(), Math.min(200, timeoutMs - (performance.now() - started)));
    if (isNormalAnswer(reply)) return performance.now() - started;
  }
  return NaN;
}

/**
 * Starts measuring the scenario's peak: resets the kernel's high-water mark
 * (VmHWM, so the startup peak does not count; needs root or the process's
 * owner) and samples VmRSS every 100 ms as well. `stop` returns the higher.
 */
export function measurePeak(pid: number): { stop(): number } {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // not allowed: VmHWM then includes startup, the samples still count
  }
  let peakSampled = 0;
  const sample = () => {
    try {
      peakSampled = Math.max(peakSampled, memory(pid).rss);
    } catch {
      // the process is gone: the scenario reports it
    }
  };
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      let hwm = 0;
      try {
        hwm = memory(pid).peak;
      } catch {
        // gone
      }
      return Math.max(hwm, peakSampled);
    },
  };
}

/** Lets the server settle after startup (V8's memory reducer runs ~8 s after allocation slows), then reads its RSS. */
export async function settledRss(server: ScenarioServer, settleMs = 10_000): Promise<number> {
  await sleep(settleMs);
  return memory(server.pid).rss;
}

/** The value of a metric summed over its series (those whose labels contain `labelText`), NaN when absent. */
export async function metricValue(server: ScenarioServer, name: string, labelText = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  const values = [...text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? ([\\d.e+-]+)$`, 'gm'))]
    .filter((match) => (match[1] ?? '').includes(labelText))
    .map((match) => Number(match[2]));
  return values.length === 0 ? NaN : values.reduce((sum, value) => sum + value, 0);
}

export interface ScenarioResult {
  scenario: string;
  rssBeforeMiB: number;
  peakRssMiB: number;
  rssAfterMiB: number;
  [measure: string]: string | number;
}

/** Prints the result as one readable line and one JSON line (a suite can parse the last). */
export function report(result: ScenarioResult): void {
  const fields = Object.entries(result).map(([key, value]) => `${key}=${typeof value === 'number' ? Number(value.toFixed(1)) : value}`);
  process.stdout.write(`${fields.join(' ')}\n${JSON.stringify(result)}\n`);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `--name value` from the command line as text, undefined when absent. */
export function stringOption(name: string): string | undefined {
  const args = process.argv.slice(2);
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : undefined;
}

/** `--name value` from the command line, or the fallback. */
export function option(name: string, fallback: number): number {
  const text = stringOption(name);
  return text === undefined ? fallback : Number(text);
}

/**
 * With --trace: prints the server's RSS, V8 heap used and external memory
 * (Buffers) every second to stderr, to see what grows during a scenario.
 */
export function traceMemory(server: ScenarioServer): () => void {
  if (!process.argv.includes('--trace')) return () => {};
  process.stderr.write(`server pid ${server.pid}\n`);
  const started = performance.now();
  const timer = setInterval(async () => {
    const text = await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`).then((response) => response.text(), () => '');
    const value = (name: string) => Number(new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
    const { rss } = memory(server.pid);
    process.stderr.write(`${((performance.now() - started) / 1000).toFixed(0)}s rss ${rss.toFixed(0)} heapUsed ${value('nodejs_heap_size_used_bytes').toFixed(0)} ` +
      `heapTotal ${value('nodejs_heap_size_total_bytes').toFixed(0)} external ${value('nodejs_external_memory_bytes').toFixed(0)} MiB; ` +
      `by space (used/committed): ${[...text.matchAll(/^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\d+)/gm)]
        .map(([, space, total]) => {
          const used = Number(new RegExp(`^nodejs_heap_space_size_used_bytes\\{space="${space}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
          return `${space} ${(used / 2 ** 20).toFixed(0)}/${(Number(total) / 2 ** 20).toFixed(0)}`;
        }).join(', ')}\n`);
  }, 1000);
  return () => clearInterval(timer);
}

// ---------------------------------------------------------------------------
// Paced load: what pods see while something happens to the server

/** One question of a load, and what counts as its right answer. */
export interface Question {
  name: string;
  /** QTYPE number; A when absent. */
  type?: number;
  expect(reply: Buffer): boolean;
}

/** The A records' addresses of a reply, sorted. */
function addressesOf(reply: Buffer): string[] {
  return (dnsPacket.decode(reply).answers ?? []).filter((record) => record.type === 'A').map((record) => String((record as { data: unknown }).data)).sort();
}

export const expect = {
  /** NOERROR with exactly these A records. */
  addresses: (addresses: string[]) => {
    const wanted = [...addresses].sort().join(' ');
    return (reply: Buffer) => rcodeOf(reply) === 0 && addressesOf(reply).join(' ') === wanted;
  },
  /** NOERROR with this many answer records. */
  answers: (count: number) => (reply: Buffer) => rcodeOf(reply) === 0 && answerCount(reply) === count,
  nxdomain: () => (reply: Buffer) => rcodeOf(reply) === 3,
};

const QTYPE = { A: 1, AAAA: 28, SRV: 33 };

/**
 * Every question about `cluster` with a known answer, in a fixed shuffled
 * order: A of each Service (its ClusterIP, or a headless one's endpoints),
 * SRV and AAAA (NODATA) of each, and the NXDOMAINs a pod's search path makes
 * of it from two other namespaces. A load walking this list asks each
 * question once per pass, so a `cache 30` in front answers few of them from
 * memory while the pass lasts longer than its TTL.
 */
export function clusterQuestions(cluster: SyntheticCluster, seed = 1): Question[] {
  const questions: Question[] = [];
  cluster.services.forEach((service, index) => {
    const name = `${service.name}.${service.namespace}.svc.cluster.local`;
    questions.push({ name, expect: expect.addresses(service.headless ? service.endpoints : [service.clusterIP!]) });
    questions.push({ name: `_http._tcp.${name}`, type: QTYPE.SRV, expect: expect.answers(service.headless ? service.endpoints.length : 1) });
    questions.push({ name, type: QTYPE.AAAA, expect: expect.answers(0) });
    for (const step of [1, 2]) {
      const podNamespace = cluster.namespaces[(index + step) % cluster.namespaces.length]!;
      if (podNamespace !== service.namespace) questions.push({ name: `${service.name}.${service.namespace}.${podNamespace}.svc.cluster.local`, expect: expect.nxdomain() });
    }
  });
  const next = random(seed);
  for (let i = questions.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [questions[i], questions[j]] = [questions[j]!, questions[i]!];
  }
  return questions;
}

/**
 * Cluster questions with a share of forwarded ones: unique names (cache
 * misses, so each goes upstream), which the loopback upstream answers with
 * 192.0.2.1. `tag` keeps names apart between runs and instances.
 */
export function mixedQuestions(cluster: SyntheticCluster, forwardedShare: number, tag: string): (index: number) => Question {
  const local = clusterQuestions(cluster);
  const forwarded = expect.addresses(['192.0.2.1']);
  const everyNth = forwardedShare > 0 ? Math.round(1 / forwardedShare) : Infinity;
  return (index) => (index % everyNth === 0 ? { name: `q${index}-${tag}.fwd.example.com`, expect: forwarded } : local[index % local.length]!);
}

/** A query is lost when no answer came within this long (a stub resolver's retry time is 5 s; 2 s is already an outage to a pod). */
export const LOST_AFTER_MS = 2000;

export interface LoadTally {
  sent: number;
  /** Answered in time, the right answer. */
  right: number;
  /** Answered in time, something else (SERVFAIL, REFUSED, NXDOMAIN for a name that exists...). */
  wrong: number;
  /** No answer within LOST_AFTER_MS (over UDP, or over TCP after a truncated UDP answer). */
  lost: number;
  /** Answered truncated over UDP and asked again over TCP, as a stub resolver does. */
  retriedOverTcp: number;
}

export interface LoadReport extends LoadTally {
  qps: number;
  seconds: number;
  /** The tally of the queries sent in each phase (from one mark() to the next, `fromMs` into the load). */
  phases: ({ phase: string; fromMs: number } & LoadTally)[];
  /** A few wrong answers, described. */
  wrongSamples: string[];
  /** A few lost queries: when they were sent (ms into the load) and whether a truncated UDP answer came first. */
  lostSamples: string[];
}

export interface PacedLoad {
  /** Starts a new phase: queries sent from now on are tallied under `phase`. */
  mark(phase: string): void;
  /** The tally so far. */
  tally(): LoadTally;
  /** Stops sending, waits for the answers still due (at most LOST_AFTER_MS) and reports. */
  finish(): Promise<LoadReport>;
}

interface Pending {
  question: Question;
  packet: Buffer;
  sentAt: number;
  phase: LoadTally;
  truncated: boolean;
}

const emptyTally = (): LoadTally => ({ sent: 0, right: 0, wrong: 0, lost: 0, retriedOverTcp: 0 });

function describeReply(question: Question, reply: Buffer): string {
  try {
    const decoded = dnsPacket.decode(reply);
    const answers = (decoded.answers ?? []).map((record) => `${record.type} ${JSON.stringify((record as { data: unknown }).data)}`);
    return `${question.name} type ${question.type ?? QTYPE.A}: rcode ${rcodeOf(reply)}${reply[2]! & 0x02 ? ' TC' : ''} [${answers.join(', ')}]`;
  } catch {
    return `${question.name}: ${reply.length} undecodable bytes`;
  }
}

/**
 * Sends `question(0)`, `question(1)`... to 127.0.0.1:`port` at `qps` per
 * second, paced in 5 ms steps, from `sockets` UDP sockets in turn (source
 * ports the kernel spreads over the instances sharing a port, as it does
 * pods' queries), for at most `maxSeconds` (the bound; finish() usually ends
 * it sooner). Answers are matched by socket and ID and checked; a truncated
 * answer is asked again over TCP within the same deadline. The first phase
 * is `phase`; mark() starts the next.
 */
export async function pacedLoad(port: number, options: { qps: number; maxSeconds: number; question(index: number): Question; phase: string; sockets?: number }): Promise<PacedLoad> {
  const total = Math.floor(options.qps * options.maxSeconds);
  const sockets = await Promise.all(Array.from({ length: options.sockets ?? 64 }, () => new Promise<dgram.Socket>((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.on('error', () => {});
    socket.bind(0, '127.0.0.1', () => resolve(socket));
  })));
  const pending = sockets.map(() => new Map<number, Pending>());
  const nextId = sockets.map(() => Math.floor(Math.random() * 65536));
  const overall = emptyTally();
  const phases: ({ phase: string; fromMs: number } & LoadTally)[] = [{ phase: options.phase, fromMs: 0, ...emptyTally() }];
  const wrongSamples: string[] = [];
  const lostSamples: string[] = [];
  let overTcp = 0;
  const settle = (entry: Pending, reply: Buffer | null) => {
    const outcome = reply === null ? 'lost' : entry.question.expect(reply) ? 'right' : 'wrong';
    overall[outcome]++;
    entry.phase[outcome]++;
    if (outcome === 'wrong' && wrongSamples.length < 5) wrongSamples.push(describeReply(entry.question, reply!));
    if (outcome === 'lost' && lostSamples.length < 5) {
      lostSamples.push(`${entry.question.name} sent at ${(entry.sentAt - started).toFixed(0)} ms: ${entry.truncated ? 'truncated over UDP, no answer over TCP' : 'no answer over UDP'}`);
    }
  };
  sockets.forEach((socket, index) => {
    socket.on('message', (reply: Buffer) => {
      if (reply.length < 12) return;
      const entry = pending[index]!.get(reply.readUInt16BE(0));
      if (!entry) return;
      pending[index]!.delete(reply.readUInt16BE(0));
      if ((reply[2]! & 0x02) === 0) return settle(entry, reply);
      entry.truncated = true;
      // TC: the stub resolver's retry over TCP, within what is left of the deadline.
      overall.retriedOverTcp++;
      entry.phase.retriedOverTcp++;
      overTcp++;
      const left = entry.sentAt + LOST_AFTER_MS - performance.now();
      void (left > 0 ? tcpQuery(port, entry.packet, left) : Promise.resolve(null)).then((tcpReply) => {
        overTcp--;
        settle(entry, tcpReply);
      });
    });
  });
  // Queries whose time is up are lost; each socket's map is in send order.
  const sweep = () => {
    const now = performance.now();
    for (const map of pending) {
      for (const [id, entry] of map) {
        if (now - entry.sentAt < LOST_AFTER_MS) break;
        map.delete(id);
        settle(entry, null);
      }
    }
  };
  const sweeper = setInterval(sweep, 50);
  const started = performance.now();
  let sending = true;
  let turn = 0;
  let sendTimer: NodeJS.Timeout | undefined;
  const send = () => {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * options.qps));
    const phase = phases.at(-1)!;
    for (; overall.sent < due; overall.sent++) {
      const index = turn++ % sockets.length;
      let id = nextId[index]!;
      while (pending[index]!.has(id)) id = (id + 1) & 0xffff;
      nextId[index] = (id + 1) & 0xffff;
      const question = options.question(overall.sent);
      const packet = encodeQuery(question.name, id, question.type ?? QTYPE.A);
      pending[index]!.set(id, { question, packet, sentAt: performance.now(), phase, truncated: false });
      phase.sent++;
      sockets[index]!.send(packet, port, '127.0.0.1');
    }
    if (sending && overall.sent < total) sendTimer = setTimeout(send, 5);
  };
  send();
  return {
    mark(phase) {
      phases.push({ phase, fromMs: performance.now() - started, ...emptyTally() });
    },
    tally: () => ({ ...overall }),
    async finish() {
      sending = false;
      clearTimeout(sendTimer);
      const seconds = (performance.now() - started) / 1000;
      while (pending.some((map) => map.size > 0) || overTcp > 0) await sleep(20);
      clearInterval(sweeper);
      for (const socket of sockets) socket.close();
      return { qps: options.qps, seconds, ...overall, phases: phases.filter((phase) => phase.sent > 0), wrongSamples, lostSamples };
    },
  };
}

/** A load's outcome, one line for the whole and one per phase. */
export function formatLoad(report: LoadReport): string {
  const line = (tally: LoadTally) => `sent ${tally.sent}, lost ${tally.lost}, wrong ${tally.wrong}, retried over TCP ${tally.retriedOverTcp}`;
  return [
    `${report.qps} q/s for ${report.seconds.toFixed(1)} s: ${line(report)}`,
    ...report.phases.map((phase) => `  ${phase.phase.padEnd(24)} from ${(phase.fromMs / 1000).toFixed(1).padStart(4)} s: ${line(phase)}`),
    ...report.wrongSamples.map((sample) => `  wrong: ${sample}`),
    ...report.lostSamples.map((sample) => `  lost: ${sample}`),
  ].join('\n');
}

export function printLoad(report: LoadReport): void {
  process.stdout.write(`${formatLoad(report)}\n`);
}

/**
 * Watches the kernel's count of datagrams dropped at the UDP sockets bound
 * to `port` (receive queue full), from /proc/net/udp and udp6 every 50 ms,
 * so a socket that closes still counts; each socket is put down to the
 * process of `owners` holding it. stop() returns the drops by owner.
 */
export function watchUdpDrops(port: number, owners: () => Record<string, number | undefined>): { stop(): Record<string, number> } {
  const sockets = new Map<string, { owner: string; drops: number }>();
  const sample = () => {
    for (const entry of [...(readUdpTable('udp4') ?? []), ...(readUdpTable('udp6') ?? [])]) {
      if (entry.localPort !== port) continue;
      const socket = sockets.get(entry.inode) ?? { owner: 'unknown', drops: 0 };
      sockets.set(entry.inode, socket);
      // A process not started yet (owners() has no pid for it) is looked for again next time.
      if (socket.owner === 'unknown') {
        socket.owner = Object.entries(owners()).find(([, pid]) => pid !== undefined && socketInodes(pid).has(entry.inode))?.[0] ?? 'unknown';
      }
      socket.drops = entry.drops;
    }
  };
  sample();
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const byOwner: Record<string, number> = {};
      for (const { owner, drops } of sockets.values()) byOwner[owner] = (byOwner[owner] ?? 0) + drops;
      return byOwner;
    },
  };
}
