// A Kubernetes API server stand-in for tests: real HTTP(S) on loopback, so
// the API source's client (and client-node, for exec kubeconfigs) runs for
// real against it. It serves list and watch for the resources cluster DNS
// reads (services, namespaces, pods, endpoints, endpointslices), with the
// parts of the API contract a client depends on:
//
// - labelSelector (equality and set-based) and fieldSelector (=, ==, != on any
//   dotted field path, e.g. status.phase!=Succeeded);
// - one monotonically increasing resourceVersion for all kinds; lists carry it
//   in metadata.resourceVersion, objects in metadata.resourceVersion;
// - list pagination (limit / continue, with 410 Expired for a stale token);
// - watch=true as chunked JSON lines ({"type":"ADDED",...}), resuming from a
//   resourceVersion (history replay), or starting with synthetic ADDED events
//   when none (or "0") is given; objects moving in or out of a watch's
//   selectors are sent as ADDED / DELETED, as the real server does;
// - allowWatchBookmarks (BOOKMARK events on sendBookmarks() or an interval),
//   timeoutSeconds;
// - 410 Gone after expireHistory(): as a watch ERROR event carrying a Status
//   with code 410 (the default, what kube-apiserver does), or as an HTTP 410
//   response (goneAs = 'status');
// - discovery (/api, /apis, /version), bearer-token and client-certificate
//   authentication, and RBAC as STOCK-6 grants it: only list and watch on
//   those five resources; anything else is 403 Forbidden;
// - test controls: add/update/delete, expireHistory, closeWatches,
//   delayLists, failRequests, stop/restart on the same port, a request log.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type {
  ClusterStore,
  EndpointSliceRecord,
  NamespaceRecord,
  PodRecord,
  ServiceRecord,
} from '../../plugins/kubernetes/model.ts';

/** A Kubernetes object as tests write it: kind and metadata.name are required. */
export type KubeObject = { kind: string; metadata: { name: string; namespace?: string; [key: string]: any }; [key: string]: any };

export type Verb = 'list' | 'watch' | 'get' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection' | 'discovery' | 'other';

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  verb: Verb;
  /** Plural resource name (services, endpointslices, ...), null for discovery and unknown paths. */
  resource: string | null;
  namespace: string | null;
  status: number;
  /** The bearer token presented, if any. */
  token: string | null;
  /** CN of an accepted client certificate, if any. */
  clientCertCN: string | null;
  /** Date.now() at arrival. */
  time: number;
}

export interface ApiServerOptions {
  /** Require `Authorization: Bearer <token>` (or a valid client certificate in TLS mode); 401 otherwise. */
  token?: string | null;
  /** Serve HTTPS with the embedded test certificate (CA: TEST_CA_CERT). */
  tls?: boolean;
  /** With tls: require a client certificate signed by the test CA (or a token). */
  requireClientCert?: boolean;
  /** Send BOOKMARK events to watches that allow them every this many ms (0: only on sendBookmarks()). */
  bookmarkIntervalMs?: number;
}

interface ResourceInfo {
  plural: string;
  kind: string;
  apiVersion: string;
  namespaced: boolean;
  group: '' | 'discovery.k8s.io';
}

const RESOURCES: ResourceInfo[] = [
  { plural: 'services', kind: 'Service', apiVersion: 'v1', namespaced: true, group: '' },
  { plural: 'namespaces', kind: 'Namespace', apiVersion: 'v1', namespaced: false, group: '' },
  { plural: 'pods', kind: 'Pod', apiVersion: 'v1', namespaced: true, group: '' },
  { plural: 'endpoints', kind: 'Endpoints', apiVersion: 'v1', namespaced: true, group: '' },
  { plural: 'endpointslices', kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', namespaced: true, group: 'discovery.k8s.io' },
];

const byKind = new Map(RESOURCES.map((r) => [r.kind, r]));
const byPlural = new Map(RESOURCES.map((r) => [r.plural, r]));

interface FieldRequirement {
  path: string[];
  op: '=' | '!=';
  value: string;
}

function parseFieldSelector(text: string): FieldRequirement[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const m = part.trim().match(/^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new Error(`invalid field selector ${JSON.stringify(text)}`);
    return { path: m[1]!.split('.'), op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() };
  });
}

function fieldValue(obj: unknown, path: string[]): string {
  let value: unknown = obj;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return '';
    value = (value as Record<string, unknown>)[key];
  }
  return value === undefined || value === null ? '' : String(value);
}

interface Watcher {
  resource: ResourceInfo;
  namespace: string | null;
  labels: LabelSelector | null;
  fields: FieldRequirement[];
  bookmarks: boolean;
  response: http.ServerResponse;
  timer: NodeJS.Timeout | null;
}

interface HistoryEvent {
  rv: number;
  resource: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
  previous: KubeObject | null;
}

