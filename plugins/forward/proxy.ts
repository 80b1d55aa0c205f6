// One upstream of a forward line: its cached connections (FWD-10), the
// exchange of one query (FWD-6..8) and its health checking (FWD-9).
//
// UDP: a small pool of connected sockets per upstream. Queries share a
// socket, each under a fresh crypto-random ID unique on that socket; replies
// are matched by ID and then checked (QR, question, type, class) before they
// are trusted, so a stray or forged datagram is ignored and the query keeps
// waiting. At most limits.udpQueriesPerSocket queries share one socket until
// limits.udpMaxSockets sockets exist, which bounds the descriptors under overload.
//
// TCP and TLS: persistent connections, one query at a time each (as CoreDNS),
// kept on an idle stack between queries and closed after `expire` idle. Past
// limits.streamsPerUpstream connections, queries are pipelined on open ones.

import { randomFillSync } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { connectUpstream, type UpstreamUdp } from '../../src/udp-listener.ts';
import { Class, Flag, HEADER_LENGTH, Type } from '../../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../../src/wire/message.ts';
import { canonicalName } from '../../src/wire/names.ts';
import { encodeQuestion, type Query } from '../../src/wire/query.ts';
import { decodeMessage, decodeQuestion, type DecodedQuestion } from '../../src/wire/records.ts';
import { UpstreamMetrics } from './metrics.ts';
import type { TlsSettings, UpstreamSpec } from './setup.ts';

/**
 * Timings CoreDNS fixes in code (FWD-5, FWD-9). Tests shorten them; nothing
 * else should change them.
 */
export const timing = {
  /** Per-try read timeout (and dial timeout), capped by the overall deadline. */
  readTimeoutMs: 2_000,
  /** Overall deadline of one query across all tries (FWD-5.4). */
  overallTimeoutMs: 5_000,
  /** Read/write timeout of one health probe (FWD-9). */
  healthTimeoutMs: 1_000,
};

/** Bounds on open sockets per upstream, so overload cannot exhaust descriptors (users.md P3). */
export const limits = {
  /** In-flight queries on one UDP socket before another is opened. */
  udpQueriesPerSocket: 32,
  /** UDP sockets per upstream; past it queries share the least loaded one. */
  udpMaxSockets: 256,
  /** TCP/TLS connections per upstream; past it queries are pipelined on open ones. */
  streamsPerUpstream: 128,
};
/** Message IDs one socket may have outstanding; the 16-bit space must keep room to draw a free one. */
const MAX_IDS_IN_USE = 60_000;

export type Proto = 'udp' | 'tcp' | 'tcp-tls';

/** An I/O failure talking to the upstream; the message reads like Go's net errors (ERR-2). */
export class UpstreamError extends Error {
  constructor(message: string) {
    // One per failed try, thousands a second while an upstream is dead: no stack
    // trace, which nothing reads and which costs time and memory to capture.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'UpstreamError';
  }
}

/**
 * A reply under the query's ID that cannot be parsed: the try fails at once
 * (as in CoreDNS) instead of waiting out the read timeout, and this upstream
 * is not asked the same question again by the same walk.
 */
export class MalformedReply extends UpstreamError {}

/** A cached TCP connection the upstream had closed: retried at once on a new one. */
class CachedClosed extends Error {}

export interface ExchangeResult {
  reply: Reply;
  /** RCODE with extended bits. */
  rcode: number;
  truncated: boolean;
  /** The reply's question did not match (stream transports only): the client gets FORMERR (FWD-7). */
  mismatch: boolean;
}

// Fresh message IDs from a crypto-random pool (FWD-6).
const idPool = Buffer.alloc(1024);
let idOffset = idPool.length;
export function randomId(): number {
  if (idOffset >= idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.readUInt16BE(idOffset);
  idOffset += 2;
  return id;
}

const errnoText: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network is unreachable',
  EPIPE: 'broken pipe',
  EADDRNOTAVAIL: 'cannot assign requested address',
};

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code && errnoText[code]) return errnoText[code]!;
  return error instanceof Error ? error.message : String(error);
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

