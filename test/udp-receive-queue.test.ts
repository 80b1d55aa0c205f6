// The UDP receive queue follows the load (src/udp-receive-queue.ts, issue 14):
// cut short while the kernel drops queries at it, its depth back once the
// kernel has dropped nothing for 2 s, and never cut when nothing is dropped.
// A real socket; a real sender in a worker thread floods it while this
// thread is too busy to read, as a server under a flood is.

import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.ts';
import { registry } from '../src/metrics.ts';
import { bindUdpListener, type UdpListener } from '../src/udp-listener.ts';
import { NORMAL_QUEUE_BYTES, ReceiveQueue, SHORT_QUEUE_BYTES } from '../src/udp-receive-queue.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Keeps this thread's event loop busy for `ms`, in steps that let timers run between them, as a loaded server's would. */
async function busyFor(ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const step = performance.now() + 100;
    while (performance.now() < step) {
      // busy: the socket is not read meanwhile
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** A worker thread sending small datagrams to `port` as fast as it can until stopped. */
function flood(port: number): { stop(): Promise<void> } {
  const worker = new Worker(
    `const dgram = require('node:dgram');
     const { workerData } = require('node:worker_threads');
     const socket = dgram.createSocket('udp4');
     const packet = Buffer.alloc(40);
     const burst = () => {
       for (let i = 0; i < 100; i++) socket.send(packet, workerData.port, '127.0.0.1');
       setImmediate(burst);
     };
     burst();`,
    { eval: true, workerData: { port } },
  );
  return { stop: async () => void (await worker.terminate()) };
}

interface Listener {
  socket: UdpListener;
  port: number;
  label: string;
  queue: ReceiveQueue;
  lines: string[];
}

let open: Listener | null = null;
afterEach(() => {
  open?.queue.stop();
  void open?.socket.close();
  open = null;
});

async function listener(): Promise<Listener> {
  // The server's own kind of socket: the native listener where it is built, node:dgram otherwise.
  const socket = await bindUdpListener('127.0.0.1', 0, false);
  socket.listen(() => {}, () => {});
  const inode = socket.inode;
  expect(inode, 'the socket is found in /proc/net/udp').not.toBeNull();
  const port = socket.port;
  const lines: string[] = [];
  const label = `dns://127.0.0.1:${port}`;
  const queue = new ReceiveQueue(socket, inode!, label, createLogger('', (line) => lines.push(line)));
  open = { socket, port, label, queue, lines };
  return open;
}

describe.skipIf(process.platform !== 'linux')('the UDP receive queue (issue 14, Linux)', () => {
  it('is cut short while the kernel drops queries at it, counted in clusterdns_udp_queries_dropped_total, and gets its depth back 2 s after the last drop', async () => {
    const { socket, port, label, lines } = await listener();
    // The kernel doubles what is asked for its bookkeeping.
    expect(socket.receiveBufferSize()).toBe(2 * NORMAL_QUEUE_BYTES);
    const sender = flood(port);
    try {
      await busyFor(1500);
    } finally {
      await sender.stop();
    }
    expect(socket.receiveBufferSize()).toBe(2 * SHORT_QUEUE_BYTES);
    expect(lines.filter((line) => line.includes('the queue is cut to'))).toEqual([
      expect.stringMatching(new RegExp(`^\\[WARNING\\] udp ${label}: the kernel dropped \\d+ queries in \\d+ ms \\(receive queue full\\); the queue is cut to 64 KiB so that queries wait less$`)),
    ]);
    const metric = new RegExp(`^clusterdns_udp_queries_dropped_total\\{server="${label}"\\} (\\d+)$`, 'm').exec(await registry.metrics());
    expect(Number(metric?.[1])).toBeGreaterThan(0);

    // 2 s after the last check that saw a drop (checks come every 200 ms; timers may run late on a busy machine).
    const stopped = performance.now();
    while (socket.receiveBufferSize() !== 2 * NORMAL_QUEUE_BYTES && performance.now() - stopped < 5000) await sleep(50);
    expect(performance.now() - stopped).toBeGreaterThan(1800);
    expect(socket.receiveBufferSize()).toBe(2 * NORMAL_QUEUE_BYTES);
    expect(lines.at(-1)).toMatch(new RegExp(`^\\[INFO\\] udp ${label}: no queries dropped for 2s; the receive queue is back to 512 KiB \\(\\d+ dropped meanwhile\\)$`));
  }, 15_000);

  it('keeps its depth while the server is busy but nothing is dropped (a burst the queue holds)', async () => {
    const { socket, lines } = await listener();
    await busyFor(1500);
    expect(socket.receiveBufferSize()).toBe(2 * NORMAL_QUEUE_BYTES);
    expect(lines).toEqual([]);
  });
});
