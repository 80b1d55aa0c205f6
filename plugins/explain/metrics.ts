// Summaries of the top-K views without a label per name or client (their
// cardinality is what CoreDNS refuses metrics for): per server block and view,
// the events counted, the keys held and the share the top K account for,
// labelled by listener and the first zone of the block (as CoreDNS's
// server and zone labels).
// Read from the live sketches at scrape time; nothing is done per query.

import { Counter, Gauge } from 'prom-client';
import { registry } from '../../src/metrics.ts';
import { VIEW_NAMES, type Offenders } from './offenders.ts';

const live = new Set<Offenders>();
let registered = false;

function* series(): Generator<{ server: string; zone: string; view: string; total: number; tracked: number; topShare: number }> {
  for (const offenders of live) {
    for (const views of offenders.serverViews()) {
      for (const view of VIEW_NAMES) {
        const sketch = views.views[view];
        const topCount = sketch.top(offenders.topK).reduce((sum, entry) => sum + entry.count, 0);
        yield { server: views.server, zone: offenders.zones[0] ?? '', view, total: sketch.total, tracked: sketch.size, topShare: sketch.total === 0 ? 0 : Math.min(1, topCount / sketch.total) };
      }
    }
  }
}

type Summary = ReturnType<typeof series> extends Generator<infer T> ? T : never;

/** One metric per summary field, read from the sketches at each scrape. */
function summaryMetric(Kind: typeof Counter | typeof Gauge, name: string, help: string, value: (summary: Summary) => number): void {
  new Kind({
    name,
    help,
    labelNames: ['server', 'zone', 'view'],
    registers: [registry],
    collect(this: Counter | Gauge) {
      this.reset();
      // A counter's child has no set(): inc from zero after the reset is the same.
      for (const summary of series()) (this.labels(summary.server, summary.zone, summary.view) as { inc(value: number): void }).inc(value(summary));
    },
  });
}

function register(): void {
  registered = true;
  summaryMetric(Counter, 'clusterdns_explain_observed_total',
    'Events counted by each top-K view of the explain plugin (nxdomain, search_waste, clients).', (summary) => summary.total);
  summaryMetric(Gauge, 'clusterdns_explain_tracked',
    'Distinct names or clients each top-K view of the explain plugin holds (bounded by its capacity).', (summary) => summary.tracked);
  summaryMetric(Gauge, 'clusterdns_explain_top_share',
    'Share of the events of each top-K view of the explain plugin that its top K names or clients account for.', (summary) => summary.topShare);
}

export function trackOffenders(offenders: Offenders): () => void {
  if (!registered) register();
  live.add(offenders);
  return () => live.delete(offenders);
}
