// Corefile lexer (CF-1 to CF-4): text in, words out.
//
// It behaves like the Caddy v1 lexer that CoreDNS uses (coredns/caddy
// caddyfile/lexer.go): tokens are whitespace-separated words, a word that
// starts with `"` runs to the next unescaped `"`, and `#` outside quotes
// starts a comment. It knows nothing about structure: braces, `import` and
// environment variables are the parser's business. The parser does need two
// facts the text alone loses, so every token also says whether it was quoted
// (a quoted "{" is a word, not a brace) and on which line it ends (a quoted
// token may span lines, and "is the next token on a new line?" must look at
// where this one ended).

import { CorefileError, type Token } from './types.ts';

export interface LexToken extends Token {
  /** True when the token was written in double quotes (the quotes are not in `text`). */
  quoted: boolean;
  /** The line the token ends on; differs from `line` only for a quoted token with newlines in it. */
  endLine: number;
}

/**
 * Go's unicode.IsSpace, which is what separates Corefile tokens: the ASCII
 * blanks, NEL, NBSP and the Unicode White_Space characters. JavaScript's \s
 * differs from it (it has U+FEFF and lacks U+0085), so the set is spelt out.
 */
const SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

export function tokenize(text: string, file: string): LexToken[] {
  const tokens: LexToken[] = [];
  // CF-1: a byte-order mark at the very start is not part of the first token.
  let i = text.startsWith('\uFEFF') ? 1 : 0;
  let line = 1;

  while (i < text.length) {
    const ch = text[i]!;

    if (ch === '\n') {
      line++;
      i++;
      continue;
    }
    // CF-1: \r is ignored, it is not a separator: Go's lexer skips it
    // before deciding whether a word has ended.
    if (ch === '\r' || SPACE.test(ch)) {
      i++;
      continue;
    }
    if (ch === '#') {
      // CF-4: a comment runs to the end of the line; the newline itself is
      // left for the loop so the line count stays right.
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
      continue;
    }

    if (ch === '"') {
      // CF-3: a quoted token. Only \" is an escape; every other backslash is
      // kept with the character after it, so "a\nb" keeps its backslash and
      // "a\\" is two backslashes (the second one cannot escape the quote).
      const startLine = line;
      let value = '';
      i++;
      let closed = false;
      while (i < text.length) {
        const c = text[i]!;
        if (c === '\\' && i + 1 < text.length) {
          const next = text[i + 1]!;
          if (next === '"') {
            value += '"';
          } else if (next === '\r') {
            // CF-1: \r is dropped everywhere, so a backslash before a CRLF
            // behaves as it would before a bare LF.
            value += '\\';
            i++;
            continue;
          } else {
            if (next === '\n') line++;
            value += '\\' + next;
          }
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === '\n') line++;
        // CF-1: \r is ignored, inside quotes too, so a CRLF file gives the
        // same multi-line token as an LF file (CoreDNS keeps the \r here).
        if (c !== '\r') value += c;
        i++;
      }
      if (!closed) {
        // CoreDNS silently takes the rest of the file as the token, which
        // then surfaces as a baffling "Unexpected EOF"; say what happened.
        throw new CorefileError({ file, line: startLine }, `Unterminated quoted string starting '"${preview(value)}', expecting a closing '"'`);
      }
      tokens.push({ text: value, file, line: startLine, endLine: line, quoted: true });
      // The next token starts right after the closing quote, even with no
      // space in between: "a"b is the two tokens a and b, as in CoreDNS.
      continue;
    }

    // CF-2: an unquoted word runs to the next whitespace. Braces and quotes
    // inside it are ordinary characters (`foo{` is one token), but CF-4 an
    // unquoted # ends the word and starts a comment.
    let word = '';
    while (i < text.length) {
      const c = text[i]!;
      if (c === '\r') {
        // CF-1: dropped even mid-word (a\rb is the token ab, as in CoreDNS).
        i++;
        continue;
      }
      if (c === '#' || SPACE.test(c)) break;
      word += c;
      i++;
    }
    tokens.push({ text: word, file, line, endLine: line, quoted: false });
  }
  return tokens;
}

function preview(text: string): string {
  const firstLine = text.split('\n', 1)[0]!;
  return firstLine.length > 20 ? `${firstLine.slice(0, 20)}...` : firstLine;
}
