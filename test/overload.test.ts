// The cap on queries in flight (users.md P3, issue 14): past it, queries that
// would wait on an upstream are answered REFUSED at once, counted and logged
// once, memory stays flat, and normal answers come back when the load ends.
// A real forward plugin and real upstreams on loopback.

import dgram from 'node:dgram';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultMaxInFlight, MAX_IN_FLIGHT_ENV } from '../src/load-shedding.ts';
import { setLogSink } from '../src/log.ts';
import { shedQueries } from '../src/metrics.ts';
import type { Next } from '../src/plugin.ts';
import { Rcode } from '../src/wire/constants.ts';
import { emptyReply } from '../src/wire/message.ts';
import { buildQuery, decodeReply, queryUdp, startServer, type RunningServer } from './support/dns.ts';
import { runCli } from './support/process.ts';
import { TestUpstream } from './support/upstreams.ts';

let running: RunningServer | null = null;
let upstream: TestUpstream | null = null;
let restoreLog: ((line: string) => void) | null = null;
afterEach(async () => {
  await running?.stop();
  await upstream?.stop();
  if (restoreLog) setLogSink(restoreLog);
  running = null;
  upstream = null;
  restoreLog = null;
});

function shedTotal(): number {
  return shedQueries.get().values.reduce((sum, value) => sum + value.value, 0);
}

/** Sends every packet from one socket; resolves with the replies, once there is one per packet or `waitMs` after the last send. */
async function blast(port: number, packets: Buffer[], waitMs: number): Promise<{ replies: Buffer[]; lastReplyAfterMs: number }> {
  // Room for every reply even when this process reads late: the test counts them.
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const replies: Buffer[] = [];
  let lastReplyAt = 0;
  socket.on('message', (reply) => {
    replies.push(reply);
    lastReplyAt = performance.now();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  for (let i = 0; i < packets.length; i++) {
    socket.send(packets[i]!, port, '127.0.0.1');
    // Let the server read as the burst goes (it takes 32 datagrams per turn of the event loop, and
    // its socket queue is the kernel's default, ~256 of them): the test measures shedding, not queues.
    if (i % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
  }
  const sentAt = performance.now();
  while (replies.length < packets.length && performance.now() - sentAt < waitMs) await new Promise((resolve) => setTimeout(resolve, 10));
  socket.close();
  return { replies, lastReplyAfterMs: lastReplyAt - sentAt };
}

const queries = (count: number, prefix: string) => Array.from({ length: count }, (_, i) => buildQuery(`${prefix}${i}.example.org`, { id: i & 0xffff }));

describe('the in-flight cap (users.md P3)', () => {
  it('past the cap, queries that would wait are REFUSED at once, counted, logged once; answers come back after', async () => {
    const lines: string[] = [];
    restoreLog = setLogSink((line) => lines.push(line));
    upstream = await TestUpstream.start({ mode: { kind: 'slow', delayMs: 1000 } });
    running = await startServer(`. {\n forward . ${upstream.hostPort}\n}\n`, { maxInFlight: 20 });
    const before = shedTotal();
    const waiting = queries(20, 'waiting').map((packet) => blast(running!.port, [packet], 1500));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const { replies, lastReplyAfterMs } = await blast(running.port, queries(500, 'shed'), 3000);
    expect(replies).toHaveLength(500);
    expect(replies.every((reply) => decodeReply(reply).rcode === 'REFUSED')).toBe(true);
    // At once: every reply was in before the upstream (1 s) could have answered any of them.
    expect(lastReplyAfterMs).toBeLessThan(800);
    expect(shedTotal() - before).toBe(500);
    expect(lines.filter((line) => line.includes('Shedding load'))).toEqual([
      '[WARNING] Shedding load: 20 queries in flight, the maximum; new queries that would wait are answered REFUSED',
    ]);

    // Shed queries started no upstream work: the upstream saw only the 20 that wait.
    expect(upstream.queries.filter((query) => query.name.startsWith('shed'))).toEqual([]);

    // The 20 waiting ones get their answers; then new queries are forwarded again.
    for (const result of await Promise.all(waiting)) expect(decodeReply(result.replies[0]!).rcode).toBe('NXDOMAIN');
    expect((await queryUdp(running.port, 'after.example.org')).rcode).toBe('NXDOMAIN');
    await new Promise((resolve) => setTimeout(resolve, 5500));
    expect(lines.filter((line) => line.includes('Stopped shedding load'))).toHaveLength(1);
    expect(lines.find((line) => line.includes('Stopped shedding load'))).toMatch(/^\[INFO\] Stopped shedding load: 500 queries answered REFUSED in [\d.]+s$/);
  }, 15_000);

  it('memory stays flat while shedding', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // A stand-in for a plugin waiting on I/O: each query is answered 200 ms later.
    const waits: Next = () => new Promise((resolve) => setTimeout(() => resolve(emptyReply(Rcode.NXDOMAIN)), 200));
    running = await startServer('. {\n whoami\n}\n', { chain: waits, maxInFlight: 20 });
    const heapAfter = async (rounds: number) => {
      for (let round = 0; round < rounds; round++) {
        const { replies } = await blast(running!.port, queries(2000, `r${round}-`), 2000);
        expect(replies).toHaveLength(2000);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      gc();
      return process.memoryUsage().heapUsed;
    };
    const early = await heapAfter(3);
    const late = await heapAfter(12);
    expect(late - early).toBeLessThan(2 * 2 ** 20);
  }, 30_000);

  it('the default is sized from the memory limit, and CLUSTERDNS_MAX_IN_FLIGHT must be a positive integer', async () => {
    // kubeadm's Deployment: 170 MiB.
    expect(defaultMaxInFlight(170 * 2 ** 20)).toBe(4352);
    expect(defaultMaxInFlight(16 * 2 ** 30)).toBe(10_000);
    const result = await runCli(['-conf', 'stdin'], { input: '.:0 {\n whoami\n}\n', env: { [MAX_IN_FLIGHT_ENV]: 'lots' } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("[FATAL] CLUSTERDNS_MAX_IN_FLIGHT must be a positive integer, found 'lots'");
  });
});
