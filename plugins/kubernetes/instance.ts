// One kubernetes plugin instance per server block: the handler with its
// answer memo (KP-3, KP-12, KP-25), and the lifecycle of its source
// (KP-24..27).
//
// The memo keeps one shared Reply per (qname, qtype) until the store's
// generation moves, so a repeated query is two map lookups returning the same
// object, whose encoding the core memoises too. It is cleared whenever it
// grows past MEMO_LIMIT entries, so random names cannot grow it without bound.
// Mixed-case queries (rare) bypass it: their replies spell names built from
// the zone as the query spells it.

import { networkInterfaces } from 'node:os';
import type { Logger } from '../../src/log.ts';
import type { BlockContext, Handler, Next, PluginExplainer, PluginInstance, Request } from '../../src/plugin.ts';
import { Rcode } from '../../src/wire/constants.ts';
import type { Reply } from '../../src/wire/message.ts';
import { isSubdomain, longestMatchingZone } from '../../src/wire/names.ts';
import { readSearchDomains } from '../autopath/resolv-conf.ts';
import { Answers, join, NAME_ERROR, withZoneSpelling } from './answer.ts';
import { explainKubernetes } from './explain.ts';
import { ExternalLookup } from './external.ts';
import type { ClusterSource } from './model.ts';
import { canonicalIP, isLoopback, isUnspecified } from './reverse.ts';
import type { KubernetesConfig } from './setup.ts';
import { ClusterIndex } from './store.ts';

/** Entries kept before the memo is dropped and refilled. */
export const MEMO_LIMIT = 10_000;

/** The memo's entry for "pass to the next plugin" (fallthrough). */
const FALLTHROUGH: unique symbol = Symbol('fallthrough');
type MemoEntry = Reply | typeof FALLTHROUGH;

export type SourceFactory = (config: KubernetesConfig, log: Logger) => Promise<ClusterSource>;

export interface InstanceOptions {
  /** A store to serve from (tests fill one by hand); default a fresh one. */
  store?: ClusterIndex;
  /** Builds the source at start; default the API or manifests source the config selects. */
  sourceFactory?: SourceFactory;
  /** This host's addresses for NS answers (K8S-31); default from bind or the interfaces. */
  localIPs?: () => readonly string[];
  /** The resolv.conf whose search domains end autopath's search path (KP-39); default /etc/resolv.conf. */
  resolvConf?: string;
}

/** Search paths kept per namespace and zone before the table is dropped and refilled. */
const SEARCH_PATH_LIMIT = 10_000;

/** The source the config selects, loaded on demand so setup never pulls in the API client. */
export const defaultSourceFactory: SourceFactory = async (config, log) => {
  if (config.source.kind === 'memory') return config.source.cluster.source(config.sourceOptions, log);
  if (config.source.kind === 'manifests') {
    const { createManifestsSource } = await import('./manifests-source.ts');
    return createManifestsSource(config.source.paths, config.sourceOptions, log);
  }
  const { createApiSource } = await import('./api-source.ts');
  return createApiSource(config.source.connection, config.sourceOptions, log);
};

/**
 * KP-35: the non-loopback bind addresses, else every non-loopback address of
 * this host, canonical. A block bound to loopback only has none, and its NS
 * answers are NODATA, as CoreDNS 1.11 gives them.
 */
export function hostAddresses(bindAddresses: readonly string[]): string[] {
  const bound = bindAddresses.filter((ip) => !isUnspecified(ip));
  if (bound.length > 0) {
    return [...new Set(bound.filter((ip) => !isLoopback(ip)).map((ip) => canonicalIP(ip) ?? ip))];
  }
  const addresses: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) {
      const ip = canonicalIP(entry.address);
      if (ip !== null && !entry.internal && !isLoopback(ip) && !addresses.includes(ip)) addresses.push(ip);
    }
  }
  return addresses;
}

