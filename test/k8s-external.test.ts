// k8s_external (K8SX-1..3): Services' external IPs and load-balancer ingress
// under an external zone, over real UDP, from an in-memory cluster given to
// a server started through the embedding API; ingress hostnames are chased
// through a real upstream. Expected answers are what CoreDNS 1.11.3 gave
// for the same objects side by side.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCluster, startServer, type ClusterDnsServer } from '../src/index.ts';
import type { MemoryCluster } from '../plugins/kubernetes/memory-source.ts';
import { queryUdp } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { TestUpstream } from './support/upstreams.ts';

const CLUSTER = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec:
  type: LoadBalancer
  clusterIP: 10.96.100.10
  ports: [{ name: http, port: 80, protocol: TCP }, { name: dns, port: 53, protocol: UDP }]
  externalIPs: [192.0.2.10]
status: { loadBalancer: { ingress: [{ ip: 198.51.100.7 }, { hostname: lb.example.net }] } }
---
apiVersion: v1
kind: Service
metadata: { name: v6, namespace: demo }
spec: { clusterIP: 10.96.100.14, ports: [{ name: http, port: 80 }], externalIPs: ['2001:db8::10', 192.0.2.14] }
---
apiVersion: v1
kind: Service
metadata: { name: noports, namespace: demo }
spec: { clusterIP: 10.96.100.11, externalIPs: [192.0.2.11] }
---
apiVersion: v1
kind: Service
metadata: { name: plain, namespace: demo }
spec: { clusterIP: 10.96.100.15, ports: [{ name: http, port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: demo }
spec: { clusterIP: None, ports: [{ name: pg, port: 5432 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: db-abc, namespace: demo, labels: { kubernetes.io/service-name: db } }
addressType: IPv4
ports: [{ name: pg, port: 5432, protocol: TCP }]
endpoints:
  - { addresses: [10.244.0.5], hostname: db-0, conditions: { ready: true } }
  - { addresses: [10.244.0.6], conditions: { ready: true } }
  - { addresses: [10.244.0.7], conditions: { ready: false } }
`;

let upstream: TestUpstream;
beforeAll(async () => {
  upstream = await TestUpstream.start({
    records: {
      'lb.example.net A': [{ type: 'A', name: 'lb.example.net', ttl: 300, data: '203.0.113.9' }],
      'lb.example.net AAAA': [{ type: 'AAAA', name: 'lb.example.net', ttl: 300, data: '2001:db8::9' }],
    },
  });
});
afterAll(async () => {
  await upstream.stop();
});

const running: ClusterDnsServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

const HEADLESS = `k8s_external example.org {
        headless
    }`;

async function serve(external = HEADLESS, cluster: MemoryCluster = createCluster(CLUSTER), kubernetesOptions = ''): Promise<number> {
  const corefile = `.:0 {
    ${external}
    kubernetes cluster.local {
        memory
        ${kubernetesOptions}
    }
    forward . ${upstream.hostPort}
}
`;
  const server = await startServer({ corefile, dnsPort: 0, clusters: { default: cluster } });
  running.push(server);
  return server.listeners.find((listener) => listener.transport === 'udp')!.port;
}

/** dns-packet's records, with the fields its union type hides behind OPT. */
type Rec = { name: string; type: string; ttl: number; data: any };
const records = (list: unknown[] | undefined): Rec[] => (list ?? []) as Rec[];
type Row = [string, string, number, unknown];
const rows = (list: unknown[] | undefined): Row[] => records(list).map(({ name, type, ttl, data }) => [name, type, ttl, data]);
const AA = 0x0400;

describe('k8s_external names (K8SX-2)', () => {
  it('K8SX-2: A is the external IPs then load-balancer ingress IPs; an ingress hostname is a CNAME per port, chased through the server', async () => {
    const port = await serve();
    const reply = await queryUdp(port, 'web.demo.example.org.');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flags! & AA).toBeTruthy();
    expect(rows(reply.answers)).toEqual([
      ['web.demo.example.org', 'A', 5, '192.0.2.10'],
      ['web.demo.example.org', 'A', 5, '198.51.100.7'],
      ['web.demo.example.org', 'CNAME', 5, 'lb.example.net'],
      ['lb.example.net', 'A', 300, '203.0.113.9'],
      ['web.demo.example.org', 'CNAME', 5, 'lb.example.net'],
      ['lb.example.net', 'A', 300, '203.0.113.9'],
    ]);
    const v6 = await queryUdp(port, 'v6.demo.example.org.', { type: 'AAAA' });
    expect(rows(v6.answers)).toEqual([['v6.demo.example.org', 'AAAA', 5, '2001:db8::10']]);
    expect(rows((await queryUdp(port, 'v6.demo.example.org.')).answers)).toEqual([['v6.demo.example.org', 'A', 5, '192.0.2.14']]);
    expect(rows((await queryUdp(port, 'noports.demo.example.org.')).answers)).toEqual([['noports.demo.example.org', 'A', 5, '192.0.2.11']]);
  });

  it('K8SX-2: SRV per port with weights over every item, targets in the external zone, glue in the additional section', async () => {
    const port = await serve();
    const reply = await queryUdp(port, '_http._tcp.web.demo.example.org.', { type: 'SRV' });
    expect(rows(reply.answers)).toEqual([
      ['_http._tcp.web.demo.example.org', 'SRV', 5, { priority: 0, weight: 33, port: 80, target: 'web.demo.example.org' }],
      ['_http._tcp.web.demo.example.org', 'SRV', 5, { priority: 0, weight: 33, port: 80, target: 'lb.example.net' }],
    ]);
    expect(rows(records(reply.additionals).filter((record) => record.type !== 'OPT'))).toEqual([
      ['web.demo.example.org', 'A', 5, '192.0.2.10'],
      ['web.demo.example.org', 'A', 5, '198.51.100.7'],
      ['lb.example.net', 'A', 300, '203.0.113.9'],
      ['lb.example.net', 'AAAA', 300, '2001:db8::9'],
    ]);
    const all = await queryUdp(port, 'web.demo.example.org.', { type: 'SRV' });
    expect(records(all.answers).map((record) => (record.data as { weight: number; port: number }).weight)).toEqual([16, 16, 16, 16]);
  });

  it('K8SX-2: NXDOMAIN for unknown names, ports and Services without external addresses; NODATA for other types', async () => {
    const port = await serve();
    for (const [name, type] of [['nope.demo.example.org.', 'A'], ['plain.demo.example.org.', 'A'], ['nons.example.org.', 'A'], ['_dns._tcp.web.demo.example.org.', 'SRV'], ['x.db.demo.example.org.', 'A']]) {
      const reply = await queryUdp(port, name!, { type });
      expect([name, reply.rcode]).toEqual([name, 'NXDOMAIN']);
      expect(reply.flags! & AA).toBeTruthy();
      expect(rows(reply.authorities)).toEqual([['example.org', 'SOA', 5, expect.objectContaining({ mname: 'ns1.dns.example.org', rname: 'hostmaster.dns.example.org', minimum: 5 })]]);
    }
    for (const [name, type] of [['web.demo.example.org.', 'TXT'], ['demo.example.org.', 'A'], ['noports.demo.example.org.', 'SRV'], ['web.demo.example.org.', 'PTR']]) {
      const reply = await queryUdp(port, name!, { type });
      expect([name, type, reply.rcode, reply.answers]).toEqual([name, type, 'NOERROR', []]);
      expect(reply.authorities?.[0]).toMatchObject({ type: 'SOA', name: 'example.org' });
    }
  });

  it('K8SX-2: with headless, a headless Service answers with its ready endpoints, by name too; without it, NXDOMAIN', async () => {
    const port = await serve();
    expect(rows((await queryUdp(port, 'db.demo.example.org.')).answers)).toEqual([
      ['db.demo.example.org', 'A', 5, '10.244.0.5'],
      ['db.demo.example.org', 'A', 5, '10.244.0.6'],
    ]);
    expect(rows((await queryUdp(port, 'DB-0.db.demo.example.org.')).answers)).toEqual([['DB-0.db.demo.example.org', 'A', 5, '10.244.0.5']]);
    const srv = await queryUdp(port, '_pg._tcp.db.demo.example.org.', { type: 'SRV' });
    expect(records(srv.answers).map((record) => record.data)).toEqual([
      { priority: 0, weight: 50, port: 5432, target: 'db-0.db.demo.example.org' },
      { priority: 0, weight: 50, port: 5432, target: '10-244-0-6.db.demo.example.org' },
    ]);
    expect((await queryUdp(port, '10-244-0-7.db.demo.example.org.')).rcode).toBe('NXDOMAIN');

    const plainPort = await serve('k8s_external example.org');
    expect((await queryUdp(plainPort, 'db.demo.example.org.')).rcode).toBe('NXDOMAIN');
  });

  it('K8SX-1, K8SX-2: ttl applies to A/AAAA/PTR/glue, the kubernetes TTL to SRV and CNAME; PTR for external IPs under the first zone; fallthrough passes NXDOMAIN on', async () => {
    const port = await serve('k8s_external example.org 2.0.192.in-addr.arpa {\n        ttl 30\n        apex ext\n        fallthrough\n    }', createCluster(CLUSTER), 'ttl 7');
    const a = await queryUdp(port, 'web.demo.example.org.');
    expect(records(a.answers).map(({ type, ttl }) => [type, ttl])).toEqual([['A', 30], ['A', 30], ['CNAME', 7], ['A', 300], ['CNAME', 7], ['A', 300]]);
    const srv = await queryUdp(port, '_http._tcp.web.demo.example.org.', { type: 'SRV' });
    expect(records(srv.answers).map(({ ttl }) => ttl)).toEqual([7, 7]);
    expect(records(srv.additionals)[0]).toMatchObject({ type: 'A', ttl: 30 });
    expect(rows((await queryUdp(port, '10.2.0.192.in-addr.arpa.', { type: 'PTR' })).answers)).toEqual([['10.2.0.192.in-addr.arpa', 'PTR', 30, 'web.demo.example.org']]);
    // NXDOMAIN falls through to forward (the upstream's NXDOMAIN, without AA); NODATA does not.
    const missing = await queryUdp(port, 'nope.demo.example.org.');
    expect(missing.rcode).toBe('NXDOMAIN');
    expect(missing.flags! & AA).toBe(0);
    expect(upstream.queriesFor('nope.demo.example.org')).toHaveLength(1);
    const nodata = await queryUdp(port, 'demo.example.org.');
    expect([nodata.rcode, nodata.flags! & AA]).toEqual(['NOERROR', AA]);
    expect((await queryUdp(port, '99.2.0.192.in-addr.arpa.', { type: 'PTR' })).flags! & AA).toBe(0);
  });
});

describe('k8s_external apex (K8SX-3)', () => {
  it("K8SX-3: SOA and NS at the apex, ns1.<apex> with this server's addresses, other names under <apex> NXDOMAIN", async () => {
    const port = await serve();
    const soa = await queryUdp(port, 'example.org.', { type: 'SOA' });
    expect(rows(soa.answers)).toEqual([
      ['example.org', 'SOA', 5, { mname: 'ns1.dns.example.org', rname: 'hostmaster.dns.example.org', serial: 0, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 }],
    ]);
    const ns = await queryUdp(port, 'example.org.', { type: 'NS' });
    expect(rows(ns.answers)).toEqual([['example.org', 'NS', 5, 'ns1.dns.example.org']]);
    const glue = records(ns.additionals).filter((record) => record.type !== 'OPT');
    expect(glue.every((record) => record.name === 'ns1.dns.example.org' && record.ttl === 5)).toBe(true);
    const a = await queryUdp(port, 'ns1.dns.example.org.');
    expect(records(a.answers).map((record) => record.data)).toEqual(glue.filter((record) => record.type === 'A').map((record) => record.data));
    expect(await queryUdp(port, 'dns.example.org.')).toMatchObject({ rcode: 'NOERROR', answers: [] });
    expect((await queryUdp(port, 'x.dns.example.org.')).rcode).toBe('NXDOMAIN');
    expect((await queryUdp(port, 'a.ns1.dns.example.org.')).rcode).toBe('NXDOMAIN');
    expect(await queryUdp(port, 'example.org.', { type: 'MX' })).toMatchObject({ rcode: 'NOERROR', answers: [] });
  });

  it('K8SX-3: the serial is 0 until an existing Service changes its external IPs, then the time of that change', async () => {
    const cluster = createCluster(CLUSTER);
    const port = await serve(HEADLESS, cluster);
    const serial = async () => (records((await queryUdp(port, 'example.org.', { type: 'SOA' })).answers)[0]!.data as { serial: number }).serial;
    cluster.apply('apiVersion: v1\nkind: Service\nmetadata: { name: added, namespace: demo }\nspec: { clusterIP: 10.96.100.20, externalIPs: [192.0.2.20] }\n');
    expect(await serial()).toBe(0);
    const before = Math.floor(Date.now() / 1000);
    cluster.apply('apiVersion: v1\nkind: Service\nmetadata: { name: added, namespace: demo }\nspec: { clusterIP: 10.96.100.20, externalIPs: [192.0.2.21] }\n');
    expect(await serial()).toBeGreaterThanOrEqual(before);
    expect(rows((await queryUdp(port, 'added.demo.example.org.')).answers)).toEqual([['added.demo.example.org', 'A', 5, '192.0.2.21']]);
  });
});

describe('k8s_external setup (K8SX-1)', () => {
  it("K8SX-1: CoreDNS's setup errors, with file:line", () => {
    expectSetupError('.:53 {\n    k8s_external example.org {\n        ttl\n    }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'ttl'$/);
    expectSetupError('.:53 {\n    k8s_external example.org {\n        ttl abc\n    }\n}\n', 3, /^plugin\/k8s_external: strconv.Atoi: parsing "abc": invalid syntax$/);
    expectSetupError('.:53 {\n    k8s_external example.org {\n        ttl 3601\n    }\n}\n', 3, /^ttl must be in range \[0, 3600\]: 3601$/);
    expectSetupError('.:53 {\n    k8s_external example.org {\n        apex\n    }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'apex'$/);
    expectSetupError('.:53 {\n    k8s_external example.org {\n        headless foo\n    }\n}\n', 3, /^plugin\/k8s_external: unknown property 'foo'$/);
    expectSetupError('.:53 {\n    k8s_external example.org {\n        upstream\n    }\n}\n', 3, /^plugin\/k8s_external: unknown property 'upstream'$/);
  });

  it('K8SX-1: a block without the kubernetes plugin fails at startup', async () => {
    await expect(startServer({ corefile: '.:0 {\n    k8s_external example.org\n    whoami\n}\n', dnsPort: 0 })).rejects.toThrow(
      'Corefile:2 - Error during parsing: plugin/k8s_external: kubernetes plugin not loaded',
    );
  });
});
