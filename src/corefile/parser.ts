// Corefile parser (CF-5 to CF-10): tokens in, server blocks out.
//
// CoreDNS groups a flat token list per directive and leaves the block
// structure to each plugin's token dispenser (coredns/caddy caddyfile
// parse.go). clusterdns hands plugins a tree instead (Directive.block), so the
// structure is decided here, once, with the same rules:
//   - a line is a directive (or, inside a block, a property) and its
//     arguments; a `{` on that line opens its option block;
//   - `import` at the start of a line is replaced by the snippet's or
//     file's tokens, which are then parsed as if written there;
//   - braces, `import` and line breaks are recognised on the text as written
//     (a quoted "{" is an argument); `{$VAR}` substitution then applies to the
//     text of every token, so a value with spaces stays one token.
// The parse is single-pass, like CoreDNS's, so a snippet must be defined
// before it is used. Deliberate differences from CoreDNS are noted where they
// are made; each accepts what CoreDNS accepts and only turns cases that
// CoreDNS mis-parses into clear errors, or accepts one-line blocks that it
// rejects.

import fs from 'node:fs';
import path from 'node:path';
import { writeLog } from '../log.ts';
import { tokenize, type LexToken } from './lexer.ts';
import { CorefileError, UnknownDirectiveError, type Directive, type ServerBlockSource, type Token } from './types.ts';

export interface ParseOptions {
  /** Variables for {$NAME} and {%NAME%} (CF-5); default process.env. Unset gives ''. */
  env?: Record<string, string | undefined>;
  /** Known directive names (the plugin registry); others are an error (CF-7). */
  isDirective: (name: string) => boolean;
  /** Non-fatal findings, such as an import glob matching nothing. Default: a "[WARNING] " log line. */
  warn?: (message: string) => void;
  /**
   * Given (by -validate), an unknown directive is reported here and its line
   * skipped, so that the errors after it are found too. Errors in the
   * structure (braces, imports) still end the parse.
   */
  onError?: (error: CorefileError) => void;
}

/** Caps on import expansions per parse, as in coredns/caddy, so that import loops end (CF-10). */
export const MAX_SNIPPET_EXPANSIONS = 10_000;
export const MAX_FILE_IMPORTS = 10_000;

export function parseCorefileFile(file: string, options: ParseOptions): ServerBlockSource[] {
  return parseCorefile(fs.readFileSync(file, 'utf8'), file, options);
}

export function parseCorefile(text: string, file: string, options: ParseOptions): ServerBlockSource[] {
  const parser = new Parser(options);
  parser.stream.push(parser.frame(tokenize(text, file), [path.resolve(file)]));
  const blocks: ServerBlockSource[] = [];
  while (parser.stream.peek()) {
    const block = parser.serverBlock();
    if (block) blocks.push(block);
  }
  return blocks;
}

/**
 * CF-5: replaces each {%NAME%} and then each {$NAME} with the variable's value
 * ('' when unset). A reference without its closing part is left as written,
 * and so is everything after an empty reference such as `{$}` (CoreDNS stops
 * there too). Unlike CoreDNS, text that a substitution inserted is not scanned
 * again, so a value that contains a reference cannot make the parse loop.
 */
export function substituteEnv(text: string, env: Record<string, string | undefined>): string {
  return replaceReferences(replaceReferences(text, '{%', '%}', env), '{$', '}', env);
}

function replaceReferences(text: string, open: string, close: string, env: Record<string, string | undefined>): string {
  let done = '';
  let rest = text;
  for (;;) {
    const start = rest.indexOf(open);
    if (start === -1) break;
    const end = rest.indexOf(close, start);
    if (end === -1 || end <= start + open.length) break;
    done += rest.slice(0, start) + (env[rest.slice(start + open.length, end)] ?? '');
    rest = rest.slice(end + close.length);
  }
  return done + rest;
}

