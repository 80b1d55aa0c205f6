// Server-block keys (CF-11): `[scheme://]zone[:port]` to canonical zone
// addresses, and the duplicate check of CF-14.
//
// This follows CoreDNS's core/dnsserver/register.go and plugin/normalize.go
// (SplitHostPort) and plugin/pkg/cidr: the port is a trailing `:<digits>`, the
// zone must pass miekg/dns's IsDomainName, and a CIDR zone becomes the reverse
// zones that cover it. Where CoreDNS silently accepts a key that cannot be
// what the user meant (`example.org:abc`, `www.example.org{`, an unknown
// scheme), clusterdns rejects it with a message saying why.

import { CorefileError, type Token, type ZoneAddress } from './types.ts';

/** Schemes CoreDNS knows, and what they are, for the WIRE-26 rejection message. */
const ENCRYPTED_SCHEMES: Record<string, string> = {
  tls: 'DNS over TLS',
  https: 'DNS over HTTPS',
  https3: 'DNS over HTTP/3',
  quic: 'DNS over QUIC',
  grpc: 'DNS over gRPC',
  unix: 'DNS over a Unix socket',
};

/**
 * Normalises one server-block key into the zones it stands for, in order.
 * A plain zone gives one address; a CIDR gives one per reverse zone that
 * covers it. The empty key `""` gives none (CF-3). Throws CorefileError at
 * the key's position when the key is not usable.
 */
export function normalizeKey(key: Token, defaultPort: number): ZoneAddress[] {
  if (key.text === '') return [];
  const fail = (detail: string): CorefileError => new CorefileError(key, detail);

  // Scheme. CoreDNS compares it case-sensitively and treats anything it does
  // not know as part of the zone; here any `word://` prefix is a scheme.
  let rest = key.text;
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(rest);
  if (schemeMatch) {
    const scheme = schemeMatch[1]!.toLowerCase();
    if (scheme !== 'dns') {
      const what = ENCRYPTED_SCHEMES[scheme];
      if (what) {
        throw fail(`cannot serve ${key.text}: the ${scheme}:// scheme (${what}) is not supported; clusterdns serves plain DNS only, use dns:// or no scheme`);
      }
      throw fail(`unknown scheme '${schemeMatch[1]}://' in '${key.text}', expecting dns:// or no scheme`);
    }
    rest = rest.slice(schemeMatch[0].length);
  }
  if (rest.includes('://')) throw fail(`unexpected '://' in the zone of '${key.text}', expecting [dns://]zone[:port]`);

  // Words that the lexer glued to braces, e.g. `example.org:53{` or `.{}`,
  // and other characters that only a mistake puts in a key: CoreDNS would
  // serve them as odd zone names.
  if (/[{}]/.test(rest)) throw fail(`zone is not a valid domain name: ${rest} ('{' and '}' must be separated from the keys by spaces)`);
  if (/[()]/.test(rest)) throw fail(`zone is not a valid domain name: ${rest} (a snippet definition '(name)' needs a '{ }' block)`);
  if (/[",]/.test(rest)) throw fail(`zone is not a valid domain name: ${rest} (keys are separated by spaces or a trailing ',')`);

  // Port: a trailing `:<digits>`. Only an IPv6 CIDR may leave another colon
  // in the zone (its mask, `/64`, sits between the address and any port).
  let zone = rest;
  let port = defaultPort;
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) {
    const suffix = rest.slice(colon + 1);
    if (suffix === '') throw fail(`expecting data after last colon: "${rest}"`);
    if (/^\d+$/.test(suffix)) {
      port = Number(suffix);
      if (port > 65535) throw fail(`port ${suffix} in '${key.text}' is out of range, expecting 0 to 65535`);
      zone = rest.slice(0, colon);
    } else if (!looksLikeIPv6Cidr(rest)) {
      throw fail(`invalid port '${suffix}' in '${key.text}', expecting a number after the last ':'`);
    }
  }

  if (zone.length > 255) throw fail(`specified zone is too long: ${zone.length} > 255`);
  if (zone === '') {
    throw fail(`zone is not a valid domain name: '' (the key '${key.text}' has no zone; the root zone is written '.', as in '.:${port}')`);
  }
  if (!isDomainName(zone)) throw fail(`zone is not a valid domain name: ${zone}`);

  const cidr = parseCidr(zone);
  if (cidr === 'invalid') throw fail(`invalid CIDR ${zone}`);
  if (cidr === null) {
    return [{ scheme: 'dns', zone: fqdn(zone.toLowerCase()), port, key }];
  }
  return reverseZones(cidr).map((reverse) => ({ scheme: 'dns', zone: reverse, port, key }));
}

/**
 * RFC 1035 preferred name syntax, which CoreDNS checks at startup to print
 * `Warning: Domain "<zone>" does not follow RFC1035 preferred syntax`.
 * The root zone and reverse zones are exempt, as there.
 */
export function followsPreferredSyntax(zone: string): boolean {
  if (zone === '.' || /(^|\.)(in-addr|ip6)\.arpa\.$/i.test(zone)) return true;
  return /^(?:[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+$/.test(zone);
}

function fqdn(name: string): string {
  return name.endsWith('.') && !name.endsWith('\\.') ? name : `${name}.`;
}

/**
 * miekg/dns IsDomainName: labels separated by unescaped dots, none empty
 * (except the root name "."), each at most 63 octets, the whole name at most
 * 255 octets in wire form. Escapes `\X` and `\DDD` count as one octet. It
 * allows any other character, which is why `10.0.0.0/24` passes.
 */
function isDomainName(name: string): boolean {
  if (name === '.') return true;
  const labels: number[] = [];
  let length = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === '\\') {
      i += /^\d{3}$/.test(name.slice(i + 1, i + 4)) ? 3 : 1;
      if (i >= name.length) return false;
      length++;
    } else if (c === '.') {
      if (length === 0) return false;
      labels.push(length);
      length = 0;
    } else {
      // Characters outside ASCII take several octets on the wire.
      length += Buffer.byteLength(c);
    }
  }
  if (length > 0) labels.push(length);
  if (labels.some((label) => label > 63)) return false;
  return labels.reduce((total, label) => total + label + 1, 1) <= 255;
}

interface Cidr {
  /** 4 bytes for IPv4, 16 for IPv6, host bits already cleared. */
  bytes: number[];
  prefix: number;
}

function looksLikeIPv6Cidr(text: string): boolean {
  return /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\/\d+$/.test(text);
}

/**
 * A zone that is `address/prefix` (Go's net.ParseCIDR) is a reverse zone.
 * Returns null when the zone is an ordinary name, and 'invalid' for the forms
 * CoreDNS rejects as "invalid CIDR" (an IPv6 form starting with ':' or '0',
 * which Go would read differently) or that only look like a CIDR but do not
 * parse (`10.0.0.0/33`: CoreDNS would quietly serve a zone of that name).
 */
function parseCidr(zone: string): Cidr | 'invalid' | null {
  // Dotted digits or something with a colon, then /digits. RFC 2317 names
  // such as 0/25.2.0.192.in-addr.arpa do not end in /digits, so stay names.
  const match = /^(\d+(?:\.\d+)*|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*)\/(\d+)$/.exec(zone);
  if (!match) return null;
  const [, address, prefixText] = match as unknown as [string, string, string];
  if (address.includes(':') && (address.startsWith(':') || address.startsWith('0'))) return 'invalid';
  const bytes = address.includes(':') ? parseIPv6(address) : parseIPv4(address);
  if (!bytes) return 'invalid';
  const prefix = Number(prefixText);
  if (prefixText.length > 3 || prefix > bytes.length * 8) return 'invalid';
  return { bytes: maskBytes(bytes, prefix), prefix };
}

function parseIPv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const part of parts) {
    // Go refuses leading zeros (they used to mean octal).
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null;
    bytes.push(Number(part));
  }
  return bytes;
}

