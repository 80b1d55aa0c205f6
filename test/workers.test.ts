// CLUSTERDNS_WORKERS (src/workers.ts): opt-in worker processes sharing the DNS port.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workerCount } from '../src/workers.ts';
import { queryTcp, queryUdp } from './support/dns.ts';
import { freePort, runCli, startCli } from './support/process.ts';

describe('CLUSTERDNS_WORKERS', () => {
  it('is one process unless set; a count or "auto"; anything else is an error', () => {
    expect(workerCount(undefined)).toBe(1);
    expect(workerCount('')).toBe(1);
    expect(workerCount('3')).toBe(3);
    expect(workerCount('auto')).toBe(availableParallelism());
    for (const bad of ['0', '-1', '1.5', 'two', '1000']) expect(() => workerCount(bad)).toThrow(/CLUSTERDNS_WORKERS/);
  });

  it('a bad value is fatal at start, exit 1', async () => {
    const result = await runCli(['-conf', 'stdin'], { input: '.:0 {\n whoami\n}\n', env: { CLUSTERDNS_WORKERS: 'lots' } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('CLUSTERDNS_WORKERS');
  });

  it('two workers answer on one port over UDP and TCP, the pidfile names the primary, and SIGTERM stops them all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clusterdns-workers-'));
    const port = await freePort();
    writeFileSync(join(dir, 'Corefile'), `.:${port} {\n    whoami\n}\n`);
    const pidfile = join(dir, 'pid');
    const started = startCli(['-conf', join(dir, 'Corefile'), '-pidfile', pidfile], { env: { CLUSTERDNS_WORKERS: '2' } });
    try {
      // Each worker prints the banner once it serves.
      await started.waitForOutput(/clusterdns-[\d.]+[\s\S]*clusterdns-[\d.]+/, 15_000);
      expect((await queryUdp(port, 'example.org')).rcode).toBe('NOERROR');
      expect((await queryTcp(port, 'example.org')).rcode).toBe('NOERROR');
      expect(readFileSync(pidfile, 'utf8').trim()).toBe(String(started.child.pid));
    } finally {
      started.child.kill('SIGTERM');
    }
    const finished = await started.exited;
    expect(finished.code).toBe(0);
  });
});
