// From Corefile text to a plan of server blocks and listeners, with every
// plugin parsed and instantiated. Nothing here runs per query.

import { createHash } from 'node:crypto';
import { followsPreferredSyntax, normalizeKey } from './corefile/address.ts';
import { parseCorefile } from './corefile/parser.ts';
import { CorefileError, type Directive, type ServerBlockSource, type Token, type ZoneAddress } from './corefile/types.ts';
import { buildChain } from './chain.ts';
import { createLogger, processLog, writeLog, type LogSink } from './log.ts';
import type { MemoryCluster } from '../plugins/kubernetes/memory-source.ts';
import type { BlockContext, Handler, Next, PluginEntry, ServerSettings } from './plugin.ts';
import { ANY_CLASS_PLUGINS, builtinPlugins, type PluginRegistry } from './registry.ts';

export interface BlockPlan {
  context: BlockContext;
  /** Plugin instances in registry order (setup-only ones included). */
  plugins: PluginEntry[];
  /** The query chain; null for a block with no directives (answers REFUSED, CF-14). */
  chain: Next | null;
  /** True when a plugin that serves other classes is loaded (WIRE-6). */
  anyClass: boolean;
}

export interface ListenerPlan {
  /** IP to bind; '' is the wildcard. */
  address: string;
  port: number;
  /** CoreDNS's server label: dns://:53, dns://127.0.0.1:53 (PROM-2). */
  label: string;
  /** Zone → block serving it on this listener. */
  zones: Map<string, BlockPlan>;
}

export interface ServerPlan {
  blocks: BlockPlan[];
  listeners: ListenerPlan[];
  settings: ServerSettings;
  /** SHA-512 of the Corefile as parsed, imports expanded: what reload compares (RELOAD-2). */
  hash: string;
}

export interface PlanOptions {
  /** Port for keys without one: 53, or -dns.port (CF-11). */
  dnsPort: number;
  env?: Record<string, string | undefined>;
  /** Where setup warnings and the plugins' log lines go; default the process-wide sink. */
  log?: LogSink;
  /** The plugins a Corefile may name and their order; default the built-in ones. */
  plugins?: PluginRegistry;
  /** In-memory clusters by name, for the kubernetes plugin's `memory NAME` (embedding API). */
  memoryClusters?: ReadonlyMap<string, MemoryCluster>;
  /**
   * -validate: every setup error is reported here and setup goes on without
   * the key, directive or plugin at fault. Without it the first error throws.
   */
  onError?: (error: CorefileError) => void;
}

/** Parses the Corefile, imports expanded; syntax errors only, no plugin setup. */
export function parseConfig(text: string, file: string, options: PlanOptions): ServerBlockSource[] {
  const log = options.log ?? processLog;
  const plugins = options.plugins ?? builtinPlugins;
  return parseCorefile(text, file, { env: options.env, isDirective: (name) => plugins.isDirective(name), warn: (message) => writeLog('WARNING', message, log), onError: options.onError });
}

export function planFromCorefile(text: string, file: string, options: PlanOptions): ServerPlan {
  return planFromSources(parseConfig(text, file, options), file, options);
}

/** The form of a parsed Corefile that reload hashes: tokens only, so comments and spacing do not count. */
export function configHash(sources: ServerBlockSource[]): string {
  const directive = (line: Directive): unknown => [line.name.text, line.args.map((arg) => arg.text), line.block?.map(directive) ?? null];
  const canonical = sources.map((source) => [source.keys.map((key) => key.text), source.directives.map(directive)]);
  return createHash('sha512').update(JSON.stringify(canonical)).digest('hex');
}

/** Sets up every plugin of every block; throws CorefileError for setup errors. */
export function planFromSources(sources: ServerBlockSource[], file: string, options: PlanOptions): ServerPlan {
  const settings: ServerSettings = { reload: null, lameduckMs: 0 };
  const log = options.log ?? processLog;
  const blocks = sources.map((source) => ({
    source,
    addresses: source.keys.filter((key) => key.text !== '').flatMap((key) => settle(options.onError, key, () => normalizeKey(key, options.dnsPort), [])),
  }));
  for (const zone of new Set(blocks.flatMap((block) => block.addresses.map((address) => address.zone)))) {
    // CF-11: only a warning, as in CoreDNS.
    if (!followsPreferredSyntax(zone)) writeLog('WARNING', `Domain "${zone}" does not follow RFC1035 preferred syntax`, log);
  }
  const plans = blocks.map(({ source, addresses }) => planBlock(source.directives, addresses, file, settings, log, options));
  const plan: ServerPlan = { blocks: plans, listeners: planListeners(plans, options.onError), settings, hash: configHash(sources) };
  // explain: the endpoint's plugin reaches the whole plan (zone selection across blocks) through its settings.
  settings.plan = plan;
  return plan;
}