interface FailureRule {
  status: number;
  message: string;
  verb: Verb | null;
  resource: string | null;
  when: ((request: RequestRecord) => boolean) | null;
  remaining: number;
}

function statusBody(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function keyOf(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class TestApiServer {
  readonly options: ApiServerOptions;
  /** Every request, in arrival order. */
  readonly requests: RequestRecord[] = [];
  /** 'event' (default): a watch from an expired resourceVersion gets 200 + ERROR(410). 'status': HTTP 410. */
  goneAs: 'event' | 'status' = 'event';

  private server: http.Server | https.Server;
  private portNumber = 0;
  private running = false;
  private rv = 1;
  private compactedRv = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  /**
   * Per resource, its objects sorted by key (with the keys alongside), built on
   * the first list after a change: paginated lists of 100k+ objects would
   * otherwise sort everything again for every page (O(n² log n / limit)), and
   * the benchmarks would measure this server instead of the client.
   */
  private readonly sortedCache = new Map<string, { keys: string[]; objects: KubeObject[] }>();
  private history: HistoryEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private listDelayMs = 0;
  private failures: FailureRule[] = [];
  private token: string | null;
  private bookmarkTimer: NodeJS.Timeout | null = null;
  private uid = 0;

  private constructor(options: ApiServerOptions) {
    this.options = options;
    this.token = options.token ?? null;
    for (const r of RESOURCES) this.objects.set(r.plural, new Map());
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.sendJson(res, 500, statusBody(500, 'InternalError', String(err)));
        else res.destroy();
      });
    };
    this.server = options.tls
      ? https.createServer(
          {
            cert: TEST_SERVER_CERT,
            key: TEST_SERVER_KEY,
            ca: TEST_CA_CERT,
            requestCert: true,
            rejectUnauthorized: false,
          },
          handler,
        )
      : http.createServer(handler);
  }

  /** Starts a server on 127.0.0.1 with a kernel-chosen port. */
  static async start(options: ApiServerOptions = {}): Promise<TestApiServer> {
    const server = new TestApiServer(options);
    await server.listen(0);
    return server;
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.portNumber}`;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): number {
    return this.rv;
  }

  // ---- state controls ------------------------------------------------------

  add(input: KubeObject): KubeObject {
    const resource = this.resourceFor(input);
    const obj = this.prepare(input, resource);
    const store = this.objects.get(resource.plural)!;
    if (store.has(keyOf(obj))) throw new Error(`${resource.kind} ${keyOf(obj)} already exists`);
    obj.metadata.uid = `uid-${++this.uid}`;
    obj.metadata.creationTimestamp = new Date().toISOString();
    obj.metadata.resourceVersion = String(++this.rv);
    store.set(keyOf(obj), obj);
    this.emit({ rv: this.rv, resource: resource.plural, type: 'ADDED', object: obj, previous: null });
    return clone(obj);
  }

  update(input: KubeObject): KubeObject {
    const resource = this.resourceFor(input);
    const obj = this.prepare(input, resource);
    const store = this.objects.get(resource.plural)!;
    const previous = store.get(keyOf(obj));
    if (!previous) throw new Error(`${resource.kind} ${keyOf(obj)} does not exist`);
    obj.metadata.uid = previous.metadata.uid;
    obj.metadata.creationTimestamp = previous.metadata.creationTimestamp;
    obj.metadata.resourceVersion = String(++this.rv);
    store.set(keyOf(obj), obj);
    this.emit({ rv: this.rv, resource: resource.plural, type: 'MODIFIED', object: obj, previous });
    return clone(obj);
  }

  /** Adds the object, or updates it if it exists. */
  apply(input: KubeObject): KubeObject {
    const resource = this.resourceFor(input);
    const key = keyOf(this.prepare(input, resource));
    return this.objects.get(resource.plural)!.has(key) ? this.update(input) : this.add(input);
  }

  delete(input: { kind: string; metadata: { name: string; namespace?: string } }): void {
    const resource = this.resourceFor(input);
    const key = `${resource.namespaced ? (input.metadata.namespace ?? 'default') : ''}/${input.metadata.name}`;
    const store = this.objects.get(resource.plural)!;
    const previous = store.get(key);
    if (!previous) throw new Error(`${resource.kind} ${key} does not exist`);
    store.delete(key);
    const obj = clone(previous);
    obj.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, resource: resource.plural, type: 'DELETED', object: obj, previous });
  }

  /** The stored objects of one kind (copies). */
  list(kind: string): KubeObject[] {
    const resource = byKind.get(kind);
    if (!resource) throw new Error(`unknown kind ${kind}`);
    return [...this.objects.get(resource.plural)!.values()].map(clone);
  }

  /**
   * Compacts the event history: any watch (or paginated list) from a
   * resourceVersion before now gets 410 Gone. With closeWatches (default),
   * open watches get an ERROR event with code 410 and are closed, which is
   * what a client sees when it falls too far behind.
   */
  expireHistory(options: { closeWatches?: boolean } = {}): void {
    this.rv++;
    this.compactedRv = this.rv;
    this.history = [];
    if (options.closeWatches ?? true) {
      for (const w of [...this.watchers]) {
        this.writeEvent(w, 'ERROR', this.goneStatus(Number(this.rv) - 1));
        this.endWatch(w);
      }
    }
  }

  /** Ends every open watch normally (as timeoutSeconds would). */
  closeWatches(): void {
    for (const w of [...this.watchers]) this.endWatch(w);
  }

  /** Sends a BOOKMARK with the current resourceVersion to watches that allow them. */
  sendBookmarks(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      this.writeEvent(w, 'BOOKMARK', {
        kind: w.resource.kind,
        apiVersion: w.resource.apiVersion,
        metadata: { resourceVersion: String(this.rv) },
      });
    }
  }

  /** Delays every list response by `ms` (0 to stop). */
  delayLists(ms: number): void {
    this.listDelayMs = ms;
  }

  /**
   * Makes matching requests fail with `status` (a Status body with `message`).
   * `times` defaults to every request until clearFailures(); `when` narrows
   * the match further (e.g. only list requests with a continue token).
   */
  failRequests(
    status: number,
    options: { verb?: Verb; resource?: string; times?: number; message?: string; when?: (request: RequestRecord) => boolean } = {},
  ): void {
    this.failures.push({
      status,
      message: options.message ?? http.STATUS_CODES[status] ?? 'error',
      verb: options.verb ?? null,
      resource: options.resource ?? null,
      when: options.when ?? null,
      remaining: options.times ?? Infinity,
    });
  }

  clearFailures(): void {
    this.failures = [];
  }

  /** Changes the accepted bearer token (null: no authentication). */
  setToken(token: string | null): void {
    this.token = token;
  }

  /** Open watches, optionally of one resource (plural). */
  watchCount(resource?: string): number {
    let n = 0;
    for (const w of this.watchers) if (!resource || w.resource.plural === resource) n++;
    return n;
  }

  /** Resolves once at least `count` watches (of `resource`) are open. */
  async waitForWatches(count: number, resource?: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.watchCount(resource) < count) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${count} watches${resource ? ` on ${resource}` : ''} (have ${this.watchCount(resource)})`);
      }
      await sleep(10);
    }
  }

  /** Requests of one verb (and resource). */
  requestsFor(verb: Verb, resource?: string): RequestRecord[] {
    return this.requests.filter((r) => r.verb === verb && (!resource || r.resource === resource));
  }

  /** Stops listening and drops every connection (an API server that went away). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    this.bookmarkTimer = null;
    for (const w of this.watchers) if (w.timer) clearTimeout(w.timer);
    this.watchers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  /** Listens again on the same port, keeping all objects and the history. */
  async restart(): Promise<void> {
    await this.listen(this.portNumber);
  }

  /**
   * A kubeconfig (JSON, which is YAML) for this server. `token` or
   * `tokenFile` set the user's credentials; `clientCert` uses the test client
   * certificate. Extra contexts can point elsewhere.
   */
  kubeconfig(options: { token?: string; tokenFile?: string; clientCert?: boolean; context?: string; extraContexts?: { name: string; server: string }[] } = {}): string {
    const context = options.context ?? 'test';
    const user: Record<string, string> = {};
    if (options.token) user.token = options.token;
    if (options.tokenFile) user['token-file'] = options.tokenFile;
    if (options.clientCert) {
      user['client-certificate-data'] = Buffer.from(TEST_CLIENT_CERT).toString('base64');
      user['client-key-data'] = Buffer.from(TEST_CLIENT_KEY).toString('base64');
    }
    const cluster: Record<string, string> = { server: this.url };
    if (this.options.tls) cluster['certificate-authority-data'] = Buffer.from(TEST_CA_CERT).toString('base64');
    const extra = options.extraContexts ?? [];
    return JSON.stringify(
      {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster }, ...extra.map((e) => ({ name: e.name, cluster: { server: e.server } }))],
        users: [{ name: 'test', user }],
        contexts: [
          { name: context, context: { cluster: 'test', user: 'test' } },
          ...extra.map((e) => ({ name: e.name, context: { cluster: e.name, user: 'test' } })),
        ],
        'current-context': extra[0]?.name ?? context,
      },
      null,
      2,
    );
  }

  // ---- internals -------------------------------------------------------------

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ port, host: '127.0.0.1' }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.portNumber = (this.server.address() as AddressInfo).port;
    this.running = true;
    if (this.options.bookmarkIntervalMs) {
      this.bookmarkTimer = setInterval(() => this.sendBookmarks(), this.options.bookmarkIntervalMs);
      this.bookmarkTimer.unref();
    }
  }

  private resourceFor(input: { kind: string }): ResourceInfo {
    const resource = byKind.get(input.kind);
    if (!resource) throw new Error(`the test API server does not serve kind ${input.kind}`);
    return resource;
  }

  private prepare(input: KubeObject | { kind: string; metadata: { name: string; namespace?: string } }, resource: ResourceInfo): KubeObject {
    const obj = clone(input) as KubeObject;
    obj.apiVersion ??= resource.apiVersion;
    obj.metadata = { ...obj.metadata };
    if (resource.namespaced) obj.metadata.namespace ??= 'default';
    else delete obj.metadata.namespace;
    return obj;
  }

  private emit(event: HistoryEvent): void {
    this.sortedCache.delete(event.resource);
    this.history.push(event);
    for (const w of this.watchers) {
      if (w.resource.plural === event.resource) this.deliver(w, event);
    }
  }

  private matches(w: Pick<Watcher, 'namespace' | 'labels' | 'fields'>, obj: KubeObject | null): boolean {
    if (!obj) return false;
    if (w.namespace && obj.metadata.namespace !== w.namespace) return false;
    if (w.labels && !w.labels.matches((obj.metadata.labels as Record<string, string>) ?? {})) return false;
    return w.fields.every((f) => (fieldValue(obj, f.path) === f.value) === (f.op === '='));
  }

  /** One history event as a given watch sees it (selector transitions become ADDED/DELETED). */
  private deliver(w: Watcher, event: HistoryEvent): void {
    const now = event.type === 'DELETED' ? false : this.matches(w, event.object);
    const before = event.type === 'ADDED' ? false : this.matches(w, event.previous);
    if (event.type === 'DELETED') {
      if (before) this.writeEvent(w, 'DELETED', event.object);
    } else if (now && before) {
      this.writeEvent(w, 'MODIFIED', event.object);
    } else if (now) {
      this.writeEvent(w, 'ADDED', event.object);
    } else if (before) {
      this.writeEvent(w, 'DELETED', event.object);
    }
  }

  private writeEvent(w: Watcher, type: string, object: object): void {
    if (w.response.writableEnded || w.response.destroyed) return;
    w.response.write(JSON.stringify({ type, object }) + '\n');
  }

  private endWatch(w: Watcher): void {
    this.watchers.delete(w);
    if (w.timer) clearTimeout(w.timer);
    if (!w.response.writableEnded) w.response.end();
  }

  private goneStatus(rv: number): object {
    return statusBody(410, 'Expired', `too old resource version: ${rv} (${this.compactedRv})`);
  }

  private sendJson(res: http.ServerResponse, status: number, body: object): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = Object.fromEntries(url.searchParams.entries());
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : null;
    let clientCertCN: string | null = null;
    if (this.options.tls) {
      const socket = req.socket as TLSSocket;
      if (socket.authorized) {
        const subject = socket.getPeerCertificate().subject as unknown as Record<string, string> | undefined;
        clientCertCN = subject?.CN ?? null;
      }
    }
    const route = this.route(url.pathname);
    const method = req.method ?? 'GET';
    let verb: Verb = 'other';
    if (route.type === 'discovery') verb = 'discovery';
    else if (route.type === 'collection') {
      verb = method === 'GET' ? (query.watch === 'true' || query.watch === '1' ? 'watch' : 'list') : method === 'POST' ? 'create' : method === 'DELETE' ? 'deletecollection' : 'other';
    } else if (route.type === 'object') {
      verb = method === 'GET' ? 'get' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : method === 'DELETE' ? 'delete' : 'other';
    }
    const record: RequestRecord = {
      method,
      path: url.pathname,
      query,
      verb,
      resource: route.type === 'discovery' || route.type === 'unknown' ? null : route.resource.plural,
      namespace: route.type === 'collection' || route.type === 'object' ? route.namespace : null,
      status: 200,
      token,
      clientCertCN,
      time: Date.now(),
    };
    this.requests.push(record);
    const fail = (status: number, reason: string, message: string) => {
      record.status = status;
      this.sendJson(res, status, statusBody(status, reason, message));
    };

    // Authentication.
    const authenticated = this.token === null || token === this.token || (this.options.tls && clientCertCN !== null && !token);
    const needsCert = this.options.tls && this.options.requireClientCert && clientCertCN === null && (this.token === null || token !== this.token);
    if (!authenticated || needsCert) return fail(401, 'Unauthorized', 'Unauthorized');

    // Injected failures.
    const rule = this.failures.find(
      (f) => f.remaining > 0 && (!f.verb || f.verb === verb) && (!f.resource || f.resource === record.resource) && (!f.when || f.when(record)),
    );
    if (rule) {
      rule.remaining--;
      return fail(rule.status, http.STATUS_CODES[rule.status]?.replace(/ /g, '') ?? 'Error', rule.message);
    }

    if (route.type === 'discovery') {
      record.status = 200;
      return this.sendJson(res, 200, route.body);
    }
    if (route.type === 'unknown') return fail(404, 'NotFound', 'the server could not find the requested resource');

    // RBAC as STOCK-6 grants it: list and watch only.
    const user = clientCertCN ?? 'system:serviceaccount:kube-system:coredns';
    if (verb !== 'list' && verb !== 'watch') {
      const name = route.type === 'object' ? ` "${route.name}"` : '';
      return fail(
        403,
        'Forbidden',
        `${route.resource.plural}${name} is forbidden: User "${user}" cannot ${verb} resource "${route.resource.plural}" in API group "${route.resource.group}"` +
          (route.namespace ? ` in the namespace "${route.namespace}"` : ' at the cluster scope'),
      );
    }
    if (route.type !== 'collection') return fail(405, 'MethodNotAllowed', 'method not allowed');

    let labels: LabelSelector | null = null;
    let fields: FieldRequirement[] = [];
    try {
      labels = query.labelSelector ? parseLabelSelector(query.labelSelector) : null;
      fields = parseFieldSelector(query.fieldSelector ?? '');
    } catch (err) {
      return fail(400, 'BadRequest', (err as Error).message);
    }
    const filter = { namespace: route.namespace, labels, fields };
    if (verb === 'list') return this.serveList(res, record, route.resource, filter, query, fail);
    return this.serveWatch(req, res, record, route.resource, filter, query, fail);
  }

  private async serveList(
    res: http.ServerResponse,
    record: RequestRecord,
    resource: ResourceInfo,
    filter: Pick<Watcher, 'namespace' | 'labels' | 'fields'>,
    query: Record<string, string>,
    fail: (status: number, reason: string, message: string) => void,
  ): Promise<void> {
    if (this.listDelayMs > 0) await sleep(this.listDelayMs);
    if (!this.running || res.destroyed) return;
    let listRv = this.rv;
    let after = '';
    if (query.continue) {
      let token: { rv: number; after: string };
      try {
        token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8'));
      } catch {
        return fail(400, 'BadRequest', 'invalid continue token');
      }
      if (token.rv < this.compactedRv) {
        return fail(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      }
      listRv = token.rv;
      after = token.after;
    } else if (query.resourceVersionMatch === 'Exact' && Number(query.resourceVersion) < this.compactedRv) {
      return fail(410, 'Expired', `too old resource version: ${query.resourceVersion} (${this.compactedRv})`);
    }
    const { keys, objects } = this.sorted(resource.plural);
    // The first key after the continue token's: binary search in the sorted keys.
    let low = 0;
    let high = keys.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (keys[middle]! <= after) low = middle + 1;
      else high = middle;
    }
    const limit = query.limit ? Number(query.limit) : 0;
    const unfiltered = !filter.namespace && !filter.labels && filter.fields.length === 0;
    const page: KubeObject[] = [];
    let remaining = 0;
    for (let i = low; i < objects.length; i++) {
      if (limit > 0 && page.length === limit && unfiltered) {
        remaining = objects.length - i;
        break;
      }
      const o = objects[i]!;
      if (!this.matches(filter, o)) continue;
      if (limit > 0 && page.length === limit) remaining++;
      else page.push(o);
    }
    const metadata: Record<string, unknown> = { resourceVersion: String(listRv) };
    if (remaining > 0) {
      metadata.continue = Buffer.from(JSON.stringify({ rv: listRv, after: keyOf(page[page.length - 1]!) })).toString('base64url');
      metadata.remainingItemCount = remaining;
    }
    // List items carry no kind/apiVersion, as from the real server.
    const items = page.map((o) => {
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = o;
      return rest;
    });
    record.status = 200;
    this.sendJson(res, 200, { kind: `${resource.kind}List`, apiVersion: resource.apiVersion, metadata, items });
  }

  private sorted(plural: string): { keys: string[]; objects: KubeObject[] } {
    let cached = this.sortedCache.get(plural);
    if (!cached) {
      const entries = [...this.objects.get(plural)!.values()].map((o) => [keyOf(o), o] as const);
      entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      cached = { keys: entries.map((e) => e[0]), objects: entries.map((e) => e[1]) };
      this.sortedCache.set(plural, cached);
    }
    return cached;
  }

  private serveWatch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: RequestRecord,
    resource: ResourceInfo,
    filter: Pick<Watcher, 'namespace' | 'labels' | 'fields'>,
    query: Record<string, string>,
    fail: (status: number, reason: string, message: string) => void,
  ): void {
    const rvParam = query.resourceVersion ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? null : Number(rvParam);
    if (fromRv !== null && !Number.isInteger(fromRv)) return fail(400, 'BadRequest', `invalid resourceVersion ${rvParam}`);
    if (fromRv !== null && fromRv < this.compactedRv) {
      if (this.goneAs === 'status') return fail(410, 'Expired', `too old resource version: ${fromRv} (${this.compactedRv})`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'ERROR', object: this.goneStatus(fromRv) }) + '\n');
      return;
    }
    record.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = {
      resource,
      ...filter,
      bookmarks: query.allowWatchBookmarks === 'true',
      response: res,
      timer: null,
    };
    if (fromRv === null) {
      for (const obj of this.objects.get(resource.plural)!.values()) {
        if (this.matches(w, obj)) this.writeEvent(w, 'ADDED', obj);
      }
    } else {
      for (const event of this.history) {
        if (event.rv > fromRv && event.resource === resource.plural) this.deliver(w, event);
      }
    }
    this.watchers.add(w);
    const timeout = Number(query.timeoutSeconds ?? 0);
    if (timeout > 0) w.timer = setTimeout(() => this.endWatch(w), timeout * 1000);
    req.on('close', () => {
      this.watchers.delete(w);
      if (w.timer) clearTimeout(w.timer);
    });
  }

  private route(
    pathname: string,
  ):
    | { type: 'discovery'; body: object }
    | { type: 'collection'; resource: ResourceInfo; namespace: string | null }
    | { type: 'object'; resource: ResourceInfo; namespace: string | null; name: string }
    | { type: 'unknown' } {
    const s = pathname.split('/').filter(Boolean);
    const path = s.join('/');
    const resourceList = (group: string, version: string) => ({
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: RESOURCES.filter((r) => r.group === group).map((r) => ({
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      })),
    });
    const discovery: Record<string, object> = {
      api: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.portNumber}` }] },
      'api/v1': resourceList('', 'v1'),
      apis: {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [
          {
            name: 'discovery.k8s.io',
            versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
            preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
          },
        ],
      },
      'apis/discovery.k8s.io': {
        kind: 'APIGroup',
        apiVersion: 'v1',
        name: 'discovery.k8s.io',
        versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
        preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
      },
      'apis/discovery.k8s.io/v1': resourceList('discovery.k8s.io', 'v1'),
      version: { major: '1', minor: '31', gitVersion: 'v1.31.0-clusterdns-test', platform: 'linux/amd64' },
      healthz: { status: 'ok' },
      readyz: { status: 'ok' },
      livez: { status: 'ok' },
    };
    if (discovery[path]) return { type: 'discovery', body: discovery[path]! };
    let group: '' | 'discovery.k8s.io';
    let rest: string[];
    if (s[0] === 'api' && s[1] === 'v1') {
      group = '';
      rest = s.slice(2);
    } else if (s[0] === 'apis' && s[1] === 'discovery.k8s.io' && s[2] === 'v1') {
      group = 'discovery.k8s.io';
      rest = s.slice(3);
    } else {
      return { type: 'unknown' };
    }
    const resource = (plural: string | undefined) => {
      const r = plural ? byPlural.get(plural) : undefined;
      return r && r.group === group ? r : null;
    };
    if (rest.length === 1 && resource(rest[0])) return { type: 'collection', resource: resource(rest[0])!, namespace: null };
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const r = resource(rest[2]);
      if (r && r.namespaced) {
        if (rest.length === 3) return { type: 'collection', resource: r, namespace: rest[1]! };
        if (rest.length === 4) return { type: 'object', resource: r, namespace: rest[1]!, name: rest[3]! };
      }
    }
    if (rest.length === 2 && resource(rest[0])) {
      return { type: 'object', resource: resource(rest[0])!, namespace: null, name: rest[1]! };
    }
    return { type: 'unknown' };
  }
}

// ---------------------------------------------------------------------------
// Label selectors as the API server takes them (equality- and set-based,
// including != which the Corefile `labels` option does not allow).

type LabelRequirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] };

interface LabelSelector {
  /** The text it was parsed from (what goes on the wire as labelSelector). */
  text: string;
  requirements: LabelRequirement[];
  matches(labels: Record<string, string>): boolean;
}

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string, text: string): string {
  if (!LABEL_KEY.test(key)) throw new Error(`invalid label selector ${JSON.stringify(text)}: invalid key ${JSON.stringify(key)}`);
  return key;
}

function checkValue(value: string, text: string): string {
  if (!LABEL_VALUE.test(value) || value.length > 63) {
    throw new Error(`invalid label selector ${JSON.stringify(text)}: invalid value ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses a label selector; throws Error with a readable message on bad syntax. */
function parseLabelSelector(text: string): LabelSelector {
  const requirements: LabelRequirement[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw new Error(`invalid label selector ${JSON.stringify(text)}: unbalanced parentheses`);
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw new Error(`invalid label selector ${JSON.stringify(text)}: unbalanced parentheses`);
  parts.push(current);
  if (parts.length === 1 && parts[0]!.trim() === '') {
    return { text, requirements, matches: () => true };
  }
  for (const rawPart of parts) {
    const part = rawPart.trim();
    if (part === '') throw new Error(`invalid label selector ${JSON.stringify(text)}: empty requirement`);
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^!\s*([^\s=!(),]+)$/))) {
      requirements.push({ key: checkKey(m[1]!, text), op: '!exists' });
    } else if ((m = part.match(/^([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)$/))) {
      const values = m[3]!.split(',').map((v) => checkValue(v.trim(), text));
      requirements.push({ key: checkKey(m[1]!, text), op: m[2] as 'in' | 'notin', values });
    } else if ((m = part.match(/^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/))) {
      const op = m[2] === '!=' ? '!=' : '=';
      requirements.push({ key: checkKey(m[1]!, text), op, value: checkValue(m[3]!, text) });
    } else if ((m = part.match(/^([^\s=!(),]+)$/))) {
      requirements.push({ key: checkKey(m[1]!, text), op: 'exists' });
    } else {
      throw new Error(`invalid label selector ${JSON.stringify(text)}: cannot parse ${JSON.stringify(part)}`);
    }
  }
  return {
    text,
    requirements,
    matches(labels) {
      return requirements.every((r) => {
        const has = Object.hasOwn(labels, r.key);
        const value = labels[r.key];
        switch (r.op) {
          case 'exists':
            return has;
          case '!exists':
            return !has;
          case '=':
            return has && value === r.value;
          case '!=':
            return !has || value !== r.value;
          case 'in':
            return has && r.values.includes(value!);
          case 'notin':
            return !has || !r.values.includes(value!);
        }
      });
    },
  };
}

