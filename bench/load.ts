// Load benchmark: clusterdns serving a synthetic cluster with the kubeadm
// Corefile, against a bare dgram ceiling measured in the same run, rounds
// interleaved. The server is pinned to CPU 0 and dnsperf to CPU 1.
//
//   npm run bench:load [-- --rounds 3 --seconds 10]
//
// Writes bench/results/load.md and prints it. With --profile the server runs
// under `node --cpu-prof` and no latency is measured (the profiler slows it):
// its busy time by function goes to bench/results/profile.md as well.

import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { summarizeProfiles } from './profile.ts';
import { DEFAULT_SHAPE, generateCluster, generateQueries, kubeadmCorefile, writeManifests } from './synthetic.ts';
import { cpuSeconds, freePort, machine, median, percentile, requireCommand, startPinned, stop, waitForHttp } from './tools.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const ROUNDS = option('rounds', 3);
const SECONDS = option('seconds', 10);
const LATENCY_QPS = option('latency-qps', 10_000);
// --profile: the server runs under node --cpu-prof (see the top of this file).
const PROFILE = args.includes('--profile');
// Latency tails vary from run to run far more than throughput: several runs, interleaved.
const LATENCY_RUNS = PROFILE ? 0 : option('latency-runs', 3);
// Multi-process serving (src/workers.ts): CLUSTERDNS_WORKERS for the server, and the CPUs it may use.
const WORKERS = option('workers', 1);
const SERVER_CPUS = args.includes('--server-cpus') ? args[args.indexOf('--server-cpus') + 1]! : '0';
const DNSPERF_CPUS = args.includes('--dnsperf-cpus') ? args[args.indexOf('--dnsperf-cpus') + 1]! : '1';
// dnsperf's sending and receiving threads share its CPU: pinned to one, a reply can wait for the receiver's
// turn, which shows as milliseconds of p99 even for the ceiling. --latency-dnsperf-cpus 0,1 lets them spread.
const LATENCY_DNSPERF_CPUS = args.includes('--latency-dnsperf-cpus') ? args[args.indexOf('--latency-dnsperf-cpus') + 1]! : DNSPERF_CPUS;

requireCommand('dnsperf', 'dnsperf');
requireCommand('taskset', 'util-linux');
// This driver reads dnsperf's per-query output (-v) while latency is measured: keep it off the server's core.
execFileSync('taskset', ['-a', '-pc', DNSPERF_CPUS, String(process.pid)], { stdio: 'ignore' });

const work = mkdtempSync(join(tmpdir(), 'clusterdns-bench-'));
const cluster = generateCluster(DEFAULT_SHAPE);
writeManifests(cluster, join(work, 'cluster'));
const queries = join(work, 'queries.txt');
writeFileSync(queries, generateQueries(cluster, 100_000, 7).join('\n') + '\n');
const endpointCount = cluster.services.reduce((sum, service) => sum + service.endpoints.length, 0);

const [dnsPort, ceilingPort, healthPort, readyPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
// The kubeadm default (STOCK-1), with the manifests source and loopback ports.
const corefile = kubeadmCorefile({ dns: dnsPort, health: healthPort, ready: readyPort, metrics: metricsPort }, { manifests: join(work, 'cluster') },
  '. /etc/resolv.conf {\n       max_concurrent 1000\n    }');
writeFileSync(join(work, 'Corefile'), corefile);

interface Throughput {
  qps: number;
  lost: number;
  sent: number;
  /** CPU seconds the server used during the round. */
  cpu: number;
  /** CPU seconds other processes took on CPU 0 during the round (another benchmark, a build). */
  foreign: number;
  /** CPU seconds CPU 0 spent in interrupts and softirqs (packet delivery, some of it on the server's behalf). */
  softirq: number;
}

/** CPU seconds of a process and its children (the workers of a multi-worker server). */
function treeCpuSeconds(pid: number): number {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // no children file: count the process alone
  }
  return cpuSeconds(pid) + children.reduce((sum, child) => sum + cpuSeconds(child), 0);
}

/** CPU seconds of one core so far, from /proc/stat: in processes (user, nice, system), and in interrupts (irq, softirq, steal). */
function coreSeconds(core: number): { processes: number; interrupts: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((candidate) => candidate.startsWith(`cpu${core} `))!;
  const [user, nice, system, , , irq, softirq, steal] = line.split(/\s+/).slice(1).map(Number);
  return { processes: (user! + nice! + system!) / 100, interrupts: (irq! + softirq! + steal!) / 100 };
}

