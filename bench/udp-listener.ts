// The cost of UDP I/O alone, per query: an echo server on each kind of
// src/udp-listener.ts (the native batched listener and node:dgram), each in
// its own process, answering every datagram with a fixed 120-byte reply, under
// the same paced load from this process. Prints the server's CPU time per
// answered query (user and system) for each kind, interleaved over rounds.
//
//   npx node bench/udp-listener.ts [--rate 80000] [--seconds 5] [--rounds 2]
//
// Needs the native listener built (npm install); loopback only.

import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { option } from './resilience/common.ts';

const RATE = option('rate', 80_000);
const SECONDS = option('seconds', 5);
const ROUNDS = option('rounds', 2);
const SOCKETS = 20;

// The echo server, run as `node bench/udp-listener.ts --serve KIND`: prints its port, and its CPU use on SIGTERM.
if (process.argv.includes('--serve')) {
  const { bindUdpListener, nativeListener } = await import('../src/udp-listener.ts');
  const kind = process.argv[process.argv.indexOf('--serve') + 1];
  const native = kind === 'batched' ? nativeListener() : null;
  if (kind === 'batched' && native === null) throw new Error('the native UDP listener is not built (npm install)');
  const listener = await bindUdpListener('127.0.0.1', 0, false, native);
  const reply = Buffer.alloc(120, 1);
  let answered = 0;
  listener.listen((_packet, address, port) => {
    answered++;
    listener.send(reply, port, address);
  }, () => {});
  const cpu = process.cpuUsage();
  process.on('SIGTERM', () => {
    const used = process.cpuUsage(cpu);
    process.stdout.write(`${JSON.stringify({ answered, userUs: used.user, systemUs: used.system })}\n`);
    process.exit(0);
  });
  process.stdout.write(`listening ${listener.port}\n`);
} else {
  const results: Record<string, string[]> = { batched: [], dgram: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of ['batched', 'dgram'] as const) results[kind]!.push(await measure(kind));
  }
  process.stdout.write(`echo servers under ${RATE} queries/s for ${SECONDS} s, ${ROUNDS} rounds each (CPU per answered query):\n`);
  for (const [kind, lines] of Object.entries(results)) process.stdout.write(`${kind}: ${lines.join('; ')}\n`);
}

async function measure(kind: 'batched' | 'dgram'): Promise<string> {
  const server: ChildProcess = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  server.stdout!.on('data', (chunk) => (output += chunk));
  while (!/listening \d+/.test(output)) await new Promise((resolve) => setTimeout(resolve, 20));
  const port = Number(/listening (\d+)/.exec(output)![1]);
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => new Promise<dgram.Socket>((resolve) => {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    socket.on('message', () => received++);
    socket.bind(0, '127.0.0.1', () => resolve(socket));
  })));
  let sent = 0;
  let received = 0;
  const query = Buffer.alloc(40, 2);
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - started;
      for (const target = (elapsed / 1000) * RATE; sent < target; sent++) sockets[sent % SOCKETS]!.send(query, port, '127.0.0.1');
      if (elapsed < SECONDS * 1000) setImmediate(tick);
      else setTimeout(resolve, 300);
    };
    tick();
  });
  for (const socket of sockets) socket.close();
  server.kill('SIGTERM');
  await once(server, 'exit');
  const { answered, userUs, systemUs } = JSON.parse(output.trim().split('\n').at(-1)!) as { answered: number; userUs: number; systemUs: number };
  return `${((userUs + systemUs) / answered).toFixed(1)} µs (user ${(userUs / answered).toFixed(1)}, system ${(systemUs / answered).toFixed(1)}), ${((received / sent) * 100).toFixed(1)}% answered`;
}