/** A token as the parser sees it: substituted text, plus where it came from. */
interface ParseToken extends LexToken {
  /** The text as written, before substitution; braces and `import` are recognised on it. */
  raw: string;
  /**
   * Tokens spliced in by one import share a group. Tokens of different groups
   * are never on the same line, whatever their line numbers say: an import's
   * tokens end its line, and the line after the import starts a new one.
   */
  group: number;
  /** The imports that brought the token here, outermost first: absolute file paths and `(snippet)` names. */
  chain: readonly string[];
}

/** Tokens with imports spliced in: a stack of token lists, the innermost import on top. */
class TokenStream {
  readonly frames: { tokens: ParseToken[]; position: number }[] = [];
  /** The token most recently taken; line breaks are judged against it. */
  last: ParseToken | undefined;

  push(tokens: ParseToken[]): void {
    if (tokens.length > 0) this.frames.push({ tokens, position: 0 });
  }

  peek(): ParseToken | undefined {
    for (;;) {
      const top = this.frames.at(-1);
      if (!top) return undefined;
      if (top.position < top.tokens.length) return top.tokens[top.position];
      this.frames.pop();
    }
  }

  next(): ParseToken | undefined {
    const token = this.peek();
    if (token) {
      this.frames.at(-1)!.position++;
      this.last = token;
    }
    return token;
  }

  /** True when `token` continues the line of the token taken last. */
  continuesLine(token: ParseToken): boolean {
    return this.last !== undefined && sameLine(this.last, token);
  }
}

function sameLine(before: ParseToken, after: ParseToken): boolean {
  // endLine, not line: a quoted token that spans lines ends where it ends.
  return before.group === after.group && after.line <= before.endLine;
}

/** A structural token: written bare, not quoted (CF-2, CF-3). */
function isBare(token: ParseToken, text: string): boolean {
  return !token.quoted && token.raw === text;
}

function publicToken(token: ParseToken, text = token.text): Token {
  return { text, file: token.file, line: token.line };
}

function where(token: ParseToken): string {
  return `${token.file}:${token.line}`;
}

interface Level {
  directives: Directive[];
  /** The `{` that opened this level; null for the body of a brace-less server block. */
  open: ParseToken | null;
  /** The directive or property whose block this is; null at server-block level. */
  owner: Directive | null;
}

interface Snippet {
  tokens: ParseToken[];
  key: Token;
}

class Parser {
  readonly stream = new TokenStream();
  readonly options: ParseOptions;
  readonly env: Record<string, string | undefined>;
  readonly warn: (message: string) => void;
  readonly snippets = new Map<string, Snippet>();
  snippetExpansions = 0;
  fileImports = 0;
  nextGroup = 0;

  constructor(options: ParseOptions) {
    this.options = options;
    this.env = options.env ?? process.env;
    this.warn = options.warn ?? ((message) => writeLog('WARNING', message));
  }

  /** Freshly lexed tokens as one group, substituted once (CF-5). */
  frame(tokens: LexToken[], chain: readonly string[]): ParseToken[] {
    const group = this.nextGroup++;
    return tokens.map((token) => ({ ...token, raw: token.text, text: substituteEnv(token.text, this.env), group, chain }));
  }

  /** A snippet's stored tokens for one more use: new groups (keeping their relative splits), new chain. */
  reframe(tokens: ParseToken[], chain: readonly string[]): ParseToken[] {
    const groups = new Map<number, number>();
    return tokens.map((token) => {
      let group = groups.get(token.group);
      if (group === undefined) {
        group = this.nextGroup++;
        groups.set(token.group, group);
      }
      return { ...token, group, chain };
    });
  }

