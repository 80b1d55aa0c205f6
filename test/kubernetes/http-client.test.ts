// The lean list/watch client (plugins/kubernetes/http-client.ts) and the
// connection options it is configured from (plugins/kubernetes/connection.ts),
// against the test API server (test/support/apiserver.ts) and, where the
// bytes on the wire matter (chunk boundaries, headers), raw node:http servers.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { resolveConnection, type ConnectionEnvironment } from '../../plugins/kubernetes/connection.ts';
import {
  ApiError,
  createApiClient,
  TimeoutError,
  tokenFile,
  type ApiClient,
  type ClientConfig,
  type Credentials,
  type WatchEventType,
} from '../../plugins/kubernetes/http-client.ts';
import { restClientRequestDuration, restClientRequests } from '../../plugins/kubernetes/metrics.ts';
import type { ApiConnection } from '../../plugins/kubernetes/model.ts';
import {
  TEST_CA_CERT,
  TEST_CLIENT_CERT,
  TEST_CLIENT_KEY,
  TestApiServer,
  waitFor,
  type ApiServerOptions,
  type KubeObject,
} from '../support/apiserver.ts';
import { freePort, startCli } from '../support/process.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(options: ApiServerOptions = {}): Promise<TestApiServer> {
  const server = await TestApiServer.start(options);
  cleanups.push(() => server.stop());
  return server;
}

function client(config: ClientConfig | string): ApiClient {
  const c = createApiClient(typeof config === 'string' ? { server: config } : config);
  cleanups.push(() => c.close());
  return c;
}

async function connect(connection: ApiConnection, environment?: ConnectionEnvironment): Promise<ApiClient> {
  const resolved = await resolveConnection(connection, environment);
  return client(resolved.config);
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-http-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function service(namespace: string, name: string, labels?: Record<string, string>): KubeObject {
  return { kind: 'Service', metadata: { name, namespace, ...(labels ? { labels } : {}) }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } };
}

function names(items: unknown[]): string[] {
  return items.map((i) => (i as { metadata: { namespace?: string; name: string } }).metadata).map((m) => (m.namespace ? `${m.namespace}/${m.name}` : m.name));
}

/** A raw HTTP server for what the test API server cannot do; records request headers and connections. */
async function rawServer(handler: http.RequestListener): Promise<{ url: string; port: number; headers: http.IncomingHttpHeaders[]; connections: () => number }> {
  const headers: http.IncomingHttpHeaders[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    headers.push(req.headers);
    handler(req, res);
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, port, headers, connections: () => connections };
}

function emptyList(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'ServiceList', metadata: { resourceVersion: '1' }, items: [] }));
}

interface Recorded {
  events: [WatchEventType, string][];
  onEvent: (type: WatchEventType, object: unknown) => void;
}

function recorder(): Recorded {
  const events: [WatchEventType, string][] = [];
  return {
    events,
    onEvent: (type, object) => {
      const meta = (object as { metadata?: { name?: string; resourceVersion?: string } }).metadata;
      events.push([type, type === 'BOOKMARK' ? (meta?.resourceVersion ?? '') : (meta?.name ?? '')]);
    },
  };
}

async function counted(host: string, code: string): Promise<number> {
  const { values } = await restClientRequests.get();
  return values.find((v) => v.labels.host === host && v.labels.code === code && v.labels.method === 'GET')?.value ?? 0;
}

async function timed(host: string): Promise<number> {
  const { values } = await restClientRequestDuration.get();
  return values.find((v) => v.labels.host === host && v.labels.verb === 'GET' && (v as { metricName?: string }).metricName?.endsWith('_count'))?.value ?? 0;
}

