// clusterdns -validate: every setup check the server makes, all errors at
// once, and warnings for mistakes CoreDNS lets through (coredns/coredns#5152).
//
// The Corefile goes through the server's own code: parseConfig, then
// planFromSources with an error collector, so each plugin's parse and create
// run as at startup. Nothing is started, so nothing binds, watches or dials:
// create opens nothing in any built-in plugin (hosts and file read their
// files there, which are setup checks; kubernetes builds an empty index;
// forward builds its upstream objects without sockets). The one check that
// only `start` makes without I/O beyond a file read, loadbalance's weight
// file, is run by starting and stopping that plugin.

import net from 'node:net';
import os from 'node:os';
import { parseConfig, planFromSources, type ListenerPlan, type ServerPlan } from './config.ts';
import { CorefileError, type Directive, type ServerBlockSource, type Token } from './corefile/types.ts';
import type { LogSink } from './log.ts';
import type { BlockContext, PluginDefinition } from './plugin.ts';
import { builtinPlugins, PluginRegistry } from './registry.ts';
import { isSubdomain, longestMatchingZone } from './wire/names.ts';
import type { ForwardConfig } from '../plugins/forward/setup.ts';
import type { FileConfig } from '../plugins/file/index.ts';
import type { HostsConfig } from '../plugins/hosts/index.ts';
import type { KubernetesConfig } from '../plugins/kubernetes/setup.ts';

export interface Finding {
  file: string;
  /** The Corefile line; null when the finding is about the file as a whole. */
  line: number | null;
  message: string;
}

export interface ValidationReport {
  ok: boolean;
  errors: Finding[];
  warnings: Finding[];
}

export interface ValidateOptions {
  /** Port for keys without one: 53, or -dns.port. */
  dnsPort: number;
  env?: Record<string, string | undefined>;
  plugins?: PluginRegistry;
}

/** Plugins whose only setup check past create is in start, and whose start reads a file and nothing more. */
const FILE_CHECKED_AT_START = new Set(['loadbalance']);

/** A plugin as set up in one block: the config its parse returned and the lines that named it. */
interface ParsedPlugin {
  config: unknown;
  directives: Directive[];
}

export async function validateCorefile(text: string, file: string, options: ValidateOptions): Promise<ValidationReport> {
  const errors: Finding[] = [];
  const warnings: Finding[] = [];
  const onError = (error: CorefileError): void => {
    errors.push({ file: error.file, line: error.line, message: error.detail });
  };
  const warn = (where: Token | null, message: string): void => {
    warnings.push({ file: where?.file ?? file, line: where?.line ?? null, message });
  };

  // Plugins log their setup warnings (a missing hosts file, an old option):
  // each is kept with the line of the plugin being set up when it was logged.
  let settingUp: Token | null = null;
  const log: LogSink = (line) => {
    const warning = /^\[WARNING\] (.*)$/s.exec(line);
    if (warning) warn(settingUp, warning[1]!);
  };
  const parsed = new Map<BlockContext, Map<string, ParsedPlugin>>();
  const registry = recordingRegistry(options.plugins ?? builtinPlugins, parsed, (token) => (settingUp = token));
  const planOptions = { dnsPort: options.dnsPort, env: options.env, log, plugins: registry, onError };

  let sources: ServerBlockSource[];
  try {
    sources = parseConfig(text, file, planOptions);
  } catch (error) {
    // The structure is broken (a brace, an import): nothing after it can be read.
    if (!(error instanceof CorefileError)) throw error;
    onError(error);
    return report(errors, warnings);
  }
  if (sources.length === 0) {
    warn(null, `no server blocks: the server would serve the default configuration (whoami and log on .:${options.dnsPort}), as CoreDNS does`);
    return report(errors, warnings);
  }
  const plan = planFromSources(sources, file, planOptions);
  for (const block of plan.blocks) {
    for (const { name, instance, directive } of block.plugins) {
      if (!FILE_CHECKED_AT_START.has(name) || !instance.start) continue;
      try {
        await instance.start();
      } catch (error) {
        onError(error instanceof CorefileError ? error : new CorefileError(directive, String((error as Error).message ?? error)));
      } finally {
        await instance.stop?.();
      }
    }
  }

  plan.blocks.forEach((block, index) => {
    const plugins = parsed.get(block.context) ?? new Map<string, ParsedPlugin>();
    warnAutopathWithoutVerifiedPods(sources[index]!.directives, warn);
    warnForwardToItself(plan, block.context, plugins.get('forward'), warn);
    for (const [name, plugin] of plugins) {
      for (const { zones, where } of pluginZones(name, plugin)) warnUnreachableZones(plan, block.context, name, zones, where, warn);
      warnFallthroughOutsideZones(name, plugin, warn);
    }
  });
  return report(errors, warnings);
}

