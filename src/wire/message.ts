// Replies as plugins build them, and their encoding to wire form.
//
// Encoding is hand-written for two reasons dns-packet cannot serve: the body
// (everything after the question) is encoded once per reply and reused for
// every query with the same question spelling, with answer and authority
// owners equal to the (lowercased) question pointing at it so the client's
// letter case is kept (WIRE-7, K8S-2); and truncation is a cut at a record
// boundary of that body (WIRE-13).
//
// Other names are compressed only against byte-identical suffixes, as CoreDNS
// (miekg/dns) does: a lowercase name under a mixed-case question keeps its own
// spelling, and a plugin that wants the client's spelling writes it so.

import { isIP } from 'node:net';
import * as ip from '@leichtgewicht/ip-codec';
import { Flag, HEADER_LENGTH, Rcode, TCP_MAX_SIZE, Type, UDP_MIN_SIZE } from './constants.ts';
import { nameToLabels } from './names.ts';
import type { Query } from './query.ts';

export interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}
export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}
export interface MxData {
  preference: number;
  exchange: string;
}

/**
 * A: dotted IPv4; AAAA: IPv6 text; CNAME/NS/PTR/DNAME: a name; TXT: strings;
 * SRV/SOA/MX: their fields; anything else: raw rdata without names.
 */
export type RecordData = string | readonly string[] | SrvData | SoaData | MxData | Buffer;

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RecordData;
}

/** Header bits a reply may set; QR, opcode, RD and CD come from the query. */
export const ReplyFlag = { AA: Flag.AA, TC: Flag.TC, RA: Flag.RA, AD: Flag.AD } as const;

/**
 * A reply as plugins build it. Replies may be shared and carry memos of their
 * encoding (`encoded`, `retimed`): build a new reply field by field rather
 * than spreading one (`{ ...reply, answer }` would carry a stale memo).
 */
export interface Reply {
  rcode: number;
  /** OR of ReplyFlag bits. */
  flags: number;
  answer: readonly ResourceRecord[];
  authority: readonly ResourceRecord[];
  additional: readonly ResourceRecord[];
  /**
   * An OPT record a plugin wrote (acl's extended error, nsid): sent even when
   * the query had none. With a client OPT, the client's payload size is
   * echoed and its DO bit added, as CoreDNS does with a plugin's OPT.
   */
  edns?: ReplyEdns;
  /** RD as a plugin set it (header); absent: the query's. */
  rd?: boolean;
  /** No reply is sent at all (acl drop). */
  silent?: boolean;
  /** Why the chain failed, for the errors plugin; the client sees only the rcode. */
  error?: Error;
  /** Memo of the encoded body for one question; see encodeReply. */
  encoded?: EncodedBody;
  /**
   * Names written in full, none compressed: CoreDNS's template plugin sends
   * its replies so, owner names in the case the template wrote them.
   */
  uncompressed?: boolean;
  /**
   * Set when the records are `base`'s, possibly reordered and retimed: the
   * encoder copies base's memoised body record by record and rewrites the
   * TTLs instead of encoding the records again. The cache sets it on hits
   * (same records, remaining TTL) and loadbalance on shuffled replies.
   */
  derived?: Derivation;
}

export interface ReplyEdns {
  /** Payload size advertised when the query had no OPT. */
  readonly udpSize: number;
  readonly dnssecOk: boolean;
  readonly options: readonly EdnsOption[];
}

export interface EdnsOption {
  readonly code: number;
  readonly data: Uint8Array;
}

/** How a reply's records come from its base's (Reply.derived). */
export interface Derivation {
  readonly base: Reply;
  /** Every record's TTL, whatever its own `ttl` field says; null: the records' own. */
  readonly ttl: number | null;
  /**
   * This reply's i-th record (answer, then authority, then additional) is
   * base's `order[i]`-th; each section keeps its size. Null: base's order.
   */
  readonly order: readonly number[] | null;
}

export interface EncodedBody {
  /** The question as spelled (Query.spelledName) the body was encoded for. */
  qname: string;
  bytes: Buffer;
  /** Offset in `bytes` after each record, in section order: truncation cuts here. */
  recordEnds: number[];
  /** Offset in `bytes` of each record's TTL field, in section order (Reply.derived). */
  ttlAt: number[];
  /**
   * For each record, the highest index of a record whose bytes its
   * compression pointers reach (itself included), or -1 when they reach
   * only the question: a record can move only while those stay in place.
   */
  anchors: number[];
}

const noRecords: readonly ResourceRecord[] = Object.freeze([]);
const noOptions: readonly EdnsOption[] = Object.freeze([]);

