// TCP connections of the DNS listeners: framing (WIRE-16), pipelining
// (WIRE-17), the deadlines CoreDNS applies (WIRE-18) and the limits that keep
// thousands of idle or slow clients from shutting fresh ones out.
//
// Deadlines bound the time to a WHOLE message, as Go's SetReadDeadline does
// in CoreDNS: a client that trickles a byte at a time is closed when the
// deadline passes, however active it looks. After accept the first message
// has `readMs`; after each answer the next message has `idleMs`. While a
// query is being answered the client is not waiting on itself, so no read
// deadline runs; a reply the client does not read for `writeMs` closes it.
//
// Past `maxConnections` (all listeners together) a new connection closes the
// least recently active one that has no query in progress, so new clients
// are never turned away for idle ones.

import type net from 'node:net';
import type { TcpTimeouts } from './plugin.ts';

export type { TcpTimeouts };

export interface TcpLimits {
  maxConnections: number;
  /** Unanswered queries per connection before reading pauses. */
  maxPendingPerConnection: number;
}

export type CloseReason = 'read_timeout' | 'idle_timeout' | 'write_timeout' | 'evicted';

/**
 * Replies waiting in user space for a client that reads slowly, past which
 * its further queries wait unread: one 64 KiB read can hold thousands of
 * queries, whose answers would otherwise all be buffered at once.
 */
const OUTPUT_BACKLOG_LIMIT = 256 * 1024;

/** What the server does with each whole message; the answer goes back through `connection.reply`. */
export type MessageHandler = (message: Buffer, connection: TcpConnection) => void;

/** The listener a connection came in on: once it stops accepting, new queries are ignored. */
export interface TcpOwner {
  readonly accepting: boolean;
}

export interface TcpEvents<Owner extends TcpOwner> {
  opened(owner: Owner): void;
  /** The connection is gone, whoever closed it. */
  closed(owner: Owner): void;
  /** The server closes the connection, for `reason`. */
  closing(owner: Owner, reason: CloseReason): void;
}

export class TcpConnection {
  readonly socket: net.Socket;
  readonly owner: TcpOwner;
  private readonly pool: TcpConnections<any>;
  private readonly timeouts: TcpTimeouts;
  private readonly onMessage: MessageHandler;
  private pending: Buffer = Buffer.alloc(0);
  /** Queries read and not yet answered. */
  unanswered = 0;
  /** The client must have sent a whole message by then (performance.now() ms); unused while queries are in progress. */
  private deadline: number;
  private deadlineTimer: NodeJS.Timeout;
  private deadlineReason: CloseReason = 'read_timeout';
  private writeTimer: NodeJS.Timeout | null = null;
  /** True while queries of the input are being taken (a synchronous answer re-enters through reply). */
  private taking = false;

