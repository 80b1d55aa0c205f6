// Record reordering for loadbalance: round_robin (LB-3), weighted (LB-4) and
// prefer (LB-5). Every function returns new arrays; the records themselves
// are shared and never changed.

import { isIP } from 'node:net';
import { Type } from '../../src/wire/constants.ts';
import { addressBytes, type ResourceRecord } from '../../src/wire/message.ts';
import { canonicalName } from '../../src/wire/names.ts';

type Records = readonly ResourceRecord[];

/** Fisher–Yates, uniform over all orders. */
export function shuffleInPlace<T>(items: T[], random: () => number = Math.random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const item = items[i]!;
    items[i] = items[j]!;
    items[j] = item;
  }
  return items;
}

function isAddress(record: ResourceRecord): boolean {
  return record.type === Type.A || record.type === Type.AAAA;
}

/**
 * Whether round_robin could change this section: it has two or more
 * address or MX records, or its records are not already in the
 * CNAME / other / address / MX order.
 */
export function roundRobinMatters(records: Records): boolean {
  if (records.length < 2) return false;
  let addresses = 0;
  let mx = 0;
  // Rank of the group each record goes to; a record after a higher rank must move.
  let rank = 0;
  for (const record of records) {
    const group = record.type === Type.CNAME ? 0 : isAddress(record) ? 2 : record.type === Type.MX ? 3 : 1;
    if (group === 2) addresses++;
    else if (group === 3) mx++;
    if (group < rank) return true;
    rank = group;
  }
  return addresses > 1 || mx > 1;
}

/**
 * Index into `weights` for slot `slot` of `slots`: the slots split the
 * cumulative weight into equal strata and each draws inside its own, so a
 * pool of variants holds each choice in proportion to its weight (the
 * marginal over a uniformly chosen slot is exactly the weight distribution).
 */
export function pickStratified(weights: readonly number[], slot: number, slots: number, random: () => number): number {
  let total = 0;
  for (const weight of weights) total += weight;
  let point = ((slot + random()) / slots) * total;
  for (let i = 0; i < weights.length - 1; i++) {
    point -= weights[i]!;
    if (point < 0) return i;
  }
  return weights.length - 1;
}

/** Moves items[lead] to the front and shuffles the rest: uniform given the first item. */
function shuffleWithLead<T>(items: T[], lead: number, random: () => number): T[] {
  const first = items[lead]!;
  items[lead] = items[0]!;
  items[0] = first;
  const rest = shuffleInPlace(items.slice(1), random);
  for (let i = 0; i < rest.length; i++) items[i + 1] = rest[i]!;
  return items;
}

/** Where round robin spreads the load: one slot of a pool of variants (see pickStratified). */
export interface Stratum {
  slot: number;
  slots: number;
}

/**
 * LB-3: CNAMEs in their order, then every other type in its order, then the
 * A and AAAA records shuffled together, then the MX records shuffled. A
 * section of only A (or only AAAA) records is therefore simply shuffled.
 * With a stratum, the first of the shuffled groups with two or more records
 * gets its leading record from that stratum; the order is still uniform
 * over a uniformly chosen slot.
 */
export function roundRobin(records: Records, random: () => number = Math.random, stratum?: Stratum): Records {
  if (!roundRobinMatters(records)) return records;
  const cname: ResourceRecord[] = [];
  const rest: ResourceRecord[] = [];
  const address: ResourceRecord[] = [];
  const mx: ResourceRecord[] = [];
  for (const record of records) {
    if (record.type === Type.CNAME) cname.push(record);
    else if (isAddress(record)) address.push(record);
    else if (record.type === Type.MX) mx.push(record);
    else rest.push(record);
  }
  const led = stratum === undefined ? null : address.length > 1 ? address : mx.length > 1 ? mx : null;
  for (const group of [address, mx]) {
    if (group === led) shuffleWithLead(group, pickStratified(group.map(() => 1), stratum!.slot, stratum!.slots, random), random);
    else shuffleInPlace(group, random);
  }
  return [...cname, ...rest, ...address, ...mx];
}

/** Weights by canonical domain name, then by address key (hex of the address bytes). */
export type WeightTable = Map<string, Map<string, number>>;

/** The address bytes of an A/AAAA record; null when its data is not an address. */
function recordAddress(record: ResourceRecord): Uint8Array | null {
  if (Buffer.isBuffer(record.data)) return record.data;
  return typeof record.data === 'string' && isIP(record.data) !== 0 ? addressBytes(record.data) : null;
}

function addressKey(text: string): string {
  return Buffer.from(addressBytes(text)).toString('hex');
}

