// The template directive, read as CoreDNS 1.11 reads it, with its setup
// errors (file:line):
//
//   template CLASS TYPE [ZONE...] {
//       match REGEX...
//       answer RR...
//       additional RR...
//       authority RR...
//       rcode CODE
//       ederror CODE [REASON]
//       fallthrough [ZONE...]
//       upstream [ADDRESS...]
//   }

import { setupError, wrongArgCount } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import type { BlockContext } from '../../src/plugin.ts';
import { zoneArgs } from '../cache/config.ts';
import { GoTemplate, TemplateParseError, type GoFunction } from './gotemplate.ts';
import { CLASS_BY_NAME, RCODE_BY_NAME, TYPE_BY_EXACT_NAME } from './names.ts';
import { compileGoRegexp, RegexpSyntaxError, type GoRegexp } from './regexp.ts';
import { parseUint } from './strconv.ts';

export type Section = 'answer' | 'additional' | 'authority';

export interface RecordTemplate {
  section: Section;
  template: GoTemplate;
}

export interface TemplateRule {
  qclass: number;
  qtype: number;
  /** Canonical zones the rule answers for. */
  zones: string[];
  /** Tried in order; the first that matches wins. Null: no `match`, every name matches (CoreDNS's `.*`). */
  regexes: GoRegexp[] | null;
  answer: RecordTemplate[];
  additional: RecordTemplate[];
  authority: RecordTemplate[];
  rcode: number;
  /** Zones whose unmatched names go on to the next rule; null: none (SERVFAIL). */
  fallthrough: string[] | null;
  /** `ederror`: parsed, not sent (see the README). */
  extendedError: { code: number; reason: string } | null;
}

/** The functions CoreDNS adds to Go's: parseInt is strconv.ParseUint. */
export const TEMPLATE_FUNCTIONS: ReadonlyMap<string, GoFunction> = new Map<string, GoFunction>([['parseInt', parseUint]]);

const CLASS_ANY = 255;

function compileTemplates(option: Directive, section: Section): RecordTemplate[] {
  if (option.args.length === 0) throw wrongArgCount(option.name);
  return option.args.map((arg) => {
    try {
      return { section, template: new GoTemplate(section, arg.text, TEMPLATE_FUNCTIONS) };
    } catch (error) {
      if (!(error instanceof TemplateParseError)) throw error;
      // CoreDNS names the last argument of the line, whichever failed.
      throw setupError(arg, `could not compile template: ${option.args.at(-1)!.text}, ${error.message}`);
    }
  });
}

function expectOne(option: Directive): Token {
  const [value, extra] = option.args;
  if (value === undefined) throw wrongArgCount(option.name);
  // CoreDNS reads one argument; the next token is taken as the next option.
  if (extra !== undefined) throw wrongArgCount(extra);
  return value;
}

export function parseTemplateDirective(directive: Directive, block: BlockContext): TemplateRule {
  const [classToken, typeToken, ...zoneTokens] = directive.args;
  if (classToken === undefined) throw wrongArgCount(directive.name);
  const qclass = CLASS_BY_NAME.get(classToken.text);
  if (qclass === undefined) throw setupError(classToken, `invalid query class ${classToken.text}`);
  if (typeToken === undefined) throw wrongArgCount(classToken);
  const qtype = TYPE_BY_EXACT_NAME.get(typeToken.text);
  // "RR class" is CoreDNS's wording for a bad type.
  if (qtype === undefined) throw setupError(typeToken, `invalid RR class ${typeToken.text}`);
  const rule: TemplateRule = {
    qclass,
    qtype,
    zones: zoneTokens.length > 0 ? zoneArgs(zoneTokens) : [...block.zones],
    regexes: null,
    answer: [],
    additional: [],
    authority: [],
    rcode: 0,
    fallthrough: null,
    extendedError: null,
  };
  for (const option of directive.block ?? []) {
    if (option.block !== null) throw setupError(option.name, `Unexpected '{' after '${option.name.text}': template options take no block`);
    switch (option.name.text) {
      case 'match':
        if (option.args.length === 0) throw wrongArgCount(option.name);
        for (const arg of option.args) {
          try {
            (rule.regexes ??= []).push(compileGoRegexp(arg.text));
          } catch (error) {
            if (!(error instanceof RegexpSyntaxError)) throw error;
            throw setupError(arg, `could not parse regex: ${arg.text}, ${error.message}`);
          }
        }
        break;
      case 'answer':
      case 'additional':
      case 'authority':
        rule[option.name.text].push(...compileTemplates(option, option.name.text));
        break;
      case 'rcode': {
        const value = expectOne(option);
        const rcode = RCODE_BY_NAME.get(value.text);
        if (rcode === undefined) throw setupError(value, `unknown rcode ${value.text}`);
        rule.rcode = rcode;
        break;
      }
      case 'ederror': {
        const [code, reason, extra] = option.args;
        if (code === undefined || extra !== undefined) throw wrongArgCount(extra ?? option.name);
        try {
          rule.extendedError = { code: Number(parseUint(code.text, 10, 16)), reason: reason?.text ?? '' };
        } catch (error) {
          throw setupError(code, `error parsing extended DNS error code ${option.args.at(-1)!.text}, ${(error as Error).message}`);
        }
        break;
      }
      case 'fallthrough':
        rule.fallthrough = option.args.length > 0 ? zoneArgs(option.args) : ['.'];
        break;
      case 'upstream':
        // Accepted and ignored, as in CoreDNS 1.11: CNAME targets always go through the server itself.
        break;
      default:
        throw wrongArgCount(option.name);
    }
  }
  return rule;
}

/** Whether a rule takes queries of this class and type (ANY on either side matches). */
export function takes(rule: TemplateRule, qclass: number, qtype: number): boolean {
  if (rule.qclass !== CLASS_ANY && qclass !== CLASS_ANY && qclass !== rule.qclass) return false;
  return rule.qtype === 255 || qtype === 255 || qtype === rule.qtype;
}
