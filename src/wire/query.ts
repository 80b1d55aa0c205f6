// Intake of a query: the header, the question and the OPT record, nothing else.
// Hand-written because this runs for every packet; dns-packet would build an
// object per record and per label. Rules: WIRE-1, WIRE-2, WIRE-9..12.

import { Flag, HEADER_LENGTH, Opcode, Rcode, Type } from './constants.ts';
import { nameToLabels } from './names.ts';

export interface Edns {
  /** The client's advertised UDP payload size, as sent (may be below 512); see lowerUdpSize. */
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface Query {
  /** The datagram or TCP message as received; changed only where a plugin changes the request as CoreDNS does (bufsize, header). */
  packet: Buffer;
  id: number;
  opcode: number;
  /** The request's second header word (RD, CD, ... are read from it). */
  flags: number;
  /** Lowercased, fully qualified, in presentation form ("." for the root). */
  qname: string;
  /**
   * The question name as the client spelled it; the very same string as
   * `qname` when the client wrote no uppercase letter, so `spelledName !==
   * qname` is a cheap test for a mixed-case query (K8S-2, WIRE-7).
   */
  spelledName: string;
  qtype: number;
  qclass: number;
  /** packet[12, questionEnd) is the question, echoed byte for byte in replies (WIRE-7). */
  questionEnd: number;
  edns: Edns | null;
  /** Offset in the packet of the OPT record's TYPE field (options start 10 bytes later); -1 without EDNS. */
  optAt: number;
}

/** Why a packet is not a query the chain can see, and what to answer. */
export interface Rejection {
  /** null: drop silently (WIRE-1). */
  rcode: number | null;
  /** The question, when it was parsed before the error (WIRE-2). */
  questionEnd: number;
}

const MAX_NAME_WIRE_LENGTH = 255;

class Malformed extends Error {}

/** Reads a name at `offset`; returns the offset after it in the message (pointers end a name). */
function skipName(packet: Buffer, offset: number): number {
  let end = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (offset >= packet.length) throw new Malformed('name runs past the end');
    const byte = packet[offset]!;
    if (byte === 0) return end < 0 ? offset + 1 : end;
    const kind = byte & 0xc0;
    if (kind === 0xc0) {
      if (offset + 1 >= packet.length) throw new Malformed('truncated pointer');
      if (end < 0) end = offset + 2;
      // A pointer must go backwards; this also ends any loop (WIRE-2.4).
      const target = ((byte & 0x3f) << 8) | packet[offset + 1]!;
      if (target >= offset || ++jumps > 64) throw new Malformed('bad compression pointer');
      offset = target;
      continue;
    }
    if (kind !== 0) throw new Malformed('unsupported label type');
    length += byte + 1;
    if (length > MAX_NAME_WIRE_LENGTH) throw new Malformed('name too long');
    offset += byte + 1;
  }
}

function isPlainByte(byte: number): boolean {
  // Letters, digits, '-', '_', '*', '/' and other printable bytes that need no escape.
  return byte > 0x20 && byte < 0x7f && byte !== 0x2e /* . */ && byte !== 0x5c /* \ */ &&
    byte !== 0x22 && byte !== 0x28 && byte !== 0x29 && byte !== 0x3b && byte !== 0x40 && byte !== 0x24;
}

/** Scratch space for the presentation form of a question name; names need at most 4 bytes per wire byte. */
const nameScratch = Buffer.allocUnsafe(4 * 256);

/**
 * Parses the question name, which must be contiguous at offset 12 (a query has
 * nothing earlier to point at). Writes the lowercased presentation form into
 * a scratch buffer and makes one string of it: one native call per query
 * instead of one per label. Returns the name's end offset; the name is left
 * in `lastQuestionName`, and the name as spelled in `lastSpelledName`.
 */