// ---------------------------------------------------------------------------
// Test-only PKI: a CA, a server certificate for 127.0.0.1/::1/localhost and a
// client certificate (CN system:serviceaccount:kube-system:coredns), EC P-256,
// valid 2000-01-01 to 2125-01-01. Never use outside tests.

export const TEST_CA_CERT = `-----BEGIN CERTIFICATE-----
MIIBbjCCARSgAwIBAgICEAAwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY2x1c3Rl
cmRucy10ZXN0LWNhMCAXDTAwMDEwMTAwMDAwMFoYDzIxMjUwMTAxMDAwMDAwWjAd
MRswGQYDVQQDDBJjbHVzdGVyZG5zLXRlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASbRT/WYyl/lVm7xNzeCHtOwOMgDe2ccJdcXDW6PM3wCGmqh5da4L3J
w7WWMz7NUSxo/tF6LtNtor3g559/Yz6so0IwQDAPBgNVHRMBAf8EBTADAQH/MA4G
A1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUVgmlM9RQvWpV/Ac2Ffq2QeBfilMwCgYI
KoZIzj0EAwIDSAAwRQIgZgB180htYE7U25RJS64/HYWixlgeOPL8p2zlV5l/mmMC
IQC2cXTuwxu8ZiCII+Kip4+sU/Dv/DTWV0sncwrM0gcktg==
-----END CERTIFICATE-----
`;

