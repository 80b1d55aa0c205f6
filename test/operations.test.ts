// health, ready, prometheus, reload and shutdown, run as a user runs them:
// the clusterdns command with a Corefile, probed over HTTP and DNS
// (HEALTH-*, READY-*, PROM-*, RELOAD-*).

import { mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { planFromCorefile } from '../src/config.ts';
import { startPlugins, stopPlugins } from '../src/lifecycle.ts';
import { buildQuery, decodeReply, queryTcp, queryUdp, sendUdp } from './support/dns.ts';
import { TestUpstream } from './support/upstreams.ts';
import { freePort, startCli, type Started } from './support/process.ts';

const children: Started[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.child.kill('SIGKILL');
    await child.exited;
  }
});

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'clusterdns-ops-'));
}

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: response.status, body: await response.text() };
}

async function until<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function start(args: string[], cwd?: string): Started {
  const child = startCli(args, { cwd });
  children.push(child);
  return child;
}

describe('health (HEALTH-1..4)', () => {
  it('HEALTH-1: /health answers 200 OK to any method; other paths 404', async () => {
    const [dns, http] = [await freePort(), await freePort()];
    const server = start(['-conf', 'stdin', '-quiet'], undefined);
    server.child.stdin!.end(`.:${dns} {\n health 127.0.0.1:${http}\n whoami\n}\n`);
    const health = await until(() => get(http, '/health'));
    expect(health).toEqual({ status: 200, body: 'OK' });
    expect(await get(http, '/health', 'POST')).toEqual({ status: 200, body: 'OK' });
    expect((await get(http, '/healthz')).status).toBe(404);
  });

  it('HEALTH-3: SIGTERM with lameduck keeps DNS and /health answering, /ready says Shutting down, then exits 0', async () => {
    const [dns, health, ready] = [await freePort(), await freePort(), await freePort()];
    const server = start(['-conf', 'stdin', '-quiet']);
    server.child.stdin!.end(`.:${dns} {\n health 127.0.0.1:${health} {\n  lameduck 1s\n }\n ready 127.0.0.1:${ready}\n whoami\n}\n`);
    await until(() => get(ready, '/ready').then((reply) => reply.status === 200));
    const stoppedAt = Date.now();
    server.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await queryUdp(dns, 'during.lameduck')).rcode).toBe('NOERROR');
    expect(await get(health, '/health')).toEqual({ status: 200, body: 'OK' });
    expect(await get(ready, '/ready')).toEqual({ status: 503, body: 'Shutting down' });
    const result = await server.exited;
    expect(result.code).toBe(0);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1000);
    expect(result.stdout).toContain('[INFO] SIGTERM: Shutting down');
  });
});

