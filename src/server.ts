// UDP and TCP listeners, zone selection and the reply path.
//
// One listener per (address, port) serves both transports and every server
// block on it (CF-13). Per query: decode header and question, pick the block
// by longest zone, run its chain, encode; a chain that answers synchronously
// never touches a promise.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { BlockPlan, ListenerPlan, ServerPlan } from './config.ts';
import { observeQuery } from './dns-metrics.ts';
import { createLogger, type Logger } from './log.ts';
import { defaultMaxInFlight, LoadShedder, maxInFlightFromEnv } from './load-shedding.ts';
import { inFlightReaders, shedQueries, tcpConnectionsClosed, tcpConnectionsOpen } from './metrics.ts';
import type { Next, Request, Transport } from './plugin.ts';
import { Class, Rcode, SERVER_UDP_SIZE, TCP_MAX_SIZE, Type, UDP_MIN_SIZE } from './wire/constants.ts';
import { emptyReply, encodeChainReply, encodeRejection, encodeReply, ServerReply, type Reply } from './wire/message.ts';
import { parentName } from './wire/names.ts';
import { decodeQuery, isRejection, type Query } from './wire/query.ts';
import { TcpConnections, type TcpConnection, type TcpTimeouts } from './tcp.ts';
import { bindUdpListener, type UdpListener } from './udp-listener.ts';
import { ReceiveQueue } from './udp-receive-queue.ts';

export interface ServerOptions {
  /**
   * Queries waiting on I/O (forwarding) across the server; past it, new ones
   * that would wait get REFUSED at once instead of queueing (users.md P3).
   * Default: CLUSTERDNS_MAX_IN_FLIGHT, else sized from memory (src/load-shedding.ts).
   */
  maxInFlight?: number;
  /**
   * TCP (WIRE-18): the first message must arrive whole within this after
   * accept, each later one within tcpIdleTimeoutMs after the previous answer,
   * and a reply the client does not read within tcpWriteTimeoutMs closes the
   * connection. The timeouts plugin sets them per listener.
   */
  tcpFirstQueryTimeoutMs?: number;
  tcpIdleTimeoutMs?: number;
  tcpWriteTimeoutMs?: number;
  /**
   * TCP: open connections across all listeners; past it a new connection
   * closes the least recently active one with no query in progress. Default:
   * 10,000, less when the open-files limit is lower.
   */
  tcpMaxConnections?: number;
  /** TCP: unanswered queries per connection before reading pauses. */
  tcpMaxPendingPerConnection?: number;
  /** Called when a plugin throws (CoreDNS counts coredns_panics_total). */
  onPanic?: (error: unknown) => void;
  /** The server's own log lines (socket errors, panics); default the process-wide sink. */
  log?: Logger;
}

const defaults = {
  tcpFirstQueryTimeoutMs: 3_000,
  tcpIdleTimeoutMs: 10_000,
  tcpWriteTimeoutMs: 5_000,
  tcpMaxPendingPerConnection: 64,
};

export interface BoundListener {
  label: string;
  address: string;
  port: number;
}

interface Peer {
  transport: Transport;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

type Answer = Buffer | null;

const badVersion = Object.freeze(emptyReply(Rcode.BADVERS));

interface ListenerRuntime {
  /** What this socket pair serves; replaced in place on reload (RELOAD-3). */
  plan: ListenerPlan;
  /** The whole server on this listener, for plugins that re-enter it (KP-31). */
  reenter: Next;
  udp: UdpListener;
  /** Sizes the UDP socket's receive queue to the load; null where the kernel's table cannot be read. */
  queue: ReceiveQueue | null;
  tcp: net.Server;
  bound: BoundListener;
  /** TCP deadlines of this listener: the defaults, or what its blocks' timeouts plugin set. */
  timeouts: TcpTimeouts;
  /** This listener's series of clusterdns_shed_queries_total and clusterdns_tcp_connections. */
  shed: { inc(): void };
  tcpOpen: { inc(): void; dec(): void };
  /** False once closing began: new queries are ignored, answers to accepted ones still go out. */
  accepting: boolean;
  /**
   * Shutting down (close): UDP queries are still answered while the accepted
   * ones drain, because with SO_REUSEPORT the kernel keeps sending this socket
   * its share of the port's datagrams until it closes. Those that would wait on
   * I/O get an empty TC answer: the client retries over TCP, which this
   * listener no longer accepts and an instance taking the port over does. So
   * no new work starts, the drain ends, and no query is lost at a hand-over.
   */
  handingOver: boolean;
  /** True once the sockets are closed: anything later is dropped. */
  closed: boolean;
}

/** Listeners are identified by address and port; a reload keeps the sockets of those it still has. */
function listenerKey(listener: ListenerPlan): string {
  return `${listener.address}|${listener.port}`;
}

export class DnsServer {
  private readonly options: Required<Omit<ServerOptions, 'onPanic' | 'log'>> & Pick<ServerOptions, 'onPanic'>;
  private readonly log: Logger;
  private readonly runtimes = new Map<string, ListenerRuntime>();
  private readonly tcpConnections: TcpConnections<ListenerRuntime>;
  private readonly load: LoadShedder;
  private readonly readInFlight = () => this.load.inFlight;
  private idle: (() => void) | null = null;
  /** Datagrams read by listeners that are closing (quietTurn). */
  private readsWhileClosing = 0;

