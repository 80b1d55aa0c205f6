// The embedding API: a clusterdns server started, reloaded, queried and
// closed by a Node program (tests of a controller, development tools), with
// the same setup, reload and shutdown code the command runs.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { quietLog, processLog, type LogSink } from './log.ts';
import type { PluginDefinition, Transport } from './plugin.ts';
import { builtinPlugins, type PluginPlacement, type PluginRegistry } from './registry.ts';
import { Supervisor, type CorefileInput } from './supervisor.ts';
import { MemoryCluster, type KubernetesObjects } from '../plugins/kubernetes/memory-source.ts';

/** A program's own plugin, named in the Corefile like a built-in one, at a chosen place in the chain. */
export type EmbeddedPlugin = { plugin: PluginDefinition<any> } & PluginPlacement;

export interface StartOptions {
  /** The Corefile's text. Relative paths in it (manifests, hosts files, imports) resolve against the working directory. */
  corefile?: string;
  /** Or a Corefile on disk, read at start and at each reload() without text. */
  corefilePath?: string;
  /** Port for server block keys without one (the command's -dns.port); default 53. Port 0 in a key means any free port. */
  dnsPort?: number;
  /**
   * Where log lines go: 'quiet' (default) drops them, 'stdout' prints them as
   * the command does, a function receives each line ("[INFO] plugin/reload: ...").
   */
  log?: 'quiet' | 'stdout' | LogSink;
  /** In-memory Kubernetes clusters, by the name the kubernetes plugin's `memory NAME` uses ('default' when no name). */
  clusters?: Record<string, MemoryCluster>;
  /** The program's own plugins. */
  plugins?: readonly EmbeddedPlugin[];
  /** Values for {$ENV} in the Corefile; default process.env. */
  env?: Record<string, string | undefined>;
}

export interface Listener {
  /** The bound address: '::' or '0.0.0.0' for a key without `bind`. */
  address: string;
  /** The bound port (the one the kernel chose for port 0). */
  port: number;
  transport: Transport;
  /** The zones served on it, as the startup banner lists them. */
  zones: string[];
}

export interface ResolvedRecord {
  name: string;
  type: string;
  class: string;
  ttl: number;
  /** As dns-packet decodes it: an address string for A/AAAA, a name for CNAME/PTR/NS, an object for SRV/SOA/MX. */
  data: unknown;
}

export interface Resolution {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... */
  rcode: string;
  authoritative: boolean;
  truncated: boolean;
  answer: ResolvedRecord[];
  authority: ResolvedRecord[];
  additional: ResolvedRecord[];
  /** The reply as it would go on the wire. */
  message: Buffer;
}

export interface ResolveOptions {
  /** As which transport the query arrives (size limits, the log's proto field); default 'udp'. */
  transport?: Transport;
  /** The client address plugins see (acl, log, whoami); default 127.0.0.1. */
  from?: string;
  /** Which listener answers, by its port; default the first. */
  port?: number;
}

export interface ClusterDnsServer {
  /** UDP and TCP for every address and port served. */
  readonly listeners: readonly Listener[];
  /**
   * Replaces the configuration as SIGUSR1 does: the new one is set up while
   * the old one serves, listeners kept are handed over, and a bad Corefile
   * rejects with its file:line error while the old one keeps serving.
   * Without text, a `corefilePath` is read again.
   */
  reload(corefile?: string): Promise<void>;
  /** Runs one query through the chain without a socket. */
  resolve(name: string, type?: string, options?: ResolveOptions): Promise<Resolution>;
  /** Shuts down as SIGTERM does (lameduck of `health` honoured); every socket, timer and watch is released. */
  close(): Promise<void>;
}

/** An in-memory Kubernetes cluster to give startServer (`clusters`) and change while it serves. */
export function createCluster(objects?: KubernetesObjects): MemoryCluster {
  return new MemoryCluster(objects);
}

