// A least-recently-used store of cache entries, with capacity and eviction
// callback (CACHE-3).
//
// Hand-written rather than lru-cache because it is on the hit path of nearly
// every query: under load, lru-cache's get (its options, status and
// background-fetch handling around the lookup) was ~6% of the server's busy
// time. Here a hit is two Map lookups and a move to the front of a list
// threaded through the entries themselves, so nothing is allocated. Entries
// are found by kind (a number) and then by name: the name is the query's
// own string, so no key string is built, flattened and hashed per query.

/** What the store keys entries by and threads its recency list through. */
export interface LruEntry<T> {
  readonly kind: number;
  readonly name: string;
  /** Toward the most recently used end; null at the front. */
  newer: T | null;
  /** Toward the least recently used end; null at the back. */
  older: T | null;
}

export class EntryLru<T extends LruEntry<T>> {
  private readonly kinds = new Map<number, Map<string, T>>();
  private count = 0;
  private newest: T | null = null;
  private oldest: T | null = null;
  private readonly capacity: number;
  private readonly onEvict: (entry: T) => void;

  constructor(capacity: number, onEvict: (entry: T) => void) {
    this.capacity = capacity;
    this.onEvict = onEvict;
  }

  get size(): number {
    return this.count;
  }

  /** The entry for `kind` and `name`, now the most recently used. */
  get(kind: number, name: string): T | undefined {
    const entry = this.kinds.get(kind)?.get(name);
    if (entry !== undefined && entry !== this.newest) {
      this.unlink(entry);
      this.pushNewest(entry);
    }
    return entry;
  }

  /** The entry for `kind` and `name`, its recency unchanged. */
  peek(kind: number, name: string): T | undefined {
    return this.kinds.get(kind)?.get(name);
  }

  /** Stores `entry` under its kind and name as the most recently used; past the capacity the least recently used one goes. */
  set(entry: T): void {
    let names = this.kinds.get(entry.kind);
    if (names === undefined) this.kinds.set(entry.kind, (names = new Map()));
    const previous = names.get(entry.name);
    if (previous !== undefined) this.unlink(previous);
    else this.count++;
    names.set(entry.name, entry);
    this.pushNewest(entry);
    if (this.count > this.capacity) {
      const evicted = this.oldest!;
      this.delete(evicted.kind, evicted.name);
      this.onEvict(evicted);
    }
  }

  delete(kind: number, name: string): boolean {
    const names = this.kinds.get(kind);
    const entry = names?.get(name);
    if (entry === undefined) return false;
    this.unlink(entry);
    names!.delete(name);
    this.count--;
    return true;
  }

  clear(): void {
    this.kinds.clear();
    this.count = 0;
    this.newest = null;
    this.oldest = null;
  }

  private pushNewest(entry: T): void {
    entry.newer = null;
    entry.older = this.newest;
    if (this.newest !== null) this.newest.newer = entry;
    this.newest = entry;
    if (this.oldest === null) this.oldest = entry;
  }

  private unlink(entry: T): void {
    if (entry.newer !== null) entry.newer.older = entry.older;
    else if (this.newest === entry) this.newest = entry.older;
    if (entry.older !== null) entry.older.newer = entry.newer;
    else if (this.oldest === entry) this.oldest = entry.newer;
    entry.newer = null;
    entry.older = null;
  }
}
