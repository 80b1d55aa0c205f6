// template: answers built from Go templates, as CoreDNS's template plugin
// builds them. The recipes it is used for in clusters: NODATA for AAAA in
// IPv4-only clusters, NXDOMAIN for search-path junk such as
// `*.cluster.local.cluster.local`, and names that carry their address
// (`ip-10-0-0-1.example` → 10.0.0.1) in test clusters.
//
// Rules are tried in Corefile order. A rule whose zone, class and type fit
// and one of whose regexes matches answers; a rule whose regexes all miss
// answers SERVFAIL unless `fallthrough` covers the name. CNAME answers to A
// and AAAA questions are followed through the server itself (request.reenter).

import { Counter } from 'prom-client';
import { FastCounter, type CounterSeries } from '../../src/fast-metrics.ts';
import { registry } from '../../src/metrics.ts';
import { definePlugin, type Next, type Request } from '../../src/plugin.ts';
import { withQuestion } from '../../src/request.ts';
import { Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply, ReplyFlag, ServerReply, type Reply, type ResourceRecord } from '../../src/wire/message.ts';
import { isSubdomain, longestMatchingZone } from '../../src/wire/names.ts';
import { TemplateExecError } from './gotemplate.ts';
import { CLASS_NAMES, TYPE_NAMES } from './names.ts';
import { findSubmatch } from './regexp.ts';
import { parseRecord, RecordSyntaxError } from './rr.ts';
import { templateData } from './data.ts';
import { parseTemplateDirective, takes, type RecordTemplate, type TemplateRule } from './setup.ts';

interface TemplateMetrics {
  /** Touched by every answered question: plain numbers, no label hashing per query. */
  matches: FastCounter;
  templateFailures: Counter;
  rrFailures: Counter;
}

let metrics: TemplateMetrics | null = null;

/** coredns_template_*, registered when the first template block is set up (nothing otherwise). */
function templateMetrics(): TemplateMetrics {
  const failureLabels = ['server', 'zone', 'view', 'class', 'type', 'section', 'template'];
  metrics ??= {
    matches: new FastCounter('coredns_template_matches_total', 'Counter of template regex matches.', ['server', 'zone', 'view', 'class', 'type'], registry),
    templateFailures: new Counter({
      name: 'coredns_template_template_failures_total',
      help: 'Counter of go template failures.',
      labelNames: failureLabels,
      registers: [registry],
    }),
    rrFailures: new Counter({
      name: 'coredns_template_rr_failures_total',
      help: 'Counter of mis-templated RRs.',
      labelNames: failureLabels,
      registers: [registry],
    }),
  };
  return metrics;
}

/** How many CNAME targets deep a chain of template answers is followed (CoreDNS has no limit and never answers a loop). */
const MAX_CHASE_DEPTH = 8;
const chaseDepth = Symbol('template CNAME chase depth');
type ChasingRequest = Request & { [chaseDepth]?: number };

/** What a matching rule renders from: the question's names for the metric labels and the template data. */
interface Match {
  rule: TemplateRule;
  zone: string;
  className: string;
  typeName: string;
  data: unknown;
}

class TemplateFailure extends Error {}

export class TemplateHandler {
  private readonly rules: readonly TemplateRule[];
  private readonly zones: readonly string[];
  private readonly metrics = templateMetrics();
  /** Match counters by server, then by zone, class and type. */
  private readonly matchCounters = new Map<string, Map<string, CounterSeries>>();

  constructor(rules: readonly TemplateRule[]) {
    this.rules = rules;
    this.zones = [...new Set(rules.flatMap((rule) => rule.zones))];
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const { qname, qclass, qtype } = request.query;
    if (longestMatchingZone(qname, this.zones) === null) return next(request);
    for (const rule of this.rules) {
      const zone = longestMatchingZone(qname, rule.zones);
      if (zone === null || !takes(rule, qclass, qtype)) continue;
      let groups: string[] | null = null;
      let regex = rule.regexes?.[0] ?? null;
      if (rule.regexes === null) {
        groups = [qname];
      } else {
        for (const candidate of rule.regexes) {
          groups = findSubmatch(candidate, qname);
          if (groups !== null) {
            regex = candidate;
            break;
          }
        }
      }
      if (groups === null) {
        if (rule.fallthrough !== null && rule.fallthrough.some((ftZone) => isSubdomain(qname, ftZone))) continue;
        return ServerReply.SERVFAIL;
      }
      const className = CLASS_NAMES.get(qclass === 255 ? rule.qclass : qclass) ?? '';
      const typeName = TYPE_NAMES.get(qtype === 255 ? rule.qtype : qtype) ?? '';
      this.countMatch(request.server, zone, className, typeName);
      // A SERVFAIL rule answers nothing of its own: the server's SERVFAIL, as in CoreDNS.
      if (rule.rcode === Rcode.SERVFAIL) return ServerReply.SERVFAIL;
      // No records to build (the AAAA NODATA recipe): one shared reply.
      if (rule.answer.length + rule.additional.length + rule.authority.length === 0) return this.recordless(rule);
      const match: Match = { rule, zone, className, typeName, data: templateData(request, zone, regex, groups, className, typeName) };
      try {
        return this.answer(match, request);
      } catch (error) {
        if (error instanceof TemplateFailure) return emptyReply(Rcode.SERVFAIL, 0, error);
        throw error;
      }
    }
    return next(request);
  }

