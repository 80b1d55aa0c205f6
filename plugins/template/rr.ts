// One resource record in zone-file syntax (RFC 1035 §5.1), as the template
// plugin's answer/additional/authority lines produce it, parsed the way
// miekg/dns's NewRR does for CoreDNS: origin ".", default TTL 3600, class IN,
// TTL and class in either order, parentheses across lines, `;` comments.
//
// Hand-written: dns-packet reads only wire form, and the zone-file packages
// on npm read whole files leniently (a bad record is skipped, not reported),
// where a template needs a strict error for coredns_template_rr_failures_total.

import { isIPv4, isIPv6 } from 'node:net';
import type { RecordData, ResourceRecord } from '../../src/wire/message.ts';
import { Class, Type } from '../../src/wire/constants.ts';
import { CLASS_BY_NAME, TYPE_BY_NAME, TYPE_NAMES } from './names.ts';

export class RecordSyntaxError extends Error {}

const DEFAULT_TTL = 3600;
const DNAME = 39;
const SPF = 99;

interface ZoneToken {
  text: string;
  quoted: boolean;
}

/** Splits the first record of `text` into tokens: parentheses join lines, `;` starts a comment. */
function tokenize(text: string): { tokens: ZoneToken[]; leadingBlank: boolean } {
  const tokens: ZoneToken[] = [];
  let depth = 0;
  let at = 0;
  const leadingBlank = /^[ \t]/.test(text);
  while (at < text.length) {
    const char = text[at]!;
    if (char === ' ' || char === '\t' || char === '\r') {
      at++;
    } else if (char === '\n') {
      if (depth === 0) break;
      at++;
    } else if (char === ';') {
      while (at < text.length && text[at] !== '\n') at++;
    } else if (char === '(') {
      depth++;
      at++;
    } else if (char === ')') {
      if (depth === 0) throw new RecordSyntaxError('dns: extra closing brace');
      depth--;
      at++;
    } else if (char === '"') {
      let value = '';
      at++;
      for (;;) {
        if (at >= text.length) throw new RecordSyntaxError('dns: unbalanced quotes');
        const inner = text[at]!;
        if (inner === '"') break;
        if (inner === '\\' && at + 1 < text.length) {
          value += inner + text[at + 1];
          at += 2;
          continue;
        }
        value += inner;
        at++;
      }
      at++;
      tokens.push({ text: value, quoted: true });
    } else {
      let value = '';
      while (at < text.length && !' \t\r\n;()"'.includes(text[at]!)) {
        if (text[at] === '\\' && at + 1 < text.length) {
          value += text.slice(at, at + 2);
          at += 2;
          continue;
        }
        value += text[at++];
      }
      tokens.push({ text: value, quoted: false });
    }
  }
  if (depth > 0) throw new RecordSyntaxError('dns: unbalanced brace');
  return { tokens, leadingBlank };
}

/** The bytes of a character-string or label as written, with \\X and \\DDD undone. */
function unescape(text: string): number[] {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code === 0x5c && i + 1 < text.length) {
      const digits = text.slice(i + 1, i + 4);
      if (/^\d{3}$/.test(digits)) {
        const value = Number(digits);
        if (value > 255) throw new RecordSyntaxError(`dns: bad escape in "${text}"`);
        bytes.push(value);
        i += 3;
        continue;
      }
      code = text.charCodeAt(++i);
    }
    if (code < 0x80) bytes.push(code);
    else {
      // Text beyond ASCII is its UTF-8 bytes, as Go reads the string.
      const char = String.fromCodePoint(text.codePointAt(i)!);
      bytes.push(...Buffer.from(char, 'utf8'));
      i += char.length - 1;
    }
  }
  return bytes;
}

