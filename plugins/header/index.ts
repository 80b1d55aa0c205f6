// header: sets or clears the AA, RA and RD bits of queries (before the rest
// of the chain sees them) and of replies, as CoreDNS 1.11's header plugin does.

import { setupError, wrongArgCount } from '../../src/corefile/setup.ts';
import type { Directive } from '../../src/corefile/types.ts';
import { createLogger } from '../../src/log.ts';
import { definePlugin, whenReplied } from '../../src/plugin.ts';
import { Flag } from '../../src/wire/constants.ts';
import { withHeader, type Reply } from '../../src/wire/message.ts';

type FlagName = 'aa' | 'ra' | 'rd';

interface FlagRule {
  flag: FlagName;
  set: boolean;
}

export interface HeaderConfig {
  query: FlagRule[];
  response: FlagRule[];
}

const BITS: Record<FlagName, number> = { aa: Flag.AA, ra: Flag.RA, rd: Flag.RD };

function rulesOf(line: Directive, action: string | undefined, flags: string[]): FlagRule[] {
  const fail = (message: string) => setupError(line.name, `setting up rule: ${message}`);
  if (action === undefined) throw fail('no flag action provided');
  if (flags.length === 0) throw fail('invalid length for flags, at least one should be provided');
  const verb = action.toLowerCase();
  if (verb !== 'set' && verb !== 'clear') throw fail(`unknown flag action=${verb}, should be set or clear`);
  return flags.map((text) => {
    const flag = text.toLowerCase();
    if (!(flag in BITS)) throw fail(`unknown/unsupported flag=${flag}`);
    return { flag: flag as FlagName, set: verb === 'set' };
  });
}

/** The header word after the rules, starting from `bits`. */
function applied(bits: number, rules: readonly FlagRule[]): number {
  for (const { flag, set } of rules) bits = set ? bits | BITS[flag] : bits & ~BITS[flag];
  return bits;
}

/** The reply with the rules applied to its AA, RA and RD bits (RD is the query's unless a plugin set it). */
function headerApplied(reply: Reply, rules: readonly FlagRule[], queryFlags: number): Reply {
  const before = reply.flags | ((reply.rd ?? (queryFlags & Flag.RD) !== 0) ? Flag.RD : 0);
  const after = applied(before, rules);
  if (after === before) return reply;
  return withHeader(reply, { flags: after & ~Flag.RD, rd: (after & Flag.RD) !== 0 });
}

export default definePlugin<HeaderConfig>({
  name: 'header',
  parse(directives, block) {
    const log = createLogger('header', block.log);
    // Only the first line with rules counts (CoreDNS 1.11.3).
    for (const directive of directives) {
      const config: HeaderConfig = { query: [], response: [] };
      for (const line of directive.block ?? []) {
        let selector = line.name.text.toLowerCase();
        let args = line.args.map((token) => token.text);
        if (selector === 'set' || selector === 'clear') {
          log.warning(`The selector for header rule in line ${line.name.line} isn't explicit defined. Assume rule applies for selector 'response'. This syntax is deprecated. In future versions of CoreDNS the selector must be explicit defined.`);
          args = [selector, ...args];
          selector = 'response';
        } else if (selector !== 'query' && selector !== 'response') {
          throw setupError(line.name, `setting up rule: invalid selector=${selector} should be query or response`);
        }
        config[selector as 'query' | 'response'].push(...rulesOf(line, args[0], args.slice(1)));
      }
      if (config.query.length > 0 || config.response.length > 0) return config;
    }
    const last = directives.at(-1)!;
    throw wrongArgCount(last.block === null ? last.name : (last.block.at(-1)?.name ?? last.name));
  },
  create({ query: queryRules, response: responseRules }) {
    return {
      serve(request, next) {
        const { query } = request;
        if (queryRules.length > 0) {
          // As CoreDNS changes the request itself: a forwarded query carries the
          // new bits, and the reply echoes the new RD.
          query.flags = applied(query.flags, queryRules);
          query.packet.writeUInt16BE(query.flags, 2);
        }
        if (responseRules.length === 0) return next(request);
        return whenReplied(next(request), (reply) => headerApplied(reply, responseRules, query.flags));
      },
    };
  },
});
