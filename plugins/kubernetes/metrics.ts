// The kubernetes plugin's own metrics (KP-41, KP-42), with CoreDNS's names,
// help, labels and buckets, in the shared registry the prometheus plugin
// serves. Only the API source feeds them; like every labelled series they
// appear on first observation (PROM-9).
//
// KP-41 coredns_kubernetes_dns_programming_duration_seconds{service_kind}:
//   for an EndpointSlice change that arrives through a watch (not the initial
//   list, not a re-list), now − the slice's
//   endpoints.kubernetes.io/last-change-trigger-time, when exactly one Service
//   of that name is known. service_kind is cluster_ip or
//   headless_with_selector (CoreDNS never emits headless_without_selector:
//   slices of selector-less Services carry no trigger time).
//
// KP-42 coredns_kubernetes_rest_client_requests_total{code,method,host} and
//   coredns_kubernetes_rest_client_request_duration_seconds{verb,host}: one
//   observation per HTTP request the API source makes (every list page, every
//   watch). As in client-go, `code` is the HTTP status or `<error>` when no
//   response came back, `method` and `verb` the HTTP method (GET), `host` the
//   API server's host:port as configured. A list's duration runs until its
//   body has been read and decoded; a watch's until the response headers (the stream
//   itself is not a request latency). client-go's rate limiter metric
//   (coredns_kubernetes_rest_client_rate_limiter_duration_seconds) is not
//   exported: there is no client-side rate limiter here.

import { Counter, Histogram } from 'prom-client';
import { registry } from '../../src/metrics.ts';

const registers = [registry];

/** KP-41: exponential from 1 ms, factor 2, 20 buckets (0.001 … 524.288 s). */
export const DNS_PROGRAMMING_BUCKETS = Array.from({ length: 20 }, (_, i) => 0.001 * 2 ** i);
/** KP-42: Prometheus's default buckets (prometheus.DefBuckets). */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const dnsProgrammingDuration = new Histogram({
  name: 'coredns_kubernetes_dns_programming_duration_seconds',
  help: 'Histogram of the time (in seconds) it took to program a dns instance.',
  labelNames: ['service_kind'],
  buckets: DNS_PROGRAMMING_BUCKETS,
  registers,
});

export const restClientRequestDuration = new Histogram({
  name: 'coredns_kubernetes_rest_client_request_duration_seconds',
  help: 'Request latency in seconds. Broken down by verb and host.',
  labelNames: ['verb', 'host'],
  buckets: DEFAULT_BUCKETS,
  registers,
});

export const restClientRequests = new Counter({
  name: 'coredns_kubernetes_rest_client_requests_total',
  help: 'Number of HTTP requests, partitioned by status code, method, and host.',
  labelNames: ['code', 'method', 'host'],
  registers,
});

export type ServiceKind = 'cluster_ip' | 'headless_with_selector';

/** KP-41: one slice change programmed `seconds` after its trigger time. */
export function observeDnsProgramming(kind: ServiceKind, seconds: number): void {
  // Clock skew between this host and the controller can make it negative; count it as 0.
  dnsProgrammingDuration.labels(kind).observe(Math.max(0, seconds));
}

/**
 * The host label client-go gives these metrics: host[:port] of the server URL
 * exactly as configured (URL.host would drop a default :443).
 */
export function hostLabel(server: string): string {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/]*@)?([^/?#]*)/i.exec(server);
  return match ? match[1]! : server;
}

/**
 * KP-42: starts timing one HTTP request; the returned function records it once
 * with its status (null: no response, counted as `<error>`).
 */
export function startRestRequest(host: string, method = 'GET'): (status: number | null) => void {
  const started = performance.now();
  let recorded = false;
  return (status) => {
    if (recorded) return;
    recorded = true;
    restClientRequestDuration.labels(method, host).observe((performance.now() - started) / 1000);
    restClientRequests.labels(status === null ? '<error>' : String(status), method, host).inc();
  };
}
