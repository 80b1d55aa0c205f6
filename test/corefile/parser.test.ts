import { describe, it, expect, afterEach } from 'vitest';
import { parseCorefile, substituteEnv } from '../../src/corefile/parser.ts';
import { CorefileError } from '../../src/corefile/types.ts';
import { setLogSink } from '../../src/log.ts';
import { isDirective, outline, parse, parseError, summary } from './fixtures/helpers.ts';

describe('CF-6: server blocks and keys', () => {
  it('CF-6: a server block has keys and directives in order', () => {
    const { blocks } = parse('.:53 {\n    errors\n    cache 30\n}\n');
    expect(summary(blocks)).toEqual([{ keys: ['.:53'], body: ['errors', 'cache 30'] }]);
    expect(blocks[0]!.keys[0]).toEqual({ text: '.:53', file: 'Corefile', line: 1 });
    expect(blocks[0]!.directives[1]!.name).toEqual({ text: 'cache', file: 'Corefile', line: 3 });
    expect(blocks[0]!.directives[1]!.args).toEqual([{ text: '30', file: 'Corefile', line: 3 }]);
  });

  it('CF-6: empty input, blank lines and comments give no blocks', () => {
    expect(parse('').blocks).toEqual([]);
    expect(parse('\n\n# only a comment\n   \n').blocks).toEqual([]);
  });

  it('CF-6: several server blocks, in order', () => {
    const { blocks } = parse('a.org {\n whoami\n}\nb.org {\n log\n}\n');
    expect(summary(blocks)).toEqual([
      { keys: ['a.org'], body: ['whoami'] },
      { keys: ['b.org'], body: ['log'] },
    ]);
  });

  it('CF-6: several keys on one line', () => {
    expect(summary(parse('example.org:53 example.net:53 {\n whoami\n}').blocks)[0]!.keys).toEqual(['example.org:53', 'example.net:53']);
  });

  it('CF-6: a comma between keys on one line is dropped', () => {
    expect(summary(parse('a.org, b.org {\n whoami\n}').blocks)[0]!.keys).toEqual(['a.org', 'b.org']);
  });

  it('CF-6: a trailing comma continues the key list on the next line', () => {
    const { blocks } = parse('example.org:53,\nexample.net:53 {\n whoami\n}');
    expect(summary(blocks)).toEqual([{ keys: ['example.org:53', 'example.net:53'], body: ['whoami'] }]);
    expect(blocks[0]!.keys[1]!.line).toBe(2);
  });

  it('CF-6: a key list may continue over several lines', () => {
    const { blocks } = parse('a.org,\n  b.org,\n  c.org\n{\n whoami\n}');
    expect(summary(blocks)[0]!.keys).toEqual(['a.org', 'b.org', 'c.org']);
  });

  it('CF-6: a trailing comma followed by { is an error', () => {
    const error = parseError('a.org, {\n whoami\n}');
    expect(error.message).toBe("Corefile:1 - Error during parsing: Expected another address but had '{' - check for extra comma");
  });

  it('CF-6: a trailing comma on the next line before { is an error at the { line', () => {
    const error = parseError('a.org,\n{\n}');
    expect(error.line).toBe(2);
    expect(error.detail).toContain('check for extra comma');
  });

  it('CF-6: a trailing comma at the end of the file is an unexpected EOF', () => {
    const error = parseError('a.org,\n\n');
    expect(error.line).toBe(1);
    expect(error.detail).toBe("Unexpected EOF, expecting another key after ','");
  });

  it('CF-6: without a trailing comma, keys end at the end of the line', () => {
    // The second line is then the first directive of a brace-less block.
    expect(parseError('a.org\nb.org {\n whoami\n}').detail).toBe("Unknown directive 'b.org'");
  });

  it('CF-6: the opening brace may stand on the line after the keys', () => {
    expect(summary(parse('.:53\n{\n  whoami\n}\n').blocks)).toEqual([{ keys: ['.:53'], body: ['whoami'] }]);
  });

  it('CF-6: a single server block without braces', () => {
    const { blocks } = parse('.:53\nwhoami\nlog\nforward . 8.8.8.8 {\n  max_fails 2\n}\n');
    expect(summary(blocks)).toEqual([{ keys: ['.:53'], body: ['whoami', 'log', { 'forward . 8.8.8.8': ['max_fails 2'] }] }]);
  });

  it('CF-6: a file of only keys is a server with no plugins', () => {
    expect(summary(parse('example.org:1053').blocks)).toEqual([{ keys: ['example.org:1053'], body: [] }]);
    expect(summary(parse('a.org,\nb.org').blocks)).toEqual([{ keys: ['a.org', 'b.org'], body: [] }]);
  });

  it('CF-6: an empty block { } is valid and has no directives', () => {
    expect(summary(parse('.:53 {\n}\n').blocks)).toEqual([{ keys: ['.:53'], body: [] }]);
    expect(summary(parse('.:53 { }').blocks)).toEqual([{ keys: ['.:53'], body: [] }]);
  });

  it('CF-6: a block may start on the line where the previous one closed', () => {
    expect(summary(parse('a.org {\n whoami\n} b.org {\n log\n}').blocks).map((b) => b.keys)).toEqual([['a.org'], ['b.org']]);
  });

  it('CF-3: an empty "" key is ignored', () => {
    const { blocks } = parse('"" .:53 "" {\n whoami\n}');
    expect(summary(blocks)[0]!.keys).toEqual(['.:53']);
  });

  it('CF-3: a block whose only key is "" is dropped with a warning (CoreDNS drops it silently)', () => {
    const { blocks, warnings } = parse('"" {\n whoami\n}\n.:53 {\n log\n}');
    expect(summary(blocks)).toEqual([{ keys: ['.:53'], body: ['log'] }]);
    expect(warnings).toEqual(['Corefile:1 - server block without keys ignored']);
  });

  it('CF-6: a block without keys still has its directives checked', () => {
    expect(parseError('{\n  nosuchplugin\n}').detail).toBe("Unknown directive 'nosuchplugin'");
  });

  it('CF-6: a quoted key keeps its spaces (normalisation rejects it later)', () => {
    expect(summary(parse('"a b" {\n}').blocks)[0]!.keys).toEqual(['a b']);
  });
});