  /**
   * One top-level entry: a server block, a snippet definition (returns
   * null), or a block without keys (CoreDNS drops it silently; a warning here).
   */
  serverBlock(): ServerBlockSource | null {
    const { stream } = this;
    const keys: Token[] = [];
    const before = stream.last;
    let token = stream.next()!;
    // As in CoreDNS, `import` counts only at the start of a line, even here:
    // after `}` on the same line it is read as a key.
    let atLineStart = !before || !sameLine(before, token);
    let expectingAnother = false;
    let open: ParseToken | null = null;

    // CF-6: keys run to the end of the line; a key ending in ',' continues
    // the list on the next line. `{` ends the keys, on this line or the next.
    for (;;) {
      if (isBare(token, 'import') && atLineStart) {
        // CF-10: an import in place of (or among) keys. The imported tokens are
        // read as if written here, starting with the key position.
        this.importAt(token);
        const following = stream.next();
        if (!following) {
          if (expectingAnother) throw this.eofAfterComma();
          return keys.length > 0 ? { keys, directives: [] } : null;
        }
        token = following;
        atLineStart = true;
        continue;
      }
      if (isBare(token, '{')) {
        if (expectingAnother) throw new CorefileError(token, "Expected another address but had '{' - check for extra comma");
        open = token;
        break;
      }
      if (isBare(token, '}')) throw new CorefileError(token, "Unexpected '}' because no matching opening brace");
      if (token.text !== '') {
        // CF-3: the empty token "" is no key (and leaves the comma state alone).
        expectingAnother = token.text.endsWith(',');
        const text = expectingAnother ? token.text.slice(0, -1) : token.text;
        if (text !== '') keys.push(publicToken(token, text));
      }
      const following = stream.next();
      if (!following) {
        if (expectingAnother) throw this.eofAfterComma();
        // Keys and nothing else: a server with no plugins, as in CoreDNS.
        return keys.length > 0 ? { keys, directives: [] } : null;
      }
      atLineStart = !sameLine(token, following);
      token = following;
      if (!expectingAnother && atLineStart) {
        // The keys' line is over; a `{` opening the next line still opens the block.
        if (isBare(token, '{')) open = token;
        break;
      }
    }

    // CF-9: a block whose only key is `(name)` defines a snippet.
    const snippetName = keys.length === 1 ? /^\((.*)\)$/s.exec(keys[0]!.text)?.[1] : undefined;
    if (snippetName !== undefined) {
      this.defineSnippet(snippetName, keys[0]!, open, token);
      return null;
    }

    // Without `{` this is the brace-less form: the token that ended the keys
    // is the first directive, and the block runs to the end of the file.
    const directives = this.body(open, open ? undefined : token);
    if (keys.length === 0) {
      const at = open ?? token;
      this.warn(`${where(at)} - server block without keys ignored`);
      return null;
    }
    return { keys, directives };
  }

  private eofAfterComma(): CorefileError {
    return new CorefileError(this.stream.last!, "Unexpected EOF, expecting another key after ','");
  }

  private defineSnippet(name: string, key: Token, open: ParseToken | null, after: ParseToken): void {
    const previous = this.snippets.get(name);
    if (previous) {
      throw new CorefileError(key, `redeclaration of previously declared snippet ${name} (first declared at ${previous.key.file}:${previous.key.line})`);
    }
    if (!open) throw new CorefileError(after, `Unexpected token '${after.text}', expecting '{' to open snippet (${name})`);

    // The body is kept as tokens and parsed where it is imported; imports in
    // it are expanded then, not now.
    const tokens: ParseToken[] = [];
    let depth = 1;
    for (;;) {
      const token = this.stream.next();
      if (!token) {
        throw new CorefileError(this.stream.last!, `Unexpected EOF, expecting '}' to close snippet (${name}) opened at ${where(open)}`);
      }
      if (isBare(token, '{')) depth++;
      if (isBare(token, '}') && --depth === 0) break;
      tokens.push(token);
    }

    // A body that imports its own snippet would expand forever; CoreDNS
    // rejects the direct case at definition, with this wording.
    for (let i = 0; i + 1 < tokens.length; i++) {
      const token = tokens[i]!;
      const argument = tokens[i + 1]!;
      const lineStart = i === 0 || !sameLine(tokens[i - 1]!, token);
      if (isBare(token, 'import') && lineStart && sameLine(token, argument) && argument.text === name) {
        throw new CorefileError(token, `maximum snippet import depth (${MAX_SNIPPET_EXPANSIONS}) exceeded: snippet (${name}) imports itself`);
      }
    }
    this.snippets.set(name, { tokens, key });
  }