describe('list', () => {
  test('pages with limit and continue, one resourceVersion for the whole list; selectors go to the server', async () => {
    const server = await startServer();
    for (const name of ['a', 'b', 'c', 'd', 'e']) server.add(service('demo', name, { app: name === 'c' ? 'skip' : 'web' }));
    const c = client(server.url);

    const seen: string[] = [];
    const versions = new Set<string>();
    let cont: string | undefined;
    let pages = 0;
    do {
      const page = await c.list('/api/v1/services', { limit: 2, continue: cont, labelSelector: 'app=web' });
      pages++;
      seen.push(...names(page.items));
      versions.add(page.metadata.resourceVersion);
      cont = page.metadata.continue;
    } while (cont);
    expect(seen).toEqual(['demo/a', 'demo/b', 'demo/d', 'demo/e']);
    expect(pages).toBe(2);
    expect([...versions]).toEqual([String(server.resourceVersion)]);
    const lists = server.requestsFor('list', 'services');
    expect(lists.map((r) => r.query)).toEqual([
      { limit: '2', labelSelector: 'app=web' },
      { limit: '2', labelSelector: 'app=web', continue: expect.any(String) },
    ]);

    // No limit: everything in one page, no continue.
    const all = await c.list('/api/v1/services', {});
    expect(all.items).toHaveLength(5);
    expect(all.metadata.continue).toBeUndefined();
  });

  test('errors carry the HTTP status and the API server message; a stale continue token is 410', async () => {
    const server = await startServer();
    for (const name of ['a', 'b', 'c']) server.add(service('demo', name));
    const c = client(server.url);

    server.failRequests(403, { times: 1, message: 'services is forbidden: User "x" cannot list resource "services"' });
    const err = await c.list('/api/v1/services', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).statusCode).toBe(403);
    expect((err as ApiError).status?.reason).toBe('Forbidden');
    expect((err as ApiError).message).toBe('403 Forbidden: services is forbidden: User "x" cannot list resource "services"');

    const first = await c.list('/api/v1/services', { limit: 1 });
    server.expireHistory();
    const gone = await c.list('/api/v1/services', { limit: 1, continue: first.metadata.continue }).catch((e: unknown) => e);
    expect((gone as ApiError).statusCode).toBe(410);
    expect((gone as ApiError).message).toMatch(/^410 Gone: The provided continue parameter is too old/);

    // Not a Status body: the text is the message.
    const raw = await rawServer((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>  bad\n gateway </html>');
    });
    const proxyError = (await client(raw.url).list('/api/v1/services', {}).catch((e: unknown) => e)) as ApiError;
    expect(proxyError.statusCode).toBe(502);
    expect(proxyError.message).toBe('502 Bad Gateway: <html> bad gateway </html>');
  });

  test('timeout, abort, unreachable server, garbage', async () => {
    const server = await startServer();
    const c = client(server.url);
    server.delayLists(2000);
    const slow = await c.list('/api/v1/services', {}, undefined, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(TimeoutError);
    expect((slow as Error).message).toBe('timed out after 100 ms');

    const abort = new AbortController();
    const reason = new Error('stopping');
    const pending = c.list('/api/v1/services', {}, abort.signal).catch((e: unknown) => e);
    await waitFor(() => server.requestsFor('list').length === 2, 'second list request');
    abort.abort(reason);
    expect(await pending).toBe(reason);
    // Already aborted: nothing is sent.
    expect(await c.list('/api/v1/services', {}, abort.signal).catch((e: unknown) => e)).toBe(reason);
    expect(server.requestsFor('list')).toHaveLength(2);
    server.delayLists(0);

    await server.stop();
    const refused = (await c.list('/api/v1/services', {}).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(refused.code).toBe('ECONNREFUSED');

    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"items": [');
    });
    await expect(client(raw.url).list('/api/v1/services', {})).rejects.toThrow(/^invalid JSON in the list response/);
  });

  test('keep-alive: consecutive requests share one connection; a path prefix in the server URL is kept', async () => {
    const paths: string[] = [];
    const raw = await rawServer((req, res) => {
      paths.push(req.url ?? '');
      emptyList(res);
    });
    const c = client(`${raw.url}/k8s/clusters/c-1/`);
    for (let i = 0; i < 4; i++) await c.list('/api/v1/namespaces', { limit: 500 });
    expect(raw.connections()).toBe(1);
    expect(paths).toEqual(Array(4).fill('/k8s/clusters/c-1/api/v1/namespaces?limit=500'));
    expect(raw.headers[0]!.accept).toBe('application/json');
    expect(raw.headers[0]!['user-agent']).toMatch(/^clusterdns/);
  });
});