describe('CF-7: directive lines and option blocks', () => {
  it('CF-7: a directive and its arguments run to the end of the line', () => {
    expect(outline(parse('. {\n forward . 1.1.1.1 8.8.8.8\n cache\n}').blocks[0]!.directives)).toEqual(['forward . 1.1.1.1 8.8.8.8', 'cache']);
  });

  it('CF-7: a { on the directive line opens its option block', () => {
    const { blocks } = parse('. {\n  health {\n    lameduck 5s\n  }\n  ready\n}');
    expect(outline(blocks[0]!.directives)).toEqual([{ health: ['lameduck 5s'] }, 'ready']);
    expect(blocks[0]!.directives[0]!.block![0]!.name).toEqual({ text: 'lameduck', file: 'Corefile', line: 3 });
    expect(blocks[0]!.directives[1]!.block).toBeNull();
  });

  it('CF-7: an immediately closed { } block gives [] (no options)', () => {
    const directive = parse('. {\n  health {\n  }\n  forward . 1.1.1.1 { }\n}').blocks[0]!.directives;
    expect(directive[0]!.block).toEqual([]);
    expect(directive[1]!.block).toEqual([]);
  });

  it('CF-7: nested blocks of any depth are tracked', () => {
    const text = '. {\n  view a {\n    expr x\n    deeper 1 {\n      deepest 2 {\n        leaf\n      }\n    }\n  }\n  whoami\n}';
    expect(outline(parse(text).blocks[0]!.directives)).toEqual([
      { 'view a': ['expr x', { 'deeper 1': [{ 'deepest 2': ['leaf'] }] }] },
      'whoami',
    ]);
  });

  it('CF-7: a whole server block on one line (CoreDNS rejects this; the reading is unambiguous)', () => {
    expect(summary(parse('. { whoami }').blocks)).toEqual([{ keys: ['.'], body: ['whoami'] }]);
  });

  it('CF-7: an option block on one line, as CoreDNS accepts for forward', () => {
    expect(outline(parse('. {\n  forward . 127.0.0.1 { max_fails 2 }\n}').blocks[0]!.directives)).toEqual([
      { 'forward . 127.0.0.1': ['max_fails 2'] },
    ]);
  });

  it('CF-7: a } at the end of an option line closes the option block', () => {
    expect(outline(parse('. {\n  cache {\n    success 1000 }\n  whoami\n}').blocks[0]!.directives)).toEqual([{ cache: ['success 1000'] }, 'whoami']);
  });

  it('CF-7: closing braces may follow each other on one line', () => {
    expect(summary(parse('. { health { lameduck 5s } }\nexample.org {\n whoami\n}').blocks)).toEqual([
      { keys: ['.'], body: [{ health: ['lameduck 5s'] }] },
      { keys: ['example.org'], body: ['whoami'] },
    ]);
  });

  it('CF-7: a token after a closed option block on the same line is an error', () => {
    const error = parseError('. {\n  forward . 1.1.1.1 { max_fails 2 } 8.8.8.8\n}');
    expect(error.line).toBe(2);
    expect(error.detail).toBe("Unexpected token '8.8.8.8' after '}', expecting the end of the line");
  });

  it('CF-7: an option block { on the next line is an error that says where it must go', () => {
    const error = parseError('.:53 {\n  forward . 1.1.1.1\n  {\n    max_fails 2\n  }\n}');
    expect(error.line).toBe(3);
    expect(error.detail).toBe("Unexpected token '{', expecting a directive (an option block must start on the same line as 'forward')");
  });

  it('CF-7: a { where an option is expected is an error naming the plugin', () => {
    const error = parseError('. {\n  hosts {\n    {\n    }\n  }\n}');
    expect(error.line).toBe(3);
    expect(error.detail).toBe("Unexpected token '{', expecting a property of 'hosts'");
  });

  it("CF-7: a } with nothing open is an error (Unexpected '}')", () => {
    const error = parseError('.:53 {\n  whoami\n}\n}\n');
    expect(error.line).toBe(4);
    expect(error.message).toBe("Corefile:4 - Error during parsing: Unexpected '}' because no matching opening brace");
  });

  it("CF-7: a } in a brace-less block is an error (Unexpected '}')", () => {
    expect(parseError('.:53\nwhoami\n}').detail).toBe("Unexpected '}' because no matching opening brace");
  });

  it('CF-7: a } in place of keys is an error', () => {
    expect(parseError('}').detail).toBe("Unexpected '}' because no matching opening brace");
  });

  it('CF-7/CF-25: end of file inside a server block is an unexpected EOF error', () => {
    const error = parseError('.:53 {\n  whoami\n');
    expect(error.file).toBe('Corefile');
    expect(error.line).toBe(2);
    expect(error.detail).toBe("Unexpected EOF, expecting '}' to close the block opened at Corefile:1");
  });

  it('CF-7: end of file inside an option block names that block', () => {
    const error = parseError('.:53 {\n  health {\n    lameduck 5s\n');
    expect(error.line).toBe(3);
    expect(error.detail).toBe("Unexpected EOF, expecting '}' to close the block opened at Corefile:2");
  });

  it('CF-7: an unknown directive is an error at its line', () => {
    const error = parseError('.:53 {\n  whoami\n  nosuchplugin arg\n}');
    expect(error.line).toBe(3);
    expect(error.message).toBe("Corefile:3 - Error during parsing: Unknown directive 'nosuchplugin'");
  });

  it('CF-7: plugin names are case-sensitive', () => {
    expect(parseError('. {\n  Whoami\n}').detail).toBe("Unknown directive 'Whoami'");
  });

  it('CF-7: option names inside blocks are not checked against the plugin list', () => {
    expect(outline(parse('. {\n  kubernetes {\n    nosuchoption 1\n  }\n}').blocks[0]!.directives)).toEqual([{ kubernetes: ['nosuchoption 1'] }]);
  });

  it('CF-7: isDirective is what decides which names are known', () => {
    const { blocks } = parse('. {\n  myplugin\n}', { isDirective: (name) => name === 'myplugin' });
    expect(outline(blocks[0]!.directives)).toEqual(['myplugin']);
    expect(parseError('. {\n  whoami\n}', { isDirective: (name) => name === 'myplugin' }).detail).toBe("Unknown directive 'whoami'");
  });

  it('CF-2: {} written as one token is an argument, not a block', () => {
    const directive = parse('. {\n  forward . {}\n}').blocks[0]!.directives[0]!;
    expect(directive.args.map((t) => t.text)).toEqual(['.', '{}']);
    expect(directive.block).toBeNull();
  });

  it('CF-2: foo{ is one token, so it opens no block', () => {
    const { blocks } = parse('. {\n  health foo{\n}');
    expect(outline(blocks[0]!.directives)).toEqual(['health foo{']);
  });

  it('CF-3: quoted braces are arguments, not structure', () => {
    const directive = parse('. {\n  template IN A "{" "}"\n}').blocks[0]!.directives[0]!;
    expect(directive.args.map((t) => t.text)).toEqual(['IN', 'A', '{', '}']);
    expect(directive.block).toBeNull();
  });

  it('CF-3: an empty "" argument is passed through', () => {
    const directive = parse('. {\n  log "" x\n}').blocks[0]!.directives[0]!;
    expect(directive.args.map((t) => t.text)).toEqual(['', 'x']);
  });

  it('CF-3: a quoted argument spanning lines does not end the directive line early', () => {
    const directive = parse('. {\n  template IN A "line one\nline two" more\n  whoami\n}').blocks[0]!.directives;
    expect(directive.map((d) => [d.name.text, d.args.map((a) => a.text)])).toEqual([
      ['template', ['IN', 'A', 'line one\nline two', 'more']],
      ['whoami', []],
    ]);
  });

  it('CF-4: comments between and after directives are ignored', () => {
    const text = '.:53 { # the root\n  # errors first\n  errors # to stdout\n  cache 30#seconds\n}';
    expect(outline(parse(text).blocks[0]!.directives)).toEqual(['errors', 'cache 30']);
  });

  it('CF-4: a commented-out closing brace leaves the block open', () => {
    expect(parseError('. {\n  whoami #}\n').detail).toContain('Unexpected EOF');
  });
});

