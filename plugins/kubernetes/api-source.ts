// The API server as a ClusterSource: list + watch of Services,
// EndpointSlices, Namespaces and (with `pods verified`) Pods, converted to
// compact records as they arrive (KP-22).
//
// Why not client-node's informer (makeInformer / ListWatch)? Checked against
// test/support/apiserver.ts with client-node 2.0.1: it does re-list on 410,
// but its ObjectCache keeps every whole API object for the life of the
// process, which is exactly the memory problem cluster DNS servers have at
// scale (users.md P3: CoreDNS OOM-killed when whole Endpoints objects sat in
// the informer cache, and a relist after an API server restart doubling
// memory); after a dropped connection it emits 'error' and never watches
// again; it lists without pagination and asks for no bookmarks or
// timeoutSeconds. So each resource here runs a small reflector of
// its own on client-node's parts: the generated list API (paginated, 500 per
// page) and the Watch class, with KubeConfig doing authentication. Each page
// of a list and each watch event is converted to records at once and the
// object dropped; the only state kept per resource is the last
// resourceVersion. The store holds the records.
//
// Per resource, the loop is:
//   list (all pages) → store.replaceAll(kind, records) → rv = list's resourceVersion
//   watch from rv (allowWatchBookmarks, timeoutSeconds 5–10 min); every event
//     and BOOKMARK advances rv
//   watch ended normally (server timeout, inactivity timeout) → watch again from rv
//   410 Gone (an ERROR event with code 410, or HTTP 410) → list again; the
//     re-list replaces everything at once, so records that still exist are
//     never absent in between, and deleted ones disappear
//   any other error → keep serving what the store has; retry after a backoff
//     of 0.5 s doubling to 30 s (reset once a list succeeds or a watch has
//     lasted or delivered events), from rv when there is one
// markSynced() is called once every resource has completed its first list.
//
// Metrics (metrics.ts): every list page and watch request is counted and
// timed (KP-42), and every EndpointSlice change a watch delivers is timed
// from its last-change-trigger-time (KP-41).
//
// Credentials (KP-5..7): kubeconfig (path, context) wins over endpoint (+ tls
// files); with neither, in-cluster config from KUBERNETES_SERVICE_HOST/PORT and
// the service-account directory. Service-account tokens are bound and rotate,
// so the token file is read again for every request (list page or watch
// start; these are rare) instead of once: client-node's own FileAuth rereads
// only after 60 s and its kubeconfig `token-file` support reads once at load.

import fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type {
  Cluster,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  RequestContext,
  ResponseContext,
  User,
} from '@kubernetes/client-node';
import type { Logger } from '../../src/log.ts';
import {
  isTerminating,
  objectKey,
  resourceVersionOf,
  toEndpointSliceRecord,
  toNamespaceRecord,
  toPodRecord,
  toServiceRecord,
  type ObjectKey,
} from './convert.ts';
import { hostLabel, observeDnsProgramming, startRestRequest } from './metrics.ts';
import { parseLabelSelector } from './selector.ts';
import type {
  ApiConnection,
  ClusterSource,
  ClusterStore,
  EndpointSliceRecord,
  NamespaceRecord,
  PodRecord,
  ServiceRecord,
  SourceOptions,
} from './model.ts';

/** Timings and paths; the defaults suit production, tests shorten them. */
export interface ApiSourceTuning {
  /** First retry delay after an error. */
  backoffBaseMs: number;
  /** Retry delays double up to this. */
  backoffMaxMs: number;
  /** Random extra delay, as a fraction of the delay (spreads replicas out). */
  jitter: number;
  /** Items per list page (limit). */
  pageSize: number;
  /** Abort a list page that takes longer. */
  listTimeoutMs: number;
  /** timeoutSeconds sent with each watch (the server ends the watch then). */
  watchTimeoutSeconds: () => number;
  /** Abort a watch that delivered nothing (not even a bookmark) for this long. */
  watchInactivityMs: number;
  /** In-cluster: where token and ca.crt are. */
  serviceAccountDir: string;
  /** In-cluster: where KUBERNETES_SERVICE_HOST/PORT are read. */
  env: Record<string, string | undefined>;
}