/** A reply with no records: server-written errors (AA=0, RA=0, WIRE-8). */
export function emptyReply(rcode: number, flags = 0, error?: Error): Reply {
  return error ? { rcode, flags, answer: noRecords, authority: noRecords, additional: noRecords, error }
    : { rcode, flags, answer: noRecords, authority: noRecords, additional: noRecords };
}

/**
 * `reply` with another header or OPT and the same records (header, nsid). It
 * derives from `reply`, so the encoder copies the body already encoded for it.
 */
export function withHeader(reply: Reply, changes: Pick<Reply, 'flags' | 'rd' | 'edns'>): Reply {
  const copy: Reply = {
    rcode: reply.rcode,
    flags: changes.flags,
    answer: reply.answer,
    authority: reply.authority,
    additional: reply.additional,
    derived: reply.derived ?? { base: reply, ttl: null, order: null },
  };
  const rd = 'rd' in changes ? changes.rd : reply.rd;
  const edns = 'edns' in changes ? changes.edns : reply.edns;
  if (rd !== undefined) copy.rd = rd;
  if (edns !== undefined) copy.edns = edns;
  if (reply.silent !== undefined) copy.silent = reply.silent;
  if (reply.error !== undefined) copy.error = reply.error;
  return copy;
}

const refused = Object.freeze(emptyReply(Rcode.REFUSED));
const servfail = Object.freeze(emptyReply(Rcode.SERVFAIL));
/** REFUSED from a plugin that would have waited on I/O while the server is at its in-flight cap (Request.overloaded). */
const shed = Object.freeze(emptyReply(Rcode.REFUSED));
/**
 * An empty truncated answer (TC): the client asks again over TCP at once. A
 * listener handing its port over answers so what would wait on I/O (DnsServer.close).
 */
const retryOverTcp = Object.freeze(emptyReply(Rcode.NOERROR, Flag.TC));
/** Shared replies for the server's own answers; never mutated. */
export const ServerReply = { REFUSED: refused, SERVFAIL: servfail, SHED: shed, RETRY_OVER_TCP: retryOverTcp } as const;

/**
 * Replies that send nothing back: rrl drops a response or a request this way.
 * The chain sees NOERROR and, for the errors plugin, why (as CoreDNS's rrl
 * returns success and an error without writing).
 */
export const SilentReply = {
  RESPONSE_DROPPED: Object.freeze({ ...emptyReply(Rcode.NOERROR, 0, new Error('response rate exceeded the limit')), silent: true }),
  REQUEST_DROPPED: Object.freeze({ ...emptyReply(Rcode.NOERROR, 0, new Error('query rate exceeded the limit')), silent: true }),
} as const;

class BodyWriter {
  buffer = Buffer.allocUnsafe(512);
  length = 0;
  /** Name suffix, as spelled → offset in the whole message. */
  private readonly names = new Map<string, number>();
  /** The lowercased question: plugins write it as the owner meaning "the name asked". */
  private readonly qname: string;
  private readonly base: number;
  /** Offset in the body where each record written so far starts. */
  readonly recordStarts: number[] = [];
  /** See EncodedBody.anchors; the last entry is the record being written. */
  readonly anchors: number[] = [];

  private readonly compress: boolean;