describe('CF-8: repeated directives', () => {
  it('CF-8: every occurrence is kept, in Corefile order', () => {
    const text = '. {\n  log one\n  forward . 1.1.1.1\n  log two\n  forward example.org 2.2.2.2\n  log three\n}';
    expect(outline(parse(text).blocks[0]!.directives)).toEqual([
      'log one',
      'forward . 1.1.1.1',
      'log two',
      'forward example.org 2.2.2.2',
      'log three',
    ]);
  });

  it('CF-8: repeating a once-only plugin is not a parse error (setup reports it)', () => {
    expect(parse('. {\n  kubernetes\n  kubernetes\n}').blocks[0]!.directives).toHaveLength(2);
  });
});

describe('CF-5: environment variables', () => {
  const env = { ZONE: 'example.org', PORT: '1053', UPSTREAM: '8.8.8.8', SPACED: 'a b  c', EMPTY: '', BRACE: '{', REF: '{$ZONE}' };

  it('CF-5: {$NAME} is replaced in keys, directive names and arguments', () => {
    const { blocks } = parse('{$ZONE}:{$PORT} {\n  {$DIR}\n  forward . {$UPSTREAM}\n}', { env: { ...env, DIR: 'whoami' } });
    expect(summary(blocks)).toEqual([{ keys: ['example.org:1053'], body: ['whoami', 'forward . 8.8.8.8'] }]);
  });

  it('CF-5: the Windows form {%NAME%} is replaced too, and both may mix', () => {
    expect(summary(parse('{%ZONE%}:{$PORT} {\n}', { env }).blocks)[0]!.keys).toEqual(['example.org:1053']);
    expect(summary(parse('{$ZONE}:{%PORT%} {\n}', { env }).blocks)[0]!.keys).toEqual(['example.org:1053']);
  });

  it('CF-5: several references in one token, and the same one twice', () => {
    expect(substituteEnv('x{$ZONE}/{%PORT%}/{$ZONE}y', env)).toBe('xexample.org/1053/example.orgy');
  });

  it('CF-5: an unset variable gives the empty string', () => {
    expect(substituteEnv('a{$NOPE}b{%NOPE%}c', env)).toBe('abc');
    expect(parse('. {\n  log {$NOPE}\n}', { env }).blocks[0]!.directives[0]!.args.map((t) => t.text)).toEqual(['']);
  });

  it('CF-5: substitution happens after lexing: a value with spaces stays one token', () => {
    const directive = parse('. {\n  log {$SPACED} end\n}', { env }).blocks[0]!.directives[0]!;
    expect(directive.args.map((t) => t.text)).toEqual(['a b  c', 'end']);
  });

  it('CF-5: a substituted brace is text, not structure', () => {
    const directive = parse('. {\n  log {$BRACE}\n}', { env }).blocks[0]!.directives[0]!;
    expect(directive.args.map((t) => t.text)).toEqual(['{']);
    expect(directive.block).toBeNull();
  });

  it('CF-5: references inside quoted tokens are replaced', () => {
    const directive = parse('. {\n  template IN A "{{ .Name }} {$UPSTREAM}"\n}', { env }).blocks[0]!.directives[0]!;
    expect(directive.args.map((t) => t.text)).toEqual(['IN', 'A', '{{ .Name }} 8.8.8.8']);
  });

  it('CF-5: a reference without its closing part is left alone', () => {
    expect(substituteEnv('{$ZONE', env)).toBe('{$ZONE');
    expect(substituteEnv('{%ZONE}', env)).toBe('{%ZONE}');
    expect(substituteEnv('a{$', env)).toBe('a{$');
  });

  it('CF-5: an empty reference {$} stops substitution there, as in CoreDNS', () => {
    expect(substituteEnv('{$}', env)).toBe('{$}');
    expect(substituteEnv('{$ZONE}{$}{$ZONE}', env)).toBe('example.org{$}{$ZONE}');
  });

  it('CF-5: a value is not scanned again for references', () => {
    expect(substituteEnv('{$REF}', env)).toBe('{$ZONE}');
  });

  it('CF-5: a key from a variable ending in a comma continues the key list', () => {
    expect(summary(parse('{$KEYS}\nb.org {\n}', { env: { KEYS: 'a.org,' } }).blocks)[0]!.keys).toEqual(['a.org', 'b.org']);
  });

  it('CF-5: directive names are checked after substitution', () => {
    expect(parseError('. {\n  {$DIR}\n}', { env: { DIR: 'bogus' } }).detail).toBe("Unknown directive 'bogus'");
  });

  it('CF-5: the environment defaults to process.env', () => {
    process.env.CLUSTERDNS_CF5_TEST_ZONE = 'from-process.example';
    try {
      const blocks = parseCorefile('{$CLUSTERDNS_CF5_TEST_ZONE} {\n}', 'Corefile', { isDirective, warn: () => {} });
      expect(blocks[0]!.keys[0]!.text).toBe('from-process.example');
    } finally {
      delete process.env.CLUSTERDNS_CF5_TEST_ZONE;
    }
  });

  it('CF-5: tokens keep the position of the reference', () => {
    const { blocks } = parse('.\n\nlog {$SPACED}', { env });
    expect(blocks[0]!.directives[0]!.args[0]).toEqual({ text: 'a b  c', file: 'Corefile', line: 3 });
  });
});

