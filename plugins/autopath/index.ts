// autopath: server-side search path completion (AP-1..4).
//
//   autopath [ZONE...] RESOLV-CONF        RESOLV-CONF: a resolv.conf-style file, or @PLUGIN
//
// A pod with ndots:5 asks `web.demo.svc.cluster.local.demo.svc.cluster.local.`
// first for `web.demo.svc.cluster.local`, and walks its search path on NXDOMAIN.
// When a query lies under the first element of the client's search path,
// autopath walks the rest of that path itself, down the chain, and answers
// the first name that exists, with a CNAME from the asked name to it: one
// query instead of up to five. The search path comes from the file, or per
// query from a plugin (`@kubernetes`: the client pod's namespace, KP-39).
//
// The walk runs synchronously as long as the chain answers synchronously
// (kubernetes, hosts), and continues asynchronously from the first answer
// that is a promise (forward).

import fs from 'node:fs';
import path from 'node:path';
import { Counter } from 'prom-client';
import { normalizeKey } from '../../src/corefile/address.ts';
import { setupError } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import { registry } from '../../src/metrics.ts';
import { definePlugin, type BlockContext, type Next, type PluginInstance, type Request } from '../../src/plugin.ts';
import { withQuestion } from '../../src/request.ts';
import { Class, HEADER_LENGTH, Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply, ServerReply, type Reply, type ResourceRecord } from '../../src/wire/message.ts';
import { canonicalName, isSubdomain, longestMatchingZone } from '../../src/wire/names.ts';
import type { Query } from '../../src/wire/query.ts';
import { parseSearchDomains } from './resolv-conf.ts';

const PLUGIN = 'autopath';

/** A plugin that knows a client's search path (CoreDNS's AutoPather): `autopath @NAME` asks it per query. */
export interface AutoPather {
  /** The search path for this query, ending with '' (the name itself); null or empty: no autopath. */
  autoPath(request: Request): readonly string[] | null;
}

export interface AutopathConfig {
  /** Canonical zones autopath acts in: the arguments before RESOLV-CONF, else the block's zones. */
  zones: string[];
  /** `@NAME`: the plugin asked for the search path; null with a file. */
  plugin: { name: string; token: Token } | null;
  /** From the file: its search domains, canonical, then '' (the name itself). */
  search: readonly string[];
}

export const autopathSuccess = new Counter({
  name: 'coredns_autopath_success_total',
  help: 'Counter of requests that did autopath.',
  labelNames: ['server'],
  registers: [registry],
});

function parseOne(directive: Directive, block: BlockContext, config: AutopathConfig): void {
  // CoreDNS reads the arguments up to a '{' and finds none when a block follows.
  const resolv = directive.block === null ? directive.args.at(-1) : undefined;
  if (resolv === undefined) throw setupError(directive.name, `plugin/${PLUGIN}: no resolv-conf specified`);
  if (resolv.text.startsWith('@')) {
    config.plugin = { name: resolv.text.slice(1), token: resolv };
  } else {
    // Relative to the Corefile, as the other plugins' files are.
    const file = path.resolve(path.dirname(path.resolve(block.corefile)), resolv.text);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw setupError(resolv, `plugin/${PLUGIN}: failed to parse "${resolv.text}": ${(error as Error).message}`);
    }
    config.search = [...parseSearchDomains(text), ''];
  }
  const zoneTokens = directive.args.slice(0, -1);
  const zones = zoneTokens.length > 0 ? zoneTokens.flatMap((token) => normalizeKey(token, 53).map((address) => address.zone)) : block.zones;
  config.zones = [...new Set(zones)];
}

/** Every occurrence counts, as in CoreDNS: the last one's zones, the last file's path and the last @plugin. */
export function parseAutopath(directives: Directive[], block: BlockContext): AutopathConfig {
  const config: AutopathConfig = { zones: [], plugin: null, search: [] };
  for (const directive of directives) parseOne(directive, block, config);
  return config;
}

/**
 * The question name as the client spelled it. `query.qname` is its lowercased
 * form, and only letters differ; letters are never escaped, so each plain
 * character of qname is one byte of the packet's labels, a dot is a length
 * byte, and an escape (\DDD or \X) stands for one byte. Cold path: once per
 * query that autopath walks.
 */
export function spelledName(query: Query): string {
  const { packet, qname } = query;
  if (qname === '.') return qname;
  let out = '';
  let offset = HEADER_LENGTH + 1;
  for (let i = 0; i < qname.length; offset++) {
    const char = qname[i]!;
    if (char === '\\') {
      const length = qname[i + 1]! >= '0' && qname[i + 1]! <= '9' ? 4 : 2;
      out += qname.slice(i, i + length);
      i += length;
    } else {
      out += char === '.' ? char : String.fromCharCode(packet[offset]!);
      i++;
    }
  }
  return out;
}

/** `base` with a search domain; the final '' (and a root zone's '.') is the name itself. */
function withDomain(base: string, domain: string): string {
  return domain === '' || domain === '.' ? `${base}.` : `${base}.${domain}`;
}

