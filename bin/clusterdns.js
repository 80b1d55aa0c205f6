#!/usr/bin/env node
// Entry point of the `clusterdns` command. The sources are TypeScript run by
// Node's built-in type stripping, which needs Node.js 24 or newer.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(
    `clusterdns needs Node.js 24 or newer; this is ${process.version}.\n` +
      'Run it through npm (npx clusterdns, npm start) in the project, which uses the pinned Node 24.\n',
  );
  process.exit(1);
}
const { main } = await import('../src/main.ts');
process.exit(await main(process.argv.slice(2)));
