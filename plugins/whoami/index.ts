// whoami: answers every query with the client's address and port (WHOAMI-1).

import { expectArgs, expectNoBlock } from '../../src/corefile/setup.ts';
import { definePlugin, type Request } from '../../src/plugin.ts';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import { ReplyFlag, type Reply, type ResourceRecord } from '../../src/wire/message.ts';
import { longestMatchingZone } from '../../src/wire/names.ts';

const noRecords: readonly ResourceRecord[] = [];

export function whoamiReply(request: Request): Reply {
  // Owned by the name as the client spelled it, as CoreDNS writes them (WIRE-7).
  const qname = request.query.spelledName;
  const address = request.remoteAddress;
  const prefix = request.transport === 'tcp' ? '_tcp.' : '_udp.';
  return {
    rcode: Rcode.NOERROR,
    flags: ReplyFlag.AA,
    answer: noRecords,
    authority: noRecords,
    additional: [
      { name: qname, type: address.includes(':') ? Type.AAAA : Type.A, class: Class.IN, ttl: 0, data: address },
      {
        name: prefix + (qname === '.' ? '' : qname),
        type: Type.SRV,
        class: Class.IN,
        ttl: 0,
        data: { priority: 0, weight: 0, port: request.remotePort, target: '.' },
      },
    ],
  };
}

export default definePlugin({
  name: 'whoami',
  parse(directives) {
    for (const directive of directives) {
      expectArgs(directive, 0);
      expectNoBlock(directive);
    }
    return {};
  },
  create(_config, block) {
    const zones = block.zones;
    return {
      serve(request, next) {
        if (longestMatchingZone(request.query.qname, zones) === null) return next(request);
        return whoamiReply(request);
      },
    };
  },
});