export class Autopath {
  private readonly config: AutopathConfig;
  private pather: AutoPather | null = null;

  constructor(config: AutopathConfig) {
    this.config = config;
  }

  /** CoreDNS resolves `@NAME` once every plugin exists: a plugin absent from the block leaves autopath idle. */
  connect(block: BlockContext): void {
    const wanted = this.config.plugin;
    if (wanted === null) return;
    const found = block.plugins.find(({ name }) => name === wanted.name);
    if (found === undefined) return;
    const instance = found.instance as PluginInstance & Partial<AutoPather>;
    if (typeof instance.autoPath !== 'function') {
      throw setupError(wanted.token, `plugin/${PLUGIN}: ${wanted.name} does not implement the AutoPather interface`);
    }
    this.pather = instance as AutoPather;
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const qname = request.query.qname;
    if (longestMatchingZone(qname, this.config.zones) === null) return next(request);
    const search = this.pather !== null ? this.pather.autoPath(request) : this.config.search;
    if (search === null || search.length === 0) return next(request);
    const first = search[0]!;
    if (!isSubdomain(qname, first)) return next(request);
    // CoreDNS cannot strip the first element from the name itself: SERVFAIL.
    if (qname === first) return emptyReply(Rcode.SERVFAIL, 0, new Error(`trimzone: overshot qname: ${qname} for zone ${first}`));
    const base = spelledName(request.query).slice(0, qname.length - first.length - 1);
    return this.walk(request, next, base, search, 0, null);
  }

  /**
   * AP-2: asks the chain for `base` under each element in turn. The first
   * reply that is neither NXDOMAIN nor unwritten wins; a chain error ends the
   * walk with that error; when every name is NXDOMAIN the first reply goes
   * back as it is, and the client walks its search path itself.
   */
  private walk(request: Request, next: Next, base: string, search: readonly string[], index: number, first: Reply | null): Reply | Promise<Reply> {
    for (; index < search.length; index++) {
      const attempt = withQuestion(request, withDomain(base, search[index]!), request.query.qtype);
      const result = next(attempt);
      if (result instanceof Promise) {
        const after = index + 1;
        const firstSoFar = first;
        return result.then((reply) => this.settle(request, attempt, reply) ?? this.walk(request, next, base, search, after, firstSoFar ?? reply));
      }
      const done = this.settle(request, attempt, result);
      if (done !== null) return done;
      first ??= result;
    }
    return first!;
  }

  /** The reply to send after this attempt, or null to try the next name. */
  private settle(request: Request, attempt: Request, reply: Reply): Reply | null {
    if (reply.error !== undefined) return reply;
    // Replies nobody wrote (the server's own REFUSED/SERVFAIL) are skipped, as CoreDNS skips unwritten rcodes.
    if (reply === ServerReply.REFUSED || reply === ServerReply.SERVFAIL || reply.rcode === Rcode.NXDOMAIN) return null;
    autopathSuccess.labels(request.server).inc();
    return answerFor(request, attempt, reply);
  }
}

/**
 * AP-3: the winning reply for the question the client asked. When its first
 * answer record is owned by another name, a CNAME from the asked name to that
 * owner goes first, with that record's TTL. Records owned by the name tried
 * keep the client's letter case for its part of the name, as in CoreDNS.
 */
function answerFor(request: Request, attempt: Request, reply: Reply): Reply {
  const tried = attempt.query.qname;
  const spelled = spelledName(attempt.query);
  const ttl = reply.derived?.ttl ?? null;
  let answer: readonly ResourceRecord[] = reply.answer;
  if (spelled !== tried || ttl !== null) {
    answer = answer.map((record) => ({
      name: record.name === tried ? spelled : record.name,
      type: record.type,
      class: record.class,
      ttl: ttl ?? record.ttl,
      data: record.data,
    }));
  }
  const original = request.query.qname;
  const owner = answer.find((record) => canonicalName(record.name) !== original);
  if (owner === undefined && answer === reply.answer) return reply;
  const cname: ResourceRecord[] = owner === undefined ? [] : [{ name: original, type: Type.CNAME, class: Class.IN, ttl: owner.ttl, data: owner.name }];
  const retimed = (records: readonly ResourceRecord[]) => (ttl === null ? records : records.map((record) => ({ ...record, ttl })));
  // A new reply, field by field: the old one's encoding memo belongs to the name tried.
  const out: Reply = {
    rcode: reply.rcode,
    flags: reply.flags,
    answer: [...cname, ...answer],
    authority: retimed(reply.authority),
    additional: retimed(reply.additional),
  };
  return out;
}

export default definePlugin<AutopathConfig>({
  name: PLUGIN,
  parse: parseAutopath,
  create(config, block) {
    const autopath = new Autopath(config);
    return {
      serve: (request, next) => autopath.serve(request, next),
      start: () => autopath.connect(block),
    };
  },
});
