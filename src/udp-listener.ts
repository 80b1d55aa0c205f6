// The server's UDP sockets. On Linux, where `npm install` built the native
// listener (native/udp_listener.c), datagrams are read and answered in
// batches (recvmmsg/sendmmsg): 2-2.5x the queries per CPU-second of
// node:dgram (README, Performance). Elsewhere, or with CLUSTERDNS_UDP=dgram,
// node:dgram. Both look the same to the server: the same addresses (an IPv4
// client of a dual-stack socket is ::ffff:a.b.c.d), the same receive queue
// sizes, the same bind errors.

import cluster from 'node:cluster';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { createRequire } from 'node:module';
import net from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { bindAndLocate, NORMAL_QUEUE_BYTES } from './udp-receive-queue.ts';

export type UdpFamily = 'udp4' | 'udp6';

export interface UdpListener {
  /** The bound host, as asked ('::' or '0.0.0.0' for the wildcard). */
  readonly address: string;
  readonly port: number;
  readonly family: UdpFamily;
  /** The socket in the kernel's table (src/udp-receive-queue.ts), null when not found. */
  readonly inode: string | null;
  /** How datagrams are read: in batches by the native listener, or one by one by node:dgram. */
  readonly kind: 'batched' | 'dgram';
  /** Starts reading; `handler` gets each datagram, `onError` what node:dgram's socket reports. */
  listen(handler: (packet: Buffer, address: string, port: number) => void, onError: (error: Error) => void): void;
  /** Sends a reply; one the kernel refuses is dropped (UDP: the client asks again). */
  send(reply: Buffer, port: number, address: string): void;
  /** Sends a reply and calls `done` once the kernel has it (or refused it). */
  sendThen(reply: Buffer, port: number, address: string, done: () => void): void;
  /** Sets the kernel's receive queue (when `bytes` is given) and returns its size as the kernel reports it (doubled). */
  receiveBufferSize(bytes?: number): number;
  close(): Promise<void>;
}

/**
 * Binds a UDP listener on `address` ('' for the wildcard: dual-stack where the
 * host has IPv6, IPv4 otherwise) and `port`, sharing the port with
 * SO_REUSEPORT when `reusePort`; the native kind unless `native` is null.
 */
export async function bindUdpListener(address: string, port: number, reusePort: boolean, native = nativeListener()): Promise<UdpListener> {
  const attempt = (family: UdpFamily, host: string): Promise<UdpListener> => {
    // Port 0 in a worker process (CLUSTERDNS_WORKERS): node:dgram, whose socket the primary opens once
    // for every worker; a socket of the worker's own would get a port of its own. Configured ports are
    // shared with SO_REUSEPORT either way.
    const shared = port === 0 && cluster.isWorker;
    if (native !== null && net.isIP(host) !== 0 && !shared) return Promise.resolve(new BatchedListener(native, family, host, port, reusePort));
    return bindDgram(family, host, port, reusePort);
  };
  if (address !== '') return attempt(net.isIPv6(address) ? 'udp6' : 'udp4', address);
  try {
    return await attempt('udp6', '::');
  } catch {
    return attempt('udp4', '0.0.0.0');
  }
}

// ---------------------------------------------------------------------------
// node:dgram

/**
 * The address lookup dgram runs before every send. Node's default checks the
 * address with isIP (a regular expression for IPv6) and defers the send to
 * process.nextTick, once per datagram: under load that was a few percent of
 * the CPU. Replies go to the address the kernel reported for the query,
 * always an IP literal of the socket's family, so once bound the lookup
 * passes it through at once. Binding still goes through Node's own lookup.
 */
function replyLookup(): dgram.SocketOptions['lookup'] {
  let bound = false;
  const lookup = ((address: string, options: unknown, callback: (error: Error | null, address: string, family: number) => void) => {
    if (bound) return callback(null, address, 0);
    return dns.lookup(address, options as dns.LookupOneOptions, (error, resolved, family) => {
      if (!error) bound = true;
      callback(error, resolved, family);
    });
  }) as unknown as dgram.SocketOptions['lookup'];
  return lookup;
}

