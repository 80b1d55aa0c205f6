// The question and OPT record of a query while rewrite rules change them, and
// the query they make for the rest of the chain. Only built for a query some
// rule applies to; a query no rule touches goes on as it came.

import type { Request } from '../../src/plugin.ts';
import { HEADER_LENGTH, SERVER_UDP_SIZE, Type } from '../../src/wire/constants.ts';
import { decodeQuery, encodeQuestion, isRejection, type Query } from '../../src/wire/query.ts';
import { decodeMessage, decodeQuestion, MessageFormatError, type EdnsOption } from '../../src/wire/records.ts';

/** The query's OPT record as edns0 rules edit it. */
export interface OptRecord {
  udpSize: number;
  /** The OPT TTL field: version and flags (DO); a query has no extended RCODE. */
  ttl: number;
  options: EdnsOption[];
}

export class RewriteState {
  readonly request: Request;
  /** The question name as the rules so far left it, lowercased (CoreDNS's state.Name()). */
  qname: string;
  qtype: number;
  qclass: number;
  private questionChanged = false;
  private nameChanged = false;
  /** undefined until an edns0 rule looks at it. */
  private opt: OptRecord | undefined = undefined;

  constructor(request: Request) {
    this.request = request;
    this.qname = request.query.qname;
    this.qtype = request.query.qtype;
    this.qclass = request.query.qclass;
  }

  setName(name: string): void {
    this.qname = name;
    this.nameChanged = true;
    this.questionChanged = true;
  }
  setType(type: number): void {
    this.qtype = type;
    this.questionChanged = true;
  }
  setClass(qclass: number): void {
    this.qclass = qclass;
    this.questionChanged = true;
  }

  /** True when the query passed on differs from the client's. */
  get changed(): boolean {
    return this.questionChanged || this.opt !== undefined;
  }

  /** The question name as the query carries it: the client's spelling until a rule renames it ({qname}). */
  questionName(): string {
    if (this.nameChanged) return this.qname;
    try {
      return decodeQuestion(this.request.query.packet).question?.name ?? this.qname;
    } catch {
      return this.qname;
    }
  }

  /**
   * The OPT record, with the client's options. A query without one gets one
   * (4096 bytes, DO off) as soon as an edns0 rule looks, whether or not the
   * rule then changes anything, as in CoreDNS.
   */
  edns(): OptRecord {
    if (this.opt !== undefined) return this.opt;
    const { query } = this.request;
    if (query.edns === null) {
      this.opt = { udpSize: SERVER_UDP_SIZE, ttl: 0, options: [] };
    } else {
      let options: EdnsOption[] = [];
      try {
        options = decodeMessage(query.packet).edns?.options.map(({ code, data }) => ({ code, data })) ?? [];
      } catch (error) {
        if (!(error instanceof MessageFormatError)) throw error;
      }
      const flags = query.edns.dnssecOk ? 0x8000 : 0;
      this.opt = { udpSize: query.edns.udpSize, ttl: (query.edns.version << 16) | flags, options };
    }
    return this.opt;
  }

  /** The query for the rest of the chain: the client's packet with this question and OPT record. */
  query(): Query {
    const original = this.request.query;
    if (!this.changed) return original;
    let question: Buffer;
    if (this.nameChanged) {
      question = encodeQuestion(0, 0, this.qname, this.qtype, this.qclass).subarray(HEADER_LENGTH);
    } else {
      // The client's spelling of the name goes on, as CoreDNS passes it.
      question = Buffer.from(original.packet.subarray(HEADER_LENGTH, original.questionEnd));
      question.writeUInt16BE(this.qtype, question.length - 4);
      question.writeUInt16BE(this.qclass, question.length - 2);
    }
    let packet: Buffer;
    if (this.opt === undefined) {
      // Header (counts included) and the records after the question stay as the client sent them.
      packet = Buffer.concat([original.packet.subarray(0, HEADER_LENGTH), question, original.packet.subarray(original.questionEnd)]);
    } else {
      // Rebuilt with the OPT record alone in the additional section.
      const header = Buffer.from(original.packet.subarray(0, HEADER_LENGTH));
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(0, 6);
      header.writeUInt16BE(0, 8);
      header.writeUInt16BE(1, 10);
      packet = Buffer.concat([header, question, encodeOpt(this.opt)]);
    }
    const query = decodeQuery(packet);
    if (isRejection(query)) throw new Error(`rewritten query for ${this.qname} does not decode`);
    return query;
  }
}

function encodeOpt(opt: OptRecord): Buffer {
  const rdlength = opt.options.reduce((sum, option) => sum + 4 + option.data.length, 0);
  const out = Buffer.alloc(11 + rdlength);
  out.writeUInt16BE(Type.OPT, 1);
  out.writeUInt16BE(opt.udpSize, 3);
  out.writeUInt32BE(opt.ttl >>> 0, 5);
  out.writeUInt16BE(rdlength, 9);
  let offset = 11;
  for (const option of opt.options) {
    out.writeUInt16BE(option.code, offset);
    out.writeUInt16BE(option.data.length, offset + 2);
    option.data.copy(out, offset + 4);
    offset += 4 + option.data.length;
  }
  return out;
}
