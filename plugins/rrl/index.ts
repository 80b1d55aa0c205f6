// rrl: response rate limiting per client prefix and kind of response, with
// the syntax and accounting of CoreDNS's external rrl plugin (after BIND's RRL).
//
//   rrl [ZONES...] {
//       window SECONDS
//       ipv4-prefix-length LENGTH
//       ipv6-prefix-length LENGTH
//       responses-per-second ALLOWANCE
//       nodata-per-second ALLOWANCE
//       nxdomains-per-second ALLOWANCE
//       referrals-per-second ALLOWANCE
//       errors-per-second ALLOWANCE
//       slip-ratio N
//       requests-per-second ALLOWANCE
//       max-table-size SIZE
//       report-only
//   }
//
// Requests are limited per prefix before the chain runs (UDP and TCP, as in
// rrl); responses after it, over UDP only: a client told to retry over TCP
// (a slipped, truncated answer) is always answered there.

import { expectArgs, onlyOnce, parseInteger, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import { definePlugin, type BlockContext, type Next, type Request } from '../../src/plugin.ts';
import { Flag, Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply, SilentReply, type Reply } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';
import { zoneArgs } from '../cache/config.ts';
import { AccountTable, Verdict } from './accounts.ts';
import { rrlCounters } from './metrics.ts';
import { PrefixMask } from './prefix.ts';

/** The kinds of response rrl accounts separately, as it numbers them in its tokens. */
const Kind = { RESPONSE: 0, NODATA: 1, NXDOMAIN: 2, REFERRAL: 3, ERROR: 4 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

export interface RrlConfig {
  zones: string[];
  windowMs: number;
  ipv4PrefixLength: number;
  ipv6PrefixLength: number;
  /** Milliseconds of credit one response of each Kind costs (1000 / per-second); 0: not limited. */
  intervalMs: Record<Kind, number>;
  requestIntervalMs: number;
  slipRatio: number;
  maxTableSize: number;
  reportOnly: boolean;
}

/** ALLOWANCE: a non-negative number of responses per second; 0 turns that limit off. */
function parseAllowance(option: Directive): number {
  const [value] = expectArgs(option, 1) as [Token];
  const what = option.name.text;
  // Go's ParseFloat syntax for plain decimals; no NaN or Inf.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value.text)) {
    throw setupError(value, `plugin/rrl: ${what} invalid value '${value.text}': expected a number of responses per second`);
  }
  const perSecond = Number(value.text);
  if (perSecond < 0) throw setupError(value, `plugin/rrl: ${what} cannot be negative, found ${value.text}`);
  return perSecond === 0 ? 0 : 1000 / perSecond;
}

export function parseRrl(directive: Directive, block: BlockContext): RrlConfig {
  const config: RrlConfig = {
    zones: directive.args.length > 0 ? zoneArgs(directive.args) : [...block.zones],
    windowMs: 15_000,
    ipv4PrefixLength: 24,
    ipv6PrefixLength: 56,
    intervalMs: { [Kind.RESPONSE]: 0, [Kind.NODATA]: 0, [Kind.NXDOMAIN]: 0, [Kind.REFERRAL]: 0, [Kind.ERROR]: 0 },
    requestIntervalMs: 0,
    slipRatio: 0,
    maxTableSize: 100_000,
    reportOnly: false,
  };
  // The other kinds default to responses-per-second, wherever it is written.
  const explicit = new Set<Kind>();
  const setKind = (kind: Kind, option: Directive) => {
    config.intervalMs[kind] = parseAllowance(option);
    explicit.add(kind);
  };
  for (const option of directive.block ?? []) {
    const name = option.name.text;
    if (option.block !== null) throw setupError(option.name, `plugin/rrl: Unexpected '{' after '${name}': rrl options take no block`);
    switch (name) {
      case 'window': {
        const [value] = expectArgs(option, 1) as [Token];
        if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(value.text)) throw setupError(value, `plugin/rrl: window invalid value '${value.text}': expected a number of seconds`);
        const seconds = Number(value.text);
        if (seconds <= 0) throw setupError(value, 'plugin/rrl: window must be greater than zero');
        config.windowMs = seconds * 1000;
        break;
      }
      case 'ipv4-prefix-length':
        config.ipv4PrefixLength = parseInteger(expectArgs(option, 1)[0]!, 1, 32, 'plugin/rrl: ipv4-prefix-length');
        break;
      case 'ipv6-prefix-length':
        config.ipv6PrefixLength = parseInteger(expectArgs(option, 1)[0]!, 1, 128, 'plugin/rrl: ipv6-prefix-length');
        break;
      case 'responses-per-second':
        setKind(Kind.RESPONSE, option);
        break;
      case 'nodata-per-second':
        setKind(Kind.NODATA, option);
        break;
      case 'nxdomains-per-second':
        setKind(Kind.NXDOMAIN, option);
        break;
      case 'referrals-per-second':
        setKind(Kind.REFERRAL, option);
        break;
      case 'errors-per-second':
        setKind(Kind.ERROR, option);
        break;
      case 'requests-per-second':
        config.requestIntervalMs = parseAllowance(option);
        break;
      case 'slip-ratio':
        config.slipRatio = parseInteger(expectArgs(option, 1)[0]!, 0, 10, 'plugin/rrl: slip-ratio');
        break;
      case 'max-table-size':
        config.maxTableSize = parseInteger(expectArgs(option, 1)[0]!, 0, Number.MAX_SAFE_INTEGER, 'plugin/rrl: max-table-size');
        break;
      case 'report-only':
        expectArgs(option, 0);
        config.reportOnly = true;
        break;
      default:
        throw unknownProperty('rrl', option.name);
    }
  }
  for (const kind of [Kind.NODATA, Kind.NXDOMAIN, Kind.REFERRAL, Kind.ERROR]) {
    if (!explicit.has(kind)) config.intervalMs[kind] = config.intervalMs[Kind.RESPONSE];
  }
  return config;
}