const noRecords: readonly ResourceRecord[] = Object.freeze([]);
const REPLY_FLAGS = Flag.AA | Flag.TC | Flag.RA | Flag.AD;

function questionMatches(question: DecodedQuestion | null, query: Query): boolean {
  return question !== null && question.qtype === query.qtype && question.qclass === query.qclass &&
    canonicalName(question.name) === query.qname;
}

/** FWD-8: a reply that does not fit the read buffer, or is cut short, becomes an empty one with TC. */
function truncatedResult(flags: number, rcode: number): ExchangeResult {
  return {
    reply: { rcode, flags: (flags & REPLY_FLAGS) | Flag.TC, answer: noRecords, authority: noRecords, additional: noRecords },
    rcode,
    truncated: true,
    mismatch: false,
  };
}

/**
 * Judges a datagram that carries a pending query's ID. Returns null to ignore
 * it (keep waiting): not a response, or another question (a late reply to an
 * earlier query that had the same ID, or a forgery). A reply that cannot be
 * parsed at all fails the try (MalformedReply).
 */
function judgeDatagram(packet: Buffer, query: Query, bufSize: number): ExchangeResult | Error | null {
  const flags = packet.readUInt16BE(2);
  if ((flags & Flag.QR) === 0) return null;
  if (packet.length > bufSize) return truncatedIfOurs(packet, query);
  let message;
  try {
    message = decodeMessage(packet);
  } catch (error) {
    return flags & Flag.TC ? truncatedIfOurs(packet, query) : malformed(error);
  }
  if (!questionMatches(message.question, query)) return null;
  return {
    reply: { rcode: message.rcode, flags: message.flags & REPLY_FLAGS, answer: message.answer, authority: message.authority, additional: message.additional },
    rcode: message.rcode,
    truncated: (message.flags & Flag.TC) !== 0,
    mismatch: false,
  };
}

function truncatedIfOurs(packet: Buffer, query: Query): ExchangeResult | Error | null {
  let head;
  try {
    head = decodeQuestion(packet);
  } catch (error) {
    return malformed(error);
  }
  return questionMatches(head.question, query) ? truncatedResult(head.flags, head.rcode) : null;
}

function malformed(error: unknown): MalformedReply {
  return new MalformedReply(`dns: ${error instanceof Error ? error.message : String(error)}`);
}

interface UdpWaiter {
  query: Query;
  bufSize: number;
  settle(result: ExchangeResult | Error): void;
}

class UdpConn {
  /** Null until connected (src/udp-listener.ts: the native socket where built, node:dgram otherwise). */
  private socket: UpstreamUdp | null = null;
  readonly pending = new Map<number, UdpWaiter>();
  readonly ready: Promise<void>;
  local = '?';
  idleSince = Date.now();
  closed = false;
  /** `ready` has resolved: queries are sent without waiting on it. */
  connected = false;
  /** Queries waiting for the socket to connect (a batch of datagrams can bring many at once). */
  connecting = 0;

  /** Queries using the socket: in flight, or about to be once it connects. */
  get load(): number {
    return this.pending.size + this.connecting;
  }

  constructor(spec: UpstreamSpec, onError: (conn: UdpConn, error: Error) => void) {
    const onMessage = (packet: Buffer): void => {
      if (packet.length < HEADER_LENGTH) return;
      const waiter = this.pending.get(packet.readUInt16BE(0));
      if (!waiter) return; // late, or not ours
      const result = judgeDatagram(packet, waiter.query, waiter.bufSize);
      if (result) waiter.settle(result);
    };
    this.ready = connectUpstream(spec.host, spec.port, onMessage, (error) => onError(this, error)).then((socket) => {
      if (this.closed) return socket.close();
      this.socket = socket;
      this.local = hostPort(socket.localAddress, socket.localPort);
      this.connected = true;
    });
    this.ready.catch(() => {});
  }

  send(packet: Buffer, done: (error: Error | null) => void): void {
    this.socket!.send(packet, done);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket?.close();
  }
}