/**
 * LB-4's weight file: a domain line, then `ADDRESS WEIGHT` lines (weights
 * 1–255) for it; blank lines and lines starting with '#' are skipped.
 * Throws with the line number on anything else.
 */
export function parseWeights(text: string, file: string): WeightTable {
  const table: WeightTable = new Map();
  let current: Map<string, number> | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const where = `${file}:${i + 1}`;
    if (fields.length === 1) {
      if (isIP(fields[0]!) !== 0) throw new Error(`${where}: wrong domain name '${fields[0]}' (maybe a missing weight value?)`);
      const domain = canonicalName(fields[0]!);
      current = table.get(domain) ?? new Map();
      table.set(domain, current);
    } else if (fields.length === 2) {
      const [address, weight] = fields as [string, string];
      if (isIP(address) === 0) throw new Error(`${where}: wrong IP address '${address}'`);
      if (!/^\d+$/.test(weight) || Number(weight) < 1 || Number(weight) > 255) throw new Error(`${where}: wrong weight value '${weight}', expecting 1 to 255`);
      if (current === null) throw new Error(`${where}: missing domain name before '${line}'`);
      current.set(addressKey(address), Number(weight));
    } else {
      throw new Error(`${where}: could not parse weight line '${line}'`);
    }
  }
  return table;
}

interface Groups {
  cname: ResourceRecord[];
  rest: ResourceRecord[];
  address: ResourceRecord[];
  mx: ResourceRecord[];
}

/** The section's records by kind, order kept; null when it has no address records (nothing to reorder). */
function groupRecords(records: Records): Groups | null {
  const groups: Groups = { cname: [], rest: [], address: [], mx: [] };
  for (const record of records) {
    if (record.type === Type.CNAME) groups.cname.push(record);
    else if (isAddress(record)) groups.address.push(record);
    else if (record.type === Type.MX) groups.mx.push(record);
    else groups.rest.push(record);
  }
  return groups.address.length === 0 ? null : groups;
}

/**
 * LB-4: CNAMEs, other types, the address records with one of them (picked
 * by weight, 1 when unlisted) moved to the top, then MX records. A section
 * without address records is returned as it is.
 */
export function weighted(records: Records, weights: WeightTable, random: () => number = Math.random, stratum: Stratum = { slot: 0, slots: 1 }): Records {
  const groups = groupRecords(records);
  if (groups === null) return records;
  const { cname, rest, address, mx } = groups;
  const values = address.map((record) => {
    const bytes = recordAddress(record);
    return (bytes && weights.get(canonicalName(record.name))?.get(Buffer.from(bytes).toString('hex'))) ?? 1;
  });
  const top = pickStratified(values, stratum.slot, stratum.slots, random);
  if (top !== 0) {
    const first = address[0]!;
    address[0] = address[top]!;
    address[top] = first;
  }
  return [...cname, ...rest, ...address, ...mx];
}

/** An IPv4 or IPv6 prefix. */
export interface Subnet {
  bytes: Uint8Array;
  bits: number;
}

/** `10.0.0.0/8`, `fd00::/8`; null when it is not a CIDR. */
export function parseCidr(text: string): Subnet | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const address = text.slice(0, slash);
  const bitsText = text.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || !/^\d+$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  if (bits > (family === 4 ? 32 : 128)) return null;
  return { bytes: addressBytes(address), bits };
}

export function inSubnet(address: Uint8Array, subnet: Subnet): boolean {
  if (address.length !== subnet.bytes.length) return false;
  let bits = subnet.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i]! & mask) !== (subnet.bytes[i]! & mask)) return false;
  }
  return true;
}

/**
 * LB-5: CNAMEs, then the address records inside the preferred subnets (in
 * the order of the subnets), then the other address records, then MX, then
 * everything else. Order within each group is kept.
 */
export function preferSubnets(records: Records, subnets: readonly Subnet[]): Records {
  const groups = groupRecords(records);
  if (groups === null) return records;
  const { cname, rest, address, mx } = groups;
  const bytes = address.map(recordAddress);
  const taken = new Array<boolean>(address.length).fill(false);
  const matched: ResourceRecord[] = [];
  for (const subnet of subnets) {
    for (let i = 0; i < address.length; i++) {
      const ip = bytes[i];
      if (!taken[i] && ip !== null && inSubnet(ip!, subnet)) {
        taken[i] = true;
        matched.push(address[i]!);
      }
    }
  }
  const unmatched = address.filter((_, i) => !taken[i]);
  return [...cname, ...matched, ...unmatched, ...mx, ...rest];
}