  /**
   * The directives of a server block, to its closing `}` (or, brace-less, to
   * the end of the input). Nested option blocks are followed with an explicit
   * stack rather than recursion, so no input can exhaust the call stack.
   */
  private body(open: ParseToken | null, first: ParseToken | undefined): Directive[] {
    const { stream } = this;
    const root: Level = { directives: [], open, owner: null };
    const stack: Level[] = [root];
    let pending = first;

    for (;;) {
      const token = pending ?? stream.next();
      pending = undefined;
      const level = stack.at(-1)!;

      if (!token) {
        if (!level.open) return root.directives;
        throw new CorefileError(stream.last!, `Unexpected EOF, expecting '}' to close the block opened at ${where(level.open)}`);
      }

      if (isBare(token, '}')) {
        if (!level.open) throw new CorefileError(token, "Unexpected '}' because no matching opening brace");
        stack.pop();
        if (stack.length === 0) return root.directives;
        // A closed option block ends its line: anything after it other than
        // another '}' would be an argument of nothing. (CoreDNS appends such
        // tokens to the plugin's token stream, where they get misread.)
        const after = stream.peek();
        if (after && stream.continuesLine(after) && !isBare(after, '}')) {
          throw new CorefileError(after, `Unexpected token '${after.text}' after '}', expecting the end of the line`);
        }
        continue;
      }

      if (isBare(token, '{')) {
        const previous = level.directives.at(-1);
        const hint = previous && previous.block === null ? ` (an option block must start on the same line as '${previous.name.text}')` : '';
        const expected = level.owner ? `a property of '${level.owner.name.text}'` : 'a directive';
        throw new CorefileError(token, `Unexpected token '{', expecting ${expected}${hint}`);
      }

      if (isBare(token, 'import')) {
        // CF-10: at the start of a line, in a server block or an option block.
        this.importAt(token);
        continue;
      }

      // CF-7: only the server-block level names plugins; option names inside
      // blocks are each plugin's business.
      const directive: Directive = { name: publicToken(token), args: [], block: null };
      if (!level.owner && !this.options.isDirective(token.text)) {
        const error = new UnknownDirectiveError(token);
        if (!this.options.onError) throw error;
        // Read on into a directive no block holds: its line and option block are skipped whole.
        this.options.onError(error);
      } else {
        level.directives.push(directive);
      }

      // Arguments run to the end of the line. A `{` on the line opens the
      // option block; a `}` closes the enclosing block, which the loop reads.
      // (CoreDNS rejects a `}` on a directive's line at server-block level,
      // e.g. `. { whoami }`; it is accepted here: the reading is unambiguous.)
      for (;;) {
        const next = stream.peek();
        if (!next || !stream.continuesLine(next) || isBare(next, '}')) break;
        stream.next();
        if (isBare(next, '{')) {
          directive.block = [];
          stack.push({ directives: directive.block, open: next, owner: directive });
          break;
        }
        directive.args.push(publicToken(next));
      }
    }
  }