  constructor(spelledName: string, qname: string, compress = true) {
    this.compress = compress;
    this.qname = qname;
    // The question starts at offset 12; its suffixes can be pointed at.
    const labels = nameToLabels(spelledName);
    let offset = HEADER_LENGTH;
    for (let i = 0; i < labels.length; i++) {
      this.names.set(labels.slice(i).join('.'), offset);
      offset += labels[i]!.length + 1;
    }
    this.base = offset + 1 + 4;
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }
  u16(value: number): void {
    this.ensure(2);
    this.buffer.writeUInt16BE(value & 0xffff, this.length);
    this.length += 2;
  }
  u32(value: number): void {
    this.ensure(4);
    this.buffer.writeUInt32BE(value >>> 0, this.length);
    this.length += 4;
  }
  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
  }

  /**
   * Writes `name`; `asked`: it is an answer or authority owner, where the
   * lowercased question stands for the name as the client asked it.
   */
  name(name: string, compress: boolean, asked = false): void {
    if (asked && name === this.qname && this.compress) {
      this.u16(0xc000 | HEADER_LENGTH);
      return;
    }
    const labels = nameToLabels(name);
    for (let i = 0; i < labels.length; i++) {
      if (compress && this.compress) {
        const suffix = labels.slice(i).join('.');
        const target = this.names.get(suffix);
        if (target !== undefined) {
          this.u16(0xc000 | target);
          if (target >= this.base) this.anchorAt(target - this.base);
          return;
        }
        const here = this.base + this.length;
        if (here < 0x3fff) this.names.set(suffix, here);
      }
      const label = labels[i]!;
      if (label.length > 63) throw new RangeError(`label longer than 63 bytes in ${name}`);
      this.u8(label.length);
      this.ensure(label.length);
      this.length += this.buffer.write(label, this.length, 'latin1');
    }
    this.u8(0);
  }

  /** Notes that the current record points at body offset `offset`. */
  private anchorAt(offset: number): void {
    let record = this.recordStarts.length - 1;
    while (this.recordStarts[record]! > offset) record--;
    const current = this.anchors.length - 1;
    if (record > this.anchors[current]!) this.anchors[current] = record;
  }

  characterString(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > 255) throw new RangeError('character-string longer than 255 bytes');
    this.u8(bytes.length);
    this.bytes(bytes);
  }

  /**
   * Writes one record; returns the offset of its TTL field. Additional
   * owners are never "the question": they are names from data (SRV targets),
   * and CoreDNS writes them as built, even when equal to the question.
   */
  record(record: ResourceRecord, additional: boolean): number {
    this.recordStarts.push(this.length);
    this.anchors.push(-1);
    this.name(record.name, true, !additional);
    this.u16(record.type);
    this.u16(record.class);
    const ttlAt = this.length;
    this.u32(record.ttl);
    const lengthAt = this.length;
    this.u16(0);
    this.rdata(record);
    this.buffer.writeUInt16BE(this.length - lengthAt - 2, lengthAt);
    return ttlAt;
  }

  private rdata({ type, data }: ResourceRecord): void {
    if (Buffer.isBuffer(data)) return this.bytes(data);
    switch (type) {
      case Type.A:
      case Type.AAAA:
        return this.bytes(addressBytes(data as string));
      case Type.CNAME:
      case Type.NS:
      case Type.PTR:
        return this.name(data as string, true);
      case Type.DNAME: // RFC 6672 §2.5: the target is never compressed
        return this.name(data as string, false);
      case Type.SRV: {
        const srv = data as SrvData;
        this.u16(srv.priority);
        this.u16(srv.weight);
        this.u16(srv.port);
        return this.name(srv.target, false); // RFC 2782: no compression in SRV
      }
      case Type.MX: {
        const mx = data as MxData;
        this.u16(mx.preference);
        return this.name(mx.exchange, true);
      }
      case Type.SOA: {
        const soa = data as SoaData;
        this.name(soa.mname, true);
        this.name(soa.rname, true);
        for (const value of [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum]) this.u32(value);
        return;
      }
      case Type.TXT:
      case Type.HINFO:
        for (const text of data as readonly string[]) this.characterString(text);
        return;
      default:
        throw new TypeError(`no encoder for type ${type} with structured data`);
    }
  }
}

/** IPv4 or IPv6 text to network bytes. */
export function addressBytes(address: string): Uint8Array {
  if (isIP(address) === 0) throw new TypeError(`not an IP address: ${address}`);
  return ip.encode(address);
}

/**
 * Bodies are kept (memoised replies, cache entries) while the buffers around
 * them in Node's shared pool are replies already sent: a body sliced from the
 * pool kept a whole pool chunk alive (31 MiB of them under overload). So
 * bodies are copied into slabs of their own, packed with other kept bodies;
 * one ArrayBuffer per body instead made garbage collection the tail latency
 * (p99 0.9 ms against 0.4 ms at 10k qps, bench:load).
 */
const SLAB_SIZE = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabUsed = 0;

