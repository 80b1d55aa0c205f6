// minimal: drops the authority and additional sections from positive
// answers, as CoreDNS 1.11's minimal plugin does, to keep replies small.
// Negative answers (NXDOMAIN, NODATA with an SOA), delegations, errors and
// zone transfers are left alone.

import { setupError, wrongArgCount } from '../../src/corefile/setup.ts';
import { definePlugin, whenReplied } from '../../src/plugin.ts';
import { Opcode, Rcode, Type } from '../../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../../src/wire/message.ts';
import type { Query } from '../../src/wire/query.ts';

const none: readonly ResourceRecord[] = [];

/**
 * CoreDNS's response typing, the part minimal acts on: a NOERROR reply is
 * "no error" when it has answers, or when its authority holds neither an SOA
 * (NODATA) nor NS records (a delegation).
 */
function isPlainAnswer(query: Query, reply: Reply): boolean {
  if (reply.rcode !== Rcode.NOERROR) return false;
  if (query.opcode !== Opcode.QUERY || query.qtype === Type.AXFR || query.qtype === Type.IXFR) return false;
  if (reply.answer.length > 0) return true;
  return !reply.authority.some((record) => record.type === Type.SOA || record.type === Type.NS);
}

/** Stripped copies, one per reply: precompiled and cached replies keep one encoding. */
const strippedOf = new WeakMap<Reply, Reply>();

function stripped(reply: Reply): Reply {
  if (reply.authority.length === 0 && reply.additional.length === 0 && reply.edns === undefined) return reply;
  let copy = strippedOf.get(reply);
  if (copy !== undefined) return copy;
  copy = { rcode: reply.rcode, flags: reply.flags, answer: reply.answer, authority: none, additional: none };
  if (reply.rd !== undefined) copy.rd = reply.rd;
  const derived = reply.derived;
  if (derived !== undefined) {
    // Same answer records as the base's, retimed or reordered: each section keeps its size, so the
    // answer's order is the first entries of the base's.
    const order = derived.order === null ? null : derived.order.slice(0, reply.answer.length);
    copy.derived = { base: stripped(derived.base), ttl: derived.ttl, order };
  } else {
    strippedOf.set(reply, copy);
  }
  return copy;
}

export default definePlugin({
  name: 'minimal',
  parse(directives) {
    // CoreDNS 1.11.3's words; a repeated line is accepted.
    for (const directive of directives) {
      if (directive.args.length > 0) throw wrongArgCount(directive.args[0]!);
      if (directive.block !== null) throw setupError(directive.name, `Unexpected token '{', expecting argument`);
    }
    return {};
  },
  create() {
    return {
      serve(request, next) {
        return whenReplied(next(request), (reply) => (isPlainAnswer(request.query, reply) ? stripped(reply) : reply));
      },
    };
  },
});
