// nsid: answers the EDNS Name Server Identifier option (RFC 5001) with this
// server's name, as CoreDNS 1.11's nsid plugin does, so a client can tell
// which replica of the cluster DNS answered.

import os from 'node:os';
import { onlyOnce } from '../../src/corefile/setup.ts';
import { definePlugin, whenReplied } from '../../src/plugin.ts';
import { withHeader, type EdnsOption, type Reply } from '../../src/wire/message.ts';
import { ednsOption, type Query } from '../../src/wire/query.ts';

const NSID = 3;

export interface NsidConfig {
  data: string;
}

/**
 * The reply with the NSID option in its OPT. Like CoreDNS, a reply that had no
 * OPT of its own gets one with the DO bit set.
 */
function withNsid(reply: Reply, query: Query, option: EdnsOption): Reply {
  const edns = reply.edns === undefined
    ? { udpSize: query.edns!.udpSize, dnssecOk: true, options: [option] }
    : { ...reply.edns, options: [...reply.edns.options.filter((existing) => existing.code !== NSID), option] };
  return withHeader(reply, { flags: reply.flags, edns });
}

export default definePlugin<NsidConfig>({
  name: 'nsid',
  parse(directives) {
    const { args } = onlyOnce(directives);
    return { data: args.length > 0 ? args.map((token) => token.text).join(' ') : os.hostname() || 'localhost' };
  },
  create({ data }) {
    const option: EdnsOption = { code: NSID, data: Buffer.from(data, 'utf8') };
    return {
      serve(request, next) {
        // Only queries that ask for it (an NSID option, usually empty) get it.
        if (request.query.edns === null || ednsOption(request.query, NSID) === null) return next(request);
        return whenReplied(next(request), (reply) => withNsid(reply, request.query, option));
      },
    };
  },
});
