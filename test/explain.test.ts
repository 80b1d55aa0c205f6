// Issue 13: `clusterdns explain` and the explain endpoint, as a user runs
// them: a real server (the clusterdns command) with manifests, a hosts file
// and a test upstream on loopback; each explanation is asked of the running
// server's endpoint over HTTP and of the command (--json, spawned), and must
// say the same.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildQuery, queryUdp, sendUdp } from './support/dns.ts';
import { freePort, runCli, startCli, type Started } from './support/process.ts';
import { TestUpstream } from './support/upstreams.ts';
import { searchOrigin } from '../plugins/explain/offenders.ts';
import { SpaceSaving } from '../src/explain/topk.ts';

const MANIFESTS = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-a, namespace: demo, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.244.1.5]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec: {clusterIP: None, ports: [{name: pg, port: 5432, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-a, namespace: demo, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints: [{addresses: [10.244.2.7]}, {addresses: [10.244.2.8]}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: demo}
spec: {clusterIP: None}
---
apiVersion: v1
kind: Service
metadata: {name: starting, namespace: demo}
spec: {clusterIP: None}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: starting-a, namespace: demo, labels: {kubernetes.io/service-name: starting}}
addressType: IPv4
endpoints: [{addresses: [10.244.3.1], conditions: {ready: false}}, {addresses: [10.244.3.2], conditions: {ready: false}}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: demo}
spec: {type: ExternalName, externalName: external.example.net}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: hidden}
spec: {clusterIP: 10.96.0.30}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
status: {podIP: 10.244.4.4}
`;

interface Step {
  plugin: string;
  outcome: string;
  detail: Record<string, unknown>;
}
interface Explained {
  rcode: string;
  answer: { name: string; type: string; ttl: number; data: string }[];
  authority: { name: string; type: string; ttl: number; data: string }[];
  additional: unknown[];
  steps: Step[];
  server: { listener: string; zone: string; candidates: string[] };
  timeMs: number;
}

let dir: string;
let corefile: string;
let dnsPort: number;
let httpPort: number;
let metricsPort: number;
let upstream: TestUpstream;
let server: Started;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'clusterdns-explain-'));
  mkdirSync(join(dir, 'cluster'));
  writeFileSync(join(dir, 'cluster', 'objects.yaml'), MANIFESTS);
  writeFileSync(join(dir, 'hosts'), '10.0.0.1 web.example.org\n10.0.0.2 db.example.org\n');
  upstream = await TestUpstream.start({
    records: {
      'www.example.net A': [{ name: 'www.example.net', type: 'A', ttl: 300, data: '192.0.2.10' }],
      'api.example.net A': [{ name: 'api.example.net', type: 'A', ttl: 300, data: '192.0.2.11' }],
      'external.example.net A': [{ name: 'external.example.net', type: 'A', ttl: 300, data: '192.0.2.12' }],
    },
  });
  [dnsPort, httpPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  corefile = join(dir, 'Corefile');
  writeFileSync(corefile, `cluster.local:${dnsPort} {
    explain 127.0.0.1:${httpPort}
    kubernetes cluster.local {
        manifests ${join(dir, 'cluster')}
        namespaces demo hidden2 ghost
        pods verified
    }
}
.:${dnsPort} {
    explain 127.0.0.1:${httpPort} {
        top 5
    }
    prometheus 127.0.0.1:${metricsPort}
    cache 30
    rewrite name exact alias.example.org web.example.org
    hosts ${join(dir, 'hosts')} example.org {
        fallthrough
    }
    forward . ${upstream.hostPort}
}
`);
  server = startCli(['-conf', corefile]);
  await server.waitForOutput('clusterdns-', 15_000);
}, 30_000);

afterAll(async () => {
  server?.child.kill('SIGTERM');
  await server?.exited;
  await upstream?.stop();
});

async function fromEndpoint(name: string, type = 'A', accept = 'application/json'): Promise<Response> {
  return fetch(`http://127.0.0.1:${httpPort}/explain?name=${encodeURIComponent(name)}&type=${type}`, { headers: { accept } });
}

async function viaEndpoint(name: string, type = 'A'): Promise<Explained> {
  const response = await fromEndpoint(name, type);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/json');
  return (await response.json()) as Explained;
}