async function bindDgram(family: UdpFamily, host: string, port: number, reusePort: boolean): Promise<UdpListener> {
  const socket = dgram.createSocket({ type: family, reuseAddr: false, reusePort, ipv6Only: false, recvBufferSize: NORMAL_QUEUE_BYTES, lookup: replyLookup() });
  const inode = await bindAndLocate(socket, family, port, host);
  let closed = false;
  return {
    address: host,
    port: socket.address().port,
    family,
    inode,
    kind: 'dgram',
    listen(handler, onError) {
      socket.on('message', (packet, remote) => handler(packet, remote.address, remote.port));
      socket.on('error', onError);
    },
    // No callback: with one, Node schedules a process.nextTick per datagram
    // to report the synchronous send.
    send(reply, toPort, toAddress) {
      if (!closed) socket.send(reply, toPort, toAddress);
    },
    sendThen(reply, toPort, toAddress, done) {
      if (closed) return done();
      socket.send(reply, toPort, toAddress, () => done());
    },
    receiveBufferSize(bytes) {
      if (bytes !== undefined) socket.setRecvBufferSize(bytes);
      return socket.getRecvBufferSize();
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------
// The native listener

/** native/udp_listener.c's functions. */
export interface NativeUdp {
  open(ipv6: boolean, host: string, port: number, reusePort: boolean, receiveBufferBytes: number): object;
  info(handle: object): [port: number, inode: string, slab: Buffer, meta: Int32Array, local: string];
  start(handle: object, onBatch: (count: number) => void, onError: (negativeErrno: number) => void, keepAlive: boolean): void;
  connect(handle: object, host: string, port: number): void;
  send(handle: object, reply: Buffer, port: number, host: string): number;
  name(handle: object, index: number): string;
  receiveBufferSize(handle: object, bytes?: number): number;
  close(handle: object): void;
}

// The layout native/udp_listener.c writes (SLOT, META and the kinds there).
const SLOT = 65536;
const META = 8;
const KIND_IPV6 = 6;
const KIND_IPV4_MAPPED = 46;
/**
 * Datagram `index` of the batch, copied out of its slot: the slot is read into again by the next
 * batch, while a forwarded query is still in flight.
 */
function slotPacket(slab: Buffer, meta: Int32Array, index: number): Buffer {
  const length = meta[index * META]!;
  const packet = Buffer.allocUnsafe(length);
  slab.copy(packet, 0, index * SLOT, index * SLOT + length);
  return packet;
}

/** Client address texts kept; past this the table starts over (a scan of addresses must not grow memory). */
const MAX_NAMES = 4096;

let loaded: NativeUdp | null | undefined;

/** The built native listener, or null: not Linux, not built, or CLUSTERDNS_UDP=dgram. */
export function nativeListener(): NativeUdp | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.platform !== 'linux' || process.env.CLUSTERDNS_UDP === 'dgram') return loaded;
  const require = createRequire(import.meta.url);
  // src/ in the repository, dist/src/ in the package.
  for (const path of ['../build/Release/udp_listener.node', '../../build/Release/udp_listener.node']) {
    try {
      loaded = require(path) as NativeUdp;
      break;
    } catch {
      // not built there
    }
  }
  return loaded;
}

class BatchedListener implements UdpListener {
  readonly address: string;
  readonly port: number;
  readonly family: UdpFamily;
  readonly inode: string;
  readonly kind = 'batched' as const;
  private readonly native: NativeUdp;
  private readonly handle: object;
  private readonly slab: Buffer;
  private readonly meta: Int32Array;
  private readonly names = new Map<number, string>();
  private readonly mappedNames = new Map<number, string>();
  private closed = false;

  constructor(native: NativeUdp, family: UdpFamily, host: string, port: number, reusePort: boolean) {
    this.native = native;
    this.family = family;
    this.address = host;
    this.handle = native.open(family === 'udp6', host, port, reusePort, NORMAL_QUEUE_BYTES);
    [this.port, this.inode, this.slab, this.meta] = native.info(this.handle);
  }

  // Nothing to report: a failed read is retried on the next readable event, a failed send dropped.
  listen(handler: (packet: Buffer, address: string, port: number) => void): void {
    const { native, handle, slab, meta } = this;
    native.start(handle, (count) => {
      for (let i = 0; i < count && !this.closed; i++) {
        const at = i * META;
        const packet = slotPacket(slab, meta, i);
        const kind = meta[at + 2]!;
        const address = kind === KIND_IPV6 ? native.name(handle, i) : this.ipv4Name(meta[at + 3]!, kind === KIND_IPV4_MAPPED);
        handler(packet, address, meta[at + 1]!);
      }
    }, () => {}, true);
  }

  /** The text of an IPv4 address (network byte order in `bits`), from a table: one string per client, not per datagram. */
  private ipv4Name(bits: number, mapped: boolean): string {
    const names = mapped ? this.mappedNames : this.names;
    let name = names.get(bits);
    if (name === undefined) {
      if (names.size >= MAX_NAMES) names.clear();
      name = `${mapped ? '::ffff:' : ''}${bits & 0xff}.${(bits >>> 8) & 0xff}.${(bits >>> 16) & 0xff}.${bits >>> 24}`;
      names.set(bits, name);
    }
    return name;
  }

  // A reply the kernel refuses (a full send buffer) is dropped, as node:dgram drops it when sent
  // without a callback: the client asks again. Reporting each would flood the log under overload.
  send(reply: Buffer, port: number, address: string): void {
    if (!this.closed) this.native.send(this.handle, reply, port, address);
  }

  sendThen(reply: Buffer, port: number, address: string, done: () => void): void {
    this.send(reply, port, address);
    done();
  }

  receiveBufferSize(bytes?: number): number {
    if (this.closed) throw new Error('the socket is closed');
    return this.native.receiveBufferSize(this.handle, bytes);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.native.close(this.handle);
    }
    return Promise.resolve();
  }
}