function keepBytes(source: Buffer, length: number): Buffer {
  if (length > SLAB_SIZE / 16) {
    const own = Buffer.allocUnsafeSlow(length);
    source.copy(own, 0, 0, length);
    return own;
  }
  if (slabUsed + length > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const bytes = slab.subarray(slabUsed, slabUsed + length);
  source.copy(bytes, 0, 0, length);
  slabUsed += length;
  return bytes;
}

function encodeBody(reply: Reply, spelledName: string, qname: string): EncodedBody {
  const writer = new BodyWriter(spelledName, qname, reply.uncompressed !== true);

  const recordEnds: number[] = [];
  const ttlAt: number[] = [];
  for (const section of [reply.answer, reply.authority, reply.additional]) {
    const additional = section === reply.additional;
    for (const record of section) {
      ttlAt.push(writer.record(record, additional));
      recordEnds.push(writer.length);
    }
  }
  return { qname: spelledName, bytes: keepBytes(writer.buffer, writer.length), recordEnds, ttlAt, anchors: writer.anchors };
}

/**
 * The encoded body of `reply` for the question spelled `spelledName`
 * (lowercased: `qname`), memoised on the reply (precompiled answers). For a
 * derived reply, the body of its base: the records in base's order with
 * base's TTLs, which encodeReply reorders and rewrites.
 */
export function bodyFor(reply: Reply, spelledName: string, qname = spelledName): EncodedBody {
  if (reply.derived !== undefined) reply = reply.derived.base;
  const memo = reply.encoded;
  if (memo !== undefined && memo.qname === spelledName) return memo;
  const body = encodeBody(reply, spelledName, qname);
  if (Object.isExtensible(reply)) reply.encoded = body;
  return body;
}

/** A body and the order its records go out in (null: as they are). */
interface Layout {
  body: EncodedBody;
  order: readonly number[] | null;
}

/**
 * Whether base's records can go out in `order` by copying their bytes: each
 * record whose pointers reach into the body needs every record up to the
 * one it reaches to keep its place, so the offsets it points at hold.
 */
function relocatable(body: EncodedBody, order: readonly number[]): boolean {
  let unmoved = 0;
  while (unmoved < order.length && order[unmoved] === unmoved) unmoved++;
  for (const anchor of body.anchors) if (anchor >= unmoved) return false;
  return true;
}

function layoutOf(reply: Reply, query: Query): Layout {
  const body = bodyFor(reply, query.spelledName, query.qname);
  const order = reply.derived?.order ?? null;
  if (order === null || relocatable(body, order)) return { body, order };
  // Rare (names compressed against a record that moves): encode this reply's own order.
  return { body: encodeBody(reply, query.spelledName, query.qname), order: null };
}

const OPT_LENGTH = 11;

/** Bytes of the reply's OPT record: none without EDNS on either side. */
function optLengthOf(query: Query, reply: Reply): number {
  if (reply.edns === undefined) return query.edns ? OPT_LENGTH : 0;
  let length = OPT_LENGTH;
  for (const option of reply.edns.options) length += 4 + option.data.length;
  return length;
}

/** Length of `reply` to `query` on the wire before any truncation (log {rsize}, response size metrics). */
export function encodedLength(query: Query, reply: Reply): number {
  return query.questionEnd + layoutOf(reply, query).body.bytes.length + optLengthOf(query, reply);
}

function recordLength(body: EncodedBody, index: number): number {
  return body.recordEnds[index]! - (index === 0 ? 0 : body.recordEnds[index - 1]!);
}

/**
 * The reply to `query` on the wire, cut to `sizeLimit` bytes at a record
 * boundary with TC set when anything was dropped (WIRE-11, WIRE-13). The OPT
 * record echoes the client's payload size and DO bit (WIRE-10).
 */
export function encodeReply(query: Query, reply: Reply, sizeLimit: number): Buffer {
  const { body, order } = layoutOf(reply, query);
  const questionLength = query.questionEnd - HEADER_LENGTH;
  const optLength = optLengthOf(query, reply);
  const fixed = HEADER_LENGTH + questionLength + optLength;
  const total = reply.answer.length + reply.authority.length + reply.additional.length;
  let kept = total;
  let bodyLength = body.bytes.length;
  if (fixed + bodyLength > sizeLimit) {
    kept = 0;
    bodyLength = 0;
    while (kept < total) {
      const length = recordLength(body, order === null ? kept : order[kept]!);
      if (fixed + bodyLength + length > sizeLimit) break;
      bodyLength += length;
      kept++;
    }
  }
  const out = Buffer.allocUnsafe(fixed + bodyLength);
  const truncated = kept < total ? Flag.TC : 0;
  let requestBits = query.flags & (Flag.RD | Flag.CD | 0x7800); // RD, CD, opcode
  if (reply.rd !== undefined) requestBits = reply.rd ? requestBits | Flag.RD : requestBits & ~Flag.RD;
  put16(out, 0, query.id);
  put16(out, 2, Flag.QR | requestBits | (reply.flags & (Flag.AA | Flag.TC | Flag.RA | Flag.AD)) | truncated | (reply.rcode & 0xf));
  const answers = Math.min(kept, reply.answer.length);
  const authorities = Math.min(kept - answers, reply.authority.length);
  put16(out, 4, 1);
  put16(out, 6, answers);
  put16(out, 8, authorities);
  put16(out, 10, kept - answers - authorities + (optLength ? 1 : 0));
  copyBytes(query.packet, HEADER_LENGTH, query.questionEnd, out, HEADER_LENGTH);
  const bodyStart = HEADER_LENGTH + questionLength;
  const ttl = reply.derived?.ttl ?? null;
  if (order === null) {
    copyBytes(body.bytes, 0, bodyLength, out, bodyStart);
    if (ttl !== null) for (let i = 0; i < kept; i++) put32(out, bodyStart + body.ttlAt[i]!, ttl);
  } else {
    let at = bodyStart;
    for (let i = 0; i < kept; i++) {
      const source = order[i]!;
      const start = source === 0 ? 0 : body.recordEnds[source - 1]!;
      const end = body.recordEnds[source]!;
      copyBytes(body.bytes, start, end, out, at);
      if (ttl !== null) put32(out, at + body.ttlAt[source]! - start, ttl);
      at += end - start;
    }
  }
  if (optLength > 0) {
    const edns = reply.edns;
    const udpSize = query.edns?.udpSize ?? edns!.udpSize;
    const dnssecOk = (query.edns?.dnssecOk ?? false) || (edns?.dnssecOk ?? false);
    writeOpt(out, fixed - optLength + bodyLength, udpSize, reply.rcode >> 4, dnssecOk, edns?.options);
  }
  return out;
}

/**
 * The chain's reply to `query` on the wire, or null when a plugin chose
 * silence (Reply.silent). The UDP size limit (WIRE-11) is read now, after
 * the chain ran, because a plugin may have lowered it (bufsize).
 */
export function encodeChainReply(query: Query, reply: Reply, transport: 'udp' | 'tcp'): Buffer | null {
  if (reply.silent === true) return null;
  const sizeLimit = transport === 'tcp' ? TCP_MAX_SIZE : query.edns ? Math.max(query.edns.udpSize, UDP_MIN_SIZE) : UDP_MIN_SIZE;
  return encodeReply(query, reply, sizeLimit);
}

// Header and TTL fields of every reply, at offsets inside the buffer just
// allocated for it: Buffer's writeUInt16BE/32BE validate value and offset on
// each call, which showed in profiles of this path.
function put16(out: Buffer, at: number, value: number): void {
  out[at] = value >>> 8;
  out[at + 1] = value;
}

function put32(out: Buffer, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

/**
 * source[start..end) to target at `at`. Questions and records are short: a
 * plain loop beats Buffer.copy there, which builds a view of the source per
 * call (measured under load: ~1% of the CPU on its own).
 */
function copyBytes(source: Buffer, start: number, end: number, target: Buffer, at: number): void {
  if (end - start > 256) {
    source.copy(target, at, start, end);
    return;
  }
  for (let from = start; from < end; from++) target[at++] = source[from]!;
}

function writeOpt(
  out: Buffer, offset: number, udpSize: number, extendedRcode: number, dnssecOk: boolean, options: readonly EdnsOption[] = noOptions,
): void {
  out[offset] = 0; // root owner
  out.writeUInt16BE(Type.OPT, offset + 1);
  out.writeUInt16BE(udpSize, offset + 3);
  out[offset + 5] = extendedRcode;
  out[offset + 6] = 0; // version 0
  out.writeUInt16BE(dnssecOk ? 0x8000 : 0, offset + 7);
  // The client's options are not echoed (WIRE-10 allows it); a plugin's are written.
  let at = offset + 11;
  for (const option of options) {
    out.writeUInt16BE(option.code, at);
    out.writeUInt16BE(option.data.length, at + 2);
    out.set(option.data, at + 4);
    at += 4 + option.data.length;
  }
  out.writeUInt16BE(at - offset - 11, offset + 9);
}

/**
 * Reply to a packet the chain never saw (WIRE-2): same ID, opcode, RD, CD;
 * no records and no OPT; the question only if it was parsed.
 */
export function encodeRejection(packet: Buffer, rcode: number, questionEnd: number): Buffer {
  const hasQuestion = questionEnd > HEADER_LENGTH;
  const out = Buffer.alloc(hasQuestion ? questionEnd : HEADER_LENGTH);
  const flags = packet.readUInt16BE(2);
  const opcode = rcode === Rcode.FORMERR ? 0 : flags & 0x7800;
  out.writeUInt16BE(packet.readUInt16BE(0), 0);
  // WIRE-2: RD, CD, AD, TC, RA copied; Z cleared; AA=0.
  out.writeUInt16BE(Flag.QR | opcode | (flags & (Flag.RD | Flag.CD | Flag.AD | Flag.TC | Flag.RA)) | rcode, 2);
  if (hasQuestion) {
    out.writeUInt16BE(1, 4);
    packet.copy(out, HEADER_LENGTH, HEADER_LENGTH, questionEnd);
  }
  return out;
}
