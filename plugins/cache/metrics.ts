// cache metrics (PROM-4) without per-query label hashing.
//
// prom-client hashes the label object on every inc(). The hit path instead
// bumps plain numbers in a per-(cache, server label) CacheStats, and the
// numbers are moved into the prom-client series when the registry is read
// (each cache metric's collect hook flushes every live cache). Series still
// appear only after their first event (PROM-9).

import type { Counter, Gauge } from 'prom-client';
import {
  cacheDrops,
  cacheEntries,
  cacheEvictions,
  cacheHits,
  cacheMisses,
  cachePrefetches,
  cacheRequests,
  cacheServedStale,
} from '../../src/metrics.ts';

type Labels = Record<string, string>;

/** Counts for one cache instance and one server label (`dns://:53`). */
export class CacheStats {
  requests = 0;
  hitsSuccess = 0;
  hitsDenial = 0;
  misses = 0;
  prefetches = 0;
  drops = 0;
  servedStale = 0;
  evictionsSuccess = 0;
  evictionsDenial = 0;
  readonly server: string;
  private readonly base: Labels;
  private readonly success: Labels;
  private readonly denial: Labels;

  constructor(server: string, zones: string) {
    this.server = server;
    this.base = { server, zones, view: '' };
    this.success = { server, type: 'success', zones, view: '' };
    this.denial = { server, type: 'denial', zones, view: '' };
  }

  /** Moves the counts into prom-client and reports the current entry counts. */
  flush(successEntries: number, denialEntries: number): void {
    add(cacheRequests, this.base, this.requests);
    add(cacheHits, this.success, this.hitsSuccess);
    add(cacheHits, this.denial, this.hitsDenial);
    add(cacheMisses, this.base, this.misses);
    add(cachePrefetches, this.base, this.prefetches);
    add(cacheDrops, this.base, this.drops);
    add(cacheServedStale, this.base, this.servedStale);
    add(cacheEvictions, this.success, this.evictionsSuccess);
    add(cacheEvictions, this.denial, this.evictionsDenial);
    this.requests = this.hitsSuccess = this.hitsDenial = this.misses = 0;
    this.prefetches = this.drops = this.servedStale = this.evictionsSuccess = this.evictionsDenial = 0;
    (cacheEntries as Gauge<string>).set(this.success, successEntries);
    (cacheEntries as Gauge<string>).set(this.denial, denialEntries);
  }
}

function add(counter: Counter<string>, labels: Labels, value: number): void {
  if (value > 0) counter.inc(labels, value);
}

/** Something holding CacheStats that can push them out. */
export interface StatsSource {
  flushStats(): void;
}

const sources = new Set<StatsSource>();
let hooked = false;

/** Runs every live cache's flush; called by the metrics' collect hooks before a scrape. */
export function flushCacheMetrics(): void {
  for (const source of sources) source.flushStats();
}

function hookCollectors(): void {
  if (hooked) return;
  hooked = true;
  const metrics = [cacheEntries, cacheRequests, cacheHits, cacheMisses, cachePrefetches, cacheDrops, cacheServedStale, cacheEvictions];
  for (const metric of metrics) {
    const target = metric as unknown as { collect?: () => unknown };
    const previous = target.collect;
    target.collect = function collect(this: unknown) {
      flushCacheMetrics();
      return previous?.call(this);
    };
  }
}

export function registerStatsSource(source: StatsSource): void {
  hookCollectors();
  sources.add(source);
}

export function unregisterStatsSource(source: StatsSource): void {
  source.flushStats();
  sources.delete(source);
}