async function dnsperf(port: number, extra: string[], cpus = DNSPERF_CPUS): Promise<string> {
  const { stdout } = await promisify(execFile)('taskset', ['-c', cpus, 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', queries, ...extra], {
    maxBuffer: 1 << 30,
  });
  return stdout;
}

/** One dnsperf round at full load; `pinnedToCore0`: the measured process runs only on CPU 0, so its CPU is not foreign there. */
async function throughput(port: number, pid: number, pinnedToCore0: boolean): Promise<Throughput> {
  const cpuBefore = treeCpuSeconds(pid);
  const coreBefore = coreSeconds(0);
  const output = await dnsperf(port, ['-l', String(SECONDS), '-c', '8', '-q', '256', '-t', '2']);
  const cpu = treeCpuSeconds(pid) - cpuBefore;
  const coreAfter = coreSeconds(0);
  const foreign = Math.max(0, coreAfter.processes - coreBefore.processes - (pinnedToCore0 ? cpu : 0));
  const softirq = coreAfter.interrupts - coreBefore.interrupts;
  const number = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? NaN);
  return { qps: number(/Queries per second:\s+([\d.]+)/), lost: number(/Queries lost:\s+(\d+)/), sent: number(/Queries sent:\s+(\d+)/), cpu, foreign, softirq };
}

interface Latency {
  p50: number;
  p99: number;
  p999: number;
  lost: number;
}

async function latencies(port: number): Promise<Latency> {
  const output = await dnsperf(port, ['-l', String(SECONDS), '-Q', String(LATENCY_QPS), '-c', '8', '-v', '-t', '2'], LATENCY_DNSPERF_CPUS);
  const samples = [...output.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((match) => Number(match[1])).sort((a, b) => a - b);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(output)?.[1] ?? NaN);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), p999: percentile(samples, 0.999), lost };
}

const ms = (seconds: number) => (seconds * 1000).toFixed(3);
const ceiling = await startPinned(0, [join(root, 'bench/ceiling.ts'), String(ceilingPort)], /listening/);
const profileDir = join(work, 'profile');
const profileFlags = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
const server = await startPinned(SERVER_CPUS, [...profileFlags, join(root, 'bin/clusterdns.js'), '-conf', join(work, 'Corefile')], /clusterdns-\d/,
  { CLUSTERDNS_WORKERS: String(WORKERS) });
