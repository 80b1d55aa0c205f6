// What pods see while the kubernetes plugin loses the API server (issue 14):
// clusterdns with the kubeadm Corefile reads the test API server
// (test/support/apiserver.ts, real list and watch over HTTP) holding a
// synthetic cluster, under a paced load of questions about it (each question
// once per pass over the cluster, so `cache 30` answers few from memory);
// every answer is checked against the cluster.
//
// - outage: the API server stops for --outage-ms, then comes back; Services
//   created as it returns must be answered soon after. A Service asked about
//   before it is known would have its NXDOMAIN cached for 30 s, so each poll
//   asks about another of many created at once: the time is until the first
//   of them is answered.
// - re-list: the API server cuts every watch with 410 Gone (expired history),
//   so the plugin lists everything again while the load goes on; lists answer
//   after --list-delay-ms, as a large cluster's would.
//
//   npx node bench/resilience/api-server.ts [--qps 1000] [--outage-ms 20000] [--relists 3]

import { TestApiServer, waitFor } from '../../test/support/apiserver.ts';
import { clusterObjects, generateCluster, type ClusterShape } from '../synthetic.ts';
import { clusterQuestions, encodeQuery, expect, metricValue, option, pacedLoad, printLoad, sleep, startScenarioServer, udpQuery, type LoadReport, type Question, type ScenarioServer } from './common.ts';

/** 5,000 Services: a pass over their questions (~25,000) takes longer than the cache's 30 s at 1,000 q/s minus the outage. */
export const API_SHAPE: ClusterShape = { namespaces: 20, services: 5000, headlessShare: 0.1, endpointsPerService: 2.6, seed: 42 };

/** The plugin's watches: services, endpointslices, namespaces. */
const WATCHES = 3;

export interface ApiSetup {
  api: TestApiServer;
  server: ScenarioServer;
  questions: Question[];
  stop(): Promise<void>;
}

export async function startApiSetup(shape: ClusterShape = API_SHAPE): Promise<ApiSetup> {
  const api = await TestApiServer.start();
  const cluster = generateCluster(shape);
  for (const object of clusterObjects(cluster)) api.add(object as never);
  try {
    const server = await startScenarioServer({ apiServer: api.url, cluster });
    await api.waitForWatches(WATCHES);
    return {
      api,
      server,
      questions: clusterQuestions(cluster),
      async stop() {
        await server.stop();
        await api.stop();
      },
    };
  } catch (error) {
    await api.stop();
    throw error;
  }
}

/** The cache's counters (a counter not yet incremented has no series: 0). */
const cacheCounts = async (server: ScenarioServer) => ({
  hits: (await metricValue(server, 'coredns_cache_hits_total')) || 0,
  misses: (await metricValue(server, 'coredns_cache_misses_total')) || 0,
});

function sweep(setup: ApiSetup): (index: number) => Question {
  return (index) => setup.questions[index % setup.questions.length]!;
}

export interface OutageOptions {
  qps: number;
  outageMs: number;
  /** Load before the API server stops, and after it is back and the new Service answered. */
  marginMs: number;
}

export interface OutageResult {
  load: LoadReport;
  outageMs: number;
  /** Share of the questions asked during the outage that cache 30 answered (the rest reached the plugin). */
  outageCacheHitShare: number;
  /** From the API server's return (and the Services' creation) to the first of them answered; NaN if none within 20 s. */
  newServiceMs: number;
}

/** Services created as the API server returns: each poll asks about one never asked before. */
const NEW_SERVICES = 400;

async function timeToNewService(setup: ApiSetup, since: number): Promise<number> {
  for (let k = 0; k < NEW_SERVICES; k++) {
    const clusterIP = `10.97.${k >> 8}.${k & 255}`;
    const reply = await udpQuery(setup.server.dnsPort, encodeQuery(`new-${k}.ns-0.svc.cluster.local`, k), 1000);
    if (reply && expect.addresses([clusterIP])(reply)) return performance.now() - since;
    await sleep(k < 200 ? 10 : 100);
  }
  return NaN;
}

