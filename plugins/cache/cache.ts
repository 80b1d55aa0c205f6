// The cache itself: lookup, store, TTL countdown, prefetch and serve_stale
// (CACHE-3..13), with freshness checked against the block's authorities
// (users.md P5).
//
// Hit path: zone check, the key's kind number, one or two store lookups, a
// generation check, and a small Reply over the entry's own records. Every record of an
// entry carries the same TTL (CACHE-7 rewrites them all to the one computed
// duration), so a hit is the stored reply derived with the remaining TTL:
// the encoder copies the entry's memoised body and rewrites the TTL fields.
// The hit Reply is built per query on purpose: it dies young, which costs
// the garbage collector nothing, while a memo kept on the entry for a second
// would survive young-generation collections and be copied and promoted
// (measured: that was most of the GC pause time under load).

import type { Logger } from '../../src/log.ts';
import { whenReplied, type Authority, type BlockContext, type Next, type Request } from '../../src/plugin.ts';
import { typify, type ResponseType } from '../../src/wire/classify.ts';
import { Flag, Opcode, Rcode, rcodeName, Type } from '../../src/wire/constants.ts';
import { ReplyFlag, ServerReply, type Reply, type ResourceRecord } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';
import type { Query } from '../../src/wire/query.ts';
import type { Bucket, CacheConfig } from './config.ts';
import { EntryLru } from './lru.ts';
import { CacheStats, registerStatsSource, unregisterStatsSource, type StatsSource } from './metrics.ts';

/** Milliseconds since the epoch; replaceable so tests can move time (setCacheClock). */
let clock: () => number = Date.now;

/** Test hook: replaces the cache's clock; null restores Date.now. */
export function setCacheClock(now: (() => number) | null): void {
  clock = now ?? Date.now;
}

/** The floor MinimalTTL uses for replies without records, and the cap on record TTLs (CoreDNS dnsutil). */
const MINIMAL_DEFAULT_TTL = 5;
const MAXIMUM_DEFAULT_TTL = 3600;

const noAuthorities: readonly Authority[] = Object.freeze([]);

/**
 * One stored answer. Refilled in place when the same records are stored
 * again (store), so the fields of its lifetime are mutable.
 */
export interface Entry {
  /** The key (CACHE-4): the lowercased question name, and cacheKind. */
  readonly name: string;
  readonly kind: number;
  /** Which LRU holds it. */
  readonly denial: boolean;
  /** A SERVFAIL/NOTIMP entry: gives way to a valid positive one (CACHE-13). */
  readonly serverError: boolean;
  readonly rcode: number;
  /** RA and AD as the reply that filled the entry had them. */
  readonly flags: number;
  /** The computed duration in seconds (CoreDNS's origTTL). */
  ttl: number;
  storedAt: number;
  expiresAt: number;
  /** Authorities covering the name, and the sum of their generations at store time. */
  authorities: readonly Authority[];
  generation: number;
  /**
   * The stored records, each with TTL `ttl`, as a Reply that is never sent:
   * hit replies are derived from it, so the encoder encodes an entry's
   * records once in its life (message.ts Reply.derived).
   */
  readonly base: Reply;
  /** Prefetch popularity (CoreDNS's freq): hits with no gap of the prefetch window. */
  hits: number;
  lastHit: number;
  refreshing: boolean;
  /** The store's recency list (lru.ts). */
  newer: Entry | null;
  older: Entry | null;
}

interface Sections {
  answer: readonly ResourceRecord[];
  authority: readonly ResourceRecord[];
  additional: readonly ResourceRecord[];
}

/**
 * CACHE-4: the key is the lowercased qname with qtype, qclass, DO and CD;
 * this is the number for all but the name.
 */
export function cacheKind(query: Query): number {
  const bits = (query.edns?.dnssecOk ? 1 : 0) | (query.flags & Flag.CD ? 2 : 0);
  return (query.qtype * 4 + bits) * 65536 + query.qclass;
}

/** typify, plus NOTIMP counted as a server error as CoreDNS's cache does (CACHE-3). */
export function responseType(reply: Reply): ResponseType {
  if (reply.rcode === Rcode.NOTIMP) return 'ServerError';
  return typify(reply);
}

/**
 * Errors the server writes itself never pass through CoreDNS's cache writer
 * (CACHE-5). Here they are the shared ServerReply objects and replies that
 * carry the chain's error (no next plugin, forward timeouts).
 */
