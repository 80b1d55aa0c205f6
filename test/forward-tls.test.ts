// forward to DNS-over-TLS upstreams (FWD-2 tls://, FWD-4 tls / tls_servername,
// FWD-10 connection reuse with the tcp-tls label). The certificate is made
// with the openssl command at test time; without it the tests are skipped.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { proxyConnCacheHits } from '../src/metrics.ts';
import { forwardTiming } from '../plugins/forward/index.ts';
import { queryTcp, queryUdp } from './support/dns.ts';
import { useFixture } from './support/fixture.ts';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-tls-'));
let key = '';
let cert = '';

beforeAll(() => {
  if (!hasOpenssl()) return;
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(tmp, 'key.pem'), '-out', path.join(tmp, 'cert.pem'), '-days', '2',
    '-subj', '/CN=dns.test', '-addext', 'subjectAltName=DNS:dns.test,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  key = fs.readFileSync(path.join(tmp, 'key.pem'), 'utf8');
  cert = fs.readFileSync(path.join(tmp, 'cert.pem'), 'utf8');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const savedTiming = { ...forwardTiming };

afterEach(() => {
  Object.assign(forwardTiming, savedTiming);
});

const table = { 'example.org A': [{ type: 'A' as const, name: 'example.org', ttl: 60, data: '192.0.2.1' }] };

const fixture = useFixture(table);
const tlsUpstream = () => fixture.upstream({ tls: { key, cert } });
const serve = (corefile: string) => fixture.serve(corefile, { file: path.join(tmp, 'Corefile') });

describe.skipIf(!hasOpenssl())('DNS over TLS upstreams', () => {
  it('forwards UDP and TCP clients over TLS, verifying the server name from tls_servername', async () => {
    const up = await tlsUpstream();
    const port = await serve(`. {\n    forward . tls://${up.hostPort} {\n        tls cert.pem\n        tls_servername dns.test\n    }\n}\n`);
    expect((await queryUdp(port, 'example.org')).answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect((await queryTcp(port, 'example.org')).answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(up.queries.map((query) => query.transport)).toEqual(['tcp', 'tcp']);
    // One TLS connection, reused (FWD-10).
    expect(up.tcpConnections).toBe(1);
    const { values } = await proxyConnCacheHits.get();
    expect(values.find((entry) => entry.labels.to === up.hostPort)?.labels.proto).toBe('tcp-tls');
  });

  it('takes the server name from tls://IP%name:port, and checks the IP when there is no name', async () => {
    const up = await tlsUpstream();
    const named = await serve(`. {\n    forward . tls://127.0.0.1%dns.test:${up.port} {\n        tls cert.pem\n    }\n}\n`);
    expect((await queryUdp(named, 'example.org')).rcode).toBe('NOERROR');
    const byIp = await serve(`. {\n    forward . tls://${up.hostPort} {\n        tls cert.pem\n    }\n}\n`);
    expect((await queryUdp(byIp, 'example.org')).rcode).toBe('NOERROR');
  });

  it('refuses a certificate for another name: SERVFAIL with the TLS error logged', async () => {
    Object.assign(forwardTiming, { readTimeoutMs: 300, overallTimeoutMs: 600, healthTimeoutMs: 100 });
    const up = await tlsUpstream();
    const lines = fixture.captureLog();
    const port = await serve(`. {\n    errors\n    forward . tls://${up.hostPort} {\n        tls cert.pem\n        tls_servername other.test\n        max_fails 0\n    }\n}\n`);
    const reply = await queryUdp(port, 'example.org', { timeoutMs: 2000 });
    expect(reply.rcode).toBe('SERVFAIL');
    expect(up.queries).toHaveLength(0);
    expect(lines.some((line) => line.startsWith('[ERROR] plugin/errors: 2 example.org. A: tls: ') && line.includes('other.test'))).toBe(true);
  });

  it('refuses an unknown CA (system roots only without a tls CA argument)', async () => {
    Object.assign(forwardTiming, { readTimeoutMs: 300, overallTimeoutMs: 600, healthTimeoutMs: 100 });
    const up = await tlsUpstream();
    const port = await serve(`. {\n    forward . tls://${up.hostPort} {\n        tls_servername dns.test\n        max_fails 0\n    }\n}\n`);
    expect((await queryUdp(port, 'example.org', { timeoutMs: 2000 })).rcode).toBe('SERVFAIL');
    expect(up.queries).toHaveLength(0);
  });
});
