// The clusterdns command as a user runs it (CF-21, WHOAMI-2, CF-14 exit codes).

import dgram from 'node:dgram';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { queryTcp, queryUdp } from './support/dns.ts';
import { freePort, runCli, startCli } from './support/process.ts';
import { builtinPlugins } from '../src/registry.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'clusterdns-cli-'));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('flags (CF-21)', () => {
  it('-version prints the version and exits 0', async () => {
    const result = await runCli(['-version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^clusterdns-\d+\.\d+\.\d+\n/);
  });

  for (const flag of ['-h', '-help', '--help']) {
    it(`${flag} prints the usage to stdout and exits 0`, async () => {
      const result = await runCli([flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage of clusterdns:\n {2}-conf string\n/);
      expect(result.stderr).toBe('');
    });
  }

  it('-h ends parsing, as in Go: what follows it is not looked at', async () => {
    const result = await runCli(['-h', '-nosuchflag', 'extra']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage of clusterdns:');
  });

  it('CF-15, CF-16: -plugins lists the plugins sorted by name, as CoreDNS does, then says the order they run in', async () => {
    const result = await runCli(['-plugins']);
    expect(result.code).toBe(0);
    const listed = result.stdout.split('\n').filter((line) => line.startsWith('  dns.'));
    for (const name of ['bind', 'errors', 'log', 'whoami']) expect(listed).toContain(`  dns.${name}`);
    expect(listed).toEqual([...listed].sort());
    expect(result.stdout).toMatch(/^Server types:\n {2}dns\n\nCaddyfile loaders:\n {2}flag\n {2}default\n\nOther plugins:\n {2}dns\.\w+\n/);
    expect(result.stdout).toMatch(
      new RegExp(`\\n {2}dns\\.whoami\\n\\nThe list above is sorted by name\\. The order plugins run in, whatever their order in the Corefile:\\n {2}${builtinPlugins.implemented().join(' ')}\\n$`),
    );
    expect(builtinPlugins.implemented().join(' ')).toMatch(/^(\w+ )*reload .*bind .*ready .*health .*prometheus .*errors .*log .*loadbalance .*cache .*hosts .*kubernetes .*loop forward .*whoami$/);
  });

  it('an unknown flag exits 2 with the usage', async () => {
    const result = await runCli(['-nosuchflag']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('flag provided but not defined: -nosuchflag');
    expect(result.stderr).toContain('-conf string');
  });

  it('extra positional arguments are fatal', async () => {
    const result = await runCli(['-conf', 'Corefile', 'extra']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('extra command line arguments: extra');
  });
});

describe('Corefile errors exit non-zero with file:line (CF-14, CF-25)', () => {
  it('an unknown directive names the file, line and token', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'Corefile'), '.:1053 {\n    whoami\n    nosuchplugin\n}\n');
    const result = await runCli(['-conf', join(dir, 'Corefile')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${join(dir, 'Corefile')}:3 - Error during parsing: Unknown directive 'nosuchplugin'`);
  });

  it('a missing -conf file is fatal', async () => {
    const result = await runCli(['-conf', '/nonexistent/Corefile']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('/nonexistent/Corefile');
  });

  it('a plugin used twice where CoreDNS allows one is fatal', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'Corefile'), '.:1053 {\n    errors\n    errors\n}\n');
    const result = await runCli(['-conf', join(dir, 'Corefile')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(':3 - Error during parsing: plugin/errors: this plugin can only be used once per Server Block');
  });

  it('CF-14: a port another program holds is fatal, naming the Corefile line of the key, the transport and the address', async () => {
    const port = await freePort();
    // A socket without SO_REUSEPORT, as most programs bind.
    const holder = dgram.createSocket('udp6');
    await new Promise<void>((resolve) => holder.bind(port, '::', resolve));
    try {
      const dir = tempDir();
      const corefile = join(dir, 'Corefile');
      writeFileSync(corefile, `example.org:${await freePort()} {\n whoami\n}\n\nexample.net:${port} {\n whoami\n}\n`);
      const second = await runCli(['-conf', corefile]);
      expect(second.code).toBe(1);
      expect(second.stderr).toBe(`[FATAL] ${corefile}:5 - server block 'example.net:${port}': listen udp :${port}: bind: address already in use\n`);
    } finally {
      holder.close();
    }
  });

  it('a second instance on the same port starts, as CoreDNS (SO_REUSEPORT), and serves when the first stops', async () => {
    const port = await freePort();
    const corefile = `.:${port} {\n whoami\n}\n`;
    const first = startCli(['-conf', 'stdin'], { input: corefile });
    await first.waitForOutput(/clusterdns-\d/);
    const second = startCli(['-conf', 'stdin'], { input: corefile });
    try {
      await second.waitForOutput(/clusterdns-\d/);
      first.child.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);
      expect((await queryUdp(port, 'after.example', { timeoutMs: 1000 })).rcode).toBe('NOERROR');
      expect((await queryTcp(port, 'after.example')).rcode).toBe('NOERROR');
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });

  it('HEALTH-1: a health, ready or prometheus port already in use is fatal, naming the plugin and its Corefile line', async () => {
    const net = await import('node:net');
    const holder = net.createServer();
    const taken = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as { port: number }).port)));
    try {
      const dir = tempDir();
      const corefile = join(dir, 'Corefile');
      for (const [plugin, line] of [['health', 3], ['ready', 4], ['prometheus', 5]] as const) {
        const addresses = { health: `127.0.0.1:${await freePort()}`, ready: `127.0.0.1:${await freePort()}`, prometheus: `127.0.0.1:${await freePort()}`, [plugin]: `127.0.0.1:${taken}` };
        writeFileSync(corefile, `.:${await freePort()} {
 whoami
 health ${addresses.health}
 ready ${addresses.ready}
 prometheus ${addresses.prometheus}
}
`);
        const result = await runCli(['-conf', corefile]);
        expect(result.code, plugin).toBe(1);
        expect(result.stderr).toBe(`[FATAL] ${corefile}:${line} - plugin/${plugin}: listen tcp 127.0.0.1:${taken}: bind: address already in use\n`);
      }
    } finally {
      holder.close();
    }
  });

  it('CF-14: a manifests path that does not exist is a setup error naming the Corefile line and the plugin', async () => {
    const dir = tempDir();
    const corefile = join(dir, 'Corefile');
    writeFileSync(corefile, `.:${await freePort()} {\n    kubernetes cluster.local {\n        ttl 5\n        manifests nosuch.yaml\n    }\n}\n`);
    const result = await runCli(['-conf', corefile]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `[FATAL] ${corefile}:4 - Error during parsing: plugin/kubernetes: manifests: stat ${join(dir, 'nosuch.yaml')}: no such file or directory\n`,
    );
  });
});

describe('a Corefile with no server blocks (CF-21)', () => {
  for (const [what, text] of [['empty', ''], ['comment-only', '# nothing here yet\n\n   # still nothing\n']]) {
    it(`${what}: CoreDNS's default (whoami and log on -dns.port) with a warning naming the file; the pidfile goes at exit`, async () => {
      const dir = tempDir();
      const corefile = join(dir, 'Corefile');
      const pidfile = join(dir, 'clusterdns.pid');
      writeFileSync(corefile, text);
      const port = await freePort();
      const server = startCli(['-conf', corefile, '-dns.port', String(port), '-pidfile', pidfile]);
      await server.waitForOutput(/clusterdns-\d/);
      expect(server.output().stdout).toContain(
        `[WARNING] ${corefile} has no server blocks: serving the default configuration (whoami and log on .:${port}), as CoreDNS does\n.:${port}\n`,
      );
      const reply = await queryUdp(port, 'example.com', { id: 4321 });
      expect(reply.additionals![0]).toMatchObject({ type: 'A', data: '127.0.0.1' });
      await server.waitForOutput(/\[INFO\] 127\.0\.0\.1:\d+ - 4321 "A IN example\.com\. udp/);
      expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(server.child.pid));
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
      expect(existsSync(pidfile)).toBe(false);
    });
  }

  it('RELOAD-5: SIGQUIT exits at once, and the pidfile goes with the process', async () => {
    const dir = tempDir();
    const pidfile = join(dir, 'clusterdns.pid');
    const port = await freePort();
    const server = startCli(['-conf', 'stdin', '-pidfile', pidfile], { input: `.:${port} {\n whoami\n}\n` });
    await server.waitForOutput(/clusterdns-\d/);
    expect(existsSync(pidfile)).toBe(true);
    server.child.kill('SIGQUIT');
    expect((await server.exited).code).toBe(1);
    expect(existsSync(pidfile)).toBe(false);
  });

  it('a worker that fails startup ends the primary with exit 1 and no pidfile left', async () => {
    const dir = tempDir();
    const pidfile = join(dir, 'clusterdns.pid');
    writeFileSync(join(dir, 'Corefile'), '.:0 {\n    nosuchplugin\n}\n');
    const result = await runCli(['-conf', join(dir, 'Corefile'), '-pidfile', pidfile], { env: { CLUSTERDNS_WORKERS: '2' } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Unknown directive 'nosuchplugin'");
    expect(existsSync(pidfile)).toBe(false);
  });
});

describe('manifests', () => {
  it('a manifest of a kind the source does not read is reported at start and again at each re-read of changed files', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'cluster'));
    writeFileSync(join(dir, 'cluster', 'web.yaml'), 'kind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.1.1}\n---\nkind: Deployment\nmetadata: {name: web}\n');
    const port = await freePort();
    writeFileSync(join(dir, 'Corefile'), `cluster.local:${port} {\n    kubernetes {\n        manifests cluster\n    }\n}\n`);
    const server = startCli(['-conf', join(dir, 'Corefile')]);
    try {
      const ignoring = (kinds: string) => `[INFO] plugin/kubernetes: ignoring ${kinds} (only Namespace, Service, Pod, StatefulSet, EndpointSlice and Endpoints are read)\n`;
      await server.waitForOutput(/clusterdns-\d/);
      expect(server.output().stdout).toContain(ignoring('1 Deployment'));
      // A misspelt kind added later is reported as well...
      writeFileSync(join(dir, 'cluster', 'typo.yaml'), 'kind: Servcie\nmetadata: {name: api}\n');
      await server.waitForOutput(ignoring('1 Deployment, 1 Servcie'));
      // ...and again at the next change.
      writeFileSync(join(dir, 'cluster', 'typo.yaml'), 'kind: Servcie\nmetadata: {name: api2}\n');
      await server.waitForOutput(new RegExp(`(${escapeRegExp(ignoring('1 Deployment, 1 Servcie'))}[^]*){2}`));
      expect((await queryUdp(port, 'web.default.svc.cluster.local')).answers![0]).toMatchObject({ type: 'A', data: '10.96.1.1' });
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});

describe('serving', () => {
  it('-conf stdin reads the Corefile from a pipe; the banner lists zones; SIGTERM exits 0', async () => {
    const port = await freePort();
    const server = startCli(['-conf', 'stdin'], { input: `example.org:${port} {\n    whoami\n}\n` });
    await server.waitForOutput(/clusterdns-\d/);
    expect(server.output().stdout).toContain(`example.org.:${port}`);
    expect((await queryUdp(port, 'www.example.org')).rcode).toBe('NOERROR');
    expect((await queryTcp(port, 'www.example.org')).rcode).toBe('NOERROR');
    server.child.kill('SIGTERM');
    const result = await server.exited;
    expect(result.code).toBe(0);
  });

  it('WHOAMI-2: with no Corefile it serves whoami and log on -dns.port; SIGINT exits 0', async () => {
    const port = await freePort();
    const cwd = tempDir();
    const server = startCli(['-dns.port', String(port)], { cwd });
    await server.waitForOutput(`.:${port}`);
    const reply = await queryUdp(port, 'example.com', { id: 321 });
    expect(reply.additionals![0]).toMatchObject({ type: 'A', data: '127.0.0.1' });
    await server.waitForOutput(/\[INFO\] 127\.0\.0\.1:\d+ - 321 "A IN example\.com\. udp/);
    server.child.kill('SIGINT');
    expect((await server.exited).code).toBe(0);
  });

  it('-quiet hides the banner; -pidfile writes the pid and removes it at exit', async () => {
    const port = await freePort();
    const dir = tempDir();
    const pidfile = join(dir, 'clusterdns.pid');
    const server = startCli(['-conf', 'stdin', '-quiet', '-pidfile', pidfile], { input: `.:${port} {\n whoami\n}\n` });
    let reply = null;
    for (let i = 0; i < 50 && reply === null; i++) reply = await queryUdp(port, 'q.test', { timeoutMs: 200 }).catch(() => null);
    expect(reply?.rcode).toBe('NOERROR');
    expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(server.child.pid));
    expect(server.output().stdout).toBe('');
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(existsSync(pidfile)).toBe(false);
  });

  it('-dns.port sets the port of keys without one; an explicit key port wins', async () => {
    const [flagPort, keyPort] = [await freePort(), await freePort()];
    const server = startCli(['-conf', 'stdin', '-dns.port', String(flagPort)], {
      input: `example.org {\n whoami\n}\nexample.net:${keyPort} {\n whoami\n}\n`,
    });
    await server.waitForOutput(/clusterdns-\d/);
    expect(server.output().stdout).toContain(`example.org.:${flagPort}`);
    expect(server.output().stdout).toContain(`example.net.:${keyPort}`);
    expect((await queryUdp(flagPort, 'a.example.org')).rcode).toBe('NOERROR');
    expect((await queryUdp(keyPort, 'a.example.net')).rcode).toBe('NOERROR');
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});
