// The words of rewrite rules as CoreDNS reads them: type, class and RCODE
// mnemonics as miekg/dns knows them (names only, no TYPEnnn forms), numbers
// as Go's strconv parses them, and the error a bad rule raises.

import { Type } from '../../src/wire/constants.ts';

/** miekg/dns's mnemonics beyond the core's Type table. */
const moreTypes: Readonly<Record<string, number>> = {
  MD: 3, MF: 4, MB: 7, MG: 8, MR: 9, NULL: 10, WKS: 11, MINFO: 14, RP: 17, AFSDB: 18, X25: 19,
  ISDN: 20, RT: 21, NSAPPTR: 23, SIG: 24, KEY: 25, PX: 26, GPOS: 27, LOC: 29, NXT: 30, EID: 31, NIMLOC: 32,
  ATMA: 34, KX: 36, CERT: 37, A6: 38, APL: 42, SSHFP: 44, IPSECKEY: 45, DHCID: 49, NSEC3PARAM: 51, TLSA: 52,
  SMIMEA: 53, HIP: 55, NINFO: 56, RKEY: 57, TALINK: 58, CDS: 59, CDNSKEY: 60, OPENPGPKEY: 61, CSYNC: 62,
  ZONEMD: 63, SPF: 99, UINFO: 100, UID: 101, GID: 102, UNSPEC: 103, NID: 104, L32: 105, L64: 106, LP: 107,
  EUI48: 108, EUI64: 109, TKEY: 249, TSIG: 250, MAILB: 253, MAILA: 254, URI: 256, AVC: 258, DOA: 259,
  AMTRELAY: 260, TA: 32768, DLV: 32769,
};

/** A type mnemonic (A, MX, HTTPS, ...) to its number; undefined when unknown. */
export function typeFromMnemonic(name: string): number | undefined {
  const upper = name.toUpperCase();
  return (Type as Record<string, number>)[upper] ?? moreTypes[upper];
}

const classes: Readonly<Record<string, number>> = { IN: 1, CS: 2, CH: 3, HS: 4, NONE: 254, ANY: 255 };

export function classFromName(name: string): number | undefined {
  return classes[name.toUpperCase()];
}

const rcodes: Readonly<Record<string, number>> = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, YXDOMAIN: 6, YXRRSET: 7,
  NXRRSET: 8, NOTAUTH: 9, NOTZONE: 10, BADSIG: 16, BADVERS: 16, BADKEY: 17, BADTIME: 18, BADMODE: 19,
  BADNAME: 20, BADALG: 21, BADTRUNC: 22, BADCOOKIE: 23,
};

/** An RCODE as a number 0..23 or a name (NXDOMAIN, ...); null when neither. */
export function rcodeFromText(text: string): number | null {
  if (/^\d+$/.test(text) && Number(text) <= 23) return Number(text);
  return rcodes[text.toUpperCase()] ?? null;
}

/** A rule a rewrite line does not allow; index.ts turns it into a CorefileError. */
export class RuleError extends Error {}

/** Go's strconv.ParseUint(text, 0, bits): decimal, 0x hex, 0o or leading-0 octal, 0b binary; Go's messages. */
export function parseGoUint(text: string, bits: number): number {
  const forms: [RegExp, number][] = [[/^0[xX]([0-9a-fA-F]+)$/, 16], [/^0[oO]([0-7]+)$/, 8], [/^0[bB]([01]+)$/, 2], [/^0([0-7]*)$/, 8], [/^([1-9][0-9]*)$/, 10]];
  for (const [form, radix] of forms) {
    const digits = form.exec(text)?.[1];
    if (digits === undefined) continue;
    let value = 0n;
    for (const digit of digits) value = value * BigInt(radix) + BigInt(parseInt(digit, radix));
    if (value >= 1n << BigInt(bits)) throw new RuleError(`strconv.ParseUint: parsing ${JSON.stringify(text)}: value out of range`);
    return Number(value);
  }
  throw new RuleError(`strconv.ParseUint: parsing ${JSON.stringify(text)}: invalid syntax`);
}