export const DEFAULT_TUNING: ApiSourceTuning = {
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  jitter: 0.1,
  pageSize: 500,
  listTimeoutMs: 60_000,
  // client-go: a random 5–10 minutes, so watches of many clients do not end together.
  watchTimeoutSeconds: () => 300 + Math.floor(Math.random() * 300),
  // kube-apiserver sends a bookmark about once a minute to watches that allow them.
  watchInactivityMs: 150_000,
  serviceAccountDir: '/var/run/secrets/kubernetes.io/serviceaccount',
  env: process.env,
};

// ---------------------------------------------------------------------------
// client-node, loaded on first use: importing it adds about 55 MB of RSS
// (undici plus thousands of generated model classes; Node 24), which a server
// without an API source (manifests, or no kubernetes plugin) should not pay
// just because this module is imported.

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: Promise<ClientNode> | null = null;

function loadClientNode(): Promise<ClientNode> {
  clientNode ??= import('@kubernetes/client-node');
  return clientNode;
}

// ---------------------------------------------------------------------------
// Configuration (KP-5..7)

const TOKEN_FILE_PROVIDER = 'clusterdns-token-file';

type Authenticator = Parameters<KubeConfig['addAuthenticator']>[0];

/** Bearer token from a file, read again on every request (KP-5). */
function tokenFileAuthenticator(): Authenticator {
  const lastGood = new Map<string, string>();
  return {
    isAuthProvider: (user: User) => user.authProvider?.name === TOKEN_FILE_PROVIDER,
    async applyAuthentication(user: User, opts) {
      const file: string = user.authProvider.config.path;
      let token: string;
      try {
        token = fs.readFileSync(file, 'utf8').trim();
        lastGood.set(file, token);
      } catch (err) {
        // Mid-rotation the file can be briefly missing: keep the previous token.
        token = lastGood.get(file) ?? '';
        if (!token) throw new Error(`cannot read token file ${file}: ${(err as Error).message}`);
      }
      const headers = ((opts as { headers?: Record<string, unknown> }).headers ??= {});
      headers.Authorization = `Bearer ${token}`;
    },
  };
}

export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  /** The API server URL. */
  server: string;
  /** How it was configured, for logs. */
  description: string;
}