// ---------------------------------------------------------------------------
// Sockets to one upstream (forward)

/** A UDP socket connected to one upstream: forward's queries go out on it and its replies come back. */
export interface UpstreamUdp {
  /** The local end, for error messages as CoreDNS words them. */
  readonly localAddress: string;
  readonly localPort: number;
  /** Sends to the upstream; `done` gets what the kernel refused it with, or null. */
  send(packet: Buffer, done: (error: Error | null) => void): void;
  close(): void;
}

/**
 * Connects a UDP socket to `host`:`port`. Replies go to `onMessage` (read in
 * batches by the native listener where built, so an answer flood costs Node
 * no per-datagram buffer); an ICMP error from the upstream (nothing listens:
 * ECONNREFUSED) to `onError`. The socket does not keep the process alive.
 */
export async function connectUpstream(host: string, port: number, onMessage: (packet: Buffer) => void, onError: (error: NodeJS.ErrnoException) => void, native = nativeListener()): Promise<UpstreamUdp> {
  const ipv6 = net.isIPv6(host.split('%')[0]!);
  if (native === null) return connectDgram(ipv6, host, port, onMessage, onError);
  const handle = native.open(ipv6, ipv6 ? '::' : '0.0.0.0', 0, false, 0);
  try {
    native.connect(handle, host, port);
  } catch (error) {
    native.close(handle);
    throw error;
  }
  const [localPort, , slab, meta, localAddress] = native.info(handle);
  let closed = false;
  native.start(handle, (count) => {
    for (let i = 0; i < count && !closed; i++) onMessage(slotPacket(slab, meta, i));
  }, (negativeErrno) => onError(errnoError('read', negativeErrno)), false);
  return {
    localAddress,
    localPort,
    send(packet, done) {
      if (closed) return done(errnoError('write', -constants.errno.EBADF));
      const result = native.send(handle, packet, 0, '');
      done(result < 0 ? errnoError('write', result) : null);
    },
    close() {
      if (closed) return;
      closed = true;
      native.close(handle);
    },
  };
}

async function connectDgram(ipv6: boolean, host: string, port: number, onMessage: (packet: Buffer) => void, onError: (error: NodeJS.ErrnoException) => void): Promise<UpstreamUdp> {
  const socket = dgram.createSocket(ipv6 ? 'udp6' : 'udp4');
  socket.unref();
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => {
    socket.close();
    throw error;
  });
  socket.on('error', onError);
  socket.on('message', onMessage);
  const { address: localAddress, port: localPort } = socket.address();
  let closed = false;
  return {
    localAddress,
    localPort,
    send: (packet, done) => socket.send(packet, (error) => done(error ?? null)),
    close() {
      if (closed) return;
      closed = true;
      socket.close();
    },
  };
}

/** An error as node:dgram reports one: `code` the errno's name. */
function errnoError(operation: string, negativeErrno: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(negativeErrno);
  return Object.assign(new Error(`${operation} ${code}`), { code, errno: negativeErrno, syscall: operation });
}
