#!/usr/bin/env node
// Entry point of the `clusterdns` command. In the repository it runs the
// TypeScript sources, which needs Node's built-in type stripping (Node 24);
// the published package runs the JavaScript built into dist/ (`npm run build`).
import { existsSync } from 'node:fs';
import module from 'node:module';

const sources = new URL('../src/main.ts', import.meta.url);
const fromSources = existsSync(sources);
// The package's floor is @kubernetes/client-node's HTTP client (undici 8): Node 22.19.
const [needMajor, needMinor] = fromSources ? [24, 0] : [22, 19];
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  process.stderr.write(
    `clusterdns needs Node.js ${needMajor}.${needMinor} or newer${fromSources ? ' to run from its sources' : ''}; this is ${process.version}.\n` +
      (fromSources ? 'In the repository, run it through npm (npx clusterdns, npm start), which uses the pinned Node 24.\n' : ''),
  );
  process.exit(1);
}
// From the sources: V8's compiled code and the type-stripped text cached on
// disk under the OS's temporary directory, so a warm start costs ~0.4 instead
// of ~1 CPU-second and ~30 MiB less memory (Node's TypeScript stripper is then
// never loaded). NODE_COMPILE_CACHE moves it, NODE_DISABLE_COMPILE_CACHE=1
// turns it off. The package (dist/, the image) writes nothing at run time, so
// that a read-only root file system works (STOCK-7).
if (fromSources) module.enableCompileCache?.();
const { main } = await import(fromSources ? sources.href : new URL('../dist/src/main.js', import.meta.url).href);
process.exit(await main(process.argv.slice(2)));
