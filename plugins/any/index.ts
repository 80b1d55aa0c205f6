// any: answers ANY questions with the RFC 8482 HINFO record instead of
// every record of the name, as CoreDNS 1.11's any plugin does.

import { definePlugin } from '../../src/plugin.ts';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../../src/wire/message.ts';

const none: readonly ResourceRecord[] = [];
const HINFO_DATA = Object.freeze(['ANY obsoleted', 'See RFC 8482']);

/** NOERROR without AA, one HINFO owned by the question, TTL 8482 (CoreDNS's values). */
export function rfc8482Reply(qname: string): Reply {
  return {
    rcode: Rcode.NOERROR,
    flags: 0,
    answer: [{ name: qname, type: Type.HINFO, class: Class.IN, ttl: 8482, data: HINFO_DATA }],
    authority: none,
    additional: none,
  };
}

export default definePlugin({
  name: 'any',
  // CoreDNS 1.11.3 reads neither arguments nor a block here, and rejects none.
  parse() {
    return {};
  },
  create() {
    return {
      serve(request, next) {
        return request.query.qtype === Type.ANY ? rfc8482Reply(request.query.qname) : next(request);
      },
    };
  },
});
