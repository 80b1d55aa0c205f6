// Every Prometheus metric clusterdns exports, with CoreDNS's names, labels,
// help and buckets (PROM-*), in one registry the prometheus plugin serves.
// Series appear lazily, on first observation, as in CoreDNS (PROM-9).
//
// Hot paths should keep the labelled child (`counter.labels(...)`) they use
// instead of passing label values per query.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();

/** PROM-10 TimeBuckets: 0.00025 s doubling, 16 buckets. */
export const TIME_BUCKETS = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i);
/** PROM-10 SlimTimeBuckets (health). */
export const SLIM_TIME_BUCKETS = [0.00025, 0.0025, 0.025, 0.25, 2.5];
/** PROM-10 size buckets, in bytes. */
export const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000];

const registers = [registry];

// forward (PROM-5)
export const proxyRequestDuration = new Histogram({
  name: 'coredns_proxy_request_duration_seconds',
  help: 'Histogram of the time each request took.',
  labelNames: ['proxy_name', 'to', 'rcode'],
  buckets: TIME_BUCKETS,
  registers,
});
export const proxyHealthcheckFailures = new Counter({
  name: 'coredns_proxy_healthcheck_failures_total',
  help: 'Counter of the number of failed healthchecks.',
  labelNames: ['proxy_name', 'to'],
  registers,
});
export const proxyConnCacheHits = new Counter({
  name: 'coredns_proxy_conn_cache_hits_total',
  help: 'Counter of connection cache hits per upstream and protocol.',
  labelNames: ['proxy_name', 'to', 'proto'],
  registers,
});
export const proxyConnCacheMisses = new Counter({
  name: 'coredns_proxy_conn_cache_misses_total',
  help: 'Counter of connection cache misses per upstream and protocol.',
  labelNames: ['proxy_name', 'to', 'proto'],
  registers,
});
export const forwardHealthcheckBroken = new Counter({
  name: 'coredns_forward_healthcheck_broken_total',
  help: 'Counter of the number of complete failures of the healthchecks.',
  registers,
});
export const forwardMaxConcurrentRejects = new Counter({
  name: 'coredns_forward_max_concurrent_rejects_total',
  help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.',
  registers,
});

// cache (PROM-4)
export const cacheEntries = new Gauge({
  name: 'coredns_cache_entries',
  help: 'The number of elements in the cache.',
  labelNames: ['server', 'type', 'zones', 'view'],
  registers,
});
export const cacheRequests = new Counter({
  name: 'coredns_cache_requests_total',
  help: 'The count of cache requests.',
  labelNames: ['server', 'zones', 'view'],
  registers,
});
export const cacheHits = new Counter({
  name: 'coredns_cache_hits_total',
  help: 'The count of cache hits.',
  labelNames: ['server', 'type', 'zones', 'view'],
  registers,
});
export const cacheMisses = new Counter({
  name: 'coredns_cache_misses_total',
  help: 'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.',
  labelNames: ['server', 'zones', 'view'],
  registers,
});
export const cachePrefetches = new Counter({
  name: 'coredns_cache_prefetch_total',
  help: 'The number of times the cache has prefetched a cached item.',
  labelNames: ['server', 'zones', 'view'],
  registers,
});
export const cacheDrops = new Counter({
  name: 'coredns_cache_drops_total',
  help: 'The number responses that are not cached, because the reply is malformed.',
  labelNames: ['server', 'zones', 'view'],
  registers,
});
export const cacheServedStale = new Counter({
  name: 'coredns_cache_served_stale_total',
  help: 'The number of requests served from stale cache entries.',
  labelNames: ['server', 'zones', 'view'],
  registers,
});
export const cacheEvictions = new Counter({
  name: 'coredns_cache_evictions_total',
  help: 'The count of cache evictions.',
  labelNames: ['server', 'type', 'zones', 'view'],
  registers,
});
