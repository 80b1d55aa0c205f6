// Giving memory back after a large list (the re-list target, STOCK-8).
//
// Listing 50,000 Services and their EndpointSlices allocates a few hundred MB
// in a few seconds (response bodies, parsed pages, records): V8 keeps large
// garbage (response strings, the old tables of growing Maps) until a major GC
// (the young generation no longer grows: src/heap-limits.ts holds it at
// 2 MiB). Once the list is in the index that memory is no longer needed, but V8 only shrinks the heap when its memory reducer decides the
// process is idle, which can be long after /ready; until then RSS is about
// 1.6x what the index needs (230 vs 140 MiB at 50k Services), and a re-list
// raises it by a third again. So the API source runs one full,
// memory-reducing GC (what V8 does on a low-memory notification) after the
// first sync and after large lists, and during a list whenever RSS has grown
// 10% since the last one (api-source.ts, pageDone): a pause of 20–60 ms at
// 50k Services each, in exchange for the garbage being returned at once.
//
// The GC function is reached as Node's --expose-gc exposes it, but only in a
// separate vm context: the process's own global object gets no `gc`.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collect: Collect | null | undefined;

/** One full, memory-reducing GC; false when this V8 does not allow it. */
export function compactHeap(): boolean {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const fn: unknown = runInNewContext('typeof gc === "function" ? gc : null');
      collect = typeof fn === 'function' ? (fn as Collect) : null;
    } catch {
      collect = null;
    }
  }
  if (!collect) return false;
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return true;
}
