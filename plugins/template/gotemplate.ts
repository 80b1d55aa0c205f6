// Go's text/template, the part CoreDNS templates use: actions with fields
// (`.Name`, `.Group.a`, methods such as `.Meta "x"`), variables, pipelines,
// parenthesised calls, if/else if/else, with, range (break, continue),
// comments and `{{-`/`-}}` trimming, and Go's functions: and, or, not, len,
// index, slice, print, printf, println, eq, ne, lt, le, gt, ge, html, js,
// urlquery, plus the functions a caller adds (CoreDNS adds parseInt).
// Not supported: define, template, block and call; they are parse errors.
//
// Hand-written: the one npm package for Go templates (@ctrl/golang-template)
// has no pipelines, variables, comparisons, printf or custom functions, and
// adds functions Go does not have. Parse errors read as Go's
// ("template: answer:1: unclosed action") and String() prints a template the
// way Go's parse tree does, since CoreDNS labels its failure metrics with it.

import { goSprint, goSprintf, goSprintln } from './gofmt.ts';
import { GoMap, GoStruct, NO_VALUE, goTypeName, isTrue } from './govalues.ts';

export type GoFunction = (...args: unknown[]) => unknown;

export class TemplateParseError extends Error {}
export class TemplateExecError extends Error {}

// ---- lexer ---------------------------------------------------------------

type ItemKind =
  | 'text' | 'left' | 'right' | 'ident' | 'field' | 'dot' | 'variable' | 'string' | 'rawString' | 'char' | 'number'
  | 'bool' | 'nil' | 'keyword' | 'pipe' | 'leftParen' | 'rightParen' | 'declare' | 'assign' | 'comma' | 'eof';

interface Item {
  kind: ItemKind;
  text: string;
  pos: number;
  /** Whether blank space came before it inside the action (a field right after a term is a chain). */
  spaced: boolean;
}

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'break', 'continue', 'define', 'template', 'block']);
const SPACE = /[ \t\r\n]/;

function lex(name: string, source: string): Item[] {
  const items: Item[] = [];
  let at = 0;
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length;
  const error = (message: string, pos: number): never => {
    throw new TemplateParseError(`template: ${name}:${lineOf(pos)}: ${message}`);
  };
  let trimNext = false;
  while (at < source.length) {
    const open = source.indexOf('{{', at);
    let text = source.slice(at, open < 0 ? source.length : open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    trimNext = false;
    if (open < 0) {
      if (text !== '') items.push({ kind: 'text', text, pos: at, spaced: false });
      at = source.length;
      break;
    }
    let inside = open + 2;
    if (source[inside] === '-' && SPACE.test(source[inside + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '');
      inside += 2;
    }
    if (text !== '') items.push({ kind: 'text', text, pos: at, spaced: false });
    // Comments: {{/* ... */}}, possibly trimmed.
    const afterSpace = inside + (source.slice(inside).match(/^[ \t\r\n]*/)![0].length);
    if (source.startsWith('/*', afterSpace)) {
      const end = source.indexOf('*/', afterSpace + 2);
      if (end < 0) error('unclosed comment', open);
      const closing = /^( -)?\}\}/.exec(source.slice(end + 2));
      if (!closing) error('comment ends before closing delimiter', open);
      trimNext = closing![1] !== undefined;
      at = end + 2 + closing![0].length;
      continue;
    }
    items.push({ kind: 'left', text: '{{', pos: open, spaced: false });
    at = lexAction(source, inside, items, error);
    const right = items.at(-1)!;
    trimNext = right.text === '-}}';
  }
  items.push({ kind: 'eof', text: '', pos: source.length, spaced: false });
  return items;
}

