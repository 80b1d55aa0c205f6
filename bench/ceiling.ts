// The ceiling: the least a Node.js DNS server can do per query. It answers
// every query with one precomputed A record, copying only the ID and the
// question. No decoding, no lookup; whatever clusterdns does beyond this is
// its cost. It sends the way clusterdns does (replyLookup: no per-datagram
// address check, no callback), so the comparison is of the work per query.
//
//   node bench/ceiling.ts PORT

import dgram from 'node:dgram';
import { replyLookup } from '../src/reply-lookup.ts';

const port = Number(process.argv[2] ?? 0);
const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, lookup: replyLookup() });
// Answer: owner = pointer to the question, A IN, TTL 30, 10.96.0.10.
const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 10]);

socket.on('message', (query, remote) => {
  // The question ends 4 bytes after the name's terminating zero.
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end]! + 1;
  end += 5;
  const reply = Buffer.allocUnsafe(end + answer.length);
  query.copy(reply, 0, 0, end);
  reply[2] = 0x84 | (query[2]! & 0x01); // QR, AA, RD copied
  reply[3] = 0;
  reply.writeUInt16BE(1, 6); // ANCOUNT
  reply.writeUInt32BE(0, 8); // NSCOUNT, ARCOUNT (the query's OPT is not echoed)
  answer.copy(reply, end);
  socket.send(reply, remote.port, remote.address);
});
socket.bind(port, '127.0.0.1', () => process.stdout.write(`listening ${socket.address().port}\n`));
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