function readQuestionName(packet: Buffer): number {
  let offset = HEADER_LENGTH;
  let length = 0;
  let uppercase = false;
  for (;;) {
    if (offset >= packet.length) throw new Malformed('question runs past the end');
    const labelLength = packet[offset]!;
    if (labelLength === 0) {
      offset++;
      break;
    }
    if (labelLength > 63) throw new Malformed('compressed or extended label in question');
    const start = offset + 1;
    offset = start + labelLength;
    if (offset > packet.length) throw new Malformed('label runs past the end');
    if (offset - HEADER_LENGTH > MAX_NAME_WIRE_LENGTH - 1) throw new Malformed('name too long');
    for (let i = start; i < offset; i++) {
      const byte = packet[i]!;
      if (isPlainByte(byte)) {
        // ASCII lowercase; DNS compares names case-insensitively (RFC 4343).
        if (byte >= 0x41 && byte <= 0x5a) {
          uppercase = true;
          nameScratch[length++] = byte | 0x20;
        } else {
          nameScratch[length++] = byte;
        }
      } else {
        length += nameScratch.write(escapeByte(byte), length, 'latin1');
      }
    }
    nameScratch[length++] = 0x2e;
  }
  lastQuestionName = length === 0 ? '.' : nameScratch.toString('latin1', 0, length);
  lastSpelledName = uppercase ? spelledName(packet, offset, lastQuestionName) : lastQuestionName;
  return offset;
}

let lastQuestionName = '.';
let lastSpelledName = '.';

/**
 * The question name with the client's letter case (rare: most clients send
 * lowercase). Escapes hold no letters and label lengths are below 64, so the
 * i-th letter of the lowercased form is the i-th letter byte of the question.
 */
function spelledName(packet: Buffer, end: number, lowercased: string): string {
  let spelled = '';
  let offset = HEADER_LENGTH;
  for (let i = 0; i < lowercased.length; i++) {
    const char = lowercased.charCodeAt(i);
    if (char < 0x61 || char > 0x7a) {
      spelled += lowercased[i];
      continue;
    }
    while (offset < end && ((packet[offset]! | 0x20) < 0x61 || (packet[offset]! | 0x20) > 0x7a)) offset++;
    spelled += String.fromCharCode(packet[offset++]!);
  }
  return spelled;
}

/** dig's escape for a byte that cannot stand as itself in a label: \. or \DDD. */
function escapeByte(byte: number): string {
  if (byte > 0x20 && byte < 0x7f) return '\\' + String.fromCharCode(byte);
  return '\\' + String(byte).padStart(3, '0');
}

/**
 * Decodes the parts of a query the server needs. Returns a Rejection for
 * anything the chain must not see: dropped (rcode null), NOTIMP or FORMERR.
 */
export function decodeQuery(packet: Buffer): Query | Rejection {
  if (packet.length < HEADER_LENGTH) return { rcode: null, questionEnd: 0 };
  const flags = packet.readUInt16BE(2);
  if (flags & Flag.QR) return { rcode: null, questionEnd: 0 };
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== Opcode.QUERY && opcode !== Opcode.NOTIFY) return { rcode: Rcode.NOTIMP, questionEnd: 0 };
  const qdcount = packet.readUInt16BE(4);
  const ancount = packet.readUInt16BE(6);
  const nscount = packet.readUInt16BE(8);
  const arcount = packet.readUInt16BE(10);
  if (qdcount !== 1 || ancount > 1 || nscount > 1 || arcount > 2) return { rcode: Rcode.FORMERR, questionEnd: 0 };

  let questionEnd = 0;
  try {
    const end = readQuestionName(packet);
    const name = lastQuestionName;
    const spelled = lastSpelledName;
    if (end + 4 > packet.length) throw new Malformed('question runs past the end');
    const qtype = packet.readUInt16BE(end);
    const qclass = packet.readUInt16BE(end + 2);
    questionEnd = end + 4;

    let offset = questionEnd;
    for (let i = 0; i < ancount + nscount; i++) offset = skipRecord(packet, offset);
    let edns: Edns | null = null;
    let optAt = -1;
    for (let i = 0; i < arcount; i++) {
      const nameStart = offset;
      offset = skipName(packet, offset);
      if (offset + 10 > packet.length) throw new Malformed('record runs past the end');
      const type = packet.readUInt16BE(offset);
      const rdlength = packet.readUInt16BE(offset + 8);
      if (type === Type.OPT) {
        // One OPT, owned by the root (RFC 6891 §6.1.1; WIRE-12).
        if (edns !== null || packet[nameStart] !== 0) throw new Malformed('bad OPT record');
        edns = {
          udpSize: packet.readUInt16BE(offset + 2),
          version: packet[offset + 5]!,
          dnssecOk: (packet.readUInt16BE(offset + 6) & 0x8000) !== 0,
        };
        optAt = offset;
      }
      offset += 10 + rdlength;
      if (offset > packet.length) throw new Malformed('rdata runs past the end');
    }
    return { packet, id: packet.readUInt16BE(0), opcode, flags, qname: name, spelledName: spelled, qtype, qclass, questionEnd, edns, optAt };
  } catch (error) {
    if (error instanceof Malformed) return { rcode: Rcode.FORMERR, questionEnd };
    throw error;
  }
}

