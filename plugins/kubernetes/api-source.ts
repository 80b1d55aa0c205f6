// The API server as a ClusterSource: list + watch of Services,
// EndpointSlices, Namespaces and (with `pods verified`) Pods, converted to
// compact records as they arrive (KP-22).
//
// The requests go through http-client.ts, a small list/watch client on
// node:http / node:https, not through @kubernetes/client-node: importing
// client-node adds 85–90 MB of RSS on Node 24 (its KubeConfig pulls in the
// whole generated API plus undici; a bare process is 41–43 MB, one that has
// imported it 126–135 MB), which put clusterdns syncing an empty cluster at
// 154–173 MiB RSS, at the 170 MiB limit of the CoreDNS Deployment (STOCK-8);
// with the lean client it is at 106–109 MiB, like the manifests source. Only a
// kubeconfig whose user needs an exec or auth-provider plugin (or whose
// cluster has a proxy-url) still loads client-node, and then only to
// authenticate the same requests (connection.ts).
//
// Why not an informer (client-node's makeInformer / ListWatch, when it was
// used)? Its ObjectCache keeps every whole API object for the life of the
// process, which is exactly the memory problem cluster DNS servers have at
// scale (users.md P3: CoreDNS OOM-killed when whole Endpoints objects sat in
// the informer cache, and a relist after an API server restart doubling
// memory); after a dropped connection it emitted 'error' and never watched
// again; it listed without pagination and asked for no bookmarks or
// timeoutSeconds. So each resource here runs a small reflector of its own:
// each page of a list (500 per page) and each watch event is converted to
// records at once, the records put into the store and the objects dropped;
// the only state kept per resource is the last resourceVersion. The store
// holds the records.
//
// Per resource, the loop is:
//   list (all pages, each page into a store.beginReplace session as it
//     arrives; commit removes what the list did not contain; stores without
//     sessions get store.replaceAll(kind, records)) → rv = list's resourceVersion
//   watch from rv (allowWatchBookmarks, timeoutSeconds 5–10 min); every event
//     and BOOKMARK advances rv
//   watch ended normally (server timeout, inactivity timeout) → watch again from rv
//   410 Gone (an ERROR event with code 410, or HTTP 410) → list again; the
//     re-list updates records in place and removes the missing ones on
//     commit, so records that still exist are never absent in between, and
//     deleted ones disappear
//   any other error → keep serving what the store has; retry after a backoff
//     of 0.5 s doubling to 30 s when the API server answered with an error
//     status, but at most 1 s when it did not answer at all (connection
//     refused or reset, timeout), so that a restarted API server is seen
//     within a second, not after the 16-30 s a doubled backoff has reached by
//     then (issue 14: 14 s after a 20 s outage; CoreDNS took 0.55 s); reset once
//     a list succeeds or a watch has lasted or delivered events, and when the
//     failure changes from one kind to the other; from rv when there is one
// markSynced() is called once every resource has completed its first list.
//
// Metrics (metrics.ts): every list page and watch request is counted and
// timed by the client (KP-42), and every EndpointSlice change a watch
// delivers is timed from its last-change-trigger-time (KP-41).
//
// Credentials (KP-5..7, connection.ts): kubeconfig (path, context) wins over
// endpoint (+ tls files); with neither, in-cluster config from
// KUBERNETES_SERVICE_HOST/PORT and the service-account directory.
// Service-account tokens are bound and rotate, so token files are read again
// for every request (list page or watch start; these are rare) and after a
// 401, instead of once.

import type { Logger } from '../../src/log.ts';
import { resolveConnection } from './connection.ts';
import { compactHeap } from './heap.ts';
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
import {
  ApiError,
  createApiClient,
  statusCodeOf,
  type ApiClient,
  type ListPage,
  type WatchEventType,
  type WatchOutcome as ClientWatchOutcome,
} from './http-client.ts';
import { observeDnsProgramming } from './metrics.ts';
import { parseLabelSelector } from './selector.ts';
import type {
  ApiConnection,
  ClusterSource,
  ClusterStore,
  EndpointSliceRecord,
  NamespaceRecord,
  PodRecord,
  ReplaceSession,
  ServiceRecord,
  SourceOptions,
} from './model.ts';