describe('CF-9: snippets', () => {
  it('CF-9: a (name) block is a snippet, not a server; import splices its directives', () => {
    const { blocks } = parse('(common) {\n  errors\n  cache 30\n}\n.:53 {\n  import common\n  whoami\n}');
    expect(summary(blocks)).toEqual([{ keys: ['.:53'], body: ['errors', 'cache 30', 'whoami'] }]);
  });

  it('CF-9: snippet tokens keep the position of their definition', () => {
    const { blocks } = parse('(common) {\n  errors\n}\n.:53 {\n  import common\n}', { file: 'main.Corefile' });
    expect(blocks[0]!.directives[0]!.name).toEqual({ text: 'errors', file: 'main.Corefile', line: 2 });
  });

  it('CF-9: a snippet may hold nested blocks and may be used several times', () => {
    const text = '(fwd) {\n  forward . 1.1.1.1 {\n    max_fails 2\n  }\n}\na.org {\n  import fwd\n}\nb.org {\n  import fwd\n  log\n}';
    expect(summary(parse(text).blocks)).toEqual([
      { keys: ['a.org'], body: [{ 'forward . 1.1.1.1': ['max_fails 2'] }] },
      { keys: ['b.org'], body: [{ 'forward . 1.1.1.1': ['max_fails 2'] }, 'log'] },
    ]);
  });

  it('CF-9: a snippet may be imported inside an option block', () => {
    const text = '(opts) {\n  max_fails 2\n  expire 10s\n}\n. {\n  forward . 1.1.1.1 {\n    import opts\n    policy sequential\n  }\n}';
    expect(outline(parse(text).blocks[0]!.directives)).toEqual([{ 'forward . 1.1.1.1': ['max_fails 2', 'expire 10s', 'policy sequential'] }]);
  });

  it('CF-9/CF-10: a snippet may be imported at top level in place of server blocks', () => {
    const text = '(servers) {\n  a.org {\n    whoami\n  }\n  b.org {\n    log\n  }\n}\nimport servers\nc.org {\n}';
    expect(summary(parse(text).blocks).map((b) => b.keys)).toEqual([['a.org'], ['b.org'], ['c.org']]);
  });

  it('CF-9: a line after the import is its own line, not more arguments of the snippet', () => {
    const text = '(s) {\n  log\n}\n. {\n  import s\n  whoami\n}';
    expect(outline(parse(text).blocks[0]!.directives)).toEqual(['log', 'whoami']);
  });

  it('CF-9: snippets may import other snippets defined before them', () => {
    const text = '(a) {\n  log\n}\n(b) {\n  import a\n  errors\n}\n. {\n  import b\n}';
    expect(outline(parse(text).blocks[0]!.directives)).toEqual(['log', 'errors']);
  });

  it('CF-9: a snippet is checked where it is used, not where it is defined', () => {
    const { blocks } = parse('(unused) {\n  nosuchplugin\n}\n. {\n}');
    expect(summary(blocks)).toEqual([{ keys: ['.'], body: [] }]);
    const error = parseError('(bad) {\n  nosuchplugin\n}\n. {\n  import bad\n}');
    expect(error.line).toBe(2);
    expect(error.detail).toBe("Unknown directive 'nosuchplugin'");
  });

  it('CF-9: defining the same snippet twice is an error', () => {
    const error = parseError('(s) {\n  log\n}\n(s) {\n  errors\n}');
    expect(error.line).toBe(4);
    expect(error.detail).toBe('redeclaration of previously declared snippet s (first declared at Corefile:1)');
  });

  it('CF-9: a snippet that imports itself directly is an error at its definition', () => {
    const error = parseError('(loop) {\n  log\n  import loop\n}\n');
    expect(error.line).toBe(3);
    expect(error.detail).toBe('maximum snippet import depth (10000) exceeded: snippet (loop) imports itself');
  });

  it('CF-9: a snippet that imports itself through another is an import cycle', () => {
    const text = '(a) {\n  import b\n}\n(b) {\n  import a\n}\n. {\n  import a\n}';
    const error = parseError(text);
    expect(error.line).toBe(5);
    expect(error.detail).toBe(`Import cycle: (a) -> (b) -> (a)`);
  });

  it('CF-9: a snippet must be defined before it is imported', () => {
    const error = parseError('. {\n  import later\n}\n(later) {\n  log\n}');
    expect(error.line).toBe(2);
    expect(error.detail).toBe('File to import not found: later (no snippet (later) is defined before this line either)');
  });

  it('CF-9: a snippet definition needs braces', () => {
    expect(parseError('(s)\n  log\n').detail).toBe("Unexpected token 'log', expecting '{' to open snippet (s)");
  });

  it('CF-9: end of file inside a snippet definition is an error', () => {
    const error = parseError('(s) {\n  log {\n  }\n');
    expect(error.line).toBe(3);
    expect(error.detail).toBe("Unexpected EOF, expecting '}' to close snippet (s) opened at Corefile:1");
  });

  it('CF-9: (name) among other keys is not a snippet', () => {
    expect(summary(parse('(s) other {\n}').blocks)[0]!.keys).toEqual(['(s)', 'other']);
  });

  it('CF-9: a snippet may be defined on one line', () => {
    expect(outline(parse('(s) { log }\n. {\n  import s\n}').blocks[0]!.directives)).toEqual(['log']);
  });

  it('CF-9: the cap on snippet expansions ends exponential imports', () => {
    // s1 imports s0 twice, s2 imports s1 twice, ... s14 expands 2^14 times.
    let text = '(s0) {\n  log\n}\n';
    for (let i = 1; i <= 14; i++) text += `(s${i}) {\n  import s${i - 1}\n  import s${i - 1}\n}\n`;
    const error = parseError(`${text}. {\n  import s14\n}`);
    expect(error.detail).toBe('maximum snippet import depth (10000) exceeded');
  });
});

