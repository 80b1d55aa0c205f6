// Test helpers: a server started in-process on loopback, and a DNS client
// speaking real UDP and TCP (dns-packet builds and reads the messages, so the
// assertions do not depend on the server's own wire code).

import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type DecodedPacket, type Packet } from 'dns-packet';
import { afterEach } from 'vitest';
import { planFromCorefile } from '../../src/config.ts';
import { DnsServer, type ServerOptions } from '../../src/server.ts';
import type { Next } from '../../src/plugin.ts';
import { startPlugins, stopPlugins } from '../../src/lifecycle.ts';

export interface RunningServer {
  server: DnsServer;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts `corefile` with keys defaulting to a kernel-chosen port (port 0).
 * `chain` replaces the first block's chain: a stand-in plugin for wire tests.
 */
export async function startServer(corefile: string, options: ServerOptions & { file?: string; chain?: Next } = {}): Promise<RunningServer> {
  const plan = planFromCorefile(corefile, options.file ?? 'Corefile', { dnsPort: 0 });
  if (options.chain) plan.blocks[0]!.chain = options.chain;
  const server = new DnsServer(options);
  await startPlugins(plan);
  const listeners = await server.serve(plan);
  return {
    server,
    port: listeners[0]!.port,
    stop: async () => {
      await server.close(100);
      await stopPlugins(plan);
    },
  };
}

/**
 * For test files that start a server per test: returns a start function
 * giving the port; the server is stopped after each test.
 */
export function serverPerTest(): (corefile: string) => Promise<number> {
  let running: RunningServer | null = null;
  afterEach(async () => {
    await running?.stop();
    running = null;
  });
  return async (corefile) => {
    running = await startServer(corefile);
    return running.port;
  };
}

export interface QueryOptions {
  type?: string;
  id?: number;
  flags?: number;
  /** EDNS: adds an OPT with this UDP payload size. */
  udpSize?: number;
  dnssecOk?: boolean;
  ednsVersion?: number;
  timeoutMs?: number;
  host?: string;
}

export function buildQuery(name: string, options: QueryOptions = {}): Buffer {
  const packet: Packet = {
    type: 'query',
    id: options.id ?? Math.floor(Math.random() * 65536),
    flags: options.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: (options.type ?? 'A') as 'A', class: 'IN' }],
  };
  if (options.udpSize !== undefined) {
    packet.additionals = [{
      type: 'OPT',
      name: '.',
      udpPayloadSize: options.udpSize,
      extendedRcode: 0,
      ednsVersion: options.ednsVersion ?? 0,
      flags: options.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
      options: [],
    } as never];
  }
  return dnsPacket.encode(packet);
}

/**
 * Sends raw bytes over UDP; resolves with the reply bytes, or null after the
 * timeout. `from` binds the client to that source address (any of 127/8 works on Linux).
 */
export function sendUdp(port: number, message: Buffer, timeoutMs = 3000, host = '127.0.0.1', from?: string): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, timeoutMs);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    if (from === undefined) socket.send(message, port, host);
    else socket.bind(0, from, () => socket.send(message, port, host));
  });
}

/** Opens a TCP connection (from `localAddress` when given); `send` frames messages, `replies` collects framed replies. */
export async function openTcp(port: number, host = '127.0.0.1', localAddress?: string) {
  const socket = net.connect({ port, host, localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const replies: Buffer[] = [];
  const waiters: (() => void)[] = [];
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
    }
    for (const waiter of waiters.splice(0)) waiter();
  });
  let closed = false;
  socket.on('close', () => {
    closed = true;
    for (const waiter of waiters.splice(0)) waiter();
  });
  return {
    socket,
    replies,
    send(message: Buffer) {
      const frame = Buffer.alloc(message.length + 2);
      frame.writeUInt16BE(message.length, 0);
      message.copy(frame, 2);
      socket.write(frame);
    },
    get closed() {
      return closed;
    },
    async waitFor(count: number, timeoutMs = 2000): Promise<Buffer[]> {
      const deadline = Date.now() + timeoutMs;
      while (replies.length < count && !closed && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, Math.max(0, deadline - Date.now())).unref();
        });
      }
      return replies.slice(0, count);
    },
    close() {
      socket.destroy();
    },
  };
}

export async function queryUdp(port: number, name: string, options: QueryOptions = {}): Promise<DecodedReply> {
  const reply = await sendUdp(port, buildQuery(name, options), options.timeoutMs, options.host);
  if (reply === null) throw new Error(`no UDP reply for ${name}`);
  return decodeReply(reply);
}

export async function queryTcp(port: number, name: string, options: QueryOptions = {}): Promise<DecodedReply> {
  const connection = await openTcp(port, options.host);
  try {
    connection.send(buildQuery(name, options));
    const [reply] = await connection.waitFor(1, options.timeoutMs);
    if (!reply) throw new Error(`no TCP reply for ${name}`);
    return decodeReply(reply);
  } finally {
    connection.close();
  }
}

export type DecodedReply = DecodedPacket & { rcode: string; raw: Buffer };

/** dns-packet's decode, with the rcode name its types leave out, and the raw bytes. */
export function decodeReply(raw: Buffer): DecodedReply {
  return { ...dnsPacket.decode(raw), raw } as DecodedReply;
}

/** The RCODE number of a raw reply (header low bits plus OPT extended bits are not combined). */
export function headerRcode(reply: Buffer): number {
  return reply.readUInt16BE(2) & 0xf;
}
