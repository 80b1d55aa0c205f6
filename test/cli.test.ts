// The clusterdns command as a user runs it (CF-21, WHOAMI-2, CF-14 exit codes).

import { mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { queryTcp, queryUdp } from './support/dns.ts';
import { freePort, runCli, startCli } from './support/process.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'clusterdns-cli-'));
}

describe('flags (CF-21)', () => {
  it('-version prints the version and exits 0', async () => {
    const result = await runCli(['-version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^clusterdns-\d+\.\d+\.\d+\n/);
  });

  it('-plugins lists the plugins this build has', async () => {
    const result = await runCli(['-plugins']);
    expect(result.code).toBe(0);
    for (const name of ['bind', 'errors', 'log', 'whoami']) expect(result.stdout).toContain(`dns.${name}`);
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

  it('a port already in use is fatal', async () => {
    const port = await freePort();
    const first = startCli(['-conf', 'stdin', '-quiet'], { input: `.:${port} {\n whoami\n}\n` });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (let i = 0; i < 40 && (await queryUdp(port, 'x.test', { timeoutMs: 200 }).catch(() => null)) === null; i++);
      const second = await runCli(['-conf', 'stdin'], { input: `.:${port} {\n whoami\n}\n` });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/EADDRINUSE|address already in use/);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
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
