// A fast loopback upstream for the resilience scenarios, run in its own
// process: every A question gets one A record (192.0.2.1, TTL 30), anything
// else NODATA. Replies are built by copying the question, so it never falls
// behind the server under test. Prints "listening" once bound. With
// --delay MS every reply goes out MS milliseconds after its query came in (a
// slow upstream that still answers within the forward timeout).
//
//   node bench/resilience/upstream.ts PORT [--delay MS]

import dgram from 'node:dgram';
import net from 'node:net';

const port = Number(process.argv[2]);
const delayIndex = process.argv.indexOf('--delay');
const DELAY_MS = delayIndex > 0 ? Number(process.argv[delayIndex + 1]) : 0;

/** Sends now, or after --delay. */
function later(send: () => void): void {
  if (DELAY_MS > 0) setTimeout(send, DELAY_MS);
  else send();
}

/** The reply to `query`, or null when it has no whole question. */
function answer(query: Buffer): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end]! + 1;
  end += 5;
  if (end > query.length) return null;
  const isA = query.readUInt16BE(end - 4) === 1;
  const reply = Buffer.alloc(end + (isA ? 16 : 0));
  query.copy(reply, 0, 0, end);
  reply.writeUInt16BE(0x8180 | (query.readUInt16BE(2) & 0x0100), 2);
  reply.writeUInt16BE(isA ? 1 : 0, 6);
  reply.writeUInt32BE(0, 8);
  if (isA) {
    // name: pointer to the question; A IN, TTL 30, 192.0.2.1
    Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]).copy(reply, end);
  }
  return reply;
}

const udp = dgram.createSocket('udp4');
udp.on('message', (query, remote) => {
  const reply = answer(query);
  if (reply) later(() => udp.send(reply, remote.port, remote.address));
});
udp.on('error', () => {});
const tcp = net.createServer((socket) => {
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
      const reply = answer(pending.subarray(2, 2 + pending.readUInt16BE(0)));
      pending = pending.subarray(2 + pending.readUInt16BE(0));
      if (!reply) continue;
      const frame = Buffer.alloc(reply.length + 2);
      frame.writeUInt16BE(reply.length, 0);
      reply.copy(frame, 2);
      later(() => socket.destroyed || socket.write(frame));
    }
  });
  socket.on('error', () => socket.destroy());
});
udp.bind(port, '127.0.0.1', () => tcp.listen(port, '127.0.0.1', () => process.stdout.write('listening\n')));
