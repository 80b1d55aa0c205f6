// hosts(5) text to lookup tables, and the replies served from them.
//
// Follows CoreDNS's plugin/hosts parse: `#` starts a comment, a line needs an
// address and at least one name, a bad address skips the line, an IPv6
// zone (`%eth0`) is dropped, an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// counts as IPv4, names are lowercased and fully qualified, and names
// outside the plugin's zones are ignored. Replies are built on first use and
// kept until the data is replaced, so repeated answers reuse their encoding.

import net from 'node:net';
import * as ipCodec from '@leichtgewicht/ip-codec';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import { ReplyFlag, type Reply, type ResourceRecord } from '../../src/wire/message.ts';
import { canonicalName, isSubdomain, nameToLabels } from '../../src/wire/names.ts';

/** One parsed hosts text (the file, or the inline entries). */
export interface HostsMap {
  /** Canonical name → IPv4 addresses (dotted), in file order. */
  name4: Map<string, string[]>;
  /** Canonical name → IPv6 addresses (text), in file order. */
  name6: Map<string, string[]>;
  /** Address key (hex of its bytes, 4 for IPv4) → names, for PTR. Empty with no_reverse. */
  byAddress: Map<string, string[]>;
}

export function emptyHostsMap(): HostsMap {
  return { name4: new Map(), name6: new Map(), byAddress: new Map() };
}

/** CoreDNS's Map.Len: every address of every name plus every reverse name (coredns_hosts_entries). */
export function hostsMapLength(map: HostsMap): number {
  let length = 0;
  for (const list of map.name4.values()) length += list.length;
  for (const list of map.name6.values()) length += list.length;
  for (const list of map.byAddress.values()) length += list.length;
  return length;
}

export interface ParsedAddress {
  family: 4 | 6;
  /** Presentation form for the A/AAAA record. */
  text: string;
  /** Hex of the address bytes: the byAddress key. */
  key: string;
}

/** An address as CoreDNS's parseIP + To4 read it; null when it is not one. */
export function parseAddress(text: string): ParsedAddress | null {
  const percent = text.indexOf('%');
  const bare = percent >= 0 ? text.slice(0, percent) : text;
  const family = net.isIP(bare);
  if (family === 0) return null;
  let bytes = Buffer.from(ipCodec.encode(bare));
  if (family === 6 && isV4Mapped(bytes)) bytes = bytes.subarray(12);
  if (bytes.length === 4) return { family: 4, text: ipCodec.v4.decode(bytes), key: bytes.toString('hex') };
  return { family: 6, text: ipCodec.v6.decode(bytes), key: bytes.toString('hex') };
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** A name the encoder can write: labels of 1..63 bytes, at most 255 in all. */
function encodable(name: string): boolean {
  const labels = nameToLabels(name);
  let length = 1;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) return false;
    length += label.length + 1;
  }
  return length <= 255;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Parses hosts text; names outside `origins` are skipped; `reverse` fills byAddress. */
export function parseHosts(text: string, origins: readonly string[], reverse: boolean): HostsMap {
  const map = emptyHostsMap();
  for (const raw of text.split('\n')) {
    const hash = raw.indexOf('#');
    const line = hash >= 0 ? raw.slice(0, hash) : raw;
    const fields = line.split(/\s+/).filter((field) => field !== '');
    if (fields.length < 2) continue;
    const address = parseAddress(fields[0]!);
    if (address === null) continue;
    for (const field of fields.slice(1)) {
      const name = canonicalName(field);
      if (!encodable(name) || !origins.some((zone) => isSubdomain(name, zone))) continue;
      push(address.family === 4 ? map.name4 : map.name6, name, address.text);
      if (reverse) push(map.byAddress, address.key, name);
    }
  }
  return map;
}

/**
 * The address a reverse name stands for, as a byAddress key: four decimal
 * labels under in-addr.arpa, or 32 nibbles under ip6.arpa. null otherwise.
 */
