// The API server stand-in itself (test/support/apiserver.ts), checked with
// plain fetch so the source tests can trust what it does.

import { afterEach, describe, expect, test } from 'vitest';
import { TestApiServer, type ApiServerOptions, type KubeObject } from '../support/apiserver.ts';

const servers: TestApiServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

async function start(options: ApiServerOptions = {}): Promise<TestApiServer> {
  const server = await TestApiServer.start(options);
  servers.push(server);
  return server;
}

async function get(server: TestApiServer, path: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, any> }> {
  const response = await fetch(server.url + path, init);
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

interface WatchEvent {
  type: string;
  object: Record<string, any>;
}

/** Opens a watch and collects events until `done(events)` or the stream ends. */
async function watch(server: TestApiServer, path: string, done: (events: WatchEvent[]) => boolean = () => false, timeoutMs = 2000): Promise<{ status: number; events: WatchEvent[]; ended: boolean }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const response = await fetch(server.url + path, { signal: abort.signal });
  const events: WatchEvent[] = [];
  let ended = false;
  if (response.status !== 200) {
    clearTimeout(timer);
    return { status: response.status, events: [{ type: 'HTTP', object: (await response.json()) as Record<string, any> }], ended: true };
  }
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      if (done(events)) break;
      const { value, done: finished } = await reader.read();
      if (finished) {
        ended = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buffer.slice(0, nl)) as WatchEvent);
        buffer = buffer.slice(nl + 1);
      }
    }
  } catch {
    // aborted
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return { status: response.status, events, ended };
}

const svc = (name: string, labels: Record<string, string> = {}, namespace = 'demo'): KubeObject => ({
  kind: 'Service',
  metadata: { name, namespace, labels },
  spec: { clusterIP: '10.96.0.1' },
});

describe('test API server: list', () => {
  test('lists with a resourceVersion, items without kind, label and field selectors, namespaced paths', async () => {
    const server = await start();
    server.add(svc('a', { tier: 'web', env: 'prod' }));
    server.add(svc('b', { tier: 'db' }));
    server.add(svc('c', {}, 'other'));
    server.add({ kind: 'Pod', metadata: { name: 'p1', namespace: 'demo' }, status: { phase: 'Running' } });
    server.add({ kind: 'Pod', metadata: { name: 'p2', namespace: 'demo' }, status: { phase: 'Succeeded' } });
    const all = await get(server, '/api/v1/services');
    expect(all.status).toBe(200);
    expect(all.body.kind).toBe('ServiceList');
    expect(all.body.metadata.resourceVersion).toBe(String(server.resourceVersion));
    expect(all.body.items.map((i: KubeObject) => i.metadata.name)).toEqual(['a', 'b', 'c']);
    expect(all.body.items[0].kind).toBeUndefined();
    const names = async (query: string) =>
      (await get(server, `/api/v1/services?labelSelector=${encodeURIComponent(query)}`)).body.items.map((i: KubeObject) => i.metadata.name);
    expect(await names('tier=web')).toEqual(['a']);
    expect(await names('tier in (web,db)')).toEqual(['a', 'b']);
    expect(await names('tier notin (web)')).toEqual(['b', 'c']);
    expect(await names('tier!=web')).toEqual(['b', 'c']);
    expect(await names('env')).toEqual(['a']);
    expect(await names('!env,tier')).toEqual(['b']);
    expect((await get(server, '/api/v1/namespaces/other/services')).body.items.map((i: KubeObject) => i.metadata.name)).toEqual(['c']);
    const pods = await get(server, `/api/v1/pods?fieldSelector=${encodeURIComponent('status.phase!=Succeeded,status.phase!=Failed')}`);
    expect(pods.body.items.map((i: KubeObject) => i.metadata.name)).toEqual(['p1']);
    expect((await get(server, '/api/v1/services?labelSelector=%3D%3D')).status).toBe(400);
  });

  test('pagination with limit/continue; a continue token older than the history gives 410 Expired', async () => {
    const server = await start();
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.add(svc(n));
    const first = await get(server, '/api/v1/services?limit=2');
    expect(first.body.items).toHaveLength(2);
    expect(first.body.metadata.remainingItemCount).toBe(3);
    const second = await get(server, `/api/v1/services?limit=2&continue=${first.body.metadata.continue}`);
    expect(second.body.items.map((i: KubeObject) => i.metadata.name)).toEqual(['c', 'd']);
    expect(second.body.metadata.resourceVersion).toBe(first.body.metadata.resourceVersion);
    server.expireHistory();
    const stale = await get(server, `/api/v1/services?limit=2&continue=${second.body.metadata.continue}`);
    expect(stale.status).toBe(410);
    expect(stale.body).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
  });
});

