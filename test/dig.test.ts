// What a user sees with dig (skipped with a message when dig is not installed).

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from './support/dns.ts';

function hasDig(): boolean {
  try {
    execFileSync('dig', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const digAvailable = hasDig();
if (!digAvailable) console.warn('dig is not installed (apt-get install bind9-dnsutils): skipping the dig tests');

/** Runs dig without blocking: the server under test lives in this process. */
async function dig(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=2', ...args], { encoding: 'utf8' });
  return stdout;
}

describe.skipIf(!digAvailable)('dig against clusterdns', () => {
  let running: RunningServer;
  beforeAll(async () => {
    running = await startServer('. {\n    whoami\n}\n');
  });
  afterAll(() => running.stop());

  it('whoami over UDP (WHOAMI-1)', async () => {
    const output = await dig(running.port, 'Example.ORG', 'A');
    expect(output).toContain('status: NOERROR');
    expect(output).toMatch(/flags: qr aa rd;/);
    expect(output).toMatch(/Example\.ORG\.\s+0\s+IN\s+A\s+127\.0\.0\.1/);
    expect(output).toMatch(/_udp\.Example\.ORG\.\s+0\s+IN\s+SRV\s+0 0 \d+ \./);
  });

  it('whoami over TCP', async () => {
    const output = await dig(running.port, '+tcp', 'example.org');
    expect(output).toContain('status: NOERROR');
    expect(output).toMatch(/_tcp\.example\.org\.\s+0\s+IN\s+SRV/);
  });

  it('EDNS: dig sees our OPT echo (WIRE-10)', async () => {
    const output = await dig(running.port, '+edns=0', '+bufsize=1232', 'example.org');
    expect(output).toMatch(/EDNS: version: 0, flags:; udp: 1232/);
  });

  it('EDNS version 1 gets BADVERS (WIRE-9)', async () => {
    const output = await dig(running.port, '+edns=1', '+noednsnegotiation', 'example.org');
    expect(output).toContain('status: BADVERS');
  });
});