function readable(file: string, what: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (err) {
    throw new Error(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/**
 * client-node refuses plain-http servers unless insecure-skip-tls-verify is
 * set; with http there is no TLS to verify, so set it (kubectl accepts them).
 */
function allowHttp(cluster: Cluster): Cluster {
  return cluster.server.startsWith('http:') ? { ...cluster, skipTLSVerify: true } : cluster;
}

/** Builds the client configuration from the plugin's options (KP-5..7). Rejects on unusable configuration. */
export async function loadKubeConfig(
  connection: ApiConnection,
  tuning: Pick<ApiSourceTuning, 'serviceAccountDir' | 'env'> = DEFAULT_TUNING,
): Promise<LoadedKubeConfig> {
  const { KubeConfig } = await loadClientNode();
  const kc = new KubeConfig();
  kc.addAuthenticator(tokenFileAuthenticator());

  if (connection.kubeconfig) {
    const file = path.resolve(connection.kubeconfig.path);
    const context = connection.kubeconfig.context;
    // users[].user.token-file: client-node reads it once at load (relative to the working
    // directory); take it out and read it per request instead, relative to the kubeconfig.
    const tokenFiles = new Map<string, string>();
    const { parse: parseYaml } = await import('yaml'); // only kubeconfig users pay for it
    try {
      const doc = parseYaml(fs.readFileSync(file, 'utf8')) as { users?: { name?: string; user?: Record<string, unknown> }[] } | null;
      for (const u of doc?.users ?? []) {
        const tokenFile = u.user?.['token-file'];
        if (u.name && typeof tokenFile === 'string' && !u.user?.token && !u.user?.exec && !u.user?.['auth-provider']) {
          tokenFiles.set(u.name, path.resolve(path.dirname(file), tokenFile));
          delete u.user!['token-file'];
        }
      }
      kc.loadFromString(JSON.stringify(doc ?? {}));
    } catch (err) {
      throw new Error(`kubeconfig ${file}: ${(err as Error).message}`);
    }
    kc.makePathsAbsolute(path.dirname(file));
    if (context) {
      if (!kc.getContextObject(context)) throw new Error(`kubeconfig ${file}: context "${context}" not found`);
      kc.setCurrentContext(context);
    }
    const current = kc.getContextObject(kc.getCurrentContext());
    if (!current) throw new Error(`kubeconfig ${file}: no current-context (name one after the path)`);
    if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${file}: context "${current.name}" names unknown cluster "${current.cluster}"`);
    kc.loadFromOptions({
      clusters: kc.getClusters().map(allowHttp),
      users: kc.getUsers().map((user) => {
        const tokenFile = tokenFiles.get(user.name);
        if (!tokenFile) return user;
        const { token: _token, ...rest } = user;
        return { ...rest, authProvider: { name: TOKEN_FILE_PROVIDER, config: { path: tokenFile } } };
      }),
      contexts: kc.getContexts(),
      currentContext: kc.getCurrentContext(),
    });
    const server = kc.getCurrentCluster()!.server;
    return { kubeConfig: kc, server, description: `kubeconfig ${file} context "${kc.getCurrentContext()}"` };
  }

  if (connection.endpoint) {
    let url: URL;
    try {
      url = new URL(connection.endpoint);
    } catch {
      throw new Error(`endpoint ${connection.endpoint}: not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`endpoint ${connection.endpoint}: expected an http:// or https:// URL`);
    }
    const server = connection.endpoint.replace(/\/+$/, '');
    const tls = connection.tls;
    if (tls) {
      readable(path.resolve(tls.cert), 'tls client certificate');
      readable(path.resolve(tls.key), 'tls client key');
      readable(path.resolve(tls.ca), 'tls CA certificate');
    }
    kc.loadFromOptions({
      clusters: [
        allowHttp({ name: 'endpoint', server, skipTLSVerify: false, ...(tls ? { caFile: path.resolve(tls.ca) } : {}) }),
      ],
      users: [{ name: 'endpoint', ...(tls ? { certFile: path.resolve(tls.cert), keyFile: path.resolve(tls.key) } : {}) }],
      contexts: [{ name: 'endpoint', cluster: 'endpoint', user: 'endpoint' }],
      currentContext: 'endpoint',
    });
    return { kubeConfig: kc, server, description: `endpoint ${server}` };
  }

  // In-cluster, as client-go's rest.InClusterConfig: always https.
  const host = tuning.env.KUBERNETES_SERVICE_HOST;
  const port = tuning.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error(
      'unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined ' +
        '(outside a cluster, set endpoint or kubeconfig)',
    );
  }
  const tokenFile = path.join(tuning.serviceAccountDir, 'token');
  const caFile = path.join(tuning.serviceAccountDir, 'ca.crt');
  readable(tokenFile, 'unable to load in-cluster configuration: service account token');
  const server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  kc.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, skipTLSVerify: false, ...(fs.existsSync(caFile) ? { caFile } : {}) }],
    users: [{ name: 'in-cluster', authProvider: { name: TOKEN_FILE_PROVIDER, config: { path: tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
  return { kubeConfig: kc, server, description: `in-cluster ${server}` };
}

// ---------------------------------------------------------------------------
// Errors

function statusMessage(body: unknown): string | null {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return (value as string).trim() || null;
    }
  }
  if (value && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string') {
    return (value as { message: string }).message;
  }
  return null;
}

/** client-node's ApiException (from a list) has a numeric `code`; Watch errors carry `statusCode`. */
function isApiException(err: unknown): err is Error & { code: number; body: unknown } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number';
}

function statusCodeOf(err: unknown): number | null {
  if (isApiException(err)) return err.code;
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : null;
}

/** One line saying what went wrong: HTTP status and the API server's message, or the network error. */
export function describeError(err: unknown): string {
  const code = statusCodeOf(err);
  if (code !== null) {
    const message = isApiException(err) ? statusMessage(err.body) : null;
    let text = `${code} ${STATUS_CODES[code] ?? 'error'}${message ? `: ${message}` : ''}`;
    if (code === 401) text += ' (the API server rejected the credentials: check the token or client certificate)';
    if (code === 403) text += ' (check RBAC: list and watch on services, endpointslices, namespaces, pods)';
    return text;
  }
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return 'timed out';
    // undici: TypeError('fetch failed') with the socket error as cause.
    let e: unknown = err;
    let message = err.message;
    while (e instanceof Error && e.cause instanceof Error) {
      e = e.cause;
      message = (e as Error).message || message;
    }
    return message;
  }
  return String(err);
}

// ---------------------------------------------------------------------------
// Resources

interface ListPage {
  items: unknown[];
  metadata?: { resourceVersion?: string; _continue?: string };
}

