// Which plugins exist and the order they run in.
//
// The order is CoreDNS v1.11.1's plugin.cfg (CF-16), the version kubeadm
// 1.29–1.32 clusters run: the chain is built in this order whatever the order
// of the Corefile (CF-15). Names CoreDNS knows but clusterdns does not
// implement are recognised, so the error says "not supported", not "unknown".
// One external plugin is in the list: rrl, where its plugin.cfg.yaml puts it
// (before acl), so it sees every answer, cached ones included. explain is
// clusterdns's own, next to health: its handler sees every reply (top-K).

import type { PluginDefinition } from './plugin.ts';
import acl from '../plugins/acl/index.ts';
import any from '../plugins/any/index.ts';
import autopath from '../plugins/autopath/index.ts';
import bind from '../plugins/bind/index.ts';
import bufsize from '../plugins/bufsize/index.ts';
import cache from '../plugins/cache/index.ts';
import chaos from '../plugins/chaos/index.ts';
import dns64 from '../plugins/dns64/index.ts';
import errors from '../plugins/errors/index.ts';
import explain from '../plugins/explain/index.ts';
import file from '../plugins/file/index.ts';
import forward from '../plugins/forward/index.ts';
import header from '../plugins/header/index.ts';
import health from '../plugins/health/index.ts';
import hosts from '../plugins/hosts/index.ts';
import k8sExternal from '../plugins/k8s_external/index.ts';
import kubernetes from '../plugins/kubernetes/index.ts';
import loadbalance from '../plugins/loadbalance/index.ts';
import local from '../plugins/local/index.ts';
import log from '../plugins/log/index.ts';
import loop from '../plugins/loop/index.ts';
import minimal from '../plugins/minimal/index.ts';
import nsid from '../plugins/nsid/index.ts';
import prometheus from '../plugins/prometheus/index.ts';
import ready from '../plugins/ready/index.ts';
import reload from '../plugins/reload/index.ts';
import rrl from '../plugins/rrl/index.ts';
import timeouts from '../plugins/timeouts/index.ts';
import template from '../plugins/template/index.ts';
import rewrite from '../plugins/rewrite/index.ts';
import whoami from '../plugins/whoami/index.ts';

export const PLUGIN_ORDER: readonly string[] = [
  'metadata', 'geoip', 'cancel', 'tls', 'timeouts', 'reload', 'nsid', 'bufsize', 'root', 'bind', 'debug',
  'trace', 'ready', 'health', 'explain', 'pprof', 'prometheus', 'errors', 'log', 'dnstap', 'local', 'dns64', 'rrl', 'acl',
  'any', 'chaos', 'loadbalance', 'tsig', 'cache', 'rewrite', 'header', 'dnssec', 'autopath', 'minimal',
  'template', 'transfer', 'hosts', 'route53', 'azure', 'clouddns', 'k8s_external', 'kubernetes', 'file',
  'auto', 'secondary', 'etcd', 'loop', 'forward', 'grpc', 'erratic', 'whoami', 'on', 'sign', 'view',
];

const implemented: readonly PluginDefinition<any>[] = [
  acl, any, autopath, bind, bufsize, cache, chaos, dns64, errors, explain, file, forward, header, health, hosts, k8sExternal, kubernetes, loadbalance,
  local, log, loop, minimal, nsid, prometheus, ready, reload, rewrite, rrl, template, timeouts, whoami,
];

/** Where an embedding program puts its own plugin in the chain: next to a plugin of the order. */
export type PluginPlacement = { before: string } | { after: string };

/**
 * The directives a Corefile may use, their chain order and their
 * definitions. The command uses the built-in one; an embedding program
 * derives its own with `withPlugin`, so servers in one process can have
 * different plugins.
 */
export class PluginRegistry {
  readonly order: readonly string[];
  private readonly byName: ReadonlyMap<string, PluginDefinition<any>>;

  constructor(order: readonly string[], definitions: readonly PluginDefinition<any>[]) {
    this.order = order;
    this.byName = new Map(definitions.map((definition) => [definition.name, definition]));
  }

  isDirective(name: string): boolean {
    return this.order.includes(name);
  }

  definition(name: string): PluginDefinition<any> | undefined {
    return this.byName.get(name);
  }

  /** The implemented plugins, in chain order (for -plugins). */
  implemented(): string[] {
    return this.order.filter((name) => this.byName.has(name));
  }

  /** A registry with one more plugin, placed before or after a plugin already in the order. */
  withPlugin(definition: PluginDefinition<any>, placement: PluginPlacement): PluginRegistry {
    if (this.byName.has(definition.name)) throw new Error(`plugin '${definition.name}' is already registered`);
    const anchor = 'before' in placement ? placement.before : placement.after;
    const at = this.order.indexOf(anchor);
    if (at < 0) throw new Error(`cannot place plugin '${definition.name}' next to '${anchor}': no such plugin in the chain order`);
    const order = [...this.order.filter((name) => name !== definition.name)];
    order.splice(order.indexOf(anchor) + ('before' in placement ? 0 : 1), 0, definition.name);
    return new PluginRegistry(order, [...this.byName.values(), definition]);
  }
}

export const builtinPlugins = new PluginRegistry(PLUGIN_ORDER, implemented);

export function isDirective(name: string): boolean {
  return builtinPlugins.isDirective(name);
}

/** Plugins that take queries of any class, so the server lets CH and ANY through to them (WIRE-6). */
export const ANY_CLASS_PLUGINS: ReadonlySet<string> = new Set(['chaos', 'forward']);