describe('shutdown with queries in flight (WIRE-20)', () => {
  it('SIGTERM while a forwarded query waits on a slow upstream: the query is still answered; while it drains, UDP is answered from memory or TC (retry over TCP, now closed), exit 0', async () => {
    const upstream = await TestUpstream.start({ mode: { kind: 'slow', delayMs: 1500 } });
    try {
      const dns = await freePort();
      const server = start(['-conf', 'stdin', '-quiet']);
      server.child.stdin!.end(`.:${dns} {\n hosts {\n  192.0.2.7 local.example\n  fallthrough\n }\n forward . ${upstream.hostPort}\n}\n`);
      await until(() => sendUdp(dns, buildQuery('warm.example'), 2500));
      const inFlight = sendUdp(dns, buildQuery('slow.example'), 3000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      server.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Another instance sharing the port would get the TCP retry; here nothing listens.
      const late = decodeReply((await sendUdp(dns, buildQuery('late.example'), 500))!);
      expect([late.rcode, late.flag_tc, late.answers]).toEqual(['NOERROR', true, []]);
      expect((await queryUdp(dns, 'local.example')).answers!.map((answer) => (answer as { data: unknown }).data)).toEqual(['192.0.2.7']);
      await expect(queryTcp(dns, 'late.example', { timeoutMs: 500 })).rejects.toThrow();
      const reply = await inFlight;
      expect(reply).not.toBeNull();
      expect(decodeReply(reply!).rcode).toBe('NXDOMAIN');
      const result = await server.exited;
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(upstream.queriesFor('late.example')).toEqual([]);
    } finally {
      await upstream.stop();
    }
  });
});

describe('ready (READY-1..3)', () => {
  it('READY-2: with no plugin reporting readiness, /ready is 200 at once', async () => {
    const [dns, ready] = [await freePort(), await freePort()];
    const server = start(['-conf', 'stdin', '-quiet']);
    server.child.stdin!.end(`.:${dns} {\n ready 127.0.0.1:${ready}\n whoami\n}\n`);
    expect(await until(() => get(ready, '/ready'))).toEqual({ status: 200, body: 'OK' });
  });

  it('READY-3: 503 with the sorted names of plugins not ready, 200 once they are', async () => {
    const port = await freePort();
    const plan = planFromCorefile(`. {\n ready 127.0.0.1:${port}\n whoami\n}\n`, 'Corefile', { dnsPort: 0 });
    let synced = false;
    // A stand-in for a plugin that reports readiness, such as kubernetes before its first sync.
    const directive = plan.blocks[0]!.plugins[0]!.directive;
    plan.blocks[0]!.plugins.push({ name: 'kubernetes', instance: { ready: () => synced }, directive }, { name: 'erratic', instance: { ready: () => synced }, directive });
    await startPlugins(plan);
    try {
      expect(await get(port, '/ready')).toEqual({ status: 503, body: 'erratic,kubernetes' });
      synced = true;
      expect(await get(port, '/ready')).toEqual({ status: 200, body: 'OK' });
    } finally {
      await stopPlugins(plan);
    }
  });
});

describe('prometheus (PROM-1..13)', () => {
  it('exports the dashboard-critical metrics with CoreDNS names and labels after queries', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const server = start(['-conf', 'stdin', '-quiet']);
    server.child.stdin!.end(`example.org:${dns} {\n prometheus 127.0.0.1:${metrics}\n reload\n errors\n whoami\n}\n`);
    await until(() => queryUdp(dns, 'www.example.org', { timeoutMs: 200 }));
    await queryUdp(dns, 'www.example.org', { type: 'AAAA', udpSize: 1232, dnssecOk: true });
    await queryUdp(dns, 'www.example.org', { type: 'NAPTR' });
    await queryUdp(dns, 'www.example.net'); // no zone: REFUSED, zone "dropped"
    const { status, body } = await get(metrics, '/metrics');
    expect(status).toBe(200);
    const server_ = `server="dns://:${dns}"`;
    expect(body).toContain(`coredns_dns_requests_total{${server_},zone="example.org.",view="",proto="udp",family="1",type="A"} 1`);
    expect(body).toContain(`coredns_dns_requests_total{${server_},zone="example.org.",view="",proto="udp",family="1",type="other"} 1`);
    expect(body).toContain(`coredns_dns_responses_total{${server_},zone="example.org.",view="",rcode="NOERROR",plugin=""} 3`);
    expect(body).toContain(`coredns_dns_responses_total{${server_},zone="dropped",view="",rcode="REFUSED",plugin=""} 1`);
    expect(body).toContain(`coredns_dns_do_requests_total{${server_},zone="example.org.",view=""} 1`);
    expect(body).toMatch(new RegExp(`coredns_dns_request_duration_seconds_bucket\\{le="0.00025",${server_},zone="example.org.",view=""\\} \\d+`));
    expect(body).toContain(`coredns_dns_request_duration_seconds_bucket{le="8.192",${server_},zone="example.org.",view=""} 3`);
    expect(body).toContain(`coredns_dns_request_size_bytes_bucket{le="511",${server_},zone="example.org.",view="",proto="udp"} 3`);
    expect(body).toContain(`coredns_dns_response_size_bytes_count{${server_},zone="example.org.",view="",proto="udp"} 3`);
    expect(body).toContain('coredns_panics_total 0');
    expect(body).toMatch(/coredns_build_info\{version="[\d.]+",revision="",goversion="node v24[\d.]+"\} 1/);
    expect(body).toContain(`coredns_plugin_enabled{${server_},zone="example.org.",view="",name="whoami"} 1`);
    expect(body).toContain(`coredns_plugin_enabled{${server_},zone="example.org.",view="",name="errors"} 1`);
    // Setup-only plugins are not in the chain and not listed.
    expect(body).not.toContain('name="reload"');
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_open_fds', 'process_start_time_seconds']) {
      expect(body).toContain(`# TYPE ${name}`);
    }
    expect((await get(metrics, '/other')).status).toBe(404);
  });

  it('PROM-9: labelled series appear only once observed', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const server = start(['-conf', 'stdin', '-quiet']);
    server.child.stdin!.end(`.:${dns} {\n prometheus 127.0.0.1:${metrics}\n whoami\n}\n`);
    const { body } = await until(() => get(metrics, '/metrics'));
    expect(body).not.toContain('coredns_dns_requests_total{');
    expect(body).toContain('coredns_panics_total 0');
  });
});