async function viaCli(name: string, type: string, ...flags: string[]): Promise<Explained> {
  const result = await runCli(['explain', name, type, '-conf', corefile, '--json', ...flags]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Explained;
}

/**
 * What must be the same whoever explains: everything but the time taken,
 * upstream round trips, and the SOA serial (the time the index last changed,
 * which differs between the running server and an offline setup).
 */
function content(explained: Explained): unknown {
  return JSON.parse(JSON.stringify({ ...explained, timeMs: 0 }, (key, value) => {
    if (key === 'rttMs') return 0;
    if (key === 'data' && typeof value === 'string' && value.startsWith('ns.dns.')) return value.replace(/ \d+ /, ' SERIAL ');
    return value;
  }));
}

function step(explained: Explained, plugin: string): Step {
  const found = explained.steps.find((candidate) => candidate.plugin === plugin);
  expect(found, `a ${plugin} step in ${JSON.stringify(explained.steps)}`).toBeDefined();
  return found!;
}

/** Asks the running server's endpoint and the command run offline (its own setup, no ports), and checks they agree. */
async function explainBoth(name: string, type = 'A'): Promise<Explained> {
  const live = await viaEndpoint(name, type);
  const offline = await viaCli(name, type, '--offline');
  expect(content(offline)).toEqual(content(live));
  return live;
}

describe('explain: kubernetes reasons, the same from the endpoint and the command (issue 13)', () => {
  it('a Service: how the name parsed and the object matched', async () => {
    const explained = await explainBoth('web.demo.svc.cluster.local');
    expect(explained.rcode).toBe('NOERROR');
    expect(explained.server).toMatchObject({ listener: `dns://:${dnsPort}`, zone: 'cluster.local.', candidates: ['cluster.local.', '.'] });
    expect(explained.answer).toEqual([{ name: 'web.demo.svc.cluster.local.', type: 'A', ttl: 5, data: '10.96.0.20' }]);
    const kubernetes = step(explained, 'kubernetes');
    expect(kubernetes.outcome).toBe('answered');
    expect(kubernetes.detail).toMatchObject({
      zone: 'cluster.local.',
      parsed: { kind: 'svc', namespace: 'demo', service: 'web' },
      matched: { service: 'demo/web', type: 'ClusterIP', clusterIPs: ['10.96.0.20'], readyEndpoints: 1 },
    });
  }, 20_000);

  const reasons: [string, string, string, RegExp][] = [
    ['namespace not exposed by `namespaces`', 'web.hidden.svc.cluster.local', 'NXDOMAIN', /^namespace hidden is not exposed: the namespaces option lists only demo hidden2 ghost$/],
    ['no such namespace', 'web.ghost.svc.cluster.local', 'NXDOMAIN', /^no such namespace: ghost$/],
    ['no such Service', 'nosuch.demo.svc.cluster.local', 'NXDOMAIN', /^no such Service: nosuch in namespace demo$/],
    ['a Service without ready endpoints', 'empty.demo.svc.cluster.local', 'NXDOMAIN', /^Service demo\/empty has no ready endpoints$/],
    ['publishNotReadyAddresses off', 'starting.demo.svc.cluster.local', 'NXDOMAIN', /^publishNotReadyAddresses is off: the 2 endpoint address\(es\) of demo\/starting are not ready/],
    ['endpoint hostname not set', 'web-0.db.demo.svc.cluster.local', 'NXDOMAIN', /^endpoint hostname not set: no endpoint of demo\/db has a hostname, so they are named by IP \(10-244-2-7 10-244-2-8\)/],
    ['pod name not known', 'client.demo.pod.cluster.local', 'NXDOMAIN', /^pod name not known: 'client' is not a dashed IP address/],
    ['pods verified, no such pod', '10-244-9-9.demo.pod.cluster.local', 'NXDOMAIN', /^pods verified: no pod in namespace demo has IP 10\.244\.9\.9$/],
  ];
  for (const [what, name, rcode, reason] of reasons) {
    it(`${what}: ${name}`, async () => {
      const explained = await explainBoth(name);
      expect(explained.rcode).toBe(rcode);
      const kubernetes = step(explained, 'kubernetes');
      expect(kubernetes.outcome).toBe(rcode);
      expect(kubernetes.detail['reason']).toMatch(reason);
      expect(explained.authority.map((record) => record.type)).toEqual(['SOA']);
    }, 20_000);
  }

  it('type not served at this name: AAAA of an IPv4 Service is NODATA', async () => {
    const explained = await explainBoth('web.demo.svc.cluster.local', 'AAAA');
    expect(explained.rcode).toBe('NOERROR');
    expect(explained.answer).toEqual([]);
    const kubernetes = step(explained, 'kubernetes');
    expect(kubernetes.outcome).toBe('NODATA');
    expect(kubernetes.detail['reason']).toBe('type not served at this name: demo/web has A and SRV records, not AAAA');
  }, 20_000);

  it('an ExternalName target: the CNAME, then the server asked again and the upstream that answered', async () => {
    const explained = await explainBoth('ext.demo.svc.cluster.local');
    expect(explained.answer.map((record) => `${record.type} ${record.data}`)).toEqual(['CNAME external.example.net.', 'A 192.0.2.12']);
    expect(step(explained, 'kubernetes').detail['matched']).toMatchObject({ type: 'ExternalName', externalName: 'external.example.net' });
    expect(explained.steps.map((candidate) => `${candidate.plugin}: ${candidate.outcome}`)).toEqual([
      'explain: passed on', 'kubernetes: answered',
      'server: re-entered', 'explain: passed on', 'prometheus: passed on', 'cache: miss', 'rewrite: passed on', 'hosts: passed on', 'forward: answered',
    ]);
    expect(step(explained, 'server').detail).toEqual({ question: 'external.example.net. A', zone: '.' });
  }, 20_000);
});

describe('explain: cache, forward and hosts (issue 13)', () => {
  it('a forward: the upstream chosen, its round trip and rcode; the cache missed and stored it', async () => {
    const explained = await explainBoth('api.example.net');
    expect(explained.rcode).toBe('NOERROR');
    expect(step(explained, 'cache')).toMatchObject({ outcome: 'miss', detail: { stored: 'positive for 30s' } });
    const forward = step(explained, 'forward');
    expect(forward.outcome).toBe('answered');
    const [line] = forward.detail['lines'] as { upstreams: string[]; tries: { upstream: string; rcode: string; rttMs: number }[] }[];
    expect(line!.upstreams).toEqual([upstream.hostPort]);
    expect(line!.tries).toEqual([expect.objectContaining({ upstream: upstream.hostPort, proto: 'udp', rcode: 'NOERROR' })]);
    expect(line!.tries[0]!.rttMs).toBeGreaterThan(0);
  }, 20_000);

  it('a cache hit with the TTL left, from the running server (the endpoint, and the command asking it)', async () => {
    const reply = await queryUdp(dnsPort, 'www.example.net');
    expect(reply.rcode).toBe('NOERROR');
    const live = await viaEndpoint('www.example.net');
    const cache = step(live, 'cache');
    expect(cache.outcome).toBe('hit');
    expect(cache.detail).toMatchObject({ entry: 'positive', rcode: 'NOERROR', ttlStored: 30 });
    expect(cache.detail['ttlLeft']).toBeGreaterThanOrEqual(28);
    expect(live.steps.map((candidate) => candidate.plugin)).toEqual(['explain', 'prometheus', 'cache']);
    expect(live.answer).toEqual([{ name: 'www.example.net.', type: 'A', ttl: cache.detail['ttlLeft'], data: '192.0.2.10' }]);
    // The Corefile configures the endpoint: the command asks the running server, so it sees the same cache.
    const command = await viaCli('www.example.net', 'A');
    expect(step(command, 'cache')).toMatchObject({ outcome: 'hit', detail: { entry: 'positive', ttlStored: 30 } });
    expect(content({ ...command, steps: [], answer: [] })).toEqual(content({ ...live, steps: [], answer: [] }));
  }, 20_000);

  it('a hosts answer, and the text form of the same explanation', async () => {
    const explained = await explainBoth('web.example.org');
    expect(step(explained, 'hosts')).toMatchObject({ outcome: 'answered', detail: { file: join(dir, 'hosts'), answer: 1 } });
    // The cache in front caps the hosts file's 3600 s to its 30.
    expect(explained.answer).toEqual([{ name: 'web.example.org.', type: 'A', ttl: 30, data: '10.0.0.1' }]);
    // A name not explained yet: the running server's cache has not stored it.
    const text = await (await fromEndpoint('db.example.org', 'A', 'text/plain')).text();
    expect(text).toMatch(/^;; db\.example\.org\. A from 127\.0\.0\.1 over udp\n/);
    expect(text).toMatch(/\n 5\. hosts: answered \(rcode=NOERROR, answer=1, authority=0, additional=0, file=.*\/hosts\)\n/);
    expect(text).toContain('db.example.org.\t30\tIN\tA\t10.0.0.2');
    const command = await runCli(['explain', 'db.example.org', '-conf', corefile, '--offline']);
    expect(command.code).toBe(0);
    expect(command.stdout.replace(/[\d.]+ ms/, 'T ms')).toBe(text.replace(/[\d.]+ ms/, 'T ms'));
  }, 20_000);

  it('a rewrite: the rule applied and the new name, the plugin after it asked that name, the answer under the name asked', async () => {
    const explained = await explainBoth('alias.example.org');
    const rewrite = step(explained, 'rewrite');
    expect(rewrite.outcome).toBe('changed the reply');
    expect(rewrite.detail).toMatchObject({ rules: [{ rule: 1, mode: 'stop', name: 'alias.example.org. -> web.example.org.' }], passedOnAs: ['web.example.org. A'] });
    expect(step(explained, 'hosts').outcome).toBe('answered');
    expect(explained.answer).toEqual([{ name: 'alias.example.org.', type: 'A', ttl: 30, data: '10.0.0.1' }]);
    const unrelated = await viaEndpoint('nothing-to-rewrite.example.net');
    expect(step(unrelated, 'rewrite')).toMatchObject({ outcome: 'passed on', detail: { rules: 'no rule applies' } });
  }, 20_000);

  it('bad input: no name is 400 with a JSON error; an unknown type is a usage error of the command', async () => {
    const missing = await fetch(`http://127.0.0.1:${httpPort}/explain`);
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'name is required: /explain?name=NAME&type=TYPE&from=IP' });
    const badType = await fromEndpoint('web.example.org', 'NOSUCH');
    expect(badType.status).toBe(400);
    const result = await runCli(['explain', 'web.example.org', 'NOSUCH', '-conf', corefile, '--offline']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^unknown query type 'NOSUCH'\nUsage: clusterdns explain/);
    const usage = await runCli(['explain']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Usage: clusterdns explain NAME [TYPE]');
  }, 20_000);
});