describe('watch', () => {
  test('streams ADDED, MODIFIED, DELETED and BOOKMARK from a resourceVersion; onOpen on 200; closed when the server ends it', async () => {
    const server = await startServer();
    server.add(service('demo', 'old'));
    const c = client(server.url);
    const { metadata } = await c.list('/api/v1/services', {});
    const r = recorder();
    let opened = 0;
    const watching = c.watch('/api/v1/services', { resourceVersion: metadata.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 }, r.onEvent, undefined, {
      onOpen: () => opened++,
    });
    await server.waitForWatches(1);
    expect(server.requestsFor('watch')[0]!.query).toEqual({ resourceVersion: metadata.resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: '300', watch: 'true' });
    server.add(service('demo', 'web'));
    server.update({ ...service('demo', 'web'), spec: { clusterIP: '10.96.0.11' } });
    server.delete({ kind: 'Service', metadata: { name: 'old', namespace: 'demo' } });
    server.sendBookmarks();
    await waitFor(() => r.events.length === 4, 'four events');
    server.closeWatches();
    const outcome = await watching;
    expect(opened).toBe(1);
    expect(outcome).toEqual({ kind: 'closed', events: 4, opened: true });
    expect(r.events).toEqual([
      ['ADDED', 'web'],
      ['MODIFIED', 'web'],
      ['DELETED', 'old'],
      ['BOOKMARK', String(server.resourceVersion)],
    ]);
  });

  test('410 Gone as an ERROR event (kube-apiserver), both on an open watch and at the start', async () => {
    const server = await startServer();
    server.add(service('demo', 'a'));
    const c = client(server.url);
    const { metadata } = await c.list('/api/v1/services', {});
    const r = recorder();
    const watching = c.watch('/api/v1/services', { resourceVersion: metadata.resourceVersion }, r.onEvent);
    await server.waitForWatches(1);
    server.add(service('demo', 'b'));
    await waitFor(() => r.events.length === 1, 'event');
    server.expireHistory(); // the open watch gets ERROR 410
    const outcome = await watching;
    expect(outcome.kind).toBe('gone');
    expect(outcome.events).toBe(1);
    expect(outcome.opened).toBe(true);
    expect((outcome.error as ApiError).statusCode).toBe(410);
    expect((outcome.error as ApiError).status?.reason).toBe('Expired');

    // Starting from an expired resourceVersion: 200, then the ERROR event.
    const again = await c.watch('/api/v1/services', { resourceVersion: metadata.resourceVersion }, r.onEvent);
    expect(again).toMatchObject({ kind: 'gone', events: 0, opened: true });
    expect((again.error as ApiError).message).toMatch(/^410 Gone: too old resource version/);
  });

  test('410 Gone as the HTTP status', async () => {
    const server = await startServer();
    server.add(service('demo', 'a'));
    const c = client(server.url);
    const { metadata } = await c.list('/api/v1/services', {});
    server.expireHistory();
    server.goneAs = 'status';
    let opened = false;
    const outcome = await c.watch('/api/v1/services', { resourceVersion: metadata.resourceVersion }, () => {}, undefined, { onOpen: () => (opened = true) });
    expect(outcome).toMatchObject({ kind: 'gone', events: 0, opened: false });
    expect((outcome.error as ApiError).statusCode).toBe(410);
    expect((outcome.error as ApiError).message).toMatch(/^410 Gone: too old resource version/);
    expect(opened).toBe(false);
  });

  test('other HTTP errors and ERROR events end the watch with an ApiError', async () => {
    const server = await startServer();
    const c = client(server.url);
    server.failRequests(403, { verb: 'watch', times: 1, message: 'no watching' });
    const refused = await c.watch('/api/v1/services', {}, () => {});
    expect(refused).toMatchObject({ kind: 'error', opened: false, events: 0 });
    expect((refused.error as ApiError).message).toBe('403 Forbidden: no watching');

    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'x' } } }) + '\n');
      res.write(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcdserver: leader changed' } }) + '\n');
    });
    const r = recorder();
    const failed = await client(raw.url).watch('/api/v1/services', {}, r.onEvent);
    expect(failed).toMatchObject({ kind: 'error', opened: true, events: 1 });
    expect((failed.error as ApiError).statusCode).toBe(500);
    expect((failed.error as ApiError).message).toBe('500 Internal Server Error: etcdserver: leader changed');
  });

  test('events split anywhere across chunks (inside a line, inside a UTF-8 character), blank lines, a last line without newline', async () => {
    const lines = [
      JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'café-☕', resourceVersion: '2' } } }),
      '',
      JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'b'.repeat(100_000), resourceVersion: '3' } } }),
      JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '4' } } }),
      JSON.stringify({ type: 'SOMETHING_NEW', object: {} }), // unknown types are skipped
      JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'd', resourceVersion: '5' } } }),
    ];
    const bytes = Buffer.from(lines.join('\n')); // no newline after the last event
    const raw = await rawServer(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Cut into pieces of 1..7 bytes (the first multibyte character gets split), then larger ones.
      let offset = 0;
      let size = 1;
      while (offset < bytes.length) {
        const piece = bytes.subarray(offset, offset + (offset < 200 ? size : 4096 * size));
        res.write(piece);
        offset += piece.length;
        size = (size % 7) + 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
      res.end();
    });
    const r = recorder();
    const outcome = await client(raw.url).watch('/api/v1/services', {}, r.onEvent);
    expect(outcome).toEqual({ kind: 'closed', events: 4, opened: true });
    expect(r.events).toEqual([
      ['ADDED', 'café-☕'],
      ['MODIFIED', 'b'.repeat(100_000)],
      ['BOOKMARK', '4'],
      ['DELETED', 'd'],
    ]);
  });

  test('a line that is not JSON, and an exception from onEvent, end the watch as errors', async () => {
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'x' } } }) + '\n');
      res.write('<html>oops</html>\n');
    });
    const c = client(raw.url);
    const bad = await c.watch('/api/v1/services', {}, () => {});
    expect(bad.kind).toBe('error');
    expect((bad.error as Error).message).toBe('invalid watch event: <html>oops</html>');

    const thrown = new Error('store broke');
    const outcome = await c.watch('/api/v1/services', {}, () => {
      throw thrown;
    });
    expect(outcome).toEqual({ kind: 'error', events: 1, opened: true, error: thrown });
  });

  test('no data for inactivityMs: timeout (also while waiting for the headers); bookmarks keep it alive', async () => {
    const server = await startServer();
    const c = client(server.url);
    const started = Date.now();
    const quiet = await c.watch('/api/v1/services', {}, () => {}, undefined, { inactivityMs: 150 });
    expect(quiet).toEqual({ kind: 'timeout', events: 0, opened: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await waitFor(() => server.watchCount() === 0, 'the server to see the watch closed');

    // Bookmarks every 50 ms: alive well past 150 ms, until the server ends it.
    const r = recorder();
    const alive = c.watch('/api/v1/services', { allowWatchBookmarks: true }, r.onEvent, undefined, { inactivityMs: 150 });
    await server.waitForWatches(1);
    const timer = setInterval(() => server.sendBookmarks(), 50);
    await new Promise((resolve) => setTimeout(resolve, 500));
    clearInterval(timer);
    server.closeWatches();
    expect((await alive).kind).toBe('closed');
    expect(r.events.length).toBeGreaterThanOrEqual(5);

    // Headers that never come.
    const raw = await rawServer(() => {});
    const silent = await client(raw.url).watch('/api/v1/services', {}, () => {}, undefined, { inactivityMs: 100 });
    expect(silent).toEqual({ kind: 'timeout', events: 0, opened: false });
  });

  test('abort ends the watch and its connection; a server that goes away is an error', async () => {
    const server = await startServer();
    const c = client(server.url);
    const abort = new AbortController();
    const watching = c.watch('/api/v1/services', {}, () => {}, abort.signal);
    await server.waitForWatches(1);
    abort.abort();
    expect(await watching).toEqual({ kind: 'aborted', events: 0, opened: true });
    await waitFor(() => server.watchCount() === 0, 'the watch connection closed');
    expect(await c.watch('/api/v1/services', {}, () => {}, abort.signal)).toEqual({ kind: 'aborted', events: 0, opened: false });

    const lost = c.watch('/api/v1/services', {}, () => {});
    await server.waitForWatches(1);
    await server.stop();
    const outcome = await lost;
    expect(outcome.kind).toBe('error');
    expect(outcome.opened).toBe(true);
    const refused = await c.watch('/api/v1/services', {}, () => {});
    expect(refused.kind).toBe('error');
    expect((refused.error as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });
});

describe('KP-42 metrics', () => {
  test('every request is counted with its status (or <error>) and timed; caller aborts are not', async () => {
    const server = await startServer({ token: 't' });
    const host = `127.0.0.1:${server.port}`;
    const c = client({ server: server.url, credentials: { apply: (r) => void (r.headers.authorization = 'Bearer t') } });
    await c.list('/api/v1/services', {});
    await c.list('/api/v1/namespaces', {});
    server.failRequests(503, { verb: 'watch', times: 1 });
    await c.watch('/api/v1/services', {}, () => {});
    const watching = c.watch('/api/v1/services', {}, () => {});
    await server.waitForWatches(1);
    server.closeWatches();
    await watching;
    const unauthorized = client(server.url);
    await unauthorized.list('/api/v1/services', {}).catch(() => {});
    const abort = new AbortController();
    server.delayLists(1000);
    const aborted = c.list('/api/v1/services', {}, abort.signal).catch(() => {});
    await waitFor(() => server.requestsFor('list').length === 4, 'the delayed list');
    abort.abort();
    await aborted;
    server.delayLists(0);
    await server.stop();
    await c.list('/api/v1/services', {}).catch(() => {});

    expect(await counted(host, '200')).toBe(3);
    expect(await counted(host, '503')).toBe(1);
    expect(await counted(host, '401')).toBe(1);
    expect(await counted(host, '<error>')).toBe(1);
    expect(await timed(host)).toBe(6);
  });
});

describe('credentials', () => {
  test('a 401 after the credentials changed is retried once at once (both requests counted)', async () => {
    const server = await startServer({ token: 'new' });
    let current = 'old';
    let refreshes = 0;
    const credentials: Credentials = {
      apply: (r) => void (r.headers.authorization = `Bearer ${current}`),
      refresh: () => {
        refreshes++;
        current = 'new';
        return true;
      },
    };
    const c = client({ server: server.url, credentials });
    const page = await c.list('/api/v1/services', {});
    expect(page.items).toEqual([]);
    expect(server.requests.map((r) => `${r.token} ${r.status}`)).toEqual(['old 401', 'new 200']);
    expect(await counted(`127.0.0.1:${server.port}`, '401')).toBe(1);
    // Still refused after the refresh: the 401 is the answer (no loop).
    server.setToken('newer');
    const refused = (await c.list('/api/v1/services', {}).catch((e: unknown) => e)) as ApiError;
    expect(refused.statusCode).toBe(401);
    expect(refused.message).toBe('401 Unauthorized'); // the server's message only repeats the status
    expect(refused.serverMessage).toBe('Unauthorized');
    expect(refreshes).toBe(2);
    expect(server.requests).toHaveLength(4);
  });

  test('tokenFile: read for every request, last good token while the file is missing, refresh() says whether it changed', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'token');
    await expect(tokenFile(file).apply({ headers: {}, tls: {} })).rejects.toThrow(`cannot read token file ${file}`);
    fs.writeFileSync(file, 'one\n');
    const creds = tokenFile(file);
    const apply = async () => {
      const r = { headers: {} as Record<string, string | string[]>, tls: {} };
      await creds.apply(r);
      return r.headers.authorization;
    };
    expect(await apply()).toBe('Bearer one');
    expect(await creds.refresh!()).toBe(false);
    fs.writeFileSync(file, 'two');
    expect(await creds.refresh!()).toBe(true);
    expect(await apply()).toBe('Bearer two');
    fs.rmSync(file);
    expect(await apply()).toBe('Bearer two');
  });

  test('KP-5 in-cluster: https with the service-account CA and token, the token re-read after rotation', async () => {
    const server = await startServer({ tls: true, token: 'sa-1' });
    server.add(service('default', 'kubernetes'));
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'token'), 'sa-1\n');
    fs.writeFileSync(path.join(dir, 'ca.crt'), TEST_CA_CERT);
    const environment = { serviceAccountDir: dir, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(server.port) } };
    const resolved = await resolveConnection({ endpoint: null, tls: null, kubeconfig: null }, environment);
    expect(resolved.server).toBe(`https://127.0.0.1:${server.port}`);
    expect(resolved.description).toBe(`in-cluster https://127.0.0.1:${server.port}`);
    const c = client(resolved.config);
    expect(names((await c.list('/api/v1/services', {})).items)).toEqual(['default/kubernetes']);
    const watching = c.watch('/api/v1/services', {}, () => {});
    await server.waitForWatches(1);

    // The kubelet rotates the projected token; the API server stops taking the old one.
    fs.writeFileSync(path.join(dir, 'token'), 'sa-2\n');
    server.setToken('sa-2');
    server.closeWatches();
    expect((await watching).kind).toBe('closed');
    await c.list('/api/v1/services', {});
    expect((await c.watch('/api/v1/services', {}, () => {}, AbortSignal.timeout(200))).opened).toBe(true);
    expect(server.requests.map((r) => `${r.verb} ${r.token} ${r.status}`)).toEqual([
      'list sa-1 200',
      'watch sa-1 200',
      'list sa-2 200',
      'watch sa-2 200',
    ]);

    // IPv6 service host; a missing token; missing variables.
    const v6 = await resolveConnection({ endpoint: null, tls: null, kubeconfig: null }, { serviceAccountDir: dir, env: { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' } });
    expect(v6.server).toBe('https://[fd00::1]:443');
    await expect(
      resolveConnection({ endpoint: null, tls: null, kubeconfig: null }, { serviceAccountDir: path.join(dir, 'none'), env: environment.env }),
    ).rejects.toThrow(`unable to load in-cluster configuration: service account token ${path.join(dir, 'none', 'token')}: no such file`);
    await expect(resolveConnection({ endpoint: null, tls: null, kubeconfig: null }, { serviceAccountDir: dir, env: {} })).rejects.toThrow(
      /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined/,
    );
  });

  test('KP-6 endpoint + tls CERT KEY CACERT: mutual TLS; without the client certificate 401; without the CA the server is not trusted', async () => {
    const server = await startServer({ tls: true, requireClientCert: true });
    server.add(service('demo', 'web'));
    const dir = tempDir();
    for (const [name, text] of [['client.crt', TEST_CLIENT_CERT], ['client.key', TEST_CLIENT_KEY], ['ca.crt', TEST_CA_CERT]] as const) {
      fs.writeFileSync(path.join(dir, name), text);
    }
    const tls = { cert: path.join(dir, 'client.crt'), key: path.join(dir, 'client.key'), ca: path.join(dir, 'ca.crt') };
    const c = await connect({ endpoint: `${server.url}/`, tls, kubeconfig: null });
    expect(names((await c.list('/api/v1/services', {})).items)).toEqual(['demo/web']);
    expect(server.requests.at(-1)!.clientCertCN).toBe('system:serviceaccount:kube-system:coredns');

    const noCert = await connect({ endpoint: server.url, tls: null, kubeconfig: null });
    await expect(noCert.list('/api/v1/services', {})).rejects.toThrow(/self-signed|unable to verify|issuer certificate/);
    const caOnly = client({ server: server.url, tls: { ca: TEST_CA_CERT } });
    await expect(caOnly.list('/api/v1/services', {})).rejects.toMatchObject({ statusCode: 401 });

    await expect(resolveConnection({ endpoint: 'ftp://x', tls: null, kubeconfig: null })).rejects.toThrow('expected an http:// or https:// URL');
    await expect(resolveConnection({ endpoint: server.url, tls: { ...tls, key: path.join(dir, 'nope') }, kubeconfig: null })).rejects.toThrow(
      `tls client key ${path.join(dir, 'nope')}: no such file`,
    );
    const plain = await resolveConnection({ endpoint: 'http://127.0.0.1:1', tls, kubeconfig: null });
    expect(plain.description).toBe('endpoint http://127.0.0.1:1');
  });
});