describe('reload (RELOAD-1..6)', () => {
  function corefile(dns: number, metrics: number, zone: string, extra = ''): string {
    return `${zone}:${dns} {\n prometheus 127.0.0.1:${metrics}\n reload 2s 0\n whoami\n${extra}}\n`;
  }

  it('RELOAD-2/3: a changed Corefile is picked up on SIGUSR1, with queries answered throughout', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const dir = tempDir();
    const file = join(dir, 'Corefile');
    writeFileSync(file, corefile(dns, metrics, 'example.org'));
    const server = start(['-conf', file, '-quiet']);
    await until(() => queryUdp(dns, 'a.example.org', { timeoutMs: 200 }));
    await server.waitForOutput(/\[INFO\] plugin\/reload: Running configuration SHA512 = [0-9a-f]{128}/);
    expect((await queryUdp(dns, 'a.example.net')).rcode).toBe('REFUSED');

    let unanswered = 0;
    let running = true;
    const traffic = (async () => {
      while (running) {
        const reply = await queryUdp(dns, 'a.example.org', { timeoutMs: 500 }).catch(() => null);
        if (!reply) unanswered++;
      }
    })();
    writeFileSync(file, corefile(dns, metrics, 'example.org') + `example.net:${dns} {\n whoami\n}\n`);
    server.child.kill('SIGUSR1');
    await until(() => queryUdp(dns, 'a.example.net', { timeoutMs: 200 }).then((reply) => reply.rcode === 'NOERROR'));
    running = false;
    await traffic;
    expect(unanswered).toBe(0);
    const { body } = await get(metrics, '/metrics');
    expect(body).toMatch(/coredns_reload_version_info\{hash="sha512",value="[0-9a-f]{128}"\} 1/);
  });

  it('RELOAD-1: the reload plugin re-reads the Corefile on its interval', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const dir = tempDir();
    const file = join(dir, 'Corefile');
    writeFileSync(file, corefile(dns, metrics, 'example.org'));
    start(['-conf', file, '-quiet']);
    await until(() => queryUdp(dns, 'a.example.org', { timeoutMs: 200 }));
    writeFileSync(file, corefile(dns, metrics, 'example.com'));
    await until(() => queryUdp(dns, 'a.example.com', { timeoutMs: 200 }).then((reply) => reply.rcode === 'NOERROR'), 6000);
    expect((await queryUdp(dns, 'a.example.org')).rcode).toBe('REFUSED');
  });

  it('RELOAD-4: a Corefile that fails setup keeps the old one serving, logs file:line and counts the failure', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const dir = tempDir();
    const file = join(dir, 'Corefile');
    writeFileSync(file, corefile(dns, metrics, 'example.org'));
    const server = start(['-conf', file, '-quiet']);
    await until(() => queryUdp(dns, 'a.example.org', { timeoutMs: 200 }));
    writeFileSync(file, corefile(dns, metrics, 'example.org', ' errors\n errors\n'));
    server.child.kill('SIGUSR1');
    await server.waitForOutput(`[ERROR] plugin/reload: Corefile changed but reload failed: ${file}:6 - Error during parsing: plugin/errors: this plugin can only be used once per Server Block`);
    expect((await queryUdp(dns, 'a.example.org')).rcode).toBe('NOERROR');
    const { body } = await get(metrics, '/metrics');
    expect(body).toContain('coredns_reload_failed_total 1');
  });

  it('RELOAD-4: an unknown directive fails the reload as in CoreDNS: logged as an error, counted once, the old one serves', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const dir = tempDir();
    const file = join(dir, 'Corefile');
    writeFileSync(file, corefile(dns, metrics, 'example.org'));
    const server = start(['-conf', file, '-quiet']);
    await until(() => queryUdp(dns, 'a.example.org', { timeoutMs: 200 }));
    writeFileSync(file, corefile(dns, metrics, 'example.org', ' nosuchdirective\n'));
    server.child.kill('SIGUSR1');
    await server.waitForOutput(`[ERROR] plugin/reload: Corefile changed but reload failed: ${file}:5 - Error during parsing: Unknown directive 'nosuchdirective'`);
    server.child.kill('SIGUSR1'); // the same bad file again: not retried, not counted again
    expect((await queryUdp(dns, 'a.example.org')).rcode).toBe('NOERROR');
    expect((await get(metrics, '/metrics')).body).toContain('coredns_reload_failed_total 1');
  });

  it('RELOAD-4: a Corefile that does not parse is a warning, not counted, and the old one serves', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const dir = tempDir();
    const file = join(dir, 'Corefile');
    writeFileSync(file, corefile(dns, metrics, 'example.org'));
    const server = start(['-conf', file, '-quiet']);
    await until(() => queryUdp(dns, 'a.example.org', { timeoutMs: 200 }));
    writeFileSync(file, `example.org:${dns} {\n whoami\n`);
    server.child.kill('SIGUSR1');
    await server.waitForOutput(/\[WARNING\] plugin\/reload: Corefile changed but could not be parsed, keeping the running configuration: .*Corefile:\d+ - Error during parsing/);
    expect((await queryUdp(dns, 'a.example.org')).rcode).toBe('NOERROR');
    expect((await get(metrics, '/metrics')).body).toContain('coredns_reload_failed_total 0');
  });

  it('RELOAD-6: follows the ConfigMap symlink swap', async () => {
    const [dns, metrics] = [await freePort(), await freePort()];
    const dir = tempDir();
    // kubelet's layout: Corefile → ..data/Corefile, ..data → a timestamped directory swapped atomically.
    const first = join(dir, '..2026_01_01');
    const second = join(dir, '..2026_01_02');
    for (const [target, zone] of [[first, 'example.org'], [second, 'example.com']] as const) {
      await import('node:fs').then((fs) => fs.mkdirSync(target));
      writeFileSync(join(target, 'Corefile'), corefile(dns, metrics, zone));
    }
    symlinkSync(first, join(dir, '..data'));
    symlinkSync(join('..data', 'Corefile'), join(dir, 'Corefile'));
    const server = start(['-conf', join(dir, 'Corefile'), '-quiet']);
    await until(() => queryUdp(dns, 'a.example.org', { timeoutMs: 200 }));
    symlinkSync(second, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    server.child.kill('SIGUSR1');
    await until(() => queryUdp(dns, 'a.example.com', { timeoutMs: 200 }).then((reply) => reply.rcode === 'NOERROR'));
  });
});
