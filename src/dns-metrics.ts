// Per-query DNS metrics (PROM-2/3), kept cheap: the labelled series a query
// touches are looked up in nested maps of prebuilt children, so counting
// builds no label objects or key strings per query.

import type { CounterSeries, HistogramSeries } from './fast-metrics.ts';
import {
  dnsDoRequests, dnsRequestDuration, dnsRequestSize, dnsRequests, dnsResponseSize, dnsResponses, typeLabel,
} from './metrics.ts';
import { rcodeName, typeName } from './wire/constants.ts';

type CounterChild = CounterSeries;
type HistogramChild = HistogramSeries;

interface ZoneSeries {
  /** Keyed by qtype, transport and family packed into one number. */
  requests: Map<number, CounterChild>;
  responses: Map<number, CounterChild>;
  duration: HistogramChild;
  doRequests: CounterChild | null;
  requestSize: [HistogramChild | null, HistogramChild | null];
  responseSize: [HistogramChild | null, HistogramChild | null];
}

const byServer = new Map<string, Map<string, ZoneSeries>>();

function zoneSeries(server: string, zone: string): ZoneSeries {
  let zones = byServer.get(server);
  if (!zones) byServer.set(server, (zones = new Map()));
  let series = zones.get(zone);
  if (!series) {
    series = {
      requests: new Map(),
      responses: new Map(),
      duration: dnsRequestDuration.labels(server, zone, ''),
      doRequests: null,
      requestSize: [null, null],
      responseSize: [null, null],
    };
    zones.set(zone, series);
  }
  return series;
}

/** Counts one answered query. Positional arguments: no object is built per query. */
export function observeQuery(
  server: string,
  zone: string,
  transport: 'udp' | 'tcp',
  family: 1 | 2,
  qtype: number,
  dnssecOk: boolean,
  requestSize: number,
  rcode: number,
  responseSize: number,
  seconds: number,
): void {
  const series = zoneSeries(server, zone);
  const tcp = transport === 'tcp' ? 1 : 0;
  const requestKey = qtype * 4 + tcp * 2 + (family - 1);
  let requests = series.requests.get(requestKey);
  if (!requests) {
    requests = dnsRequests.labels(server, zone, '', transport, String(family), typeLabel(typeName(qtype)));
    series.requests.set(requestKey, requests);
  }
  requests.inc();
  if (dnssecOk) (series.doRequests ??= dnsDoRequests.labels(server, zone, '')).inc();
  (series.requestSize[tcp] ??= dnsRequestSize.labels(server, zone, '', transport)).observe(requestSize);
  let responses = series.responses.get(rcode);
  if (!responses) {
    responses = dnsResponses.labels(server, zone, '', rcodeName(rcode), '');
    series.responses.set(rcode, responses);
  }
  responses.inc();
  series.duration.observe(seconds);
  (series.responseSize[tcp] ??= dnsResponseSize.labels(server, zone, '', transport)).observe(responseSize);
}
