// coredns_rrl_* with the names, help and label of CoreDNS's rrl plugin.
//
// The label is the client's address, as in rrl. Under a flood of spoofed
// sources that would be a new series per address, so the number of series is
// capped: past MAX_CLIENT_SERIES addresses, new ones are counted under
// client_ip="other" and memory stays bounded.

import { FastCounter, type CounterSeries } from '../../src/fast-metrics.ts';
import { registry } from '../../src/metrics.ts';

export const MAX_CLIENT_SERIES = 1000;
const OTHER = 'other';

class ExceededCounter {
  private readonly counter: FastCounter;
  private readonly series = new Map<string, CounterSeries>();

  constructor(name: string, help: string) {
    this.counter = new FastCounter(name, help, ['client_ip'], registry);
  }

  inc(clientIp: string): void {
    let series = this.series.get(clientIp);
    if (series === undefined) {
      const label = this.series.size < MAX_CLIENT_SERIES ? clientIp : OTHER;
      series = this.counter.labels(label);
      if (label !== OTHER) this.series.set(clientIp, series);
    }
    series.inc();
  }
}

let counters: { requests: ExceededCounter; responses: ExceededCounter } | null = null;

/** Registered when the first rrl block is set up, as CoreDNS registers them at its startup. */
export function rrlCounters(): { requests: ExceededCounter; responses: ExceededCounter } {
  counters ??= {
    requests: new ExceededCounter('coredns_rrl_requests_exceeded_total', 'Counter of requests exceeding QPS limit.'),
    responses: new ExceededCounter('coredns_rrl_responses_exceeded_total', 'Counter of responses exceeding QPS limit.'),
  };
  return counters;
}