  private readonly recordlessReplies = new Map<TemplateRule, Reply>();

  private recordless(rule: TemplateRule): Reply {
    let reply = this.recordlessReplies.get(rule);
    if (reply === undefined) {
      reply = { rcode: rule.rcode, flags: ReplyFlag.AA, answer: [], authority: [], additional: [], uncompressed: true };
      this.recordlessReplies.set(rule, reply);
    }
    return reply;
  }

  private countMatch(server: string, zone: string, className: string, typeName: string): void {
    let byServer = this.matchCounters.get(server);
    if (byServer === undefined) this.matchCounters.set(server, (byServer = new Map()));
    const key = `${zone} ${className} ${typeName}`;
    let counter = byServer.get(key);
    if (counter === undefined) {
      counter = this.metrics.matches.labels(server, zone, '', className, typeName);
      byServer.set(key, counter);
    }
    counter.inc();
  }

  private render(match: Match, request: Request, recordTemplate: RecordTemplate): ResourceRecord {
    const { template, section } = recordTemplate;
    const labels = [request.server, match.zone, '', match.className, match.typeName, section, template.text];
    let text: string;
    try {
      text = template.execute(match.data);
    } catch (error) {
      if (!(error instanceof TemplateExecError)) throw error;
      this.metrics.templateFailures.labels(...labels).inc();
      throw new TemplateFailure(error.message);
    }
    try {
      return parseRecord(text);
    } catch (error) {
      if (!(error instanceof RecordSyntaxError)) throw error;
      this.metrics.rrFailures.labels(...labels).inc();
      throw new TemplateFailure(`${error.message} in ${JSON.stringify(text)}`);
    }
  }

  private answer(match: Match, request: Request): Reply | Promise<Reply> {
    const { rule } = match;
    const qtype = request.query.qtype;
    const chase = qtype === Type.A || qtype === Type.AAAA;
    // Each answer followed by what its CNAME target resolves to, in order.
    const answer: (ResourceRecord | Promise<Reply>)[] = [];
    let chasing = false;
    for (const recordTemplate of rule.answer) {
      const record = this.render(match, request, recordTemplate);
      answer.push(record);
      if (chase && record.type === Type.CNAME) {
        const lookup = this.lookup(request, record.data as string);
        if (lookup !== null) {
          answer.push(lookup);
          chasing = true;
        }
      }
    }
    const additional = rule.additional.map((recordTemplate) => this.render(match, request, recordTemplate));
    const authority = rule.authority.map((recordTemplate) => this.render(match, request, recordTemplate));
    const reply = (records: readonly ResourceRecord[], truncated: boolean): Reply => ({
      rcode: rule.rcode,
      flags: ReplyFlag.AA | (truncated ? ReplyFlag.TC : 0),
      answer: records,
      authority,
      additional,
      // CoreDNS's template replies go out uncompressed, owners as the templates spell them.
      uncompressed: true,
    });
    if (!chasing) return reply(answer as ResourceRecord[], false);
    return (async () => {
      const records: ResourceRecord[] = [];
      let truncated = false;
      for (const item of answer) {
        if (!(item instanceof Promise)) {
          records.push(item);
          continue;
        }
        try {
          const upstream = await item;
          // CoreDNS takes TC from the last lookup, and the answer section whatever the rcode.
          truncated = (upstream.flags & ReplyFlag.TC) !== 0;
          records.push(...upstream.answer);
        } catch {
          // A failed lookup leaves the CNAME alone.
        }
      }
      return reply(records, truncated);
    })();
  }

  /** The target asked of the server itself, with the client's type; null past the depth limit. */
  private lookup(request: ChasingRequest, target: string): Promise<Reply> | null {
    const depth = (request[chaseDepth] ?? 0) + 1;
    if (depth > MAX_CHASE_DEPTH) return null;
    return new Promise((resolve) => {
      const chased: ChasingRequest = withQuestion(request, target, request.query.qtype);
      chased[chaseDepth] = depth;
      // A lookup that throws rejects, and leaves the CNAME alone.
      resolve(request.reenter(chased));
    });
  }
}

export default definePlugin<TemplateRule[]>({
  name: 'template',
  parse: (directives, block) => directives.map((directive) => parseTemplateDirective(directive, block)),
  create(rules, _block, log) {
    if (rules.some((rule) => rule.extendedError !== null)) {
      log.warning('ederror is accepted but not sent: clusterdns answers carry no Extended DNS Error option');
    }
    const handler = new TemplateHandler(rules);
    return { serve: (request, next) => handler.serve(request, next) };
  },
});
