// Full decoding of a DNS message: an upstream's reply, as forward receives it.
//
// The result uses the core's ResourceRecord shapes (message.ts), so a reply
// decoded here can be handed to encodeReply unchanged: names in presentation
// form (upstream letter case kept), records with embedded names decoded into
// their structured data, A/AAAA as address text, everything else as raw
// rdata, which the encoder writes back as it is.
//
// Strict: a pointer that does not go backwards (which is also what ends
// pointer loops), a label or name past its limits, a count or rdlength that
// runs past the end, or rdata that does not fill its rdlength exactly, all
// throw MessageFormatError. Bytes after the last record are tolerated, as
// miekg/dns (and so CoreDNS) tolerates them.

import * as ip from '@leichtgewicht/ip-codec';
import { Flag, HEADER_LENGTH, Type } from './constants.ts';
import type { RecordData, ResourceRecord } from './message.ts';

/** DNAME (RFC 6672); not in constants.ts's Type table. */

export class MessageFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessageFormatError';
  }
}

export interface DecodedQuestion {
  /** Presentation form, letter case as sent. */
  name: string;
  qtype: number;
  qclass: number;
}

export interface EdnsOption {
  code: number;
  data: Buffer;
}

export interface DecodedEdns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
  /** The OPT TTL's low 16 bits (DO is bit 15). */
  flags: number;
  options: EdnsOption[];
}

export interface DecodedMessage {
  id: number;
  /** The second header word as received (QR, opcode, AA, TC, RD, RA, Z, AD, CD, low RCODE bits). */
  flags: number;
  opcode: number;
  /** Header RCODE plus the OPT's extended bits (RFC 6891 §6.1.3). */
  rcode: number;
  /** null when QDCOUNT is 0 (some servers send error replies without a question). */
  question: DecodedQuestion | null;
  answer: ResourceRecord[];
  authority: ResourceRecord[];
  /** Without the OPT record, which is in `edns`. */
  additional: ResourceRecord[];
  edns: DecodedEdns | null;
}

const MAX_NAME_WIRE_LENGTH = 255;

/** Types whose rdata is one domain name, compressible on the wire (RFC 1035 §3.3, RFC 3597 §4). */
const SINGLE_NAME_TYPES = new Set<number>([Type.NS, Type.CNAME, Type.PTR]);
/** Obsolete RFC 1035 types with names that may be compressed: kept raw, names expanded. */
const LEGACY_NAME_LAYOUTS: ReadonlyMap<number, readonly ('name' | 'u16')[]> = new Map([
  [3, ['name']], // MD
  [4, ['name']], // MF
  [7, ['name']], // MB
  [8, ['name']], // MG
  [9, ['name']], // MR
  [14, ['name', 'name']], // MINFO
  [17, ['name', 'name']], // RP
  [18, ['u16', 'name']], // AFSDB
  [21, ['u16', 'name']], // RT
  [26, ['u16', 'name', 'name']], // PX
  [36, ['u16', 'name']], // KX
]);

interface NameResult {
  /** Presentation form. */
  text: string;
  /** Uncompressed wire form. */
  wire: Buffer;
  /** Offset after the name where it started (a pointer ends a name). */
  end: number;
}

function isPlainByte(byte: number): boolean {
  // The same rule as query.ts: printable, and not one of . \ " ( ) ; @ $.
  return byte > 0x20 && byte < 0x7f && byte !== 0x2e && byte !== 0x5c &&
    byte !== 0x22 && byte !== 0x28 && byte !== 0x29 && byte !== 0x3b && byte !== 0x40 && byte !== 0x24;
}

function escapeByte(byte: number): string {
  if (byte > 0x20 && byte < 0x7f) return '\\' + String.fromCharCode(byte);
  return '\\' + String(byte).padStart(3, '0');
}

