// The contract between the core and a plugin folder (plugins/<name>/index.ts).
//
// Setup is separate from serving: `parse` turns the block's directive lines
// into a typed config (throwing CorefileError with file and line), `create`
// builds the instance once per server block, and only `serve` runs per query.

import type { ServerPlan } from './config.ts';
import type { Directive, Token, ZoneAddress } from './corefile/types.ts';
import type { Logger, LogSink } from './log.ts';
import type { MemoryCluster } from '../plugins/kubernetes/memory-source.ts';
import type { Query } from './wire/query.ts';
import type { Reply } from './wire/message.ts';

export type Transport = 'udp' | 'tcp';

/** A query as the chain sees it. */
export interface Request {
  query: Query;
  transport: Transport;
  remoteAddress: string;
  remotePort: number;
  /** 1 for IPv4, 2 for IPv6, as CoreDNS's metrics label it. */
  family: 1 | 2;
  localAddress: string;
  localPort: number;
  /** The server-block zone chosen for this query (CF-13). */
  zone: string;
  /** The listener as CoreDNS labels it: dns://:53, dns://127.0.0.1:53. */
  server: string;
  /**
   * The whole server on this listener (zone selection, then that block's
   * chain), for plugins that re-enter it with a new question (KP-31).
   */
  reenter: Next;
  /**
   * The server is at its in-flight cap: a plugin that would start waiting on
   * I/O (forward) answers ServerReply.SHED instead, so shed queries start no
   * upstream work (users.md P3). Answers that need no I/O go on as usual.
   */
  overloaded: boolean;
  /**
   * Set only on a query run by explain (src/explain), never by the listeners:
   * this plugin's step of the trace, for details only the plugin sees while
   * it serves (forward: the upstreams tried). Plugins on the hot path read it
   * only where they already wait on I/O.
   */
  trace?: TraceStep;
}

/** One plugin's step of an explain trace. */
export interface TraceStep {
  readonly plugin: string;
  /** What the plugin decided: answered, passed on, hit, miss, NXDOMAIN... */
  outcome: string;
  /** Facts behind the decision, as JSON values. */
  readonly detail: Record<string, unknown>;
}

/**
 * What a plugin can say about a query, asked only by explain (cold path):
 * `before` right before its handler runs, `after` once it replied. The
 * traced chain already records for every plugin whether it answered or
 * passed the query on and what the reply held; these add the why.
 */
export interface PluginExplainer {
  before?(request: Request): Record<string, unknown> | undefined;
  /** `passedOn`: the handler called the rest of the chain. May set step.outcome. */
  after?(request: Request, reply: Reply, step: TraceStep, passedOn: boolean): void;
}

/**
 * The rest of the chain. A handler may call it several times (autopath does)
 * or not at all, and may pass a request with another question.
 */
export type Next = (request: Request) => Reply | Promise<Reply>;

/** A hit answers synchronously; only I/O-bound plugins return promises. */
export type Handler = (request: Request, next: Next) => Reply | Promise<Reply>;

export interface PluginInstance {
  /** Absent for setup-only plugins (bind, health, ready, reload: CF-18). */
  serve?: Handler;
  /** Runs before the listeners open, in registry order (CF-19). */
  start?(): Promise<void> | void;
  /**
   * First step of a shutdown (SIGTERM) while DNS still serves: the kubernetes
   * plugin stops its watches, ready starts answering 503 (HEALTH-3, KP-27).
   */
  shutdown?(): Promise<void> | void;
  /** Last step: after the listeners closed at shutdown, or when a reload replaced the block. */
  stop?(): Promise<void> | void;
  /** For /ready: false until the plugin can answer (KP-26). */
  ready?(): boolean;
  /**
   * Runs once every listener is open, with the listeners serving this block
   * (port 0 in a key becomes the port the kernel chose). For plugins that
   * query the server itself, such as loop.
   */
  listening?(listeners: readonly ListeningAddress[]): void;
  /** For `clusterdns explain` and the explain endpoint only (src/explain). */
  explain?: PluginExplainer;
}

/** A listener of a block, once open. */
export interface ListeningAddress {
  /** The bind address as planned; '' is the wildcard. */
  address: string;
  /** The port as the key gave it. */
  configuredPort: number;
  /** The port actually bound. */
  port: number;
}

/** A plugin set up in a block, with the Corefile line that named it (for errors at start). */
export interface PluginEntry {
  name: string;
  instance: PluginInstance;
  directive: Token;
}

/** What a plugin knows about the server block it is set up in. */
export interface BlockContext {
  /** The block's zones, canonical, in key order (CIDR keys expanded). */
  readonly zones: string[];
  readonly addresses: ZoneAddress[];
  /** Addresses the listeners bind; empty means the wildcard. Set by `bind`. */
  bindAddresses: string[];
  /** The Corefile path, for resolving relative file arguments. */
  readonly corefile: string;
  /**
   * Plugins answering from data that changes (kubernetes, hosts) register
   * here at create time. A cache compares generations, so an answer never
   * outlives a change the authority has seen (users.md P5).
   */
  readonly authorities: Authority[];
  /** Every plugin instance of the block, filled as they are created (ready reads it). */
  readonly plugins: PluginEntry[];
  /** Process-wide settings some setup-only plugins make; shared by all blocks. */
  readonly settings: ServerSettings;
  /** Where this server's log lines go (parse-time warnings use it; create gets a Logger on it). */
  readonly log: LogSink;
  /** In-memory clusters an embedding program gave, by name (the kubernetes plugin's `memory NAME`). */
  readonly memoryClusters: ReadonlyMap<string, MemoryCluster>;
  /** TCP deadlines of the block's listeners, set by `timeouts`; absent: CoreDNS's (WIRE-18). */
  timeouts?: Partial<TcpTimeouts>;
}

/** Deadlines of a DNS-over-TCP connection, in milliseconds (src/tcp.ts applies them). */
export interface TcpTimeouts {
  /** The first message must arrive whole within this after accept (CoreDNS: 3 s). */
  readMs: number;
  /** Each later message must arrive whole within this after the previous answer (CoreDNS: 10 s). */
  idleMs: number;
  /** A reply the client does not take within this closes the connection (CoreDNS: 5 s). */
  writeMs: number;
}

export interface ServerSettings {
  /** `reload`: how often to check the Corefile for changes (RELOAD-1); null when absent. */
  reload: { intervalMs: number; jitterMs: number } | null;
  /** `health { lameduck }`: how long DNS keeps serving after SIGTERM (HEALTH-3). */
  lameduckMs: number;
  /** The plan these settings belong to, once planned: the explain endpoint selects zones across its blocks. */
  plan?: ServerPlan;
}

export interface Authority {
  /** Canonical zones the plugin answers for. */
  zones: readonly string[];
  /** Bumped on every change of the data behind the answers. */
  generation(): number;
}

export interface PluginDefinition<Config = unknown> {
  name: string;
  /** Parses every occurrence of the directive in the block, in Corefile order (CF-8). */
  parse(directives: Directive[], block: BlockContext): Config;
  create(config: Config, block: BlockContext, log: Logger): PluginInstance;
}

/** Helper for plugin modules: keeps Config typed at the definition site. */
export function definePlugin<Config>(definition: PluginDefinition<Config>): PluginDefinition<Config> {
  return definition;
}

/**
 * Applies `then` to a reply that may or may not be a promise, without
 * allocating a promise for the synchronous case (cache hits, authoritative answers).
 */
export function whenReplied<T>(result: Reply | Promise<Reply>, then: (reply: Reply) => T): T | Promise<T> {
  return result instanceof Promise ? result.then(then) : then(result);
}
