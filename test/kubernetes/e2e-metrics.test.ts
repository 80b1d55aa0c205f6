// End to end: the kubernetes plugin's metrics as Prometheus scrapes them from
// the prometheus plugin's /metrics (KP-41, KP-42, PROM-9, PROM-10).

import { afterEach, describe, expect, test } from 'vitest';
import { registry } from '../../src/metrics.ts';
import {
  answersWithin,
  cleanup,
  clusterIPService,
  endpointSlice,
  freePort,
  headlessService,
  httpGet,
  is,
  namespace,
  plainCorefile,
  sample,
  sleep,
  startApi,
  startDns,
} from './e2e.harness.ts';

afterEach(cleanup);

const PROGRAMMING = 'coredns_kubernetes_dns_programming_duration_seconds';
const REQUESTS = 'coredns_kubernetes_rest_client_requests_total';
const DURATION = 'coredns_kubernetes_rest_client_request_duration_seconds';

async function scrape(port: number): Promise<string> {
  const { status, body } = await httpGet(port, '/metrics');
  expect(status).toBe(200);
  return body;
}

describe('KP-41: coredns_kubernetes_dns_programming_duration_seconds', () => {
  test('KP-41: slice changes from the watch are observed by service_kind (now − last-change-trigger-time); not the initial list, not slices without a known Service or trigger time', async () => {
    const api = await startApi();
    api.add(namespace('demo'));
    api.add(clusterIPService('demo', 'web', '10.96.30.1'));
    api.add(headlessService('demo', 'db'));
    const minuteAgo = new Date(Date.now() - 60_000);
    api.add(endpointSlice('demo', 'web-1', 'web', [{ ip: '10.244.4.1' }], { ports: [{ name: 'http', port: 8080 }], triggerTime: minuteAgo }));
    api.add(endpointSlice('demo', 'db-1', 'db', [{ ip: '10.244.4.2', hostname: 'db-0' }], { triggerTime: minuteAgo }));

    // Same registry the endpoint serves: the counts before this server existed.
    const count = (text: string, kind: string) => sample(text, `${PROGRAMMING}_count`, { service_kind: kind }) ?? 0;
    const bucket = (text: string, kind: string, le: string) => sample(text, `${PROGRAMMING}_bucket`, { le, service_kind: kind }) ?? 0;
    const sum = (text: string, kind: string) => sample(text, `${PROGRAMMING}_sum`, { service_kind: kind }) ?? 0;
    const before = await registry.metrics();

    const metricsPort = await freePort();
    const { port } = await startDns(plainCorefile(api, { metricsPort }));
    await api.waitForWatches(3);
    const synced = await scrape(metricsPort);
    // The initial list carried trigger times a minute old: not observed.
    expect(count(synced, 'cluster_ip')).toBe(count(before, 'cluster_ip'));
    expect(count(synced, 'headless_with_selector')).toBe(count(before, 'headless_with_selector'));

    // Not observed: a slice whose Service is unknown, and a slice without the annotation.
    api.add(endpointSlice('demo', 'orphan-1', 'orphan', [{ ip: '10.244.4.9' }], { triggerTime: new Date(Date.now() - 1000) }));
    api.update(endpointSlice('demo', 'web-1', 'web', [{ ip: '10.244.4.1' }, { ip: '10.244.4.3' }], { ports: [{ name: 'http', port: 8080 }] }));
    // Observed: a ClusterIP Service's slice changed 1.5 s ago, a headless one's 0.3 s ago.
    api.update(endpointSlice('demo', 'web-1', 'web', [{ ip: '10.244.4.3' }], { ports: [{ name: 'http', port: 8080 }], triggerTime: new Date(Date.now() - 1500) }));
    api.update(endpointSlice('demo', 'db-1', 'db', [{ ip: '10.244.4.2', hostname: 'db-0' }, { ip: '10.244.4.4', hostname: 'db-1' }], { triggerTime: new Date(Date.now() - 300) }));
    // Slice events come in order on one watch: once the last is answered, all were applied.
    await answersWithin(port, 'db.demo.svc.cluster.local', 'A', is.answer('10.244.4.2', '10.244.4.4'), 1000);

    const after = await scrape(metricsPort);
    expect(count(after, 'cluster_ip') - count(synced, 'cluster_ip')).toBe(1);
    expect(count(after, 'headless_with_selector') - count(synced, 'headless_with_selector')).toBe(1);
    // 1.5 s plus the propagation time: in the (1.024, 2.048] bucket; 0.3 s: in (0.256, 0.512].
    expect(bucket(after, 'cluster_ip', '1.024') - bucket(synced, 'cluster_ip', '1.024')).toBe(0);
    expect(bucket(after, 'cluster_ip', '2.048') - bucket(synced, 'cluster_ip', '2.048')).toBe(1);
    expect(bucket(after, 'headless_with_selector', '0.256') - bucket(synced, 'headless_with_selector', '0.256')).toBe(0);
    expect(bucket(after, 'headless_with_selector', '0.512') - bucket(synced, 'headless_with_selector', '0.512')).toBe(1);
    const observed = sum(after, 'cluster_ip') - sum(synced, 'cluster_ip');
    expect(observed).toBeGreaterThanOrEqual(1.5);
    expect(observed).toBeLessThan(2.048);

    // CoreDNS's name, help, type and buckets: exponential from 1 ms, factor 2, 20 buckets.
    expect(after).toContain(`# HELP ${PROGRAMMING} Histogram of the time (in seconds) it took to program a dns instance.`);
    expect(after).toContain(`# TYPE ${PROGRAMMING} histogram`);
    const les = [...after.matchAll(new RegExp(`^${PROGRAMMING}_bucket\\{le="([^"]+)",service_kind="cluster_ip"\\}`, 'gm'))].map((m) => m[1]);
    expect(les).toEqual([...Array.from({ length: 20 }, (_, i) => String(0.001 * 2 ** i)), '+Inf']);
    expect(les[19]).toBe('524.288');
    expect(after).not.toContain('headless_without_selector');
  });
});