function lexAction(source: string, start: number, items: Item[], error: (message: string, pos: number) => never): number {
  let at = start;
  let spaced = false;
  let parens = 0;
  const push = (kind: ItemKind, end: number) => {
    items.push({ kind, text: source.slice(at, end), pos: at, spaced });
    at = end;
    spaced = false;
  };
  for (;;) {
    if (at >= source.length) error('unclosed action', start);
    const char = source[at]!;
    if (source.startsWith(' -}}', at) || (spaced && source.startsWith('-}}', at))) {
      if (parens > 0) error('unclosed left paren', at);
      const skip = source[at] === ' ' ? 1 : 0;
      at += skip;
      push('right', at + 3);
      return at;
    }
    if (source.startsWith('}}', at)) {
      if (parens > 0) error('unclosed left paren', at);
      push('right', at + 2);
      return at;
    }
    if (SPACE.test(char)) {
      at++;
      spaced = true;
      continue;
    }
    const rest = source.slice(at);
    let match: RegExpExecArray | null;
    if (char === '|') push('pipe', at + 1);
    else if (char === '(') {
      parens++;
      push('leftParen', at + 1);
    } else if (char === ')') {
      if (parens === 0) error(`unexpected right paren`, at);
      parens--;
      push('rightParen', at + 1);
    } else if (rest.startsWith(':=')) push('declare', at + 2);
    else if (char === '=') push('assign', at + 1);
    else if (char === ',') push('comma', at + 1);
    else if (char === '"') {
      let end = at + 1;
      while (end < source.length && source[end] !== '"') {
        if (source[end] === '\\') end++;
        if (source[end] === '\n' || end >= source.length) error('unterminated quoted string', at);
        end++;
      }
      if (end >= source.length) error('unterminated quoted string', at);
      push('string', end + 1);
    } else if (char === '`') {
      const end = source.indexOf('`', at + 1);
      if (end < 0) error('unterminated raw quoted string', at);
      push('rawString', end + 1);
    } else if (char === "'") {
      match = /^'(\\.[^']*|[^'\\])'/.exec(rest);
      if (!match) error('unterminated character constant', at);
      push('char', at + match![0].length);
    } else if ((match = /^[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)/.exec(rest)) && /\d/.test(match[0])) {
      push('number', at + match[0].length);
    } else if ((match = /^\.[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) push('field', at + match[0].length);
    else if (char === '.') push('dot', at + 1);
    else if ((match = /^\$[A-Za-z0-9_]*/.exec(rest))) push('variable', at + match[0].length);
    else if ((match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      const word = match[0];
      push(KEYWORDS.has(word) ? 'keyword' : word === 'true' || word === 'false' ? 'bool' : word === 'nil' ? 'nil' : 'ident', at + word.length);
    } else error(`unrecognized character in action: ${JSON.stringify(char)}`, at);
  }
}

// ---- parse tree ------------------------------------------------------------

export type Arg =
  | { kind: 'field'; pos: number; path: string[] }
  | { kind: 'dot'; pos: number }
  | { kind: 'variable'; pos: number; name: string; path: string[] }
  | { kind: 'identifier'; pos: number; name: string }
  | { kind: 'string'; pos: number; quoted: string; value: string }
  | { kind: 'number'; pos: number; text: string; value: number }
  | { kind: 'bool'; pos: number; value: boolean }
  | { kind: 'nil'; pos: number }
  | { kind: 'pipe'; pos: number; pipe: Pipe }
  | { kind: 'chain'; pos: number; node: Arg; path: string[] };

interface Command {
  pos: number;
  args: Arg[];
}

interface Pipe {
  pos: number;
  decl: string[];
  isAssign: boolean;
  cmds: Command[];
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pos: number; pipe: Pipe }
  | { kind: 'if' | 'with' | 'range'; pos: number; pipe: Pipe; list: Node[]; elseList: Node[] | null }
  | { kind: 'break' | 'continue'; pos: number };

const BUILTINS = new Set(['and', 'or', 'not', 'len', 'index', 'slice', 'print', 'printf', 'println', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'html', 'js', 'urlquery', 'call']);

class Parser {
  private readonly items: Item[];
  private at = 0;
  private readonly name: string;
  private readonly source: string;
  private readonly functions: ReadonlySet<string>;
  /** Declared variables, innermost last; `$` is always there. */
  private readonly vars: string[] = ['$'];
  private rangeDepth = 0;

  constructor(name: string, source: string, functions: ReadonlySet<string>) {
    this.name = name;
    this.source = source;
    this.items = lex(name, source);
    this.functions = functions;
  }

  error(message: string, pos: number): never {
    const line = this.source.slice(0, pos).split('\n').length;
    throw new TemplateParseError(`template: ${this.name}:${line}: ${message}`);
  }

  private peek(): Item {
    return this.items[this.at]!;
  }

  private next(): Item {
    return this.items[this.at++]!;
  }

  private expect(kind: ItemKind, context: string): Item {
    const item = this.next();
    if (item.kind !== kind) this.unexpected(item, context);
    return item;
  }

  private unexpected(item: Item, context: string): never {
    if (item.kind === 'eof') this.error('unexpected EOF', item.pos);
    this.error(`unexpected ${describe(item)} in ${context}`, item.pos);
  }

  parse(): Node[] {
    const { list, end } = this.list();
    if (end !== 'eof') this.error(`unexpected {{${end}}}`, this.items[this.at - 1]!.pos);
    return list;
  }

  /** Nodes up to {{end}}, {{else}} or the end of the text; says which ended it. */
  private list(): { list: Node[]; end: 'end' | 'else' | 'eof'; elseItem?: Item } {
    const list: Node[] = [];
    for (;;) {
      const item = this.next();
      if (item.kind === 'eof') return { list, end: 'eof' };
      if (item.kind === 'text') {
        list.push({ kind: 'text', text: item.text });
        continue;
      }
      // A left delimiter.
      const first = this.peek();
      if (first.kind === 'keyword') {
        this.next();
        switch (first.text) {
          case 'end':
            this.expect('right', 'end');
            return { list, end: 'end' };
          case 'else':
            return { list, end: 'else', elseItem: first };
          case 'if':
          case 'with':
          case 'range':
            list.push(this.control(first.text, first.pos));
            continue;
          case 'break':
          case 'continue':
            if (this.rangeDepth === 0) this.error(`{{${first.text}}} outside {{range}}`, first.pos);
            this.expect('right', first.text);
            list.push({ kind: first.text, pos: first.pos });
            continue;
          default:
            this.error(`{{${first.text}}} is not supported by clusterdns`, first.pos);
        }
      }
      list.push({ kind: 'action', pos: first.pos, pipe: this.pipeline('command', 'right') });
    }
  }

  private control(kind: 'if' | 'with' | 'range', pos: number): Node {
    const mark = this.vars.length;
    const pipe = this.pipeline(kind, 'right');
    if (kind === 'range') this.rangeDepth++;
    const body = this.list();
    if (kind === 'range') this.rangeDepth--;
    let elseList: Node[] | null = null;
    if (body.end === 'eof') this.error('unexpected EOF', this.source.length);
    if (body.end === 'else') {
      const next = this.peek();
      if ((kind === 'if' || kind === 'with') && next.kind === 'keyword' && next.text === kind) {
        // {{else if x}} is {{else}}{{if x}}...{{end}}{{end}}, sharing the one {{end}}.
        this.next();
        elseList = [this.control(kind, next.pos)];
      } else {
        this.expect('right', 'else');
        const rest = this.list();
        if (rest.end !== 'end') this.error(rest.end === 'eof' ? 'unexpected EOF' : 'expected end; found {{else}}', rest.elseItem?.pos ?? this.source.length);
        elseList = rest.list;
      }
    }
    this.vars.length = mark;
    return { kind, pos, pipe, list: body.list, elseList };
  }

  private pipeline(context: string, end: 'right' | 'rightParen'): Pipe {
    const start = this.peek();
    const pipe: Pipe = { pos: start.pos, decl: [], isAssign: false, cmds: [] };
    // Declarations: $x := ..., $x = ..., and in range $i, $e := ...
    const first = this.peek();
    if (first.kind === 'variable') {
      const after = this.items[this.at + 1]!;
      if (after.kind === 'declare' || after.kind === 'assign') {
        this.at += 2;
        pipe.decl.push(first.text);
        pipe.isAssign = after.kind === 'assign';
      } else if (after.kind === 'comma' && context === 'range') {
        const second = this.items[this.at + 2]!;
        const operator = this.items[this.at + 3]!;
        if (second.kind !== 'variable' || (operator.kind !== 'declare' && operator.kind !== 'assign')) this.error('range can only initialize variables', first.pos);
        this.at += 4;
        pipe.decl.push(first.text, second.text);
        pipe.isAssign = operator.kind === 'assign';
      }
      if (pipe.isAssign) {
        for (const name of pipe.decl) if (!this.vars.includes(name)) this.error(`undefined variable "${name}"`, first.pos);
      }
    }
    for (;;) {
      const item = this.peek();
      if (item.kind === end) {
        this.next();
        if (pipe.cmds.length === 0) this.error(`missing value for ${context}`, item.pos);
        break;
      }
      pipe.cmds.push(this.command(end));
      const separator = this.peek();
      if (separator.kind === 'pipe') {
        this.next();
        if (this.peek().kind === end || this.peek().kind === 'pipe') this.error('missing command', separator.pos);
      } else if (separator.kind !== end) {
        this.unexpected(separator, 'operand');
      }
    }
    if (!pipe.isAssign) this.vars.push(...pipe.decl);
    for (const [index, command] of pipe.cmds.entries()) {
      const head = command.args[0]!;
      if (index > 0 && head.kind !== 'identifier' && head.kind !== 'field' && head.kind !== 'chain' && !(head.kind === 'variable' && head.path.length > 0)) {
        // Go: a non-function cannot take the previous command's value.
        if (head.kind !== 'pipe') this.error(`non executable command in pipeline stage ${index + 1}`, command.pos);
      }
    }
    return pipe;
  }

  private command(end: 'right' | 'rightParen'): Command {
    const command: Command = { pos: this.peek().pos, args: [] };
    for (;;) {
      const item = this.peek();
      if (item.kind === end || item.kind === 'pipe') break;
      if (command.args.length > 0 && !item.spaced && item.kind !== 'field') this.error(`missing space?`, item.pos);
      command.args.push(this.operand());
    }
    if (command.args.length === 0) this.error('empty command', command.pos);
    return command;
  }

  private operand(): Arg {
    let node = this.term();
    const path: string[] = [];
    while (this.peek().kind === 'field' && !this.peek().spaced) path.push(this.next().text.slice(1));
    if (path.length === 0) return node;
    switch (node.kind) {
      case 'field':
        return { kind: 'field', pos: node.pos, path: [...node.path, ...path] };
      case 'variable':
        return { kind: 'variable', pos: node.pos, name: node.name, path: [...node.path, ...path] };
      case 'string':
      case 'number':
      case 'bool':
      case 'nil':
      case 'dot':
        this.error(`unexpected . after term ${JSON.stringify(argString(node))}`, node.pos);
    }
    node = { kind: 'chain', pos: node.pos, node, path };
    return node;
  }

  private term(): Arg {
    const item = this.next();
    switch (item.kind) {
      case 'ident':
        if (!BUILTINS.has(item.text) && !this.functions.has(item.text)) this.error(`function ${JSON.stringify(item.text)} not defined`, item.pos);
        return { kind: 'identifier', pos: item.pos, name: item.text };
      case 'dot':
        return { kind: 'dot', pos: item.pos };
      case 'nil':
        return { kind: 'nil', pos: item.pos };
      case 'bool':
        return { kind: 'bool', pos: item.pos, value: item.text === 'true' };
      case 'field':
        return { kind: 'field', pos: item.pos, path: [item.text.slice(1)] };
      case 'variable': {
        if (!this.vars.includes(item.text)) this.error(`undefined variable "${item.text}"`, item.pos);
        return { kind: 'variable', pos: item.pos, name: item.text, path: [] };
      }
      case 'string':
        return { kind: 'string', pos: item.pos, quoted: item.text, value: unquote(item.text, (message) => this.error(message, item.pos)) };
      case 'rawString':
        return { kind: 'string', pos: item.pos, quoted: item.text, value: item.text.slice(1, -1) };
      case 'char': {
        const value = unquote(`"${item.text.slice(1, -1).replace(/"/g, '\\"')}"`, (message) => this.error(message, item.pos));
        return { kind: 'number', pos: item.pos, text: item.text, value: value.codePointAt(0) ?? 0 };
      }
      case 'number': {
        const value = numberValue(item.text);
        if (value === null) this.error(`bad number syntax: "${item.text}"`, item.pos);
        return { kind: 'number', pos: item.pos, text: item.text, value };
      }
      case 'leftParen': {
        const pipe = this.pipeline('parenthesized pipeline', 'rightParen');
        return { kind: 'pipe', pos: item.pos, pipe };
      }
      default:
        this.unexpected(item, 'operand');
    }
  }
}

function describe(item: Item): string {
  if (item.kind === 'right') return '"}}"';
  if (item.kind === 'rightParen') return '")"';
  if (item.kind === 'keyword') return `<${item.text}>`;
  return `"${item.text}"`;
}

function numberValue(text: string): number | null {
  const clean = text.replace(/_/g, '');
  const sign = clean.startsWith('-') ? -1 : 1;
  const body = clean.replace(/^[+-]/, '');
  let value: number;
  if (/^0[xX]/.test(body)) value = parseInt(body.slice(2), 16);
  else if (/^0[oO]/.test(body)) value = parseInt(body.slice(2), 8);
  else if (/^0[bB]/.test(body)) value = parseInt(body.slice(2), 2);
  else if (/^0[0-7]+$/.test(body)) value = parseInt(body, 8);
  else value = Number(body);
  return Number.isNaN(value) ? null : sign * value;
}

/** Go's strconv.Unquote for "..." literals. */
function unquote(quoted: string, error: (message: string) => never): string {
  const body = quoted.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const char = body[i]!;
    if (char !== '\\') {
      out += char;
      continue;
    }
    const next = body[++i];
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" };
    if (next !== undefined && simple[next] !== undefined) {
      out += simple[next];
      continue;
    }
    const hex = next === 'x' ? 2 : next === 'u' ? 4 : next === 'U' ? 8 : 0;
    if (hex > 0 && /^[0-9a-fA-F]+$/.test(body.slice(i + 1, i + 1 + hex)) && body.slice(i + 1, i + 1 + hex).length === hex) {
      const value = parseInt(body.slice(i + 1, i + 1 + hex), 16);
      out += next === 'x' ? String.fromCharCode(value) : String.fromCodePoint(value);
      i += hex;
      continue;
    }
    if (next !== undefined && /^[0-7]{3}$/.test(body.slice(i, i + 3))) {
      out += String.fromCharCode(parseInt(body.slice(i, i + 3), 8));
      i += 2;
      continue;
    }
    error(`invalid syntax`);
  }
  return out;
}

// ---- String(), as Go's parse tree prints ---------------------------------

function argString(arg: Arg): string {
  switch (arg.kind) {
    case 'field':
      return '.' + arg.path.join('.');
    case 'dot':
      return '.';
    case 'variable':
      return [arg.name, ...arg.path].join('.');
    case 'identifier':
      return arg.name;
    case 'string':
      return arg.quoted;
    case 'number':
      return arg.text;
    case 'bool':
      return String(arg.value);
    case 'nil':
      return 'nil';
    case 'pipe':
      return `(${pipeString(arg.pipe)})`;
    case 'chain':
      return `${argString(arg.node)}.${arg.path.join('.')}`;
  }
}

function commandString(command: Command): string {
  return command.args.map(argString).join(' ');
}

function pipeString(pipe: Pipe): string {
  const decl = pipe.decl.length > 0 ? `${pipe.decl.join(', ')} ${pipe.isAssign ? '=' : ':='} ` : '';
  return decl + pipe.cmds.map(commandString).join(' | ');
}

function listString(list: readonly Node[]): string {
  return list.map(nodeString).join('');
}

function nodeString(node: Node): string {
  switch (node.kind) {
    case 'text':
      return node.text;
    case 'action':
      return `{{${pipeString(node.pipe)}}}`;
    case 'break':
    case 'continue':
      return `{{${node.kind}}}`;
    default: {
      const elsePart = node.elseList === null ? '' : `{{else}}${listString(node.elseList)}`;
      return `{{${node.kind} ${pipeString(node.pipe)}}}${listString(node.list)}${elsePart}{{end}}`;
    }
  }
}

// ---- execution ---------------------------------------------------------------

class BreakSignal {}
class ContinueSignal {}
const breakSignal = new BreakSignal();
const continueSignal = new ContinueSignal();

interface Variable {
  name: string;
  value: unknown;
}

/** A failed call of a template function, reported as Go reports it. */
export class CallError extends Error {}

class Execution {
  private readonly template: GoTemplate;
  private readonly vars: Variable[];
  out = '';
  /** The command being run, for the error message. */
  private at: Command | null = null;

  constructor(template: GoTemplate, data: unknown) {
    this.template = template;
    this.vars = [{ name: '$', value: data }];
  }

  fail(message: string): never {
    const { name, source } = this.template;
    const pos = this.at?.pos ?? 0;
    const before = source.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n') - 1;
    const text = this.at === null ? '' : commandString(this.at);
    throw new TemplateExecError(`template: ${name}:${line}:${column}: executing "${name}" at <${text}>: ${message}`);
  }

  list(list: readonly Node[], dot: unknown): void {
    for (const node of list) this.node(node, dot);
  }

  private node(node: Node, dot: unknown): void {
    switch (node.kind) {
      case 'text':
        this.out += node.text;
        return;
      case 'action': {
        const value = this.pipe(node.pipe, dot);
        if (node.pipe.decl.length === 0) this.out += printValue(value);
        return;
      }
      case 'break':
        throw breakSignal;
      case 'continue':
        throw continueSignal;
      case 'if':
      case 'with': {
        const mark = this.vars.length;
        const value = this.pipe(node.pipe, dot);
        if (isTrue(value)) this.list(node.list, node.kind === 'with' ? value : dot);
        else if (node.elseList) this.list(node.elseList, dot);
        this.vars.length = mark;
        return;
      }
      case 'range':
        return this.range(node, dot);
    }
  }

  private range(node: Extract<Node, { pipe: Pipe; list: Node[] }>, dot: unknown): void {
    const mark = this.vars.length;
    // The pipeline's declarations are set per element, not to the pipeline's value.
    const value = this.pipe({ ...node.pipe, decl: [] }, dot);
    let entries: [unknown, unknown][];
    if (Array.isArray(value)) entries = value.map((element, index) => [index, element]);
    else if (value instanceof GoMap) entries = value.sortedKeys().map((key) => [key, value.get(key)]);
    else if (typeof value === 'number' && Number.isInteger(value)) entries = Array.from({ length: Math.max(0, value) }, (_, index) => [index, index]);
    else if (value === NO_VALUE || value === null || value === undefined) entries = [];
    else this.fail(`range can't iterate over ${printValue(value)}`);
    if (entries.length === 0) {
      if (node.elseList) this.list(node.elseList, dot);
      this.vars.length = mark;
      return;
    }
    for (const [key, element] of entries) {
      if (node.pipe.decl.length === 1) this.setVariable(node.pipe.decl[0]!, element, node.pipe.isAssign);
      if (node.pipe.decl.length === 2) {
        this.setVariable(node.pipe.decl[0]!, key, node.pipe.isAssign);
        this.setVariable(node.pipe.decl[1]!, element, node.pipe.isAssign);
      }
      try {
        this.list(node.list, element);
      } catch (signal) {
        if (signal === breakSignal) break;
        if (signal !== continueSignal) throw signal;
      }
    }
    this.vars.length = mark;
  }

  private setVariable(name: string, value: unknown, assign: boolean): void {
    if (assign) {
      for (let i = this.vars.length - 1; i >= 0; i--) {
        if (this.vars[i]!.name === name) {
          this.vars[i]!.value = value;
          return;
        }
      }
    }
    this.vars.push({ name, value });
  }

  private variable(name: string): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i]!.name === name) return this.vars[i]!.value;
    return this.fail(`undefined variable: ${name}`);
  }

  private pipe(pipe: Pipe, dot: unknown): unknown {
    let value: unknown = undefined;
    let hasValue = false;
    for (const command of pipe.cmds) {
      value = this.command(command, dot, hasValue ? { value } : null);
      hasValue = true;
    }
    for (const name of pipe.decl) this.setVariable(name, value, pipe.isAssign);
    return value;
  }

  private command(command: Command, dot: unknown, final: { value: unknown } | null): unknown {
    const [head, ...rest] = command.args;
    this.at = command;
    switch (head!.kind) {
      case 'identifier':
        return this.call(head!.name, rest, dot, final);
      case 'field':
        return this.fieldChain(dot, head!.path, rest, dot, final);
      case 'chain': {
        const receiver = this.arg(head!.node, dot);
        return this.fieldChain(receiver, head!.path, rest, dot, final);
      }
      case 'variable':
        if (head!.path.length > 0) return this.fieldChain(this.variable(head!.name), head!.path, rest, dot, final);
        break;
      case 'nil':
        this.fail('nil is not a command');
    }
    if (rest.length > 0 || final) this.fail(`can't give argument to non-function ${argString(head!)}`);
    return this.arg(head!, dot);
  }

  private arg(arg: Arg, dot: unknown): unknown {
    switch (arg.kind) {
      case 'dot':
        return dot;
      case 'string':
      case 'number':
      case 'bool':
        return arg.value;
      case 'nil':
        return null;
      case 'field':
        return this.fieldChain(dot, arg.path, [], dot, null);
      case 'variable':
        return arg.path.length > 0 ? this.fieldChain(this.variable(arg.name), arg.path, [], dot, null) : this.variable(arg.name);
      case 'pipe': {
        const mark = this.vars.length;
        const value = this.pipe(arg.pipe, dot);
        this.vars.length = mark;
        return value;
      }
      case 'chain':
        return this.fieldChain(this.arg(arg.node, dot), arg.path, [], dot, null);
      case 'identifier':
        return this.call(arg.name, [], dot, null);
    }
  }

  /** Evaluates receiver.A.B...; only the last element takes arguments (a method call). */
  private fieldChain(receiver: unknown, path: readonly string[], args: readonly Arg[], dot: unknown, final: { value: unknown } | null): unknown {
    let value = receiver;
    for (let i = 0; i < path.length; i++) {
      const last = i === path.length - 1;
      value = this.field(value, path[i]!, last ? args : [], dot, last ? final : null);
    }
    return value;
  }

  private field(receiver: unknown, name: string, args: readonly Arg[], dot: unknown, final: { value: unknown } | null): unknown {
    const hasArgs = args.length > 0 || final !== null;
    if (receiver instanceof GoStruct) {
      const method = receiver.method(name);
      if (method) {
        const values = args.map((arg) => this.arg(arg, dot));
        if (final) values.push(final.value);
        try {
          return method(...values);
        } catch (error) {
          if (error instanceof CallError) this.fail(error.message);
          throw error;
        }
      }
      if (receiver.hasField(name)) {
        if (hasArgs) this.fail(`${name} has arguments but cannot be invoked as function`);
        return receiver.field(name);
      }
      this.fail(`can't evaluate field ${name} in type ${receiver.typeName}`);
    }
    if (receiver instanceof GoMap) {
      if (hasArgs) this.fail(`${name} is not a method but has arguments`);
      return receiver.has(name) ? receiver.get(name) : NO_VALUE;
    }
    if (receiver === null || receiver === undefined || receiver === NO_VALUE) this.fail(`nil pointer evaluating interface {}.${name}`);
    this.fail(`can't evaluate field ${name} in type ${goTypeName(receiver)}`);
  }

  private call(name: string, argNodes: readonly Arg[], dot: unknown, final: { value: unknown } | null): unknown {
    const at = this.at;
    // and/or evaluate their arguments only as far as needed (Go 1.18).
    if (name === 'and' || name === 'or') {
      const nodes = [...argNodes];
      const count = nodes.length + (final ? 1 : 0);
      if (count < 1) this.fail(`wrong number of args for ${name}: want at least 1 got 0`);
      let value: unknown;
      for (let i = 0; i < count; i++) {
        value = i < nodes.length ? this.arg(nodes[i]!, dot) : final!.value;
        if (isTrue(value) !== (name === 'and')) return value;
      }
      return value;
    }
    const args = argNodes.map((arg) => this.arg(arg, dot));
    this.at = at;
    if (final) args.push(final.value);
    const fn = this.template.functions.get(name) ?? builtins[name];
    if (!fn) this.fail(`function "${name}" not defined`);
    try {
      return fn(...args);
    } catch (error) {
      if (error instanceof CallError) this.fail(`error calling ${name}: ${error.message}`);
      throw error;
    }
  }
}