const results = { ceiling: [] as Throughput[], clusterdns: [] as Throughput[] };
const latency = { ceiling: [] as Latency[], clusterdns: [] as Latency[] };
try {
  await waitForHttp(`http://127.0.0.1:${readyPort}/ready`);
  await throughput(dnsPort, server.pid!, SERVER_CPUS === '0'); // warm-up: JIT, caches
  for (let round = 0; round < ROUNDS; round++) {
    results.ceiling.push(await throughput(ceilingPort, ceiling.pid!, true));
    results.clusterdns.push(await throughput(dnsPort, server.pid!, SERVER_CPUS === '0'));
    const [c, s] = [results.ceiling.at(-1)!, results.clusterdns.at(-1)!];
    process.stderr.write(`round ${round + 1}/${ROUNDS}: ceiling ${c.qps.toFixed(0)} qps (${c.cpu.toFixed(2)} CPU-s, ${c.softirq.toFixed(2)} softirq, ${c.foreign.toFixed(2)} foreign), ` +
      `clusterdns ${s.qps.toFixed(0)} qps (${s.cpu.toFixed(2)} CPU-s, ${s.softirq.toFixed(2)} softirq, ${s.foreign.toFixed(2)} foreign)\n`);
  }
  for (let run = 0; run < LATENCY_RUNS; run++) {
    latency.ceiling.push(await latencies(ceilingPort));
    latency.clusterdns.push(await latencies(dnsPort));
    const [c, s] = [latency.ceiling.at(-1)!, latency.clusterdns.at(-1)!];
    const line = (l: Latency) => `p50 ${ms(l.p50)} p99 ${ms(l.p99)} p99.9 ${ms(l.p999)} ms`;
    process.stderr.write(`latency ${run + 1}/${LATENCY_RUNS}: ceiling ${line(c)}; clusterdns ${line(s)}\n`);
  }

  const row = (name: string, runs: Throughput[], lat: Latency[], ceilingQps: number, ceilingPerCpu: number) => {
    const qps = median(runs.map((result) => result.qps));
    const perCpu = median(runs.map((result) => result.qps * SECONDS / result.cpu));
    const spread = (values: number[]) => (values.length === 0 ? '–' : `${ms(median(values))} (${ms(Math.min(...values))}–${ms(Math.max(...values))})`);
    return `| ${name} | ${qps.toFixed(0)} (${Math.min(...runs.map((r) => r.qps)).toFixed(0)}–${Math.max(...runs.map((r) => r.qps)).toFixed(0)}) | ${(qps / ceilingQps).toFixed(2)} | ` +
      `${runs.reduce((sum, result) => sum + result.lost, 0)} | ${median(runs.map((result) => result.cpu)).toFixed(2)} | ` +
      `${(perCpu / 1000).toFixed(1)}k | ${(perCpu / ceilingPerCpu).toFixed(2)} | ` +
      `${spread(lat.map((l) => l.p50))} | ${spread(lat.map((l) => l.p99))} | ${spread(lat.map((l) => l.p999))} |`;
  };
  const ceilingQps = median(results.ceiling.map((result) => result.qps));
  const ceilingPerCpu = median(results.ceiling.map((result) => result.qps * SECONDS / result.cpu));
  // Rounds of a server spread over several CPUs are left out: its own CPU 0 time cannot be told apart.
  const foreign = Math.max(...[...results.ceiling, ...(SERVER_CPUS === '0' ? results.clusterdns : [])].map((result) => result.foreign));
  const table = `# Load benchmark

Machine: ${machine()}
Command: \`npm run bench:load -- --rounds ${ROUNDS} --seconds ${SECONDS}${PROFILE ? ' --profile' : ''}\`
Cluster: ${cluster.namespaces.length} namespaces, ${cluster.services.length} Services (${cluster.services.filter((s) => s.headless).length} headless), ${endpointCount} endpoints; query mix: 38% A ClusterIP, 10% AAAA (NODATA), 10% A headless, 7% SRV, 5% PTR, 30% search-path NXDOMAIN, Zipf popularity.
${PROFILE ? 'The server ran under `node --cpu-prof`, which slows it (its qps is lower than unprofiled); no latency runs.\n' : ''}Server (${WORKERS} worker${WORKERS > 1 ? 's' : ''}) pinned to CPU ${SERVER_CPUS}, the ceiling to CPU 0, dnsperf (8 clients, 256 outstanding) to CPU ${DNSPERF_CPUS}; ${ROUNDS} rounds of ${SECONDS} s, interleaved; then ${LATENCY_RUNS} latency runs each at ${LATENCY_QPS} qps (dnsperf -Q, on CPU ${LATENCY_DNSPERF_CPUS}), interleaved.
Other processes took up to ${foreign.toFixed(2)} CPU-s of CPU 0 in a round${foreign > 0.5 ? ' (the machine was not quiet: compare the per-CPU-second columns)' : ''}; interrupts and softirqs (packet delivery) took ${median(results.ceiling.map((r) => r.softirq)).toFixed(2)} (ceiling) and ${median(results.clusterdns.map((r) => r.softirq)).toFixed(2)} (clusterdns) CPU-s of it per round, median.
qps: median (min–max); latencies: median (min–max) over the runs.

| server | qps | ratio to ceiling | lost queries | CPU-s per round | qps per CPU-second | ratio per CPU-second | p50 ms @${LATENCY_QPS / 1000}k qps | p99 ms | p99.9 ms |
|---|---|---|---|---|---|---|---|---|---|
${row('ceiling (bench/ceiling.ts)', results.ceiling, latency.ceiling, ceilingQps, ceilingPerCpu)}
${row('clusterdns (kubeadm Corefile)', results.clusterdns, latency.clusterdns, ceilingQps, ceilingPerCpu)}
`;
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/load.md'), table);
  process.stdout.write(table);
} finally {
  // The profile is written as the server exits (after its lameduck time).
  await stop(server, PROFILE ? 60_000 : 8_000);
  await stop(ceiling);
}
if (PROFILE) {
  const profile = `# Where clusterdns spends its busy time under full load\n\n${machine()}; \`node --cpu-prof\`, ${ROUNDS} rounds of ${SECONDS} s at full load (see load.md), self time by function, idle left out.\n\n${summarizeProfiles(profileDir)}`;
  writeFileSync(join(root, 'bench/results/profile.md'), profile);
  process.stdout.write(`\n${profile}`);
}