interface ListParams {
  labelSelector?: string;
  fieldSelector?: string;
  limit: number;
  _continue?: string;
}

interface Apis {
  core: CoreV1Api;
  discovery: DiscoveryV1Api;
}

type CallOptions = ReturnType<typeof callOptions>;

/** What a generated API call reports about its HTTP request, for the metrics (KP-42). */
interface CallHooks {
  /** The request is about to go out (credentials applied). */
  onSend(): void;
  /** Its response headers arrived. */
  onResponse(status: number): void;
}

/** Per-call options that make a generated API call abortable, and report on its request. */
function callOptions(k8s: ClientNode, signal: AbortSignal, hooks: CallHooks) {
  return {
    middleware: [
      {
        pre: (ctx: RequestContext) => {
          ctx.setSignal(signal);
          hooks.onSend();
          return new k8s.Observable(Promise.resolve(ctx));
        },
        post: (ctx: ResponseContext) => {
          hooks.onResponse(ctx.httpStatusCode);
          return new k8s.Observable(Promise.resolve(ctx));
        },
      },
    ],
    middlewareMergeStrategy: 'append' as const,
  };
}

interface KindSpec<R> {
  kind: string;
  /** Plural, as in the URL and in messages. */
  resource: string;
  watchPath: string;
  labelSelector?: string;
  fieldSelector?: string;
  list(apis: Apis, params: ListParams, options: CallOptions): Promise<ListPage>;
  toRecord(obj: unknown): R | null;
  upsert(store: ClusterStore, record: R): void;
  remove(store: ClusterStore, key: ObjectKey): void;
  replaceAll(store: ClusterStore, records: R[]): void;
  /** Watch events for which this is true are ignored. */
  ignoreEvent?(obj: unknown): boolean;
}

/**
 * KP-41: a slice change that came through a watch (upsert is only used for
 * watch events; lists go through replaceAll), timed from its trigger time,
 * when exactly one Service of its name is known.
 */
function recordProgramming(store: ClusterStore, slice: EndpointSliceRecord): void {
  if (slice.lastChangeTriggerTime === null || !store.service) return;
  const service = store.service(slice.namespace, slice.serviceName);
  if (!service) return;
  observeDnsProgramming(service.headless ? 'headless_with_selector' : 'cluster_ip', (Date.now() - slice.lastChangeTriggerTime) / 1000);
}

/** Pods that cannot appear in DNS: finished or lost ones (KP-22). */
export const POD_FIELD_SELECTOR = 'status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown';

function kindSpecs(options: SourceOptions): KindSpec<unknown>[] {
  const labels = options.labelSelector ?? undefined;
  const services: KindSpec<ServiceRecord> = {
    kind: 'Service',
    resource: 'services',
    watchPath: '/api/v1/services',
    labelSelector: labels,
    list: (apis, params, o) => apis.core.listServiceForAllNamespaces(params, o),
    toRecord: toServiceRecord,
    upsert: (store, r) => store.upsertService(r),
    remove: (store, k) => store.deleteService(k.namespace, k.name),
    replaceAll: (store, rs) => store.replaceAll('Service', rs),
  };
  const slices: KindSpec<EndpointSliceRecord> = {
    kind: 'EndpointSlice',
    resource: 'endpointslices',
    watchPath: '/apis/discovery.k8s.io/v1/endpointslices',
    labelSelector: labels,
    list: (apis, params, o) => apis.discovery.listEndpointSliceForAllNamespaces(params, o),
    toRecord: toEndpointSliceRecord,
    upsert: (store, r) => {
      store.upsertEndpointSlice(r);
      recordProgramming(store, r);
    },
    remove: (store, k) => store.deleteEndpointSlice(k.namespace, k.name),
    replaceAll: (store, rs) => store.replaceAll('EndpointSlice', rs),
  };
  const namespaces: KindSpec<NamespaceRecord> = {
    kind: 'Namespace',
    resource: 'namespaces',
    watchPath: '/api/v1/namespaces',
    labelSelector: options.namespaceLabelSelector ?? undefined,
    list: (apis, params, o) => apis.core.listNamespace(params, o),
    toRecord: toNamespaceRecord,
    upsert: (store, r) => store.upsertNamespace(r),
    remove: (store, k) => store.deleteNamespace(k.name),
    replaceAll: (store, rs) => store.replaceAll('Namespace', rs),
  };
  const pods: KindSpec<PodRecord> = {
    kind: 'Pod',
    resource: 'pods',
    watchPath: '/api/v1/pods',
    labelSelector: labels,
    fieldSelector: POD_FIELD_SELECTOR,
    list: (apis, params, o) => apis.core.listPodForAllNamespaces(params, o),
    toRecord: toPodRecord,
    upsert: (store, r) => store.upsertPod(r),
    remove: (store, k) => store.deletePod(k.namespace, k.name),
    replaceAll: (store, rs) => store.replaceAll('Pod', rs),
    // Updates for pods being deleted are ignored; the DELETED event removes them (KP-22).
    ignoreEvent: isTerminating,
  };
  const specs: KindSpec<unknown>[] = [services as KindSpec<unknown>];
  if (options.watchEndpoints) specs.push(slices as KindSpec<unknown>);
  specs.push(namespaces as KindSpec<unknown>);
  if (options.watchPods) specs.push(pods as KindSpec<unknown>);
  return specs;
}