export function isServerWritten(reply: Reply): boolean {
  return reply.error !== undefined || reply === ServerReply.SERVFAIL || reply === ServerReply.REFUSED;
}

function hasSoa(records: readonly ResourceRecord[]): boolean {
  for (const record of records) if (record.type === Type.SOA) return true;
  return false;
}

/** CACHE-5: whether a reply of this type may be stored at all. */
export function storable(type: ResponseType, reply: Reply, qtype: number): boolean {
  if (reply.flags & Flag.TC) return false;
  switch (type) {
    case 'OtherError':
      return false;
    case 'NameError':
      return reply.answer.length === 0;
    case 'NoError':
      if (reply.answer.length === 0 || qtype === Type.CNAME || qtype === Type.ANY) return true;
      for (const record of reply.answer) if (record.type === qtype) return true;
      // A CNAME chain that never reaches the asked type, without an SOA.
      return hasSoa(reply.authority);
    default:
      return true;
  }
}

/** CoreDNS's dnsutil.MinimalTTL, in seconds. */
export function minimalTtl(type: ResponseType, reply: Reply): number {
  if (type !== 'NoError' && type !== 'NameError' && type !== 'NoData') return MINIMAL_DEFAULT_TTL;
  let min = MAXIMUM_DEFAULT_TTL;
  let records = 0;
  for (const section of [reply.answer, reply.authority, reply.additional]) {
    for (const record of section) {
      if (record.type === Type.OPT) continue;
      records++;
      if (record.ttl < min) min = record.ttl;
    }
  }
  return records === 0 ? MINIMAL_DEFAULT_TTL : min;
}

function clamp(ttl: number, bucket: Bucket): number {
  let value = ttl < bucket.minTtl ? bucket.minTtl : ttl;
  if (value > bucket.maxTtl) value = bucket.maxTtl;
  return value;
}

/** The records with every TTL set to `ttl` and OPT left out; the same array when nothing changes. */
function withTtl(records: readonly ResourceRecord[], ttl: number): readonly ResourceRecord[] {
  let changed = false;
  for (const record of records) {
    if (record.ttl !== ttl || record.type === Type.OPT) {
      changed = true;
      break;
    }
  }
  if (!changed) return records;
  const out: ResourceRecord[] = [];
  for (const record of records) {
    if (record.type === Type.OPT) continue;
    out.push(record.ttl === ttl ? record : { name: record.name, type: record.type, class: record.class, ttl, data: record.data });
  }
  return out;
}

export class Cache implements StatsSource {
  readonly config: CacheConfig;
  private readonly block: BlockContext;
  private readonly log: Logger;
  private readonly success: EntryLru<Entry>;
  private readonly denial: EntryLru<Entry>;
  private readonly stats = new Map<string, CacheStats>();
  private lastStats: CacheStats | null = null;
  /** Whose request a store is for, so evictions are counted under its server label. */
  private storing: CacheStats | null = null;
  /** Misses waiting on I/O, by name and kind: identical misses share one upstream query. */
  private readonly inflight = new Map<string, Promise<Reply>>();
  private readonly zoneIsRoot: boolean;
  private stopped = false;

  constructor(config: CacheConfig, block: BlockContext, log: Logger) {
    this.config = config;
    this.block = block;
    this.log = log;
    this.zoneIsRoot = config.zones.includes('.');
    this.success = new EntryLru<Entry>(config.success.capacity, () => {
      if (this.storing) this.storing.evictionsSuccess++;
    });
    this.denial = new EntryLru<Entry>(config.denial.capacity, () => {
      if (this.storing) this.storing.evictionsDenial++;
    });
  }

  start(): void {
    this.stopped = false;
    registerStatsSource(this);
  }

  stop(): void {
    this.stopped = true;
    unregisterStatsSource(this);
    this.success.clear();
    this.denial.clear();
  }

  flushStats(): void {
    for (const stats of this.stats.values()) stats.flush(this.success.size, this.denial.size);
  }

  /** Entry counts, for tests and the entries gauge. */
  get sizes(): { success: number; denial: number } {
    return { success: this.success.size, denial: this.denial.size };
  }

  private statsFor(server: string): CacheStats {
    const last = this.lastStats;
    if (last !== null && last.server === server) return last;
    let stats = this.stats.get(server);
    if (stats === undefined) {
      stats = new CacheStats(server, this.config.zonesLabel);
      this.stats.set(server, stats);
      // Also covers instances used without start(); a stopped one (queries finishing during shutdown) stays out.
      if (!this.stopped) registerStatsSource(this);
    }
    this.lastStats = stats;
    return stats;
  }