// ---- values as a template prints them -----------------------------------------------

/** How an action prints a value (Go's printValue: fmt.Print, "<no value>" for a missing map key). */
function printValue(value: unknown): string {
  return goSprint([value]);
}

// ---- builtins --------------------------------------------------------------

function basicKind(value: unknown): 'bool' | 'int' | 'float' | 'string' | 'nil' | 'other' {
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'bigint') return 'int';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (typeof value === 'string') return 'string';
  if (value === null || value === undefined) return 'nil';
  return 'other';
}

function compare(name: string, a: unknown, b: unknown): number {
  if (a === NO_VALUE || b === NO_VALUE) throw new CallError('invalid type for comparison');
  const kindA = basicKind(a);
  const kindB = basicKind(b);
  if (kindA === 'other' || kindB === 'other') {
    if (name === 'eq' || name === 'ne') {
      if (kindA === 'nil' || kindB === 'nil') return a === b ? 0 : 1;
      throw new CallError('non-comparable type');
    }
    throw new CallError('invalid type for comparison');
  }
  const numeric = (kind: string) => kind === 'int' || kind === 'float';
  if (kindA !== kindB && !(numeric(kindA) && numeric(kindB))) throw new CallError('incompatible types for comparison');
  if ((kindA === 'bool' || kindA === 'nil') && name !== 'eq' && name !== 'ne') throw new CallError('invalid type for comparison');
  const x = typeof a === 'bigint' ? Number(a) : (a as number | string | boolean);
  const y = typeof b === 'bigint' ? Number(b) : (b as number | string | boolean);
  return x === y ? 0 : x < y ? -1 : 1;
}