  /**
   * CF-10: reads the import's argument from the rest of its line, and puts
   * the snippet's or files' tokens next in the stream.
   */
  private importAt(importToken: ParseToken): void {
    const { stream } = this;
    const args: ParseToken[] = [];
    for (let next = stream.peek(); next && stream.continuesLine(next); next = stream.peek()) {
      args.push(stream.next()!);
    }
    if (args.length === 0) throw new CorefileError(importToken, "Wrong argument count or unexpected line ending after 'import'");
    const argument = args[0]!;
    const pattern = argument.text;
    if (pattern === '') throw new CorefileError(argument, 'Import requires a non-empty filepath');
    if (args.length > 1) {
      throw new CorefileError(args[1]!, `Import takes only one argument (glob pattern or file), found '${args[1]!.text}' after '${pattern}'`);
    }
    const chain = importToken.chain;

    const snippet = this.snippets.get(pattern);
    if (snippet) {
      const id = `(${pattern})`;
      if (chain.includes(id)) throw new CorefileError(argument, `Import cycle: ${cycle(chain, id)}`);
      if (++this.snippetExpansions > MAX_SNIPPET_EXPANSIONS) {
        throw new CorefileError(argument, `maximum snippet import depth (${MAX_SNIPPET_EXPANSIONS}) exceeded`);
      }
      stream.push(this.reframe(snippet.tokens, [...chain, id]));
      return;
    }

    // A file or glob, relative to the directory of the file the import is in
    // (not the working directory). A glob counts as one import.
    if (++this.fileImports > MAX_FILE_IMPORTS) {
      throw new CorefileError(argument, `maximum file import depth (${MAX_FILE_IMPORTS}) exceeded`);
    }
    const globPattern = path.isAbsolute(pattern) ? pattern : path.join(path.dirname(path.resolve(importToken.file)), pattern);
    // A pattern with many wildcards can take very long to expand (caddy #2096).
    if (count(globPattern, '*') > 1 || count(globPattern, '?') > 1 || (globPattern.includes('[') && globPattern.includes(']'))) {
      throw new CorefileError(argument, `Glob pattern may only contain one wildcard (*), but has others: ${globPattern}`);
    }
    if (globPattern.includes('[')) {
      throw new CorefileError(argument, `Failed to use import pattern ${pattern}: syntax error in pattern (unclosed '[')`);
    }

    const matches = glob(globPattern);
    if (matches.length === 0) {
      if (/[*?[\]]/.test(globPattern)) {
        this.warn(`No files matching import glob pattern: ${pattern}`);
        return;
      }
      const snippetHint = /^[\w-]+$/.test(pattern) ? ` (no snippet (${pattern}) is defined before this line either)` : '';
      throw new CorefileError(argument, `File to import not found: ${pattern}${snippetHint}`);
    }

    const frames: ParseToken[][] = [];
    for (const match of matches) {
      const file = path.resolve(match);
      if (chain.includes(file)) throw new CorefileError(argument, `Import cycle: ${cycle(chain, file)}`);
      let text: string;
      try {
        if (fs.statSync(file).isDirectory()) throw new CorefileError(argument, `Could not import ${match}: is a directory`);
        text = fs.readFileSync(file, 'utf8');
      } catch (error) {
        if (error instanceof CorefileError) throw error;
        throw new CorefileError(argument, `Could not import ${match}: ${(error as Error).message}`);
      }
      // Imported tokens name their own file, so errors point into it.
      frames.push(this.frame(tokenize(text, file), [...chain, file]));
    }
    // The first match must be read first: it goes on top of the stack.
    for (const tokens of frames.reverse()) stream.push(tokens);
  }
}

function count(text: string, char: string): number {
  return text.split(char).length - 1;
}

function cycle(chain: readonly string[], again: string): string {
  return [...chain.slice(chain.indexOf(again)), again].join(' -> ');
}

/**
 * Go's filepath.Glob, which CoreDNS uses for imports: `*` is any run of
 * characters but '/', `?` one character but '/', `\` escapes; dot files are
 * not special; names are sorted; unreadable directories are skipped. A path
 * without wildcards matches if it exists.
 */
function glob(pattern: string): string[] {
  if (!/[*?\\]/.test(pattern)) {
    try {
      fs.lstatSync(pattern);
      return [pattern];
    } catch {
      return [];
    }
  }
  const dir = path.dirname(pattern);
  const base = path.basename(pattern);
  const dirs = /[*?\\]/.test(dir) ? glob(dir) : [dir];
  const matcher = globMatcher(base);
  const matches: string[] = [];
  for (const directory of dirs) {
    let names: string[];
    try {
      if (!fs.statSync(directory).isDirectory()) continue;
      names = fs.readdirSync(directory).sort();
    } catch {
      continue;
    }
    for (const name of names) if (matcher.test(name)) matches.push(path.join(directory, name));
  }
  return matches;
}

function globMatcher(component: string): RegExp {
  let source = '';
  for (let i = 0; i < component.length; i++) {
    const c = component[i]!;
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else {
      const literal = c === '\\' && i + 1 < component.length ? component[++i]! : c;
      source += literal.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`, 's');
}
