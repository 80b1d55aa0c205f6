// Counters and histograms for metrics touched by every query. prom-client
// validates and hashes the label values on every inc() and observe(), even on
// a child from labels(): per query that was about a tenth of the CPU. These
// keep plain numbers in the child and build the exposition only when
// /metrics is scraped; the registry serves them beside prom-client's own.

import type { Registry } from 'prom-client';

interface Exposed {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

abstract class FastMetric<Child> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  protected readonly labelNames: readonly string[];
  protected readonly children = new Map<string, { labels: Record<string, string>; child: Child }>();

  constructor(name: string, help: string, labelNames: readonly string[], register: Registry) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    // prom-client's registry formats any object with name, help, type and get().
    register.registerMetric(this as never);
  }

  /** The series for these label values, created on first use (series appear lazily, PROM-9). Not for per-query use: keep it. */
  labels(...values: string[]): Child {
    const key = values.join('\u0000');
    let entry = this.children.get(key);
    if (!entry) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i] ?? ''));
      entry = { labels, child: this.newChild() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  reset(): void {
    this.children.clear();
  }

  protected abstract newChild(): Child;
  protected abstract expose(labels: Record<string, string>, child: Child): Exposed[];

  get(): { name: string; help: string; type: string; aggregator: string; values: Exposed[] } {
    const values: Exposed[] = [];
    for (const { labels, child } of this.children.values()) values.push(...this.expose(labels, child));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export class CounterSeries {
  value = 0;
  inc(amount = 1): void {
    this.value += amount;
  }
}

export class FastCounter extends FastMetric<CounterSeries> {
  readonly type = 'counter';
  protected newChild(): CounterSeries {
    return new CounterSeries();
  }
  protected expose(labels: Record<string, string>, child: CounterSeries): Exposed[] {
    return [{ value: child.value, labels }];
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  private readonly bounds: readonly number[];
  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    let bucket = 0;
    while (bucket < this.bounds.length && value > this.bounds[bucket]!) bucket++;
    this.counts[bucket]!++;
    this.sum += value;
    this.count++;
  }
}

export class FastHistogram extends FastMetric<HistogramSeries> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[], register: Registry) {
    super(name, help, labelNames, register);
    this.buckets = buckets;
  }
  protected newChild(): HistogramSeries {
    return new HistogramSeries(this.buckets);
  }
  protected expose(labels: Record<string, string>, child: HistogramSeries): Exposed[] {
    const values: Exposed[] = [];
    let cumulative = 0;
    // Same shape as prom-client's histograms: `le` first, then the series' labels.
    this.buckets.forEach((bound, i) => {
      cumulative += child.counts[i]!;
      values.push({ metricName: `${this.name}_bucket`, labels: { le: bound, ...labels }, value: cumulative });
    });
    cumulative += child.counts[this.buckets.length]!;
    values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: cumulative });
    values.push({ metricName: `${this.name}_sum`, labels, value: child.sum });
    values.push({ metricName: `${this.name}_count`, labels, value: child.count });
    return values;
  }
}