interface StreamWaiter {
  query: Query;
  cached: boolean;
  settle(result: ExchangeResult | Error): void;
}

/**
 * A TCP or TLS connection. Normally one query at a time, as CoreDNS; past
 * limits.streamsPerUpstream connections, further queries are pipelined on the open
 * ones (RFC 7766 §6.2.1.1), matched by ID, instead of opening more.
 */
class StreamConn {
  readonly socket: net.Socket;
  readonly proto: Proto;
  local = '?';
  idleSince = Date.now();
  dead = false;
  readonly waiters = new Map<number, StreamWaiter>();
  /** Exchanges using the connection, dialing included (for sharing at the cap). */
  users = 0;
  /** Settles when the connection (and TLS handshake) is up; rejects with the dial error. */
  ready: Promise<void> = Promise.resolve();
  private buffered: Buffer = Buffer.alloc(0);
  private lastError: Error | null = null;
  private readonly remote: string;

  constructor(socket: net.Socket, proto: Proto, remote: string, onDead: (conn: StreamConn) => void) {
    this.socket = socket;
    this.proto = proto;
    this.remote = remote;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => {
      this.lastError = error;
    });
    socket.on('close', () => {
      this.dead = true;
      onDead(this);
      const failure = this.lastError
        ? new UpstreamError(`read tcp ${this.local}->${this.remote}: read: ${describe(this.lastError)}`)
        : new UpstreamError('EOF');
      for (const waiter of this.take()) waiter.settle(waiter.cached && this.lastError === null ? new CachedClosed() : failure);
    });
  }

  markConnected(): void {
    this.local = hostPort(this.socket.localAddress ?? '?', this.socket.localPort ?? 0);
  }

  /** Removes and returns every waiter. */
  private take(): StreamWaiter[] {
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    return waiters;
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 2) {
      const length = this.buffered.readUInt16BE(0);
      if (this.buffered.length < length + 2) break;
      const frame = this.buffered.subarray(2, length + 2);
      this.buffered = this.buffered.subarray(length + 2);
      this.frame(frame);
      if (this.dead) return;
    }
  }

  private frame(frame: Buffer): void {
    if (frame.length < HEADER_LENGTH) return this.fail(new MalformedReply(`read tcp ${this.local}->${this.remote}: dns: short message of ${frame.length} bytes`));
    const id = frame.readUInt16BE(0);
    const waiter = this.waiters.get(id);
    if (!waiter) return; // out of order or late: skipped, as CoreDNS does
    let message;
    try {
      message = decodeMessage(frame);
    } catch (error) {
      return this.fail(malformed(error));
    }
    this.waiters.delete(id);
    const mismatch = (message.flags & Flag.QR) === 0 || !questionMatches(message.question, waiter.query);
    waiter.settle({
      reply: { rcode: message.rcode, flags: message.flags & REPLY_FLAGS, answer: message.answer, authority: message.authority, additional: message.additional },
      rcode: message.rcode,
      truncated: (message.flags & Flag.TC) !== 0,
      mismatch,
    });
  }

  /** Fails every waiting query and drops the connection (never given back after an error). */
  fail(error: Error): void {
    this.dead = true;
    this.socket.destroy();
    for (const waiter of this.take()) waiter.settle(error);
  }
}

export interface ProxyOptions {
  expireMs: number;
  tls: TlsSettings;
  maxFails: number;
  healthIntervalMs: number;
  healthRecursionDesired: boolean;
  healthDomain: string;
  /** Health probes go over TCP (force_tcp) instead of UDP; TLS upstreams always use TLS. */
  healthOverTcp: boolean;
}

export class Proxy {
  readonly spec: UpstreamSpec;
  /** Consecutive failed health probes (FWD-9). */
  fails = 0;
  private readonly options: ProxyOptions;
  private readonly udpConns: UdpConn[] = [];
  private readonly idle: Record<'tcp' | 'tcp-tls', StreamConn[]> = { tcp: [], 'tcp-tls': [] };
  private readonly busy = new Set<StreamConn>();
  private sweeper: NodeJS.Timeout | null = null;
  private probing = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly metrics: UpstreamMetrics;

