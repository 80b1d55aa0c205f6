// log: one line per query after it is answered (LOG-1..5), in CoreDNS's
// common or combined format. The format is compiled once at setup into a
// list of field writers; only those run per query.

import { setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Directive } from '../../src/corefile/types.ts';
import { definePlugin, whenReplied, type Request } from '../../src/plugin.ts';
import { className, Flag, opcodeName, rcodeName, TCP_MAX_SIZE, typeName, UDP_MIN_SIZE } from '../../src/wire/constants.ts';
import { classify, typify, type ResponseClass } from '../../src/wire/classify.ts';
import { encodedLength, type Reply } from '../../src/wire/message.ts';
import { canonicalName, isSubdomain } from '../../src/wire/names.ts';

export const COMMON_FORMAT = '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}';
export const COMBINED_FORMAT = COMMON_FORMAT + ' "{>opcode}"';

export interface LogRule {
  names: string[];
  format: string;
  /** Empty means all classes. */
  classes: Set<ResponseClass>;
}

type Field = (request: Request, reply: Reply, seconds: number) => string;

const fields: Record<string, Field> = {
  type: (request) => typeName(request.query.qtype),
  name: (request) => request.query.qname,
  class: (request) => className(request.query.qclass),
  proto: (request) => request.transport,
  remote: (request) => (request.remoteAddress.includes(':') ? `[${request.remoteAddress}]` : request.remoteAddress),
  local: (request) => (request.localAddress.includes(':') ? `[${request.localAddress}]` : request.localAddress),
  port: (request) => String(request.remotePort),
  size: (request) => String(request.query.packet.length),
  rcode: (_request, reply) => rcodeName(reply.rcode),
  rsize: (request, reply) => String(encodedLength(request.query, reply)),
  duration: (_request, _reply, seconds) => formatSeconds(seconds),
  '>id': (request) => String(request.query.id),
  '>opcode': (request) => opcodeName(request.query.opcode),
  '>do': (request) => String(request.query.edns?.dnssecOk ?? false),
  '>bufsize': (request) => String(request.query.edns ? request.query.edns.udpSize : request.transport === 'tcp' ? TCP_MAX_SIZE : UDP_MIN_SIZE),
  '>rflags': (request, reply) => replyFlags(request, reply),
};

function replyFlags(request: Request, reply: Reply): string {
  const requestFlags = request.query.flags;
  const flags = ['qr'];
  if (reply.flags & Flag.AA) flags.push('aa');
  if (reply.flags & Flag.TC) flags.push('tc');
  if (requestFlags & Flag.RD) flags.push('rd');
  if (reply.flags & Flag.RA) flags.push('ra');
  if (reply.flags & Flag.AD) flags.push('ad');
  if (requestFlags & Flag.CD) flags.push('cd');
  return flags.join(',');
}

/** Go's Duration.Seconds() printed with 'f', -1: no exponent, no trailing zeros. */
function formatSeconds(seconds: number): string {
  return seconds.toFixed(9).replace(/0+$/, '').replace(/\.$/, '') + 's';
}

/** Splits a format into literal text and field writers; unknown placeholders print '-'. */
export function compileFormat(format: string): (request: Request, reply: Reply, seconds: number) => string {
  const parts: (string | Field)[] = [];
  let rest = format;
  for (let match = /\{([^{}]+)\}/.exec(rest); match; match = /\{([^{}]+)\}/.exec(rest)) {
    if (match.index > 0) parts.push(rest.slice(0, match.index));
    const key = match[1]!;
    parts.push(fields[key] ?? (() => '-'));
    rest = rest.slice(match.index + match[0].length);
  }
  if (rest) parts.push(rest);
  return (request, reply, seconds) => {
    let line = '';
    for (const part of parts) line += typeof part === 'string' ? part : part(request, reply, seconds);
    return line;
  };
}

function expandFormat(format: string): string {
  return format.replaceAll('{common}', COMMON_FORMAT).replaceAll('{combined}', COMBINED_FORMAT);
}

const classNames = new Set(['success', 'denial', 'error', 'all']);

export function parseLogRule(directive: Directive): LogRule {
  const args = directive.args.map((token) => token.text);
  let names: string[];
  let format = COMMON_FORMAT;
  if (args.length >= 2 && args.at(-1)!.includes('{')) {
    format = expandFormat(args.at(-1)!);
    names = args.slice(0, -1);
  } else {
    names = args;
  }
  if (names.length === 0) names = ['.'];
  const classes = new Set<ResponseClass>();
  let all = false;
  for (const option of directive.block ?? []) {
    if (option.name.text !== 'class') throw unknownProperty('log', option.name);
    if (option.args.length === 0) throw setupError(option.name, 'class needs at least one of success, denial, error, all');
    for (const token of option.args) {
      if (!classNames.has(token.text)) throw setupError(token, `invalid class '${token.text}': expected success, denial, error or all`);
      if (token.text === 'all') all = true;
      else classes.add(token.text as ResponseClass);
    }
  }
  if (all) classes.clear();
  return { names: names.map(canonicalName), format, classes };
}

export default definePlugin<LogRule[]>({
  name: 'log',
  parse: (directives) => directives.map(parseLogRule),
  create(rules, _block, log) {
    const compiled = rules.map((rule) => ({ ...rule, render: compileFormat(rule.format) }));
    return {
      serve(request, next) {
        const { qname } = request.query;
        // The first rule whose names cover the query logs it.
        const rule = compiled.find((candidate) => candidate.names.some((name) => isSubdomain(qname, name)));
        if (!rule) return next(request);
        const started = performance.now();
        return whenReplied(next(request), (reply) => {
          if (rule.classes.size === 0 || rule.classes.has(classify(typify(reply)))) {
            log.write('INFO', rule.render(request, reply, (performance.now() - started) / 1000));
          }
          return reply;
        });
      },
    };
  },
});

