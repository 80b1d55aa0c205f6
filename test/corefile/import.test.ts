import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCorefileFile, MAX_FILE_IMPORTS } from '../../src/corefile/parser.ts';
import { corefileError, isDirective, outline, summary } from './fixtures/helpers.ts';

let dir: string;
let warnings: string[];

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-import-')));
  warnings = [];
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes files under the temp dir (creating folders) and returns the path of the first. */
function write(files: Record<string, string>): string {
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
  return path.join(dir, Object.keys(files)[0]!);
}

function parseFile(file: string, env: Record<string, string> = {}) {
  return parseCorefileFile(file, { isDirective, env, warn: (message) => warnings.push(message) });
}

function fileError(file: string, env: Record<string, string> = {}) {
  return corefileError(() => parseFile(file, env));
}

describe('CF-10: importing files', () => {
  it('CF-10: parseCorefileFile reads the file and names it in tokens', () => {
    const main = write({ Corefile: '.:53 {\n  whoami\n}\n' });
    const blocks = parseFile(main);
    expect(blocks[0]!.directives[0]!.name).toEqual({ text: 'whoami', file: main, line: 2 });
  });

  it('CF-10: a file imported inside a block is spliced in place of the import line', () => {
    const main = write({ Corefile: '.:53 {\n  errors\n  import extra.conf\n  whoami\n}\n', 'extra.conf': 'log\ncache 30\n' });
    expect(summary(parseFile(main))).toEqual([{ keys: ['.:53'], body: ['errors', 'log', 'cache 30', 'whoami'] }]);
  });

  it('CF-10: imported tokens name the imported file (absolute) and their own lines', () => {
    const main = write({ Corefile: '.:53 {\n  import extra.conf\n}\n', 'extra.conf': '\n\nlog\n' });
    const log = parseFile(main)[0]!.directives[0]!.name;
    expect(log).toEqual({ text: 'log', file: path.join(dir, 'extra.conf'), line: 3 });
  });

  it('CF-10: errors in an imported file point into that file', () => {
    const main = write({ Corefile: '.:53 {\n  import extra.conf\n}\n', 'extra.conf': 'log\nbogus\n' });
    const error = fileError(main);
    expect(error.file).toBe(path.join(dir, 'extra.conf'));
    expect(error.line).toBe(2);
    expect(error.message).toBe(`${path.join(dir, 'extra.conf')}:2 - Error during parsing: Unknown directive 'bogus'`);
  });

  it('CF-10: paths are relative to the directory of the importing file, not the working directory', () => {
    const main = write({ 'conf/Corefile': '.:53 {\n  import parts/extra.conf\n}\n', 'conf/parts/extra.conf': 'log\n' });
    expect(path.dirname(main)).not.toBe(process.cwd());
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log']);
  });

  it('CF-10: an absolute path is used as it is', () => {
    const extra = path.join(dir, 'elsewhere', 'extra.conf');
    const main = write({ 'conf/Corefile': `.:53 {\n  import ${extra}\n}\n`, 'elsewhere/extra.conf': 'errors\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['errors']);
  });

  it('CF-10: imported files may import, each relative to its own directory', () => {
    const main = write({
      Corefile: '.:53 {\n  import a/one.conf\n}\n',
      'a/one.conf': 'log\nimport b/two.conf\n',
      'a/b/two.conf': 'errors\nimport ../../three.conf\n',
      'three.conf': 'cache 30\n',
    });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log', 'errors', 'cache 30']);
  });

  it('CF-10: import at top level in place of server blocks', () => {
    const main = write({
      Corefile: 'import servers.conf\n.:53 {\n  whoami\n}\n',
      'servers.conf': 'a.org {\n  log\n}\nb.org {\n  errors\n}\n',
    });
    expect(summary(parseFile(main))).toEqual([
      { keys: ['a.org'], body: ['log'] },
      { keys: ['b.org'], body: ['errors'] },
      { keys: ['.:53'], body: ['whoami'] },
    ]);
  });

  it('CF-10: import inside a nested option block', () => {
    const main = write({
      Corefile: '.:53 {\n  forward . 1.1.1.1 {\n    import forward-options\n    policy sequential\n  }\n}\n',
      'forward-options': 'max_fails 2\nexpire 10s\n',
    });
    expect(outline(parseFile(main)[0]!.directives)).toEqual([{ 'forward . 1.1.1.1': ['max_fails 2', 'expire 10s', 'policy sequential'] }]);
  });

  it('CF-10: the line after an import is a new line even if the file does not end with a newline', () => {
    const main = write({ Corefile: '.:53 {\n  import extra.conf\n  whoami\n}\n', 'extra.conf': 'log' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log', 'whoami']);
  });

  it('CF-10: an imported file may be empty', () => {
    const main = write({ Corefile: '.:53 {\n  import empty.conf\n  whoami\n}\n', 'empty.conf': '' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['whoami']);
  });

  it('CF-10: an import may supply the keys of a block', () => {
    const main = write({ Corefile: 'import keys.conf {\n  whoami\n}\n', 'keys.conf': 'a.org b.org\n' });
    // As in CoreDNS: the import's argument ends its line, so the `{` after it
    // is part of the import line. Keys then come from the file alone.
    expect(corefileError(() => parseFile(main)).detail).toContain('Import takes only one argument');
    const ok = write({ Corefile2: 'import keys2.conf\n{\n  whoami\n}\n', 'keys2.conf': 'a.org b.org\n' });
    expect(summary(parseFile(ok))).toEqual([{ keys: ['a.org', 'b.org'], body: ['whoami'] }]);
  });

  it('CF-5/CF-10: the import pattern is env-substituted', () => {
    const main = write({ Corefile: '.:53 {\n  import {$PART}.conf\n}\n', 'extra.conf': 'log\n' });
    expect(outline(parseFile(main, { PART: 'extra' })[0]!.directives)).toEqual(['log']);
  });

  it('CF-10/CF-25: importing a missing plain file is an error at the import line', () => {
    const main = write({ Corefile: '.:53 {\n  whoami\n  import missing.conf\n}\n' });
    const error = fileError(main);
    expect(error.file).toBe(main);
    expect(error.line).toBe(3);
    expect(error.message).toBe(`${main}:3 - Error during parsing: File to import not found: missing.conf`);
  });

  it('CF-10: a missing file at top level is an error too', () => {
    const main = write({ Corefile: 'import /nonexistent-clusterdns/server.conf\n' });
    expect(fileError(main).detail).toBe('File to import not found: /nonexistent-clusterdns/server.conf');
  });

  it('CF-10: importing a directory is an error', () => {
    const main = write({ Corefile: '.:53 {\n  import sub\n}\n', 'sub/file.conf': 'log\n' });
    const error = fileError(main);
    expect(error.line).toBe(2);
    expect(error.detail).toBe(`Could not import ${path.join(dir, 'sub')}: is a directory`);
  });

  it('CF-10: a file that imports itself is an import cycle', () => {
    const main = write({ Corefile: '.:53 {\n  import Corefile\n}\n' });
    expect(fileError(main).detail).toBe(`Import cycle: ${main} -> ${main}`);
  });

  it('CF-10: files that import each other are an import cycle, reported in the file that closes it', () => {
    const main = write({ Corefile: '.:53 {\n  import a.conf\n}\n', 'a.conf': 'log\nimport b.conf\n', 'b.conf': 'errors\nimport a.conf\n' });
    const error = fileError(main);
    const a = path.join(dir, 'a.conf');
    const b = path.join(dir, 'b.conf');
    expect(error.file).toBe(b);
    expect(error.line).toBe(2);
    expect(error.detail).toBe(`Import cycle: ${a} -> ${b} -> ${a}`);
  });

  it('CF-10: the same file may be imported several times when it is no cycle', () => {
    const main = write({ Corefile: 'a.org {\n  import common.conf\n}\nb.org {\n  import common.conf\n}\n', 'common.conf': 'log\n' });
    expect(summary(parseFile(main)).map((b) => b.body)).toEqual([['log'], ['log']]);
  });

  it('CF-10: the cap on file imports ends exponential imports', () => {
    // f1 imports f0 twice, ..., f14 expands to 2^14 imports, more than the cap.
    const files: Record<string, string> = { Corefile: '.:53 {\n  import f14\n}\n', f0: '' };
    for (let i = 1; i <= 14; i++) files[`f${i}`] = `import f${i - 1}\nimport f${i - 1}\n`;
    const error = fileError(write(files));
    expect(error.detail).toBe(`maximum file import depth (${MAX_FILE_IMPORTS}) exceeded`);
  });

  it('CF-3: an unterminated quote in an imported file is reported in that file', () => {
    const main = write({ Corefile: '.:53 {\n  import extra.conf\n}\n', 'extra.conf': 'log\nlog "open\n' });
    const error = fileError(main);
    expect([error.file, error.line]).toEqual([path.join(dir, 'extra.conf'), 2]);
  });
});

describe('CF-10: globs', () => {
  it('CF-10: a glob imports every match, in sorted order', () => {
    const main = write({ Corefile: '.:53 {\n  import conf.d/*.conf\n}\n', 'conf.d/b.conf': 'errors\n', 'conf.d/a.conf': 'log\n', 'conf.d/c.txt': 'cache\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log', 'errors']);
  });

  it('CF-10: a glob with no match only warns', () => {
    const main = write({ Corefile: '.:53 {\n  import custom/*.override\n  whoami\n}\nimport custom/*.server\n' });
    expect(summary(parseFile(main))).toEqual([{ keys: ['.:53'], body: ['whoami'] }]);
    expect(warnings).toEqual(['No files matching import glob pattern: custom/*.override', 'No files matching import glob pattern: custom/*.server']);
  });

  it('CF-10: ? matches one character', () => {
    const main = write({ Corefile: '.:53 {\n  import part?.conf\n}\n', 'part1.conf': 'log\n', 'part22.conf': 'errors\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log']);
  });

  it('CF-10: * matches dot files, as Go globs do', () => {
    const main = write({ Corefile: '.:53 {\n  import d/*\n}\n', 'd/.hidden': 'log\n', 'd/visible': 'errors\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log', 'errors']);
  });

  it('CF-10: the wildcard may be in a directory part of the path', () => {
    const main = write({ Corefile: '.:53 {\n  import */zone.conf\n}\n', 'a/zone.conf': 'log\n', 'b/zone.conf': 'errors\n', 'c/other.conf': 'cache\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log', 'errors']);
  });

  it('CF-10: glob matches are imported at top level as server blocks', () => {
    const main = write({ Corefile: 'import servers/*.server\n', 'servers/a.server': 'a.org {\n  log\n}\n', 'servers/b.server': 'b.org {\n  errors\n}\n' });
    expect(summary(parseFile(main)).map((b) => b.keys)).toEqual([['a.org'], ['b.org']]);
  });

  it('CF-10: a glob that matches a directory is an error', () => {
    const main = write({ Corefile: '.:53 {\n  import d/*\n}\n', 'd/sub/x': 'log\n' });
    expect(fileError(main).detail).toBe(`Could not import ${path.join(dir, 'd/sub')}: is a directory`);
  });

  it('CF-10: a glob may have at most one *', () => {
    const main = write({ Corefile: '.:53 {\n  import */*.conf\n}\n' });
    const error = fileError(main);
    expect(error.line).toBe(2);
    expect(error.detail).toBe(`Glob pattern may only contain one wildcard (*), but has others: ${path.join(dir, '*/*.conf')}`);
  });

  it('CF-10: a glob may have at most one ?', () => {
    expect(fileError(write({ Corefile: '.:53 {\n  import a??.conf\n}\n' })).detail).toContain('Glob pattern may only contain one wildcard');
  });

  it('CF-10: one * and one ? together are allowed', () => {
    const main = write({ Corefile: '.:53 {\n  import ?-*.conf\n}\n', '1-a.conf': 'log\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log']);
  });

  it('CF-10: a [...] class is not allowed', () => {
    expect(fileError(write({ Corefile: '.:53 {\n  import [ab].conf\n}\n' })).detail).toContain('Glob pattern may only contain one wildcard');
    expect(fileError(write({ Corefile2: '.:53 {\n  import [ab.conf\n}\n' })).detail).toBe('Failed to use import pattern [ab.conf: syntax error in pattern (unclosed \'[\')');
  });

  it('CF-10: a glob counts as one import however many files it matches', () => {
    const files: Record<string, string> = { Corefile: '.:53 {\n  import many/*\n}\n' };
    for (let i = 0; i < 50; i++) files[`many/${String(i).padStart(2, '0')}`] = '';
    expect(parseFile(write(files))).toHaveLength(1);
  });

  it('CF-10: a glob that matches the importing file is an import cycle', () => {
    const main = write({ 'main.conf': '.:53 {\n  import *.conf\n}\n' });
    expect(fileError(main).detail).toBe(`Import cycle: ${main} -> ${main}`);
  });
});

describe('CF-9/CF-10: snippets across files', () => {
  it('CF-9: a snippet defined in the main file can be used in an imported file', () => {
    const main = write({ Corefile: '(common) {\n  log\n}\nimport site.conf\n', 'site.conf': 'example.org {\n  import common\n}\n' });
    expect(summary(parseFile(main))).toEqual([{ keys: ['example.org'], body: ['log'] }]);
  });

  it('CF-9: a snippet defined in an imported file can be used after the import', () => {
    const main = write({ Corefile: 'import snippets.conf\n.:53 {\n  import common\n}\n', 'snippets.conf': '(common) {\n  errors\n}\n' });
    expect(summary(parseFile(main))).toEqual([{ keys: ['.:53'], body: ['errors'] }]);
  });

  it('CF-9: a snippet name wins over a file of the same name', () => {
    const main = write({ Corefile: '(common) {\n  log\n}\n.:53 {\n  import common\n}\n', common: 'errors\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log']);
  });

  it('CF-10: a snippet may import files, relative to the file that defines it', () => {
    const main = write({ 'conf/Corefile': 'import ../lib/snippets.conf\n.:53 {\n  import withfile\n}\n', 'lib/snippets.conf': '(withfile) {\n  import part.conf\n}\n', 'lib/part.conf': 'log\n' });
    expect(outline(parseFile(main)[0]!.directives)).toEqual(['log']);
  });
});
