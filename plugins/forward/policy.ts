// The order upstreams are tried in, per query (FWD-5.1).

import type { PolicyName } from './setup.ts';

export type Policy = <T>(items: readonly T[]) => readonly T[];

/** A random permutation; with two upstreams a coin flip decides whether they swap. */
export const random: Policy = (items) => {
  if (items.length <= 1) return items;
  if (items.length === 2) return Math.random() < 0.5 ? [items[1]!, items[0]!] : items;
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};

/**
 * CoreDNS's round_robin: a counter picks the upstream that goes first; the
 * others follow in configured order.
 */
export function roundRobin(): Policy {
  let robin = 0;
  return (items) => {
    if (items.length <= 1) return items;
    robin = (robin + 1) >>> 0;
    const first = robin % items.length;
    return [items[first]!, ...items.slice(0, first), ...items.slice(first + 1)];
  };
}

export const sequential: Policy = (items) => items;

export function policyFor(name: PolicyName): Policy {
  switch (name) {
    case 'random':
      return random;
    case 'round_robin':
      return roundRobin();
    case 'sequential':
      return sequential;
  }
}