  /** Throws when CLUSTERDNS_MAX_IN_FLIGHT is set to something other than a positive integer. */
  constructor(options: ServerOptions = {}) {
    this.options = {
      ...defaults,
      maxInFlight: maxInFlightFromEnv() ?? defaultMaxInFlight(),
      tcpMaxConnections: defaultMaxTcpConnections(),
      ...options,
    };
    this.log = options.log ?? createLogger('');
    this.load = new LoadShedder(this.options.maxInFlight, this.log);
    this.tcpConnections = new TcpConnections(
      { maxConnections: this.options.tcpMaxConnections, maxPendingPerConnection: this.options.tcpMaxPendingPerConnection },
      {
        opened: (runtime) => runtime.tcpOpen.inc(),
        closed: (runtime) => runtime.tcpOpen.dec(),
        closing: (runtime, reason) => tcpConnectionsClosed.labels(runtime.bound.label, reason).inc(),
      },
    );
    inFlightReaders.add(this.readInFlight);
  }

  /**
   * Serves `plan`: opens the listeners it adds, hands the ones it keeps over
   * to it without closing their sockets, and closes the ones it drops. If a
   * new listener cannot open, nothing changes and the error is thrown.
   */
  async serve(plan: ServerPlan): Promise<BoundListener[]> {
    const opened: ListenerRuntime[] = [];
    try {
      for (const listener of plan.listeners) {
        if (!this.runtimes.has(listenerKey(listener))) opened.push(await this.open(listener));
      }
    } catch (error) {
      await Promise.all(opened.map((runtime) => closeSockets(runtime)));
      throw error;
    }
    const kept = new Set<string>();
    for (const listener of plan.listeners) {
      const key = listenerKey(listener);
      kept.add(key);
      const runtime = this.runtimes.get(key) ?? opened.find((candidate) => candidate.plan === listener)!;
      runtime.plan = listener;
      // New connections get the new plan's deadlines; open ones keep theirs.
      runtime.timeouts = this.timeoutsOf(listener);
      this.runtimes.set(key, runtime);
    }
    for (const [key, runtime] of this.runtimes) {
      if (kept.has(key)) continue;
      this.runtimes.delete(key);
      // A listener the new plan dropped: answers already on their way may still go out.
      stopAccepting(runtime);
      setTimeout(() => void closeSockets(runtime), 5_000).unref();
    }
    // Plugins that query the server itself (loop) learn where each block is served.
    for (const block of plan.blocks) {
      const listening = plan.listeners.filter((listener) => [...listener.zones.values()].includes(block)).map((listener) =>
        ({ address: listener.address, configuredPort: listener.port, port: this.runtimes.get(listenerKey(listener))!.bound.port }));
      for (const { instance } of block.plugins) instance.listening?.(listening);
    }
    return this.listeners();
  }

  listeners(): BoundListener[] {
    return [...this.runtimes.values()].map((runtime) => runtime.bound);
  }

  /**
   * Stops taking queries, lets the ones already accepted be answered (up to
   * graceMs, WIRE-20), then closes the sockets.
   */
  async close(graceMs = 5_000): Promise<void> {
    const runtimes = [...this.runtimes.values()];
    this.runtimes.clear();
    for (const runtime of runtimes) {
      stopAccepting(runtime);
      runtime.handingOver = true;
    }
    await this.drained(graceMs);
    await this.quietTurn();
    await Promise.all(runtimes.map((runtime) => closeSockets(runtime)));
    this.tcpConnections.destroyAll();
    this.load.stop();
    inFlightReaders.delete(this.readInFlight);
  }