function skipRecord(packet: Buffer, offset: number): number {
  offset = skipName(packet, offset);
  if (offset + 10 > packet.length) throw new Malformed('record runs past the end');
  offset += 10 + packet.readUInt16BE(offset + 8);
  if (offset > packet.length) throw new Malformed('rdata runs past the end');
  return offset;
}

/** The data of the query's first EDNS option `code`, or null (nsid). Cold: only plugins that look for an option call it. */
export function ednsOption(query: Query, code: number): Buffer | null {
  const { optAt, packet } = query;
  if (optAt < 0) return null;
  let offset = optAt + 10;
  const end = offset + packet.readUInt16BE(optAt + 8);
  while (offset + 4 <= end) {
    const length = packet.readUInt16BE(offset + 2);
    if (offset + 4 + length > end) return null;
    if (packet.readUInt16BE(offset) === code) return packet.subarray(offset + 4, offset + 4 + length);
    offset += 4 + length;
  }
  return null;
}

/**
 * Lowers the client's advertised payload size in place, in the packet too,
 * as CoreDNS's bufsize does to the request's OPT: the reply then advertises
 * and fits the lower size (encodeChainReply) and a forwarded query carries it.
 */
export function lowerUdpSize(query: Query, size: number): void {
  const { edns } = query;
  if (edns === null || edns.udpSize <= size) return;
  edns.udpSize = size;
  query.packet.writeUInt16BE(size, query.optAt + 2);
}

export function isRejection(result: Query | Rejection): result is Rejection {
  return (result as Query).packet === undefined;
}

/**
 * A query packet for `qname`: the server's own questions (ExternalName chase,
 * health and loop probes). Cold path. `edns` adds an OPT record.
 */
export function encodeQuestion(
  id: number,
  flags: number,
  qname: string,
  qtype: number,
  qclass: number,
  edns: { udpSize: number; dnssecOk: boolean } | null = null,
): Buffer {
  const labels = nameToLabels(qname);
  const nameLength = labels.reduce((sum, label) => sum + label.length + 1, 1);
  const packet = Buffer.alloc(HEADER_LENGTH + nameLength + 4 + (edns ? 11 : 0));
  packet.writeUInt16BE(id, 0);
  packet.writeUInt16BE(flags, 2);
  packet.writeUInt16BE(1, 4);
  let offset = HEADER_LENGTH;
  for (const label of labels) {
    packet[offset++] = label.length;
    offset += packet.write(label, offset, 'latin1');
  }
  packet[offset++] = 0;
  packet.writeUInt16BE(qtype, offset);
  packet.writeUInt16BE(qclass, offset + 2);
  offset += 4;
  if (edns) {
    packet.writeUInt16BE(1, 10);
    packet.writeUInt16BE(Type.OPT, offset + 1);
    packet.writeUInt16BE(edns.udpSize, offset + 3);
    packet.writeUInt16BE(edns.dnssecOk ? 0x8000 : 0, offset + 7);
  }
  return packet;
}
