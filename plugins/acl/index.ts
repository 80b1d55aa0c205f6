// acl: allow, block, filter or drop queries by source network and type,
// per zone, first matching policy wins (CoreDNS 1.11's acl plugin).

import net from 'node:net';
import { setupError } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import { FastCounter, type CounterSeries } from '../../src/fast-metrics.ts';
import { registry } from '../../src/metrics.ts';
import { definePlugin, type Request } from '../../src/plugin.ts';
import { Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply, type Reply } from '../../src/wire/message.ts';
import { longestMatchingZone } from '../../src/wire/names.ts';
import { zoneArgs } from '../cache/config.ts';

type Action = 'allow' | 'block' | 'filter' | 'drop';

interface Policy {
  action: Action;
  /** null: every type (no `type`, or `type *`). */
  types: ReadonlySet<number> | null;
  /** null: every source (no `net`, or `net *`). */
  sources: net.BlockList | null;
}

interface Rule {
  zones: string[];
  policies: Policy[];
}

export interface AclConfig {
  rules: Rule[];
}

const blocked = new FastCounter('coredns_acl_blocked_requests_total', 'Counter of DNS requests being blocked.', ['server', 'zone', 'view'], registry);
const filtered = new FastCounter('coredns_acl_filtered_requests_total', 'Counter of DNS requests being filtered.', ['server', 'zone', 'view'], registry);
const allowed = new FastCounter('coredns_acl_allowed_requests_total', 'Counter of DNS requests being allowed.', ['server', 'view'], registry);
const dropped = new FastCounter('coredns_acl_dropped_requests_total', 'Counter of DNS requests being dropped.', ['server', 'zone', 'view'], registry);

/** EDNS Extended DNS Error codes (RFC 8914) CoreDNS puts in blocked and filtered replies. */
const EDE = 15;
const EDE_BLOCKED = 15;
const EDE_FILTERED = 17;

/**
 * CoreDNS answers a blocked or filtered query with its own OPT: DO set,
 * payload 4096 (the client's when it sent one) and an Extended DNS Error.
 */
function refusal(rcode: number, infoCode: number): Reply {
  return Object.freeze({
    ...emptyReply(rcode),
    edns: { udpSize: 4096, dnssecOk: true, options: [{ code: EDE, data: Uint8Array.of(infoCode >> 8, infoCode & 0xff) }] },
  });
}
const blockedReply = refusal(Rcode.REFUSED, EDE_BLOCKED);
const filteredReply = refusal(Rcode.NOERROR, EDE_FILTERED);
const droppedReply: Reply = Object.freeze({ ...emptyReply(Rcode.NOERROR), silent: true });

const SECTIONS = new Set(['type', 'net']);
const ACTIONS = new Set<string>(['allow', 'block', 'filter', 'drop']);

/** Go's dns.StringToType accepts the upper-case mnemonics only. */
function parseType(token: Token): number | null {
  if (token.text === '*') return null;
  const type = token.text === token.text.toUpperCase() ? (Type as Record<string, number>)[token.text] : undefined;
  if (type === undefined) throw setupError(token, `unexpected token "${token.text}"; expect legal QTYPE`);
  return type;
}

/** A CIDR as Go's net.ParseCIDR reads it; a bare address is a host route, as CoreDNS's acl adds /32 or /128. */
function addSource(list: net.BlockList, token: Token): void {
  const text = token.text.includes('/') ? token.text : token.text + (token.text.includes(':') ? '/128' : '/32');
  const [address = '', prefix = ''] = text.split('/', 2);
  const family = net.isIP(address);
  const bits = /^\d{1,3}$/.test(prefix) ? Number(prefix) : -1;
  if (family === 0 || bits < 0 || bits > (family === 4 ? 32 : 128) || text.split('/').length !== 2) {
    throw setupError(token, `illegal CIDR notation "${text}"`);
  }
  list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
}

function parsePolicy(line: Directive): Policy {
  const action = line.name.text.toLowerCase();
  if (!ACTIONS.has(action)) throw setupError(line.name, `unexpected token "${line.name.text}"; expect 'allow', 'block', 'filter' or 'drop'`);
  let types: Set<number> | null = new Set();
  let sources: net.BlockList | null = new net.BlockList();
  let anyType = false;
  let anySource = false;
  let sawSource = false;
  const args = line.args;
  for (let i = 0; i < args.length;) {
    const section = args[i]!;
    const name = section.text.toLowerCase();
    const values: Token[] = [];
    for (i++; i < args.length && !SECTIONS.has(args[i]!.text.toLowerCase()); i++) values.push(args[i]!);
    if (values.length === 0) throw setupError(section, `no token specified in "${name}" section`);
    if (name === 'type') {
      for (const value of values) {
        const type = parseType(value);
        if (type === null) anyType = true;
        else types.add(type);
      }
    } else if (name === 'net') {
      sawSource = true;
      for (const value of values) {
        if (value.text === '*') anySource = true;
        else addSource(sources, value);
      }
    } else {
      throw setupError(section, `unexpected token "${section.text}"; expect 'type | net'`);
    }
  }
  if (anyType || types.size === 0) types = null;
  if (anySource || !sawSource) sources = null;
  return { action: action as Action, types, sources };
}

function matches(policy: Policy, request: Request): boolean {
  if (policy.types !== null && !policy.types.has(request.query.qtype)) return false;
  return policy.sources === null || policy.sources.check(request.remoteAddress, request.family === 1 ? 'ipv4' : 'ipv6');
}

/** Counter children by label values, made once per server and zone rather than per query. */
function seriesCache(counter: FastCounter): (...labels: string[]) => CounterSeries {
  const children = new Map<string, CounterSeries>();
  return (...labels) => {
    const key = labels.join('\u0000');
    let child = children.get(key);
    if (child === undefined) children.set(key, (child = counter.labels(...labels)));
    return child;
  };
}

export default definePlugin<AclConfig>({
  name: 'acl',
  parse(directives, block) {
    const rules = directives.map((directive) => ({
      zones: directive.args.length > 0 ? zoneArgs(directive.args) : [...block.zones],
      policies: (directive.block ?? []).map(parsePolicy),
    }));
    return { rules };
  },
  create({ rules }) {
    const blockedSeries = seriesCache(blocked);
    const filteredSeries = seriesCache(filtered);
    const droppedSeries = seriesCache(dropped);
    const allowedSeries = seriesCache(allowed);
    return {
      serve(request, next) {
        for (const rule of rules) {
          const zone = longestMatchingZone(request.query.qname, rule.zones);
          if (zone === null) continue;
          const policy = rule.policies.find((candidate) => matches(candidate, request));
          if (policy === undefined) continue;
          switch (policy.action) {
            case 'block':
              blockedSeries(request.server, zone, '').inc();
              return blockedReply;
            case 'filter':
              filteredSeries(request.server, zone, '').inc();
              return filteredReply;
            case 'drop':
              droppedSeries(request.server, zone, '').inc();
              return droppedReply;
            case 'allow':
              break;
          }
          break;
        }
        allowedSeries(request.server, '').inc();
        return next(request);
      },
    };
  },
});