// ---------------------------------------------------------------------------
// The reflector loop, one per resource

class StoppedError extends Error {}

interface WatchOutcome {
  kind: 'closed' | 'gone' | 'error';
  error?: unknown;
  /** The watch was established and lasted (≥ 1 s) or delivered events: resets the backoff. */
  healthy: boolean;
}

class Reflector {
  readonly spec: KindSpec<unknown>;
  private readonly source: ApiSource;
  /** resourceVersion to resume from; '' = list first. */
  rv = '';
  synced = false;
  /** The last request succeeded (list done, or watch established). */
  connected = false;
  phase: 'listing' | 'watching' | 'waiting' = 'listing';
  lastError = '';
  retryAt = 0;
  lastListCount = 0;
  private failures = 0;
  private listAbort: AbortController | null = null;
  private interrupt: (() => void) | null = null;

  constructor(spec: KindSpec<unknown>, source: ApiSource) {
    this.spec = spec;
    this.source = source;
  }

  async run(): Promise<void> {
    while (!this.source.stopped) {
      if (this.rv === '') {
        this.phase = 'listing';
        try {
          await this.list();
        } catch (err) {
          if (this.source.stopped) return;
          if (statusCodeOf(err) === 410) {
            // The continue token of a long paginated list expired: start the list over.
            this.source.log.debug(`list ${this.spec.resource}: continue token expired (410 Gone); listing again`);
            await this.pause(this.nextDelay());
            continue;
          }
          await this.fail('list', err);
          continue;
        }
        this.failures = 0;
        this.setConnected();
      }
      if (this.source.stopped) return;
      this.phase = 'watching';
      const outcome = await this.watchOnce();
      if (this.source.stopped) return;
      if (outcome.healthy) this.failures = 0;
      if (outcome.kind === 'gone') {
        this.source.log.debug(`watch ${this.spec.resource}: resourceVersion ${this.rv} expired (410 Gone); listing again`);
        this.rv = '';
        // A watch refused at once with 410 right after a list: do not spin.
        if (!outcome.healthy) await this.pause(this.nextDelay());
      } else if (outcome.kind === 'error') {
        await this.fail('watch', outcome.error);
      } else if (!outcome.healthy) {
        // Closed at once without events: the server going away, or a misbehaving proxy.
        // Retry from rv, but not in a tight loop; a real failure on the retry is logged.
        await this.fail('watch', new Error('closed by the server at once'), true);
      }
    }
  }

  stop(): void {
    this.listAbort?.abort(new StoppedError('stopped'));
    this.interrupt?.();
  }

  private nextDelay(): number {
    const { backoffBaseMs, backoffMaxMs, jitter } = this.source.tuning;
    this.failures++;
    const base = Math.min(backoffBaseMs * 2 ** (this.failures - 1), backoffMaxMs);
    return Math.round(base * (1 + Math.random() * jitter));
  }