describe('CF-10: import syntax', () => {
  it('CF-10: import without an argument is an error', () => {
    const error = parseError('. {\n  import\n  whoami\n}');
    expect(error.line).toBe(2);
    expect(error.message).toBe("Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'import'");
  });

  it('CF-10/CF-25: import with two arguments is an error', () => {
    const error = parseError('(a) {\n}\n. {\n  import a b\n}');
    expect(error.line).toBe(4);
    expect(error.detail).toBe("Import takes only one argument (glob pattern or file), found 'b' after 'a'");
  });

  it('CF-10: import of an empty pattern is an error', () => {
    expect(parseError('. {\n  import ""\n}').detail).toBe('Import requires a non-empty filepath');
    expect(parseError('. {\n  import {$UNSET}\n}').detail).toBe('Import requires a non-empty filepath');
  });

  it('CF-10: import at top level without an argument is an error', () => {
    expect(parseError('import\n. {\n}').detail).toBe("Wrong argument count or unexpected line ending after 'import'");
  });

  it('CF-10: import in the middle of a line is an ordinary argument', () => {
    expect(outline(parse('. {\n  log import x\n}').blocks[0]!.directives)).toEqual(['log import x']);
  });

  it('CF-10: the snippet name is env-substituted', () => {
    expect(outline(parse('(s) {\n  log\n}\n. {\n  import {$WHICH}\n}', { env: { WHICH: 's' } }).blocks[0]!.directives)).toEqual(['log']);
  });

  it('CF-10: after } on the same line, import is a key, as in CoreDNS', () => {
    expect(summary(parse('a.org {\n} import b.org {\n}').blocks).map((b) => b.keys)).toEqual([['a.org'], ['import', 'b.org']]);
  });
});