describe('explain --search: a pod\'s search-path walk against this server (issue 13 item 3)', () => {
  it('example.com from namespace demo: glibc sends 8 queries (3 suffixes then the name, A and AAAA each); the command and the endpoint agree', async () => {
    const result = await runCli(['explain', 'example.com', '-conf', corefile, '--search', '--namespace', 'demo', '--json', '--offline']);
    expect(result.code, result.stderr).toBe(0);
    const offline = JSON.parse(result.stdout) as { queries: { name: string; type: string; rcode: string }[]; total: number; wastedOnNxdomain: number; advice: string[] };
    expect(offline.queries.map(({ name, type }) => `${name} ${type}`)).toEqual([
      'example.com.demo.svc.cluster.local. A', 'example.com.demo.svc.cluster.local. AAAA',
      'example.com.svc.cluster.local. A', 'example.com.svc.cluster.local. AAAA',
      'example.com.cluster.local. A', 'example.com.cluster.local. AAAA',
      'example.com. A', 'example.com. AAAA',
    ]);
    expect(offline.total).toBe(8);
    expect(offline.queries.slice(0, 6).every((query) => query.rcode === 'NXDOMAIN')).toBe(true);
    expect(offline.wastedOnNxdomain).toBeGreaterThanOrEqual(6);
    expect(offline.advice.join(' ')).toMatch(/autopath @kubernetes/);
    const response = await fetch(`http://127.0.0.1:${httpPort}/explain?name=example.com&search=1&namespace=demo`);
    expect(response.status).toBe(200);
    const live = (await response.json()) as typeof offline;
    expect(live.queries.map(({ name, type, rcode }) => `${name} ${type} ${rcode}`)).toEqual(offline.queries.map(({ name, type, rcode }) => `${name} ${type} ${rcode}`));
  }, 30_000);
});

