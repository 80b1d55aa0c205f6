import { describe, it, expect } from 'vitest';
import { tokenize } from '../../src/corefile/lexer.ts';
import { corefileError } from './fixtures/helpers.ts';

const texts = (text: string): string[] => tokenize(text, 'Corefile').map((token) => token.text);
const lines = (text: string): number[] => tokenize(text, 'Corefile').map((token) => token.line);

describe('CF-1: input, byte-order mark, carriage returns, line numbers', () => {
  it('CF-1: empty and blank inputs give no tokens', () => {
    expect(texts('')).toEqual([]);
    expect(texts('\n')).toEqual([]);
    expect(texts(' ')).toEqual([]);
    expect(texts('\t\n')).toEqual([]);
  });

  it('CF-1: a leading byte-order mark is discarded', () => {
    expect(texts('\uFEFF.:53 {\n}')).toEqual(['.:53', '{', '}']);
    expect(tokenize('\uFEFF.', 'Corefile')[0]).toMatchObject({ text: '.', line: 1 });
  });

  it('CF-1: a byte-order mark elsewhere is an ordinary character, not whitespace', () => {
    expect(texts('a \uFEFFb')).toEqual(['a', '\uFEFFb']);
  });

  it('CF-1: \\r is ignored, so CRLF files lex like LF files', () => {
    expect(tokenize('a b\r\nc\r\n', 'Corefile').map((t) => [t.text, t.line])).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 2],
    ]);
  });

  it('CF-1: \\r in the middle of a word is dropped, not a separator', () => {
    expect(texts('ab\rcd')).toEqual(['abcd']);
  });

  it('CF-1: \\r inside a quoted token is dropped too', () => {
    const [token] = tokenize('"a\r\nb"', 'Corefile');
    expect(token).toMatchObject({ text: 'a\nb', line: 1, endLine: 2 });
  });

  it('CF-1: line numbers count \\n, including blank and comment lines', () => {
    expect(lines('a\n\n  b\n# comment\nc d\n\n\ne')).toEqual([1, 3, 5, 5, 8]);
  });

  it('CF-1: every token names the file it was read from', () => {
    for (const token of tokenize('a b\nc', '/etc/coredns/Corefile')) expect(token.file).toBe('/etc/coredns/Corefile');
  });
});

describe('CF-2: whitespace separates tokens; braces are not self-delimiting', () => {
  it('CF-2: braces are only tokens when separated by whitespace', () => {
    expect(texts('. {')).toEqual(['.', '{']);
    expect(texts('.{')).toEqual(['.{']);
    expect(texts('foo{ }bar')).toEqual(['foo{', '}bar']);
    expect(texts('{}')).toEqual(['{}']);
    expect(texts('{ }')).toEqual(['{', '}']);
  });

  it('CF-2: tabs, vertical tab, form feed and Unicode spaces separate tokens (Go unicode.IsSpace)', () => {
    expect(texts('a\tb\vc\fd')).toEqual(['a', 'b', 'c', 'd']);
    expect(texts('a\u00a0b\u2003c\u3000d\u0085e\u2028f')).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  });

  it('CF-2: a zero-width space is not whitespace', () => {
    expect(texts('a\u200bb')).toEqual(['a\u200bb']);
  });

  it('CF-2: unquoted tokens are marked as such and end on their own line', () => {
    expect(tokenize('{', 'Corefile')[0]).toEqual({ text: '{', file: 'Corefile', line: 1, endLine: 1, quoted: false });
  });
});

