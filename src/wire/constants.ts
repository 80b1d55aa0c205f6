// Numeric DNS constants. Plain objects, not enums: the sources run under
// Node's type stripping, which accepts only erasable TypeScript.

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  YXDOMAIN: 6,
  YXRRSET: 7,
  NXRRSET: 8,
  NOTAUTH: 9,
  NOTZONE: 10,
  BADVERS: 16,
} as const;

const rcodeNames = new Map<number, string>(Object.entries(Rcode).map(([name, value]) => [value, name]));

/** RCODE as CoreDNS prints it (log plugin, metrics): NOERROR, NXDOMAIN, ... or the number. */
export function rcodeName(rcode: number): string {
  return rcodeNames.get(rcode) ?? String(rcode);
}

export const Opcode = { QUERY: 0, IQUERY: 1, STATUS: 2, NOTIFY: 4, UPDATE: 5 } as const;

const opcodeNames = new Map<number, string>(Object.entries(Opcode).map(([name, value]) => [value, name]));
export function opcodeName(opcode: number): string {
  return opcodeNames.get(opcode) ?? String(opcode);
}

export const Type = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  DNAME: 39,
  NAPTR: 35,
  DS: 43,
  OPT: 41,
  RRSIG: 46,
  NSEC: 47,
  DNSKEY: 48,
  NSEC3: 50,
  SVCB: 64,
  HTTPS: 65,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
  CAA: 257,
} as const;

const typeNames = new Map<number, string>(Object.entries(Type).map(([name, value]) => [value, name]));

/** Type mnemonic as dig prints it, TYPE123 for unknown ones (RFC 3597). */
export function typeName(type: number): string {
  return typeNames.get(type) ?? `TYPE${type}`;
}

export function typeFromName(name: string): number | undefined {
  const upper = name.toUpperCase();
  const known = (Type as Record<string, number>)[upper];
  if (known !== undefined) return known;
  const generic = /^TYPE(\d{1,5})$/.exec(upper);
  return generic ? Number(generic[1]) : undefined;
}

export const Class = { IN: 1, CH: 3, HS: 4, NONE: 254, ANY: 255 } as const;

const classNames = new Map<number, string>(Object.entries(Class).map(([name, value]) => [value, name]));
export function className(qclass: number): string {
  return classNames.get(qclass) ?? `CLASS${qclass}`;
}

/** Header flag bits in the second 16-bit word. */
export const Flag = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  Z: 0x0040,
  AD: 0x0020,
  CD: 0x0010,
} as const;

export const HEADER_LENGTH = 12;
/** Largest UDP reply without EDNS (RFC 1035 §4.2.1). */
export const UDP_MIN_SIZE = 512;
/** The EDNS buffer size this server advertises and reads (WIRE-3, WIRE-9). */
export const SERVER_UDP_SIZE = 4096;
export const TCP_MAX_SIZE = 65535;
