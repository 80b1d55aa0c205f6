// `kubernetes [ZONES...] [{ options }]` → KubernetesConfig (KP-1..21).
//
// Every error is a CorefileError at the offending token, saying what was found
// and what was expected. Setup never touches the network (it checks only that
// `manifests` paths exist): the source is created and started by the plugin's
// start hook.

import fs from 'node:fs';
import path from 'node:path';
import { normalizeKey } from '../../src/corefile/address.ts';
import { onlyOnce, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import type { BlockContext } from '../../src/plugin.ts';
import type { MemoryCluster } from './memory-source.ts';
import type { ApiConnection, SourceOptions } from './model.ts';
import { isReverseZone } from './reverse.ts';
import { parseLabelSelector, SelectorError } from './selector.ts';

export type PodMode = 'disabled' | 'insecure' | 'verified';

export type SourceChoice =
  | { kind: 'api'; connection: ApiConnection; /** `endpoint` URLs after the first, ignored with a warning (KP-5). */ ignoredEndpoints: string[] }
  | { kind: 'manifests'; /** Absolute paths. */ paths: string[] }
  | { kind: 'memory'; /** The objects an embedding program gives (`memory NAME`). */ cluster: MemoryCluster };

export interface KubernetesConfig {
  /** Canonical zones, CIDRs expanded, in the order given (KP-1). */
  zones: string[];
  /** The first non-reverse zone: PTR targets are built in it (K8S-14). */
  primaryZone: string;
  source: SourceChoice;
  sourceOptions: SourceOptions;
  /** `namespaces`: only these are exposed (KP-8); null exposes all. */
  namespaces: ReadonlySet<string> | null;
  podMode: PodMode;
  /** `endpoint_pod_names` (KP-10). */
  endpointPodNames: boolean;
  /** Record TTL, 0–3600, default 5 (KP-11). */
  ttl: number;
  /** `fallthrough [ZONES]`: canonical zones ('.' for all); null when not set (KP-12). */
  fallthrough: string[] | null;
  /** `ignore empty_service` (KP-13). */
  ignoreEmptyService: boolean;
  /** `noendpoints` (KP-14). */
  noEndpoints: boolean;
  /** `startup_timeout`, default 5 s (KP-18). */
  startupTimeoutMs: number;
  /** KP-19: accepted; 0 keeps the client default. */
  apiserver: { qps: number; burst: number; maxInflight: number };
}

export const DEFAULT_TTL = 5;
export const DEFAULT_STARTUP_TIMEOUT_MS = 5000;

const PLUGIN = 'kubernetes';

function fail(token: Token, detail: string): never {
  throw setupError(token, `plugin/${PLUGIN}: ${detail}`);
}

/** Exactly/at least/at most N arguments, with a message naming the option and its syntax. */
function args(option: Directive, min: number, max: number, syntax: string): Token[] {
  const found = option.args.length;
  if (found >= min && found <= max) return option.args;
  const where = found > max ? option.args[max]! : (option.args.at(-1) ?? option.name);
  const count = min === max ? `exactly ${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
  const plural = min === 1 && (max === 1 || max === Infinity) ? 'argument' : 'arguments';
  fail(where, `'${option.name.text}' takes ${count} ${plural} (${syntax}), found ${found}`);
}

/** A `manifests` path must exist at setup, as CoreDNS checks a kubeconfig: a typo fails here, naming its line. */
function existingPath(token: Token, absolute: string): string {
  try {
    fs.statSync(absolute);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    fail(token, `manifests: stat ${absolute}: ${code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
  }
  return absolute;
}

function noBlock(option: Directive): void {
  if (option.block !== null) fail(option.name, `'${option.name.text}' takes no '{ }' block`);
}

/** Zone arguments: names lowercased and fully qualified, CIDRs expanded (KP-1). */
function zonesFrom(tokens: Token[]): string[] {
  const zones: string[] = [];
  for (const token of tokens) {
    for (const address of normalizeKey(token, 53)) {
      if (!zones.includes(address.zone)) zones.push(address.zone);
    }
  }
  return zones;
}

function selector(option: Directive): string {
  const tokens = args(option, 1, Infinity, `${option.name.text} SELECTOR...`);
  const text = tokens.map((token) => token.text).join(' ');
  try {
    return parseLabelSelector(text).text;
  } catch (error) {
    if (error instanceof SelectorError) fail(tokens[0]!, `unable to parse label selector value: '${text}': ${error.message}`);
    throw error;
  }
}

function nonNegative(token: Token, integer: boolean, what: string): number {
  const pattern = integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (!pattern.test(token.text)) fail(token, `${what} must be ${integer ? 'an integer' : 'a number'} >= 0, found '${token.text}'`);
  return Number(token.text);
}

export function parseKubernetes(directives: Directive[], block: BlockContext): KubernetesConfig {
  const directive = onlyOnce(directives);
  const zones = directive.args.length > 0 ? zonesFrom(directive.args) : [...new Set(block.zones)];
  const primaryZone = zones.find((zone) => !isReverseZone(zone));
  if (primaryZone === undefined) {
    fail(directive.args[0] ?? directive.name, `non-reverse zone name must be used (found only reverse zones: ${zones.join(' ') || 'none'})`);
  }

  let endpoints: Token[] = [];
  let tls: ApiConnection['tls'] = null;
  let kubeconfig: ApiConnection['kubeconfig'] = null;
  let manifestPaths: Token[] = [];
  let apiOption: Token | null = null;
  let manifestsOption: Token | null = null;
  let memory: MemoryCluster | null = null;
  let namespaces: Set<string> | null = null;
  let namespacesOption: Token | null = null;
  let labelSelector: string | null = null;
  let namespaceLabelSelector: string | null = null;
  let namespaceLabelsOption: Token | null = null;
  let podMode: PodMode = 'disabled';
  let endpointPodNames = false;
  let ttl = DEFAULT_TTL;
  let fallthrough: string[] | null = null;
  let ignoreEmptyService = false;
  let noEndpoints = false;
  let startupTimeoutMs = DEFAULT_STARTUP_TIMEOUT_MS;
  const apiserver = { qps: 0, burst: 0, maxInflight: 0 };

  for (const option of directive.block ?? []) {
    const name = option.name.text;
    switch (name) {
      case 'endpoint':
        noBlock(option);
        endpoints = args(option, 1, Infinity, 'endpoint URL...');
        apiOption ??= option.name;
        break;
      case 'tls': {
        noBlock(option);
        const [cert, key, ca] = args(option, 3, 3, 'tls CERT KEY CACERT');
        tls = { cert: cert!.text, key: key!.text, ca: ca!.text };
        apiOption ??= option.name;
        break;
      }
      case 'kubeconfig': {
        noBlock(option);
        const [file, context] = args(option, 1, 2, 'kubeconfig KUBECONFIG [CONTEXT]');
        kubeconfig = { path: file!.text, context: context?.text ?? null };
        apiOption ??= option.name;
        break;
      }
      case 'manifests': {
        noBlock(option);
        manifestPaths = args(option, 1, Infinity, 'manifests PATH...');
        manifestsOption = option.name;
        break;
      }
      case 'memory': {
        noBlock(option);
        const [nameToken] = args(option, 0, 1, 'memory [NAME]');
        const clusterName = nameToken?.text ?? 'default';
        const given = block.memoryClusters.get(clusterName);
        if (!given) {
          const known = [...block.memoryClusters.keys()];
          fail(nameToken ?? option.name, `no in-memory cluster named '${clusterName}': 'memory' serves objects a program embedding clusterdns passes to startServer (clusters: ${known.length ? known.map((k) => `'${k}'`).join(', ') : 'none given'})`);
        }
        memory = given;
        manifestsOption = option.name;
        break;
      }
      case 'namespaces':
        noBlock(option);
        // Repeated lines add up, as in CoreDNS.
        namespaces ??= new Set();
        for (const token of args(option, 1, Infinity, 'namespaces NAMESPACE...')) namespaces.add(token.text.toLowerCase());
        namespacesOption = option.name;
        break;
      case 'labels':
        noBlock(option);
        labelSelector = selector(option);
        break;
      case 'namespace_labels':
        noBlock(option);
        namespaceLabelSelector = selector(option);
        namespaceLabelsOption = option.name;
        break;
      case 'pods': {
        noBlock(option);
        const [mode] = args(option, 1, 1, 'pods disabled|insecure|verified');
        if (mode!.text !== 'disabled' && mode!.text !== 'insecure' && mode!.text !== 'verified') {
          fail(mode!, `wrong value for pods: ${mode!.text}, must be one of: disabled, verified, insecure`);
        }
        podMode = mode!.text;
        break;
      }
      case 'endpoint_pod_names':
        noBlock(option);
        args(option, 0, 0, 'endpoint_pod_names');
        endpointPodNames = true;
        break;
      case 'ttl': {
        noBlock(option);
        const [value] = args(option, 1, 1, 'ttl SECONDS');
        if (!/^-?\d+$/.test(value!.text)) fail(value!, `ttl must be an integer number of seconds, found '${value!.text}'`);
        ttl = Number(value!.text);
        if (ttl < 0 || ttl > 3600) fail(value!, `ttl must be in range [0, 3600]: ${value!.text}`);
        break;
      }
      case 'noendpoints':
        noBlock(option);
        args(option, 0, 0, 'noendpoints');
        noEndpoints = true;
        break;
      case 'fallthrough':
        noBlock(option);
        fallthrough = option.args.length === 0 ? ['.'] : zonesFrom(option.args);
        break;
      case 'ignore': {
        noBlock(option);
        const [what] = args(option, 1, 1, 'ignore empty_service');
        if (what!.text !== 'empty_service') fail(what!, `unable to parse ignore value: '${what!.text}', expecting 'empty_service'`);
        ignoreEmptyService = true;
        break;
      }
      case 'startup_timeout': {
        noBlock(option);
        const [value] = args(option, 1, 1, 'startup_timeout DURATION');
        startupTimeoutMs = parseDuration(value!, 'startup_timeout');
        break;
      }
      case 'apiserver_qps':
        noBlock(option);
        apiserver.qps = nonNegative(args(option, 1, 1, 'apiserver_qps QPS')[0]!, false, 'apiserver_qps');
        break;
      case 'apiserver_burst':
        noBlock(option);
        apiserver.burst = nonNegative(args(option, 1, 1, 'apiserver_burst N')[0]!, true, 'apiserver_burst');
        break;
      case 'apiserver_max_inflight':
        noBlock(option);
        apiserver.maxInflight = nonNegative(args(option, 1, 1, 'apiserver_max_inflight N')[0]!, true, 'apiserver_max_inflight');
        break;
      case 'multicluster':
      case 'zonal':
        fail(option.name, `'${name}' is not supported by clusterdns (CoreDNS ${name === 'zonal' ? '1.14.7' : '1.12.2'}+ option); remove it`);
        break;
      case 'upstream':
        fail(option.name, "unknown property 'upstream' (removed in CoreDNS 1.7: ExternalName targets are resolved through the server itself; delete this line)");
        break;
      case 'resyncperiod':
        fail(option.name, "unknown property 'resyncperiod' (removed from CoreDNS: the watches need no resync; delete this line)");
        break;
      default:
        throw unknownProperty(PLUGIN, option.name);
    }
  }

  if (namespacesOption && namespaceLabelsOption) {
    const later = namespacesOption.line > namespaceLabelsOption.line ? namespacesOption : namespaceLabelsOption;
    fail(later, 'namespaces and namespace_labels cannot both be set');
  }
  if (manifestsOption && apiOption) {
    const later = manifestsOption.line > apiOption.line ? manifestsOption : apiOption;
    fail(later, `'${manifestsOption.text}' ${manifestsOption.text === 'memory' ? 'serves objects the program gives' : 'reads objects from files'} and cannot be combined with '${apiOption.text}' (an API server connection); use one or the other`);
  }
  if (memory && manifestPaths.length > 0) fail(manifestsOption!, "'manifests' and 'memory' are two sources of objects; use one or the other");

  // Relative to the Corefile's directory.
  const base = path.dirname(path.resolve(block.corefile));
  const source: SourceChoice = memory
    ? { kind: 'memory', cluster: memory }
    : manifestPaths.length > 0
    ? { kind: 'manifests', paths: manifestPaths.map((token) => existingPath(token, path.resolve(base, token.text))) }
    : {
        kind: 'api',
        connection: { endpoint: endpoints[0]?.text ?? null, tls, kubeconfig },
        ignoredEndpoints: endpoints.slice(1).map((token) => token.text),
      };

  return {
    zones,
    primaryZone,
    source,
    sourceOptions: {
      labelSelector,
      namespaceLabelSelector,
      watchPods: podMode === 'verified',
      watchEndpoints: !noEndpoints,
    },
    namespaces,
    podMode,
    endpointPodNames,
    ttl,
    fallthrough,
    ignoreEmptyService,
    noEndpoints,
    startupTimeoutMs,
    apiserver,
  };
}
