// Go regular expressions (RE2 syntax, as CoreDNS's `match` takes them) run
// as JavaScript RegExps.
//
// Hand-written: the RE2 port on npm (re2js) matches 5 to 10 times slower than
// a native RegExp, and this runs for every query a template's zone and type
// take. The translation rewrites each token into an exact JavaScript
// equivalent (`.`, `^`, `$`, `\s` and POSIX classes spelled out, so JS's
// wider line terminators and whitespace never apply), rejects what Go
// rejects with Go's messages (lookaround, backreferences, nested repetition,
// counts over 1000), and keeps group names on the side: Go allows names JS
// does not (`(?P<1st>...)`), so every group is a plain numbered one.

export class RegexpSyntaxError extends Error {}

export interface GoRegexp {
  /** The pattern as written. */
  readonly source: string;
  readonly native: RegExp;
  /** Group names by group number, '' for unnamed groups; [0] is the whole match (Go's SubexpNames). */
  readonly names: readonly string[];
}

const MAX_REPEAT = 1000;

function fail(code: string, expr: string): never {
  throw new RegexpSyntaxError(`error parsing regexp: ${code}: \`${expr}\``);
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z', alpha: 'A-Za-z', ascii: '\\x00-\\x7F', blank: '\\t ', cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9', graph: '!-~', lower: 'a-z', print: ' -~', punct: '!-\\/:-@\\[-`{-~', space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z', word: '0-9A-Za-z_', xdigit: '0-9A-Fa-f',
};

/** Perl classes, as members of a character class (Go's are ASCII-only). */
const PERL_CLASSES: Record<string, { members: string; negated: boolean }> = {
  d: { members: '0-9', negated: false }, D: { members: '0-9', negated: true },
  s: { members: '\\t\\n\\f\\r ', negated: false }, S: { members: '\\t\\n\\f\\r ', negated: true },
  w: { members: '0-9A-Za-z_', negated: false }, W: { members: '0-9A-Za-z_', negated: true },
};

const GENERAL_CATEGORIES = new Set(['C', 'Cc', 'Cf', 'Co', 'Cs', 'L', 'Ll', 'Lm', 'Lo', 'Lt', 'Lu', 'M', 'Mc', 'Me', 'Mn',
  'N', 'Nd', 'Nl', 'No', 'P', 'Pc', 'Pd', 'Pe', 'Pf', 'Pi', 'Po', 'Ps', 'S', 'Sc', 'Sk', 'Sm', 'So', 'Z', 'Zl', 'Zp', 'Zs']);

/** One code point as JS `u`-mode source, safe inside and outside classes. */
function literal(codePoint: number): string {
  const isWord = (codePoint >= 0x30 && codePoint <= 0x39) || (codePoint >= 0x41 && codePoint <= 0x5a) || (codePoint >= 0x61 && codePoint <= 0x7a) || codePoint === 0x5f;
  return isWord ? String.fromCharCode(codePoint) : `\\u{${codePoint.toString(16)}}`;
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  U: boolean;
}

interface Group {
  /** Flags in force before the group opened, restored when it closes. */
  outer: Flags;
  /** `(?i:` modifier groups opened by a bare `(?i)` inside this group, closed with it. */
  modifiers: number;
  capture: boolean;
  /** Where the group starts in the output. */
  start: number;
}

class Translator {
  private readonly expr: string;
  private at = 0;
  private out = '';
  private flags: Flags = { i: false, m: false, s: false, U: false };
  private readonly groups: Group[] = [];
  private readonly top: Group = { outer: this.flags, modifiers: 0, capture: false, start: 0 };
  readonly names: string[] = [''];
  /** What the output ends with: what a quantifier would apply to. */
  private operand: 'none' | 'atom' | 'assertion' | 'repeat' = 'none';
  /** Where the last atom or assertion starts in `out`. */
  private operandStart = 0;

  constructor(expr: string) {
    this.expr = expr;
  }

  translate(): string {
    const expr = this.expr;
    while (this.at < expr.length) {
      const char = expr[this.at]!;
      switch (char) {
        case '\\':
          this.escape();
          break;
        case '(':
          this.open();
          break;
        case ')':
          this.close();
          break;
        case '[':
          this.atom(this.characterClass());
          break;
        case '|':
          this.alternate();
          break;
        case '*':
        case '+':
        case '?':
          this.at++;
          this.repeat(char, char);
          break;
        case '{':
          if (!this.braces()) this.atomAt(literal(0x7b), 1);
          break;
        case '.':
          this.atomAt(this.flags.s ? '[\\s\\S]' : '[^\\n]', 1);
          break;
        case '^':
          // Without (?m), JS's ^ and $ are Go's: the ends of the text (V8 anchors on a bare ^).
          this.assertion(this.flags.m ? '(?<![^\\n])' : '^', 1);
          break;
        case '$':
          this.assertion(this.flags.m ? '(?![^\\n])' : '$', 1);
          break;
        default: {
          const codePoint = expr.codePointAt(this.at)!;
          this.atomAt(literal(codePoint), codePoint > 0xffff ? 2 : 1);
        }
      }
    }
    if (this.groups.length > 0) fail('missing closing )', expr);
    this.closeModifiers(this.top);
    return this.out;
  }

