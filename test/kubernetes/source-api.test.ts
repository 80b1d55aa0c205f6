// The API source against a real HTTP API server stand-in on loopback
// (test/support/apiserver.ts): the lean client (http-client.ts) does the requests.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createApiSource, type ApiSourceTuning } from '../../plugins/kubernetes/api-source.ts';
import type { ApiConnection, ClusterSource, SourceOptions } from '../../plugins/kubernetes/model.ts';
import { ClusterIndex } from '../../plugins/kubernetes/store.ts';
import type { Logger } from '../../src/log.ts';
import {
  RecordingStore,
  TEST_CA_CERT,
  TEST_CLIENT_CERT,
  TEST_CLIENT_KEY,
  TestApiServer,
  waitFor as waitForWithin,
  type ApiServerOptions,
  type KubeObject,
} from '../support/apiserver.ts';

const FAST: Partial<ApiSourceTuning> = { backoffBaseMs: 20, backoffMaxMs: 160, jitter: 0 };

// Waits here bound how long a failure takes to show; none of them measures latency. On a loaded
// machine (the whole suite on 2 cores) a few seconds can pass between two timers, so be generous.
const PATIENCE_MS = 15_000;

function waitFor<T>(check: () => T, what: string, timeoutMs = PATIENCE_MS): Promise<NonNullable<T>> {
  return waitForWithin(check, what, timeoutMs);
}

/**
 * Every watch of the source is open: `count` is the number of resources watched (services,
 * endpointslices and namespaces by default, 4 with pods). Waiting for fewer lets a late first
 * watch race with what the test does next (a token rotation, a bookmark, an expired history).
 */
function watching(server: TestApiServer, count: number, resource?: string): Promise<void> {
  return server.waitForWatches(count, resource, PATIENCE_MS);
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-api-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startServer(options: ApiServerOptions = {}): Promise<TestApiServer> {
  const server = await TestApiServer.start(options);
  cleanups.push(() => server.stop());
  return server;
}

function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    log: {
      info: (m) => lines.push(`[INFO] ${m}`),
      warning: (m) => lines.push(`[WARNING] ${m}`),
      error: (m) => lines.push(`[ERROR] ${m}`),
      debug: (m) => lines.push(`[DEBUG] ${m}`),
      write: (level, m) => lines.push(`[${level}] ${m}`),
    },
  };
}

function sourceOptions(overrides: Partial<SourceOptions> = {}): SourceOptions {
  return { labelSelector: null, namespaceLabelSelector: null, watchPods: false, watchEndpoints: true, ...overrides };
}

function endpoint(server: TestApiServer): ApiConnection {
  return { endpoint: server.url, tls: null, kubeconfig: null };
}

interface Started {
  source: ClusterSource;
  store: RecordingStore;
  lines: string[];
}

async function startSource(
  connection: ApiConnection,
  options: Partial<SourceOptions> = {},
  tuning: Partial<ApiSourceTuning> = {},
  waitForSync = true,
): Promise<Started> {
  const { log, lines } = captureLog();
  const source = createApiSource(connection, sourceOptions(options), log, { ...FAST, ...tuning });
  const store = new RecordingStore();
  await source.start(store);
  cleanups.push(() => source.stop());
  if (waitForSync) await waitFor(() => store.syncedCount === 1, 'initial sync');
  return { source, store, lines };
}

function service(namespace: string, name: string, spec: Record<string, unknown> = { clusterIP: '10.96.0.10' }, labels?: Record<string, string>): KubeObject {
  return { kind: 'Service', metadata: { name, namespace, ...(labels ? { labels } : {}) }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }], ...spec } };
}

function slice(namespace: string, name: string, serviceName: string | null, addresses: string[], extra: Record<string, unknown> = {}): KubeObject {
  return {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    metadata: { name, namespace, labels: serviceName ? { 'kubernetes.io/service-name': serviceName } : {} },
    addressType: 'IPv4',
    endpoints: addresses.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    ...extra,
  };
}

function pod(namespace: string, name: string, ip: string | null, phase = 'Running', labels?: Record<string, string>): KubeObject {
  return {
    kind: 'Pod',
    metadata: { name, namespace, ...(labels ? { labels } : {}) },
    spec: { containers: [{ name: 'c', image: 'x' }] },
    status: { phase, ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}) },
  };
}

function namespace(name: string, labels?: Record<string, string>): KubeObject {
  return { kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } };
}

