// Top offenders with memory independent of traffic: the space-saving
// algorithm (Metwally, Agrawal, El Abbadi, 2005). `capacity` counters are
// kept in a min-heap; a key not yet counted takes the smallest counter's
// place and inherits its count as its possible overestimate (`error`).
// Any key seen more than total/capacity times is guaranteed to be held, and
// each count is exact to within its error. Hand-written: it runs per query
// when the explain plugin is configured, and needs no allocation per update.

export interface TopEntry {
  key: string;
  /** Upper bound of how often the key was seen. */
  count: number;
  /** How much of `count` may belong to keys it replaced; count - error is a lower bound. */
  error: number;
}

export class SpaceSaving {
  readonly capacity: number;
  /** Events counted so far. */
  total = 0;
  private readonly keys: string[] = [];
  private readonly counts: number[] = [];
  private readonly errors: number[] = [];
  /** key → position in the heap arrays. */
  private readonly position = new Map<string, number>();

  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('capacity must be at least 1');
    this.capacity = capacity;
  }

  get size(): number {
    return this.keys.length;
  }

  add(key: string): void {
    this.total++;
    const at = this.position.get(key);
    if (at !== undefined) {
      this.counts[at]!++;
      this.siftDown(at);
      return;
    }
    if (this.keys.length < this.capacity) {
      const end = this.keys.length;
      this.keys.push(key);
      this.counts.push(1);
      this.errors.push(0);
      this.position.set(key, end);
      this.siftUp(end);
      return;
    }
    // Replace the smallest counter (the heap's root).
    const min = this.counts[0]!;
    this.position.delete(this.keys[0]!);
    this.keys[0] = key;
    this.counts[0] = min + 1;
    this.errors[0] = min;
    this.position.set(key, 0);
    this.siftDown(0);
  }

  /** The `k` largest counts, largest first (ties by key, so the order is stable). */
  top(k: number): TopEntry[] {
    const entries = this.keys.map((key, i) => ({ key, count: this.counts[i]!, error: this.errors[i]! }));
    entries.sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return entries.slice(0, k);
  }

  private less(a: number, b: number): boolean {
    return this.counts[a]! < this.counts[b]!;
  }

  private swap(a: number, b: number): void {
    const { keys, counts, errors } = this;
    const key = keys[a]!;
    const count = counts[a]!;
    const error = errors[a]!;
    keys[a] = keys[b]!;
    counts[a] = counts[b]!;
    errors[a] = errors[b]!;
    keys[b] = key;
    counts[b] = count;
    errors[b] = error;
    this.position.set(keys[a], a);
    this.position.set(key, b);
  }

  private siftUp(at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.less(at, parent)) return;
      this.swap(at, parent);
      at = parent;
    }
  }

  private siftDown(at: number): void {
    const size = this.keys.length;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= size) return;
      const right = left + 1;
      const smaller = right < size && this.less(right, left) ? right : left;
      if (!this.less(smaller, at)) return;
      this.swap(at, smaller);
      at = smaller;
    }
  }
}