  private async fail(op: 'list' | 'watch', err: unknown, quiet = false): Promise<void> {
    const delay = this.nextDelay();
    this.connected = false;
    this.lastError = `${op} ${this.spec.resource}: ${describeError(err)}`;
    this.retryAt = Date.now() + delay;
    this.phase = 'waiting';
    if (quiet) this.source.log.debug(`${this.lastError}; retrying in ${formatDelay(delay)}`);
    else this.source.reportFailure(this, describeError(err), delay);
    await this.pause(delay);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.interrupt = () => {
        this.interrupt = null;
        done();
      };
    });
  }

  private setConnected(): void {
    this.connected = true;
    this.source.reportConnected();
  }

  private async list(): Promise<void> {
    const { spec } = this;
    const { tuning } = this.source;
    const records: unknown[] = [];
    let listRv = '';
    let cont: string | undefined;
    do {
      const abort = new AbortController();
      this.listAbort = abort;
      const timer = setTimeout(() => abort.abort(new Error(`list ${spec.resource} timed out after ${tuning.listTimeoutMs} ms`)), tuning.listTimeoutMs);
      let page: ListPage;
      // KP-42: timed from the moment the request goes out (not when it failed before that,
      // e.g. on an unreadable token file) until the page has been read.
      const request: { record: ((status: number | null) => void) | null; status: number | null } = { record: null, status: null };
      const hooks: CallHooks = {
        onSend: () => (request.record = startRestRequest(this.source.restHost)),
        onResponse: (code) => (request.status = code),
      };
      try {
        page = await spec.list(
          this.source.apis!,
          { labelSelector: spec.labelSelector, fieldSelector: spec.fieldSelector, limit: tuning.pageSize, _continue: cont },
          callOptions(this.source.k8s!, abort.signal, hooks),
        );
        request.record?.(request.status ?? 200);
      } catch (err) {
        if (!this.source.stopped) request.record?.(request.status ?? statusCodeOf(err));
        if (abort.signal.aborted && abort.signal.reason instanceof Error) throw abort.signal.reason;
        throw err;
      } finally {
        clearTimeout(timer);
        this.listAbort = null;
      }
      if (this.source.stopped) throw new StoppedError('stopped');
      if (!listRv) listRv = page.metadata?.resourceVersion ?? '';
      for (const item of page.items ?? []) {
        const record = this.convert(item);
        if (record) records.push(record);
      }
      cont = page.metadata?._continue || undefined;
    } while (cont);
    spec.replaceAll(this.source.store!, records);
    this.lastListCount = records.length;
    // Without a resourceVersion (not seen from real servers), "0" makes the watch start with the current state.
    this.rv = listRv || '0';
    if (!this.synced) {
      this.synced = true;
      this.source.reportSynced();
    }
  }

  private convert(obj: unknown): unknown {
    try {
      return this.spec.toRecord(obj);
    } catch (err) {
      let name = '?';
      try {
        const key = objectKey(obj);
        name = this.spec.kind === 'Namespace' ? key.name : `${key.namespace}/${key.name}`;
      } catch {
        // keep '?'
      }
      this.source.log.warning(`ignoring ${this.spec.kind} ${name}: ${(err as Error).message}`);
      return null;
    }
  }

  private apply(type: string, obj: unknown): void {
    let key: ObjectKey;
    try {
      key = objectKey(obj);
    } catch {
      return;
    }
    const store = this.source.store!;
    if (type === 'DELETED') {
      this.spec.remove(store, key);
      return;
    }
    if (this.spec.ignoreEvent?.(obj)) return;
    const record = this.convert(obj);
    if (record) this.spec.upsert(store, record);
    else if (type === 'MODIFIED') this.spec.remove(store, key); // e.g. a slice that lost its service-name label
  }

  private watchOnce(): Promise<WatchOutcome> {
    const { spec } = this;
    const { tuning } = this.source;
    return new Promise<WatchOutcome>((resolve) => {
      const started = Date.now();
      let events = 0;
      let gone = false;
      let errorStatus: string | null = null;
      let settled = false;
      let controller: AbortController | null = null;
      let abortRequested = false;
      const abort = () => {
        abortRequested = true;
        controller?.abort();
      };
      const finish = (outcome: WatchOutcome) => {
        if (settled) return;
        settled = true;
        this.interrupt = null;
        resolve(outcome);
      };
      const lasted = () => events > 0 || Date.now() - started >= 1000;
      this.interrupt = () => {
        abort();
        finish({ kind: 'closed', healthy: false });
      };

      // KP-42. Watch calls `done` with the error before its promise resolves when the request
      // failed (no response, or a non-200 status); on a 200 the promise resolves first.
      const record = startRestRequest(this.source.restHost);
      const watch = new this.source.k8s!.Watch(this.source.kubeConfig!);
      // Watch aborts a watch with no data for requestTimeoutMs (30 s by default, and private in
      // the typings): too short for a quiet resource, so it becomes the inactivity limit.
      (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = tuning.watchInactivityMs;
      const params: Record<string, string | number | boolean | undefined> = {
        resourceVersion: this.rv,
        allowWatchBookmarks: true,
        timeoutSeconds: tuning.watchTimeoutSeconds(),
        labelSelector: spec.labelSelector,
        fieldSelector: spec.fieldSelector,
      };
      watch
        .watch(
          spec.watchPath,
          params,
          (type: string, obj: unknown) => {
            if (settled || abortRequested) return;
            if (type === 'ERROR') {
              const status = obj as { code?: number; message?: string } | null;
              if (status?.code === 410) gone = true;
              else errorStatus = `${status?.code ?? ''} ${status?.message ?? 'watch error'}`.trim();
              abort();
              return;
            }
            if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED' && type !== 'BOOKMARK') return;
            events++;
            if (type !== 'BOOKMARK') {
              try {
                this.apply(type, obj);
              } catch (err) {
                // Watch swallows exceptions from this callback; say what happened instead.
                this.source.log.error(`applying a ${type} ${spec.kind} event: ${(err as Error).message}`);
              }
            }
            const rv = resourceVersionOf(obj);
            if (rv) this.rv = rv;
          },
          (err: unknown) => {
            if (!this.source.stopped) record(statusCodeOf(err)); // no-op once the 200 is recorded
            if (gone || statusCodeOf(err) === 410) finish({ kind: 'gone', healthy: lasted() });
            else if (errorStatus) finish({ kind: 'error', error: new Error(errorStatus), healthy: lasted() });
            else if (err && (err as Error).name === 'TimeoutError') {
              // Nothing for watchInactivityMs: the connection may be dead; watch again from rv.
              this.source.log.debug(`watch ${spec.resource}: no data for ${tuning.watchInactivityMs} ms; reconnecting`);
              finish({ kind: 'closed', healthy: true });
            } else if (err && !abortRequested) finish({ kind: 'error', error: err, healthy: lasted() });
            else finish({ kind: 'closed', healthy: lasted() });
          },
        )
        .then(
          (c) => {
            controller = c;
            if (!this.source.stopped) record(200); // no-op when `done` already recorded a failure
            if (abortRequested || settled) c.abort();
            else this.setConnected(); // HTTP 200: the watch is established
          },
          (err: unknown) => finish({ kind: 'error', error: err, healthy: false }),
        );
    });
  }
}

