// The cache's least-recently-used store (CACHE-3: capacity, LRU eviction, counted evictions).

import { describe, expect, it } from 'vitest';
import { EntryLru, type LruEntry } from '../plugins/cache/lru.ts';

interface Item extends LruEntry<Item> {
  value: number;
}

const item = (name: string, value = 0, kind = 1): Item => ({ kind, name, value, newer: null, older: null });

function store(capacity: number) {
  const evicted: string[] = [];
  const lru = new EntryLru<Item>(capacity, (entry) => evicted.push(entry.name));
  return { lru, evicted };
}

describe('EntryLru (CACHE-3)', () => {
  it('evicts the least recently used entry past the capacity, and says which', () => {
    const { lru, evicted } = store(3);
    for (const key of ['a', 'b', 'c']) lru.set(item(key));
    lru.get(1, 'a'); // b is now the least recently used
    lru.set(item('d'));
    expect(evicted).toEqual(['b']);
    expect(lru.size).toBe(3);
    expect(lru.peek(1, 'b')).toBeUndefined();
    lru.set(item('e'));
    expect(evicted).toEqual(['b', 'c']);
    expect(['a', 'd', 'e'].map((key) => lru.peek(1, key)?.name)).toEqual(['a', 'd', 'e']);
  });

  it('peek leaves the order alone; set of a stored key replaces it without evicting', () => {
    const { lru, evicted } = store(2);
    lru.set(item('a', 1));
    lru.set(item('b'));
    expect(lru.peek(1, 'a')?.value).toBe(1);
    lru.set(item('c')); // a was only peeked: it goes
    expect(evicted).toEqual(['a']);
    lru.set(item('b', 2)); // replaces b, now the most recent
    expect(evicted).toEqual(['a']);
    expect(lru.get(1, 'b')?.value).toBe(2);
    lru.set(item('d'));
    expect(evicted).toEqual(['a', 'c']);
  });

  it('the same name under another kind (CACHE-4: type, class, DO, CD) is another entry', () => {
    const { lru, evicted } = store(2);
    lru.set(item('a', 1, 1));
    lru.set(item('a', 2, 7));
    expect([lru.get(1, 'a')?.value, lru.get(7, 'a')?.value, lru.get(3, 'a')]).toEqual([1, 2, undefined]);
    expect(lru.delete(1, 'a')).toBe(true);
    expect(lru.get(7, 'a')?.value).toBe(2);
    expect(lru.size).toBe(1);
    expect(evicted).toEqual([]);
  });

  it('delete and clear keep the list consistent', () => {
    const { lru, evicted } = store(3);
    for (const key of ['a', 'b', 'c']) lru.set(item(key));
    expect(lru.delete(1, 'b')).toBe(true);
    expect(lru.delete(1, 'b')).toBe(false);
    lru.set(item('d'));
    lru.set(item('e')); // over capacity: a, the oldest left, goes
    expect(evicted).toEqual(['a']);
    lru.delete(1, 'e'); // the newest
    lru.delete(1, 'c'); // now the oldest
    expect(lru.size).toBe(1);
    lru.set(item('f'));
    lru.set(item('g'));
    lru.set(item('h'));
    expect(evicted).toEqual(['a', 'd']);
    lru.clear();
    expect(lru.size).toBe(0);
    lru.set(item('x'));
    expect(lru.get(1, 'x')?.name).toBe('x');
  });
});
