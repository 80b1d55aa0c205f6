// Go's fmt for the template functions print, println and printf, and for
// printing an action's value: %v forms of strings, numbers, bools, slices,
// maps and structs; the verbs v s q d x X o O b c U t e E f F g G with flags,
// width and precision; Go's %!verb(type=value) for mistakes.

import { GoMap, GoStruct, NO_VALUE, goTypeName } from './govalues.ts';

/** Go's %g/%v for a float64: shortest representation, exponent from 1e21 or below 1e-4. */
function formatFloat(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return String(value);
  if (!Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf';
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  if (exponent < -4 || exponent >= 21) {
    return value.toExponential().replace(/e([+-])(\d)$/, 'e$10$2');
  }
  return String(value);
}

/** A value as %v prints it. */
export function formatValue(value: unknown): string {
  if (value === NO_VALUE) return '<no value>';
  if (value === null || value === undefined) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : formatFloat(value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(formatValue).join(' ')}]`;
  if (value instanceof GoMap) return `map[${value.sortedKeys().map((key) => `${key}:${formatValue(value.get(key))}`).join(' ')}]`;
  if (value instanceof GoStruct) {
    if (value.stringer) return value.stringer();
    return `&{${value.fieldNames().map((name) => formatValue(value.field(name))).join(' ')}}`;
  }
  if (typeof value === 'function') return '<func>';
  return String(value);
}

/** fmt.Sprint: spaces between operands when neither is a string. */
export function goSprint(args: readonly unknown[]): string {
  let out = '';
  for (let i = 0; i < args.length; i++) {
    if (i > 0 && typeof args[i] !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += formatValue(args[i]);
  }
  return out;
}

/** fmt.Sprintln: always spaces, and a newline. */
export function goSprintln(args: readonly unknown[]): string {
  return args.map(formatValue).join(' ') + '\n';
}

interface Spec {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  width: number | null;
  precision: number | null;
}

function pad(text: string, spec: Spec, numeric: boolean): string {
  if (spec.width === null || text.length >= spec.width) return text;
  const fill = spec.width - text.length;
  if (spec.minus) return text + ' '.repeat(fill);
  if (spec.zero && numeric) {
    const sign = /^[+\- ]/.test(text) ? text[0] : '';
    return sign + '0'.repeat(fill) + text.slice(sign.length);
  }
  return ' '.repeat(fill) + text;
}

function bad(verb: string, value: unknown): string {
  if (value === null || value === undefined) return `%!${verb}(<nil>)`;
  return `%!${verb}(${goTypeName(value)}=${formatValue(value)})`;
}

function integer(value: unknown): bigint | null {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return null;
}

function formatInteger(value: bigint, verb: string, spec: Spec): string {
  const negative = value < 0n;
  const magnitude = negative ? -value : value;
  let digits: string;
  let prefix = '';
  switch (verb) {
    case 'x':
      digits = magnitude.toString(16);
      if (spec.sharp) prefix = '0x';
      break;
    case 'X':
      digits = magnitude.toString(16).toUpperCase();
      if (spec.sharp) prefix = '0X';
      break;
    case 'o':
      digits = magnitude.toString(8);
      if (spec.sharp) prefix = '0';
      break;
    case 'O':
      digits = magnitude.toString(8);
      prefix = '0o';
      break;
    case 'b':
      digits = magnitude.toString(2);
      break;
    default:
      digits = magnitude.toString(10);
  }
  if (spec.precision !== null) digits = digits.padStart(spec.precision, '0');
  const sign = negative ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
  return pad(sign + prefix + digits, { ...spec, zero: spec.zero && spec.precision === null }, true);
}

function formatFloatVerb(value: number, verb: string, spec: Spec): string {
  let text: string;
  const precision = spec.precision;
  switch (verb) {
    case 'e':
    case 'E':
      text = value.toExponential(precision ?? 6).replace(/e([+-])(\d)$/, 'e$10$2');
      if (verb === 'E') text = text.toUpperCase();
      break;
    case 'f':
    case 'F':
      text = value.toFixed(precision ?? 6);
      break;
    default:
      text = precision === null ? formatFloat(value) : String(Number(value.toPrecision(precision)));
      if (verb === 'G') text = text.toUpperCase();
  }
  if (value >= 0 && spec.plus) text = '+' + text;
  else if (value >= 0 && spec.space) text = ' ' + text;
  return pad(text, spec, true);
}

function quote(text: string): string {
  return JSON.stringify(text).replace(/\\u007f/g, '\\x7f');
}

function formatOne(verb: string, value: unknown, spec: Spec): string {
  if (value === NO_VALUE) return `%!${verb}(<invalid reflect.Value>)`;
  switch (verb) {
    case 'v':
      return pad(formatValue(value), spec, false);
    case 's':
    case 'q': {
      if (typeof value === 'string') {
        const text = spec.precision !== null ? value.slice(0, spec.precision) : value;
        return pad(verb === 'q' ? quote(text) : text, spec, false);
      }
      if (value instanceof GoStruct && value.stringer) return pad(verb === 'q' ? quote(value.stringer()) : value.stringer(), spec, false);
      if (Array.isArray(value) && value.every((element) => typeof element === 'string')) {
        return pad(`[${value.map((element) => (verb === 'q' ? quote(element) : element)).join(' ')}]`, spec, false);
      }
      if (verb === 'q' && integer(value) !== null) return pad(`'${String.fromCodePoint(Number(value))}'`, spec, false);
      return bad(verb, value);
    }
    case 'd':
    case 'o':
    case 'O':
    case 'b': {
      const number = integer(value);
      return number === null ? bad(verb, value) : formatInteger(number, verb, spec);
    }
    case 'x':
    case 'X': {
      const number = integer(value);
      if (number !== null) return formatInteger(number, verb, spec);
      if (typeof value === 'string') {
        const hex = Buffer.from(value, 'utf8').toString('hex');
        return pad(verb === 'X' ? hex.toUpperCase() : hex, spec, false);
      }
      return bad(verb, value);
    }
    case 'c': {
      const number = integer(value);
      return number === null ? bad(verb, value) : pad(String.fromCodePoint(Number(number)), spec, false);
    }
    case 'U': {
      const number = integer(value);
      return number === null ? bad(verb, value) : pad(`U+${Number(number).toString(16).toUpperCase().padStart(4, '0')}`, spec, false);
    }
    case 't':
      return typeof value === 'boolean' ? pad(String(value), spec, false) : bad(verb, value);
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
      return typeof value === 'number' && !Number.isInteger(value) ? formatFloatVerb(value, verb, spec) : bad(verb, value);
    default:
      return bad(verb, value);
  }
}

/** fmt.Sprintf. */
export function goSprintf(format: string, args: readonly unknown[]): string {
  let out = '';
  let next = 0;
  for (let i = 0; i < format.length; i++) {
    const char = format[i]!;
    if (char !== '%') {
      out += char;
      continue;
    }
    const spec: Spec = { minus: false, plus: false, sharp: false, space: false, zero: false, width: null, precision: null };
    i++;
    for (; i < format.length; i++) {
      const flag = format[i];
      if (flag === '-') spec.minus = true;
      else if (flag === '+') spec.plus = true;
      else if (flag === '#') spec.sharp = true;
      else if (flag === ' ') spec.space = true;
      else if (flag === '0') spec.zero = !spec.minus;
      else break;
    }
    const readNumber = (): number | null => {
      if (format[i] === '*') {
        i++;
        const value = args[next++];
        return typeof value === 'number' ? value : null;
      }
      const match = /^\d+/.exec(format.slice(i));
      if (!match) return null;
      i += match[0].length;
      return Number(match[0]);
    };
    spec.width = readNumber();
    if (format[i] === '.') {
      i++;
      spec.precision = readNumber() ?? 0;
    }
    const verb = format[i];
    if (verb === undefined) {
      out += '%!(NOVERB)';
      break;
    }
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (next >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    out += formatOne(verb, args[next++], spec);
  }
  if (next < args.length) {
    out += `%!(EXTRA ${args.slice(next).map((value) => `${goTypeName(value)}=${formatValue(value)}`).join(', ')})`;
  }
  return out;
}