/** Rcodes a plugin returns without writing a reply in CoreDNS (plugin.ClientWrite): the server writes them, rrl does not count them. */
const serverWritten = new Set<number>([Rcode.SERVFAIL, Rcode.REFUSED, Rcode.FORMERR, Rcode.NOTIMP]);

function kindOf(reply: Reply): Kind {
  if (reply.answer.length > 0) return Kind.RESPONSE;
  if (reply.rcode === Rcode.NXDOMAIN) return Kind.NXDOMAIN;
  if (reply.rcode === Rcode.NOERROR) return reply.authority[0]?.type === Type.NS ? Kind.REFERRAL : Kind.NODATA;
  return Kind.ERROR;
}

export class ResponseRateLimiter {
  private readonly config: RrlConfig;
  private readonly table: AccountTable;
  private readonly mask: PrefixMask;
  private readonly everyName: boolean;
  private readonly counters = rrlCounters();

  constructor(config: RrlConfig, now?: () => number) {
    this.config = config;
    this.table = new AccountTable(config.maxTableSize, config.windowMs, config.slipRatio, now);
    this.mask = new PrefixMask(config.ipv4PrefixLength, config.ipv6PrefixLength);
    this.everyName = config.zones.includes('.');
  }

  /** Accounts held now; never more than max-table-size. */
  get tracked(): number {
    return this.table.size;
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const { query } = request;
    if (!this.everyName && !this.config.zones.some((zone) => isSubdomain(query.qname, zone))) return next(request);
    const prefix = this.mask.prefixOf(request.remoteAddress, request.family);
    if (this.config.requestIntervalMs > 0 && this.table.debit(prefix, this.config.requestIntervalMs) !== Verdict.SEND) {
      this.counters.requests.inc(request.remoteAddress);
      if (!this.config.reportOnly) return SilentReply.REQUEST_DROPPED;
    }
    // Responses over TCP are never limited: that is where slipped clients retry.
    if (request.transport === 'tcp') return next(request);
    const result = next(request);
    return result instanceof Promise ? result.then((reply) => this.account(request, prefix, reply)) : this.account(request, prefix, result);
  }

  /** Debits the reply's account; returns it, a truncated empty copy (slip), or a silent drop. */
  private account(request: Request, prefix: string, reply: Reply): Reply {
    if (reply.error !== undefined && serverWritten.has(reply.rcode)) return reply;
    const kind = kindOf(reply);
    const interval = this.config.intervalMs[kind];
    if (interval === 0) return reply;
    const verdict = this.table.debit(this.token(request, prefix, kind, reply), interval);
    if (verdict === Verdict.SEND) return reply;
    this.counters.responses.inc(request.remoteAddress);
    if (this.config.reportOnly) return reply;
    // Slipped: header and question only, TC set, so a real client retries over TCP.
    if (verdict === Verdict.SLIP) return emptyReply(reply.rcode, reply.flags | Flag.TC);
    return SilentReply.RESPONSE_DROPPED;
  }

  /**
   * BIND's categories: answers per name and type; NODATA per name; NXDOMAIN
   * and referrals per the zone of the authority section (every undefined name
   * of a zone counts alike); errors per client prefix only.
   */
  private token(request: Request, prefix: string, kind: Kind, reply: Reply): string {
    const { qname, qtype } = request.query;
    switch (kind) {
      case Kind.RESPONSE:
        return `${prefix}/0/${qtype}/${qname}`;
      case Kind.NODATA:
        return `${prefix}/1//${qname}`;
      case Kind.NXDOMAIN:
        return `${prefix}/2//${reply.authority[0]?.name.toLowerCase() ?? ''}`;
      case Kind.REFERRAL:
        return `${prefix}/3/${qtype}/${reply.authority[0]?.name.toLowerCase() ?? ''}`;
      default:
        return `${prefix}/4//`;
    }
  }
}

export default definePlugin<RrlConfig>({
  name: 'rrl',
  parse: (directives, block) => parseRrl(onlyOnce(directives), block),
  create(config) {
    const limiter = new ResponseRateLimiter(config);
    return {
      serve: (request, next) => limiter.serve(request, next),
      get tracked() {
        return limiter.tracked;
      },
    } as { serve: (request: Request, next: Next) => Reply | Promise<Reply>; readonly tracked: number };
  },
});