  constructor(spec: UpstreamSpec, options: ProxyOptions) {
    this.spec = spec;
    this.options = options;
    this.metrics = new UpstreamMetrics(spec.addr);
  }

  get addr(): string {
    return this.spec.addr;
  }

  get isTls(): boolean {
    return this.spec.transport === 'tls';
  }

  /** Down when the failed probes exceed max_fails; max_fails 0 means never (FWD-4). */
  down(maxFails: number): boolean {
    return maxFails !== 0 && this.fails > maxFails;
  }

  /**
   * Sends the query with a fresh ID and waits for its reply, within one try's
   * timeout and the query's deadline. Throws UpstreamError on I/O failure or
   * timeout.
   */
  exchange(query: Query, proto: Proto, bufSize: number, deadline: number): Promise<ExchangeResult> {
    const started = performance.now();
    // UDP, the common case, without an async frame of its own: less to keep per query in flight.
    if (proto === 'udp') return this.exchangeUdp(query, bufSize, deadline, started);
    return this.exchangeOverStream(query, proto, deadline, started);
  }

  private async exchangeOverStream(query: Query, proto: Proto, deadline: number, started: number): Promise<ExchangeResult> {
    let result: ExchangeResult;
    for (let attempt = 0; ; attempt++) {
      try {
        result = await this.exchangeStream(query, proto, deadline, attempt > 0);
        break;
      } catch (error) {
        if (!(error instanceof CachedClosed) || attempt > 2) throw error instanceof CachedClosed ? new UpstreamError('EOF') : error;
      }
    }
    this.metrics.reply(result.rcode, (performance.now() - started) / 1000);
    return result;
  }


  private timeoutFor(deadline: number): number {
    return Math.max(0, Math.min(timing.readTimeoutMs, deadline - performance.now()));
  }

  // ---- UDP ----

  private udpConn(): UdpConn {
    let best: UdpConn | null = null;
    if (this.options.expireMs > 0) {
      for (const conn of this.udpConns) {
        if (conn.load < limits.udpQueriesPerSocket) {
          this.metrics.connection(true, 'udp');
          return conn;
        }
        if (best === null || conn.load < best.load) best = conn;
      }
      if (best !== null && this.udpConns.length >= limits.udpMaxSockets) {
        this.metrics.connection(true, 'udp');
        return best;
      }
    }
    this.metrics.connection(false, 'udp');
    const conn = new UdpConn(this.spec, (failed, error) => this.udpFailed(failed, error));
    this.udpConns.push(conn);
    this.startSweeper();
    return conn;
  }

  /** An ICMP error (port unreachable, ...) on a connected socket fails what waits on it, and the socket goes. */
  private udpFailed(conn: UdpConn, error: Error): void {
    this.dropUdp(conn);
    const failure = new UpstreamError(`read udp ${conn.local}->${this.addr}: read: ${describe(error)}`);
    for (const waiter of [...conn.pending.values()]) waiter.settle(failure);
  }

  private dropUdp(conn: UdpConn): void {
    conn.close();
    const index = this.udpConns.indexOf(conn);
    if (index !== -1) this.udpConns.splice(index, 1);
  }

  private exchangeUdp(query: Query, bufSize: number, deadline: number, started: number): Promise<ExchangeResult> {
    if (this.stopped) return Promise.reject(new UpstreamError('proxy: transport stopped'));
    const conn = this.udpConn();
    if (!conn.connected) {
      conn.connecting++;
      return conn.ready.then(
        () => {
          conn.connecting--;
          return this.sendUdp(conn, query, bufSize, deadline, started);
        },
        (error: unknown) => {
          conn.connecting--;
          this.dropUdp(conn);
          throw new UpstreamError(`dial udp ${this.addr}: ${describe(error)}`);
        },
      );
    }
    return this.sendUdp(conn, query, bufSize, deadline, started);
  }