function endsWithUnescapedDot(text: string): boolean {
  if (!text.endsWith('.')) return false;
  let backslashes = 0;
  for (let i = text.length - 2; i >= 0 && text[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/** A domain name made absolute against the root origin, checked as miekg's IsDomainName checks it. */
function domainName(token: ZoneToken | undefined, what: string): string {
  if (token === undefined || token.quoted) throw new RecordSyntaxError(`dns: bad ${what}`);
  const text = token.text;
  if (text === '@' || text === '.') return '.';
  const absolute = endsWithUnescapedDot(text) ? text : text + '.';
  let wireLength = 1;
  let label = '';
  for (let i = 0; i < absolute.length; i++) {
    const char = absolute[i]!;
    if (char === '\\') {
      const digits = absolute.slice(i + 1, i + 4);
      label += /^\d{3}$/.test(digits) ? absolute.slice(i, i + 4) : absolute.slice(i, i + 2);
      i += /^\d{3}$/.test(digits) ? 3 : 1;
      continue;
    }
    if (char === '.') {
      const length = unescape(label).length;
      if (length === 0 || length > 63) throw new RecordSyntaxError(`dns: bad ${what} "${text}"`);
      wireLength += length + 1;
      label = '';
      continue;
    }
    label += char;
  }
  if (wireLength > 255) throw new RecordSyntaxError(`dns: bad ${what} "${text}": name too long`);
  return absolute;
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** A TTL: seconds, or BIND's units (1h30m); null when the token is not one. */
function ttlValue(text: string): number | null {
  if (/^\d+$/.test(text)) {
    const value = Number(text);
    return value <= 0xffffffff ? value : null;
  }
  const match = /^(?:\d+[smhdw])+$/i.test(text) ? text.toLowerCase().match(/\d+[smhdw]/g) : null;
  if (!match) return null;
  let total = 0;
  for (const part of match) total += Number(part.slice(0, -1)) * TTL_UNITS[part.at(-1)!]!;
  return total <= 0xffffffff ? total : null;
}

function classValue(text: string): number | null {
  const upper = text.toUpperCase();
  const known = CLASS_BY_NAME.get(upper);
  if (known !== undefined) return known;
  const generic = /^CLASS(\d{1,5})$/.exec(upper);
  return generic && Number(generic[1]) <= 0xffff ? Number(generic[1]) : null;
}

function typeValue(text: string): number | null {
  const upper = text.toUpperCase();
  const known = TYPE_BY_NAME.get(upper);
  if (known !== undefined) return known;
  const generic = /^TYPE(\d{1,5})$/.exec(upper);
  return generic && Number(generic[1]) <= 0xffff ? Number(generic[1]) : null;
}

function uint(token: ZoneToken | undefined, bits: 16 | 32, what: string): number {
  if (token === undefined || !/^\d+$/.test(token.text) || Number(token.text) >= 2 ** bits) {
    throw new RecordSyntaxError(`dns: bad ${what}${token ? ` "${token.text}"` : ''}`);
  }
  return Number(token.text);
}

/** SOA timers: seconds or TTL units, as miekg takes them. */
function soaTimer(token: ZoneToken | undefined, what: string): number {
  const value = token === undefined ? null : ttlValue(token.text);
  if (value === null) throw new RecordSyntaxError(`dns: bad SOA ${what}${token ? ` "${token.text}"` : ''}`);
  return value;
}

/** Character-strings: each at most 255 bytes; longer ones are split, as miekg splits them. */
function characterStrings(tokens: ZoneToken[]): RecordData {
  const chunks: number[][] = [];
  for (const token of tokens) {
    const bytes = unescape(token.text);
    if (bytes.length === 0) chunks.push([]);
    for (let at = 0; at < bytes.length; at += 255) chunks.push(bytes.slice(at, at + 255));
  }
  // Plain ASCII stays text (what the rest of the server reads); other bytes go out exactly as raw rdata.
  if (chunks.every((chunk) => chunk.every((byte) => byte < 0x80))) return chunks.map((chunk) => String.fromCharCode(...chunk));
  return Buffer.concat(chunks.map((chunk) => Buffer.from([chunk.length, ...chunk])));
}

/** RFC 3597 `\# LENGTH HEX...`, for types whose rdata holds no names. */
function genericRdata(tokens: ZoneToken[], typeText: string): Buffer {
  const length = uint(tokens[1], 16, `${typeText} rdata length`);
  const hex = tokens.slice(2).map((token) => token.text).join('');
  if (!/^([0-9a-fA-F]{2})*$/.test(hex) || hex.length / 2 !== length) throw new RecordSyntaxError(`dns: bad ${typeText} rdata "${hex}"`);
  return Buffer.from(hex, 'hex');
}

function expectEnd(tokens: ZoneToken[], count: number, typeText: string): void {
  if (tokens.length > count) throw new RecordSyntaxError(`dns: bad ${typeText}: garbage after rdata: "${tokens[count]!.text}"`);
}

/**
 * The first record in `text`. Throws RecordSyntaxError when it is not a
 * record, or is of a type clusterdns cannot build from text.
 */
export function parseRecord(text: string): ResourceRecord {
  const { tokens, leadingBlank } = tokenize(text);
  if (leadingBlank || tokens.length === 0) throw new RecordSyntaxError('dns: missing owner name');
  const name = domainName(tokens[0], 'owner name');
  let ttl: number | null = null;
  let rrClass: number | null = null;
  let at = 1;
  for (; at < tokens.length && at < 3; at++) {
    const token = tokens[at]!;
    if (token.quoted) break;
    const asClass: number | null = rrClass === null ? classValue(token.text) : null;
    if (asClass !== null) {
      rrClass = asClass;
      continue;
    }
    const asTtl: number | null = ttl === null ? ttlValue(token.text) : null;
    if (asTtl !== null) {
      ttl = asTtl;
      continue;
    }
    break;
  }
  const typeToken = tokens[at];
  const type = typeToken && !typeToken.quoted ? typeValue(typeToken.text) : null;
  if (type === null) throw new RecordSyntaxError(`dns: unknown RR type${typeToken ? ` "${typeToken.text}"` : ''}`);
  const typeText = TYPE_NAMES.get(type) ?? `TYPE${type}`;
  const rdata = tokens.slice(at + 1);
  const record = (data: RecordData): ResourceRecord => ({ name, type, class: rrClass ?? Class.IN, ttl: ttl ?? DEFAULT_TTL, data });

  if (rdata[0]?.text === '\\#' && !rdata[0].quoted) {
    if (![Type.NS, Type.CNAME, Type.PTR, Type.MX, Type.SOA, Type.SRV, DNAME].includes(type as never)) return record(genericRdata(rdata, typeText));
  }
  switch (type) {
    case Type.A: {
      const address = rdata[0]?.text ?? '';
      if (!isIPv4(address)) throw new RecordSyntaxError(`dns: bad A A: "${address}"`);
      expectEnd(rdata, 1, 'A');
      return record(address);
    }
    case Type.AAAA: {
      const address = rdata[0]?.text ?? '';
      if (!isIPv6(address) || address.includes('%')) throw new RecordSyntaxError(`dns: bad AAAA AAAA: "${address}"`);
      expectEnd(rdata, 1, 'AAAA');
      return record(address);
    }
    case Type.CNAME:
    case Type.NS:
    case Type.PTR:
    case DNAME:
      expectEnd(rdata, 1, typeText);
      return record(domainName(rdata[0], `${typeText} target`));
    case Type.MX:
      expectEnd(rdata, 2, 'MX');
      return record({ preference: uint(rdata[0], 16, 'MX Pref'), exchange: domainName(rdata[1], 'MX Mx') });
    case Type.SRV:
      expectEnd(rdata, 4, 'SRV');
      return record({
        priority: uint(rdata[0], 16, 'SRV Priority'),
        weight: uint(rdata[1], 16, 'SRV Weight'),
        port: uint(rdata[2], 16, 'SRV Port'),
        target: domainName(rdata[3], 'SRV Target'),
      });
    case Type.SOA:
      expectEnd(rdata, 7, 'SOA');
      return record({
        mname: domainName(rdata[0], 'SOA Ns'),
        rname: domainName(rdata[1], 'SOA Mbox'),
        serial: uint(rdata[2], 32, 'SOA Serial'),
        refresh: soaTimer(rdata[3], 'Refresh'),
        retry: soaTimer(rdata[4], 'Retry'),
        expire: soaTimer(rdata[5], 'Expire'),
        minimum: soaTimer(rdata[6], 'Minttl'),
      });
    case Type.TXT:
    case SPF:
      return record(characterStrings(rdata));
    case Type.HINFO:
      if (rdata.length !== 2) throw new RecordSyntaxError('dns: bad HINFO Fields');
      return record(characterStrings(rdata));
    default:
      throw new RecordSyntaxError(`clusterdns cannot build ${typeText} records from text (supported: A, AAAA, CNAME, DNAME, HINFO, MX, NS, PTR, SOA, SPF, SRV, TXT, or RFC 3597 \\# rdata)`);
  }
}
