// The server's UDP listeners (src/udp-listener.ts): the native one that reads
// and answers in batches (native/udp_listener.c, built by `npm install` on
// Linux) and node:dgram must look the same to the server: the same datagrams,
// client addresses, replies, bind errors and receive queue sizes. Real
// sockets on loopback; every case runs against both kinds.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bindUdpListener, connectUpstream, nativeListener, type UdpListener } from '../src/udp-listener.ts';
import { NORMAL_QUEUE_BYTES } from '../src/udp-receive-queue.ts';
import { queryUdp } from './support/dns.ts';
import { freePort } from './support/process.ts';

const native = nativeListener();
if (native === null) console.warn('the native UDP listener is not built (npm install builds it on Linux with a C compiler): only node:dgram is tested');

// CI sets CLUSTERDNS_REQUIRE_NATIVE_UDP=1: there the build must have worked.
it.runIf(process.env.CLUSTERDNS_REQUIRE_NATIVE_UDP === '1')('the native UDP listener is built and the server uses it', () => {
  expect(native, 'build/Release/udp_listener.node (npm install runs node-gyp rebuild)').not.toBeNull();
});

const open: UdpListener[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((listener) => listener.close()));
});

async function bind(kind: 'batched' | 'dgram', address: string, port = 0): Promise<UdpListener> {
  const listener = await bindUdpListener(address, port, false, kind === 'dgram' ? null : native);
  open.push(listener);
  expect(listener.kind).toBe(kind);
  return listener;
}

/** An echo service: each datagram is answered with "re:" + its bytes, at once or after `delayMs`. */
function echo(listener: UdpListener, seen: Array<{ address: string; port: number; length: number }>, delayMs = 0): void {
  listener.listen((packet, address, port) => {
    seen.push({ address, port, length: packet.length });
    const reply = Buffer.concat([Buffer.from('re:'), packet]);
    if (delayMs === 0) listener.send(reply, port, address);
    else setTimeout(() => listener.sendThen(reply, port, address, () => {}), delayMs);
  }, (error) => {
    throw error;
  });
}

async function client(type: 'udp4' | 'udp6'): Promise<{ socket: dgram.Socket; replies: Buffer[]; port: number }> {
  // A deep queue: the replies to a whole burst arrive before this thread reads any.
  const socket = dgram.createSocket({ type, recvBufferSize: 4 << 20 });
  const replies: Buffer[] = [];
  socket.on('message', (reply) => replies.push(reply));
  await new Promise<void>((resolve) => socket.bind(0, type === 'udp6' ? '::1' : '127.0.0.1', resolve));
  return { socket, replies, port: socket.address().port };
}

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

const kinds = native === null ? (['dgram'] as const) : (['batched', 'dgram'] as const);