/** Timings and paths; the defaults suit production, tests shorten them. */
export interface ApiSourceTuning {
  /** First retry delay after an error. */
  backoffBaseMs: number;
  /** Retry delays double up to this. */
  backoffMaxMs: number;
  /**
   * ... but only up to this while the API server does not answer at all (a
   * refused connection costs it nothing; an error status is its own answer).
   */
  unreachableBackoffMaxMs: number;
  /** Random extra delay, as a fraction of the delay (spreads replicas out). */
  jitter: number;
  /** Items per list page (limit). */
  pageSize: number;
  /** After the first sync, and after a list of at least this many records, compact the heap once lists are done (heap.ts); 0: never. */
  compactAfterRecords: number;
  /**
   * While lists run, also compact when RSS has grown by compactOnGrowth (a
   * fraction; 0: never) since the last compaction and at least
   * compactEveryRecords records were listed since.
   */
  compactOnGrowth: number;
  compactEveryRecords: number;
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
  // With the 10% jitter, at most 0.99 s between tries.
  unreachableBackoffMaxMs: 900,
  jitter: 0.1,
  pageSize: 500,
  compactAfterRecords: 1000,
  compactOnGrowth: 0.1,
  compactEveryRecords: 5000,
  listTimeoutMs: 60_000,
  // client-go: a random 5–10 minutes, so watches of many clients do not end together.
  watchTimeoutSeconds: () => 300 + Math.floor(Math.random() * 300),
  // kube-apiserver sends a bookmark about once a minute to watches that allow them.
  watchInactivityMs: 150_000,
  serviceAccountDir: '/var/run/secrets/kubernetes.io/serviceaccount',
  env: process.env,
};

// ---------------------------------------------------------------------------
// Errors