export function reverseToKey(qname: string): string | null {
  if (qname.endsWith('.in-addr.arpa.')) {
    const labels = qname.slice(0, -'.in-addr.arpa.'.length).split('.');
    if (labels.length !== 4) return null;
    const bytes = Buffer.alloc(4);
    for (let i = 0; i < 4; i++) {
      const label = labels[3 - i]!;
      if (!/^(0|[1-9]\d{0,2})$/.test(label) || Number(label) > 255) return null;
      bytes[i] = Number(label);
    }
    return bytes.toString('hex');
  }
  if (qname.endsWith('.ip6.arpa.')) {
    const labels = qname.slice(0, -'.ip6.arpa.'.length).split('.');
    if (labels.length !== 32 || !labels.every((label) => /^[0-9a-f]$/.test(label))) return null;
    const bytes = Buffer.from(labels.reverse().join(''), 'hex');
    return (isV4Mapped(bytes) ? bytes.subarray(12) : bytes).toString('hex');
  }
  return null;
}

/** What a name has: its A and AAAA replies (null when it has none of that family). */
export interface NameAnswers {
  a: Reply | null;
  aaaa: Reply | null;
}

const noRecords: readonly ResourceRecord[] = Object.freeze([]);

/** NODATA: the name exists with the other family only (AA, NOERROR, no SOA as CoreDNS answers). */
export const noData: Reply = Object.freeze({ rcode: Rcode.NOERROR, flags: ReplyFlag.AA, answer: noRecords, authority: noRecords, additional: noRecords });

function answerReply(name: string, type: number, ttl: number, data: readonly string[]): Reply {
  return {
    rcode: Rcode.NOERROR,
    flags: ReplyFlag.AA,
    answer: data.map((value) => ({ name, type, class: Class.IN, ttl, data: value })),
    authority: noRecords,
    additional: noRecords,
  };
}

function concat(first: readonly string[] | undefined, second: readonly string[] | undefined): readonly string[] {
  if (!first) return second ?? [];
  if (!second) return first;
  return [...first, ...second];
}

/**
 * The file's and the inline entries' data together, as CoreDNS looks them
 * up: a name's addresses are the file's followed by the inline ones (both
 * are served; neither hides the other).
 */
export class HostsTable {
  private readonly file: HostsMap;
  private readonly inline: HostsMap;
  private readonly ttl: number;
  private readonly names = new Map<string, NameAnswers | null>();
  private readonly pointers = new Map<string, Reply | null>();

  constructor(file: HostsMap, inline: HostsMap, ttl: number) {
    this.file = file;
    this.inline = inline;
    this.ttl = ttl;
  }

  get length(): number {
    return hostsMapLength(this.file) + hostsMapLength(this.inline);
  }

  /** The name's answers, or null when it is not in the data at all. */
  lookup(qname: string): NameAnswers | null {
    const memo = this.names.get(qname);
    if (memo !== undefined) return memo;
    const v4 = concat(this.file.name4.get(qname), this.inline.name4.get(qname));
    const v6 = concat(this.file.name6.get(qname), this.inline.name6.get(qname));
    const answers = v4.length === 0 && v6.length === 0 ? null : {
      a: v4.length > 0 ? answerReply(qname, Type.A, this.ttl, v4) : null,
      aaaa: v6.length > 0 ? answerReply(qname, Type.AAAA, this.ttl, v6) : null,
    };
    // Only names in the data are remembered, so the memo stays as small as the data.
    if (answers !== null) this.names.set(qname, answers);
    return answers;
  }

  /** The PTR reply for a reverse name, or null when the address is not in the data. */
  pointer(qname: string): Reply | null {
    const memo = this.pointers.get(qname);
    if (memo !== undefined) return memo;
    const key = reverseToKey(qname);
    if (key === null) return null;
    const names = concat(this.file.byAddress.get(key), this.inline.byAddress.get(key));
    if (names.length === 0) return null;
    const reply = answerReply(qname, Type.PTR, this.ttl, names);
    this.pointers.set(qname, reply);
    return reply;
  }
}
