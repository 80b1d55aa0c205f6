// Response rewrites: what the reply goes through on its way back, in the
// order the rules that chose them applied, as CoreDNS's ResponseReverter runs
// them (every rule on each record of the authority, answer and additional
// sections). Replies are shared (caches, precompiled answers), so a rewritten
// reply is a new one with new records; the reply it came from is not touched.

import { Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply, type MxData, type Reply, type ResourceRecord, type SoaData, type SrvData } from '../../src/wire/message.ts';

export type StringRewriter = (name: string) => string;

/** `answer name|value REGEX REPLACEMENT`: {n} groups of the first match; names that do not match stay. */
export function regexRewriter(pattern: RegExp, replacement: string): StringRewriter {
  return (name) => {
    const groups = pattern.exec(name);
    return groups === null ? name : substitute(replacement, groups);
  };
}

/** {0}, {1}, ... of `replacement` filled from a match, in index order as CoreDNS substitutes them. */
export function substitute(replacement: string, groups: RegExpExecArray): string {
  let result = replacement;
  for (let i = 0; i < groups.length; i++) result = result.replaceAll(`{${i}}`, groups[i] ?? '');
  return result;
}

/** `answer auto`: `from` and the names under it map to `to`. */
export function remapRewriter(from: string, to: string): StringRewriter {
  return (name) => {
    if (name === from) return to;
    if (name.endsWith(`.${from}`)) return name.slice(0, name.length - from.length) + to;
    return name;
  };
}

export function suffixRewriter(suffix: string, replacement: string): StringRewriter {
  return (name) => (name.endsWith(suffix) ? name.slice(0, name.length - suffix.length) + replacement : name);
}

export interface ResponseRule {
  /** The record as the rule leaves it: the same object when the rule does not change it. */
  record?(record: ResourceRecord): ResourceRecord;
  rcode?(rcode: number): number;
}

export class NameRewrite implements ResponseRule {
  private readonly rewrite: StringRewriter;
  constructor(rewrite: StringRewriter) {
    this.rewrite = rewrite;
  }
  record(record: ResourceRecord): ResourceRecord {
    const name = this.rewrite(record.name);
    return name === record.name ? record : { ...record, name };
  }
}

/** The name a record points at, for the types CoreDNS rewrites (the SOA's is its primary server). */
export class ValueRewrite implements ResponseRule {
  private readonly rewrite: StringRewriter;
  constructor(rewrite: StringRewriter) {
    this.rewrite = rewrite;
  }
  record(record: ResourceRecord): ResourceRecord {
    const { data } = record;
    if (Buffer.isBuffer(data)) return record;
    switch (record.type) {
      case Type.CNAME:
      case Type.NS:
      case Type.DNAME: {
        const target = this.rewrite(data as string);
        return target === data ? record : { ...record, data: target };
      }
      case Type.SRV: {
        const srv = data as SrvData;
        const target = this.rewrite(srv.target);
        return target === srv.target ? record : { ...record, data: { ...srv, target } };
      }
      case Type.MX: {
        const mx = data as MxData;
        const exchange = this.rewrite(mx.exchange);
        return exchange === mx.exchange ? record : { ...record, data: { ...mx, exchange } };
      }
      case Type.SOA: {
        const soa = data as SoaData;
        const mname = this.rewrite(soa.mname);
        return mname === soa.mname ? record : { ...record, data: { ...soa, mname } };
      }
      default:
        return record;
    }
  }
}

/** TTLs below `min` are raised to it, above `max` lowered to it (one value: min = max). */
export class TtlRewrite implements ResponseRule {
  private readonly min: number;
  private readonly max: number;
  constructor(min: number, max: number) {
    this.min = min;
    this.max = max;
  }
  record(record: ResourceRecord): ResourceRecord {
    if (record.ttl < this.min) return { ...record, ttl: this.min };
    if (record.ttl > this.max) return { ...record, ttl: this.max };
    return record;
  }
}

export class RcodeRewrite implements ResponseRule {
  private readonly from: number;
  private readonly to: number;
  constructor(from: number, to: number) {
    this.from = from;
    this.to = to;
  }
  rcode(rcode: number): number {
    return rcode === this.from ? this.to : rcode;
  }
}

/** RCODEs with which a CoreDNS plugin returns without writing a reply (plugin.ClientWrite is false). */
function unwritten(reply: Reply): boolean {
  if (reply.error === undefined) return false;
  const { rcode } = reply;
  return rcode === Rcode.SERVFAIL || rcode === Rcode.REFUSED || rcode === Rcode.FORMERR || rcode === Rcode.NOTIMP;
}

/**
 * The reply as the client gets it after the response rules. `stopped`: a
 * `stop` rule applied, so CoreDNS writes failures itself through its
 * reverter; after `continue` rules only, failures go out untouched. `edns`:
 * the query passed on has an OPT record, which CoreDNS's reverter counts
 * as a record of the reply when the reply has none of its own.
 */
export function rewriteReply(reply: Reply, rules: readonly ResponseRule[], stopped: boolean, edns: boolean): Reply {
  if (unwritten(reply)) {
    if (!stopped) return reply;
    // CoreDNS writes an empty reply with the failure's RCODE; rcode rules see it once if it has an OPT.
    const rcode = rewriteRcode(reply.rcode, rules, edns ? 1 : 0);
    return rcode === reply.rcode ? reply : emptyReply(rcode, 0, reply.error);
  }
  const ttl = reply.derived?.ttl ?? null;
  const section = (records: readonly ResourceRecord[]): ResourceRecord[] =>
    records.map((record) => {
      let out = ttl === null ? record : { ...record, ttl };
      for (const rule of rules) if (rule.record) out = rule.record(out);
      return out;
    });
  const count = reply.answer.length + reply.authority.length + reply.additional.length;
  // A reply without records gets its RCODE rewritten only if it has an OPT record in CoreDNS: one
  // relayed from an upstream does (failures, mostly), one a plugin wrote (NODATA) does not.
  const times = count > 0 ? count : edns && reply.rcode !== Rcode.NOERROR ? 1 : 0;
  const out: Reply = {
    rcode: rewriteRcode(reply.rcode, rules, times),
    flags: reply.flags,
    answer: section(reply.answer),
    authority: section(reply.authority),
    additional: section(reply.additional),
  };
  if (reply.error !== undefined) out.error = reply.error;
  return out;
}

/** CoreDNS runs every rule once per record, so rcode rules apply as many times in turn. */
function rewriteRcode(rcode: number, rules: readonly ResponseRule[], times: number): number {
  for (let i = 0; i < times; i++) {
    const before = rcode;
    for (const rule of rules) if (rule.rcode) rcode = rule.rcode(rcode);
    // A round that changes nothing settles it: each round is the same function of the RCODE.
    if (rcode === before) break;
  }
  return rcode;
}
