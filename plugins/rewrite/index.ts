// rewrite: changes the question (name, type, class) and EDNS0 options of a
// query before the rest of the chain sees it, and the reply on its way back
// (names, values, TTLs, RCODE), as CoreDNS 1.11's plugin/rewrite does.
//
//   rewrite [continue|stop] FIELD [TYPE] [FROM TO|TTL] [OPTIONS]
//   rewrite [continue|stop] {
//       name regex FROM TO
//       answer name FROM TO
//   }
//
// Rules run in Corefile order; each that applies adds its response rules,
// and one in `stop` mode (the default) ends the walk. The client always gets
// its own question back: the server answers with the question it received.

import { setupError } from '../../src/corefile/setup.ts';
import type { Directive } from '../../src/corefile/types.ts';
import { definePlugin, whenReplied, type Next, type Request } from '../../src/plugin.ts';
import { Rcode, typeName } from '../../src/wire/constants.ts';
import { emptyReply, type Reply } from '../../src/wire/message.ts';
import { isWireName } from '../../src/wire/names.ts';
import { RuleError } from './codes.ts';
import { rewriteReply, type ResponseRule } from './response.ts';
import { newRule, type Rule } from './rules.ts';
import { RewriteState } from './state.ts';

/**
 * The words of one rewrite directive. With fewer than two arguments the
 * block's lines are read as more words of the same rule (CoreDNS's
 * rewriteParse); a block after a complete rule leaves CoreDNS with an empty
 * rule.
 */
function ruleWords(directive: Directive): string[] {
  const words = directive.args.map((token) => token.text);
  if (directive.block === null) return words;
  if (words.length >= 2) return [];
  const flatten = (lines: Directive[]): void => {
    for (const line of lines) {
      words.push(line.name.text, ...line.args.map((token) => token.text));
      if (line.block !== null) {
        words.push('{');
        flatten(line.block);
        words.push('}');
      }
    }
  };
  flatten(directive.block);
  return words;
}

export function serveRewrite(rules: readonly Rule[], request: Request, next: Next): Reply | Promise<Reply> {
  const state = new RewriteState(request);
  let responseRules: ResponseRule[] | null = null;
  let stopped = false;
  for (const rule of rules) {
    const before = state.qname;
    const applied = rule.apply(state);
    if (applied === null) continue;
    if (state.qname !== before && !isWireName(state.qname)) {
      return emptyReply(Rcode.SERVFAIL, 0, new Error(`invalid name after rewrite: ${state.qname}`));
    }
    if (applied.length > 0) (responseRules ??= []).push(...applied);
    if (rule.mode === 'stop') {
      stopped = true;
      break;
    }
  }
  if (!state.changed && responseRules === null) return next(request);
  const query = state.query();
  const passed = query === request.query ? request : { ...request, query };
  if (responseRules === null) return next(passed);
  const rewrite = responseRules;
  return whenReplied(next(passed), (reply) => rewriteReply(reply, rewrite, stopped, query.edns !== null));
}

/** The Corefile line of each rule, for explain. */
const ruleLines = new WeakMap<readonly Rule[], number[]>();

/** What the rules do to this request's question, run on a state of their own (serving is not touched). */
function appliedRules(rules: readonly Rule[], lines: readonly number[], request: Request): unknown {
  const state = new RewriteState(request);
  const applied: Record<string, unknown>[] = [];
  for (const [index, rule] of rules.entries()) {
    const name = state.qname;
    const type = state.qtype;
    if (rule.apply(state) === null) continue;
    const change: Record<string, unknown> = { rule: index + 1, line: lines[index], mode: rule.mode };
    if (state.qname !== name) change['name'] = `${name} -> ${state.qname}`;
    if (state.qtype !== type) change['type'] = `${typeName(type)} -> ${typeName(state.qtype)}`;
    applied.push(change);
    if (rule.mode === 'stop') break;
  }
  return applied.length > 0 ? applied : 'no rule applies';
}

export default definePlugin({
  name: 'rewrite',
  parse(directives): Rule[] {
    const rules = directives.map((directive) => {
      try {
        return newRule(ruleWords(directive));
      } catch (error) {
        if (error instanceof RuleError) throw setupError(directive.name, `plugin/rewrite: ${error.message}`);
        throw error;
      }
    });
    ruleLines.set(rules, directives.map((directive) => directive.name.line));
    return rules;
  },
  create(rules) {
    const lines = ruleLines.get(rules) ?? [];
    return {
      serve: (request, next) => serveRewrite(rules, request, next),
      // explain (cold path): the rules that apply, in order, and what each does to the question.
      explain: { before: (request) => ({ rules: appliedRules(rules, lines, request) }) },
    };
  },
});