export const TEST_SERVER_CERT = `-----BEGIN CERTIFICATE-----
MIIByjCCAXCgAwIBAgICEAEwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY2x1c3Rl
cmRucy10ZXN0LWNhMCAXDTAwMDEwMTAwMDAwMFoYDzIxMjUwMTAxMDAwMDAwWjAZ
MRcwFQYDVQQDDA5rdWJlLWFwaXNlcnZlcjBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABAH+KrFGyBieTxwdRHXil+jYScGpo9sPvd4OXqQMFZIumoEqPK/dg971esQT
1NGqZFj0Ag7jUe4lpGWIveoFlaqjgaEwgZ4wCQYDVR0TBAIwADAOBgNVHQ8BAf8E
BAMCBaAwEwYDVR0lBAwwCgYIKwYBBQUHAwEwLAYDVR0RBCUwI4cEfwAAAYcQAAAA
AAAAAAAAAAAAAAAAAYIJbG9jYWxob3N0MB8GA1UdIwQYMBaAFFYJpTPUUL1qVfwH
NhX6tkHgX4pTMB0GA1UdDgQWBBQhOD5WfnGZ4riKHzccyKVzGmQDUzAKBggqhkjO
PQQDAgNIADBFAiBp9Tdjm9BG3L4ulue+6sm6wUON/0fXa7508HtM51RswAIhAJwA
uy0Gjf//xUGTewZXFoVYGJXUEt6I48P6fnfZOoJz
-----END CERTIFICATE-----
`;