  private atom(text: string): void {
    this.operandStart = this.out.length;
    this.out += text;
    this.operand = 'atom';
  }

  private atomAt(text: string, length: number): void {
    this.at += length;
    this.atom(text);
  }

  private assertion(text: string, length: number): void {
    this.at += length;
    this.atom(text);
    this.operand = 'assertion';
  }

  private repeat(operator: string, token: string): void {
    if (this.operand === 'none') fail('missing argument to repetition operator', token);
    if (this.operand === 'repeat') fail('invalid nested repetition operator', this.expr.slice(this.at - token.length - 1, this.at));
    if (this.operand === 'assertion') {
      // Go lets an assertion be repeated (`^*`); JS only a group.
      this.out = `${this.out.slice(0, this.operandStart)}(?:${this.out.slice(this.operandStart)})`;
    }
    let lazy = false;
    if (this.expr[this.at] === '?') {
      lazy = true;
      this.at++;
    }
    // (?U) swaps greedy and lazy.
    if (this.flags.U) lazy = !lazy;
    this.out += operator + (lazy ? '?' : '');
    this.operand = 'repeat';
  }

  /** `{n}`, `{n,}`, `{n,m}`; false when the brace is not a repetition (then it is a literal, as in Go). */
  private braces(): boolean {
    const match = /^\{(\d+)(,(\d*))?\}/.exec(this.expr.slice(this.at));
    if (!match) return false;
    const min = Number(match[1]);
    const max = match[3] === undefined ? (match[2] ? -1 : min) : match[3] === '' ? -1 : Number(match[3]);
    if (min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && max < min)) fail('invalid repeat count', match[0]);
    this.at += match[0].length;
    this.repeat(`{${min}${match[2] ? ',' + (max >= 0 ? max : '') : ''}}`, match[0]);
    return true;
  }

  private open(): void {
    const expr = this.expr;
    const rest = expr.slice(this.at);
    const group: Group = { outer: this.flags, modifiers: 0, capture: true, start: this.out.length };
    if (rest.startsWith('(?P<') || rest.startsWith('(?<')) {
      const start = this.at + (rest.startsWith('(?P<') ? 4 : 3);
      const end = expr.indexOf('>', start);
      if (rest.startsWith('(?<') && (rest[3] === '=' || rest[3] === '!')) fail('invalid or unsupported Perl syntax', rest.slice(0, 4));
      const name = end < 0 ? '' : expr.slice(start, end);
      if (end < 0 || !/^[A-Za-z0-9_]+$/.test(name)) fail('invalid named capture', end < 0 ? rest : expr.slice(this.at, end + 1));
      if (this.names.includes(name)) fail('duplicate capture group name', name);
      this.names.push(name);
      this.at = end + 1;
      this.out += '(';
    } else if (rest.startsWith('(?')) {
      // Flags: (?flags) for the rest of the group, (?flags:re) for re; `:` alone is a plain group.
      const match = /^\(\?([imsU]*)(?:-([imsU]*))?([:)])/.exec(rest);
      // Go shows the text up to the first character it cannot take.
      if (!match || match[2] === '') fail('invalid or unsupported Perl syntax', /^\(\?[imsU-]*.?/.exec(rest)![0]);
      const flags = { ...this.flags };
      for (const flag of match[1]!) flags[flag as keyof Flags] = true;
      for (const flag of match[2] ?? '') flags[flag as keyof Flags] = false;
      this.at += match[0].length;
      const modifier = flags.i !== this.flags.i ? (flags.i ? '(?i:' : '(?-i:') : '(?:';
      if (match[3] === ')') {
        // A bare flag group changes the flags until the enclosing group ends.
        this.flags = flags;
        if (modifier !== '(?:') {
          this.out += modifier;
          this.current().modifiers++;
        }
        return;
      }
      group.capture = false;
      this.flags = flags;
      this.out += modifier;
    } else {
      this.at++;
      this.names.push('');
      this.out += '(';
    }
    this.groups.push(group);
    this.operand = 'none';
  }

  private current(): Group {
    return this.groups.at(-1) ?? this.top;
  }

  private closeModifiers(group: Group): void {
    this.out += ')'.repeat(group.modifiers);
    group.modifiers = 0;
  }

  private close(): void {
    const group = this.groups.pop();
    if (!group) fail('unexpected )', this.expr);
    this.closeModifiers(group);
    this.flags = group.outer;
    this.at++;
    this.out += ')';
    this.operandStart = group.start;
    this.operand = 'atom';
  }

  private alternate(): void {
    // A bare (?i) reaches across `|` in Go; JS modifier groups do not: close and reopen them.
    const group = this.current();
    const count = group.modifiers;
    this.closeModifiers(group);
    this.out += '|';
    if (count > 0) {
      this.out += this.flags.i ? '(?i:' : '(?-i:';
      group.modifiers = 1;
    }
    this.at++;
    this.operand = 'none';
  }

  /** An escape outside a class. */
  private escape(): void {
    const expr = this.expr;
    const next = expr[this.at + 1];
    if (next === undefined) fail('trailing backslash at end of expression', '');
    switch (next) {
      case 'A':
        return this.assertion('(?<![\\s\\S])', 2);
      case 'z':
        return this.assertion('(?![\\s\\S])', 2);
      case 'b':
      case 'B':
        return this.assertion('\\' + next, 2);
      case 'Q': {
        const end = expr.indexOf('\\E', this.at + 2);
        const text = expr.slice(this.at + 2, end < 0 ? expr.length : end);
        this.at = end < 0 ? expr.length : end + 2;
        if (text !== '') this.atom([...text].map((char) => literal(char.codePointAt(0)!)).join(''));
        return;
      }
      case 'E':
        // A \E without \Q is ignored by Go.
        this.at += 2;
        return;
    }
    const perl = PERL_CLASSES[next];
    if (perl) return this.atomAt(`[${perl.negated ? '^' : ''}${perl.members}]`, 2);
    this.atom(this.escapedMember(false));
  }

  /**
   * An escape that stands for characters: a literal, \pN / \p{Greek}, or
   * (in a class) a Perl class. Advances past it and returns JS for it.
   */
  private escapedMember(inClass: boolean): string {
    const expr = this.expr;
    const start = this.at;
    const next = expr[this.at + 1]!;
    this.at += 2;
    if (/[1-7]/.test(next) && !/[0-7]/.test(expr[this.at] ?? '')) fail('invalid escape sequence', `\\${next}`);
    if (/[0-7]/.test(next)) {
      // Octal, \0 or up to three digits.
      let digits = next;
      while (digits.length < 3 && /[0-7]/.test(expr[this.at] ?? '')) digits += expr[this.at++];
      return literal(parseInt(digits, 8));
    }
    switch (next) {
      case 'a': return literal(7);
      case 'f': return literal(12);
      case 't': return literal(9);
      case 'n': return literal(10);
      case 'r': return literal(13);
      case 'v': return literal(11);
      case 'x': {
        const braced = /^\{([0-9A-Fa-f]+)\}/.exec(expr.slice(this.at));
        if (braced) {
          const value = parseInt(braced[1]!, 16);
          if (value > 0x10ffff) fail('invalid escape sequence', expr.slice(start, this.at + braced[0].length));
          this.at += braced[0].length;
          return literal(value);
        }
        const pair = /^[0-9A-Fa-f]{2}/.exec(expr.slice(this.at));
        if (!pair) fail('invalid escape sequence', expr.slice(start, Math.min(expr.length, this.at + 2)));
        this.at += 2;
        return literal(parseInt(pair[0], 16));
      }
      case 'p':
      case 'P': {
        const braced = /^\{(\^?)([A-Za-z_]+)\}/.exec(expr.slice(this.at));
        const single = braced ? null : /^[A-Za-z]/.exec(expr.slice(this.at));
        if (!braced && !single) fail('invalid character class range', expr.slice(start, this.at + 1));
        const name = braced ? braced[2]! : single![0];
        const negated = (next === 'P') !== (braced?.[1] === '^');
        this.at += braced ? braced[0].length : 1;
        const property = name === 'Any' ? null : GENERAL_CATEGORIES.has(name) ? name : `Script=${name}`;
        try {
          if (property !== null) new RegExp(`\\p{${property}}`, 'u');
        } catch {
          fail('invalid character class range', expr.slice(start, this.at));
        }
        if (property === null) return negated ? '[^\\s\\S]' : '[\\s\\S]';
        return `\\${negated ? 'P' : 'p'}{${property}}`;
      }
    }
    if (inClass && PERL_CLASSES[next]) {
      const { members, negated } = PERL_CLASSES[next];
      // Negated Perl classes inside a class: JS `u` mode has no [^...] nesting; spell the complement.
      return negated ? complement(members) : members;
    }
    const codePoint = next.codePointAt(0)!;
    // Go: any punctuation may be escaped; a letter or digit that is not an escape is an error.
    if (codePoint < 0x80 && /[0-9A-Za-z]/.test(next)) fail('invalid escape sequence', `\\${next}`);
    if (codePoint < 0x80) return literal(codePoint);
    fail('invalid escape sequence', `\\${next}`);
  }

  /** `[...]` as Go reads it: a leading `]` is a literal, POSIX `[:name:]`, ranges, escapes. */
  private characterClass(): string {
    const expr = this.expr;
    const start = this.at;
    this.at++;
    let negated = false;
    if (expr[this.at] === '^') {
      negated = true;
      this.at++;
    }
    let members = '';
    let first = true;
    let previous: number | null = null;
    for (;;) {
      if (this.at >= expr.length) fail('missing closing ]', expr.slice(start));
      const char = expr[this.at]!;
      if (char === ']' && !first) break;
      first = false;
      if (char === '[' && expr[this.at + 1] === ':') {
        const match = /^\[:(\^?)([a-z]+):\]/.exec(expr.slice(this.at));
        if (match && POSIX_CLASSES[match[2]!] !== undefined) {
          const set = POSIX_CLASSES[match[2]!]!;
          members += match[1] ? complement(set) : set;
          this.at += match[0].length;
          previous = null;
          continue;
        }
        if (match) fail('invalid character class range', match[0]);
      }
      if (char === '-' && previous !== null && expr[this.at + 1] !== ']' && this.at + 1 < expr.length) {
        // A range: previous-next.
        this.at++;
        const high = this.classLiteral();
        if (high === null) fail('invalid character class range', expr.slice(start, this.at));
        if (high < previous) fail('invalid character class range', `${String.fromCodePoint(previous)}-${String.fromCodePoint(high)}`);
        members += '-' + literal(high);
        previous = null;
        continue;
      }
      if (char === '\\') {
        const next = expr[this.at + 1];
        if (next === undefined) fail('trailing backslash at end of expression', '');
        const memberStart = this.at;
        const member = this.escapedMember(true);
        const single = /^\\u\{([0-9a-f]+)\}$/.exec(member);
        previous = single ? parseInt(single[1]!, 16) : null;
        if (!single && expr[this.at] === '-' && expr[this.at + 1] !== ']') fail('invalid character class range', expr.slice(memberStart, this.at + 2));
        members += member;
        continue;
      }
      const codePoint = expr.codePointAt(this.at)!;
      this.at += codePoint > 0xffff ? 2 : 1;
      members += literal(codePoint);
      previous = codePoint;
    }
    this.at++;
    if (members === '') return negated ? '[\\s\\S]' : '[^\\s\\S]';
    // With (?i), JS applies the modifier to classes too.
    return `[${negated ? '^' : ''}${members}]`;
  }

  /** A single literal inside a class (the high end of a range), or null. */
  private classLiteral(): number | null {
    const expr = this.expr;
    if (expr[this.at] === '\\') {
      const member = this.escapedMember(true);
      const single = /^\\u\{([0-9a-f]+)\}$/.exec(member);
      return single ? parseInt(single[1]!, 16) : null;
    }
    const codePoint = expr.codePointAt(this.at)!;
    this.at += codePoint > 0xffff ? 2 : 1;
    return codePoint;
  }
}

