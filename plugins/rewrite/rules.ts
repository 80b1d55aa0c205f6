// The rules of a rewrite line, parsed as CoreDNS 1.11's plugin/rewrite parses
// them (same checks in the same order, same messages), and what each does to
// a query as it passes.
//
// A rule works on a RewriteState: the question as the rules so far left it.
// When it applies it returns the response rules the reply must go through
// (possibly none); when it does not, null.

import { classFromName, parseGoUint, rcodeFromText, RuleError, typeFromMnemonic } from './codes.ts';
import { Edns0LocalRule, Edns0NsidRule, Edns0SubnetRule, Edns0VariableRule, isVariable, type Edns0Action } from './edns0.ts';
import {
  NameRewrite,
  RcodeRewrite,
  TtlRewrite,
  ValueRewrite,
  regexRewriter,
  remapRewriter,
  substitute,
  suffixRewriter,
  type ResponseRule,
} from './response.ts';
import type { RewriteState } from './state.ts';

export type Mode = 'stop' | 'continue';

export interface Rule {
  readonly mode: Mode;
  apply(state: RewriteState): readonly ResponseRule[] | null;
}

const none: readonly ResponseRule[] = Object.freeze([]);

// --- name matching, shared by name, ttl and rcode rules ---------------------

type MatchType = 'exact' | 'prefix' | 'suffix' | 'substring' | 'regex';
const matchTypes: ReadonlySet<string> = new Set(['exact', 'prefix', 'suffix', 'substring', 'regex']);

/** plugin.Name(s).Normalize(): lowercased and fully qualified. Prefixes and substrings get the dot too, as in CoreDNS. */
export function normalize(name: string): string {
  const lower = name.toLowerCase();
  return isFqdn(lower) ? lower : lower + '.';
}