function report(errors: Finding[], warnings: Finding[]): ValidationReport {
  return { ok: errors.length === 0, errors: inFileOrder(errors), warnings: inFileOrder(warnings) };
}

/** By line within each file, the files in the order they were first reported (the Corefile, then the files it led to). */
function inFileOrder(findings: Finding[]): Finding[] {
  const files = [...new Set(findings.map((finding) => finding.file))];
  return findings.sort((a, b) => files.indexOf(a.file) - files.indexOf(b.file) || (a.line ?? 0) - (b.line ?? 0));
}

/** The registry, with each plugin's parse recording its config and reporting whose setup is running. */
function recordingRegistry(
  registry: PluginRegistry,
  parsed: Map<BlockContext, Map<string, ParsedPlugin>>,
  settingUp: (token: Token | null) => void,
): PluginRegistry {
  const definitions = registry.implemented().map((name): PluginDefinition<unknown> => {
    const definition = registry.definition(name)!;
    return {
      name,
      parse(directives, block) {
        settingUp(directives[0]!.name);
        try {
          const config = definition.parse(directives, block);
          let plugins = parsed.get(block);
          if (!plugins) parsed.set(block, (plugins = new Map()));
          plugins.set(name, { config, directives });
          return config;
        } catch (error) {
          settingUp(null);
          throw error;
        }
      },
      create(config, block, log) {
        // planBlock creates right after parsing, so the token set by parse is still this plugin's.
        try {
          return definition.create(config, block, log);
        } finally {
          settingUp(null);
        }
      },
    };
  });
  return new PluginRegistry(registry.order, definitions);
}

type Warn = (where: Token | null, message: string) => void;

/**
 * autopath @kubernetes finds the client's namespace from its pod, which only
 * `pods verified` keeps; with any other mode CoreDNS starts fine and autopath
 * never shortens a search. Read from the directives, so the check holds
 * whether or not an autopath plugin is built in.
 */
function warnAutopathWithoutVerifiedPods(directives: Directive[], warn: Warn): void {
  for (const autopath of directives.filter((directive) => directive.name.text === 'autopath')) {
    const source = autopath.args.find((arg) => arg.text.startsWith('@'));
    if (source?.text !== '@kubernetes') continue;
    const kubernetes = directives.find((directive) => directive.name.text === 'kubernetes');
    if (!kubernetes) {
      warn(source, 'autopath @kubernetes: this server block has no kubernetes plugin, so autopath does nothing');
      continue;
    }
    const pods = kubernetes.block?.findLast((option) => option.name.text === 'pods');
    const mode = pods?.args[0]?.text ?? 'disabled';
    if (mode !== 'verified') {
      warn(source, `autopath @kubernetes needs 'pods verified' in the kubernetes plugin (it has 'pods ${mode}'${pods ? ` at line ${pods.name.line}` : ', the default'}): without it autopath never finds the client's namespace and does nothing`);
    }
  }
}

/** A forward whose upstream is a listener of this same block, for the names it forwards: a loop. */
function warnForwardToItself(plan: ServerPlan, block: BlockContext, forward: ParsedPlugin | undefined, warn: Warn): void {
  if (!forward) return;
  const configs = forward.config as ForwardConfig[];
  configs.forEach((config, index) => {
    const line = forward.directives[index] ?? forward.directives[0]!;
    for (const upstream of config.upstreams) {
      if (upstream.transport !== 'dns') continue;
      const host = upstream.host.split('%')[0]!;
      for (const listener of plan.listeners) {
        if (listener.port !== upstream.port || !reaches(listener, host)) continue;
        if (routedTo(listener, config.from) !== block) continue;
        warn(line.name, `forward to ${upstream.addr} sends queries for ${config.from} to this server block's own listener ${listener.label}: they come back to this forward (a loop; the loop plugin, when present, stops the server at start)`);
      }
    }
  });
}

/** True when a packet to `host` lands on the listener. */
function reaches(listener: ListenerPlan, host: string): boolean {
  if (listener.address !== '') return sameIP(listener.address, host);
  return isLocalAddress(host);
}

function sameIP(a: string, b: string): boolean {
  if (a === b) return true;
  const v4 = (ip: string): string => ip.replace(/^::ffff:/i, '');
  return net.isIP(a) !== 0 && net.isIP(b) !== 0 && v4(a).toLowerCase() === v4(b).toLowerCase();
}

function isLocalAddress(host: string): boolean {
  if (/^127\./.test(host) || host === '::1' || host === '0.0.0.0' || host === '::') return true;
  return Object.values(os.networkInterfaces()).some((addresses) => addresses?.some((address) => sameIP(address.address, host)));
}

