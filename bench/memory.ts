// Memory and sync benchmark: clusterdns syncing clusters of growing size from
// the test API server (a real list/watch HTTP server, test/support/apiserver.ts).
// For each size: time from start to /ready, RSS and V8 heap once synced, bytes
// per Service+endpoint beyond the empty cluster, and the RSS peak during a
// forced re-list (410 Gone on every watch). Then the cost of `pods verified`
// (what autopath needs): one Pod per endpoint, full-size Pod objects as the
// API server sends them, synced with and without `pods verified`; the
// difference per Pod is what the Pod index keeps (IP → namespace and name).
//
//   npm run bench:memory [-- --sizes 1000,10000,50000] [--pods-services 10000]
//
// Writes bench/results/memory.md and prints it.

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestApiServer } from '../test/support/apiserver.ts';
import { clusterObjects, generateCluster, type SyntheticCluster } from './synthetic.ts';
import { freePort, machine, rssBytes, stop, waitForHttp } from './tools.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const sizesArg = args[args.indexOf('--sizes') + 1];
const SIZES = args.includes('--sizes') && sizesArg ? sizesArg.split(',').map(Number) : [1_000, 10_000, 50_000];
const podsArg = args[args.indexOf('--pods-services') + 1];
const PODS_SERVICES = args.includes('--pods-services') && podsArg ? Number(podsArg) : 10_000;

function load(api: TestApiServer, cluster: SyntheticCluster): void {
  for (const object of clusterObjects(cluster)) api.add(object);
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const match = new RegExp(`^${name} ([\\d.e+]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : NaN;
}

interface Measurement {
  services: number;
  endpoints: number;
  readySeconds: number;
  rss: number;
  heap: number;
  relistPeak: number;
}

/** A running Pod as the API server sends it (what a `pods verified` watch receives for each endpoint). */
function podObject(namespace: string, name: string, ip: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      labels: { app: name.replace(/-\d+$/, ''), 'pod-template-hash': '5d4f8c7b9' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-5d4f8c7b9`, uid: '0b7e6c1a-3f1d-4e8a-9c55-2f7d0e4b1a11', controller: true }],
    },
    spec: {
      containers: [{ name: 'app', image: 'registry.example/app:1.2.3', ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }], resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
      nodeName: 'node-1',
      serviceAccountName: 'default',
    },
    status: {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      hostIP: '192.0.2.1',
      conditions: [{ type: 'Ready', status: 'True' }, { type: 'ContainersReady', status: 'True' }, { type: 'PodScheduled', status: 'True' }],
      containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: 'registry.example/app:1.2.3', started: true }],
    },
  };
}

async function measure(services: number, options: { pods?: boolean; podsVerified?: boolean } = {}): Promise<Measurement> {
  const cluster = generateCluster({ namespaces: 20, services, headlessShare: 0.1, endpointsPerService: 2.6, seed: 42 });
  const endpoints = cluster.services.reduce((sum, service) => sum + service.endpoints.length, 0);
  const api = await TestApiServer.start();
  load(api, cluster);
  if (options.pods) {
    for (const service of cluster.services) {
      service.endpoints.forEach((ip, i) => api.add(podObject(service.namespace, `${service.name}-${i}`, ip) as never));
    }
  }
  const [dns, ready, metrics] = [await freePort(), await freePort(), await freePort()];
  const pods = options.podsVerified ? '  pods verified\n' : '';
  const corefile = `.:${dns} {\n ready 127.0.0.1:${ready}\n prometheus 127.0.0.1:${metrics}\n kubernetes cluster.local {\n  endpoint ${api.url}\n${pods}  startup_timeout 120s\n }\n}\n`;
  const started = performance.now();
  const child = spawn(process.execPath, [join(root, 'bin/clusterdns.js'), '-conf', 'stdin', '-quiet'], { stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(corefile);
  try {
    await waitForHttp(`http://127.0.0.1:${ready}/ready`, 300_000);
    const readySeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 3000)); // let allocation settle
    const rss = rssBytes(child.pid!);
    const heap = await metric(metrics, 'nodejs_heap_size_used_bytes');
    // A forced re-list: every watch ends with 410 Gone, as after an API server restart.
    let relistPeak = rss;
    const sampler = setInterval(() => (relistPeak = Math.max(relistPeak, rssBytes(child.pid!))), 20);
    api.expireHistory();
    await new Promise((resolve) => setTimeout(resolve, Math.max(3000, readySeconds * 3000)));
    clearInterval(sampler);
    return { services, endpoints, readySeconds, rss, heap, relistPeak };
  } finally {
    await stop(child);
    await api.stop();
  }
}

const results: Measurement[] = [];
for (const size of [0, ...SIZES]) {
  results.push(await measure(size));
  const last = results.at(-1)!;
  process.stderr.write(`${size} services: ready in ${last.readySeconds.toFixed(2)} s, RSS ${(last.rss / 2 ** 20).toFixed(1)} MiB\n`);
}
const [empty] = results;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const rows = results.map((result) => {
  const objects = result.services + result.endpoints;
  const perObject = objects ? `${((result.rss - empty!.rss) / objects).toFixed(0)} B` : '–';
  const heapPer = objects ? `${((result.heap - empty!.heap) / objects).toFixed(0)} B` : '–';
  const relist = `${mib(result.relistPeak)} (+${(((result.relistPeak - result.rss) / result.rss) * 100).toFixed(0)}%)`;
  return `| ${result.services} | ${result.endpoints} | ${result.readySeconds.toFixed(2)} | ${mib(result.rss)} | ${mib(result.heap)} | ${perObject} | ${heapPer} | ${relist} |`;
});
// `pods verified`: the same cluster with one Pod per endpoint, watched or not.
const withoutPods = await measure(PODS_SERVICES, { pods: true });
const withPods = await measure(PODS_SERVICES, { pods: true, podsVerified: true });
const podCount = withPods.endpoints;
const podRow = `| ${PODS_SERVICES} | ${podCount} | ${mib(withoutPods.rss)} → ${mib(withPods.rss)} | ${mib(withoutPods.heap)} → ${mib(withPods.heap)} | ${((withPods.rss - withoutPods.rss) / podCount).toFixed(0)} B | ${((withPods.heap - withoutPods.heap) / podCount).toFixed(0)} B | ${withoutPods.readySeconds.toFixed(2)} → ${withPods.readySeconds.toFixed(2)} |`;
process.stderr.write(`pods verified: ${podRow}\n`);

const table = `# Memory and sync benchmark

Machine: ${machine()}
Command: \`npm run bench:memory -- --sizes ${SIZES.join(',')}\`
Each row: a synthetic cluster (20 namespaces, 10% headless Services, 1–4 endpoints per Service) served by the test API server;
clusterdns with \`kubernetes cluster.local { endpoint ... }\`, measured after /ready answered 200 and 3 s of settling.

| Services | endpoints | start to ready (s) | RSS (MiB) | V8 heap used (MiB) | RSS per Service+endpoint over empty | heap per Service+endpoint | RSS peak during re-list (MiB) |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

\`pods verified\` (what \`autopath @kubernetes\` needs): the cluster above at ${PODS_SERVICES} Services with one running Pod per
endpoint (full Pod objects: labels, owner, one container, status), synced without and then with \`pods verified\`:

| Services | Pods | RSS (MiB) | V8 heap used (MiB) | RSS per Pod | heap per Pod | start to ready (s) |
|---|---|---|---|---|---|---|
${podRow}
`;
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/memory.md'), table);
process.stdout.write(table);
