// Which plugins exist and the order they run in.
//
// The order is CoreDNS v1.11.1's plugin.cfg (CF-16), the version kubeadm
// 1.29–1.32 clusters run: the chain is built in this order whatever the order
// of the Corefile (CF-15). Names CoreDNS knows but clusterdns does not
// implement are recognised, so the error says "not supported", not "unknown".

import type { PluginDefinition } from './plugin.ts';
import bind from '../plugins/bind/index.ts';
import cache from '../plugins/cache/index.ts';
import errors from '../plugins/errors/index.ts';
import forward from '../plugins/forward/index.ts';
import health from '../plugins/health/index.ts';
import hosts from '../plugins/hosts/index.ts';
import kubernetes from '../plugins/kubernetes/index.ts';
import loadbalance from '../plugins/loadbalance/index.ts';
import log from '../plugins/log/index.ts';
import loop from '../plugins/loop/index.ts';
import prometheus from '../plugins/prometheus/index.ts';
import ready from '../plugins/ready/index.ts';
import reload from '../plugins/reload/index.ts';
import timeouts from '../plugins/timeouts/index.ts';
import whoami from '../plugins/whoami/index.ts';

export const PLUGIN_ORDER: readonly string[] = [
  'metadata', 'geoip', 'cancel', 'tls', 'timeouts', 'reload', 'nsid', 'bufsize', 'root', 'bind', 'debug',
  'trace', 'ready', 'health', 'pprof', 'prometheus', 'errors', 'log', 'dnstap', 'local', 'dns64', 'acl',
  'any', 'chaos', 'loadbalance', 'tsig', 'cache', 'rewrite', 'header', 'dnssec', 'autopath', 'minimal',
  'template', 'transfer', 'hosts', 'route53', 'azure', 'clouddns', 'k8s_external', 'kubernetes', 'file',
  'auto', 'secondary', 'etcd', 'loop', 'forward', 'grpc', 'erratic', 'whoami', 'on', 'sign', 'view',
];

const implemented: readonly PluginDefinition<any>[] = [
  bind, cache, errors, forward, health, hosts, kubernetes, loadbalance, log, loop, prometheus, ready, reload, timeouts, whoami,
];

const byName = new Map(implemented.map((definition) => [definition.name, definition]));

export function isDirective(name: string): boolean {
  return PLUGIN_ORDER.includes(name);
}

export function pluginDefinition(name: string): PluginDefinition<any> | undefined {
  return byName.get(name);
}

/** The implemented plugins, in chain order (for -plugins). */
export function implementedPlugins(): string[] {
  return PLUGIN_ORDER.filter((name) => byName.has(name));
}

/** Plugins that take queries of any class, so the server lets CH and ANY through to them (WIRE-6). */
export const ANY_CLASS_PLUGINS: ReadonlySet<string> = new Set(['chaos', 'forward']);
