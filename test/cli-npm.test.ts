// The documented ways to run clusterdns through npm (README, Run): `npm start`
// and `npx clusterdns`, spawned for real, and what a signal to npm does to
// the server under it (RELOAD-5). npm passes SIGTERM to the `sh -c` it runs the
// command in, not to the server: these tests fail if the server is orphaned.

import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { queryUdp } from './support/dns.ts';
import { freePort, startCommand, type Started } from './support/process.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** A Corefile in its own directory: its path, in every command line, finds the processes serving it. */
function corefileOn(port: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'clusterdns-npm-')), 'Corefile');
  writeFileSync(file, `.:${port} {\n    whoami\n}\n`);
  return file;
}

/** Processes whose command line names `text` (Linux /proc). */
function processesNaming(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    socket.once('error', () => resolve(false));
    socket.bind(port, '::', () => socket.close(() => resolve(true)));
  });
}

async function until(condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return condition();
}

/** Waits until the server answers (npm and npx take a few seconds to start it). */
async function serving(started: Started, port: number): Promise<void> {
  const answered = await until(async () => (await queryUdp(port, 'example.org', { timeoutMs: 300 }).catch(() => null))?.rcode === 'NOERROR', 30_000);
  if (!answered) throw new Error(`not serving on ${port}; stdout: ${started.output().stdout}; stderr: ${started.output().stderr}`);
}

describe('run through npm', () => {
  it('RELOAD-5: npm start -- -conf FILE serves, and SIGTERM to npm stops the server gracefully, exit 0', async () => {
    const port = await freePort();
    const corefile = corefileOn(port);
    const npm = startCommand('npm', ['start', '--', '-conf', corefile], { cwd: ROOT });
    await serving(npm, port);
    npm.child.kill('SIGTERM');
    const result = await npm.exited;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('[INFO] SIGTERM: Shutting down');
    expect(await udpPortFree(port)).toBe(true);
    expect(processesNaming(corefile)).toEqual([]);
  }, 60_000);

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal} to the npx clusterdns process stops the server: the port is free within seconds and no process is left`, async () => {
      const port = await freePort();
      const corefile = corefileOn(port);
      const npx = startCommand('npx', ['clusterdns', '-conf', corefile], { cwd: ROOT });
      try {
        await serving(npx, port);
        npx.child.kill(signal);
        // The server checks its launcher every second, then shuts down as on SIGTERM.
        expect(await until(() => udpPortFree(port), 5_000)).toBe(true);
        expect(await until(() => processesNaming(corefile).length === 0, 5_000)).toBe(true);
        expect(npx.output().stdout).toContain('[INFO] npm, which started clusterdns, is gone: stopping as on SIGTERM\n[INFO] SIGTERM: Shutting down\n');
      } finally {
        for (const pid of processesNaming(corefile)) process.kill(pid, 'SIGKILL');
      }
    }, 60_000);
  }
});