/** The complement of a set of ASCII class members, as members (for negated POSIX and Perl classes inside a class). */
function complement(members: string): string {
  const set = new RegExp(`[${members}]`, 'u');
  let out = '';
  let runStart = -1;
  for (let code = 0; code <= 0x80; code++) {
    const inside = code < 0x80 && !set.test(String.fromCharCode(code));
    if (inside && runStart < 0) runStart = code;
    if (!inside && runStart >= 0) {
      out += literal(runStart) + (code - 1 > runStart ? '-' + literal(code - 1) : '');
      runStart = -1;
    }
  }
  return out + `${literal(0x80)}-${literal(0x10ffff)}`;
}

/** Compiles a Go regular expression; throws RegexpSyntaxError with Go's message for what Go rejects. */
export function compileGoRegexp(source: string): GoRegexp {
  const translator = new Translator(source);
  const pattern = translator.translate();
  return { source, native: new RegExp(pattern, 'u'), names: translator.names };
}

/**
 * Go's FindStringSubmatch: the leftmost match and its groups ('' for a group
 * that did not take part), or null.
 */
export function findSubmatch(regexp: GoRegexp, text: string): string[] | null {
  const match = regexp.native.exec(text);
  if (match === null) return null;
  const groups = new Array<string>(match.length);
  for (let i = 0; i < match.length; i++) groups[i] = match[i] ?? '';
  return groups;
}