/** Reads a possibly compressed name at `offset`, bounded by `limit` for the part that is not pointed to. */
function readName(packet: Buffer, offset: number, limit: number): NameResult {
  let text = '';
  const wire: number[] = [];
  let end = -1;
  let position = offset;
  let bound = limit;
  for (;;) {
    if (position >= bound) throw new MessageFormatError(`name at offset ${offset} runs past the end`);
    const byte = packet[position]!;
    if (byte === 0) {
      wire.push(0);
      if (end < 0) end = position + 1;
      break;
    }
    const kind = byte & 0xc0;
    if (kind === 0xc0) {
      if (position + 1 >= bound) throw new MessageFormatError(`truncated compression pointer at offset ${position}`);
      const target = ((byte & 0x3f) << 8) | packet[position + 1]!;
      // A pointer must point to a prior occurrence (RFC 1035 §4.1.4); this also rules out loops.
      if (target >= position) throw new MessageFormatError(`compression pointer at offset ${position} does not point backwards (to ${target})`);
      if (end < 0) end = position + 2;
      position = target;
      // What is pointed to lies earlier in the message, which is all readable.
      bound = packet.length;
      continue;
    }
    if (kind !== 0) throw new MessageFormatError(`unsupported label type 0x${kind.toString(16)} at offset ${position}`);
    const start = position + 1;
    const stop = start + byte;
    if (stop > bound) throw new MessageFormatError(`label at offset ${position} runs past the end`);
    if (wire.length + byte + 2 > MAX_NAME_WIRE_LENGTH) throw new MessageFormatError(`name at offset ${offset} is longer than 255 bytes`);
    wire.push(byte);
    for (let i = start; i < stop; i++) {
      const c = packet[i]!;
      wire.push(c);
      text += isPlainByte(c) ? String.fromCharCode(c) : escapeByte(c);
    }
    text += '.';
    position = stop;
  }
  return { text: text === '' ? '.' : text, wire: Buffer.from(wire), end };
}

/** A reader over one message, keeping the offset. */
class Reader {
  readonly packet: Buffer;
  offset: number;
  constructor(packet: Buffer, offset: number) {
    this.packet = packet;
    this.offset = offset;
  }

  need(count: number, what: string, limit = this.packet.length): void {
    if (this.offset + count > limit) throw new MessageFormatError(`${what} at offset ${this.offset} runs past the end`);
  }
  u16(what: string, limit?: number): number {
    this.need(2, what, limit);
    const value = this.packet.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  u32(what: string, limit?: number): number {
    this.need(4, what, limit);
    const value = this.packet.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }
  name(limit = this.packet.length): NameResult {
    const result = readName(this.packet, this.offset, limit);
    this.offset = result.end;
    return result;
  }
}

interface RawRecord {
  record: ResourceRecord;
  /** For OPT: the TTL field and the raw rdata. */
  ttlField: number;
}

function readRecord(reader: Reader): RawRecord {
  const owner = reader.name();
  const type = reader.u16('record type');
  const rrclass = reader.u16('record class');
  const ttlField = reader.u32('record TTL');
  const rdlength = reader.u16('record rdlength');
  const start = reader.offset;
  const end = start + rdlength;
  if (end > reader.packet.length) throw new MessageFormatError(`rdata of ${owner.text} (type ${type}) runs past the end`);
  const data = readRdata(reader, type, rdlength, end);
  if (reader.offset !== end) {
    throw new MessageFormatError(`rdata of ${owner.text} (type ${type}) is ${rdlength} bytes but its fields take ${reader.offset - start}`);
  }
  // RFC 2181 §8: the top bit of a TTL is treated as zero... as miekg/dns does, keep the value as sent.
  return { record: { name: owner.text, type, class: rrclass, ttl: ttlField, data }, ttlField };
}

function readRdata(reader: Reader, type: number, rdlength: number, end: number): RecordData {
  const { packet } = reader;
  const start = reader.offset;
  if (type === Type.A || type === Type.AAAA) {
    const expected = type === Type.A ? 4 : 16;
    if (rdlength !== expected) throw new MessageFormatError(`${type === Type.A ? 'A' : 'AAAA'} rdata must be ${expected} bytes, found ${rdlength}`);
    reader.offset = end;
    return ip.decode(packet, start, rdlength);
  }
  if (SINGLE_NAME_TYPES.has(type) || type === Type.DNAME) return reader.name(end).text;
  switch (type) {
    case Type.MX: {
      const preference = reader.u16('MX preference', end);
      return { preference, exchange: reader.name(end).text };
    }
    case Type.SRV: {
      const priority = reader.u16('SRV priority', end);
      const weight = reader.u16('SRV weight', end);
      const port = reader.u16('SRV port', end);
      return { priority, weight, port, target: reader.name(end).text };
    }
    case Type.SOA: {
      const mname = reader.name(end).text;
      const rname = reader.name(end).text;
      return {
        mname,
        rname,
        serial: reader.u32('SOA serial', end),
        refresh: reader.u32('SOA refresh', end),
        retry: reader.u32('SOA retry', end),
        expire: reader.u32('SOA expire', end),
        minimum: reader.u32('SOA minimum', end),
      };
    }
  }
  const layout = LEGACY_NAME_LAYOUTS.get(type);
  if (layout) {
    // Expand any compressed names so the raw rdata stands on its own.
    const parts: Buffer[] = [];
    for (const field of layout) {
      if (field === 'u16') {
        reader.need(2, 'rdata field', end);
        parts.push(packet.subarray(reader.offset, reader.offset + 2));
        reader.offset += 2;
      } else {
        parts.push(reader.name(end).wire);
      }
    }
    return Buffer.concat(parts);
  }
  reader.offset = end;
  // A copy, so the record does not keep the whole datagram alive.
  return Buffer.from(packet.subarray(start, end));
}

/** Decodes a whole DNS message. Throws MessageFormatError when it is malformed. */
export function decodeMessage(packet: Buffer): DecodedMessage {
  if (packet.length < HEADER_LENGTH) throw new MessageFormatError(`message of ${packet.length} bytes is shorter than a header`);
  const id = packet.readUInt16BE(0);
  const flags = packet.readUInt16BE(2);
  const qdcount = packet.readUInt16BE(4);
  const counts = [packet.readUInt16BE(6), packet.readUInt16BE(8), packet.readUInt16BE(10)] as const;
  if (qdcount > 1) throw new MessageFormatError(`message has ${qdcount} questions`);
  const reader = new Reader(packet, HEADER_LENGTH);
  let question: DecodedQuestion | null = null;
  if (qdcount === 1) {
    const name = reader.name().text;
    question = { name, qtype: reader.u16('question type'), qclass: reader.u16('question class') };
  }
  const sections: ResourceRecord[][] = [[], [], []];
  let edns: DecodedEdns | null = null;
  let extendedRcode = 0;
  for (let section = 0; section < 3; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      const { record, ttlField } = readRecord(reader);
      if (record.type !== Type.OPT) {
        sections[section]!.push(record);
        continue;
      }
      if (section !== 2) throw new MessageFormatError('OPT record outside the additional section');
      if (edns !== null) throw new MessageFormatError('more than one OPT record');
      if (record.name !== '.') throw new MessageFormatError(`OPT record owned by ${record.name}, not the root`);
      extendedRcode = ttlField >>> 24;
      edns = {
        udpSize: record.class,
        version: (ttlField >>> 16) & 0xff,
        dnssecOk: (ttlField & 0x8000) !== 0,
        flags: ttlField & 0xffff,
        options: readOptions(record.data as Buffer),
      };
    }
  }
  return {
    id,
    flags,
    opcode: (flags >> 11) & 0xf,
    rcode: (extendedRcode << 4) | (flags & 0xf),
    question,
    answer: sections[0]!,
    authority: sections[1]!,
    additional: sections[2]!,
    edns,
  };
}