// ---------------------------------------------------------------------------
// The source

function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.max(0.1, Math.round(ms / 100) / 10)}s`;
  return `${Math.round(ms / 1000)}s`;
}

/** During a long outage, warn again this often (retries in between log at debug level). */
const REMIND_AFTER_MS = 5 * 60_000;

class ApiSource implements ClusterSource {
  readonly tuning: ApiSourceTuning;
  readonly log: Logger;
  stopped = false;
  store: ClusterStore | null = null;
  kubeConfig: KubeConfig | null = null;
  k8s: ClientNode | null = null;
  apis: Apis | null = null;
  private readonly connection: ApiConnection;
  private readonly options: SourceOptions;
  private server = '';
  /** The host label of the REST client metrics (KP-42). */
  restHost = '';
  private reflectors: Reflector[] = [];
  private loops: Promise<void>[] = [];
  private starting = false;
  private started = false;
  private synced = false;
  /** 'up' until a failure, 'down' until every resource is connected again. */
  private health: 'up' | 'down' = 'up';
  private lastLoggedReason: string | null = null;
  private lastWarningAt = 0;

  constructor(connection: ApiConnection, options: SourceOptions, log: Logger, tuning: ApiSourceTuning) {
    this.connection = connection;
    this.options = options;
    this.log = log;
    this.tuning = tuning;
  }

  async start(store: ClusterStore): Promise<void> {
    if (this.starting) throw new Error('the API source is already started');
    this.starting = true;
    // Bad selectors would be refused by the server on every request; fail now instead.
    if (this.options.labelSelector) parseLabelSelector(this.options.labelSelector);
    if (this.options.namespaceLabelSelector) parseLabelSelector(this.options.namespaceLabelSelector);
    const k8s = await loadClientNode();
    const loaded = await loadKubeConfig(this.connection, this.tuning);
    if (this.stopped) return; // stop() came first
    this.started = true;
    this.store = store;
    this.kubeConfig = loaded.kubeConfig;
    this.k8s = k8s;
    this.server = loaded.server;
    this.restHost = hostLabel(loaded.server);
    this.apis = {
      core: loaded.kubeConfig.makeApiClient(k8s.CoreV1Api),
      discovery: loaded.kubeConfig.makeApiClient(k8s.DiscoveryV1Api),
    };
    this.log.debug(`connecting to the API server (${loaded.description})`);
    this.reflectors = kindSpecs(this.options).map((spec) => new Reflector(spec, this));
    this.loops = this.reflectors.map((r) =>
      r.run().catch((err: unknown) => {
        // Not expected: the loop handles its errors. Say so rather than stop silently.
        this.log.error(`watch ${r.spec.resource} stopped: ${describeError(err)}`);
      }),
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.started) return;
    for (const r of this.reflectors) r.stop();
    await Promise.all(this.loops);
  }

  state(): string {
    if (this.stopped) return 'stopped';
    if (!this.started) return 'not started';
    const waiting = this.reflectors.filter((r) => r.phase === 'waiting');
    if (waiting.length > 0) {
      const first = waiting.reduce((a, b) => (a.retryAt <= b.retryAt ? a : b));
      const inMs = Math.max(0, first.retryAt - Date.now());
      return `reconnecting in ${formatDelay(inMs)} after ${first.lastError}${this.synced ? '; serving last known records' : '; not synced yet'}`;
    }
    const retrying = this.reflectors.find((r) => !r.connected && r.lastError);
    if (retrying) {
      return `reconnecting after ${retrying.lastError}${this.synced ? '; serving last known records' : '; not synced yet'}`;
    }
    const unsynced = this.reflectors.filter((r) => !r.synced);
    if (unsynced.length > 0) return `syncing with ${this.server}: listing ${unsynced.map((r) => r.spec.resource).join(', ')}`;
    return `connected to ${this.server}`;
  }

  reportSynced(): void {
    if (this.synced || !this.reflectors.every((r) => r.synced)) return;
    this.synced = true;
    this.store!.markSynced();
    const counts = this.reflectors.map((r) => `${r.lastListCount} ${r.spec.resource}`).join(', ');
    this.log.info(`synced with the API server at ${this.server}: ${counts}`);
  }

  reportFailure(r: Reflector, reason: string, delayMs: number): void {
    const retry = `retrying in ${formatDelay(delayMs)}`;
    const what = `${r.lastError}`;
    // One warning per outage; another only if the kind of failure changes (no answer → an
    // HTTP refusal such as 401/403, or one status to another), which is news to the operator.
    const kind = /^\d{3} /.test(reason) ? reason.slice(0, 3) : 'network';
    if (this.health === 'up' || kind !== this.lastLoggedReason) {
      this.health = 'down';
      this.lastLoggedReason = kind;
      if (this.synced) {
        this.log.warning(`lost connection to the API server (${what}); serving last known records, ${retry}`);
      } else {
        this.log.warning(`cannot sync with the API server at ${this.server} (${what}); ${retry}`);
      }
      this.lastWarningAt = Date.now();
    } else if (Date.now() - this.lastWarningAt >= REMIND_AFTER_MS) {
      this.lastWarningAt = Date.now();
      const serving = this.synced ? 'serving last known records, ' : 'not synced yet, ';
      this.log.warning(`still no connection to the API server at ${this.server} (${what}); ${serving}${retry}`);
    } else {
      this.log.debug(`still no connection to the API server (${what}); ${retry}`);
    }
  }

  reportConnected(): void {
    if (this.health === 'up' || !this.reflectors.every((r) => r.connected)) return;
    this.health = 'up';
    this.lastLoggedReason = null;
    this.log.info(`connection to the API server at ${this.server} restored`);
  }
}

/**
 * A ClusterSource fed by the API server (KP-5..7, KP-22). `tuning` is for
 * tests (shorter backoff, fake service-account directory).
 */
export function createApiSource(
  connection: ApiConnection,
  options: SourceOptions,
  log: Logger,
  tuning: Partial<ApiSourceTuning> = {},
): ClusterSource {
  return new ApiSource(connection, options, log, { ...DEFAULT_TUNING, ...tuning });
}
