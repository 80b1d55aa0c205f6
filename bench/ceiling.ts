// The ceiling: the least a Node.js DNS server can do per query. It answers
// every query with one precomputed A record, copying only the ID and the
// question. No decoding, no lookup; whatever clusterdns does beyond this is
// its cost. It reads and sends through clusterdns's own UDP listener
// (src/udp-listener.ts: the native one where built, node:dgram with
// CLUSTERDNS_UDP=dgram), so the comparison is of the work per query.
//
//   node bench/ceiling.ts PORT

import { bindUdpListener } from '../src/udp-listener.ts';

const port = Number(process.argv[2] ?? 0);
const socket = await bindUdpListener('127.0.0.1', port, false);
socket.receiveBufferSize(4 << 20);
// Answer: owner = pointer to the question, A IN, TTL 30, 10.96.0.10.
const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 10]);

socket.listen((query, address, remotePort) => {
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
  socket.send(reply, remotePort, address);
}, (error) => process.stderr.write(`${error.message}\n`));
process.stdout.write(`listening ${socket.port} (${socket.kind} UDP listener)\n`);
process.on('SIGTERM', () => void socket.close().then(() => process.exit(0)));
