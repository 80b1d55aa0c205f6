// timeouts: the read, write and idle deadlines of the block's DNS-over-TCP
// connections (WIRE-18). Setup only; src/tcp.ts applies them. UDP has none.

import { parseDuration, setupError, wrongArgCount } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import { definePlugin, type TcpTimeouts } from '../../src/plugin.ts';

const MIN_MS = 1_000;
const MAX_MS = 24 * 3_600_000;

const optionField: Record<string, keyof TcpTimeouts> = { read: 'readMs', write: 'writeMs', idle: 'idleMs' };

/** As CoreDNS reads durations: a bare integer is seconds, else Go's syntax ("5s", "1m30s"). */
function parseTimeout(option: Directive): number {
  if (option.args.length !== 1) throw wrongArgCount(option.args.at(-1) ?? option.name);
  const token = option.args[0]!;
  let ms: number;
  if (/^\d+$/.test(token.text)) ms = Number(token.text) * 1_000;
  else {
    try {
      ms = parseDuration(token);
    } catch {
      throw setupError(token, `failed to parse duration '${token.text}'`);
    }
  }
  if (ms < MIN_MS || ms > MAX_MS) throw setupError(token, `timeout provided '${goDuration(ms)}' needs to be between 1 second and 24 hours`);
  return ms;
}

/** A duration as Go prints it (CoreDNS's messages quote them so): 500ms, 1.5s, 1m30s, 25h0m0s. */
function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${Number(ms.toPrecision(12))}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = Number(((ms % 60_000) / 1_000).toPrecision(12));
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

export default definePlugin<Partial<TcpTimeouts>>({
  name: 'timeouts',
  // Every timeouts line of the block counts, in order; a later value replaces an earlier one.
  parse(directives) {
    const timeouts: Partial<TcpTimeouts> = {};
    for (const directive of directives) {
      if (directive.args.length > 0) throw wrongArgCount(directive.args.at(-1)!);
      const options = directive.block ?? [];
      if (options.length === 0) throw setupError(directive.name, 'timeouts block with no timeouts specified');
      for (const option of options) {
        const field = optionField[option.name.text];
        if (!field) throw unknownOption(option.name);
        timeouts[field] = parseTimeout(option);
      }
    }
    return timeouts;
  },
  create(timeouts, block) {
    block.timeouts = timeouts;
    return {};
  },
});

function unknownOption(option: Token) {
  return setupError(option, `unknown option: '${option.text}'`);
}