  /**
   * Waits (at most 100 ms) for a turn of the event loop in which no datagram
   * was read: the sockets then close with an empty receive queue, since what
   * the kernel queued for a closing socket is lost, while a second instance
   * sharing the port gets every datagram from then on.
   */
  private async quietTurn(): Promise<void> {
    const deadline = performance.now() + 100;
    for (;;) {
      const before = this.readsWhileClosing;
      await new Promise((resolve) => setImmediate(resolve));
      if (this.readsWhileClosing === before || performance.now() > deadline) return;
    }
  }

  /** WIRE-18: the defaults, overridden by the timeouts plugin of the listener's blocks (the last block setting one wins, as in CoreDNS). */
  private timeoutsOf(listener: ListenerPlan): TcpTimeouts {
    const timeouts: TcpTimeouts = {
      readMs: this.options.tcpFirstQueryTimeoutMs,
      idleMs: this.options.tcpIdleTimeoutMs,
      writeMs: this.options.tcpWriteTimeoutMs,
    };
    for (const block of new Set(listener.zones.values())) Object.assign(timeouts, block.context.timeouts);
    return timeouts;
  }

  /**
   * Answers one message as the listener at `index` would, without a socket
   * (the embedding API's resolve()): same zone choice, chain, size limits and
   * in-flight accounting. Null when the server stays silent (WIRE-1).
   */
  exchange(packet: Buffer, peer: { transport: Transport; remoteAddress: string; remotePort: number }, index = 0): Promise<Buffer | null> {
    const runtime = [...this.runtimes.values()][index];
    if (runtime === undefined || !runtime.accepting) return Promise.reject(new Error('the server is not serving'));
    const result = this.answer(runtime, packet, { ...peer, localAddress: runtime.bound.address, localPort: runtime.bound.port });
    if (!(result instanceof Promise)) return Promise.resolve(result);
    return new Promise((resolve) => this.deliver(result, resolve));
  }

  private drained(graceMs: number): Promise<void> {
    if (this.load.inFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      this.idle = () => {
        clearTimeout(timer);
        this.idle = null;
        resolve();
      };
    });
  }

  private async open(listener: ListenerPlan): Promise<ListenerRuntime> {
    const { udp, queue, tcp, address, port } = await this.bindPair(listener);
    const runtime: ListenerRuntime = {
      plan: listener,
      reenter: (request) => {
        const zone = selectZone(runtime.plan.zones, request.query);
        const block = zone === null ? undefined : runtime.plan.zones.get(zone);
        if (block === undefined || block.chain === null) return ServerReply.REFUSED;
        return block.chain({ ...request, zone: zone! });
      },
      udp,
      queue,
      tcp,
      bound: { label: listener.label, address, port },
      timeouts: this.timeoutsOf(listener),
      shed: shedQueries.labels(listener.label),
      tcpOpen: tcpConnectionsOpen.labels(listener.label),
      accepting: true,
      handingOver: false,
      closed: false,
    };
    tcpOwners.set(tcp, runtime);
    udp.listen((packet, remoteAddress, remotePort) => {
      if (!runtime.accepting) {
        if (!runtime.handingOver) return;
        this.readsWhileClosing++;
      }
      const result = this.answer(runtime, packet, {
        transport: 'udp',
        remoteAddress: unmapped(remoteAddress),
        remotePort,
        localAddress: address,
        localPort: port,
      });
      if (result === null) return;
      if (result instanceof Promise) {
        this.deliver(result, (reply) => {
          // After the grace time the socket may be closed; the answer is then dropped.
          if (!reply || runtime.closed) return;
          // Counted done only once the kernel has it: closing the socket cancels pending sends.
          return new Promise<void>((resolve) => udp.sendThen(reply, remotePort, remoteAddress, resolve));
        });
      } else {
        udp.send(result, remotePort, remoteAddress);
      }
    }, (error) => this.log.error(`udp ${listener.label}: ${error.message}`));
    tcp.on('error', (error) => this.log.error(`tcp ${listener.label}: ${error.message}`));
    return runtime;
  }