describe.skipIf(process.platform !== 'linux').each(kinds)('the %s UDP listener', (kind) => {
  it('gives each datagram whole with the client address, and the reply reaches the client', async () => {
    const listener = await bind(kind, '127.0.0.1');
    const seen: Array<{ address: string; port: number; length: number }> = [];
    echo(listener, seen);
    const { socket, replies, port } = await client('udp4');
    // An empty datagram, and one near the largest UDP payload (65,507 bytes over IPv4).
    for (const size of [40, 0, 65_000]) socket.send(Buffer.alloc(size, 7), listener.port, '127.0.0.1');
    await until(() => replies.length === 3);
    socket.close();
    expect(seen).toEqual([40, 0, 65_000].map((length) => ({ address: '127.0.0.1', port, length })));
    expect(replies.map((reply) => reply.length).sort((a, b) => a - b)).toEqual([3, 43, 65_003]);
  });

  it('on the dual-stack wildcard, reports IPv4 clients as ::ffff:a.b.c.d and IPv6 ones as they are, and answers both', async () => {
    const listener = await bind(kind, '::');
    const seen: Array<{ address: string; port: number; length: number }> = [];
    echo(listener, seen);
    const v4 = await client('udp4');
    const v6 = await client('udp6');
    v4.socket.send(Buffer.from('four'), listener.port, '127.0.0.1');
    v6.socket.send(Buffer.from('six'), listener.port, '::1');
    await until(() => v4.replies.length + v6.replies.length === 2);
    v4.socket.close();
    v6.socket.close();
    expect(seen).toContainEqual({ address: '::ffff:127.0.0.1', port: v4.port, length: 4 });
    expect(seen).toContainEqual({ address: '::1', port: v6.port, length: 3 });
    expect(v4.replies.map(String)).toEqual(['re:four']);
    expect(v6.replies.map(String)).toEqual(['re:six']);
  });

  it('answers a burst the thread was too busy to read, in order, and replies sent later still go out', async () => {
    const listener = await bind(kind, '127.0.0.1');
    const seen: Array<{ address: string; port: number; length: number }> = [];
    const later: Array<{ address: string; port: number; length: number }> = [];
    echo(listener, seen);
    const { socket, replies } = await client('udp4');
    // 300 datagrams queue up while this thread is busy: several batches at once.
    for (let i = 0; i < 300; i++) socket.send(Buffer.from(`q${i}`), listener.port, '127.0.0.1');
    const busyUntil = performance.now() + 200;
    while (performance.now() < busyUntil) {
      // the datagrams wait in the kernel's queue
    }
    await until(() => replies.length === 300);
    expect(replies.map(String)).toEqual(Array.from({ length: 300 }, (_, i) => `re:q${i}`));

    const delayed = await bind(kind, '127.0.0.1');
    echo(delayed, later, 20);
    const second = await client('udp4');
    second.socket.send(Buffer.from('slow'), delayed.port, '127.0.0.1');
    await until(() => second.replies.length === 1);
    socket.close();
    second.socket.close();
    expect(second.replies.map(String)).toEqual(['re:slow']);
  });

  it('refuses a taken port with EADDRINUSE, and sizes its receive queue as the kernel reports it', async () => {
    const listener = await bind(kind, '127.0.0.1');
    await expect(bind(kind, '127.0.0.1', listener.port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(listener.receiveBufferSize()).toBe(2 * NORMAL_QUEUE_BYTES);
    expect(listener.receiveBufferSize(32 * 1024)).toBe(64 * 1024);
    expect(listener.inode).toMatch(/^\d+$/);
  });

  it('closed in the middle of a batch, reads nothing more and lets the port go', async () => {
    const listener = await bind(kind, '127.0.0.1');
    let handled = 0;
    listener.listen(() => {
      handled++;
      void listener.close();
    }, () => {});
    const { socket } = await client('udp4');
    for (let i = 0; i < 20; i++) socket.send(Buffer.from('x'), listener.port, '127.0.0.1');
    await until(() => handled > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.close();
    expect(handled).toBe(1);
    listener.send(Buffer.from('after close'), 9, '127.0.0.1');
    const again = await bind(kind, '127.0.0.1', listener.port);
    expect(again.port).toBe(listener.port);
  });
});

describe.skipIf(process.platform !== 'linux').each(kinds)('the %s socket to an upstream (forward)', (kind) => {
  const connect = (port: number, onMessage: (packet: Buffer) => void, onError: (error: NodeJS.ErrnoException) => void) =>
    connectUpstream('127.0.0.1', port, onMessage, onError, kind === 'dgram' ? null : native);

  it('sends to the upstream and gets its replies, and names its local end', async () => {
    const upstream = await bind(kind, '127.0.0.1');
    echo(upstream, []);
    const replies: string[] = [];
    const socket = await connect(upstream.port, (packet) => replies.push(String(packet)), (error) => {
      throw error;
    });
    expect(`${socket.localAddress}:${socket.localPort}`).toMatch(/^127\.0\.0\.1:\d+$/);
    const sent: Array<Error | null> = [];
    for (const text of ['one', 'two']) socket.send(Buffer.from(text), (error) => sent.push(error));
    await until(() => replies.length === 2);
    socket.close();
    expect(sent).toEqual([null, null]);
    expect(replies).toEqual(['re:one', 're:two']);
  });

  it('reports ECONNREFUSED when nothing listens there (the ICMP error of a connected socket), and keeps reading', async () => {
    const closed = await bind(kind, '127.0.0.1');
    const port = closed.port;
    await closed.close();
    const errors: string[] = [];
    const replies: string[] = [];
    const socket = await connect(port, (packet) => replies.push(String(packet)), (error) => errors.push(String(error.code)));
    socket.send(Buffer.from('anyone?'), () => {});
    await until(() => errors.length > 0);
    expect(errors).toEqual(['ECONNREFUSED']);
    // Something listens there now: the socket still reads.
    const upstream = await bind(kind, '127.0.0.1', port);
    echo(upstream, []);
    socket.send(Buffer.from('now?'), () => {});
    await until(() => replies.length > 0);
    socket.close();
    expect(replies).toEqual(['re:now?']);
  });
});

describe.skipIf(process.platform !== 'linux')('a UDP listener in a worker thread', () => {
  it('answers from the worker, and a worker terminated with its listener open ends cleanly (no crash of the process)', async () => {
    // In a child process: were the listener's teardown wrong, the crash would take the test runner with it.
    const script = `
      import { Worker } from 'node:worker_threads';
      import dgram from 'node:dgram';
      const worker = new Worker(${JSON.stringify(new URL('./support/udp-listener-worker.ts', import.meta.url).pathname)}, { execArgv: [] });
      const { port, kind } = await new Promise((resolve) => worker.once('message', resolve));
      const socket = dgram.createSocket('udp4');
      const reply = new Promise((resolve) => socket.once('message', resolve));
      socket.send('ping', port, '127.0.0.1');
      console.log(kind, String(await reply));
      socket.close();
      await worker.terminate();
      console.log('terminated');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const [code, signal] = await once(child, 'exit');
    expect({ code, signal, output }).toEqual({ code: 0, signal: null, output: `${native === null ? 'dgram' : 'batched'} re:ping\nterminated\n` });
  }, 20_000);
});

describe.skipIf(process.platform !== 'linux')('the server on each kind of UDP listener', () => {
  it.each(kinds)('%s: `clusterdns -conf` answers over UDP as before', async (kind) => {
    const port = await freePort();
    const corefile = join(mkdtempSync(join(tmpdir(), 'clusterdns-udp-')), 'Corefile');
    writeFileSync(corefile, `.:${port} {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        manifests ${resolve('examples/cluster')}\n    }\n}\n`);
    const child = spawn(process.execPath, ['bin/clusterdns.js', '-conf', corefile], {
      env: { ...process.env, ...(kind === 'dgram' ? { CLUSTERDNS_UDP: 'dgram' } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    try {
      await until(() => output.includes('clusterdns-'), 10_000);
      // The banner's platform line names how UDP is read.
      expect(output).toMatch(new RegExp(`^linux/\\w+, node v[\\d.]+, udp ${kind === 'batched' ? 'recvmmsg' : 'dgram'}$`, 'm'));
      const reply = await queryUdp(port, 'web.demo.svc.cluster.local.');
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.answers?.[0]).toMatchObject({ type: 'A', data: '10.96.100.10' });
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }, 20_000);
});
