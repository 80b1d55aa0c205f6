// Shared pieces of the resilience scenarios (bench/resilience/*.ts): the
// server under test started as users run it (`bin/clusterdns.js -conf`) with
// the kubeadm Corefile over a synthetic cluster and a loopback upstream in
// its own process, its memory read from /proc, probes that check a normal
// answer, and the result line every scenario prints.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sendUdp } from '../../test/support/dns.ts';
import { DEFAULT_SHAPE, generateCluster, kubeadmCorefile, writeManifests, type SyntheticCluster } from '../synthetic.ts';
import { summarizeProfiles } from '../profile.ts';
import { freePort, stop, waitForHttp } from '../tools.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PROFILE_DIR = join(root, 'bench/results/resilience-profile');

export interface ScenarioServer {
  child: ChildProcess;
  pid: number;
  dnsPort: number;
  metricsPort: number;
  cluster: SyntheticCluster;
  /** A name the kubernetes plugin answers with one A record. */
  clusterName: string;
  /** Lines the server logged (stdout), kept so a scenario can look for the shedding messages. */
  log: string[];
  stop(): Promise<void>;
}

/**
 * Starts the loopback upstream (bench/resilience/upstream.ts, its own process
 * so the load generator cannot starve it) and clusterdns with the kubeadm
 * Corefile forwarding to it. `env` goes to the server (CLUSTERDNS_MAX_IN_FLIGHT...).
 */
export async function startScenarioServer(env: NodeJS.ProcessEnv = {}): Promise<ScenarioServer> {
  const work = mkdtempSync(join(tmpdir(), 'clusterdns-resilience-'));
  const cluster = generateCluster(DEFAULT_SHAPE);
  writeManifests(cluster, join(work, 'cluster'));
  const [dnsPort, upstreamPort, healthPort, readyPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const upstream = spawn(process.execPath, [join(root, 'bench/resilience/upstream.ts'), String(upstreamPort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    upstream.stdout!.once('data', () => resolve());
    upstream.once('exit', (code) => reject(new Error(`upstream exited with ${code}`)));
  });
  const corefile = kubeadmCorefile({ dns: dnsPort, health: healthPort, ready: readyPort, metrics: metricsPort }, join(work, 'cluster'),
    `. 127.0.0.1:${upstreamPort}`);
  writeFileSync(join(work, 'Corefile'), corefile);
  const child = spawn(process.execPath, [...serverCommand(), '-conf', join(work, 'Corefile')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const log: string[] = [];
  let partial = '';
  // Read stdout all the time: a pipe nobody reads would block the server's log writes.
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    // Only the server's own lines matter here; the errors plugin's per-query lines would fill memory.
    for (const line of lines) if (!line.includes('plugin/errors')) log.push(line);
  });
  child.on('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`clusterdns exited during the scenario: code ${code}, signal ${signal}\n`);
  });
  let stopping = false;
  await waitForHttp(`http://127.0.0.1:${readyPort}/ready`);
  const service = cluster.services.find((candidate) => !candidate.headless)!;
  return {
    child,
    pid: child.pid!,
    dnsPort,
    metricsPort,
    cluster,
    clusterName: `${service.name}.${service.namespace}.svc.cluster.local`,
    log,
    async stop() {
      stopping = true;
      await stop(child);
      upstream.kill('SIGKILL');
      if (process.argv.includes('--profile')) process.stdout.write(`server CPU profile (${PROFILE_DIR}):\n${summarizeProfiles(PROFILE_DIR)}\n`);
    },
  };
}

/**
 * How the server is started: the repository's command (`bin/clusterdns.js`,
 * which runs the TypeScript sources through Node's type stripping), or with
 * `--dist` the JavaScript that `npm run build` compiles into dist/ and the
 * package and the image run. Type stripping's compiler alone holds ~40 MiB
 * of RSS, so the two differ by that much at every load.
 */
export function serverCommand(): string[] {
  // --profile: the server writes a CPU profile at exit, summarised by stop().
  const profile = process.argv.includes('--profile') ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  if (!process.argv.includes('--dist')) return [...profile, join(root, 'bin/clusterdns.js')];
  const main = join(root, 'dist/src/main.js');
  if (!existsSync(main)) throw new Error('--dist: run `npm run build` first');
  return [...profile, '--input-type=module', '-e', `const { main } = await import(${JSON.stringify(pathToFileURL(main).href)}); process.exit(await main(process.argv.slice(1)));`, '--'];
}

/** VmRSS and VmHWM (the kernel's own peak) in MiB. */
export function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
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
export async function settledRss(server: ScenarioServer): Promise<number> {
  await sleep(10_000);
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

/** `--name value` from the command line, or the fallback. */
export function option(name: string, fallback: number): number {
  const args = process.argv.slice(2);
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
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