function indexInto(item: unknown, index: unknown): unknown {
  if (item === NO_VALUE || item === null || item === undefined) throw new CallError('index of untyped nil');
  if (item instanceof GoMap) return item.has(String(index)) ? item.get(String(index)) : item.zero;
  const position = typeof index === 'bigint' ? Number(index) : index;
  if (typeof position !== 'number' || !Number.isInteger(position)) throw new CallError(`cannot index slice/array with type ${goTypeName(index)}`);
  if (Array.isArray(item)) {
    if (position < 0 || position >= item.length) throw new CallError(`index out of range: ${position}`);
    return item[position];
  }
  if (typeof item === 'string') {
    const bytes = Buffer.from(item, 'utf8');
    if (position < 0 || position >= bytes.length) throw new CallError(`index out of range: ${position}`);
    return bytes[position];
  }
  throw new CallError(`can't index item of type ${goTypeName(item)}`);
}

function escapeHtml(text: string): string {
  return text.replace(/[\0"'&<>]/g, (char) => ({ '\0': '\uFFFD', '"': '&#34;', "'": '&#39;', '&': '&amp;', '<': '&lt;', '>': '&gt;' })[char]!);
}

function escapeJs(text: string): string {
  return text.replace(/[\\'"<>&=\u0000-\u001f]/g, (char) => {
    const named: Record<string, string> = { '\\': '\\\\', "'": "\\'", '"': '\\"' };
    return named[char] ?? `\\u${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  });
}

const builtins: Record<string, GoFunction> = {
  not: (...args) => {
    if (args.length !== 1) throw new CallError(`wrong number of args for not: want 1 got ${args.length}`);
    return !isTrue(args[0]);
  },
  len: (...args) => {
    const [item] = args;
    if (typeof item === 'string') return Buffer.byteLength(item, 'utf8');
    if (Array.isArray(item)) return item.length;
    if (item instanceof GoMap) return item.size;
    throw new CallError(`len of ${item === NO_VALUE || item == null ? 'nil pointer' : `type ${goTypeName(item)}`}`);
  },
  index: (item, ...indices) => indices.reduce((value, index) => indexInto(value, index), item),
  slice: (item, ...indices) => {
    if (indices.length > 3) throw new CallError(`too many slice indexes: ${indices.length}`);
    const length = typeof item === 'string' ? Buffer.byteLength(item, 'utf8') : Array.isArray(item) ? item.length : -1;
    if (length < 0) throw new CallError(`can't slice item of type ${goTypeName(item)}`);
    const [from = 0, to = length] = indices.map(Number);
    if (from < 0 || to > length || from > to) throw new CallError(`index out of range: ${from > to ? from : to}`);
    return typeof item === 'string' ? Buffer.from(item, 'utf8').subarray(from, to).toString('utf8') : (item as unknown[]).slice(from, to);
  },
  print: (...args) => goSprint(args),
  println: (...args) => goSprintln(args),
  printf: (format, ...args) => {
    if (typeof format !== 'string') throw new CallError(`wrong type for value; expected string; got ${goTypeName(format)}`);
    return goSprintf(format, args);
  },
  eq: (first, ...rest) => {
    if (rest.length === 0) throw new CallError('missing argument for comparison');
    return rest.some((other) => compare('eq', first, other) === 0);
  },
  ne: (a, b) => compare('ne', a, b) !== 0,
  lt: (a, b) => compare('lt', a, b) < 0,
  le: (a, b) => compare('le', a, b) <= 0,
  gt: (a, b) => compare('gt', a, b) > 0,
  ge: (a, b) => compare('ge', a, b) >= 0,
  html: (...args) => escapeHtml(goSprint(args)),
  js: (...args) => escapeJs(goSprint(args)),
  urlquery: (...args) => encodeURIComponent(goSprint(args)).replace(/%20/g, '+').replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`),
  call: (fn, ...args) => {
    if (typeof fn !== 'function') throw new CallError(`non-function of type ${goTypeName(fn)}`);
    return (fn as GoFunction)(...args);
  },
};

// ---- the template ----------------------------------------------------------------

export class GoTemplate {
  readonly name: string;
  readonly source: string;
  readonly functions: ReadonlyMap<string, GoFunction>;
  private readonly root: Node[];
  /** The template as Go's parse tree prints it (Tree.Root.String()). */
  readonly text: string;
  /** Set when the template has no actions: executing it is the text itself. */
  private readonly constant: string | null;

  constructor(name: string, source: string, functions: ReadonlyMap<string, GoFunction> = new Map()) {
    this.name = name;
    this.source = source;
    this.functions = functions;
    this.root = new Parser(name, source, new Set(functions.keys())).parse();
    this.text = listString(this.root);
    this.constant = this.root.every((node) => node.kind === 'text') ? this.text : null;
  }

  /** Runs the template on `data`; throws TemplateExecError as Go's Execute fails. */
  execute(data: unknown): string {
    if (this.constant !== null) return this.constant;
    const execution = new Execution(this, data);
    try {
      execution.list(this.root, data);
    } catch (signal) {
      if (signal === breakSignal || signal === continueSignal) execution.fail('break or continue outside range');
      throw signal;
    }
    return execution.out;
  }
}
