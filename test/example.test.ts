// The one-command demo: Corefile.example serving examples/cluster answers
// the README's dig examples. Ports are substituted, the manifests path made
// absolute, and /etc/resolv.conf replaced by a test upstream so external
// names are deterministic.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryUdp } from './support/dns.ts';
import { freePort, startCli, type Started } from './support/process.ts';
import { TestUpstream } from './support/upstreams.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

let server: Started;
let upstream: TestUpstream;
let dns: number;
let ready: number;

beforeAll(async () => {
  upstream = await TestUpstream.start({
    records: { 'www.example.com A': [{ name: 'www.example.com', type: 'A', ttl: 300, data: '93.184.215.14' }] },
  });
  [dns, ready] = [await freePort(), await freePort()];
  const [health, metrics] = [await freePort(), await freePort()];
  const corefile = readFileSync(join(root, 'Corefile.example'), 'utf8')
    .replace('.:1053', `.:${dns}`)
    .replace('health 127.0.0.1:8080', `health 127.0.0.1:${health}`)
    .replace('ready 127.0.0.1:8181', `ready 127.0.0.1:${ready}`)
    .replace('prometheus 127.0.0.1:9153', `prometheus 127.0.0.1:${metrics}`)
    .replace('manifests examples/cluster', `manifests ${join(root, 'examples/cluster')}`)
    .replace('forward . /etc/resolv.conf', `forward . ${upstream.hostPort}`);
  const dir = mkdtempSync(join(tmpdir(), 'clusterdns-example-'));
  writeFileSync(join(dir, 'Corefile'), corefile);
  server = startCli(['-conf', join(dir, 'Corefile')]);
  await server.waitForOutput(/clusterdns-\d/, 15_000);
});

afterAll(async () => {
  server.child.kill('SIGTERM');
  await server.exited;
  await upstream.stop();
});

describe('Corefile.example with examples/cluster (the README examples)', () => {
  it('is ready', async () => {
    const response = await fetch(`http://127.0.0.1:${ready}/ready`);
    expect([response.status, await response.text()]).toEqual([200, 'OK']);
  });

  it('K8S-8: a ClusterIP Service', async () => {
    const reply = await queryUdp(dns, 'web.demo.svc.cluster.local');
    expect(reply.answers).toMatchObject([{ name: 'web.demo.svc.cluster.local', type: 'A', ttl: 30, data: '10.96.100.10' }]);
  });

  it('K8S-16: a headless Service answers its pods', async () => {
    const reply = await queryUdp(dns, 'db.demo.svc.cluster.local');
    expect(reply.answers).toHaveLength(3);
    expect(reply.answers!.every((answer) => answer.type === 'A')).toBe(true);
  });

  it('K8S-18: a StatefulSet pod by hostname', async () => {
    const reply = await queryUdp(dns, 'db-0.db.demo.svc.cluster.local');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.answers).toHaveLength(1);
  });

  it('K8S-20: SRV per pod, with A records in the additional section', async () => {
    const reply = await queryUdp(dns, '_postgres._tcp.db.demo.svc.cluster.local', { type: 'SRV' });
    const targets = reply.answers!.map((answer) => (answer as { data: { target: string } }).data.target).sort();
    expect(targets).toEqual(['db-0.db.demo.svc.cluster.local', 'db-1.db.demo.svc.cluster.local', 'db-2.db.demo.svc.cluster.local']);
    expect(reply.additionals!.filter((record) => record.type === 'A')).toHaveLength(3);
  });

  it('K8S-23/24: ExternalName is a CNAME, chased through forward for A', async () => {
    const cname = await queryUdp(dns, 'search.demo.svc.cluster.local', { type: 'CNAME' });
    expect(cname.answers).toMatchObject([{ type: 'CNAME', data: 'www.example.com' }]);
    const chased = await queryUdp(dns, 'search.demo.svc.cluster.local');
    expect(chased.answers).toMatchObject([
      { type: 'CNAME', data: 'www.example.com' },
      { name: 'www.example.com', type: 'A', data: '93.184.215.14' },
    ]);
  });

  it('K8S-8: a dual-stack Service answers AAAA', async () => {
    const reply = await queryUdp(dns, 'dual.demo.svc.cluster.local', { type: 'AAAA' });
    expect(reply.answers).toMatchObject([{ type: 'AAAA', data: 'fd00:10:96::30' }]);
  });

  it('K8S-14: PTR back to the Service', async () => {
    const reply = await queryUdp(dns, '10.100.96.10.in-addr.arpa', { type: 'PTR' });
    expect(reply.answers).toMatchObject([{ type: 'PTR', data: 'web.demo.svc.cluster.local' }]);
  });

  it('K8S-35: a missing name is NXDOMAIN with the zone SOA', async () => {
    const reply = await queryUdp(dns, 'nope.demo.svc.cluster.local');
    expect(reply.rcode).toBe('NXDOMAIN');
    expect(reply.authorities).toMatchObject([{ name: 'cluster.local', type: 'SOA' }]);
  });
});