  constructor(socket: net.Socket, owner: TcpOwner, pool: TcpConnections<any>, timeouts: TcpTimeouts, onMessage: MessageHandler) {
    this.socket = socket;
    this.owner = owner;
    this.pool = pool;
    this.timeouts = timeouts;
    this.onMessage = onMessage;
    this.deadline = performance.now() + timeouts.readMs;
    this.deadlineTimer = setTimeout(this.checkDeadline, timeouts.readMs);
    socket.setNoDelay(true);
    socket.on('data', this.read);
    socket.on('drain', this.drained);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(this.deadlineTimer);
      if (this.writeTimer) clearTimeout(this.writeTimer);
      pool.forget(this);
    });
  }

  close(reason: CloseReason): void {
    if (this.socket.destroyed) return;
    this.pool.closing(this, reason);
    this.socket.destroy();
  }

  /**
   * Sends the answer to one of this connection's queries (null: none, the
   * query is dropped) and counts it done. Resolves once the kernel has it.
   */
  readonly reply = (answer: Buffer | null): Promise<void> | void => {
    this.unanswered--;
    if (this.unanswered === 0) this.rearm(this.timeouts.idleMs, 'idle_timeout');
    if (answer === null || this.socket.destroyed) {
      this.takeMore();
      return;
    }
    const framed = Buffer.allocUnsafe(answer.length + 2);
    framed.writeUInt16BE(answer.length, 0);
    answer.copy(framed, 2);
    return new Promise<void>((resolve) => {
      const flushed = this.socket.write(framed, () => resolve());
      // The client is not keeping up: it has writeMs to take the replies (drain), or is closed.
      if (!flushed && this.writeTimer === null) this.writeTimer = setTimeout(() => this.close('write_timeout'), this.timeouts.writeMs);
      this.takeMore();
    });
  };

  private readonly read = (chunk: Buffer): void => {
    if (!this.owner.accepting) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.takeMore();
  };

  private readonly drained = (): void => {
    if (this.writeTimer) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    this.takeMore();
  };

  /** Too many queries unanswered, or too many replies unread: read no further for now. */
  private blocked(): boolean {
    return this.unanswered >= this.pool.limits.maxPendingPerConnection || this.socket.writableLength > OUTPUT_BACKLOG_LIMIT;
  }

  /** Takes the whole queries already received while there is room, then reads on or pauses. */
  private takeMore(): void {
    if (this.taking || this.socket.destroyed) return;
    this.taking = true;
    let pending = this.pending;
    // WIRE-16: a length and its message may arrive in any number of segments.
    while (pending.length >= 2 && !this.blocked()) {
      const length = pending.readUInt16BE(0);
      if (pending.length < length + 2) break;
      const message = pending.subarray(2, length + 2);
      pending = pending.subarray(length + 2);
      this.unanswered++;
      this.pool.touch(this);
      // RFC 7766 §6.2.1.1: pipelined queries are answered as each completes.
      this.onMessage(message, this);
    }
    this.pending = pending;
    this.taking = false;
    if (this.blocked()) this.socket.pause();
    else if (this.socket.isPaused()) this.socket.resume();
  }

  /** The next whole message is due `ms` from now. */
  private rearm(ms: number, reason: CloseReason): void {
    const deadline = performance.now() + ms;
    this.deadlineReason = reason;
    // The timer only ever fires early, then sleeps until the deadline; an earlier deadline needs a new timer.
    if (deadline < this.deadline) {
      clearTimeout(this.deadlineTimer);
      this.deadlineTimer = setTimeout(this.checkDeadline, ms);
    }
    this.deadline = deadline;
  }

  private readonly checkDeadline = (): void => {
    if (this.socket.destroyed) return;
    // A query in progress, or replies the client has yet to read (the write timeout covers that):
    // the next deadline starts when it is answered.
    const waitingOnUs = this.unanswered > 0 || this.writeTimer !== null;
    const left = waitingOnUs ? this.timeouts.idleMs : this.deadline - performance.now();
    if (left > 1) {
      this.deadlineTimer = setTimeout(this.checkDeadline, left);
      return;
    }
    this.close(this.deadlineReason);
  };
}

/** Every open DNS-over-TCP connection of a server, least recently active first. */
export class TcpConnections<Owner extends TcpOwner> {
  readonly limits: TcpLimits;
  private readonly events: TcpEvents<Owner>;
  /** Insertion order is activity order: a connection moves to the end on each message. */
  private readonly open = new Set<TcpConnection>();

  constructor(limits: TcpLimits, events: TcpEvents<Owner>) {
    this.limits = limits;
    this.events = events;
  }

  get size(): number {
    return this.open.size;
  }

  /** Takes a new connection for `owner` (a listener), making room first if the limit is reached. */
  accept(socket: net.Socket, owner: Owner, timeouts: TcpTimeouts, onMessage: MessageHandler): void {
    if (this.open.size >= this.limits.maxConnections && !this.evictOne()) {
      // Every connection has a query in progress: the newcomer waits its turn elsewhere.
      socket.destroy();
      return;
    }
    const connection = new TcpConnection(socket, owner, this, timeouts, onMessage);
    this.open.add(connection);
    this.events.opened(owner);
  }

  touch(connection: TcpConnection): void {
    this.open.delete(connection);
    this.open.add(connection);
  }

  forget(connection: TcpConnection): void {
    if (this.open.delete(connection)) this.events.closed(connection.owner as Owner);
  }

  closing(connection: TcpConnection, reason: CloseReason): void {
    this.events.closing(connection.owner as Owner, reason);
  }

  /** Closes the least recently active connection with no query in progress; false if there is none. */
  private evictOne(): boolean {
    for (const connection of this.open) {
      if (connection.unanswered > 0) continue;
      connection.close('evicted');
      // 'close' comes later; make the room now.
      this.forget(connection);
      return true;
    }
    return false;
  }

  destroyAll(): void {
    for (const connection of this.open) connection.socket.destroy();
  }
}