  private sendUdp(conn: UdpConn, query: Query, bufSize: number, deadline: number, started: number): Promise<ExchangeResult> {
    if (conn.closed) return Promise.reject(new UpstreamError(`read udp ${conn.local}->${this.addr}: use of closed network connection`));
    if (conn.pending.size >= MAX_IDS_IN_USE) return Promise.reject(new UpstreamError(`write udp ${conn.local}->${this.addr}: too many queries in flight`));
    let id = randomId();
    while (conn.pending.has(id)) id = randomId();
    const packet = Buffer.from(query.packet);
    packet.writeUInt16BE(id, 0);
    const timeout = this.timeoutFor(deadline);
    return new Promise<ExchangeResult>((resolve, reject) => {
      const settle = (outcome: ExchangeResult | Error): void => {
        if (conn.pending.get(id) !== waiter) return;
        clearTimeout(timer);
        conn.pending.delete(id);
        if (conn.load === 0) {
          conn.idleSince = Date.now();
          if (this.options.expireMs === 0) this.dropUdp(conn);
        }
        if (outcome instanceof Error) {
          reject(outcome);
        } else {
          this.metrics.reply(outcome.rcode, (performance.now() - started) / 1000);
          resolve(outcome);
        }
      };
      const waiter: UdpWaiter = { query, bufSize, settle };
      const timer = setTimeout(() => settle(new UpstreamError(`read udp ${conn.local}->${this.addr}: i/o timeout`)), timeout);
      conn.pending.set(id, waiter);
      const failed = (error: unknown): void => settle(new UpstreamError(`write udp ${conn.local}->${this.addr}: write: ${describe(error)}`));
      try {
        conn.send(packet, (error) => {
          if (error) failed(error);
        });
      } catch (error) {
        failed(error);
      }
    });
  }

  // ---- TCP and TLS ----

  private checkoutStream(proto: 'tcp' | 'tcp-tls', deadline: number, fresh: boolean): { conn: StreamConn; cached: boolean } {
    const stack = this.idle[proto];
    const now = Date.now();
    while (!fresh && stack.length > 0) {
      const conn = stack.pop()!;
      if (conn.dead) continue;
      if (now - conn.idleSince >= this.options.expireMs) {
        conn.socket.destroy();
        continue;
      }
      this.metrics.connection(true, proto);
      return { conn, cached: true };
    }
    if (!fresh && this.busy.size >= limits.streamsPerUpstream) {
      // At the cap: share the least loaded open connection rather than open more.
      let best: StreamConn | null = null;
      for (const conn of this.busy) {
        if (!conn.dead && conn.proto === proto && (best === null || conn.users < best.users)) best = conn;
      }
      if (best) {
        this.metrics.connection(true, proto);
        return { conn: best, cached: true };
      }
    }
    this.metrics.connection(false, proto);
    return { conn: this.dial(proto, this.timeoutFor(deadline)), cached: false };
  }

