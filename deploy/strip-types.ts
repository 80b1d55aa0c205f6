// Turns the TypeScript sources of an image into plain JavaScript, in place:
// Node would otherwise load its type stripper (about 17 MB of RSS) at every
// start of the container. Run in the image build on a copy of bin/, src/ and
// plugins/; the repository itself keeps running the .ts files directly.
//
//   node deploy/strip-types.ts DIR...

import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { join } from 'node:path';

/** `from './x.ts'`, `import('./x.ts')`: relative specifiers only; packages are untouched. */
const RELATIVE_TS = /((?:\bfrom|\bimport)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+?)\.ts\2/g;

function rewrite(source: string): string {
  return source.replace(RELATIVE_TS, (_match, before: string, quote: string, path: string) => `${before}${quote}${path}.js${quote}`);
}

function walk(directory: string): void {
  for (const entry of readdirSync(directory)) {
    const path = join(directory, entry);
    if (statSync(path).isDirectory()) {
      walk(path);
    } else if (path.endsWith('.ts')) {
      const javascript = stripTypeScriptTypes(readFileSync(path, 'utf8'), { mode: 'strip' });
      writeFileSync(path.slice(0, -3) + '.js', rewrite(javascript));
      rmSync(path);
    } else if (path.endsWith('.js')) {
      writeFileSync(path, rewrite(readFileSync(path, 'utf8')));
    }
  }
}

for (const directory of process.argv.slice(2)) walk(directory);