describe('explain: top offenders, bounded (issue 13)', () => {
  it('NXDOMAIN names, search-path waste by the name meant, and clients; memory bounded under many distinct names; metrics without names', async () => {
    const before = (await (await fetch(`http://127.0.0.1:${httpPort}/explain/top`)).json()) as TopReport;
    const totalBefore = before.servers.reduce((sum, server) => sum + server.views.nxdomain.total, 0);
    const send = (name: string) => sendUdp(dnsPort, buildQuery(name));
    // 3,000 distinct names the upstream does not know, a few at a time.
    for (let i = 0; i < 3000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => send(`random-${i + j}.nowhere.test`)));
    }
    // A name a pod asked without its trailing dot: the search list appends the namespace's suffix.
    for (let i = 0; i < 40; i++) await send('web.demo.svc.cluster.local.demo.svc.cluster.local');
    for (let i = 0; i < 30; i++) await send('example.com.demo.svc.cluster.local');
    const report = (await (await fetch(`http://127.0.0.1:${httpPort}/explain/top`)).json()) as TopReport;
    const cluster = report.servers.find((candidate) => candidate.views.search_waste.total > 0)!;
    expect(cluster.views.search_waste.top.slice(0, 2)).toEqual([
      { key: 'web.demo.svc.cluster.local.', count: 40, error: 0 },
      { key: 'example.com.', count: 30, error: 0 },
    ]);
    expect(cluster.views.nxdomain.top[0]).toEqual({ key: 'web.demo.svc.cluster.local.demo.svc.cluster.local.', count: 40, error: 0 });
    const root = report.servers.find((candidate) => candidate.views.nxdomain.total >= 3000)!;
    expect(root.views.nxdomain.total - totalBefore).toBeGreaterThanOrEqual(3000);
    // `top 5`: five shown, 25 counters kept, whatever the number of distinct names.
    expect(root.views.nxdomain.top).toHaveLength(5);
    expect(root.views.nxdomain.tracked).toBe(25);
    expect(root.views.nxdomain.capacity).toBe(25);
    expect(root.views.clients.top[0]).toMatchObject({ key: '127.0.0.1' });

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain(`clusterdns_explain_tracked{server="dns://:${dnsPort}",zone=".",view="nxdomain"} 25`);
    expect(metrics).toMatch(new RegExp(`clusterdns_explain_observed_total\\{server="dns://:${dnsPort}",zone=".",view="nxdomain"\\} \\d{4}`));
    expect(metrics).not.toMatch(/clusterdns_explain_[a-z_]+\{[^}]*(random-|example\.com)/);

    const text = await (await fetch(`http://127.0.0.1:${httpPort}/explain/top`, { headers: { accept: 'text/plain' } })).text();
    expect(text).toMatch(/top search-path waste \(by the name meant\): \d+ counted/);
    expect(text).toMatch(/\n {6}40 {2}web\.demo\.svc\.cluster\.local\.\n/);
  }, 60_000);
});

