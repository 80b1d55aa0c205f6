// Go's strconv.ParseUint, the template function CoreDNS names parseInt:
// `{{ parseInt .Group.b 16 8 }}` reads a hex byte.

import { CallError } from './gotemplate.ts';
import { NO_VALUE, goTypeName } from './govalues.ts';

function expect(value: unknown, type: 'string' | 'int'): void {
  if (value === NO_VALUE || value === null || value === undefined) throw new CallError(`invalid value; expected ${type}`);
  const ok = type === 'string' ? typeof value === 'string' : typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value));
  if (!ok) throw new CallError(`wrong type for value; expected ${type}; got ${goTypeName(value)}`);
}

/** strconv.ParseUint(text, base, bitSize); a number, or a bigint above 2^53. */
export function parseUint(...args: unknown[]): number | bigint {
  if (args.length !== 3) throw new CallError(`wrong number of args for parseInt: want 3 got ${args.length}`);
  const [text, baseArg, bitsArg] = args;
  expect(text, 'string');
  expect(baseArg, 'int');
  expect(bitsArg, 'int');
  const input = text as string;
  let base = Number(baseArg);
  const bits = Number(bitsArg) === 0 ? 64 : Number(bitsArg);
  const syntax = () => new CallError(`strconv.ParseUint: parsing ${JSON.stringify(input)}: invalid syntax`);
  if (input === '') throw syntax();
  let digits = input;
  const prefixed = base === 0;
  if (base === 0) {
    base = 10;
    const lower = digits.toLowerCase();
    if (lower.startsWith('0x')) [base, digits] = [16, digits.slice(2)];
    else if (lower.startsWith('0o')) [base, digits] = [8, digits.slice(2)];
    else if (lower.startsWith('0b')) [base, digits] = [2, digits.slice(2)];
    else if (digits.length > 1 && digits.startsWith('0')) [base, digits] = [8, digits.slice(1)];
  } else if (base < 2 || base > 36) {
    throw new CallError(`strconv.ParseUint: parsing ${JSON.stringify(input)}: invalid base ${base}`);
  }
  if (bits < 0 || bits > 64) throw new CallError(`strconv.ParseUint: parsing ${JSON.stringify(input)}: invalid bit size ${bits}`);
  // Underscores only with base 0, between digits.
  if (prefixed && digits.includes('_')) {
    if (/(^|_)_|_$/.test(digits) && !/^_?[0-9a-z]+(_[0-9a-z]+)*$/i.test(digits)) throw syntax();
    digits = digits.replace(/_/g, '');
  }
  if (digits === '') throw syntax();
  let value = 0n;
  for (const char of digits.toLowerCase()) {
    const digit = parseInt(char, 36);
    if (Number.isNaN(digit) || digit >= base) throw syntax();
    value = value * BigInt(base) + BigInt(digit);
  }
  if (value >= 1n << BigInt(bits)) throw new CallError(`strconv.ParseUint: parsing ${JSON.stringify(input)}: value out of range`);
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}