function parseIPv6(text: string): number[] | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        // An embedded IPv4 address as the last 32 bits.
        const v4 = parseIPv4(piece);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(piece)) return null;
        out.push(parseInt(piece, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  let all: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    if (head.length !== 8) return null;
    all = head;
  }
  return all.flatMap((group) => [group >> 8, group & 0xff]);
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((byte, index) => {
    const keep = Math.max(0, Math.min(8, prefix - index * 8));
    return byte & ((0xff << (8 - keep)) & 0xff);
  });
}

/**
 * The reverse zones covering a network. Reverse names have one label per
 * octet (IPv4) or per nibble (IPv6), so a prefix between two boundaries is
 * split into the subnets at the next longer boundary: /17 gives 128 /24
 * zones, /27 gives 32 single-address zones. Ascending address order.
 */
function reverseZones({ bytes, prefix }: Cidr): string[] {
  const v4 = bytes.length === 4;
  const step = v4 ? 8 : 4;
  const boundary = Math.ceil(prefix / step) * step;
  const count = 2 ** (boundary - prefix);
  const zones: string[] = [];
  let current = bytes;
  for (let i = 0; i < count; i++) {
    zones.push(reverseName(current, boundary, v4));
    current = addAtBit(current, boundary);
  }
  return zones;
}

/** The reverse name of the first `prefix` bits (a multiple of 8 or 4) of the address. */
function reverseName(bytes: number[], prefix: number, v4: boolean): string {
  if (v4) {
    const octets = bytes.slice(0, prefix / 8).reverse();
    return [...octets, 'in-addr', 'arpa', ''].join('.');
  }
  const nibbles = bytes.flatMap((byte) => [byte >> 4, byte & 0xf]).slice(0, prefix / 4).reverse();
  return [...nibbles.map((nibble) => nibble.toString(16)), 'ip6', 'arpa', ''].join('.');
}

/** Adds one at bit position `bit` (counted from the left, 1-based end of the prefix). */
function addAtBit(bytes: number[], bit: number): number[] {
  const out = [...bytes];
  let index = Math.ceil(bit / 8) - 1;
  let carry = 1 << ((8 - (bit % 8)) % 8);
  while (index >= 0 && carry > 0) {
    const sum = out[index]! + carry;
    out[index] = sum & 0xff;
    carry = sum >> 8;
    index--;
  }
  return out;
}
