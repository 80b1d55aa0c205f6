// One upstream's metrics, under the current names (PROM-5) and the names
// before CoreDNS 1.11 (PROM-6), with the labelled series kept, not rebuilt
// per query.

import {
  forwardConnCacheHitsLegacy, forwardConnCacheMissesLegacy, forwardHealthcheckFailuresLegacy, forwardRequestDurationLegacy,
  forwardRequestsLegacy, forwardResponsesLegacy, proxyConnCacheHits, proxyConnCacheMisses, proxyHealthcheckFailures,
  proxyRequestDuration,
} from '../../src/metrics.ts';
import type { CounterSeries } from '../../src/fast-metrics.ts';
import { rcodeName } from '../../src/wire/constants.ts';

const PROXY_NAME = 'forward';

type Child<T extends { labels: (...values: string[]) => unknown }> = ReturnType<T['labels']>;

export class UpstreamMetrics {
  private readonly to: string;
  private readonly requests: Child<typeof forwardRequestsLegacy>;
  private readonly byRcode = new Map<number, { duration: Child<typeof proxyRequestDuration>; legacyDuration: Child<typeof forwardRequestDurationLegacy>; responses: Child<typeof forwardResponsesLegacy> }>();

  private readonly connectionSeries = new Map<string, [CounterSeries, CounterSeries]>();

  constructor(to: string) {
    this.to = to;
    this.requests = forwardRequestsLegacy.labels(to);
  }

  /** An exchange that got a reply with `rcode` after `seconds`. */
  reply(rcode: number, seconds: number): void {
    let series = this.byRcode.get(rcode);
    if (!series) {
      const name = rcodeName(rcode);
      series = {
        duration: proxyRequestDuration.labels(PROXY_NAME, this.to, name),
        legacyDuration: forwardRequestDurationLegacy.labels(this.to, name),
        responses: forwardResponsesLegacy.labels(name, this.to),
      };
      this.byRcode.set(rcode, series);
    }
    this.requests.inc();
    series.duration.observe(seconds);
    series.legacyDuration.observe(seconds);
    series.responses.inc();
  }

  /** A query sent on a connection taken from the pool (reused) or opened for it. */
  connection(reused: boolean, proto: string): void {
    const key = `${reused ? 'hit' : 'miss'} ${proto}`;
    let series = this.connectionSeries.get(key);
    if (!series) {
      series = reused
        ? [proxyConnCacheHits.labels(PROXY_NAME, this.to, proto), forwardConnCacheHitsLegacy.labels(this.to, proto)]
        : [proxyConnCacheMisses.labels(PROXY_NAME, this.to, proto), forwardConnCacheMissesLegacy.labels(this.to, proto)];
      this.connectionSeries.set(key, series);
    }
    series[0].inc();
    series[1].inc();
  }

  healthcheckFailed(): void {
    proxyHealthcheckFailures.labels(PROXY_NAME, this.to).inc();
    forwardHealthcheckFailuresLegacy.labels(this.to).inc();
  }
}