function isFqdn(name: string): boolean {
  if (!name.endsWith('.')) return false;
  // A trailing dot escaped by an odd number of backslashes is part of the label.
  let backslashes = 0;
  for (let i = name.length - 2; i >= 0 && name[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/** Go's regexp (RE2) syntax as JavaScript reads it: named groups and a leading (?i). */
export function compileRegex(pattern: string): RegExp | null {
  let source = pattern.replaceAll('(?P<', '(?<');
  let flags = '';
  if (source.startsWith('(?i)')) {
    source = source.slice(4);
    flags = 'i';
  }
  try {
    return new RegExp(source, flags);
  } catch {
    return null;
  }
}

function groupCount(pattern: RegExp): number {
  return new RegExp(`${pattern.source}|`, pattern.flags).exec('')!.length - 1;
}

/** How many distinct {0}..{100} a replacement uses: CoreDNS compares this count, not the highest index. */
function groupReferences(replacement: string): number {
  let used = 0;
  for (let i = 0; i <= 100; i++) if (replacement.includes(`{${i}}`)) used++;
  return used;
}

/** CoreDNS's isValidRegexPattern: `from` compiles and `to` uses no more groups than it has. */
function validRegex(from: string, to: string): RegExp {
  const pattern = compileRegex(from);
  if (pattern === null) throw new RuleError(`invalid regex matching pattern: ${from}`);
  if (groupReferences(to) > groupCount(pattern)) {
    throw new RuleError(`the rewrite regex pattern (${to}) uses more subexpressions than its corresponding matching regex pattern (${from})`);
  }
  return pattern;
}

type NameTest = (name: string) => boolean;

function nameTest(type: string, operand: string): NameTest | null {
  switch (type) {
    case 'exact': return (name) => name === operand;
    case 'prefix': return (name) => name.startsWith(operand);
    case 'suffix': return (name) => name.endsWith(operand);
    case 'substring': return (name) => name.includes(operand);
    default: return null;
  }
}

// --- rules that only choose response rewrites (ttl, rcode) ------------------

class MatchRule implements Rule {
  readonly mode: Mode;
  private readonly test: NameTest;
  private readonly response: readonly ResponseRule[];
  constructor(mode: Mode, test: NameTest, response: ResponseRule) {
    this.mode = mode;
    this.test = test;
    this.response = [response];
  }
  apply(state: RewriteState): readonly ResponseRule[] | null {
    return this.test(state.qname) ? this.response : null;
  }
}

/** exact|prefix|suffix|substring|regex NAME for ttl and rcode rules; `what` names the rule in messages. */
function matchingTest(type: string, operand: string, what: string): NameTest {
  const lower = type.toLowerCase();
  if (lower === 'regex') {
    const pattern = compileRegex(operand);
    if (pattern === null) throw new RuleError(`invalid regex pattern in a ${what} rule: ${operand}`);
    return (name) => pattern.test(name);
  }
  const test = nameTest(lower, normalize(operand));
  if (test === null) throw new RuleError(`${what} rule supports only exact, prefix, suffix, substring, and regex name matching`);
  return test;
}

const MAX_TTL = 2147483647;

/** SECONDS, MIN-MAX, MIN- or -MAX, as 1.11 accepts them (32-bit unsigned). */
function parseTtl(text: string): [number, number] | null {
  const uint32 = (part: string): number | null => (/^\d+$/.test(part) && Number(part) <= 0xffffffff ? Number(part) : null);
  const parts = text.split('-');
  if (parts.length === 1) {
    const ttl = uint32(parts[0]!);
    return ttl === null ? null : [ttl, ttl];
  }
  if (parts.length !== 2) return null;
  const [low, high] = parts as [string, string];
  if (low === '' && high === '') return null;
  const min = low === '' ? 0 : uint32(low);
  const max = high === '' ? MAX_TTL : uint32(high);
  if (min === null || max === null || min > max) return null;
  return [min, max];
}

function newTtlRule(mode: Mode, args: string[]): Rule {
  if (args.length < 2) throw new RuleError(`too few (${args.length}) arguments for a ttl rule`);
  const value = args.length === 2 ? args[1]! : args.length === 3 ? args[2]! : '';
  const range = parseTtl(value);
  if (range === null) throw new RuleError(`invalid TTL '${value}' for a ttl rule`);
  const response = new TtlRewrite(range[0], range[1]);
  if (args.length === 3) return new MatchRule(mode, matchingTest(args[0]!, args[1]!, 'ttl'), response);
  const name = normalize(args[0]!);
  return new MatchRule(mode, (qname) => qname === name, response);
}

function newRcodeRule(mode: Mode, args: string[]): Rule {
  if (args.length < 3) throw new RuleError(`too few (${args.length}) arguments for a rcode rule`);
  const [fromText, toText] = args.length === 3 ? [args[1]!, args[2]!] : args.length === 4 ? [args[2]!, args[3]!] : ['', ''];
  const from = rcodeFromText(fromText);
  if (from === null) throw new RuleError(`invalid matching RCODE '${fromText}' for a rcode rule`);
  const to = rcodeFromText(toText);
  if (to === null) throw new RuleError(`invalid replacement RCODE '${toText}' for a rcode rule`);
  const response = new RcodeRewrite(from, to);
  if (args.length === 4) return new MatchRule(mode, matchingTest(args[0]!, args[1]!, 'rcode'), response);
  const name = normalize(args[0]!);
  return new MatchRule(mode, (qname) => qname === name, response);
}

// --- question rewrites: type, class ------------------------------------------

/** `type FROM TO` and `class FROM TO`: the question's type or class, when it is FROM. */
class QuestionFieldRule implements Rule {
  readonly mode: Mode;
  private readonly field: 'qtype' | 'qclass';
  private readonly from: number;
  private readonly to: number;
  constructor(mode: Mode, field: 'qtype' | 'qclass', from: number, to: number) {
    this.mode = mode;
    this.field = field;
    this.from = from;
    this.to = to;
  }
  apply(state: RewriteState): readonly ResponseRule[] | null {
    if (state[this.field] !== this.from) return null;
    if (this.field === 'qtype') state.setType(this.to);
    else state.setClass(this.to);
    return none;
  }
}

// --- name rules ---------------------------------------------------------------

/**
 * A name rule: `rewrite(name)` gives the new name or null when it does not
 * match. With `auto`, the reply's names (and values) are mapped back from the
 * new name to the one this rule was given; `fixed` are the rule's own
 * response rules (answer name/value, or suffix's reverse mapping).
 */
class NameRule implements Rule {
  readonly mode: Mode;
  private readonly rewrite: (name: string) => string | null;
  private readonly auto: boolean;
  private readonly fixed: readonly ResponseRule[];
  constructor(mode: Mode, rewrite: (name: string) => string | null, auto: boolean, fixed: readonly ResponseRule[]) {
    this.mode = mode;
    this.rewrite = rewrite;
    this.auto = auto;
    this.fixed = fixed;
  }

  apply(state: RewriteState): readonly ResponseRule[] | null {
    const before = state.qname;
    const after = this.rewrite(before);
    if (after === null) return null;
    state.setName(after);
    if (!this.auto) return this.fixed;
    const back = remapRewriter(after, before);
    return [new NameRewrite(back), new ValueRewrite(back), ...this.fixed];
  }
}

/** The `answer auto|name|value ...` options after a name rule (CoreDNS's parseAnswerRules). */
function parseAnswerRules(matchType: string, args: string[]): { auto: boolean; rules: ResponseRule[] } {
  if (args.length < 2) throw new RuleError(`invalid arguments for ${matchType} rule`);
  let auto = false;
  let nameRules = 0;
  let last = '';
  const rules: ResponseRule[] = [];
  let i = 0;
  while (i < args.length) {
    if (last === '' && args[i] !== 'answer') {
      throw new RuleError(`exceeded the number of arguments for a non-answer rule argument for ${matchType} rule`);
    }
    if (args[i] === 'answer') i++;
    if (i === args.length) throw new RuleError(`type missing for answer rule for ${matchType} rule`);
    last = args[i++]!;
    if (last === 'auto') {
      auto = true;
      continue;
    }
    if (last !== 'name' && last !== 'value') throw new RuleError(`invalid type ${JSON.stringify(last)} for answer rule for ${matchType} rule`);
    if (args.length - i < 2) throw new RuleError(`${last} answer rule for ${matchType} rule: 2 arguments required`);
    const [from, to] = [args[i]!, args[i + 1]!];
    let pattern: RegExp;
    try {
      pattern = validRegex(from, to);
    } catch (error) {
      throw new RuleError(`${last} answer rule for ${matchType} rule: ${(error as Error).message}`);
    }
    const rewriter = regexRewriter(pattern, normalize(to));
    rules.push(last === 'name' ? new NameRewrite(rewriter) : new ValueRewrite(rewriter));
    if (last === 'name') nameRules++;
    i += 2;
  }
  if (auto && nameRules > 0) throw new RuleError('auto name answer rule cannot be combined with explicit name anwer rules');
  return { auto, rules };
}

function newNameRule(mode: Mode, args: string[]): Rule {
  if (args.length < 2) throw new RuleError('too few arguments for a name rule');
  let matchType: string;
  let from: string;
  let to: string;
  if (args.length === 2) {
    matchType = 'exact';
    [from, to] = [normalize(args[0]!), normalize(args[1]!)];
  } else {
    matchType = args[0]!.toLowerCase();
    [from, to] = matchType === 'regex' ? [args[1]!, args[2]!] : [normalize(args[1]!), normalize(args[2]!)];
  }
  const { auto, rules: answers } = args.length > 3 ? parseAnswerRules(matchType, args.slice(3)) : { auto: false, rules: [] };

  switch (matchType as MatchType) {
    case 'exact': {
      // CoreDNS compiles the target as a pattern here; only its errors matter.
      validRegex(to, from);
      return new NameRule(mode, (name) => (name === from ? to : null), true, answers);
    }
    case 'prefix':
      return new NameRule(mode, (name) => (name.startsWith(from) ? to + name.slice(from.length) : null), auto, answers);
    case 'suffix': {
      // The reverse of a suffix rewrite is the suffix rewrite the other way round, fixed at setup.
      const back = suffixRewriter(to, from);
      const fixed = auto ? [new NameRewrite(back), new ValueRewrite(back), ...answers] : answers;
      return new NameRule(mode, (name) => (name.endsWith(from) ? name.slice(0, name.length - from.length) + to : null), false, fixed);
    }
    case 'substring':
      return new NameRule(mode, (name) => (name.includes(from) ? name.replaceAll(from, to) : null), auto, answers);
    case 'regex': {
      const pattern = validRegex(from, to);
      const replacement = normalize(to);
      return new NameRule(mode, (name) => {
        const groups = pattern.exec(name);
        return groups === null ? null : substitute(replacement, groups);
      }, auto, answers);
    }
    default:
      throw new RuleError(`name rule supports only exact, prefix, suffix, substring, and regex name matching, received: ${matchType}`);
  }
}

// --- edns0 ---------------------------------------------------------------------

function newEdns0Rule(mode: Mode, args: string[]): Rule {
  if (args.length < 2) throw new RuleError('too few arguments for an EDNS0 rule');
  const type = args[0]!.toLowerCase();
  const action = args[1]!.toLowerCase();
  if (action !== 'set' && action !== 'replace' && action !== 'append') throw new RuleError(`invalid action: ${JSON.stringify(action)}`);
  switch (type) {
    case 'local': {
      if (args.length !== 4) throw new RuleError('EDNS0 local rules require exactly three args');
      const code = parseGoUint(args[2]!, 16);
      const data = args[3]!;
      if (data.startsWith('{') && data.endsWith('}')) {
        if (!isVariable(data)) throw new RuleError(`unsupported variable name ${JSON.stringify(data)}`);
        return new Edns0VariableRule(mode, action as Edns0Action, code, data);
      }
      return new Edns0LocalRule(mode, action as Edns0Action, code, localData(data));
    }
    case 'nsid':
      if (args.length !== 2) throw new RuleError('EDNS0 NSID rules do not accept args');
      return new Edns0NsidRule(mode, action as Edns0Action);
    case 'subnet': {
      if (args.length !== 4) throw new RuleError('EDNS0 subnet rules require exactly three args');
      const v4 = parseGoUint(args[2]!, 16);
      if (v4 > 32) throw new RuleError(`invalid IPv4 bit mask length ${v4}`);
      const v6 = parseGoUint(args[3]!, 16);
      if (v6 > 128) throw new RuleError(`invalid IPv6 bit mask length ${v6}`);
      return new Edns0SubnetRule(mode, action as Edns0Action, v4, v6);
    }
    default:
      throw new RuleError(`invalid rule type ${JSON.stringify(type)}`);
  }
}

/** DATA of a local option: hex after `0x`, else the text's bytes. Go's hex decoder's messages. */
function localData(text: string): Buffer {
  if (!text.startsWith('0x')) return Buffer.from(text, 'utf8');
  const hex = text.slice(2);
  const bad = /[^0-9a-fA-F]/.exec(hex);
  if (bad !== null) {
    const char = bad[0];
    const code = char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    throw new RuleError(`encoding/hex: invalid byte: U+${code} '${char}'`);
  }
  if (hex.length % 2 !== 0) throw new RuleError('encoding/hex: odd length hex string');
  return Buffer.from(hex, 'hex');
}

// --- a whole line ----------------------------------------------------------

/** One rewrite rule from its words, as CoreDNS's newRule reads them. */
export function newRule(args: string[]): Rule {
  if (args.length === 0) throw new RuleError('no rule type specified for rewrite');
  const first = args[0]!.toLowerCase();
  let mode: Mode = 'stop';
  let start = 1;
  if (first === 'continue' || first === 'stop') {
    if (args.length < 2) throw new RuleError(`${first} rule must begin with a rule type`);
    mode = first;
    start = 2;
  }
  const ruleType = args[start - 1]!.toLowerCase();
  const rest = args.slice(start);
  switch (ruleType) {
    case 'answer':
      throw new RuleError('response rewrites must begin with a name rule');
    case 'name':
      return newNameRule(mode, rest);
    case 'class':
    case 'type': {
      if (rest.length !== 2) throw new RuleError(`${ruleType} rules must have exactly two arguments`);
      const lookup = ruleType === 'type' ? typeFromMnemonic : classFromName;
      const [from, to] = rest.map((word) => {
        const code = lookup(word);
        if (code === undefined) throw new RuleError(`invalid ${ruleType} ${JSON.stringify(word.toUpperCase())}`);
        return code;
      }) as [number, number];
      return new QuestionFieldRule(mode, ruleType === 'type' ? 'qtype' : 'qclass', from, to);
    }
    case 'edns0':
      return newEdns0Rule(mode, rest);
    case 'ttl':
      return newTtlRule(mode, rest);
    case 'rcode':
      return newRcodeRule(mode, rest);
    case 'cname':
      if (rest.length !== 2 && rest.length !== 3) throw new RuleError(`too few (${rest.length}) arguments for a cname rule`);
      if (rest.length === 3 && !matchTypes.has(rest[0]!.toLowerCase())) throw new RuleError(`unknown cname rewrite type: ${rest[0]!.toLowerCase()}`);
      throw new RuleError('cname rules are not supported by clusterdns');
    default:
      throw new RuleError(`invalid rule type ${JSON.stringify(args[0])}`);
  }
}