describe('KP-42: coredns_kubernetes_rest_client_*', () => {
  test('KP-42: requests_total{code,method,host} and request_duration_seconds{verb,host} count every list and watch, refusals and unreachable server included', async () => {
    const api = await startApi();
    api.add(namespace('demo'));
    api.add(clusterIPService('demo', 'web', '10.96.30.1'));
    // The first watch of each resource is refused: counted with its status.
    api.failRequests(503, { verb: 'watch', times: 3 });
    const metricsPort = await freePort();
    await startDns(plainCorefile(api, { metricsPort }));
    await api.waitForWatches(3);
    const host = `127.0.0.1:${api.port}`;
    const requests = (text: string, code: string) => sample(text, REQUESTS, { code, method: 'GET', host }) ?? 0;
    const served = (status: number) => api.requests.filter((r) => r.status === status).length;

    // Every request the API server answered is counted, with its status: the lists and the watches.
    let text = await until(
      metricsPort,
      (t) => requests(t, '200') === served(200) && requests(t, '503') === served(503),
      'clusterdns to count the requests the API server answered',
    );
    expect(served(503)).toBe(3);
    expect(served(200)).toBeGreaterThanOrEqual(6); // 3 lists and 3 watches
    expect(api.requestsFor('list').length).toBe(3);

    // No answer at all: <error>. (After a second, the watches' end counts as a lost connection, retried at once.)
    await sleep(1100);
    await api.stop();
    await until(metricsPort, (t) => requests(t, '<error>') >= 1, 'a request without a response counted as <error>');
    await api.restart();
    await api.waitForWatches(3);
    text = await until(metricsPort, (t) => requests(t, '200') === served(200), 'requests after the restart counted');

    // One duration observation per request, labelled by verb (the HTTP method) and host, with Prometheus's default buckets.
    const total = requests(text, '200') + requests(text, '503') + requests(text, '<error>');
    expect(sample(text, `${DURATION}_count`, { verb: 'GET', host })).toBe(total);
    const les = [...text.matchAll(new RegExp(`^${DURATION}_bucket\\{le="([^"]+)",verb="GET",host="${host.replace(/\./g, '\\.')}"\\}`, 'gm'))].map((m) => m[1]);
    expect(les).toEqual(['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    expect(text).toContain(`# HELP ${REQUESTS} Number of HTTP requests, partitioned by status code, method, and host.`);
    expect(text).toContain(`# TYPE ${REQUESTS} counter`);
    expect(text).toContain(`# HELP ${DURATION} Request latency in seconds. Broken down by verb and host.`);
    expect(text).toContain(`# TYPE ${DURATION} histogram`);
  });
});

/** Scrapes until `check` holds (the client records a request once its response is in). */
async function until(metricsPort: number, check: (text: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 4000;
  for (;;) {
    const text = await scrape(metricsPort);
    if (check(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${text.split('\n').filter((l) => l.startsWith('coredns_kubernetes_rest_client_requests_total')).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