describe('API source: sync and watch (KP-22)', () => {
  test('KP-22/KP-24: lists Services, EndpointSlices and Namespaces, converts them, marks synced once', async () => {
    const server = await startServer();
    server.add(namespace('demo'));
    server.add(service('demo', 'web', { clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd00:10:96::0:20'] }));
    server.add(service('demo', 'db', { clusterIP: 'None' }));
    server.add(service('demo', 'search', { type: 'ExternalName', externalName: 'www.example.com' }));
    server.add(slice('demo', 'web-abc12', 'web', ['10.244.1.5', '10.244.1.6'], {
      metadata: {
        name: 'web-abc12',
        namespace: 'demo',
        labels: { 'kubernetes.io/service-name': 'web' },
        annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2024-01-02T03:04:05Z' },
      },
    }));
    const { store, source, lines } = await startSource(endpoint(server));

    expect(store.services.get('demo/web')).toEqual({
      namespace: 'demo',
      name: 'web',
      clusterIPs: ['10.96.0.20', 'fd00:10:96::20'],
      headless: false,
      externalName: null,
      ports: [{ name: 'http', protocol: 'tcp', port: 80 }],
    });
    expect(store.services.get('demo/db')).toMatchObject({ headless: true, clusterIPs: [] });
    expect(store.services.get('demo/search')).toMatchObject({ externalName: 'www.example.com', clusterIPs: [] });
    expect(store.slices.get('demo/web-abc12')).toEqual({
      namespace: 'demo',
      name: 'web-abc12',
      serviceName: 'web',
      addressType: 'IPv4',
      endpoints: [
        { addresses: ['10.244.1.5'], ready: true, hostname: null, podName: null, zone: null },
        { addresses: ['10.244.1.6'], ready: true, hostname: null, podName: null, zone: null },
      ],
      ports: [{ name: 'http', protocol: 'tcp', port: 8080 }],
      lastChangeTriggerTime: Date.parse('2024-01-02T03:04:05Z'),
    });
    expect([...store.namespaces.keys()]).toEqual(['demo']);
    // One replaceAll per kind (lists run concurrently), then markSynced exactly once, after all of them.
    expect(store.ops.slice(0, 3).sort()).toEqual(['replaceAll EndpointSlice 1', 'replaceAll Namespace 1', 'replaceAll Service 3']);
    expect(store.ops.slice(3)).toEqual(['markSynced']);
    expect(store.syncedCount).toBe(1);
    expect(source.state()).toBe(`connected to ${server.url}`);
    expect(lines.some((l) => l.startsWith('[INFO] synced with the API server') && l.includes('3 services'))).toBe(true);
  });

  test('KP-22/KP-33: watch events are applied; a slice losing its service-name label or turning FQDN is dropped', async () => {
    const server = await startServer();
    server.add(service('demo', 'web'));
    const { store } = await startSource(endpoint(server));
    await watching(server, 3);

    server.add(service('demo', 'api', { clusterIP: '10.96.0.30' }));
    await waitFor(() => store.services.has('demo/api'), 'added Service');
    server.update(service('demo', 'api', { clusterIP: '10.96.0.30', ports: [{ name: 'grpc', port: 9090 }] }));
    await waitFor(() => store.services.get('demo/api')?.ports[0]?.name === 'grpc', 'modified Service');
    server.delete(service('demo', 'web'));
    await waitFor(() => !store.services.has('demo/web'), 'deleted Service');

    server.add(slice('demo', 'api-1', 'api', ['10.244.0.7']));
    await waitFor(() => store.slices.has('demo/api-1'), 'added slice');
    server.update(slice('demo', 'api-1', null, ['10.244.0.7']));
    await waitFor(() => !store.slices.has('demo/api-1'), 'slice without the label removed');
    server.add(slice('demo', 'fqdn-1', 'api', [], { addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }] }));
    server.add(namespace('late'));
    await waitFor(() => store.namespaces.has('late'), 'added Namespace');
    expect(store.slices.has('demo/fqdn-1')).toBe(false);
    expect(store.ops).not.toContain('upsertEndpointSlice demo/fqdn-1');
  });

  test('KP-15/KP-16: labels go to Service, EndpointSlice and Pod list/watch; namespace_labels to Namespaces', async () => {
    const server = await startServer();
    server.add(namespace('team-a', { team: 'a' }));
    server.add(namespace('team-b', { team: 'b' }));
    server.add(service('demo', 'in', undefined, { expose: 'dns' }));
    server.add(service('demo', 'out', undefined, { expose: 'no' }));
    server.add({ ...slice('demo', 'in-1', 'in', ['10.244.0.1']), metadata: { name: 'in-1', namespace: 'demo', labels: { 'kubernetes.io/service-name': 'in', expose: 'dns' } } });
    server.add(slice('demo', 'out-1', 'out', ['10.244.0.2']));
    server.add(pod('demo', 'p-in', '10.244.0.1', 'Running', { expose: 'dns' }));
    server.add(pod('demo', 'p-out', '10.244.0.2'));
    const { store } = await startSource(endpoint(server), {
      labelSelector: 'expose in (dns)',
      namespaceLabelSelector: 'team=a',
      watchPods: true,
    });
    await watching(server, 4);
    for (const resource of ['services', 'endpointslices', 'pods']) {
      for (const verb of ['list', 'watch'] as const) {
        const requests = server.requestsFor(verb, resource);
        expect(requests.length, `${verb} ${resource}`).toBeGreaterThan(0);
        for (const r of requests) expect(r.query.labelSelector, `${verb} ${resource}`).toBe('expose in (dns)');
      }
    }
    for (const r of [...server.requestsFor('list', 'namespaces'), ...server.requestsFor('watch', 'namespaces')]) {
      expect(r.query.labelSelector).toBe('team=a');
    }
    expect([...store.services.keys()]).toEqual(['demo/in']);
    expect([...store.slices.keys()]).toEqual(['demo/in-1']);
    expect([...store.pods.keys()]).toEqual(['demo/p-in']);
    expect([...store.namespaces.keys()]).toEqual(['team-a']);

    // Relabelled out of the selector: the server sends DELETED to this watch.
    server.update(service('demo', 'in', undefined, { expose: 'no' }));
    await waitFor(() => !store.services.has('demo/in'), 'Service leaving the selector removed');
    server.update(namespace('team-b', { team: 'a' }));
    await waitFor(() => store.namespaces.has('team-b'), 'Namespace entering the selector added');
  });

  test('KP-9/KP-22: pods verified watches Pods with the phase field selector; terminating updates ignored; finished pods leave', async () => {
    const server = await startServer();
    server.add(pod('demo', 'running', '10.244.0.10'));
    server.add(pod('demo', 'pending', null, 'Pending'));
    server.add(pod('demo', 'done', '10.244.0.11', 'Succeeded'));
    const { store } = await startSource(endpoint(server), { watchPods: true });
    const fieldSelector = 'status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown';
    for (const r of [...server.requestsFor('list', 'pods')]) expect(r.query.fieldSelector).toBe(fieldSelector);
    expect(store.pods.get('demo/running')).toEqual({ namespace: 'demo', name: 'running', ip: '10.244.0.10' });
    expect(store.pods.has('demo/pending')).toBe(false); // no IP yet
    expect(store.pods.has('demo/done')).toBe(false); // filtered by the server
    await watching(server, 1, 'pods');
    expect(server.requestsFor('watch', 'pods')[0]!.query.fieldSelector).toBe(fieldSelector);

    server.update(pod('demo', 'pending', '10.244.0.12'));
    await waitFor(() => store.pods.has('demo/pending'), 'pod that got an IP');

    // A pod being deleted: its updates are ignored (the old record stays) until DELETED.
    const terminating = pod('demo', 'running', '10.244.0.99');
    terminating.metadata.deletionTimestamp = new Date().toISOString();
    server.update(terminating);
    server.add(pod('demo', 'marker', '10.244.0.13'));
    await waitFor(() => store.pods.has('demo/marker'), 'marker pod');
    expect(store.pods.get('demo/running')!.ip).toBe('10.244.0.10');
    server.delete(terminating);
    await waitFor(() => !store.pods.has('demo/running'), 'deleted pod removed');

    // Succeeded: leaves the field selector, so the watch gets DELETED.
    server.update(pod('demo', 'marker', '10.244.0.13', 'Succeeded'));
    await waitFor(() => !store.pods.has('demo/marker'), 'finished pod removed');
  });

  test('KP-14: noendpoints never touches EndpointSlices; without pods verified, Pods are not watched', async () => {
    const server = await startServer();
    server.add(slice('demo', 's', 'web', ['10.244.0.1']));
    const { store } = await startSource(endpoint(server), { watchEndpoints: false, watchPods: false });
    await watching(server, 2);
    expect(server.requests.some((r) => r.resource === 'endpointslices' || r.resource === 'pods')).toBe(false);
    expect(store.ops.some((op) => op.includes('EndpointSlice') || op.includes('Pod'))).toBe(false);
  });
});

describe('API source: resume, 410 Gone and re-list (KP-22)', () => {
  test('KP-22: a watch closed by the server resumes from the last resourceVersion without listing again', async () => {
    const server = await startServer();
    server.add(service('demo', 'a'));
    const { store } = await startSource(endpoint(server));
    await watching(server, 3);
    server.add(service('demo', 'b'));
    await waitFor(() => store.services.has('demo/b'), 'b');
    const rvAfterB = server.resourceVersion;
    const lists = server.requestsFor('list').length;
    server.closeWatches();
    server.add(service('demo', 'c')); // while no watch is open: must come from the history replay
    await waitFor(() => store.services.has('demo/c'), 'c after resume');
    const resumed = server.requestsFor('watch', 'services').at(-1)!;
    expect(Number(resumed.query.resourceVersion)).toBe(rvAfterB);
    expect(resumed.query.allowWatchBookmarks).toBe('true');
    expect(Number(resumed.query.timeoutSeconds)).toBeGreaterThanOrEqual(300);
    expect(server.requestsFor('list').length).toBe(lists);
  });

  test('KP-22: BOOKMARK events advance the resourceVersion a watch resumes from', async () => {
    const server = await startServer();
    const { store } = await startSource(endpoint(server));
    await watching(server, 3); // the services watch must be open to get the bookmark
    server.add(namespace('elsewhere')); // bumps the resourceVersion; not a Service event
    await waitFor(() => store.namespaces.has('elsewhere'), 'namespace');
    server.sendBookmarks();
    const bookmarkRv = server.resourceVersion;
    await new Promise((r) => setTimeout(r, 50));
    server.closeWatches();
    await waitFor(() => server.requestsFor('watch', 'services').length === 2, 'services watch resumed');
    expect(Number(server.requestsFor('watch', 'services')[1]!.query.resourceVersion)).toBe(bookmarkRv);
  });

  test('KP-22: 410 Gone as a watch ERROR event → re-list with replaceAll; surviving records are never absent', async () => {
    const server = await startServer();
    server.add(service('demo', 'keep'));
    server.add(service('demo', 'gone'));
    server.add(slice('demo', 'keep-1', 'keep', ['10.244.0.1']));
    const { store } = await startSource(endpoint(server));
    await watching(server, 3);
    const violations: string[] = [];
    store.onChange = (op) => {
      if (!store.services.has('demo/keep') || !store.slices.has('demo/keep-1')) violations.push(op);
    };

    server.expireHistory(); // every open watch: ERROR 410, then closed
    // Changes the client can only learn from a re-list.
    server.delete(service('demo', 'gone'));
    server.add(service('demo', 'new'));
    server.update(service('demo', 'keep', { clusterIP: '10.96.0.99' }));

    await waitFor(() => store.services.has('demo/new') && !store.services.has('demo/gone'), 're-listed state');
    expect(store.services.get('demo/keep')!.clusterIPs).toEqual(['10.96.0.99']);
    expect(violations).toEqual([]);
    expect(store.ops).not.toContain('deleteService demo/keep');
    expect(store.ops.filter((op) => op === 'replaceAll Service 2').length).toBeGreaterThanOrEqual(1);
    expect(store.syncedCount).toBe(1); // a re-list does not sync again
    // The new watch starts from the re-list's resourceVersion.
    await watching(server, 1, 'services');
    const lastList = server.requestsFor('list', 'services').length;
    expect(lastList).toBe(2);
  });

  test('KP-22: a store with beginReplace gets each page as it arrives; a re-list keeps unchanged records and removes missing ones', async () => {
    const server = await startServer();
    for (const name of ['a', 'b', 'c', 'd', 'e']) server.add(service('demo', name));
    server.add(slice('demo', 'a-1', 'a', ['10.244.0.1']));
    const { log } = captureLog();
    // compactOnGrowth: any growth compacts, to run that path too.
    const source = createApiSource(endpoint(server), sourceOptions({}), log, { ...FAST, pageSize: 2, compactEveryRecords: 1, compactOnGrowth: 1e-9 });
    const store = new ClusterIndex();
    const replaceAll = store.replaceAll.bind(store);
    let replaceAllCalls = 0;
    store.replaceAll = ((kind: never, records: never) => {
      replaceAllCalls++;
      replaceAll(kind, records);
    }) as typeof store.replaceAll;
    await source.start(store);
    cleanups.push(() => source.stop());
    await waitFor(() => store.synced, 'initial sync');
    expect(server.requestsFor('list', 'services').length).toBe(3); // 5 Services, 2 per page
    expect(store.counts()).toMatchObject({ services: 5, endpointSlices: 1, readyAddresses: 1 });
    const unchanged = store.service('demo', 'b');
    await watching(server, 3);

    server.expireHistory();
    server.delete(service('demo', 'c'));
    server.add(service('demo', 'f'));
    server.update(service('demo', 'a', { clusterIP: '10.96.0.99' }));
    server.delete(slice('demo', 'a-1', 'a', []));
    await waitFor(() => store.service('demo', 'f') && !store.service('demo', 'c') && store.slicesFor('demo', 'a').length === 0, 're-listed state');
    expect(store.service('demo', 'a')!.clusterIPs).toEqual(['10.96.0.99']);
    expect(store.service('demo', 'b')).toBe(unchanged);
    expect(store.servicesByClusterIP('10.96.0.99').map((s) => s.name)).toEqual(['a']);
    expect(store.slicesByEndpointIP('10.244.0.1')).toEqual([]);
    expect(replaceAllCalls).toBe(0);
  });

  test('KP-22: 410 Gone as an HTTP status when resuming → re-list', async () => {
    const server = await startServer();
    server.goneAs = 'status';
    server.add(service('demo', 'a'));
    const { store } = await startSource(endpoint(server));
    await watching(server, 3); // a services watch opened after the expiry would re-list early
    server.expireHistory({ closeWatches: false });
    server.delete(service('demo', 'a'));
    server.add(service('demo', 'b'));
    // The open watch still sees these; force a resume from its (now expired) resourceVersion.
    await waitFor(() => store.services.has('demo/b'), 'b via the open watch');
    server.expireHistory({ closeWatches: false });
    server.add(service('demo', 'c'));
    await waitFor(() => store.services.has('demo/c'), 'c via the open watch');
    server.expireHistory({ closeWatches: false });
    server.closeWatches();
    await waitFor(() => server.requests.some((r) => r.verb === 'watch' && r.status === 410), 'HTTP 410 on resume');
    await waitFor(() => server.requestsFor('list', 'services').length === 2, 're-list');
    await waitFor(() => store.ops.filter((op) => op.startsWith('replaceAll Service')).length === 2, 'replaceAll after re-list');
    expect([...store.services.keys()].sort()).toEqual(['demo/b', 'demo/c']);
  });

  test('KP-22: lists are paginated (limit/continue) and replace the store only once every page has arrived', async () => {
    const server = await startServer();
    for (let i = 0; i < 7; i++) server.add(service('demo', `s${i}`));
    const { store } = await startSource(endpoint(server), {}, { pageSize: 3 });
    const lists = server.requestsFor('list', 'services');
    expect(lists.map((r) => r.query.limit)).toEqual(['3', '3', '3']);
    expect(lists[0]!.query.continue).toBeUndefined();
    expect(lists[1]!.query.continue).toBeTruthy();
    expect(store.services.size).toBe(7);
    expect(store.ops.filter((op) => op.startsWith('replaceAll Service'))).toEqual(['replaceAll Service 7']);
  });

  test('KP-22: an expired continue token (410) restarts the paginated list from the first page, quietly', async () => {
    const server = await startServer();
    for (let i = 0; i < 5; i++) server.add(service('demo', `s${i}`));
    server.failRequests(410, {
      verb: 'list',
      resource: 'services',
      times: 1,
      when: (r) => r.query.continue !== undefined,
      message: 'The provided continue parameter is too old to display a consistent list result.',
    });
    const { store, lines } = await startSource(endpoint(server), {}, { pageSize: 2 });
    expect(server.requestsFor('list', 'services').map((r) => [r.status, r.query.continue === undefined ? 'first' : 'next'])).toEqual([
      [200, 'first'],
      [410, 'next'],
      [200, 'first'],
      [200, 'next'],
      [200, 'next'],
    ]);
    expect(store.services.size).toBe(5);
    expect(lines.filter((l) => l.startsWith('[WARNING]'))).toEqual([]);
  });

  test('KP-24/KP-26: not synced until every first list has completed', async () => {
    const server = await startServer();
    server.add(service('demo', 'a'));
    server.delayLists(1000);
    const { store, source } = await startSource(endpoint(server), {}, {}, false);
    // Every list has reached the server, none has been answered (each waits 1 s there).
    await waitFor(() => server.requestsFor('list').length === 3, 'the three lists in flight');
    expect(store.syncedCount).toBe(0);
    expect(source.state()).toMatch(/^syncing with http:\/\/127\.0\.0\.1:\d+: listing services, endpointslices, namespaces$/);
    await waitFor(() => store.syncedCount === 1, 'sync after slow lists');
    expect(store.ops.filter((op) => op.startsWith('replaceAll'))).toHaveLength(3);
    expect(store.ops.at(-1)).toBe('markSynced');
  });
});

describe('API source: a lost API server (KP-25, P13)', () => {
  test('KP-25: API server stopped → records kept, state says reconnecting, one warning; restarted → resumes without re-listing', async () => {
    const server = await startServer();
    server.add(service('demo', 'web'));
    const { store, source, lines } = await startSource(endpoint(server), { watchPods: true });
    await watching(server, 4);
    const listsBefore = server.requestsFor('list').length;

    await server.stop();
    await waitFor(() => source.state().startsWith('reconnecting'), 'reconnecting state');
    expect(source.state()).toMatch(/^reconnecting (in [\d.]+s )?after (list|watch) \w+: .+; serving last known records$/);
    expect(store.services.has('demo/web')).toBe(true);
    // Several failed retries (logged at debug level), however long they take on a busy machine.
    await waitFor(() => lines.filter((l) => l.startsWith('[DEBUG] still no connection to the API server')).length >= 6, 'several retries');
    const warnings = lines.filter((l) => l.startsWith('[WARNING]'));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/^\[WARNING\] lost connection to the API server \((list|watch) \w+: .+\); serving last known records, retrying in [\d.]+s$/);
    expect(store.ops.filter((op) => op.startsWith('delete'))).toEqual([]);

    server.add(service('demo', 'while-down')); // reaches the client from the watch history
    await server.restart();
    await waitFor(() => store.services.has('demo/while-down'), 'change made while down');
    await waitFor(() => source.state() === `connected to ${server.url}`, 'connected again');
    await waitFor(() => lines.some((l) => l.startsWith('[INFO] connection to the API server') && l.endsWith('restored')), 'restored log');
    expect(server.requestsFor('list').length).toBe(listsBefore); // resumed from resourceVersions
    expect(store.services.has('demo/web')).toBe(true);
  });

  test('KP-22: an API server that comes back without the watch history (410) is re-listed', async () => {
    const server = await startServer();
    server.add(service('demo', 'old'));
    const { store } = await startSource(endpoint(server));
    await watching(server, 3);
    await server.stop();
    server.delete(service('demo', 'old'));
    server.add(service('demo', 'fresh'));
    server.expireHistory();
    await server.restart();
    await waitFor(() => store.services.has('demo/fresh') && !store.services.has('demo/old'), 're-listed after restart');
    expect(store.ops).not.toContain('deleteService demo/old'); // removed by replaceAll, not by a watch event
  });

  test('backoff: retries start at the base delay and double up to the maximum', async () => {
    const server = await startServer();
    server.failRequests(500, { verb: 'list', resource: 'services', times: 5 });
    const { store } = await startSource(endpoint(server), {}, { backoffBaseMs: 100, backoffMaxMs: 400, jitter: 0 });
    expect(store.services.size).toBe(0);
    const times = server.requestsFor('list', 'services').map((r) => r.time);
    expect(times.length).toBe(6);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    // A busy machine only makes gaps longer: the lower bounds are exact (the delays double from
    // the base), the upper ones leave 350 ms of slack yet stay below what an uncapped backoff
    // would wait from the fourth retry on (800, 1600 ms).
    const expected = [100, 200, 400, 400, 400];
    gaps.forEach((gap, i) => {
      expect(gap, `gap ${i + 1} of ${gaps.join(', ')} ms`).toBeGreaterThanOrEqual(expected[i]! - 5);
      expect(gap, `gap ${i + 1} of ${gaps.join(', ')} ms`).toBeLessThan(expected[i]! + 350);
    });
  });

  test('P13: an RBAC refusal is reported with the API server\'s message, and the source keeps retrying', async () => {
    const server = await startServer();
    const message = 'services is forbidden: User "system:serviceaccount:kube-system:coredns" cannot list resource "services" in API group "" at the cluster scope';
    server.failRequests(403, { verb: 'list', resource: 'services', message });
    const { store, source, lines } = await startSource(endpoint(server), {}, {}, false);
    await waitFor(() => source.state().includes('403'), '403 in state');
    expect(source.state()).toContain(`list services: 403 Forbidden: ${message}`);
    expect(source.state()).toContain('not synced yet');
    // It keeps retrying: several refusals (however long they take), and still one warning.
    await waitFor(() => server.requests.filter((r) => r.status === 403).length >= 4, 'several refused lists');
    const warnings = lines.filter((l) => l.startsWith('[WARNING]'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`[WARNING] cannot sync with the API server at ${server.url} (list services: 403 Forbidden: ${message}`);
    expect(store.syncedCount).toBe(0);
    server.clearFailures();
    await waitFor(() => store.syncedCount === 1, 'sync once RBAC is fixed');
    await waitFor(() => lines.some((l) => l.startsWith('[INFO] connection to the API server') && l.endsWith('restored')), 'restored log');
  });

  test('stop() ends every watch and no request follows', async () => {
    const server = await startServer();
    const { source } = await startSource(endpoint(server), { watchPods: true });
    await watching(server, 4);
    await source.stop();
    expect(source.state()).toBe('stopped');
    await waitFor(() => server.watchCount() === 0, 'watches closed');
    const count = server.requests.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(server.requests.length).toBe(count);
  });
});

describe('API source: connection and credentials (KP-5..7, STOCK-6)', () => {
  test('KP-7: kubeconfig with a bearer token, context chosen by name; a wrong token shows 401 in the state', async () => {
    const server = await startServer({ token: 'right-token' });
    server.add(service('demo', 'web'));
    const dir = tempDir();
    const good = path.join(dir, 'good.yaml');
    fs.writeFileSync(good, server.kubeconfig({ token: 'right-token', context: 'mine', extraContexts: [{ name: 'other', server: 'http://127.0.0.1:1' }] }));
    const { store } = await startSource({ endpoint: 'http://127.0.0.1:1', tls: null, kubeconfig: { path: good, context: 'mine' } });
    expect(store.services.has('demo/web')).toBe(true);
    expect(server.requests.every((r) => r.token === 'right-token')).toBe(true);

    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, server.kubeconfig({ token: 'wrong-token' }));
    const { source } = await startSource({ endpoint: null, tls: null, kubeconfig: { path: bad, context: null } }, {}, {}, false);
    await waitFor(() => source.state().includes('401'), '401 in state');
    expect(source.state()).toContain('401 Unauthorized');
  });

  test('KP-7: a kubeconfig user token-file is read again for later requests (KP-5)', async () => {
    const server = await startServer({ token: 'first' });
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'token'), 'first\n');
    const file = path.join(dir, 'config');
    fs.writeFileSync(file, server.kubeconfig({ tokenFile: 'token' })); // relative to the kubeconfig
    const { store } = await startSource({ endpoint: null, tls: null, kubeconfig: { path: file, context: null } });
    await watching(server, 3); // a first watch still on its way would carry the old token
    fs.writeFileSync(path.join(dir, 'token'), 'second\n');
    server.setToken('second');
    server.closeWatches();
    await waitFor(() => server.requests.some((r) => r.token === 'second' && r.status === 200), 'request with the rotated token');
    expect(server.requests.some((r) => r.status === 401)).toBe(false);
    expect(store.syncedCount).toBe(1);
  });

  test('KP-5: in-cluster config: https with the service-account CA and token; the token is re-read after rotation', async () => {
    const server = await startServer({ tls: true, token: 'sa-token-1' });
    server.add(service('default', 'kubernetes', { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] }));
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'token'), 'sa-token-1');
    fs.writeFileSync(path.join(dir, 'ca.crt'), TEST_CA_CERT);
    const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(server.port) };
    const { store, source } = await startSource({ endpoint: null, tls: null, kubeconfig: null }, {}, { serviceAccountDir: dir, env });
    expect(store.services.has('default/kubernetes')).toBe(true);
    expect(source.state()).toBe(`connected to https://127.0.0.1:${server.port}`);
    await watching(server, 3); // a first watch still on its way would carry the old token

    // The kubelet rotates the projected token; the API server stops accepting the old one.
    fs.writeFileSync(path.join(dir, 'token'), 'sa-token-2');
    server.setToken('sa-token-2');
    server.closeWatches();
    server.add(service('default', 'after-rotation'));
    await waitFor(() => store.services.has('default/after-rotation'), 'event after rotation');
    expect(server.requests.filter((r) => r.status === 401)).toEqual([]);
    expect(server.requests.at(-1)!.token).toBe('sa-token-2');
  });

  test('KP-6: endpoint with tls CERT KEY CACERT authenticates with the client certificate', async () => {
    const server = await startServer({ tls: true, requireClientCert: true });
    server.add(namespace('demo'));
    const dir = tempDir();
    for (const [name, text] of [['client.crt', TEST_CLIENT_CERT], ['client.key', TEST_CLIENT_KEY], ['ca.crt', TEST_CA_CERT]] as const) {
      fs.writeFileSync(path.join(dir, name), text);
    }
    const tls = { cert: path.join(dir, 'client.crt'), key: path.join(dir, 'client.key'), ca: path.join(dir, 'ca.crt') };
    const { store } = await startSource({ endpoint: server.url, tls, kubeconfig: null });
    expect(store.namespaces.has('demo')).toBe(true);
    expect(server.requests.every((r) => r.clientCertCN === 'system:serviceaccount:kube-system:coredns')).toBe(true);
  });

  test('KP-5..7: unusable configuration makes start() fail with a clear message', async () => {
    const { log } = captureLog();
    const start = (connection: ApiConnection, tuning: Partial<ApiSourceTuning> = {}) =>
      createApiSource(connection, sourceOptions(), log, { ...FAST, ...tuning }).start(new RecordingStore());
    await expect(start({ endpoint: null, tls: null, kubeconfig: null }, { env: {} })).rejects.toThrow(
      /unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined/,
    );
    const dir = tempDir();
    await expect(
      start({ endpoint: null, tls: null, kubeconfig: null }, { env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: dir }),
    ).rejects.toThrow(`service account token ${path.join(dir, 'token')}: no such file`);
    await expect(start({ endpoint: null, tls: null, kubeconfig: { path: path.join(dir, 'missing'), context: null } })).rejects.toThrow(/kubeconfig .*missing/);
    const server = await startServer();
    fs.writeFileSync(path.join(dir, 'config'), server.kubeconfig());
    await expect(start({ endpoint: null, tls: null, kubeconfig: { path: path.join(dir, 'config'), context: 'nope' } })).rejects.toThrow(
      'context "nope" not found',
    );
    await expect(start({ endpoint: 'ftp://x', tls: null, kubeconfig: null })).rejects.toThrow('expected an http:// or https:// URL');
    await expect(
      start({ endpoint: server.url, tls: { cert: path.join(dir, 'c'), key: path.join(dir, 'k'), ca: path.join(dir, 'a') }, kubeconfig: null }),
    ).rejects.toThrow(/tls client certificate .*: no such file/);
    expect(server.requests).toEqual([]);
  });

  test('STOCK-6: only list and watch are ever used: no get, no writes, no discovery', async () => {
    const server = await startServer();
    server.add(namespace('demo'));
    server.add(service('demo', 'web'));
    server.add(slice('demo', 'web-1', 'web', ['10.244.0.1']));
    server.add(pod('demo', 'web-1', '10.244.0.1'));
    const { store } = await startSource(endpoint(server), { watchPods: true, labelSelector: 'app', namespaceLabelSelector: '!skip' });
    await watching(server, 4);
    server.add(service('demo', 'x', undefined, { app: 'x' }));
    server.expireHistory();
    await waitFor(() => store.services.has('demo/x'), 're-listed');
    await server.stop();
    await new Promise((r) => setTimeout(r, 60));
    await server.restart();
    await watching(server, 4);
    const verbs = new Set(server.requests.map((r) => r.verb));
    expect([...verbs].sort()).toEqual(['list', 'watch']);
    const resources = new Set(server.requests.map((r) => r.resource));
    expect([...resources].sort()).toEqual(['endpointslices', 'namespaces', 'pods', 'services']);
    // All-namespace collection paths only.
    for (const r of server.requests) expect(r.namespace).toBeNull();
  });
});
