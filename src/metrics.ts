// Every Prometheus metric clusterdns exports, with CoreDNS's names, labels,
// help and buckets (PROM-*), in one registry the prometheus plugin serves.
// Series appear lazily, on first observation, as in CoreDNS (PROM-9).
//
// Hot paths should keep the labelled child (`counter.labels(...)`) they use
// instead of passing label values per query.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-metrics.ts';

export const registry = new Registry();

/** PROM-10 TimeBuckets: 0.00025 s doubling, 16 buckets. */
export const TIME_BUCKETS = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i);
/** PROM-10 SlimTimeBuckets (health). */
export const SLIM_TIME_BUCKETS = [0.00025, 0.0025, 0.025, 0.25, 2.5];
/** PROM-10 size buckets, in bytes. */
export const SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000];

const registers = [registry];

// forward (PROM-5)
// The series observed per forwarded query are fast ones (src/fast-metrics.ts): prom-client's cost ~4% of
// the CPU under a flood of cache misses (bench/resilience/overload.ts --profile).
export const proxyRequestDuration = new FastHistogram(
  'coredns_proxy_request_duration_seconds',
  'Histogram of the time each request took.',
  ['proxy_name', 'to', 'rcode'],
  TIME_BUCKETS,
  registry,
);
export const proxyHealthcheckFailures = new Counter({
  name: 'coredns_proxy_healthcheck_failures_total',
  help: 'Counter of the number of failed healthchecks.',
  labelNames: ['proxy_name', 'to'],
  registers,
});
export const proxyConnCacheHits = new FastCounter(
  'coredns_proxy_conn_cache_hits_total',
  'Counter of connection cache hits per upstream and protocol.',
  ['proxy_name', 'to', 'proto'],
  registry,
);
export const proxyConnCacheMisses = new FastCounter(
  'coredns_proxy_conn_cache_misses_total',
  'Counter of connection cache misses per upstream and protocol.',
  ['proxy_name', 'to', 'proto'],
  registry,
);
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
/** clusterdns's own (CoreDNS does not coalesce): queries answered by another query's upstream exchange. */
export const forwardCoalesced = new Counter({
  name: 'clusterdns_forward_coalesced_total',
  help: 'Counter of queries that joined an identical question already in flight upstream instead of sending their own.',
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

// core (PROM-3)
export const panicsTotal = new Counter({
  name: 'coredns_panics_total',
  help: 'A metrics that counts the number of panics.',
  registers,
});

// reload (PROM-7)
export const reloadFailed = new Counter({
  name: 'coredns_reload_failed_total',
  help: 'Counter of the number of failed reload attempts.',
  registers,
});
export const reloadVersionInfo = new Gauge({
  name: 'coredns_reload_version_info',
  help: 'A metric with a constant \'1\' value labeled by hash, and value which type of hash generated.',
  labelNames: ['hash', 'value'],
  registers,
});

// health (PROM-7, HEALTH-4)
export const healthRequestDuration = new Histogram({
  name: 'coredns_health_request_duration_seconds',
  help: 'Histogram of the time (in seconds) each request took.',
  buckets: SLIM_TIME_BUCKETS,
  registers,
});
export const healthRequestFailures = new Counter({
  name: 'coredns_health_request_failures_total',
  help: 'The number of times the health check failed.',
  registers,
});

// DNS server (PROM-2, PROM-3): touched by every query, so kept as plain numbers (src/fast-metrics.ts).
export const dnsRequests = new FastCounter(
  'coredns_dns_requests_total',
  'Counter of DNS requests made per zone, protocol and family.',
  ['server', 'zone', 'view', 'proto', 'family', 'type'],
  registry,
);
export const dnsResponses = new FastCounter(
  'coredns_dns_responses_total',
  'Counter of response status codes.',
  ['server', 'zone', 'view', 'rcode', 'plugin'],
  registry,
);
export const dnsRequestDuration = new FastHistogram(
  'coredns_dns_request_duration_seconds',
  'Histogram of the time (in seconds) each request took per zone.',
  ['server', 'zone', 'view'],
  TIME_BUCKETS,
  registry,
);
export const dnsRequestSize = new FastHistogram(
  'coredns_dns_request_size_bytes',
  'Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.',
  ['server', 'zone', 'view', 'proto'],
  SIZE_BUCKETS,
  registry,
);
export const dnsResponseSize = new FastHistogram(
  'coredns_dns_response_size_bytes',
  'Size of the returned response in bytes.',
  ['server', 'zone', 'view', 'proto'],
  SIZE_BUCKETS,
  registry,
);
export const dnsDoRequests = new FastCounter(
  'coredns_dns_do_requests_total',
  'Counter of DNS requests with DO bit set per zone.',
  ['server', 'zone', 'view'],
  registry,
);
export const buildInfo = new Gauge({
  name: 'coredns_build_info',
  help: 'A metric with a constant \'1\' value labeled by version, revision, and goversion from which CoreDNS was built.',
  labelNames: ['version', 'revision', 'goversion'],
  registers,
});
export const pluginEnabled = new Gauge({
  name: 'coredns_plugin_enabled',
  help: 'A metric that indicates whether a plugin is enabled on per server and zone basis.',
  labelNames: ['server', 'zone', 'view', 'name'],
  registers,
});

/** PROM-2: the types CoreDNS labels by name; anything else is "other". */
const MONITORED_TYPES = new Set(['A', 'AAAA', 'CNAME', 'DNSKEY', 'DS', 'MX', 'NSEC3', 'NSEC', 'NS', 'PTR', 'RRSIG', 'SOA', 'SRV', 'TXT', 'HTTPS', 'IXFR', 'AXFR', 'ANY']);

export function typeLabel(name: string): string {
  return MONITORED_TYPES.has(name) ? name : 'other';
}

// forward, names from before CoreDNS 1.11 (PROM-6): the coredns-mixin's
// CoreDNSForward* alerts and dashboards still query them, so both are exported.
export const forwardRequestsLegacy = new FastCounter('coredns_forward_requests_total', 'Counter of requests made per upstream.', ['to'], registry);
export const forwardResponsesLegacy = new FastCounter('coredns_forward_responses_total', 'Counter of responses received per upstream.', ['rcode', 'to'], registry);
export const forwardRequestDurationLegacy = new FastHistogram(
  'coredns_forward_request_duration_seconds',
  'Histogram of the time each request took.',
  ['to', 'rcode'],
  TIME_BUCKETS,
  registry,
);
export const forwardHealthcheckFailuresLegacy = new Counter({
  name: 'coredns_forward_healthcheck_failures_total',
  help: 'Counter of the number of failed healthchecks.',
  labelNames: ['to'],
  registers,
});
export const forwardConnCacheHitsLegacy = new FastCounter('coredns_forward_conn_cache_hits_total', 'Counter of connection cache hits per upstream and protocol.', ['to', 'proto'], registry);
export const forwardConnCacheMissesLegacy = new FastCounter('coredns_forward_conn_cache_misses_total', 'Counter of connection cache misses per upstream and protocol.', ['to', 'proto'], registry);

// clusterdns's own (no CoreDNS equivalent): how the server holds under load (users.md P3).
export const shedQueries = new FastCounter(
  'clusterdns_shed_queries_total',
  'Counter of queries answered REFUSED at once because the server had its maximum of queries in flight.',
  ['server'],
  registry,
);
/** Read at scrape time: each running server adds a reader of its count (src/server.ts). */
export const inFlightReaders = new Set<() => number>();
export const queriesInFlight = new Gauge({
  name: 'clusterdns_queries_in_flight',
  help: 'The number of queries waiting on I/O (forwarding) across the server.',
  registers,
  collect() {
    let total = 0;
    for (const read of inFlightReaders) total += read();
    this.set(total);
  },
});
/** Read at scrape time: each UDP listener found in the kernel's table adds a reader of its drop count (src/server.ts). */
export const udpDropReaders = new Set<{ label: string; read(): number | null }>();
export const udpQueriesDropped = new Counter({
  name: 'clusterdns_udp_queries_dropped_total',
  help: "Counter of UDP queries the kernel dropped because the listener's receive queue was full (Linux).",
  labelNames: ['server'],
  registers,
  collect() {
    this.reset();
    for (const reader of udpDropReaders) {
      const drops = reader.read();
      if (drops !== null) this.labels(reader.label).inc(drops);
    }
  },
});
export const tcpConnectionsOpen = new Gauge({
  name: 'clusterdns_tcp_connections',
  help: 'The number of open DNS-over-TCP connections per server.',
  labelNames: ['server'],
  registers,
});
export const tcpConnectionsClosed = new Counter({
  name: 'clusterdns_tcp_connections_closed_total',
  help: 'Counter of DNS-over-TCP connections the server closed, by reason: read_timeout, idle_timeout, write_timeout, evicted (room for a new connection).',
  labelNames: ['server', 'reason'],
  registers,
});
