// Micro-benchmarks of the per-query work, each beside a baseline measured in
// the same run: copying a prepared reply is the least any server must do.
//
//   npm run bench:hotpath

import b from 'benny';
import dnsPacket from 'dns-packet';
import { Class, Rcode, Type } from '../src/wire/constants.ts';
import { encodeReply, type Reply } from '../src/wire/message.ts';
import { decodeQuery, isRejection, type Query } from '../src/wire/query.ts';

const packet = dnsPacket.encode({
  type: 'query',
  id: 1234,
  flags: dnsPacket.RECURSION_DESIRED,
  questions: [{ name: 'web.demo.svc.cluster.local', type: 'A', class: 'IN' }],
  additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as never],
});
const decoded = decodeQuery(packet);
if (isRejection(decoded)) throw new Error('benchmark query rejected');
const query: Query = decoded;

const reply: Reply = {
  rcode: Rcode.NOERROR,
  flags: 0x0400,
  answer: [{ name: query.qname, type: Type.A, class: Class.IN, ttl: 30, data: '10.96.0.10' }],
  authority: [],
  additional: [],
};
const prepared = encodeReply(query, reply, 1232);

await b.suite(
  'hot path, per query',
  b.add('baseline: copy a prepared reply and set the ID', () => {
    const out = Buffer.allocUnsafe(prepared.length);
    prepared.copy(out);
    out.writeUInt16BE(query.id, 0);
  }),
  b.add('decodeQuery (header, question, OPT)', () => {
    decodeQuery(packet);
  }),
  b.add('encodeReply of a precompiled answer', () => {
    encodeReply(query, reply, 1232);
  }),
  b.add('decodeQuery + encodeReply', () => {
    encodeReply(decodeQuery(packet) as Query, reply, 1232);
  }),
  b.add('dns-packet decode (for comparison)', () => {
    dnsPacket.decode(packet);
  }),
  b.cycle(),
  b.complete(),
);