/** The block a listener gives `name` to: the longest of its zones wins (CF-13). */
function routedTo(listener: ListenerPlan, name: string): BlockContext | null {
  const zone = longestMatchingZone(name, [...listener.zones.keys()]);
  return zone === null ? null : listener.zones.get(zone)!.context;
}

/** The zones a plugin answers for, by plugin, with the line that gave them. */
function pluginZones(name: string, plugin: ParsedPlugin): { zones: readonly string[]; where: Token }[] {
  const first = plugin.directives[0]!.name;
  switch (name) {
    case 'kubernetes':
      return [{ zones: (plugin.config as KubernetesConfig).zones, where: first }];
    case 'hosts':
      return [{ zones: (plugin.config as HostsConfig).origins, where: first }];
    case 'file':
      return (plugin.config as FileConfig[]).map((config, index) => ({ zones: config.zones, where: plugin.directives[index]?.name ?? first }));
    case 'forward':
      return (plugin.config as ForwardConfig[]).map((config, index) => ({ zones: [config.from], where: plugin.directives[index]?.name ?? first }));
    default:
      return [];
  }
}

/**
 * A plugin zone no query can reach in this block: outside the block's zones,
 * or taken by another block on the same listener whose zone is longer (the
 * longest zone wins, so e.g. `kubernetes cluster.local` in `.:53` is dead
 * code once a `cluster.local:53` block exists). A zone only partly taken
 * (a sub-zone served by another block) is the usual design and not reported.
 */
function warnUnreachableZones(plan: ServerPlan, block: BlockContext, plugin: string, zones: readonly string[], where: Token, warn: Warn): void {
  const listeners = plan.listeners.filter((listener) => [...listener.zones.values()].some((served) => served.context === block));
  if (listeners.length === 0) return;
  for (const zone of zones) {
    if (!block.zones.some((own) => isSubdomain(zone, own) || isSubdomain(own, zone))) {
      warn(where, `${plugin} zone ${zone} is outside this server block's zones (${block.zones.join(' ')}): no query for it reaches this block`);
      continue;
    }
    const takers = new Set<BlockContext | null>();
    let reached = false;
    for (const listener of listeners) {
      const ownBelow = [...listener.zones].some(([served, target]) => target.context === block && served !== zone && isSubdomain(served, zone));
      const taker = routedTo(listener, zone);
      if (taker === block || ownBelow) reached = true;
      else takers.add(taker);
    }
    if (reached) continue;
    const other = [...takers].find((taker) => taker !== null);
    if (other) {
      const key = other.addresses.find((address) => isSubdomain(zone, address.zone))?.key ?? other.addresses[0]!.key;
      warn(where, `${plugin} zone ${zone} is shadowed by the server block '${key.text}' (${key.file}:${key.line}): the longest zone wins, so queries for ${zone} go to that block and never reach this ${plugin}`);
    }
  }
}

/** `fallthrough ZONE` only matters for names the plugin answers for: a zone apart from all of them never applies. */
function warnFallthroughOutsideZones(name: string, plugin: ParsedPlugin, warn: Warn): void {
  let zones: readonly string[];
  let fallthrough: readonly string[] | null;
  if (name === 'kubernetes') ({ zones, fallthrough } = plugin.config as KubernetesConfig);
  else if (name === 'hosts') ({ origins: zones, fallthrough } = plugin.config as HostsConfig);
  else return;
  const where = plugin.directives[0]!.block?.find((option) => option.name.text === 'fallthrough')?.name ?? plugin.directives[0]!.name;
  for (const zone of fallthrough ?? []) {
    if (zones.some((own) => isSubdomain(zone, own) || isSubdomain(own, zone))) continue;
    warn(where, `fallthrough zone ${zone} is outside the ${name} zones (${zones.join(' ')}): names in it never reach ${name}, so it never falls through`);
  }
}

/** The text report: errors as the server prints them, then warnings, then a summary line. */
export function formatReport(report: ValidationReport, file: string): string {
  const at = (finding: Finding): string => `${finding.file}${finding.line === null ? '' : `:${finding.line}`}`;
  const lines = [
    ...report.errors.map((error) => `${at(error)} - Error during parsing: ${error.message}`),
    ...report.warnings.map((warning) => `[WARNING] ${at(warning)} - ${warning.message}`),
  ];
  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  lines.push(`${file}: ${report.ok ? 'valid' : 'invalid'}, ${count(report.errors.length, 'error')}, ${count(report.warnings.length, 'warning')}`);
  return lines.join('\n') + '\n';
}
