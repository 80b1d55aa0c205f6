// Keeps V8's heap near what the server actually holds. Under sustained load
// V8 trades memory for speed: it doubles the young generation each time
// enough objects survive a scavenge (up to 128 MiB committed on a large
// machine) and lets the old generation grow to several times its live size
// before a full collection. Together that was most of the RSS growth under
// overload (561 MiB in issue 14, live data ~40 MiB), far past the 170 MiB the
// kubeadm Deployment allows.
//
// The hard maximums (--max-semi-space-size, --max-old-space-size) can only be
// set on the command line, and a hard old-space maximum would crash the
// process instead of slowing it. But V8 reads two growth factors each time it
// uses them: a semi-space growth factor of 1 (V8's default is 2) keeps the
// young generation at the cap once there, and a heap growing percent bounds
// the old generation to 1.5× what survived the last full collection.

import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * Young generation (both semi-spaces) at which its growth stops. Collections
 * are reported a little after they happen, so the space may double once more
 * before growth stops: it ends at 8 or 16 MiB.
 */
const YOUNG_GENERATION_CAP = 8 * 2 ** 20;
/** The old generation's next full collection comes once it is this much larger than after the last. */
const OLD_GENERATION_GROWING_PERCENT = 20;

let applied = false;

export function limitHeapGrowth(): void {
  if (applied) return;
  applied = true;
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`);
  let frozen = false;
  // Checked after collections, not per query: the young generation changes size only then. V8
  // shrinks it again when allocation slows, so growth is allowed again below the cap.
  const observer = new PerformanceObserver(() => {
    const size = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
    const atCap = size >= YOUNG_GENERATION_CAP;
    if (atCap === frozen) return;
    frozen = atCap;
    setFlagsFromString(`--semi-space-growth-factor=${atCap ? 1 : 2}`);
  });
  observer.observe({ entryTypes: ['gc'] });
}
