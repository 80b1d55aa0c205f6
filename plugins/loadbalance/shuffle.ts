// Record orders for loadbalance: round_robin (LB-3), weighted (LB-4) and
// prefer (LB-5). Each function returns the order of a section's records as
// indexes into it (null when nothing moves), so the encoder can copy the
// records' encoded bytes in that order; the records are never changed.

import { isIP } from 'node:net';
import { Type } from '../../src/wire/constants.ts';
import { addressBytes, type ResourceRecord } from '../../src/wire/message.ts';
import { canonicalName } from '../../src/wire/names.ts';

type Records = readonly ResourceRecord[];

/** Fisher–Yates over items[from..to), uniform over all orders. */
function shuffleRange(items: number[], from: number, to: number, random: () => number): void {
  for (let i = to - 1; i > from; i--) {
    const j = from + Math.floor(random() * (i - from + 1));
    const item = items[i]!;
    items[i] = items[j]!;
    items[j] = item;
  }
}

function isAddress(record: ResourceRecord): boolean {
  return record.type === Type.A || record.type === Type.AAAA;
}

/** The group a record goes to: CNAME, any other type, address, MX. */
function groupOf(record: ResourceRecord): 0 | 1 | 2 | 3 {
  return record.type === Type.CNAME ? 0 : isAddress(record) ? 2 : record.type === Type.MX ? 3 : 1;
}

/**
 * Whether round_robin could change this section: it has two or more
 * address or MX records, or its records are not already in the
 * CNAME / other / address / MX order.
 */
function roundRobinMatters(records: Records): boolean {
  if (records.length < 2) return false;
  let addresses = 0;
  let mx = 0;
  // Rank of the group each record goes to; a record after a higher rank must move.
  let rank = 0;
  for (const record of records) {
    const group = groupOf(record);
    if (group === 2) addresses++;
    else if (group === 3) mx++;
    if (group < rank) return true;
    rank = group;
  }
  return addresses > 1 || mx > 1;
}

/** Indexes of the records by group (CNAME, other, address, MX), each group in its order; where each group starts. */
function grouped(records: Records): { order: number[]; starts: [number, number, number, number] } {
  const order: number[] = [];
  const starts: [number, number, number, number] = [0, 0, 0, 0];
  for (let group = 0; group < 4; group++) {
    starts[group] = order.length;
    for (let i = 0; i < records.length; i++) if (groupOf(records[i]!) === group) order.push(i);
  }
  return { order, starts };
}

/**
 * LB-3: CNAMEs in their order, then every other type in its order, then the
 * A and AAAA records shuffled together, then the MX records shuffled. A
 * section of only A (or only AAAA) records is therefore simply shuffled.
 */
export function roundRobinOrder(records: Records, random: () => number): number[] | null {
  if (!roundRobinMatters(records)) return null;
  const { order, starts } = grouped(records);
  shuffleRange(order, starts[2], starts[3], random);
  shuffleRange(order, starts[3], order.length, random);
  return order;
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

/**
 * LB-4: CNAMEs, other types, the address records with one of them (picked
 * by weight, 1 when unlisted) moved to the top, then MX records. Null for a
 * section without address records.
 */
export function weightedOrder(records: Records, weights: WeightTable, random: () => number): number[] | null {
  const { order, starts } = grouped(records);
  const [first, end] = [starts[2], starts[3]];
  if (first === end) return null;
  let total = 0;
  const values: number[] = [];
  for (let i = first; i < end; i++) {
    const record = records[order[i]!]!;
    const bytes = recordAddress(record);
    const weight = (bytes && weights.get(canonicalName(record.name))?.get(Buffer.from(bytes).toString('hex'))) ?? 1;
    values.push(weight);
    total += weight;
  }
  let point = random() * total;
  let top = 0;
  while (top < values.length - 1 && (point -= values[top]!) >= 0) top++;
  const leader = order[first + top]!;
  order[first + top] = order[first]!;
  order[first] = leader;
  return order;
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
 * everything else. Order within each group is kept. Null for a section
 * without address records.
 */
export function preferOrder(records: Records, subnets: readonly Subnet[]): number[] | null {
  const { order, starts } = grouped(records);
  if (starts[2] === starts[3]) return null;
  const addresses = order.slice(starts[2], starts[3]);
  const bytes = addresses.map((index) => recordAddress(records[index]!));
  const taken = new Array<boolean>(addresses.length).fill(false);
  const matched: number[] = [];
  for (const subnet of subnets) {
    for (let i = 0; i < addresses.length; i++) {
      const ip = bytes[i];
      if (!taken[i] && ip !== null && inSubnet(ip!, subnet)) {
        taken[i] = true;
        matched.push(addresses[i]!);
      }
    }
  }
  const unmatched = addresses.filter((_, i) => !taken[i]);
  const cname = order.slice(0, starts[1]);
  const rest = order.slice(starts[1], starts[2]);
  const mx = order.slice(starts[3]);
  return [...cname, ...matched, ...unmatched, ...mx, ...rest];
}
