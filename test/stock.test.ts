// The Corefiles real clusters ship run unchanged and answer (STOCK-1..5).
// Only ports are substituted (and made explicit for health/ready/prometheus,
// so tests can run side by side), the kubernetes block is pointed at the
// test API server, and template variables get test values.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestApiServer } from './support/apiserver.ts';
import { queryTcp, queryUdp } from './support/dns.ts';
import { freePort, startCli, type Started } from './support/process.ts';
import { TestUpstream } from './support/upstreams.ts';

const fixtures = fileURLToPath(new URL('./corefile/fixtures/', import.meta.url));

let api: TestApiServer;
let stub: TestUpstream;
const zoneFile = join(mkdtempSync(join(tmpdir(), 'clusterdns-stock-')), 'db.example.internal');
beforeAll(async () => {
  writeFileSync(zoneFile, '$ORIGIN example.internal.\n$TTL 300\n@ IN SOA ns admin 1 7200 3600 1209600 300\n  IN NS ns\nns IN A 10.0.0.53\nwww IN A 10.0.0.80\n');
  api = await TestApiServer.start();
  api.add({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'edge', namespace: 'default' },
    spec: { type: 'LoadBalancer', clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'], externalIPs: ['192.0.2.50'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  });
  api.add({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  api.add({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kubernetes', namespace: 'default' },
    spec: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1'], ports: [{ name: 'https', port: 443, protocol: 'TCP' }] },
  });
  stub = await TestUpstream.start({ records: { 'www.acme.local A': [{ name: 'www.acme.local', type: 'A', ttl: 60, data: '192.0.2.7' }] } });
});
afterAll(async () => {
  await api.stop();
  await stub.stop();
});

interface Ports {
  dns: number;
  health: number;
  ready: number;
  metrics: number;
}

/** The substitutions the header describes; everything else stays as shipped. */
function adapt(corefile: string, ports: Ports): string {
  return corefile
    .replaceAll(':53 {', `:${ports.dns} {`)
    .replace(/^(\s*)health(\s*\{|\s*$)/m, `$1health 127.0.0.1:${ports.health}$2`)
    .replace(/^(\s*)ready\s*$/m, `$1ready 127.0.0.1:${ports.ready}`)
    .replace('prometheus :9153', `prometheus 127.0.0.1:${ports.metrics}`)
    .replace(/(kubernetes cluster\.local in-addr\.arpa ip6\.arpa \{\n)/, `$1      endpoint ${api.url}\n`)
    .replace('forward . 1.2.3.4', `forward . ${stub.hostPort}`)
    .replace('file db.example.internal', `file ${zoneFile}`);
}

async function run(fixture: string): Promise<{ server: Started; ports: Ports }> {
  const ports = { dns: await freePort(), health: await freePort(), ready: await freePort(), metrics: await freePort() };
  const server = startCli(['-conf', 'stdin']);
  server.child.stdin!.end(adapt(readFileSync(join(fixtures, fixture), 'utf8'), ports));
  await server.waitForOutput(/clusterdns-\d/, 15_000);
  return { server, ports };
}

async function stop(server: Started): Promise<number | null> {
  server.child.kill('SIGTERM');
  return (await server.exited).code;
}

describe.each([
  ['STOCK-1: kubeadm up to 1.31', 'stock-1.Corefile'],
  ['STOCK-2: kubeadm 1.32 and later (cache disabled for cluster.local)', 'stock-2.Corefile'],
  ['STOCK-3: coredns/deployment with a stub domain', 'stock-3.Corefile'],
  ['STOCK-4: k3s with hosts and import globs that match nothing', 'k3s.Corefile'],
  ['STOCK-4: minikube with log and an inline hosts entry', 'minikube.Corefile'],
])('%s', (_title, fixture) => {
  it('starts, is healthy and ready, answers cluster names over UDP and TCP, and exports metrics', async () => {
    const { server, ports } = await run(fixture);
    try {
      const health = await fetch(`http://127.0.0.1:${ports.health}/health`);
      expect(health.status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${ports.ready}/ready`);
      expect([ready.status, await ready.text()]).toEqual([200, 'OK']);
      for (const query of [queryUdp, queryTcp]) {
        const reply = await query(ports.dns, 'kubernetes.default.svc.cluster.local');
        expect(reply.rcode).toBe('NOERROR');
        expect(reply.answers).toMatchObject([{ type: 'A', data: '10.96.0.1' }]);
      }
      expect((await queryUdp(ports.dns, 'nope.default.svc.cluster.local')).rcode).toBe('NXDOMAIN');
      const ptr = await queryUdp(ports.dns, '1.0.96.10.in-addr.arpa', { type: 'PTR' });
      expect(ptr.answers).toMatchObject([{ type: 'PTR', data: 'kubernetes.default.svc.cluster.local' }]);
      const metrics = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
      expect(metrics).toMatch(/coredns_dns_requests_total\{server="dns:\/\/:\d+",zone="\.",view="",proto="udp",family="1",type="A"\} \d+/);
      expect(metrics).toContain('coredns_plugin_enabled{');
      if (fixture === 'stock-1.Corefile') {
        // PROM-13: the set dashboards and alerts read; a second query makes a cache hit.
        await queryUdp(ports.dns, 'kubernetes.default.svc.cluster.local');
        const text = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
        for (const series of [
          'coredns_dns_requests_total{', 'coredns_dns_responses_total{', 'coredns_dns_request_duration_seconds_bucket{',
          'coredns_dns_request_size_bytes_bucket{', 'coredns_dns_response_size_bytes_bucket{', 'coredns_cache_entries{',
          'coredns_cache_hits_total{', 'coredns_cache_misses_total{', 'coredns_panics_total 0', 'coredns_build_info{',
          'coredns_plugin_enabled{',
        ]) {
          expect(text).toContain(series);
        }
        for (const family of [
          'coredns_kubernetes_dns_programming_duration_seconds histogram', 'coredns_forward_requests_total counter',
          'coredns_forward_responses_total counter', 'coredns_forward_request_duration_seconds histogram',
          'coredns_forward_healthcheck_failures_total counter', 'coredns_forward_healthcheck_broken_total counter',
        ]) {
          expect(text).toContain(`# TYPE ${family}`);
        }
        expect(text).toMatch(/coredns_cache_hits_total\{server="dns:\/\/:\d+",type="success",zones="\.",view=""\} [1-9]/);
      }
      if (fixture === 'stock-3.Corefile') {
        const reply = await queryUdp(ports.dns, 'www.acme.local');
        expect(reply.answers).toMatchObject([{ type: 'A', data: '192.0.2.7' }]);
      }
      if (fixture === 'minikube.Corefile') {
        const reply = await queryUdp(ports.dns, 'host.minikube.internal');
        expect(reply.answers).toMatchObject([{ type: 'A', data: '192.168.49.1' }]);
        await server.waitForOutput(/\[INFO\] 127\.0\.0\.1:\d+ - \d+ "A IN host\.minikube\.internal\. udp/);
      }
    } finally {
      expect(await stop(server)).toBe(0);
    }
  });
});

describe('STOCK-1 with every plugin a customised cluster adds (issue 12)', () => {
  it('the kubeadm Corefile with rewrite, template, autopath, k8s_external, file, local, acl, any, chaos, header, minimal, dns64, bufsize, nsid and timeouts starts unchanged, and each answers', async () => {
    const { server, ports } = await run('kubeadm-extended.Corefile');
    try {
      const ready = await fetch(`http://127.0.0.1:${ports.ready}/ready`);
      expect([ready.status, await ready.text()]).toEqual([200, 'OK']);
      const ask = (name: string, type = 'A') => queryUdp(ports.dns, name, { type });
      expect((await ask('kubernetes.default.svc.cluster.local')).answers).toMatchObject([{ type: 'A', data: '10.96.0.1' }]);
      // rewrite: answered under the name asked.
      expect((await ask('alias.example.org')).answers).toMatchObject([{ name: 'alias.example.org', type: 'A', data: '10.96.0.1' }]);
      // template: a record made from the name.
      expect((await ask('ip-10-1-2-3.fake.test')).answers).toMatchObject([{ type: 'A', data: '10.1.2.3' }]);
      // local, file, k8s_external.
      expect((await ask('localhost')).answers).toMatchObject([{ type: 'A', data: '127.0.0.1' }]);
      expect((await ask('www.example.internal')).answers).toMatchObject([{ type: 'A', data: '10.0.0.80' }]);
      expect((await ask('edge.default.example.external')).answers).toMatchObject([{ type: 'A', data: '192.0.2.50' }]);
      // dns64 (translate_all): AAAA made from the A record.
      expect((await ask('kubernetes.default.svc.cluster.local', 'AAAA')).answers).toMatchObject([{ type: 'AAAA', data: '64:ff9b::a60:1' }]);
      // any: RFC 8482; acl: MX from loopback refused.
      expect((await ask('kubernetes.default.svc.cluster.local', 'ANY')).answers).toMatchObject([{ type: 'HINFO' }]);
      expect((await ask('kubernetes.default.svc.cluster.local', 'MX')).rcode).toBe('REFUSED');
      // header: RA set on responses.
      expect((await ask('kubernetes.default.svc.cluster.local')).flags! & 0x80).toBe(0x80);
      const metrics = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
      expect(metrics).toMatch(/coredns_acl_blocked_requests_total\{[^}]*\} [1-9]/);
    } finally {
      expect(await stop(server)).toBe(0);
    }
  });
});