  /** Opens a connection; it can take queries at once, which wait for `ready`. */
  private dial(proto: 'tcp' | 'tcp-tls', timeoutMs: number): StreamConn {
    const { host, port } = this.spec;
    let socket: net.Socket;
    const readyEvent = proto === 'tcp-tls' ? 'secureConnect' : 'connect';
    if (proto === 'tcp-tls') {
      const settings = this.options.tls;
      const servername = this.spec.serverName ?? settings.serverName;
      // Without a name, the certificate is checked against the IP, as Go does.
      socket = tls.connect({ host, port, servername, ca: settings.ca, cert: settings.cert, key: settings.key, minVersion: 'TLSv1.2' });
    } else {
      socket = net.connect({ host, port });
    }
    socket.unref();
    const conn = new StreamConn(socket, proto, this.addr, (dead) => this.streamDead(dead));
    conn.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.dead = true;
        socket.destroy();
        reject(new UpstreamError(`dial tcp ${this.addr}: i/o timeout`));
      }, timeoutMs);
      const onError = (error: Error): void => {
        clearTimeout(timer);
        conn.dead = true;
        socket.destroy();
        const tlsFailure = proto === 'tcp-tls' && !(error as NodeJS.ErrnoException).syscall;
        reject(new UpstreamError(tlsFailure ? `tls: ${error.message}` : `dial tcp ${this.addr}: connect: ${describe(error)}`));
      };
      socket.once('error', onError);
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        socket.off('error', onError);
        conn.markConnected();
        resolve();
      });
    });
    conn.ready.catch(() => {});
    this.startSweeper();
    return conn;
  }

  private streamDead(conn: StreamConn): void {
    this.busy.delete(conn);
    const stack = this.idle[conn.proto === 'tcp-tls' ? 'tcp-tls' : 'tcp'];
    const index = stack.indexOf(conn);
    if (index !== -1) stack.splice(index, 1);
  }

  private async exchangeStream(query: Query, proto: Proto, deadline: number, fresh: boolean): Promise<ExchangeResult> {
    if (this.stopped) throw new UpstreamError('proxy: transport stopped');
    const kind = proto === 'tcp-tls' ? 'tcp-tls' : 'tcp';
    const { conn, cached } = this.checkoutStream(kind, deadline, fresh);
    this.busy.add(conn);
    conn.users++;
    try {
      await conn.ready;
      if (conn.dead) throw cached ? new CachedClosed() : new UpstreamError('EOF');
      return await this.roundTrip(conn, query, cached, deadline);
    } finally {
      if (--conn.users === 0) {
        this.busy.delete(conn);
        if (!conn.dead && !this.stopped && this.options.expireMs > 0) {
          conn.idleSince = Date.now();
          if (!this.idle[kind].includes(conn)) this.idle[kind].push(conn);
        } else if (!conn.dead) {
          conn.socket.destroy();
        }
      }
    }
  }

  private roundTrip(conn: StreamConn, query: Query, cached: boolean, deadline: number): Promise<ExchangeResult> {
    if (conn.waiters.size >= MAX_IDS_IN_USE) return Promise.reject(new UpstreamError(`write tcp ${conn.local}->${this.addr}: too many queries in flight`));
    let id = randomId();
    while (conn.waiters.has(id)) id = randomId();
    const frame = Buffer.allocUnsafe(query.packet.length + 2);
    frame.writeUInt16BE(query.packet.length, 0);
    query.packet.copy(frame, 2);
    frame.writeUInt16BE(id, 2);
    return new Promise<ExchangeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.waiters.delete(id);
        const error = new UpstreamError(`read tcp ${conn.local}->${this.addr}: i/o timeout`);
        // Alone on the connection: drop it, as CoreDNS does; shared: leave the others be.
        if (conn.waiters.size === 0) conn.fail(error);
        reject(error);
      }, this.timeoutFor(deadline));
      conn.waiters.set(id, {
        query,
        cached,
        settle: (outcome) => {
          clearTimeout(timer);
          if (outcome instanceof Error) reject(outcome);
          else resolve(outcome);
        },
      });
      conn.socket.write(frame);
    });
  }

  // ---- idle connections ----

  private startSweeper(): void {
    if (this.sweeper || this.stopped) return;
    const every = Math.max(this.options.expireMs, 50);
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  /** Closes connections idle for longer than `expire` (FWD-10). */
  private sweep(): void {
    const stale = Date.now() - this.options.expireMs;
    for (const conn of [...this.udpConns]) {
      if (conn.load === 0 && conn.idleSince <= stale) this.dropUdp(conn);
    }
    for (const kind of ['tcp', 'tcp-tls'] as const) {
      const stack = this.idle[kind];
      for (const conn of stack.filter((candidate) => candidate.idleSince <= stale)) conn.socket.destroy();
      this.idle[kind] = stack.filter((candidate) => candidate.idleSince > stale && !candidate.dead);
    }
    if (this.udpConns.length === 0 && this.idle.tcp.length === 0 && this.idle['tcp-tls'].length === 0 && this.busy.size === 0) {
      clearInterval(this.sweeper!);
      this.sweeper = null;
    }
  }

  /** Open connections, for tests and debugging: UDP sockets, idle and busy streams. */
  connections(): { udp: number; idleStreams: number; busyStreams: number } {
    return { udp: this.udpConns.length, idleStreams: this.idle.tcp.length + this.idle['tcp-tls'].length, busyStreams: this.busy.size };
  }

  // ---- health checking (FWD-9) ----

  /** Starts probing after a failed query, unless a probe loop already runs. */
  healthcheck(): void {
    if (this.probing || this.stopped) return;
    this.probing = true;
    void this.probeLoop();
  }

  private async probeLoop(): Promise<void> {
    const signal = this.abort.signal;
    try {
      while (!signal.aborted) {
        if (await this.probe(signal)) {
          this.fails = 0;
          return;
        }
        if (signal.aborted) return;
        this.fails++;
        this.metrics.healthcheckFailed();
        await sleep(Math.max(this.options.healthIntervalMs, 10), signal);
      }
    } finally {
      this.probing = false;
    }
  }

  /** One probe: `<domain> IN NS` on a new connection; any reply with our ID is healthy. */
  probe(signal: AbortSignal = this.abort.signal): Promise<boolean> {
    const id = randomId();
    const packet = buildProbe(id, this.options.healthDomain, this.options.healthRecursionDesired);
    const proto: Proto = this.isTls ? 'tcp-tls' : this.options.healthOverTcp ? 'tcp' : 'udp';
    const isReply = (message: Buffer): boolean =>
      message.length >= HEADER_LENGTH && message.readUInt16BE(0) === id && (message.readUInt16BE(2) & Flag.QR) !== 0;
    return new Promise<boolean>((resolve) => {
      let cleanup = (): void => {};
      let settled = false;
      const finish = (healthy: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        cleanup();
        resolve(healthy);
      };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(false), timing.healthTimeoutMs);
      signal.addEventListener('abort', onAbort);
      if (proto === 'udp') {
        const socket = dgram.createSocket(net.isIPv6(this.spec.host.split('%')[0]!) ? 'udp6' : 'udp4');
        socket.unref();
        cleanup = () => socket.close();
        socket.on('error', () => finish(false));
        socket.on('message', (message) => {
          if (isReply(message)) finish(true);
        });
        socket.connect(this.spec.port, this.spec.host, () => socket.send(packet));
        return;
      }
      const conn = this.dial(proto, timing.healthTimeoutMs);
      cleanup = () => conn.socket.destroy();
      conn.ready.then(() => {
        if (signal.aborted || this.stopped) return conn.socket.destroy();
        let buffered: Buffer = Buffer.alloc(0);
        conn.socket.removeAllListeners('data');
        conn.socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (buffered.length >= 2 && buffered.length >= buffered.readUInt16BE(0) + 2) finish(isReply(buffered.subarray(2)));
        });
        conn.socket.on('close', () => finish(false));
        const frame = Buffer.allocUnsafe(packet.length + 2);
        frame.writeUInt16BE(packet.length, 0);
        packet.copy(frame, 2);
        conn.socket.write(frame);
      }, () => finish(false));
    });
  }

  /** Closes every connection and ends health checking (shutdown, reload). */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    const stopped = new UpstreamError('proxy: transport stopped');
    for (const conn of [...this.udpConns]) {
      this.dropUdp(conn);
      for (const waiter of [...conn.pending.values()]) waiter.settle(stopped);
    }
    for (const conn of [...this.idle.tcp, ...this.idle['tcp-tls'], ...this.busy]) conn.fail(stopped);
    this.idle.tcp = [];
    this.idle['tcp-tls'] = [];
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** `<domain> IN NS`, RD as configured, no EDNS: the health probe (FWD-9). */
function buildProbe(id: number, domain: string, recursionDesired: boolean): Buffer {
  return encodeQuestion(id, recursionDesired ? Flag.RD : 0, domain, Type.NS, Class.IN);
}