export const TEST_SERVER_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg44NWSbQ/4Z1z7l23
HWaMIXV54rC/RG5oYvIErInnnhihRANCAAQB/iqxRsgYnk8cHUR14pfo2EnBqaPb
D73eDl6kDBWSLpqBKjyv3YPe9XrEE9TRqmRY9AIO41HuJaRliL3qBZWq
-----END PRIVATE KEY-----
`;

export const TEST_CLIENT_CERT = `-----BEGIN CERTIFICATE-----
MIIBtTCCAVugAwIBAgICEAIwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSY2x1c3Rl
cmRucy10ZXN0LWNhMCAXDTAwMDEwMTAwMDAwMFoYDzIxMjUwMTAxMDAwMDAwWjA0
MTIwMAYDVQQDDClzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06Y29y
ZWRuczBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIOI7HUsIieNU1HOF1i3uzX0
59R16bDhRwS6A18UiKmaaVk4/FvYyTbNAovN4bFeRbx3LqK4FmDH/xctnYoMQ7mj
cjBwMAkGA1UdEwQCMAAwDgYDVR0PAQH/BAQDAgWgMBMGA1UdJQQMMAoGCCsGAQUF
BwMCMB8GA1UdIwQYMBaAFFYJpTPUUL1qVfwHNhX6tkHgX4pTMB0GA1UdDgQWBBTt
PxKBG+py/K1Nk661s2bBgli1SzAKBggqhkjOPQQDAgNIADBFAiA3jWsW5K2DZDQV
nEvE9jt8xAMAv5njrHNSqePGEbRgVAIhAPVoln7+lQakhPKHj5G1+vroUz0o8rTc
RpRIQRII24/T
-----END CERTIFICATE-----
`;

export const TEST_CLIENT_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPFc3bFxImcdF40af
PLoNav5+ADs8nsr7uN3jBnoFsPShRANCAASDiOx1LCInjVNRzhdYt7s19OfUdemw
4UcEugNfFIipmmlZOPxb2Mk2zQKLzeGxXkW8dy6iuBZgx/8XLZ2KDEO5
-----END PRIVATE KEY-----
`;