export async function outageScenario(setup: ApiSetup, options: OutageOptions): Promise<OutageResult> {
  const { api, server } = setup;
  const maxSeconds = (options.outageMs + 2 * options.marginMs) / 1000 + 30;
  const load = await pacedLoad(server.dnsPort, { qps: options.qps, maxSeconds, question: sweep(setup), phase: 'API server up' });
  await sleep(options.marginMs);
  load.mark('API server down');
  const before = await cacheCounts(server);
  await api.stop();
  await sleep(options.outageMs);
  const during = await cacheCounts(server);
  await api.restart();
  const back = performance.now();
  for (let k = 0; k < NEW_SERVICES; k++) {
    const clusterIP = `10.97.${k >> 8}.${k & 255}`;
    api.add({ kind: 'Service', metadata: { name: `new-${k}`, namespace: 'ns-0' }, spec: { clusterIP, clusterIPs: [clusterIP], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } });
  }
  load.mark('API server back');
  const newServiceMs = await timeToNewService(setup, back);
  await sleep(options.marginMs);
  const hits = during.hits - before.hits;
  return { load: await load.finish(), outageMs: options.outageMs, outageCacheHitShare: hits / (hits + during.misses - before.misses), newServiceMs };
}

export interface RelistOptions {
  qps: number;
  relists: number;
  /** Every list answers this late while the scenario runs. */
  listDelayMs: number;
  /** Load before the first 410 and after each re-list. */
  gapMs: number;
}

export interface RelistResult {
  load: LoadReport;
  relists: number;
  /** 410s after which the plugin listed every resource again. */
  relistsDone: number;
  /** The longest time from the 410 until the watches were open again. */
  slowestRelistMs: number;
}

export async function relistScenario(setup: ApiSetup, options: RelistOptions): Promise<RelistResult> {
  const { api, server } = setup;
  const maxSeconds = ((options.relists + 1) * options.gapMs) / 1000 + options.relists * 10;
  const load = await pacedLoad(server.dnsPort, { qps: options.qps, maxSeconds, question: sweep(setup), phase: 'watching' });
  api.delayLists(options.listDelayMs);
  await sleep(options.gapMs);
  let relistsDone = 0;
  let slowestRelistMs = 0;
  try {
    for (let i = 1; i <= options.relists; i++) {
      const lists = api.requestsFor('list').length;
      load.mark(`410 ${i}`);
      const expired = performance.now();
      api.expireHistory();
      const done = await waitFor(() => api.requestsFor('list').length >= lists + WATCHES, 're-list', 10_000).then(() => api.waitForWatches(WATCHES, undefined, 10_000)).then(() => true, () => false);
      if (done) relistsDone++;
      slowestRelistMs = Math.max(slowestRelistMs, performance.now() - expired);
      await sleep(options.gapMs);
    }
  } finally {
    api.delayLists(0);
  }
  return { load: await load.finish(), relists: options.relists, relistsDone, slowestRelistMs };
}

if (import.meta.main) {
  const qps = option('qps', 1000);
  const setup = await startApiSetup();
  try {
    const outage = await outageScenario(setup, { qps, outageMs: option('outage-ms', 20_000), marginMs: 3000 });
    process.stdout.write(`API server down ${outage.outageMs} ms (cache hits during it: ${(outage.outageCacheHitShare * 100).toFixed(0)} %); ` +
      `a Service created at its return answered after ${outage.newServiceMs.toFixed(0)} ms\n`);
    printLoad(outage.load);
    const relist = await relistScenario(setup, { qps, relists: option('relists', 3), listDelayMs: 300, gapMs: 2000 });
    process.stdout.write(`410 re-lists: ${relist.relistsDone} of ${relist.relists} done, slowest ${relist.slowestRelistMs.toFixed(0)} ms to watches open again\n`);
    printLoad(relist.load);
  } finally {
    await setup.stop();
  }
}