export class KubernetesInstance implements PluginInstance {
  readonly config: KubernetesConfig;
  readonly store: ClusterIndex;
  private readonly answers: Answers;
  private readonly log: Logger;
  private readonly sourceFactory: SourceFactory;
  private source: ClusterSource | null = null;
  private readonly memo = new Map<number, Map<string, MemoEntry>>();
  private memoSize = 0;
  private memoGeneration = -1;
  private stopWaiting: (() => void) | null = null;
  /** What k8s_external reads (K8SX-2). */
  readonly external: ExternalLookup;
  private readonly resolvConf: string;
  /** This process's own search domains (KP-39), read at start with `pods verified`. */
  private resolvSearch: readonly string[] = [];
  /** `<namespace> <zone>` → autopath search path, built once each. */
  private readonly searchPaths = new Map<string, readonly string[]>();

  constructor(config: KubernetesConfig, block: BlockContext, log: Logger, options: InstanceOptions = {}) {
    this.config = config;
    this.log = log;
    this.store = options.store ?? new ClusterIndex({ keepPodNames: config.endpointPodNames });
    this.sourceFactory = options.sourceFactory ?? defaultSourceFactory;
    let local: readonly string[] | null = null;
    // Read lazily: `bind` sets the block's addresses during setup, and interfaces are read once.
    const localIPs = options.localIPs ?? (() => (local ??= hostAddresses(block.bindAddresses)));
    this.answers = new Answers(config, this.store, localIPs);
    this.external = new ExternalLookup(config, this.store, localIPs);
    this.resolvConf = options.resolvConf ?? '/etc/resolv.conf';
    // Caches in front compare this generation, so no answer outlives a change (users.md P5).
    const store = this.store;
    block.authorities.push({ zones: config.zones, generation: () => store.generation });
    for (const endpoint of config.source.kind === 'api' ? config.source.ignoredEndpoints : []) {
      this.log.warning(`Multiple endpoints have been deprecated, only the first specified endpoint '${config.source.kind === 'api' ? config.source.connection.endpoint : ''}' is used; ignoring '${endpoint}'`);
    }
  }

  serve: Handler = (request, next) => {
    const { qname, qtype, spelledName } = request.query;
    if (spelledName !== qname) {
      const zone = longestMatchingZone(qname, this.config.zones);
      const spelledZone = zone === null || zone === '.' ? zone : spelledName.slice(spelledName.length - zone.length);
      // Uppercase only below the zone: the same reply as the lowercase query's (owners point at the question).
      if (spelledZone !== zone) return this.serveSpelled(request, next, zone!, spelledZone!);
    }
    // The memo holds only names in the plugin's zones, so it is checked before the zone match.
    if (this.memoGeneration !== this.store.generation) this.clearMemo();
    let byName = this.memo.get(qtype);
    const hit = byName?.get(qname);
    if (hit !== undefined) return hit === FALLTHROUGH ? next(request) : hit;
    const zone = longestMatchingZone(qname, this.config.zones);
    if (zone === null) return next(request); // KP-3

    const entry = this.resolve(request, zone);
    // Answers that re-entered the server (ExternalName chase) depend on upstream data: not memoised.
    if (entry instanceof Promise) return entry;
    if (this.memoSize >= MEMO_LIMIT) {
      this.clearMemo();
      byName = undefined;
    }
    if (byName === undefined) {
      byName = new Map();
      this.memo.set(qtype, byName);
    }
    byName.set(qname, entry);
    this.memoSize++;
    return entry === FALLTHROUGH ? next(request) : entry;
  };

  /** The reply, fallthrough or NXDOMAIN/SERVFAIL for the query, in `zone`. */
  private resolve(request: Request, zone: string): MemoEntry | Promise<Reply> {
    const { qname, qtype } = request.query;
    const result = this.answers.answer(request, qname, qtype, zone);
    if (result instanceof Promise || result !== NAME_ERROR) return result;
    if (this.fallsThrough(qname)) return FALLTHROUGH; // KP-12, checked before the sync state
    return this.answers.errorReply(this.store.synced ? Rcode.NXDOMAIN : Rcode.SERVFAIL, zone); // KP-25
  }

