// Small helpers every plugin parser uses, so that setup errors read the same
// everywhere: "<file>:<line> - Error during parsing: <what was found and expected>".

import { CorefileError, type Directive, type Token } from './types.ts';

export function setupError(token: Token, detail: string): CorefileError {
  return new CorefileError(token, detail);
}

/** CoreDNS's message for a repeated once-only plugin (CF-8). */
export function onlyOnce(directives: Directive[]): Directive {
  if (directives.length > 1) {
    const second = directives[1]!.name;
    throw setupError(second, `plugin/${second.text}: this plugin can only be used once per Server Block`);
  }
  return directives[0]!;
}

export function wrongArgCount(after: Token): CorefileError {
  return setupError(after, `Wrong argument count or unexpected line ending after '${after.text}'`);
}

/** Throws unless the directive has between min and max arguments. */
export function expectArgs(directive: Directive, min: number, max = min): Token[] {
  const { args } = directive;
  if (args.length < min) throw wrongArgCount(args.at(-1) ?? directive.name);
  if (args.length > max) throw setupError(args[max]!, `Unexpected token '${args[max]!.text}' after '${args[max - 1]?.text ?? directive.name.text}': ${directive.name.text} takes at most ${max} argument${max === 1 ? '' : 's'}`);
  return args;
}

export function expectNoBlock(directive: Directive): void {
  if (directive.block && directive.block.length > 0) {
    const first = directive.block[0]!.name;
    throw setupError(first, `Unexpected token '${first.text}': ${directive.name.text} takes no options block`);
  }
}

export function unknownProperty(plugin: string, option: Token): CorefileError {
  return setupError(option, `plugin/${plugin}: unknown property '${option.text}'`);
}

/** An integer in [min, max]; says which range when it is not. */
export function parseInteger(token: Token, min: number, max: number, what: string): number {
  if (!/^-?\d+$/.test(token.text)) throw setupError(token, `${what} must be an integer, found '${token.text}'`);
  const value = Number(token.text);
  if (value < min || value > max) throw setupError(token, `${what} must be between ${min} and ${max}, found ${value}`);
  return value;
}

const durationUnits: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("5s", "1m30s", "250ms") in milliseconds, as CoreDNS's options take them. */
export function parseDuration(token: Token, what = 'duration'): number {
  const text = token.text;
  if (text === '0') return 0;
  const pattern = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (const match of text.matchAll(pattern)) {
    total += Number(match[1]) * durationUnits[match[2]!]!;
    consumed += match[0].length;
  }
  if (consumed === 0 || consumed !== text.length) {
    throw setupError(token, `${what} must be a duration such as 5s or 1m30s, found '${text}'`);
  }
  return total;
}
