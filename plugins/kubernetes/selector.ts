// Kubernetes label selectors as the `labels` and `namespace_labels` options
// take them (KP-15, KP-16): the set-based string syntax of
// k8s.io/apimachinery labels.Parse, restricted as metav1.ParseToLabelSelector
// restricts it (no `!=`, `>` or `<`), since that is what CoreDNS calls.
//
// The API source passes the normalised string to the API server; the
// manifests source can evaluate it locally with `matches`.

export type SelectorOperator = 'in' | 'notin' | 'exists' | '!';

export interface SelectorRequirement {
  key: string;
  operator: SelectorOperator;
  /** For `in`/`notin` (an `=` is `in` with one value); empty otherwise. */
  values: string[];
}

export interface LabelSelector {
  requirements: SelectorRequirement[];
  /** Canonical text, as sent to the API server. */
  text: string;
}

export class SelectorError extends Error {}

const NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkKey(key: string): void {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
      throw new SelectorError(`invalid label key "${key}": the prefix must be a DNS subdomain of at most 253 characters`);
    }
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    throw new SelectorError(`invalid label key "${key}": a name of at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit`);
  }
}

function checkValue(value: string): void {
  if (value === '') return;
  if (value.length > 63 || !NAME.test(value)) {
    throw new SelectorError(`invalid label value "${value}": at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit`);
  }
}

type Lexeme = { kind: 'word' | 'op' | 'open' | 'close' | 'comma' | 'not'; text: string };

function lex(input: string): Lexeme[] {
  const out: Lexeme[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(') {
      out.push({ kind: 'open', text: c });
      i++;
    } else if (c === ')') {
      out.push({ kind: 'close', text: c });
      i++;
    } else if (c === ',') {
      out.push({ kind: 'comma', text: c });
      i++;
    } else if (c === '!' && input[i + 1] === '=') {
      out.push({ kind: 'op', text: '!=' });
      i += 2;
    } else if (c === '!') {
      out.push({ kind: 'not', text: c });
      i++;
    } else if (c === '=' && input[i + 1] === '=') {
      out.push({ kind: 'op', text: '==' });
      i += 2;
    } else if (c === '=' || c === '<' || c === '>') {
      out.push({ kind: 'op', text: c });
      i++;
    } else {
      let j = i;
      while (j < input.length && !/[\s(),!=<>]/.test(input[j]!)) j++;
      out.push({ kind: 'word', text: input.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** Parses a selector; throws SelectorError saying what is wrong. */
export function parseLabelSelector(input: string): LabelSelector {
  const tokens = lex(input);
  const requirements: SelectorRequirement[] = [];
  let at = 0;
  const peek = (): Lexeme | undefined => tokens[at];
  const take = (): Lexeme | undefined => tokens[at++];
  const describe = (token: Lexeme | undefined): string => (token ? `'${token.text}'` : 'the end');

  while (at < tokens.length) {
    let token = take()!;
    if (token.kind === 'not') {
      const key = take();
      if (!key || key.kind !== 'word') throw new SelectorError(`expected a label key after '!', found ${describe(key)}`);
      checkKey(key.text);
      requirements.push({ key: key.text, operator: '!', values: [] });
    } else if (token.kind === 'word') {
      const key = token.text;
      checkKey(key);
      const next = peek();
      if (!next || next.kind === 'comma') {
        requirements.push({ key, operator: 'exists', values: [] });
      } else if (next.kind === 'op') {
        take();
        if (next.text === '!=' || next.text === '<' || next.text === '>') {
          throw new SelectorError(`"${next.text}" is not a valid label selector operator here (use =, ==, in, notin, KEY or !KEY)`);
        }
        const value = peek();
        let text = '';
        if (value && value.kind === 'word') {
          take();
          text = value.text;
        } else if (value && value.kind !== 'comma') {
          throw new SelectorError(`expected a value after '${key}${next.text}', found ${describe(value)}`);
        }
        checkValue(text);
        requirements.push({ key, operator: 'in', values: [text] });
      } else if (next.kind === 'word' && (next.text === 'in' || next.text === 'notin')) {
        take();
        const open = take();
        if (!open || open.kind !== 'open') throw new SelectorError(`expected '(' after '${key} ${next.text}', found ${describe(open)}`);
        const values: string[] = [];
        for (;;) {
          const value = take();
          if (!value) throw new SelectorError(`expected ')' to close the values of '${key} ${next.text}'`);
          if (value.kind === 'close' && values.length === 0) break;
          if (value.kind === 'word') {
            checkValue(value.text);
            values.push(value.text);
          } else if (value.kind === 'comma' || value.kind === 'close') {
            // An empty value: `in (a,,b)` or `in (a,)`.
            checkValue('');
            values.push('');
            if (value.kind === 'close') break;
            continue;
          } else {
            throw new SelectorError(`unexpected ${describe(value)} in the values of '${key} ${next.text}'`);
          }
          const separator = take();
          if (!separator) throw new SelectorError(`expected ')' to close the values of '${key} ${next.text}'`);
          if (separator.kind === 'close') break;
          if (separator.kind !== 'comma') throw new SelectorError(`expected ',' or ')' in the values of '${key} ${next.text}', found ${describe(separator)}`);
        }
        if (values.length === 0) throw new SelectorError(`'${key} ${next.text}' needs at least one value`);
        requirements.push({ key, operator: next.text, values });
      } else {
        throw new SelectorError(`expected =, ==, in, notin or ',' after '${key}', found ${describe(next)}`);
      }
    } else {
      throw new SelectorError(`expected a label key, found ${describe(token)}`);
    }
    token = take() as Lexeme;
    if (token !== undefined && token.kind !== 'comma') throw new SelectorError(`expected ',' between requirements, found ${describe(token)}`);
    if (token !== undefined && at >= tokens.length) throw new SelectorError('expected a requirement after the last \',\'');
  }
  return { requirements, text: requirements.map(requirementText).join(',') };
}

function requirementText(requirement: SelectorRequirement): string {
  switch (requirement.operator) {
    case '!':
      return `!${requirement.key}`;
    case 'exists':
      return requirement.key;
    case 'in':
      return requirement.values.length === 1 ? `${requirement.key}=${requirement.values[0]}` : `${requirement.key} in (${requirement.values.join(',')})`;
    case 'notin':
      return `${requirement.key} notin (${requirement.values.join(',')})`;
  }
}

/** True when `labels` satisfy every requirement (an empty selector matches everything). */
export function matchesSelector(selector: LabelSelector, labels: Readonly<Record<string, string>> | undefined): boolean {
  for (const { key, operator, values } of selector.requirements) {
    const value = labels ? (Object.hasOwn(labels, key) ? labels[key] : undefined) : undefined;
    switch (operator) {
      case '!':
        if (value !== undefined) return false;
        break;
      case 'exists':
        if (value === undefined) return false;
        break;
      case 'in':
        if (value === undefined || !values.includes(value)) return false;
        break;
      case 'notin':
        if (value !== undefined && values.includes(value)) return false;
        break;
    }
  }
  return true;
}
