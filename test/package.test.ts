// The published package, as a user gets it: `npm pack` (which builds dist/),
// installed into a fresh project with no dev dependencies, then the command
// through npx, the embedding example as a plain ESM program, a strict
// TypeScript program against the shipped declarations, and a global install.
// npm takes the production dependencies from its cache when it can
// (--prefer-offline), from the registry otherwise.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/process.ts';
import { queryTcp, queryUdp } from './support/dns.ts';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-package-'));
const project = path.join(work, 'project');
let tarball = '';

/** Node 24 (the pinned `node` package) first on PATH, as `npm test` has it. */
const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH}`, npm_config_loglevel: 'error' };

beforeAll(async () => {
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', work], { cwd: REPO, env, maxBuffer: 1 << 24 });
  tarball = path.join(work, stdout.trim().split('\n').at(-1)!);
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project, env });
}, 180_000);

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

describe('npm package', () => {
  it('holds what runs: compiled JavaScript, declarations, bin, READMEs; no sources, tests or benchmarks', async () => {
    const { stdout } = await run('tar', ['tzf', tarball]);
    const files = stdout.trim().split('\n').map((name) => name.replace(/^package\//, ''));
    expect(files).toContain('bin/clusterdns.js');
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/index.d.ts');
    expect(files).toContain('dist/plugins/kubernetes/memory-source.js');
    expect(files).toContain('plugins/kubernetes/README.md');
    expect(files.filter((name) => /^(test|bench|src)\//.test(name) || name.endsWith('.ts') && !name.endsWith('.d.ts'))).toEqual([]);
    const manifest = JSON.parse(fs.readFileSync(path.join(project, 'node_modules/clusterdns/package.json'), 'utf8'));
    expect(manifest.engines.node).toBe('>=22.19.0');
    // A dependency installed by a user brings no dev dependencies.
    expect(fs.existsSync(path.join(project, 'node_modules/vitest'))).toBe(false);
    // The native UDP listener comes as source and is built by the package's install script (node-gyp).
    expect(files).toEqual(expect.arrayContaining(['binding.gyp', 'native/udp_listener.c']));
    expect(files.filter((name) => name.startsWith('build/'))).toEqual([]);
    if (process.env.CLUSTERDNS_REQUIRE_NATIVE_UDP === '1') {
      expect(fs.existsSync(path.join(project, 'node_modules/clusterdns/build/Release/udp_listener.node'))).toBe(true);
    }
  });

  it('CF-21: `npx clusterdns -conf FILE` serves from node_modules, and stops on SIGTERM', async () => {
    const port = await freePort();
    fs.cpSync(path.join(REPO, 'examples/cluster'), path.join(project, 'cluster'), { recursive: true });
    fs.writeFileSync(path.join(project, 'Corefile'), `.:${port} {\n    kubernetes cluster.local {\n        manifests cluster\n    }\n}\n`);
    // Its own process group, so the signal reaches npx and the server it runs alike.
    const child = spawn('npx', ['clusterdns', '-conf', 'Corefile'], { cwd: project, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    // npm itself dies of the signal; what matters is that the server it started shuts down and lets go of the port.
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    try {
      for (let waited = 0; !output.includes('clusterdns-0.1.0') && waited < 15_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(output).toContain(`.:${port}`);
      const reply = await queryUdp(port, 'web.demo.svc.cluster.local.');
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.answers?.[0]).toMatchObject({ type: 'A', data: '10.96.100.10' });
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
    await closed;
    expect(output).toContain('[INFO] SIGTERM: Shutting down');
    await expect(queryTcp(port, 'web.demo.svc.cluster.local.')).rejects.toThrow(/ECONNREFUSED/);
  }, 30_000);

  it('the embedding example runs as a plain ESM program and exits by itself', async () => {
    fs.copyFileSync(path.join(REPO, 'examples/embed/index.mjs'), path.join(project, 'index.mjs'));
    const { stdout } = await run(process.execPath, ['index.mjs'], { cwd: project, env, timeout: 15_000 });
    expect(stdout).toMatch(/^serving on 127\.0\.0\.1:\d+\nweb: \[ '10\.96\.0\.80' \]\napi: \[ '10\.96\.0\.81' \]\nweb after delete: NXDOMAIN\nclosed\n$/);
  }, 20_000);

  it('a strict TypeScript program type-checks against the shipped declarations', async () => {
    fs.writeFileSync(path.join(project, 'consumer.ts'), `
import { createCluster, definePlugin, emptyReply, Rcode, startServer, type ClusterDnsServer, type Listener, type Resolution } from 'clusterdns';

const plugin = definePlugin<{ zone: string }>({
  name: 'nxall',
  parse: (directives, block) => ({ zone: directives[0]?.args[0]?.text ?? block.zones[0] ?? '.' }),
  create: (config, _block, log) => ({
    serve: (request, next) => {
      log.debug(config.zone);
      return request.query.qname.endsWith(config.zone) ? emptyReply(Rcode.NXDOMAIN) : next(request);
    },
  }),
});

export async function main(): Promise<Resolution> {
  const cluster = createCluster();
  cluster.apply({ kind: 'Namespace', metadata: { name: 'demo' } });
  const server: ClusterDnsServer = await startServer({
    corefile: '.:0 {\\n  nxall test.\\n  kubernetes cluster.local {\\n    memory\\n  }\\n}\\n',
    clusters: { default: cluster },
    plugins: [{ plugin, before: 'kubernetes' }],
    log: (line: string) => void line,
  });
  const listeners: readonly Listener[] = server.listeners;
  const port: number = listeners[0]!.port;
  void port;
  await server.reload('.:0 {\\n  whoami\\n}\\n');
  const answer = await server.resolve('x.test', 'AAAA', { transport: 'tcp', from: '10.0.0.1' });
  await server.close();
  return answer;
}
`);
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext',
        types: ['node'], typeRoots: [path.join(REPO, 'node_modules/@types')], exactOptionalPropertyTypes: true,
      },
      files: ['consumer.ts'],
    }));
    const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, env }).catch((error) => error);
    expect(`${result.stdout ?? ''}${result.stderr ?? ''}`).toBe('');
  }, 60_000);

  it('`npm install -g` gives a working clusterdns command', async () => {
    const prefix = path.join(work, 'global');
    await run('npm', ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, tarball], { cwd: work, env });
    const { stdout } = await run(path.join(prefix, 'bin/clusterdns'), ['-version'], { env });
    expect(stdout).toMatch(/^clusterdns-0\.1\.0\nlinux\/\w+, node v\d+/);
  }, 120_000);
});