describe('KP-7 kubeconfig', () => {
  function write(dir: string, name: string, config: unknown): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
    return file;
  }

  function kubeconfig(server: string, cluster: Record<string, unknown>, user: Record<string, unknown>, extra: Record<string, unknown> = {}) {
    return {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server, ...cluster } }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
      ...extra,
    };
  }

  const lean = (file: string, context: string | null = null) => resolveConnection({ endpoint: null, tls: null, kubeconfig: { path: file, context } });

  test('token, context by name; YAML; wins over endpoint', async () => {
    const server = await startServer({ token: 'right' });
    server.add(service('demo', 'web'));
    const dir = tempDir();
    const file = write(dir, 'config', server.kubeconfig({ token: 'right', context: 'mine', extraContexts: [{ name: 'other', server: 'http://127.0.0.1:1' }] }));
    const resolved = await resolveConnection({ endpoint: 'http://127.0.0.1:1', tls: null, kubeconfig: { path: file, context: 'mine' } });
    expect(resolved).toMatchObject({ server: server.url, description: `kubeconfig ${file} context "mine"`, clientNode: false });
    expect(names((await client(resolved.config).list('/api/v1/services', {})).items)).toEqual(['demo/web']);
    expect((await lean(file)).server).toBe('http://127.0.0.1:1'); // current-context is "other"

    const yaml = write(
      dir,
      'config.yaml',
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: c',
        '  cluster:',
        `    server: ${server.url}`,
        'users:',
        '- name: u',
        '  user:',
        '    token: right',
        'contexts:',
        '- name: ctx',
        '  context: {cluster: c, user: u}',
        'current-context: ctx',
        '',
      ].join('\n'),
    );
    expect((await client((await lean(yaml)).config).list('/api/v1/services', {})).items).toHaveLength(1);
  });

  test('token-file relative to the kubeconfig, re-read per request; basic auth; impersonation', async () => {
    const server = await startServer({ token: 'first' });
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'secrets'));
    fs.writeFileSync(path.join(dir, 'secrets', 'token'), 'first\n');
    const file = write(dir, 'config', server.kubeconfig({ tokenFile: 'secrets/token' }));
    const c = client((await lean(file)).config);
    await c.list('/api/v1/services', {});
    fs.writeFileSync(path.join(dir, 'secrets', 'token'), 'second\n');
    server.setToken('second');
    await c.list('/api/v1/services', {});
    expect(server.requests.map((r) => `${r.token} ${r.status}`)).toEqual(['first 200', 'second 200']);

    const raw = await rawServer((_req, res) => emptyList(res));
    const basic = write(dir, 'basic', kubeconfig(raw.url, {}, { username: 'admin', password: 's3cret', as: 'system:serviceaccount:kube-system:coredns', 'as-groups': ['a', 'b'] }));
    await client((await lean(basic)).config).list('/api/v1/services', {});
    expect(raw.headers[0]!.authorization).toBe(`Basic ${Buffer.from('admin:s3cret').toString('base64')}`);
    expect(raw.headers[0]!['impersonate-user']).toBe('system:serviceaccount:kube-system:coredns');
    expect(raw.headers[0]!['impersonate-group']).toBe('a, b');
    // A token wins over username/password.
    const both = write(dir, 'both', kubeconfig(raw.url, {}, { token: 'tok', username: 'admin', password: 'x' }));
    await client((await lean(both)).config).list('/api/v1/services', {});
    expect(raw.headers[1]!.authorization).toBe('Bearer tok');
  });

  test('client-certificate-data / client-key-data and certificate-authority-data; or the same as files relative to the kubeconfig', async () => {
    const server = await startServer({ tls: true, requireClientCert: true });
    server.add(service('demo', 'web'));
    const dir = tempDir();
    const embedded = write(dir, 'embedded', server.kubeconfig({ clientCert: true }));
    expect((await client((await lean(embedded)).config).list('/api/v1/services', {})).items).toHaveLength(1);
    expect(server.requests.at(-1)!.clientCertCN).toBe('system:serviceaccount:kube-system:coredns');

    fs.mkdirSync(path.join(dir, 'pki'));
    fs.writeFileSync(path.join(dir, 'pki', 'ca.crt'), TEST_CA_CERT);
    fs.writeFileSync(path.join(dir, 'pki', 'client.crt'), TEST_CLIENT_CERT);
    fs.writeFileSync(path.join(dir, 'pki', 'client.key'), TEST_CLIENT_KEY);
    const files = write(
      dir,
      'files',
      kubeconfig(server.url, { 'certificate-authority': 'pki/ca.crt' }, { 'client-certificate': 'pki/client.crt', 'client-key': path.join(dir, 'pki', 'client.key') }),
    );
    const c = client((await lean(files)).config);
    const watching = c.watch('/api/v1/services', {}, () => {}, AbortSignal.timeout(300));
    await server.waitForWatches(1);
    expect((await watching).kind).toBe('aborted');
    expect(server.requests.at(-1)).toMatchObject({ verb: 'watch', status: 200, clientCertCN: 'system:serviceaccount:kube-system:coredns' });
  });

  test('insecure-skip-tls-verify and tls-server-name', async () => {
    const server = await startServer({ tls: true, token: 't' });
    const dir = tempDir();
    const insecure = write(dir, 'insecure', kubeconfig(server.url, { 'insecure-skip-tls-verify': true }, { token: 't' }));
    expect((await client((await lean(insecure)).config).list('/api/v1/services', {})).items).toEqual([]);
    const verified = write(dir, 'verified', kubeconfig(server.url, {}, { token: 't' }));
    await expect(client((await lean(verified)).config).list('/api/v1/services', {})).rejects.toThrow(/self-signed|unable to verify|issuer certificate/);

    const ca = Buffer.from(TEST_CA_CERT).toString('base64');
    // The test certificate is for 127.0.0.1, ::1 and localhost.
    const named = write(dir, 'named', kubeconfig(server.url, { 'certificate-authority-data': ca, 'tls-server-name': 'localhost' }, { token: 't' }));
    expect((await client((await lean(named)).config).list('/api/v1/services', {})).items).toEqual([]);
    const wrong = write(dir, 'wrong', kubeconfig(server.url, { 'certificate-authority-data': ca, 'tls-server-name': 'api.example.com' }, { token: 't' }));
    await expect(client((await lean(wrong)).config).list('/api/v1/services', {})).rejects.toThrow(/api\.example\.com/);
  });

  test('unusable kubeconfigs fail with a clear message', async () => {
    const dir = tempDir();
    const url = 'http://127.0.0.1:1';
    await expect(lean(path.join(dir, 'missing'))).rejects.toThrow(`kubeconfig ${path.join(dir, 'missing')}: no such file`);
    await expect(lean(write(dir, 'a', kubeconfig(url, {}, {})), 'nope')).rejects.toThrow('context "nope" not found');
    await expect(lean(write(dir, 'b', kubeconfig(url, {}, {}, { 'current-context': '' })))).rejects.toThrow('no current-context (name one after the path)');
    const unknownCluster = kubeconfig(url, {}, {});
    unknownCluster.contexts[0]!.context.cluster = 'x';
    await expect(lean(write(dir, 'c', unknownCluster))).rejects.toThrow('context "ctx" names unknown cluster "x"');
    await expect(lean(write(dir, 'd', kubeconfig(url, {}, { 'client-certificate': 'x.crt' })))).rejects.toThrow('user "u" has a client certificate but no client key');
    await expect(lean(write(dir, 'e', kubeconfig(url, {}, { 'token-file': 'nope' })))).rejects.toThrow(`token-file ${path.join(dir, 'nope')}: no such file`);
    await expect(lean(write(dir, 'f', kubeconfig('ftp://x', {}, {})))).rejects.toThrow('is not an http:// or https:// URL');
    await expect(lean(write(dir, 'g', 'clusters: [\n'))).rejects.toThrow(/^kubeconfig .*\/g: /);
  });

  test('exec (and auth-provider, proxy-url) fall back to client-node, which prepares the requests for the same client', async () => {
    const server = await startServer({ token: 'from-exec' });
    server.add(service('demo', 'web'));
    const dir = tempDir();
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
    const file = write(
      dir,
      'exec',
      kubeconfig(server.url, {}, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `console.log(${JSON.stringify(credential)})`], interactiveMode: 'Never' } }),
    );
    const resolved = await lean(file);
    expect(resolved.clientNode).toBe(true);
    expect(resolved.description).toBe(`kubeconfig ${file} context "ctx" (exec through @kubernetes/client-node)`);
    const c = client(resolved.config);
    expect(names((await c.list('/api/v1/services', {})).items)).toEqual(['demo/web']);
    const r = recorder();
    const watching = c.watch('/api/v1/services', {}, r.onEvent);
    await server.waitForWatches(1);
    server.closeWatches();
    expect(await watching).toEqual({ kind: 'closed', events: 1, opened: true });
    expect(server.requests.map((x) => `${x.verb} ${x.token} ${x.status}`)).toEqual(['list from-exec 200', 'watch from-exec 200']);
  });
});