  /**
   * Binds UDP, then TCP on the same port. With port 0 (tests) the kernel
   * picks the UDP port, which a TCP socket may already hold: then try another.
   */
  private async bindPair(listener: ListenerPlan): Promise<{ udp: UdpListener; queue: ReceiveQueue | null; tcp: net.Server; address: string; port: number }> {
    for (let attempt = 1; ; attempt++) {
      const udp = await bindUdpListener(listener.address, listener.port, sharesPort(listener.port)).catch((error: unknown) => {
        throw listenError(listener, 'udp', error);
      });
      const { address, port } = udp;
      const tcp = net.createServer((connection) => this.serveTcp(runtimeOf(tcp), connection));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          // Go's listeners (CoreDNS) take the kernel's somaxconn as backlog; Node's default is 511.
          tcp.listen({ host: listener.address || address, port, ipv6Only: false, backlog: 4096, reusePort: sharesPort(listener.port) }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
        const queue = udp.inode === null ? null : new ReceiveQueue(udp, udp.inode, listener.label, this.log);
        return { udp, queue, tcp, address, port };
      } catch (error) {
        await udp.close();
        const retry = listener.port === 0 && (error as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 20;
        if (!retry) throw listenError(listener, 'tcp', error);
      }
    }
  }

  private serveTcp(runtime: ListenerRuntime, socket: net.Socket): void {
    const peer: Peer = {
      transport: 'tcp',
      remoteAddress: unmapped(socket.remoteAddress ?? ''),
      remotePort: socket.remotePort ?? 0,
      localAddress: unmapped(socket.localAddress ?? ''),
      localPort: socket.localPort ?? 0,
    };
    this.tcpConnections.accept(socket, runtime, runtime.timeouts, (message: Buffer, connection: TcpConnection) => {
      const result = this.answer(runtime, message, peer);
      if (result instanceof Promise) this.deliver(result, connection.reply);
      else connection.reply(result);
    });
  }

  /** The reply bytes for one message, null to stay silent (WIRE-1). */
  private answer(runtime: ListenerRuntime, packet: Buffer, peer: Peer): Answer | Promise<Answer> {
    const decoded = decodeQuery(packet);
    if (isRejection(decoded)) {
      return decoded.rcode === null ? null : encodeRejection(packet, decoded.rcode, decoded.questionEnd);
    }
    const query = decoded;
    const sizeLimit = peer.transport === 'tcp' ? TCP_MAX_SIZE
      : query.edns ? Math.max(query.edns.udpSize, UDP_MIN_SIZE) : UDP_MIN_SIZE;

    if (query.edns && query.edns.version > 0) {
      // WIRE-9: BADVERS at once, advertising our real payload size.
      return encodeReply({ ...query, edns: { ...query.edns, udpSize: SERVER_UDP_SIZE } }, badVersion, sizeLimit);
    }
    const listener = runtime.plan;
    const zone = selectZone(listener.zones, query);
    const block = zone === null ? undefined : listener.zones.get(zone);
    if (block === undefined || block.chain === null || (query.qclass !== Class.IN && !block.anyClass)) {
      const refused = encodeReply(query, ServerReply.REFUSED, sizeLimit);
      // PROM-2: queries no block takes are counted under zone "dropped".
      if (block === undefined) this.observeDropped(listener, query, peer, refused.length);
      return refused;
    }
    const request: Request = {
      query,
      transport: peer.transport,
      remoteAddress: peer.remoteAddress,
      remotePort: peer.remotePort,
      family: peer.remoteAddress.includes(':') ? 2 : 1,
      localAddress: peer.localAddress,
      localPort: peer.localPort,
      zone: zone!,
      server: listener.label,
      reenter: runtime.reenter,
      overloaded: this.load.full || runtime.handingOver,
    };
    let result: Reply | Promise<Reply>;
    try {
      result = block.chain(request);
    } catch (error) {
      return this.panicked(error, query, sizeLimit);
    }
    if (!(result instanceof Promise)) {
      if (result === ServerReply.SHED) {
        if (runtime.handingOver) return encodeReply(query, ServerReply.RETRY_OVER_TCP, sizeLimit);
        this.load.shed();
        runtime.shed.inc();
      }
      return encodeChainReply(query, result, peer.transport);
    }
    if (runtime.handingOver) {
      result.catch(() => {});
      return encodeReply(query, ServerReply.RETRY_OVER_TCP, sizeLimit);
    }
    if (this.load.full) {
      // A plugin other than forward waits: answered now, its work ends on its own.
      result.catch(() => {});
      this.load.shed();
      runtime.shed.inc();
      return encodeReply(query, ServerReply.REFUSED, sizeLimit);
    }
    this.load.inFlight++;
    return result.then(
      (reply) => encodeChainReply(query, reply, peer.transport),
      (error: unknown) => this.panicked(error, query, sizeLimit),
    );
  }

  /**
   * Sends an answer that waited on I/O, then counts the query done: a
   * shutdown waiting for in-flight queries (WIRE-20) closes the sockets only
   * after the answer went out.
   */
  private deliver(result: Promise<Answer>, send: (reply: Answer) => Promise<void> | void): void {
    result.then(send).finally(() => {
      if (--this.load.inFlight === 0 && this.idle) this.idle();
    });
  }

  private observeDropped(listener: ListenerPlan, query: Query, peer: Peer, responseSize: number): void {
    const family = peer.remoteAddress.includes(':') ? 2 : 1;
    observeQuery(listener.label, 'dropped', peer.transport, family, query.qtype, query.edns?.dnssecOk ?? false, query.packet.length, Rcode.REFUSED, responseSize, 0);
  }

  /** WIRE-5: an exception in the chain is SERVFAIL, logged and counted. */
  private panicked(error: unknown, query: Query, sizeLimit: number): Buffer {
    this.log.error(`Recovered from panic in server: "${query.qname}" ${error instanceof Error ? error.message : String(error)}`);
    this.options.onPanic?.(error);
    return encodeReply(query, ServerReply.SERVFAIL, sizeLimit);
  }
}

/**
 * A listener that cannot open, said as Go says it (`listen tcp :53: bind:
 * address already in use`, which is all CoreDNS prints), plus the Corefile
 * line of the server block key asking for it.
 */
function listenError(listener: ListenerPlan, transport: Transport, error: unknown): Error {
  const hostPort = listener.label.slice('dns://'.length);
  const key = [...listener.zones.values()].flatMap((block) => block.context.addresses).find((address) => address.port === listener.port)?.key;
  const where = key ? `${key.file}:${key.line} - server block '${key.text}': ` : '';
  const code = (error as NodeJS.ErrnoException).code;
  return Object.assign(new Error(`${where}${goListenError(transport, hostPort, error)}`, { cause: error }), { code });
}

/** `listen tcp :8080: bind: address already in use`: a failed listen as Go, and so CoreDNS, says it. */
export function goListenError(transport: string, hostPort: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === 'EADDRINUSE' ? 'bind: address already in use'
    : code === 'EACCES' ? 'bind: permission denied'
    : code === 'EADDRNOTAVAIL' ? 'bind: cannot assign requested address'
    : (error as Error).message;
  return `listen ${transport} ${hostPort}: ${reason}`;
}

/** An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d; logs and answers use a.b.c.d. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * Room for 10,000 TCP connections, less when the open-files limit (which
 * Node raises to the hard limit at startup) would not leave 1,000 descriptors
 * for upstream sockets, files and watches.
 */
function defaultMaxTcpConnections(): number {
  const limits = /^Max open files\s+(\d+)/m.exec(readLimits());
  const openFiles = limits ? Number(limits[1]) : Infinity;
  return Math.max(100, Math.min(10_000, openFiles - 1_000));
}

function readLimits(): string {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return '';
  }
}