// ---------------------------------------------------------------------------
// A ClusterStore that records what a source did, for source tests.

export class RecordingStore implements ClusterStore {
  readonly services = new Map<string, ServiceRecord>();
  readonly slices = new Map<string, EndpointSliceRecord>();
  readonly namespaces = new Map<string, NamespaceRecord>();
  readonly pods = new Map<string, PodRecord>();
  /** Every call, e.g. `upsertService demo/web`, `replaceAll Service 3`, `markSynced`. */
  readonly ops: string[] = [];
  syncedCount = 0;
  /** Called after every operation (tests use it to check invariants at each step). */
  onChange: ((op: string) => void) | null = null;

  private record(op: string): void {
    this.ops.push(op);
    this.onChange?.(op);
  }

  upsertService(s: ServiceRecord): void {
    this.services.set(`${s.namespace}/${s.name}`, s);
    this.record(`upsertService ${s.namespace}/${s.name}`);
  }
  deleteService(namespace: string, name: string): void {
    this.services.delete(`${namespace}/${name}`);
    this.record(`deleteService ${namespace}/${name}`);
  }
  upsertEndpointSlice(s: EndpointSliceRecord): void {
    this.slices.set(`${s.namespace}/${s.name}`, s);
    this.record(`upsertEndpointSlice ${s.namespace}/${s.name}`);
  }
  deleteEndpointSlice(namespace: string, name: string): void {
    this.slices.delete(`${namespace}/${name}`);
    this.record(`deleteEndpointSlice ${namespace}/${name}`);
  }
  upsertNamespace(n: NamespaceRecord): void {
    this.namespaces.set(n.name, n);
    this.record(`upsertNamespace ${n.name}`);
  }
  deleteNamespace(name: string): void {
    this.namespaces.delete(name);
    this.record(`deleteNamespace ${name}`);
  }
  upsertPod(p: PodRecord): void {
    this.pods.set(`${p.namespace}/${p.name}`, p);
    this.record(`upsertPod ${p.namespace}/${p.name}`);
  }
  deletePod(namespace: string, name: string): void {
    this.pods.delete(`${namespace}/${name}`);
    this.record(`deletePod ${namespace}/${name}`);
  }
  replaceAll(kind: 'Service', records: ServiceRecord[]): void;
  replaceAll(kind: 'EndpointSlice', records: EndpointSliceRecord[]): void;
  replaceAll(kind: 'Namespace', records: NamespaceRecord[]): void;
  replaceAll(kind: 'Pod', records: PodRecord[]): void;
  replaceAll(kind: 'Service' | 'EndpointSlice' | 'Namespace' | 'Pod', records: unknown[]): void {
    const target = { Service: this.services, EndpointSlice: this.slices, Namespace: this.namespaces, Pod: this.pods }[kind] as Map<string, unknown>;
    target.clear();
    for (const r of records as { namespace?: string; name: string }[]) {
      target.set(kind === 'Namespace' ? r.name : `${r.namespace}/${r.name}`, r);
    }
    this.record(`replaceAll ${kind} ${records.length}`);
  }
  markSynced(): void {
    this.syncedCount++;
    this.record('markSynced');
  }
}

/** Polls `check` until it returns true (or a truthy value), failing after `timeoutMs`. */
export async function waitFor<T>(check: () => T, what: string, timeoutMs = 4000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