  private covers(qname: string): boolean {
    if (this.zoneIsRoot) return true;
    for (const zone of this.config.zones) if (isSubdomain(qname, zone)) return true;
    return false;
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const query = request.query;
    // NOTIFY/UPDATE and zone transfers are never cached (CACHE-5).
    if (query.opcode !== Opcode.QUERY || query.qtype === Type.AXFR || query.qtype === Type.IXFR) return next(request);
    if (!this.covers(query.qname)) return next(request);

    const stats = this.statsFor(request.server);
    stats.requests++;
    const kind = cacheKind(query);
    const now = clock();
    const entry = this.lookup(kind, query.qname, now);
    if (entry === undefined) {
      stats.misses++;
      return this.miss(request, next, kind, stats);
    }
    if (entry.denial) stats.hitsDenial++;
    else stats.hitsSuccess++;

    let ttl = entry.ttl - Math.floor((now - entry.storedAt) / 1000);
    if (ttl <= 0) {
      // CACHE-12: only lookup() lets an expired entry through, and only within serve_stale.
      if (this.config.verifyStale) return this.verifyStale(request, next, kind, entry, stats);
      stats.servedStale++;
      this.refresh(request, next, kind, entry, stats, false);
      ttl = 0;
    } else {
      if (this.config.prefetchAmount > 0 && this.shouldPrefetch(entry, ttl, now)) {
        stats.prefetches++;
        this.refresh(request, next, kind, entry, stats, true);
      }
      if (this.config.keepTtl) ttl = entry.ttl;
    }
    const withAd = query.edns?.dnssecOk === true || (query.flags & Flag.AD) !== 0;
    return hitReply(entry, ttl, withAd);
  }

  /**
   * explain (cold path, never per query): the entry a lookup finds now, as
   * facts for the trace, without counting a request. Also asked after a
   * miss, to say what was stored.
   */
  explainLookup(query: Query): Record<string, unknown> {
    if (query.opcode !== Opcode.QUERY || query.qtype === Type.AXFR || query.qtype === Type.IXFR) return { cached: 'never (not a plain query)' };
    if (!this.covers(query.qname)) return { cached: 'never (name outside the cache zones)' };
    const now = clock();
    const entry = this.lookup(cacheKind(query), query.qname, now);
    if (entry === undefined) return { entry: null };
    const left = entry.ttl - Math.floor((now - entry.storedAt) / 1000);
    return {
      entry: entry.serverError ? 'server error' : entry.denial ? 'negative' : 'positive',
      rcode: rcodeName(entry.rcode),
      ttlLeft: Math.max(left, 0),
      ttlStored: entry.ttl,
      ...(left <= 0 ? { stale: true } : {}),
    };
  }

  /**
   * CACHE-13: a denial entry shadows a positive one, but a cached SERVFAIL
   * gives way to a positive entry still within its TTL. Storing one kind
   * deletes the other (store), SERVFAIL apart, so a positive entry within
   * its TTL is the answer whenever there is one: looking it up first spares
   * most hits the second lookup. An entry is usable while its TTL runs, or
   * within serve_stale after that, and only while no authority covering its
   * name has changed since it was stored.
   */
  private lookup(kind: number, name: string, now: number): Entry | undefined {
    const positive = this.success.get(kind, name);
    if (positive !== undefined && now < positive.expiresAt && this.usable(positive, now, this.success)) return positive;
    const denied = this.denial.get(kind, name);
    if (denied !== undefined && this.usable(denied, now, this.denial)) return denied;
    if (positive !== undefined && this.usable(positive, now, this.success)) return positive;
    return undefined;
  }

  private usable(entry: Entry, now: number, store: EntryLru<Entry>): boolean {
    if (entry.authorities.length > 0 && generationOf(entry.authorities) !== entry.generation) {
      // The data behind the answer changed: never serve it again, not even stale.
      store.delete(entry.kind, entry.name);
      return false;
    }
    if (now < entry.expiresAt) return true;
    if (now - entry.expiresAt < this.config.staleMs) return true;
    // Expired: left in place (as CoreDNS leaves it) for store() to refill, or for the LRU to evict.
    return false;
  }

