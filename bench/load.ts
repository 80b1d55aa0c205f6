// Load benchmark: clusterdns serving a synthetic cluster with the kubeadm
// Corefile, against a bare dgram ceiling measured in the same run, rounds
// interleaved. The server is pinned to CPU 0 and dnsperf to CPU 1.
//
//   npm run bench:load [-- --rounds 3 --seconds 10]
//
// Writes bench/results/load.md and prints it.

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_SHAPE, generateCluster, generateQueries, writeManifests } from './synthetic.ts';
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

requireCommand('dnsperf', 'dnsperf');
requireCommand('taskset', 'util-linux');

const work = mkdtempSync(join(tmpdir(), 'clusterdns-bench-'));
const cluster = generateCluster(DEFAULT_SHAPE);
writeManifests(cluster, join(work, 'cluster'));
const queries = join(work, 'queries.txt');
writeFileSync(queries, generateQueries(cluster, 100_000, 7).join('\n') + '\n');
const endpointCount = cluster.services.reduce((sum, service) => sum + service.endpoints.length, 0);

const [dnsPort, ceilingPort, healthPort, readyPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
// The kubeadm default (STOCK-1), with the manifests source and loopback ports.
const corefile = `.:${dnsPort} {
    errors
    health 127.0.0.1:${healthPort} {
       lameduck 5s
    }
    ready 127.0.0.1:${readyPort}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       manifests ${join(work, 'cluster')}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus 127.0.0.1:${metricsPort}
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`;
writeFileSync(join(work, 'Corefile'), corefile);

interface Throughput {
  qps: number;
  lost: number;
  sent: number;
}

async function dnsperf(port: number, extra: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('taskset', ['-c', '1', 'dnsperf', '-s', '127.0.0.1', '-p', String(port), '-d', queries, ...extra], {
    maxBuffer: 1 << 30,
  });
  return stdout;
}

async function throughput(port: number): Promise<Throughput> {
  const output = await dnsperf(port, ['-l', String(SECONDS), '-c', '8', '-q', '256', '-t', '2']);
  const number = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? NaN);
  return { qps: number(/Queries per second:\s+([\d.]+)/), lost: number(/Queries lost:\s+(\d+)/), sent: number(/Queries sent:\s+(\d+)/) };
}

async function latencies(port: number): Promise<{ p50: number; p99: number; p999: number; lost: number }> {
  const output = await dnsperf(port, ['-l', String(SECONDS), '-Q', String(LATENCY_QPS), '-c', '8', '-v', '-t', '2']);
  const samples = [...output.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((match) => Number(match[1])).sort((a, b) => a - b);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(output)?.[1] ?? NaN);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), p999: percentile(samples, 0.999), lost };
}

const ceiling = await startPinned(0, [join(root, 'bench/ceiling.ts'), String(ceilingPort)], /listening/);
const server = await startPinned(0, [join(root, 'bin/clusterdns.js'), '-conf', join(work, 'Corefile')], /clusterdns-\d/);
const results = { ceiling: [] as Throughput[], clusterdns: [] as Throughput[], cpu: [] as number[] };
try {
  await waitForHttp(`http://127.0.0.1:${readyPort}/ready`);
  await throughput(dnsPort); // warm-up: JIT, caches
  for (let round = 0; round < ROUNDS; round++) {
    results.ceiling.push(await throughput(ceilingPort));
    const before = cpuSeconds(server.pid!);
    results.clusterdns.push(await throughput(dnsPort));
    results.cpu.push(cpuSeconds(server.pid!) - before);
    process.stderr.write(`round ${round + 1}/${ROUNDS}: ceiling ${results.ceiling.at(-1)!.qps.toFixed(0)} qps, clusterdns ${results.clusterdns.at(-1)!.qps.toFixed(0)} qps\n`);
  }
  const ceilingLatency = await latencies(ceilingPort);
  const serverLatency = await latencies(dnsPort);

  const ceilingQps = median(results.ceiling.map((result) => result.qps));
  const serverQps = median(results.clusterdns.map((result) => result.qps));
  const ms = (seconds: number) => (seconds * 1000).toFixed(3);
  const table = `# Load benchmark

Machine: ${machine()}
Command: \`npm run bench:load -- --rounds ${ROUNDS} --seconds ${SECONDS}\`
Cluster: ${cluster.namespaces.length} namespaces, ${cluster.services.length} Services (${cluster.services.filter((s) => s.headless).length} headless), ${endpointCount} endpoints; query mix: 38% A ClusterIP, 10% AAAA (NODATA), 10% A headless, 7% SRV, 5% PTR, 30% search-path NXDOMAIN, Zipf popularity.
Server pinned to CPU 0, dnsperf (8 clients, 256 outstanding) to CPU 1; ${ROUNDS} rounds of ${SECONDS} s, interleaved.

| server | median qps | ratio to ceiling | lost queries | server CPU-s per round | p50 ms @${LATENCY_QPS / 1000}k qps | p99 ms | p99.9 ms |
|---|---|---|---|---|---|---|---|
| ceiling (bench/ceiling.ts) | ${ceilingQps.toFixed(0)} | 1.00 | ${results.ceiling.reduce((sum, result) => sum + result.lost, 0)} | – | ${ms(ceilingLatency.p50)} | ${ms(ceilingLatency.p99)} | ${ms(ceilingLatency.p999)} |
| clusterdns (kubeadm Corefile) | ${serverQps.toFixed(0)} | ${(serverQps / ceilingQps).toFixed(2)} | ${results.clusterdns.reduce((sum, result) => sum + result.lost, 0)} | ${median(results.cpu).toFixed(2)} | ${ms(serverLatency.p50)} | ${ms(serverLatency.p99)} | ${ms(serverLatency.p999)} |
`;
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/load.md'), table);
  process.stdout.write(table);
} finally {
  await stop(server);
  await stop(ceiling);
}