describe('test API server: watch', () => {
  test('without a resourceVersion: ADDED for the current state, then live events', async () => {
    const server = await start();
    server.add(svc('a'));
    const pending = watch(server, '/api/v1/services?watch=true', (e) => e.length >= 3);
    await server.waitForWatches(1);
    server.update(svc('a', { x: 'y' }));
    server.delete(svc('a'));
    const { events } = await pending;
    expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'a'],
      ['MODIFIED', 'a'],
      ['DELETED', 'a'],
    ]);
    expect(Number(events[2]!.object.metadata.resourceVersion)).toBe(server.resourceVersion);
  });

  test('from a resourceVersion: replays the history; selector transitions become ADDED/DELETED', async () => {
    const server = await start();
    const rv = server.resourceVersion;
    server.add(svc('a', { dns: 'yes' }));
    server.add(svc('b'));
    server.update(svc('b', { dns: 'yes' }));
    server.update(svc('a', { dns: 'no' }));
    const { events } = await watch(server, `/api/v1/services?watch=true&resourceVersion=${rv}&labelSelector=dns%3Dyes`, (e) => e.length >= 3);
    expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'a'],
      ['ADDED', 'b'],
      ['DELETED', 'a'],
    ]);
  });

  test('bookmarks only when allowed; timeoutSeconds ends the watch', async () => {
    const server = await start();
    const pending = watch(server, '/api/v1/namespaces?watch=true&allowWatchBookmarks=true&timeoutSeconds=1');
    const plain = watch(server, '/api/v1/namespaces?watch=true&timeoutSeconds=1');
    await server.waitForWatches(2);
    server.sendBookmarks();
    const [withBookmarks, without] = await Promise.all([pending, plain]);
    expect(withBookmarks.ended).toBe(true);
    expect(withBookmarks.events).toEqual([{ type: 'BOOKMARK', object: { kind: 'Namespace', apiVersion: 'v1', metadata: { resourceVersion: String(server.resourceVersion) } } }]);
    expect(without.events).toEqual([]);
  });

  test('410 Gone: ERROR event to open watches and to watches from an expired resourceVersion, or HTTP 410', async () => {
    const server = await start();
    const rv = server.resourceVersion;
    const open = watch(server, `/api/v1/services?watch=true&resourceVersion=${rv}`);
    await server.waitForWatches(1);
    server.expireHistory();
    const closed = await open;
    expect(closed.ended).toBe(true);
    expect(closed.events).toMatchObject([{ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } }]);
    const late = await watch(server, `/api/v1/services?watch=true&resourceVersion=${rv}`);
    expect(late.status).toBe(200);
    expect(late.events).toMatchObject([{ type: 'ERROR', object: { code: 410 } }]);
    server.goneAs = 'status';
    const asStatus = await watch(server, `/api/v1/services?watch=true&resourceVersion=${rv}`);
    expect(asStatus.status).toBe(410);
    // A list's resourceVersion is still valid to watch from after the compaction.
    const list = await get(server, '/api/v1/services');
    const fresh = watch(server, `/api/v1/services?watch=true&resourceVersion=${list.body.metadata.resourceVersion}`, (e) => e.length >= 1);
    await server.waitForWatches(1);
    server.add(svc('z'));
    expect((await fresh).events.map((e) => e.type)).toEqual(['ADDED']);
  });
});

describe('test API server: access', () => {
  test('STOCK-6 RBAC: get and writes are forbidden; discovery is served; requests are logged with their verb', async () => {
    const server = await start();
    server.add(svc('a'));
    expect((await get(server, '/api/v1/namespaces/demo/services/a')).status).toBe(403);
    const post = await get(server, '/api/v1/namespaces/demo/services', { method: 'POST', body: '{}' });
    expect(post.status).toBe(403);
    expect(post.body.message).toContain('cannot create resource "services"');
    expect((await get(server, '/api/v1/namespaces/demo')).status).toBe(403);
    expect((await get(server, '/api')).body.versions).toEqual(['v1']);
    expect((await get(server, '/apis')).body.groups[0].name).toBe('discovery.k8s.io');
    expect((await get(server, '/version')).body.major).toBe('1');
    expect((await get(server, '/api/v1/nodes')).status).toBe(404);
    expect(server.requests.map((r) => r.verb)).toEqual(['get', 'create', 'get', 'discovery', 'discovery', 'discovery', 'other']);
  });

  test('bearer token required when set (401 otherwise); injected failures; stop and restart on the same port keep the state', async () => {
    const server = await start({ token: 't0k3n' });
    server.add(svc('a'));
    expect((await get(server, '/api/v1/services')).status).toBe(401);
    const auth = { headers: { authorization: 'Bearer t0k3n' } };
    expect((await get(server, '/api/v1/services', auth)).status).toBe(200);
    server.failRequests(500, { verb: 'list', resource: 'services', times: 1, message: 'boom' });
    expect(await get(server, '/api/v1/services', auth)).toMatchObject({ status: 500, body: { message: 'boom' } });
    expect((await get(server, '/api/v1/services', auth)).status).toBe(200);
    const port = server.port;
    await server.stop();
    await expect(fetch(server.url + '/api/v1/services')).rejects.toThrow();
    await server.restart();
    expect(server.port).toBe(port);
    expect((await get(server, '/api/v1/services', auth)).body.items).toHaveLength(1);
  });
});