  /** CACHE-11, CoreDNS's freq.Update then the threshold test. */
  private shouldPrefetch(entry: Entry, ttl: number, now: number): boolean {
    if (entry.lastHit < now - this.config.prefetchWindowMs) entry.hits = 1;
    else entry.hits++;
    entry.lastHit = now;
    if (entry.refreshing || entry.hits < this.config.prefetchAmount) return false;
    return ttl <= Math.ceil((this.config.prefetchPercentage / 100) * entry.ttl);
  }

  private miss(request: Request, next: Next, kind: number, stats: CacheStats): Reply | Promise<Reply> {
    const flight = request.query.qname + kind;
    const pending = this.inflight.get(flight);
    if (pending !== undefined) return pending.then((reply) => this.written(request, reply, kind, stats, false));
    const result = next(request);
    if (!(result instanceof Promise)) return this.written(request, result, kind, stats, true);
    this.inflight.set(flight, result);
    const done = () => {
      if (this.inflight.get(flight) === result) this.inflight.delete(flight);
    };
    result.then(done, done);
    return result.then((reply) => this.written(request, reply, kind, stats, true));
  }

  /**
   * What CoreDNS's cache ResponseWriter does with a reply on its way to the
   * client: classify, compute the duration, store it (when allowed), and
   * rewrite every TTL to the duration (CACHE-5..7). Returns what the client
   * gets; `inherit` is the entry a background refresh replaces (CACHE-11).
   */
  private written(request: Request, reply: Reply, kind: number, stats: CacheStats, store: boolean, inherit?: Entry): Reply {
    if (isServerWritten(reply)) return reply;
    const query = request.query;
    const type = responseType(reply);
    const duration = this.duration(type, reply);
    const withAd = query.edns?.dnssecOk === true || (query.flags & Flag.AD) !== 0;
    const answer = withTtl(reply.answer, duration);
    const authority = withTtl(reply.authority, duration);
    const additional = withTtl(reply.additional, duration);
    if (store && duration > 0 && storable(type, reply, query.qtype)) {
      this.store(query.qname, kind, type, reply, { answer, authority, additional }, duration, stats, inherit);
    }
    const flags = withAd ? reply.flags : reply.flags & ~Flag.AD;
    if (answer === reply.answer && authority === reply.authority && additional === reply.additional && flags === reply.flags) return reply;
    const out: Reply = { rcode: reply.rcode, flags, answer, authority, additional };
    if (reply.error) out.error = reply.error;
    return out;
  }

  /** CACHE-6, in whole seconds. */
  private duration(type: ResponseType, reply: Reply): number {
    switch (type) {
      case 'NameError':
      case 'NoData':
        return clamp(minimalTtl(type, reply), this.config.denial);
      case 'ServerError':
        return this.config.servfailTtl;
      default:
        return clamp(minimalTtl(type, reply), this.config.success);
    }
  }

  private store(qname: string, kind: number, type: ResponseType, reply: Reply, sections: Sections, duration: number, stats: CacheStats, inherit?: Entry): void {
    const denial = type === 'NameError' || type === 'NoData' || type === 'ServerError';
    if (disabledFor(qname, denial ? this.config.disableDenial : this.config.disableSuccess)) return;
    const now = clock();
    const authorities = this.authoritiesFor(qname);
    const generation = authorities.length > 0 ? generationOf(authorities) : 0;
    const serverError = type === 'ServerError';
    const flags = reply.flags & (Flag.RA | Flag.AD);
    const hits = inherit ? inherit.hits : 0;
    let entry = (denial ? this.denial : this.success).peek(kind, qname);
    if (entry !== undefined && entry.rcode === reply.rcode && entry.flags === flags && entry.serverError === serverError &&
        entry.base.answer === sections.answer && entry.base.authority === sections.authority && entry.base.additional === sections.additional) {
      // The same records again (an expired entry refilled from a memoised
      // answer): refresh it in place. A new entry and its encoded body would
      // live long enough to be promoted, and every cached name would add to
      // the old generation once per TTL, bringing full collections.
      entry.ttl = duration;
      entry.storedAt = now;
      entry.expiresAt = now + duration * 1000;
      if (!sameAuthorities(entry.authorities, authorities)) entry.authorities = authorities;
      entry.generation = generation;
      entry.hits = hits;
      entry.lastHit = now;
    } else {
      entry = {
        name: qname,
        kind,
        denial,
        serverError,
        rcode: reply.rcode,
        flags,
        ttl: duration,
        storedAt: now,
        expiresAt: now + duration * 1000,
        authorities,
        generation,
        base: { rcode: reply.rcode, flags: 0, answer: sections.answer, authority: sections.authority, additional: sections.additional },
        hits,
        lastHit: now,
        refreshing: false,
        newer: null,
        older: null,
      };
    }
    this.storing = stats;
    try {
      if (denial) {
        this.denial.set(entry);
        // A fresh negative answer replaces a positive one; a SERVFAIL does not (CACHE-13).
        if (!entry.serverError) this.success.delete(kind, qname);
      } else {
        this.success.set(entry);
        // The stores never hold both kinds for a name, SERVFAIL apart: lookup() relies on it.
        this.denial.delete(kind, qname);
      }
    } finally {
      this.storing = null;
    }
  }