describe('memory: the lean path does not load @kubernetes/client-node', () => {
  test('in-cluster, endpoint + tls and kubeconfig connections list and watch without importing it; an exec kubeconfig does import it', async () => {
    const server = await startServer({ tls: true, token: 'tok' });
    server.add(service('demo', 'web'));
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'token'), 'tok');
    for (const [name, text] of [['client.crt', TEST_CLIENT_CERT], ['client.key', TEST_CLIENT_KEY], ['ca.crt', TEST_CA_CERT]] as const) {
      fs.writeFileSync(path.join(dir, name), text);
    }
    fs.writeFileSync(path.join(dir, 'kubeconfig'), server.kubeconfig({ token: 'tok' }));
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'tok' } });
    const exec = {
      apiVersion: 'v1',
      clusters: [{ name: 'c', cluster: { server: server.url, 'certificate-authority-data': Buffer.from(TEST_CA_CERT).toString('base64') } }],
      users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `console.log(${JSON.stringify(credential)})`] } } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'ctx',
    };
    fs.writeFileSync(path.join(dir, 'exec'), JSON.stringify(exec));
    const root = fileURLToPath(new URL('../../', import.meta.url));
    // A child process that records every module it resolves (module.registerHooks), uses the
    // lean connections, then the exec one, and reports what was loaded at each step.
    const script = `
      import { registerHooks } from 'node:module';
      const loaded = new Set();
      registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.add(r.url); return r; } });
      const base = ${JSON.stringify(pathToFileURL(root).href)};
      const { resolveConnection } = await import(base + 'plugins/kubernetes/connection.ts');
      const { createApiClient } = await import(base + 'plugins/kubernetes/http-client.ts');
      const dir = ${JSON.stringify(dir)};
      const report = {};
      const use = async (name, connection, environment) => {
        const resolved = await resolveConnection(connection, environment);
        const client = createApiClient(resolved.config);
        const page = await client.list('/api/v1/services', { limit: 10 });
        const outcome = await client.watch('/api/v1/services', { resourceVersion: page.metadata.resourceVersion }, () => {}, AbortSignal.timeout(100));
        client.close();
        report[name] = { items: page.items.length, watch: outcome.kind, clientNode: [...loaded].filter((u) => u.includes('@kubernetes/client-node')).length, yaml: [...loaded].some((u) => u.includes('/node_modules/yaml/')) };
      };
      await use('in-cluster', { endpoint: null, tls: null, kubeconfig: null }, { serviceAccountDir: dir, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '${server.port}' } });
      await use('endpoint', { endpoint: ${JSON.stringify(server.url)}, tls: { cert: dir + '/client.crt', key: dir + '/client.key', ca: dir + '/ca.crt' }, kubeconfig: null });
      await use('kubeconfig', { endpoint: null, tls: null, kubeconfig: { path: dir + '/kubeconfig', context: null } });
      await use('exec', { endpoint: null, tls: null, kubeconfig: { path: dir + '/exec', context: null } });
      console.log(JSON.stringify(report));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(stderr.replace(/^.*ExperimentalWarning.*\n?|^\(Use `node --trace-warnings.*\n?/gm, '')).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report['in-cluster']).toEqual({ items: 1, watch: 'aborted', clientNode: 0, yaml: false });
    expect(report.endpoint).toEqual({ items: 1, watch: 'aborted', clientNode: 0, yaml: false });
    expect(report.kubeconfig).toEqual({ items: 1, watch: 'aborted', clientNode: 0, yaml: true });
    expect(report.exec.items).toBe(1);
    expect(report.exec.clientNode).toBeGreaterThan(100); // the hook does see it when it is loaded
  });

  test('clusterdns with `endpoint` syncs and is ready without ever importing it', async () => {
    const server = await startServer();
    server.add(service('demo', 'web'));
    const dir = tempDir();
    const hook = path.join(dir, 'hook.mjs');
    const out = path.join(dir, 'modules.json');
    fs.writeFileSync(
      hook,
      `import { registerHooks } from 'node:module';
       import { writeFileSync } from 'node:fs';
       const loaded = new Set();
       registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); loaded.add(r.url); return r; } });
       process.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify([...loaded])));`,
    );
    const [dns, ready] = [await freePort(), await freePort()];
    fs.writeFileSync(path.join(dir, 'Corefile'), `.:${dns} {\n ready 127.0.0.1:${ready}\n kubernetes cluster.local {\n  endpoint ${server.url}\n }\n}\n`);
    const cli = startCli(['-conf', path.join(dir, 'Corefile')], { env: { NODE_OPTIONS: `--import=${hook}` } });
    cleanups.push(async () => {
      if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
      await cli.exited;
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const status = await fetch(`http://127.0.0.1:${ready}/ready`).then((r) => r.status, () => 0);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`not ready: ${JSON.stringify(cli.output())}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(server.requestsFor('list').map((r) => r.resource).sort()).toEqual(['endpointslices', 'namespaces', 'services']);
    cli.child.kill('SIGTERM');
    await cli.exited;
    const loaded: string[] = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(loaded.some((u) => u.endsWith('/plugins/kubernetes/api-source.ts'))).toBe(true);
    expect(loaded.some((u) => u.endsWith('/plugins/kubernetes/http-client.ts'))).toBe(true);
    expect(loaded.filter((u) => u.includes('@kubernetes/client-node'))).toEqual([]);
  });
});
