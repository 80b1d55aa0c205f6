// RFC 1035 §5 master files ("zone files") to records.
//
// Written here rather than taken from npm: the packages there (dns-zonefile,
// zonefile-parser) have no $INCLUDE, report no line numbers and drop
// records they cannot read, and a bad zone file must stop startup naming
// file and line. Setup only: nothing here runs per query.
//
// Supported: $ORIGIN, $TTL, $INCLUDE FILE [ORIGIN] (relative to the including
// file), `@`, relative names, owners inherited by lines starting with blank
// space, parentheses across lines, `;` comments, quoted strings with \"
// and \DDD escapes, TTL and class in either order, BIND durations (1h30m,
// 2d, 1w), and the types A, AAAA, CNAME, DNAME, NS, PTR, MX, TXT, SRV, SOA. Anything else is an error at its line.

import fs from 'node:fs';
import path from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { Class, Type } from '../../src/wire/constants.ts';
import type { ResourceRecord } from '../../src/wire/message.ts';
import { canonicalName } from '../../src/wire/names.ts';

export class ZoneFileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly detail: string;
  constructor(file: string, line: number, detail: string) {
    super(`${file}:${line} - ${detail}`);
    this.name = 'ZoneFileError';
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

interface Entry {
  /** The first line of the entry (parenthesised entries span several). */
  line: number;
  /** True when the entry starts with blank space: the owner is the previous one. */
  inheritsOwner: boolean;
  tokens: { text: string; quoted: boolean }[];
}

/** Splits the text into entries: comments dropped, parentheses joined, quotes kept together. */
function entries(text: string, file: string): Entry[] {
  const out: Entry[] = [];
  let current: Entry | null = null;
  let depth = 0;
  let line = 1;
  let i = 0;
  const finish = () => {
    if (current && current.tokens.length > 0) out.push(current);
    current = null;
  };
  while (i < text.length) {
    const char = text[i]!;
    if (char === '\n') {
      line++;
      i++;
      if (depth === 0) finish();
      continue;
    }
    if (current === null) current = { line, inheritsOwner: char === ' ' || char === '\t', tokens: [] };
    if (char === ' ' || char === '\t' || char === '\r') {
      i++;
    } else if (char === ';') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (char === '(') {
      depth++;
      i++;
    } else if (char === ')') {
      if (depth === 0) throw new ZoneFileError(file, line, "')' without a matching '('");
      depth--;
      i++;
    } else if (char === '"') {
      let value = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\n') throw new ZoneFileError(file, line, 'unterminated quoted string');
        if (text[i] === '\\' && i + 1 < text.length) {
          const digits = /^\d{3}/.exec(text.slice(i + 1, i + 4));
          value += digits ? String.fromCharCode(Number(digits[0])) : text[i + 1];
          i += digits ? 4 : 2;
        } else {
          value += text[i++];
        }
      }
      if (i >= text.length) throw new ZoneFileError(file, line, 'unterminated quoted string');
      i++;
      current.tokens.push({ text: value, quoted: true });
    } else {
      let value = '';
      while (i < text.length && !' \t\r\n;()"'.includes(text[i]!)) {
        if (text[i] === '\\' && i + 1 < text.length) value += text[i++];
        value += text[i++];
      }
      current.tokens.push({ text: value, quoted: false });
    }
  }
  if (depth > 0) throw new ZoneFileError(file, line, "'(' without a matching ')'");
  finish();
  return out;
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** A TTL: seconds, or BIND units (1h30m, 2d, 1W); null when the token is not one. */
export function parseTtl(text: string): number | null {
  let seconds: number;
  if (/^\d+$/.test(text)) {
    seconds = Number(text);
  } else {
    const pattern = /^(?:\d+[smhdw])+$/i;
    if (!pattern.test(text)) return null;
    seconds = 0;
    for (const match of text.matchAll(/(\d+)([smhdw])/gi)) seconds += Number(match[1]) * durationUnits[match[2]!.toLowerCase()]!;
  }
  return seconds <= 0x7fffffff ? seconds : null;
}

const CLASSES: Record<string, number> = { IN: Class.IN, CH: Class.CH, HS: Class.HS };

export interface ParsedZone {
  records: ResourceRecord[];
}

interface State {
  origin: string;
  defaultTtl: number | null;
  lastTtl: number | null;
  lastOwner: string | null;
}

/**
 * Reads a zone file for `origin` (canonical, with the trailing dot). Every
 * owner must be inside the origin. Throws ZoneFileError naming file and line.
 */
export function parseZoneFile(file: string, origin: string): ParsedZone {
  const records: ResourceRecord[] = [];
  readInto(file, { origin, defaultTtl: null, lastTtl: null, lastOwner: null }, records, origin, [], null);
  if (!records.some((record) => record.type === Type.SOA && record.name === origin)) {
    throw new ZoneFileError(file, 1, `no SOA record for the zone ${origin}`);
  }
  return { records };
}

function readInto(file: string, state: State, out: ResourceRecord[], zone: string, including: string[], includedAt: { file: string; line: number } | null): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const where = includedAt ?? { file, line: 0 };
    throw new ZoneFileError(where.file, where.line, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  if (including.includes(file)) throw new ZoneFileError(includedAt!.file, includedAt!.line, `$INCLUDE loop: ${file} includes itself`);
  for (const entry of entries(text, file)) {
    const fail = (detail: string): never => {
      throw new ZoneFileError(file, entry.line, detail);
    };
    const first = entry.tokens[0]!;
    if (!entry.inheritsOwner && !first.quoted && first.text.startsWith('$')) {
      const directive = first.text.toUpperCase();
      const args = entry.tokens.slice(1).map((token) => token.text);
      if (directive === '$ORIGIN') {
        if (args.length !== 1) fail('$ORIGIN takes one name');
        state.origin = absoluteName(args[0]!, state.origin, fail);
      } else if (directive === '$TTL') {
        const ttl = args.length === 1 ? parseTtl(args[0]!) : null;
        if (ttl === null) fail(`$TTL takes one TTL, found '${args.join(' ')}'`);
        state.defaultTtl = ttl;
      } else if (directive === '$INCLUDE') {
        if (args.length < 1 || args.length > 2) fail('$INCLUDE takes a file name and an optional origin');
        const included = path.resolve(path.dirname(file), args[0]!);
        const nested: State = { ...state, origin: args[1] ? absoluteName(args[1], state.origin, fail) : state.origin };
        readInto(included, nested, out, zone, [...including, file], { file, line: entry.line });
        // RFC 1035 §5.1: the origin comes back after the include; the TTL and owner carry on.
        state.defaultTtl = nested.defaultTtl;
        state.lastTtl = nested.lastTtl;
      } else {
        fail(`${first.text} is not supported (only $ORIGIN, $TTL and $INCLUDE)`);
      }
      continue;
    }
    const tokens = entry.tokens;
    let index = 0;
    let owner: string;
    if (entry.inheritsOwner) {
      if (state.lastOwner === null) fail('a record without an owner name, and none before it');
      owner = state.lastOwner!;
    } else {
      owner = absoluteName(tokens[index++]!.text, state.origin, fail);
    }
    let ttl: number | null = null;
    let rrClass: number | null = null;
    // [TTL] [CLASS] or [CLASS] [TTL], then the type.
    for (let step = 0; step < 2 && index < tokens.length; step++) {
      const text = tokens[index]!.text;
      const asTtl: number | null = ttl === null ? parseTtl(text) : null;
      if (asTtl !== null) {
        ttl = asTtl;
        index++;
      } else if (rrClass === null && CLASSES[text.toUpperCase()] !== undefined) {
        rrClass = CLASSES[text.toUpperCase()]!;
        index++;
      }
    }
    const typeToken = tokens[index++];
    if (typeToken === undefined) fail(`a record for ${owner} without a type`);
    const typeName = typeToken!.text.toUpperCase();
    const rdata = tokens.slice(index);
    const data = parseRdata(typeName, rdata, state.origin, fail);
    if (!isInside(owner, zone)) fail(`${owner} is outside the zone ${zone}`);
    if (ttl !== null) state.lastTtl = ttl;
    const effectiveTtl = ttl ?? state.defaultTtl ?? state.lastTtl;
    if (effectiveTtl === null) fail(`no TTL for ${owner}: give one, or a $TTL line before it`);
    state.lastOwner = owner;
    out.push({ name: owner, type: data.type, class: rrClass ?? Class.IN, ttl: effectiveTtl!, data: data.data });
  }
}

function isInside(name: string, zone: string): boolean {
  return zone === '.' || name === zone || name.endsWith(`.${zone}`);
}

/** `@`, a relative name (origin appended) or an absolute one; canonical. */
function absoluteName(text: string, origin: string, fail: (detail: string) => never): string {
  if (text === '@') return origin;
  if (text === '' || text.includes('..') || /\s/.test(text)) fail(`'${text}' is not a domain name`);
  const absolute = text.endsWith('.') ? text : origin === '.' ? `${text}.` : `${text}.${origin}`;
  if (absolute.length > 254 || absolute.split('.').some((label) => label.length > 63)) fail(`'${text}' is too long for a domain name`);
  return canonicalName(absolute);
}

function parseRdata(
  typeName: string,
  tokens: { text: string; quoted: boolean }[],
  origin: string,
  fail: (detail: string) => never,
): { type: number; data: ResourceRecord['data'] } {
  const texts = tokens.map((token) => token.text);
  if (typeName !== 'TXT' && tokens.some((token) => token.quoted)) fail(`a quoted string in ${typeName} record data`);
  const count = (n: number) => {
    if (texts.length !== n) fail(`${typeName} takes ${n} field${n === 1 ? '' : 's'}, found ${texts.length}: '${texts.join(' ')}'`);
  };
  const name = (text: string) => absoluteName(text, origin, fail);
  const uint = (text: string, max: number, what: string) => {
    if (!/^\d+$/.test(text) || Number(text) > max) fail(`bad ${typeName} ${what} '${text}'`);
    return Number(text);
  };
  switch (typeName) {
    case 'A':
      count(1);
      if (!isIPv4(texts[0]!)) fail(`bad A record data '${texts[0]}': not an IPv4 address`);
      return { type: Type.A, data: texts[0]! };
    case 'AAAA':
      count(1);
      if (!isIPv6(texts[0]!)) fail(`bad AAAA record data '${texts[0]}': not an IPv6 address`);
      return { type: Type.AAAA, data: texts[0]!.toLowerCase() };
    case 'CNAME':
    case 'DNAME':
    case 'NS':
    case 'PTR':
      count(1);
      return { type: Type[typeName], data: name(texts[0]!) };
    case 'MX':
      count(2);
      return { type: Type.MX, data: { preference: uint(texts[0]!, 65535, 'preference'), exchange: name(texts[1]!) } };
    case 'SRV':
      count(4);
      return {
        type: Type.SRV,
        data: { priority: uint(texts[0]!, 65535, 'priority'), weight: uint(texts[1]!, 65535, 'weight'), port: uint(texts[2]!, 65535, 'port'), target: name(texts[3]!) },
      };
    case 'TXT':
      if (texts.length === 0) fail('TXT needs at least one string');
      for (const text of texts) if (Buffer.byteLength(text) > 255) fail('TXT string longer than 255 bytes');
      return { type: Type.TXT, data: texts };
    case 'SOA': {
      count(7);
      const numbers = texts.slice(2).map((text, i) => {
        const value = i === 0 ? (/^\d+$/.test(text) ? Number(text) : null) : parseTtl(text);
        if (value === null || value > 0xffffffff) fail(`bad SOA ${['serial', 'refresh', 'retry', 'expire', 'minimum'][i]} '${text}'`);
        return value!;
      });
      return {
        type: Type.SOA,
        data: { mname: name(texts[0]!), rname: name(texts[1]!), serial: numbers[0]!, refresh: numbers[1]!, retry: numbers[2]!, expire: numbers[3]!, minimum: numbers[4]! },
      };
    }
    default:
      return fail(`record type '${typeName}' is not supported (A, AAAA, CNAME, DNAME, NS, PTR, MX, TXT, SRV, SOA)`);
  }
}