interface TopReport {
  servers: { server: string; zones: string[]; views: Record<'nxdomain' | 'search_waste' | 'clients', { total: number; tracked: number; capacity: number; top: { key: string; count: number; error: number }[] }> }[];
}

describe('space-saving and search suffixes (units behind the top views)', () => {
  it('keeps capacity counters whatever the number of keys; a key seen more than total/capacity times is always held', () => {
    const sketch = new SpaceSaving(10);
    for (let i = 0; i < 100_000; i++) sketch.add(i % 7 === 0 ? 'hot' : `cold-${i}`);
    expect(sketch.size).toBe(10);
    expect(sketch.total).toBe(100_000);
    const [top] = sketch.top(1);
    expect(top!.key).toBe('hot');
    // Exact to within its error: 14,286 real occurrences.
    expect(top!.count - top!.error).toBeLessThanOrEqual(14_286);
    expect(top!.count).toBeGreaterThanOrEqual(14_286);
  });

  it('groups a failed name by the name the client meant', () => {
    const zones = ['cluster.local.'];
    expect(searchOrigin('web.demo.svc.cluster.local.demo.svc.cluster.local.', zones)).toBe('web.demo.svc.cluster.local.');
    expect(searchOrigin('web.demo.svc.cluster.local.svc.cluster.local.', zones)).toBe('web.demo.svc.cluster.local.');
    expect(searchOrigin('example.com.demo.svc.cluster.local.', zones)).toBe('example.com.');
    expect(searchOrigin('example.com.cluster.local.', zones)).toBe('example.com.');
    // Names of the schema itself are not waste.
    expect(searchOrigin('nosuch.demo.svc.cluster.local.', zones)).toBeNull();
    expect(searchOrigin('_http._tcp.web.demo.svc.cluster.local.', zones)).toBeNull();
    expect(searchOrigin('10-1-2-3.demo.pod.cluster.local.', zones)).toBeNull();
    expect(searchOrigin('example.com.', zones)).toBeNull();
  });
});