export async function startServer(options: StartOptions): Promise<ClusterDnsServer> {
  if ((options.corefile === undefined) === (options.corefilePath === undefined)) {
    throw new TypeError('startServer needs exactly one of `corefile` (text) and `corefilePath`');
  }
  const log = options.log === 'stdout' ? processLog : options.log === 'quiet' || options.log === undefined ? quietLog : options.log;
  let registry: PluginRegistry = builtinPlugins;
  for (const embedded of options.plugins ?? []) registry = registry.withPlugin(embedded.plugin, embedded);

  const filePath = options.corefilePath === undefined ? null : path.resolve(options.corefilePath);
  let text = options.corefile ?? '';
  const load = (): CorefileInput =>
    filePath === null ? { text, file: 'Corefile' } : { text: readFileSync(filePath, 'utf8'), file: filePath };

  const supervisor = new Supervisor({
    load,
    dnsPort: options.dnsPort ?? 53,
    env: options.env,
    log,
    plugins: registry,
    memoryClusters: new Map(Object.entries(options.clusters ?? {})),
  });
  await supervisor.start();
  if (supervisor.listeners().length === 0) {
    await supervisor.shutdown();
    throw new TypeError('the Corefile has no server blocks: nothing to serve');
  }

  const server: ClusterDnsServer = {
    listeners: listenersOf(supervisor),
    async reload(corefile) {
      if (corefile !== undefined) {
        if (filePath !== null) throw new TypeError('this server reads its Corefile from corefilePath; call reload() without text');
        text = corefile;
      }
      const outcome = await supervisor.reload();
      if (outcome === 'failed') throw supervisor.lastReloadError() ?? new Error('reload failed');
      (server as { listeners: readonly Listener[] }).listeners = listenersOf(supervisor);
    },
    async resolve(name, type = 'A', resolveOptions = {}) {
      const query = dnsPacket.encode({
        type: 'query',
        id: Math.floor(Math.random() * 65536),
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ name, type: type.toUpperCase() as 'A', class: 'IN' }],
      });
      const bound = supervisor.listeners();
      const index = resolveOptions.port === undefined ? 0 : bound.findIndex((listener) => listener.port === resolveOptions.port);
      if (index < 0) throw new Error(`no listener on port ${resolveOptions.port}`);
      const reply = await supervisor.exchange(query, {
        transport: resolveOptions.transport ?? 'udp',
        remoteAddress: resolveOptions.from ?? '127.0.0.1',
        remotePort: 0,
      }, index);
      if (reply === null) throw new Error(`the server sent no reply to ${name} ${type}`);
      return resolution(reply);
    },
    close: () => supervisor.shutdown(),
  };
  return server;
}

function listenersOf(supervisor: Supervisor): Listener[] {
  const plan = supervisor.current()!;
  return supervisor.listeners().flatMap((bound) => {
    const zones = [...(plan.listeners.find((listener) => listener.label === bound.label)?.zones.keys() ?? [])];
    return (['udp', 'tcp'] as const).map((transport) => ({ address: bound.address, port: bound.port, transport, zones }));
  });
}

function resolution(message: Buffer): Resolution {
  // dns-packet decodes the rcode name; its types leave it out.
  const decoded = dnsPacket.decode(message) as dnsPacket.DecodedPacket & { rcode?: string };
  const records = (list: dnsPacket.Answer[] | undefined): ResolvedRecord[] =>
    (list ?? []).filter((record) => record.type !== 'OPT').map((record) => {
      const { name, type, ttl, data } = record as dnsPacket.Answer & { ttl?: number; data?: unknown };
      return { name, type, class: (record as { class?: string }).class ?? 'IN', ttl: ttl ?? 0, data };
    });
  return {
    rcode: decoded.rcode ?? 'NOERROR',
    authoritative: ((decoded.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER) !== 0,
    truncated: ((decoded.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0,
    answer: records(decoded.answers),
    authority: records(decoded.authorities),
    additional: records(decoded.additionals),
    message,
  };
}
