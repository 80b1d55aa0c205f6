// errors: logs what went wrong in the chain (ERR-1..4).

import { expectArgs, onlyOnce, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Token } from '../../src/corefile/types.ts';
import type { Logger, LogLevel } from '../../src/log.ts';
import { definePlugin, type Request } from '../../src/plugin.ts';
import { typeName } from '../../src/wire/constants.ts';
import type { Reply } from '../../src/wire/message.ts';

interface Consolidation {
  periodMs: number;
  periodText: string;
  pattern: RegExp;
  source: string;
  level: LogLevel;
  showFirst: boolean;
}

export interface ErrorsConfig {
  stacktrace: boolean;
  consolidate: Consolidation[];
}

const levels: Record<string, LogLevel> = { warning: 'WARNING', error: 'ERROR', info: 'INFO', debug: 'DEBUG' };

function parseConsolidate(args: Token[], option: Token): Consolidation {
  if (args.length < 2 || args.length > 4) {
    throw setupError(option, `consolidate takes DURATION REGEXP [warning|error|info|debug] [show_first], found ${args.length} argument(s)`);
  }
  const [duration, regexp, ...rest] = args as [Token, Token, ...Token[]];
  if (regexp.text.length > 10_000) throw setupError(regexp, 'consolidate: regexp longer than 10000 characters');
  let pattern: RegExp;
  try {
    pattern = new RegExp(regexp.text);
  } catch (error) {
    throw setupError(regexp, `consolidate: invalid regexp '${regexp.text}': ${(error as Error).message}`);
  }
  let level: LogLevel = 'ERROR';
  let showFirst = false;
  for (const token of rest) {
    if (token.text === 'show_first') showFirst = true;
    else if (levels[token.text] && !showFirst) level = levels[token.text]!;
    else throw setupError(token, `consolidate: expected a level (warning, error, info, debug) or show_first, found '${token.text}'`);
  }
  return { periodMs: parseDuration(duration), periodText: duration.text, pattern, source: regexp.text, level, showFirst };
}

export function parseErrors(directive: Parameters<typeof expectArgs>[0]): ErrorsConfig {
  expectArgs(directive, 0);
  const config: ErrorsConfig = { stacktrace: false, consolidate: [] };
  for (const option of directive.block ?? []) {
    if (option.name.text === 'stacktrace') {
      expectArgs(option, 0);
      config.stacktrace = true;
    } else if (option.name.text === 'consolidate') {
      config.consolidate.push(parseConsolidate(option.args, option.name));
    } else {
      throw unknownProperty('errors', option.name);
    }
  }
  return config;
}

/** Counts errors matching one consolidate rule and logs one summary per period. */
class Consolidator {
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  readonly rule: Consolidation;
  private readonly log: Logger;
  constructor(rule: Consolidation, log: Logger) {
    this.rule = rule;
    this.log = log;
  }

  /** True when the rule took the error (it is not logged on its own). */
  offer(line: string): boolean {
    if (!this.rule.pattern.test(line)) return false;
    if (this.count++ === 0) {
      if (this.rule.showFirst) this.log.write(this.rule.level, line);
      this.timer = setTimeout(() => this.flush(), this.rule.periodMs);
      this.timer.unref();
    }
    return true;
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const count = this.count;
    this.count = 0;
    if (count === 0 || (this.rule.showFirst && count === 1)) return;
    this.log.write(this.rule.level, `plugin/errors: ${count} errors like '${this.rule.source}' occurred in last ${this.rule.periodText}`);
  }
}

export default definePlugin<ErrorsConfig>({
  name: 'errors',
  parse: (directives) => parseErrors(onlyOnce(directives)),
  create(config, _block, log) {
    const consolidators = config.consolidate.map((rule) => new Consolidator(rule, log));
    const report = (request: Request, reply: Reply): Reply => {
      if (reply.error) {
        const { qname, qtype } = request.query;
        const line = `${reply.rcode} ${qname} ${typeName(qtype)}: ${reply.error.message}`;
        // ERR-3: the first matching pattern takes the error.
        if (!consolidators.some((consolidator) => consolidator.offer(`plugin/errors: ${line}`))) log.error(line);
      }
      return reply;
    };
    return {
      serve(request, next) {
        let result;
        try {
          result = next(request);
        } catch (error) {
          if (config.stacktrace && error instanceof Error) log.error(error.stack ?? error.message);
          throw error;
        }
        // No closure on the synchronous path: this runs for every query.
        return result instanceof Promise ? result.then((reply) => report(request, reply)) : report(request, result);
      },
      stop() {
        for (const consolidator of consolidators) consolidator.flush();
      },
    };
  },
});