/** One line saying what went wrong: HTTP status and the API server's message, or the network error. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    let text = err.message;
    if (err.statusCode === 401) text += ' (the API server rejected the credentials: check the token or client certificate)';
    if (err.statusCode === 403) text += ' (check RBAC: list and watch on services, endpointslices, namespaces, pods)';
    return text;
  }
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

// ---------------------------------------------------------------------------
// Resources

interface KindSpec<R> {
  kind: string;
  /** Plural, as in the URL and in messages. */
  resource: string;
  /** The all-namespaces collection, for list and watch. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  toRecord(obj: unknown): R | null;
  upsert(store: ClusterStore, record: R): void;
  remove(store: ClusterStore, key: ObjectKey): void;
  replaceAll(store: ClusterStore, records: R[]): void;
  /** store.beginReplace for this kind, when the store has it. */
  beginReplace(store: ClusterStore): ReplaceSession<R> | null;
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
    path: '/api/v1/services',
    labelSelector: labels,
    toRecord: toServiceRecord,
    upsert: (store, r) => store.upsertService(r),
    remove: (store, k) => store.deleteService(k.namespace, k.name),
    replaceAll: (store, rs) => store.replaceAll('Service', rs),
    beginReplace: (store) => store.beginReplace?.('Service') ?? null,
  };
  const slices: KindSpec<EndpointSliceRecord> = {
    kind: 'EndpointSlice',
    resource: 'endpointslices',
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    labelSelector: labels,
    toRecord: toEndpointSliceRecord,
    upsert: (store, r) => {
      store.upsertEndpointSlice(r);
      recordProgramming(store, r);
    },
    remove: (store, k) => store.deleteEndpointSlice(k.namespace, k.name),
    replaceAll: (store, rs) => store.replaceAll('EndpointSlice', rs),
    beginReplace: (store) => store.beginReplace?.('EndpointSlice') ?? null,
  };
  const namespaces: KindSpec<NamespaceRecord> = {
    kind: 'Namespace',
    resource: 'namespaces',
    path: '/api/v1/namespaces',
    labelSelector: options.namespaceLabelSelector ?? undefined,
    toRecord: toNamespaceRecord,
    upsert: (store, r) => store.upsertNamespace(r),
    remove: (store, k) => store.deleteNamespace(k.name),
    replaceAll: (store, rs) => store.replaceAll('Namespace', rs),
    beginReplace: (store) => store.beginReplace?.('Namespace') ?? null,
  };
  const pods: KindSpec<PodRecord> = {
    kind: 'Pod',
    resource: 'pods',
    path: '/api/v1/pods',
    labelSelector: labels,
    fieldSelector: POD_FIELD_SELECTOR,
    toRecord: toPodRecord,
    upsert: (store, r) => store.upsertPod(r),
    remove: (store, k) => store.deletePod(k.namespace, k.name),
    replaceAll: (store, rs) => store.replaceAll('Pod', rs),
    beginReplace: (store) => store.beginReplace?.('Pod') ?? null,
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
  /** What the failures being counted were: the API server answered with an error, or did not answer. */
  private failureKind: 'status' | 'unreachable' = 'status';
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

  private nextDelay(kind: 'status' | 'unreachable' = 'status'): number {
    const { backoffBaseMs, backoffMaxMs, unreachableBackoffMaxMs, jitter } = this.source.tuning;
    if (kind !== this.failureKind) this.failures = 0;
    this.failureKind = kind;
    this.failures++;
    const cap = kind === 'unreachable' ? Math.min(unreachableBackoffMaxMs, backoffMaxMs) : backoffMaxMs;
    const base = Math.min(backoffBaseMs * 2 ** (this.failures - 1), cap);
    return Math.round(base * (1 + Math.random() * jitter));
  }

  private async fail(op: 'list' | 'watch', err: unknown, quiet = false): Promise<void> {
    // No HTTP status: the request never got an answer (refused, reset, timed out).
    const delay = this.nextDelay(statusCodeOf(err) === null ? 'unreachable' : 'status');
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
    const store = this.source.store!;
    // Each page goes into the store as it arrives (a ReplaceSession) and is
    // dropped: neither the raw objects of more than one page nor all the
    // records of the list are ever held at once. Stores without sessions get
    // one replaceAll with every record at the end.
    const session = spec.beginReplace(store);
    const records: unknown[] | null = session ? null : [];
    let count = 0;
    let listRv = '';
    let cont: string | undefined;
    do {
      const abort = new AbortController();
      this.listAbort = abort;
      let page: ListPage;
      try {
        page = await this.source.client!.list(
          spec.path,
          { labelSelector: spec.labelSelector, fieldSelector: spec.fieldSelector, limit: tuning.pageSize, continue: cont },
          abort.signal,
          { timeoutMs: tuning.listTimeoutMs },
        );
      } finally {
        this.listAbort = null;
      }
      if (this.source.stopped) throw new StoppedError('stopped');
      if (!listRv) listRv = page.metadata.resourceVersion;
      const items = page.items;
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        // Converted objects become garbage at once, not when the whole page is done:
        // less survives each young-generation GC, so the young generation grows slower.
        items[i] = null;
        const record = this.convert(item);
        if (!record) continue;
        count++;
        if (session) session.add(record);
        else records!.push(record);
      }
      this.source.pageDone(items.length);
      cont = page.metadata.continue;
    } while (cont);
    if (session) session.commit();
    else spec.replaceAll(store, records!);
    this.lastListCount = count;
    this.source.listDone(count);
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

  private onEvent(type: WatchEventType, obj: unknown): void {
    if (this.source.stopped) return;
    if (type !== 'BOOKMARK') {
      try {
        this.apply(type, obj);
      } catch (err) {
        this.source.log.error(`applying a ${type} ${this.spec.kind} event: ${(err as Error).message}`);
      }
    }
    const rv = resourceVersionOf(obj);
    if (rv) this.rv = rv;
  }

  private async watchOnce(): Promise<WatchOutcome> {
    const { spec } = this;
    const { tuning } = this.source;
    const started = Date.now();
    const abort = new AbortController();
    this.interrupt = () => abort.abort(new StoppedError('stopped'));
    let outcome: ClientWatchOutcome;
    try {
      outcome = await this.source.client!.watch(
        spec.path,
        {
          resourceVersion: this.rv,
          allowWatchBookmarks: true,
          timeoutSeconds: tuning.watchTimeoutSeconds(),
          labelSelector: spec.labelSelector,
          fieldSelector: spec.fieldSelector,
        },
        (type, obj) => this.onEvent(type, obj),
        abort.signal,
        {
          inactivityMs: tuning.watchInactivityMs,
          onOpen: () => this.setConnected(), // HTTP 200: the watch is established
        },
      );
    } finally {
      this.interrupt = null;
    }
    const healthy = outcome.events > 0 || (outcome.opened && Date.now() - started >= 1000);
    switch (outcome.kind) {
      case 'gone':
        return { kind: 'gone', healthy };
      case 'error':
        return { kind: 'error', error: outcome.error, healthy };
      case 'timeout':
        // Nothing for watchInactivityMs: the connection may be dead; watch again from rv.
        this.source.log.debug(`watch ${spec.resource}: no data for ${tuning.watchInactivityMs} ms; reconnecting`);
        return { kind: 'closed', healthy: true };
      case 'aborted':
        return { kind: 'closed', healthy: false };
      default:
        return { kind: 'closed', healthy };
    }
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
  client: ApiClient | null = null;
  private readonly connection: ApiConnection;
  private readonly options: SourceOptions;
  private server = '';
  private reflectors: Reflector[] = [];
  private loops: Promise<void>[] = [];
  private starting = false;
  private started = false;
  private synced = false;
  /** 'up' until a failure, 'down' until every resource is connected again. */
  private health: 'up' | 'down' = 'up';
  private lastLoggedReason: string | null = null;
  private lastWarningAt = 0;
  /** A large list completed since the last heap compaction (heap.ts). */
  private compactionDue = false;
  private compactionTimer: NodeJS.Timeout | null = null;
  /** RSS right after the last compaction (at start: the RSS then), and records listed since, for compactOnGrowth. */
  private rssAfterCompaction = 0;
  private listedSinceCompaction = 0;

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
    const resolved = await resolveConnection(this.connection, this.tuning);
    if (this.stopped) return; // stop() came first
    this.client = createApiClient(resolved.config);
    this.started = true;
    this.rssAfterCompaction = process.memoryUsage.rss();
    this.store = store;
    this.server = resolved.server;
    this.log.debug(`connecting to the API server (${resolved.description})`);
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
    if (this.compactionTimer) clearTimeout(this.compactionTimer);
    if (!this.started) return;
    for (const r of this.reflectors) r.stop();
    await Promise.all(this.loops);
    this.client?.close();
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

  /**
   * A list page was applied. A long list grows V8's young generation to its
   * maximum and leaves garbage in the old one (heap.ts); compacting whenever
   * RSS has grown by compactOnGrowth since the last compaction (checked every
   * compactEveryRecords listed records) bounds what a list adds on top of the
   * index (a re-list's peak, and the peak of the first sync, which counts
   * against the container's memory limit), at a pause of 20–60 ms at 50k
   * Services each time: at most one per compactEveryRecords, so up to 20 in a
   * 50k-Service list of Services and EndpointSlices.
   */
  pageDone(items: number): void {
    const growth = this.tuning.compactOnGrowth;
    if (growth <= 0) return;
    this.listedSinceCompaction += items;
    if (this.listedSinceCompaction < this.tuning.compactEveryRecords) return;
    if (process.memoryUsage.rss() <= this.rssAfterCompaction * (1 + growth)) return;
    compactHeap();
    this.compacted();
  }

  private compacted(): void {
    this.listedSinceCompaction = 0;
    this.rssAfterCompaction = process.memoryUsage.rss();
  }

  /**
   * A list was applied to the store. After a large one, compact the heap once
   * no list is running any more (the Service and EndpointSlice lists run
   * concurrently: one compaction after both, not one each).
   */
  listDone(records: number): void {
    const threshold = this.tuning.compactAfterRecords;
    if (threshold > 0 && records >= threshold) this.compactionDue = true;
    if (!this.compactionDue) return;
    if (this.compactionTimer) clearTimeout(this.compactionTimer);
    this.compactionTimer = setTimeout(() => {
      this.compactionTimer = null;
      // Another list still running will call listDone when it ends.
      if (this.stopped || this.reflectors.some((r) => r.phase === 'listing')) return;
      this.compactionDue = false;
      const started = performance.now();
      if (compactHeap()) this.log.debug(`compacted the heap after a large list in ${Math.round(performance.now() - started)} ms`);
      this.compacted();
    }, 200);
    this.compactionTimer.unref();
  }

  reportSynced(): void {
    if (this.synced || !this.reflectors.every((r) => r.synced)) return;
    this.synced = true;
    this.store!.markSynced();
    // Compact once after the first sync whatever its size (a few ms for a small cluster).
    if (this.tuning.compactAfterRecords > 0) this.compactionDue = true;
    this.listDone(0);
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
