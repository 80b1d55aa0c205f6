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
// uses them: a semi-space growth factor of 1 (V8's default is 2), set before
// the young generation first grows, keeps it at its initial size (2 MiB), and
// a heap growing percent bounds the old generation to 1.2x what survived the
// last full collection. An earlier version let the young generation double
// up to 8 MiB and then froze it from a GC observer; the observer ran too late
// under load and the young generation reached 32 MiB (bench/resilience/overload.ts
// --trace). A DNS server's garbage dies young: the small young generation cost
// no throughput in bench:load (README, Performance).

import { setFlagsFromString } from 'node:v8';

/** The old generation's next full collection comes once it is this much larger than after the last. */
const OLD_GENERATION_GROWING_PERCENT = 20;

let applied = false;

export function limitHeapGrowth(): void {
  if (applied) return;
  applied = true;
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`);
  setFlagsFromString('--semi-space-growth-factor=1');
}