/** The listener a TCP server belongs to (set once the pair is bound). */
const tcpOwners = new WeakMap<net.Server, ListenerRuntime>();
function runtimeOf(tcp: net.Server): ListenerRuntime {
  return tcpOwners.get(tcp)!;
}

/** New datagrams are ignored and the TCP side takes no new connections. */
function stopAccepting(runtime: ListenerRuntime): void {
  runtime.accepting = false;
  if (runtime.tcp.listening) runtime.tcp.close();
}

function closeSockets(runtime: ListenerRuntime): Promise<void> {
  if (runtime.closed) return Promise.resolve();
  runtime.accepting = false;
  runtime.handingOver = false;
  runtime.closed = true;
  runtime.queue?.stop();
  if (runtime.tcp.listening) runtime.tcp.close();
  return runtime.udp.close();
}

/**
 * CF-13: the longest zone on the listener containing the name; for DS the
 * parent-most one, so the parent side of a zone cut answers.
 */
function selectZone(zones: Map<string, BlockPlan>, query: Query): string | null {
  // The stock setup: one block for the root; no need to walk the labels.
  if (zones.size === 1 && zones.has('.')) return '.';
  let found: string | null = null;
  for (let name: string | null = query.qname; name !== null; name = parentName(name)) {
    if (!zones.has(name)) continue;
    found = name;
    if (query.qtype !== Type.DS) return found;
  }
  return found;
}

/**
 * SO_REUSEPORT on configured ports, as CoreDNS's listeners have it: a second
 * instance (a new version, a restart) can bind the port while the first one
 * finishes its lameduck, so the port is never closed. Not for port 0 (tests,
 * embedding), where a kernel-chosen UDP port must not be silently shared with
 * another process's TCP listener.
 */
function sharesPort(port: number): boolean {
  return port !== 0;
}