  /**
   * A query spelling the zone with uppercase letters: answered without the
   * memo, names built from the zone spelled as in the query (CoreDNS keeps the
   * query's spelling of the zone: `_http._tcp.svc1.testns.svc.cLuStEr.LoCaL.`
   * has the target `svc1.testns.svc.cLuStEr.LoCaL.`).
   */
  private serveSpelled(request: Request, next: Next, zone: string, spelledZone: string): Reply | Promise<Reply> {
    const entry = this.resolve(request, zone);
    if (entry instanceof Promise) return entry;
    if (entry === FALLTHROUGH) return next(request);
    return withZoneSpelling(entry, zone, spelledZone);
  }

  /**
   * KP-39, for `autopath @kubernetes`: the search path of the pod that sent
   * the query, found by its source IP (CoreDNS takes the first pod with that
   * IP, whatever its phase); null (no autopath) without `pods verified`, for
   * names outside the plugin's zones, or when no pod has the IP.
   */
  autoPath(request: Request): readonly string[] | null {
    if (this.config.podMode !== 'verified') return null;
    const zone = longestMatchingZone(request.query.qname, this.config.zones);
    if (zone === null) return null;
    const pod = this.store.podsWithIP(request.remoteAddress)[0];
    if (pod === undefined) return null;
    const key = `${pod.namespace} ${zone}`;
    let search = this.searchPaths.get(key);
    if (search === undefined) {
      if (this.searchPaths.size >= SEARCH_PATH_LIMIT) this.searchPaths.clear();
      search = Object.freeze([join(`${pod.namespace}.svc`, zone), join('svc', zone), zone, ...this.resolvSearch, '']);
      this.searchPaths.set(key, search);
    }
    return search;
  }

  /** explain (cold path): how the name parsed, the object matched, or why NXDOMAIN/NODATA (explain.ts). */
  readonly explain: PluginExplainer = {
    after: (request, reply, step, passedOn) => explainKubernetes(this.config, this.store, request, reply, step, passedOn),
  };

  /** KP-24: start the source, then wait for its first sync up to startup_timeout. */
  async start(): Promise<void> {
    // CoreDNS reads its own resolv.conf at setup; a missing file means no extra domains.
    if (this.config.podMode === 'verified') this.resolvSearch = readSearchDomains(this.resolvConf) ?? [];
    const source = await this.sourceFactory(this.config, this.log);
    this.source = source;
    await source.start(this.store);
    await this.waitForSync();
  }

  /** KP-26: ready once the first full sync is done. */
  ready(): boolean {
    return this.store.synced;
  }

  /** KP-27: at SIGTERM the watches stop first; answers keep coming from the frozen index during lameduck. */
  async shutdown(): Promise<void> {
    await this.stopSource();
  }

  /** After the listeners closed, or when a reload replaced the block. */
  async stop(): Promise<void> {
    await this.stopSource();
  }

  /** For logs and /ready details. */
  sourceState(): string {
    return this.source?.state() ?? 'not started';
  }

  private async stopSource(): Promise<void> {
    this.stopWaiting?.();
    const source = this.source;
    this.source = null;
    await source?.stop();
  }

  private fallsThrough(qname: string): boolean {
    const zones = this.config.fallthrough;
    if (zones === null) return false;
    for (const zone of zones) if (isSubdomain(qname, zone)) return true;
    return false;
  }

  private clearMemo(): void {
    this.memo.clear();
    this.memoSize = 0;
    this.memoGeneration = this.store.generation;
  }

  private waitForSync(): Promise<void> {
    if (this.store.synced) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const log = this.log;
      const ticker = setInterval(() => log.info('waiting for Kubernetes API before starting server'), 500);
      const finish = (): void => {
        clearInterval(ticker);
        clearTimeout(timeout);
        this.stopWaiting = null;
        resolve();
      };
      const timeout = setTimeout(() => {
        if (!this.store.synced) log.warning('starting server with unsynced Kubernetes API');
        finish();
      }, this.config.startupTimeoutMs);
      this.stopWaiting = finish;
      this.store.whenSynced(() => {
        if (this.stopWaiting === finish) finish();
      });
    });
  }
}
