// Addresses as the kubernetes plugin compares them, and reverse (PTR) names.
//
// Every IP the index keeps is in one canonical text form, the one Go's
// net.IP.String() prints (RFC 5952 for IPv6, dotted quad for IPv4 and for
// IPv4-mapped IPv6, KP-33), so that a PTR query's address, a cluster IP and an
// endpoint address compare as plain strings.

import { isIPv4, isIPv6 } from 'node:net';
import * as ipCodec from '@leichtgewicht/ip-codec';

const IP4_ARPA = '.in-addr.arpa.';
const IP6_ARPA = '.ip6.arpa.';

/** The canonical text of an IP address, or null when `text` is not one. */
export function canonicalIP(text: string): string | null {
  if (!text.includes(':')) return isIPv4(text) ? text : null;
  // Node accepts zone indexes (fe80::1%eth0); Go's ParseIP does not.
  if (text.includes('%') || !isIPv6(text)) return null;
  return formatIPv6(ipCodec.v6.encode(text));
}

/** 4 for IPv4 text, 6 for IPv6 text (canonical addresses: a colon means IPv6). */
export function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

/** Go's IP.String() for 16 bytes: IPv4-mapped as a dotted quad, else RFC 5952. */
export function formatIPv6(bytes: Uint8Array): string {
  let mapped = bytes[10] === 0xff && bytes[11] === 0xff;
  for (let i = 0; mapped && i < 10; i++) if (bytes[i] !== 0) mapped = false;
  if (mapped) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // The longest run of zero groups (the first on a tie), if at least two long.
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) return groups.map((group) => group.toString(16)).join(':');
  const head = groups.slice(0, bestStart).map((group) => group.toString(16)).join(':');
  const tail = groups.slice(bestStart + bestLength).map((group) => group.toString(16)).join(':');
  return `${head}::${tail}`;
}

/** True for 127.0.0.0/8 and ::1. */
export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** True for 0.0.0.0 and ::. */
export function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

/**
 * The address a full reverse name stands for, canonical, or null (KP-37):
 * exactly four decimal octets under in-addr.arpa., or exactly 32 hex nibbles
 * under ip6.arpa. Anything else (a partial name, other labels) is not an
 * address. `name` is lowercased and fully qualified.
 */
export function addressFromReverse(name: string): string | null {
  if (name.endsWith(IP4_ARPA)) {
    const labels = name.slice(0, -IP4_ARPA.length).split('.');
    if (labels.length !== 4) return null;
    const ip = `${labels[3]}.${labels[2]}.${labels[1]}.${labels[0]}`;
    return isIPv4(ip) ? ip : null;
  }
  if (name.endsWith(IP6_ARPA)) {
    const nibbles = name.slice(0, -IP6_ARPA.length);
    // 32 single hex digits, each followed by a dot except the last: 63 characters.
    if (nibbles.length !== 63) return null;
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 32; i++) {
      const at = 62 - i * 2;
      const digit = parseInt(nibbles[at]!, 16);
      if (Number.isNaN(digit) || (at > 0 && nibbles[at - 1] !== '.')) return null;
      bytes[i >> 1]! |= i & 1 ? digit : digit << 4;
    }
    return formatIPv6(bytes);
  }
  return null;
}

/**
 * CoreDNS's dnsutil.IsReverse: true for names strictly below in-addr.arpa.
 * or ip6.arpa. (the two apexes themselves are not).
 */
export function isReverseName(name: string): boolean {
  return name.endsWith(IP4_ARPA) || name.endsWith(IP6_ARPA);
}

/** A reverse zone: in-addr.arpa., ip6.arpa. or a zone below them (KP-1). */
export function isReverseZone(zone: string): boolean {
  return zone === 'in-addr.arpa.' || zone === 'ip6.arpa.' || isReverseName(zone);
}

/** The reverse name of an address (for tests and logs): 10.0.0.1 → 1.0.0.10.in-addr.arpa. */
export function reverseName(ip: string): string {
  if (familyOf(ip) === 4) return `${ip.split('.').reverse().join('.')}${IP4_ARPA}`;
  const bytes = ipCodec.v6.encode(ip);
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) nibbles.push((bytes[i]! & 0xf).toString(16), (bytes[i]! >> 4).toString(16));
  return `${nibbles.join('.')}${IP6_ARPA}`;
}