describe('errors', () => {
  it('every parse error is a CorefileError with file, line and CoreDNS-style message', () => {
    const error = parseError('.:53 {\n  bogus\n}', { file: '/etc/coredns/Corefile' });
    expect(error).toBeInstanceOf(CorefileError);
    expect(error.file).toBe('/etc/coredns/Corefile');
    expect(error.line).toBe(2);
    expect(error.message).toBe("/etc/coredns/Corefile:2 - Error during parsing: Unknown directive 'bogus'");
  });

  it('CF-3: lexer errors surface through the parser', () => {
    expect(parseError('. {\n  log "open\n}\n').line).toBe(2);
  });
});

describe('warnings', () => {
  let restore: ((line: string) => void) | undefined;
  afterEach(() => {
    if (restore) setLogSink(restore);
    restore = undefined;
  });

  it('CF-10: without a warn option, warnings are logged as [WARNING] lines', () => {
    const lines: string[] = [];
    restore = setLogSink((line) => lines.push(line));
    const blocks = parseCorefile('. {\n  import /nonexistent-clusterdns-dir/*.conf\n}', 'Corefile', { isDirective, env: {} });
    expect(blocks).toHaveLength(1);
    expect(lines).toEqual(['[WARNING] No files matching import glob pattern: /nonexistent-clusterdns-dir/*.conf']);
  });
});