describe('CF-3: quoting', () => {
  it('CF-3: a quoted token keeps spaces and loses its quotes', () => {
    expect(tokenize('answer "{{ .Name }} 60 IN A 127.0.0.1"', 'Corefile')).toEqual([
      { text: 'answer', file: 'Corefile', line: 1, endLine: 1, quoted: false },
      { text: '{{ .Name }} 60 IN A 127.0.0.1', file: 'Corefile', line: 1, endLine: 1, quoted: true },
    ]);
  });

  it('CF-3: \\" inside quotes is a literal quote', () => {
    expect(texts('"say \\"hi\\""')).toEqual(['say "hi"']);
  });

  it('CF-3: any other backslash is kept as it is', () => {
    expect(texts('"a\\nb"')).toEqual(['a\\nb']);
    expect(texts('"C:\\dir\\file"')).toEqual(['C:\\dir\\file']);
    expect(texts('"^(.*)\\.example\\.org$"')).toEqual(['^(.*)\\.example\\.org$']);
  });

  it('CF-3: an escaped backslash stays two backslashes and does not escape the next quote', () => {
    expect(texts('"a\\\\" b')).toEqual(['a\\\\', 'b']);
  });

  it('CF-3: unquoted backslashes are ordinary characters', () => {
    expect(texts('a\\"b')).toEqual(['a\\"b']);
  });

  it('CF-3: "" is an empty token', () => {
    expect(tokenize('a "" b', 'Corefile').map((t) => [t.text, t.quoted])).toEqual([
      ['a', false],
      ['', true],
      ['b', false],
    ]);
  });

  it('CF-3: a quoted token may span lines; its line is where it starts', () => {
    const tokens = tokenize('a "one\ntwo\nthree" b\nc', 'Corefile');
    expect(tokens.map((t) => [t.text, t.line, t.endLine])).toEqual([
      ['a', 1, 1],
      ['one\ntwo\nthree', 1, 3],
      ['b', 3, 3],
      ['c', 4, 4],
    ]);
  });

  it('CF-3: a " in the middle of an unquoted token is an ordinary character', () => {
    expect(texts('ab"cd ef"')).toEqual(['ab"cd', 'ef"']);
  });

  it('CF-3: a token starts right after a closing quote', () => {
    expect(texts('"a"b')).toEqual(['a', 'b']);
    expect(texts('"a""b"')).toEqual(['a', 'b']);
  });

  it('CF-3: a quoted "{" is marked quoted so the parser can tell it from a brace', () => {
    expect(tokenize('"{"', 'Corefile')[0]).toMatchObject({ text: '{', quoted: true });
  });

  it('CF-3: an unterminated quote is an error at the line where it starts', () => {
    const error = corefileError(() => tokenize('. {\n  whoami "abc\n}\n', 'Corefile'));
    expect(error.file).toBe('Corefile');
    expect(error.line).toBe(2);
    expect(error.message).toBe(`Corefile:2 - Error during parsing: Unterminated quoted string starting '"abc', expecting a closing '"'`);
  });

  it('CF-3: a backslash just before the end of input does not hide the missing quote', () => {
    expect(corefileError(() => tokenize('"abc\\', 'Corefile')).line).toBe(1);
  });
});

describe('CF-4: comments', () => {
  it('CF-4: # starts a comment that runs to the end of the line', () => {
    expect(texts('# heading\na b # trailing words\nc')).toEqual(['a', 'b', 'c']);
  });

  it('CF-4: # starts a comment even mid-token', () => {
    expect(texts('abc#def ghi\nnext')).toEqual(['abc', 'next']);
  });

  it('CF-4: # inside quotes is literal', () => {
    expect(texts('"a # b" c')).toEqual(['a # b', 'c']);
    expect(texts('"a#b"#c d\ne')).toEqual(['a#b', 'e']);
  });

  it('CF-4: a comment at the end of input without a newline', () => {
    expect(texts('a # comment')).toEqual(['a']);
  });

  it('CF-4: a quote inside a comment does not start a quoted token', () => {
    expect(lines('a # "unclosed\nb')).toEqual([1, 2]);
  });

  it('CF-4: a comment after CRLF content keeps line numbers', () => {
    expect(lines('a # x\r\nb\r\n')).toEqual([1, 2]);
  });
});