/**
 * The header and question only, for a reply whose records cannot be read (cut
 * short, or longer than the buffer it was read into: FWD-8). Throws when even
 * the question is unreadable.
 */
export function decodeQuestion(packet: Buffer): Pick<DecodedMessage, 'id' | 'flags' | 'opcode' | 'rcode' | 'question'> {
  if (packet.length < HEADER_LENGTH) throw new MessageFormatError(`message of ${packet.length} bytes is shorter than a header`);
  const flags = packet.readUInt16BE(2);
  const qdcount = packet.readUInt16BE(4);
  if (qdcount > 1) throw new MessageFormatError(`message has ${qdcount} questions`);
  let question: DecodedQuestion | null = null;
  if (qdcount === 1) {
    const reader = new Reader(packet, HEADER_LENGTH);
    const name = reader.name().text;
    question = { name, qtype: reader.u16('question type'), qclass: reader.u16('question class') };
  }
  return { id: packet.readUInt16BE(0), flags, opcode: (flags >> 11) & 0xf, rcode: flags & 0xf, question };
}

function readOptions(data: Buffer): EdnsOption[] {
  const options: EdnsOption[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (offset + 4 > data.length) throw new MessageFormatError('truncated EDNS option header');
    const code = data.readUInt16BE(offset);
    const length = data.readUInt16BE(offset + 2);
    offset += 4;
    if (offset + length > data.length) throw new MessageFormatError(`EDNS option ${code} runs past the end of the OPT record`);
    options.push({ code, data: data.subarray(offset, offset + length) });
    offset += length;
  }
  return options;
}

/** True when the message is a response (QR set). */
export function isResponse(message: Pick<DecodedMessage, 'flags'>): boolean {
  return (message.flags & Flag.QR) !== 0;
}