/**
 * Runs one setup step. Without a collector an error propagates as it is;
 * with one (-validate) it is reported, as a CorefileError at `where` when the
 * step threw something else, and `fallback` stands in for the result.
 */
function settle<T>(onError: PlanOptions['onError'], where: Token, step: () => T, fallback: T): T {
  if (!onError) return step();
  try {
    return step();
  } catch (error) {
    onError(error instanceof CorefileError ? error : new CorefileError(where, error instanceof Error ? error.message : String(error)));
    return fallback;
  }
}

function planBlock(directives: Directive[], addresses: ZoneAddress[], corefile: string, settings: ServerSettings, log: LogSink, options: PlanOptions): BlockPlan {
  const registry = options.plugins ?? builtinPlugins;
  const plugins: BlockPlan['plugins'] = [];
  const context: BlockContext = {
    zones: [...new Set(addresses.map((address) => address.zone))],
    addresses,
    bindAddresses: [],
    corefile,
    authorities: [],
    plugins,
    settings,
    log,
    memoryClusters: options.memoryClusters ?? new Map(),
  };
  const byName = new Map<string, Directive[]>();
  for (const directive of directives) {
    const name = directive.name.text;
    if (!registry.definition(name)) {
      const error = new CorefileError(directive.name, `Directive '${name}' is a CoreDNS plugin that clusterdns does not support`);
      if (!options.onError) throw error;
      options.onError(error);
      continue;
    }
    byName.set(name, [...(byName.get(name) ?? []), directive]);
  }
  const handlers: Handler[] = [];
  for (const name of registry.order) {
    const occurrences = byName.get(name);
    if (!occurrences) continue;
    const definition = registry.definition(name)!;
    const instance = settle(options.onError, occurrences[0]!.name, () => definition.create(definition.parse(occurrences, context), context, createLogger(name, log)), null);
    if (!instance) continue;
    plugins.push({ name, instance, directive: occurrences[0]!.name });
    if (instance.serve) handlers.push(instance.serve);
  }
  return {
    context,
    plugins,
    chain: directives.length === 0 ? null : buildChain(handlers),
    anyClass: plugins.some(({ name }) => ANY_CLASS_PLUGINS.has(name)),
  };
}

/**
 * Groups zones into listeners. Duplicates are checked here, once bind is
 * known: the same zone and port may be served on different addresses, not
 * twice on one, nor both on an address and on the wildcard (CF-14).
 */
function planListeners(blocks: BlockPlan[], onError?: PlanOptions['onError']): ListenerPlan[] {
  const fail = (error: CorefileError): void => {
    if (!onError) throw error;
    onError(error);
  };
  const listeners = new Map<string, ListenerPlan>();
  const boundZones = new Map<string, boolean>();
  for (const block of blocks) {
    const binds = block.context.bindAddresses.length > 0 ? block.context.bindAddresses : [''];
    const bound = binds[0] !== '';
    for (const address of block.context.addresses) {
      const zonePort = `${address.zone}:${address.port}`;
      const seenBound = boundZones.get(zonePort);
      if (seenBound !== undefined && seenBound !== bound) {
        fail(new CorefileError(address.key, `cannot serve dns://${zonePort} - zone overlap listener capacity: it is served both on specific addresses (bind) and on all addresses`));
        continue;
      }
      boundZones.set(zonePort, bound);
      for (const ip of binds) {
        const id = `${ip}|${address.port}`;
        let listener = listeners.get(id);
        if (!listener) {
          const host = ip.includes(':') ? `[${ip}]` : ip;
          listener = { address: ip, port: address.port, label: `dns://${host}:${address.port}`, zones: new Map() };
          listeners.set(id, listener);
        }
        if (listener.zones.has(address.zone)) {
          fail(new CorefileError(address.key, `cannot serve dns://${zonePort} - it is already defined`));
          continue;
        }
        listener.zones.set(address.zone, block);
      }
    }
  }
  return [...listeners.values()];
}