  /** The block's authorities whose zones cover `qname` (read at store time: they register after the cache is created). */
  private authoritiesFor(qname: string): readonly Authority[] {
    let found: Authority[] | null = null;
    for (const authority of this.block.authorities) {
      if (authority.zones.some((zone) => isSubdomain(qname, zone))) (found ??= []).push(authority);
    }
    return found ?? noAuthorities;
  }

  /**
   * A background query for the entry's key whose answer replaces it: prefetch
   * (CACHE-11) and serve_stale's immediate mode (CACHE-12). The client's
   * reply does not wait for it; one runs per entry at a time.
   */
  private refresh(request: Request, next: Next, kind: number, entry: Entry, stats: CacheStats, prefetch: boolean): void {
    if (entry.refreshing) return;
    entry.refreshing = true;
    setImmediate(() => {
      const finish = (reply: Reply | null) => {
        entry.refreshing = false;
        if (reply === null) return;
        this.written(request, reply, kind, stats, true, prefetch ? entry : undefined);
      };
      const failed = (error: unknown) => {
        entry.refreshing = false;
        this.log.debug(`refresh of ${request.query.qname} failed: ${error instanceof Error ? error.message : String(error)}`);
      };
      try {
        const result = whenReplied(next(request), finish);
        if (result instanceof Promise) result.catch(failed);
      } catch (error) {
        failed(error);
      }
    });
  }

  /**
   * serve_stale verify (CACHE-12): ask first; a NOERROR or NXDOMAIN answer
   * replaces the entry and goes to the client, anything else (or a failure)
   * serves the stale entry with TTL 0.
   */
  private verifyStale(request: Request, next: Next, kind: number, entry: Entry, stats: CacheStats): Reply | Promise<Reply> {
    const withAd = request.query.edns?.dnssecOk === true || (request.query.flags & Flag.AD) !== 0;
    const stale = (): Reply => {
      stats.servedStale++;
      return hitReply(entry, 0, withAd);
    };
    const decide = (reply: Reply): Reply => {
      if (!isServerWritten(reply) && (reply.rcode === Rcode.NOERROR || reply.rcode === Rcode.NXDOMAIN)) {
        return this.written(request, reply, kind, stats, true);
      }
      return stale();
    };
    let result: Reply | Promise<Reply>;
    try {
      result = next(request);
    } catch {
      return stale();
    }
    if (result instanceof Promise) return result.then(decide, stale);
    return decide(result);
  }
}

function disabledFor(qname: string, zones: readonly string[]): boolean {
  for (const zone of zones) if (isSubdomain(qname, zone)) return true;
  return false;
}

function sameAuthorities(a: readonly Authority[], b: readonly Authority[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function generationOf(authorities: readonly Authority[]): number {
  let sum = 0;
  for (const authority of authorities) sum += authority.generation();
  return sum;
}

/**
 * CACHE-8/10: the reply for a hit with `ttl` seconds left. AA always set,
 * RA and RCODE as stored, AD only when the request had DO or AD. The records
 * are the entry's; their TTL is `derived.ttl`, not their own field.
 */
function hitReply(entry: Entry, ttl: number, withAd: boolean): Reply {
  const ad = withAd && (entry.flags & Flag.AD) !== 0;
  return {
    rcode: entry.rcode,
    flags: ReplyFlag.AA | (entry.flags & Flag.RA) | (ad ? Flag.AD : 0),
    answer: entry.base.answer,
    authority: entry.base.authority,
    additional: entry.base.additional,
    derived: { base: entry.base, ttl, order: null },
  };
}
