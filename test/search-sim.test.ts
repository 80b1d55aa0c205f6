// The search-path simulation (issue 13, item 3): the queries a pod's stub
// resolver sends for a name, run against a real server through the embedding
// API; and, as root, the queries `getent ahosts` really sends from a network
// namespace with a pod's resolv.conf, captured by clusterdns's log plugin and
// compared with the simulation's list.

import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulateSearch, formatSearchSimulation, searchCandidates, searchConfig, type SearchOptions, type SearchSimulation } from '../src/explain/search.ts';
import { startServer, type ClusterDnsServer } from '../src/index.ts';
import { BIN, startCommand } from './support/process.ts';

const run = promisify(execFile);

/** examples/cluster (web, db, dual, search in namespace demo) and a small example.com zone, with every query logged. */
function fixture(): { corefile: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'clusterdns-search-'));
  const zone = join(dir, 'db.example.com');
  writeFileSync(zone, [
    '$ORIGIN example.com.',
    '@ 3600 IN SOA ns1 admin 1 7200 3600 1209600 3600',
    '@ 3600 IN A 192.0.2.10',
    'www 3600 IN A 192.0.2.11',
    'u.v.w.x.y 3600 IN A 192.0.2.12',
    '',
  ].join('\n'));
  const corefile = `.:{$DNS_PORT} {
    log . "{type} {name} {rcode}"
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests ${resolve('examples/cluster')}
    }
    file ${zone} example.com
}
`;
  return { corefile, dir };
}

const { corefile: COREFILE, dir: FIXTURE_DIR } = fixture();
let server: ClusterDnsServer;
beforeAll(async () => {
  server = await startServer({ corefile: COREFILE, env: { DNS_PORT: '0' } });
});
afterAll(async () => {
  await server.close();
  rmSync(FIXTURE_DIR, { recursive: true, force: true });
});

const FROM_DEMO: SearchOptions = { namespace: 'demo' };

function simulate(name: string, options: SearchOptions = FROM_DEMO): Promise<SearchSimulation> {
  return simulateSearch(name, options, (query, type) => server.resolve(query, type));
}

const sent = (simulation: SearchSimulation): string[] => simulation.queries.map(({ type, name, rcode }) => `${type} ${name} ${rcode}`);

describe('search-path simulation against the server (embedding API)', () => {
  it('example.com from namespace demo, glibc, defaults: 3 suffixes then the name, A and AAAA each: 8 queries, 6 wasted on NXDOMAIN', async () => {
    const simulation = await simulate('example.com');
    expect(sent(simulation)).toEqual([
      'A example.com.demo.svc.cluster.local. NXDOMAIN',
      'AAAA example.com.demo.svc.cluster.local. NXDOMAIN',
      'A example.com.svc.cluster.local. NXDOMAIN',
      'AAAA example.com.svc.cluster.local. NXDOMAIN',
      'A example.com.cluster.local. NXDOMAIN',
      'AAAA example.com.cluster.local. NXDOMAIN',
      'A example.com. NOERROR',
      'AAAA example.com. NOERROR',
    ]);
    expect(simulation).toMatchObject({ winner: 'example.com.', result: 'answer', total: 8, wastedOnNxdomain: 6, ndots: 5 });
    expect(simulation.search).toEqual(['demo.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    expect(simulation.advice).toEqual([
      "Write the name with a trailing dot, 'example.com.': 2 queries instead of 8.",
      expect.stringMatching(/^Or set 'ndots:1' in the pod's dnsConfig options/),
      expect.stringMatching(/^Or add 'autopath @kubernetes' \(with 'pods verified' .*2 queries instead of 8\.$/),
    ]);
    // The JSON shape: queries in the order sent, each with at least name, type and rcode.
    expect(JSON.parse(JSON.stringify(simulation)).queries[6]).toMatchObject({ name: 'example.com.', type: 'A', rcode: 'NOERROR', answers: 1 });
    const text = formatSearchSimulation(simulation);
    expect(text).toMatch(/^Search-path walk of example\.com \(glibc, ndots 5, search demo\.svc\.cluster\.local svc\.cluster\.local cluster\.local\)\n/);
    expect(text).toMatch(/^ {3}7 {2}A {5}example\.com\. +NOERROR {2}1 record$/m);
    expect(text).toMatch(/^ {3}8 {2}AAAA {2}example\.com\. +NOERROR {2}no records$/m);
    expect(text).toContain('Answered by example.com. (candidate 4 of 4 tried): 8 queries, 6 wasted on NXDOMAIN.\n');
  });

  it('a Service short name is answered by the first suffix: 2 queries, nothing to advise', async () => {
    const simulation = await simulate('web');
    expect(sent(simulation)).toEqual(['A web.demo.svc.cluster.local. NOERROR', 'AAAA web.demo.svc.cluster.local. NOERROR']);
    expect(simulation).toMatchObject({ winner: 'web.demo.svc.cluster.local.', total: 2, wastedOnNxdomain: 0, advice: [] });
  });

  it('an ExternalName short name wins at its first suffix: the CNAME is an answer', async () => {
    const simulation = await simulate('search');
    expect(simulation.winner).toBe('search.demo.svc.cluster.local.');
    expect(simulation.queries[0]).toMatchObject({ type: 'A', rcode: 'NOERROR' });
    expect(simulation.queries[0]!.answers).toBeGreaterThan(0);
  });

  it('service.namespace from another namespace: one NXDOMAIN suffix, then the Service, with the full name as advice', async () => {
    const simulation = await simulate('web.demo', { namespace: 'default' });
    expect(sent(simulation)).toEqual([
      'A web.demo.default.svc.cluster.local. NXDOMAIN',
      'AAAA web.demo.default.svc.cluster.local. NXDOMAIN',
      'A web.demo.svc.cluster.local. NOERROR',
      'AAAA web.demo.svc.cluster.local. NOERROR',
    ]);
    expect(simulation.advice[0]).toBe("Write the full name with a trailing dot, 'web.demo.svc.cluster.local.': 2 queries instead of 4.");
  });

  it('a trailing dot: only the name, whatever ndots says', async () => {
    const simulation = await simulate('web.demo.svc.cluster.local.');
    expect(sent(simulation)).toEqual(['A web.demo.svc.cluster.local. NOERROR', 'AAAA web.demo.svc.cluster.local. NOERROR']);
    expect(simulation.advice).toEqual([]);
    expect(searchCandidates('x.', 'musl', searchConfig(FROM_DEMO))).toEqual([{ name: 'x.', searched: false }]);
  });

  it('a name with 5 dots or more goes out as it is first: 2 queries when it exists; when it does not, glibc walks the suffixes after it and musl stops', async () => {
    expect(sent(await simulate('u.v.w.x.y.example.com'))).toEqual(['A u.v.w.x.y.example.com. NOERROR', 'AAAA u.v.w.x.y.example.com. NOERROR']);

    const glibc = await simulate('a.b.c.d.e.example.com');
    expect(glibc.queries.map(({ name }) => name)).toEqual([
      'a.b.c.d.e.example.com.', 'a.b.c.d.e.example.com.',
      'a.b.c.d.e.example.com.demo.svc.cluster.local.', 'a.b.c.d.e.example.com.demo.svc.cluster.local.',
      'a.b.c.d.e.example.com.svc.cluster.local.', 'a.b.c.d.e.example.com.svc.cluster.local.',
      'a.b.c.d.e.example.com.cluster.local.', 'a.b.c.d.e.example.com.cluster.local.',
    ]);
    expect(glibc).toMatchObject({ winner: null, result: 'NXDOMAIN', total: 8, wastedOnNxdomain: 8 });

    const musl = await simulate('a.b.c.d.e.example.com', { ...FROM_DEMO, resolver: 'musl' });
    expect(sent(musl)).toEqual(['A a.b.c.d.e.example.com. NXDOMAIN', 'AAAA a.b.c.d.e.example.com. NXDOMAIN']);
  });

  it('NODATA on a suffix (the namespace name demo.svc.cluster.local.): glibc goes on and resends a SERVFAIL pair; musl stops there', async () => {
    const glibc = await simulate('demo');
    expect(sent(glibc)).toEqual([
      'A demo.demo.svc.cluster.local. NXDOMAIN',
      'AAAA demo.demo.svc.cluster.local. NXDOMAIN',
      'A demo.svc.cluster.local. NOERROR',
      'AAAA demo.svc.cluster.local. NOERROR',
      'A demo.cluster.local. NXDOMAIN',
      'AAAA demo.cluster.local. NXDOMAIN',
      // No plugin of this Corefile serves "demo.": the chain ends in SERVFAIL, and glibc asks twice (attempts:2).
      'A demo. SERVFAIL',
      'AAAA demo. SERVFAIL',
      'A demo. SERVFAIL',
      'AAAA demo. SERVFAIL',
    ]);
    expect(glibc).toMatchObject({ winner: null, result: 'NODATA', total: 10, wastedOnNxdomain: 4 });

    const musl = await simulate('demo', { ...FROM_DEMO, resolver: 'musl' });
    expect(musl.queries).toHaveLength(4);
    expect(musl).toMatchObject({ winner: null, result: 'NODATA' });
    expect(musl.advice.at(-1)).toMatch(/^musl ended the walk at demo\.svc\.cluster\.local\., which exists without addresses/);
  });

  it('a resolv.conf gives the search list, ndots and options; --ndots still wins', async () => {
    const resolvConf = 'nameserver 10.96.0.10\nsearch demo.svc.cluster.local svc.cluster.local\noptions ndots:2 attempts:1 no-aaaa\n';
    const simulation = await simulate('example.com', { resolvConf });
    expect(simulation.search).toEqual(['demo.svc.cluster.local', 'svc.cluster.local']);
    expect(sent(simulation)).toEqual(['A example.com.demo.svc.cluster.local. NXDOMAIN', 'A example.com.svc.cluster.local. NXDOMAIN', 'A example.com. NOERROR']);
    expect(searchConfig({ resolvConf, ndots: 1 }).ndots).toBe(1);
    expect(searchConfig({ resolvConf: 'options ndots:40\n' }).ndots).toBe(15);
  });
});

/** Why the capture cannot run here, or null. */
async function netnsSkipReason(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root: a network namespace is needed to capture what getent sends';
  for (const tool of ['ip', 'getent', 'timeout']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `'${tool}' is not installed`;
  }
  const probe = `clusterdns-probe-${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (added.status !== 0) return `cannot create a network namespace: ${added.stderr.trim()}`;
  spawnSync('ip', ['netns', 'delete', probe]);
  return null;
}

const netnsSkip = await netnsSkipReason();

describe('what glibc really sends: getent ahosts in a network namespace with a pod resolv.conf', () => {
  if (netnsSkip !== null) it.skip(`skipped: ${netnsSkip}`, () => {});

  const NAMESPACE = `clusterdns-search-${process.pid}`;
  const POD_RESOLV_CONF = 'search demo.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.1\noptions ndots:5\n';
  let served: ReturnType<typeof startCommand> | null = null;
  const netnsDirExisted = existsSync('/etc/netns');

  beforeAll(async () => {
    if (netnsSkip !== null) return;
    // ip netns exec bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf for the command it runs.
    spawnSync('ip', ['netns', 'add', NAMESPACE]);
    spawnSync('ip', ['netns', 'exec', NAMESPACE, 'ip', 'link', 'set', 'lo', 'up']);
    // A pod's eth0: an IPv4 address (and IPv6 link-local), which getaddrinfo's AI_ADDRCONFIG looks at.
    for (const command of [['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0'], ['addr', 'add', '10.244.0.7/24', 'dev', 'eth0'], ['link', 'set', 'peer0', 'up'], ['link', 'set', 'eth0', 'up']]) {
      spawnSync('ip', ['netns', 'exec', NAMESPACE, 'ip', ...command]);
    }
    mkdirSync(`/etc/netns/${NAMESPACE}`, { recursive: true });
    writeFileSync(`/etc/netns/${NAMESPACE}/resolv.conf`, POD_RESOLV_CONF);
    const corefile = join(FIXTURE_DIR, 'Corefile');
    writeFileSync(corefile, COREFILE);
    served = startCommand('ip', ['netns', 'exec', NAMESPACE, process.execPath, BIN, '-conf', corefile], { env: { DNS_PORT: '53' } });
    await served.waitForOutput('.:53\n', 15_000);
  }, 30_000);

  afterAll(async () => {
    if (netnsSkip !== null) return;
    if (served && served.child.exitCode === null) {
      served.child.kill('SIGTERM');
      await served.exited;
    }
    spawnSync('ip', ['netns', 'delete', NAMESPACE]);
    rmSync(`/etc/netns/${NAMESPACE}`, { recursive: true, force: true });
    if (!netnsDirExisted && readdirSync('/etc/netns').length === 0) rmSync('/etc/netns', { recursive: true });
  }, 15_000);

  /** The queries the server logged while `getent ahosts NAME` ran, up to a marker lookup made after it. */
  let markers = 0;
  async function captured(name: string): Promise<string[]> {
    const before = served!.output().stdout.length;
    await run('ip', ['netns', 'exec', NAMESPACE, 'timeout', '15', 'getent', 'ahosts', name]).catch(() => {});
    const marker = `mark-${++markers}.example.com.`;
    await run('ip', ['netns', 'exec', NAMESPACE, 'timeout', '15', 'getent', 'ahosts', marker]).catch(() => {});
    await served!.waitForOutput(`AAAA ${marker} NXDOMAIN`, 5_000);
    const lines = served!.output().stdout.slice(before).split('\n');
    const logged = lines.flatMap((line) => /^\[INFO\] (A|AAAA) (\S+) (\S+)$/.exec(line)?.slice(1, 4).join(' ') ?? []);
    return logged.slice(0, logged.indexOf(`A ${marker} NXDOMAIN`));
  }

  for (const name of ['example.com', 'web', 'web.demo', 'web.demo.svc.cluster.local.', 'u.v.w.x.y.example.com', 'a.b.c.d.e.example.com', 'demo']) {
    it.skipIf(netnsSkip !== null)(`getent ahosts ${name}: the queries and their order are the simulation's`, async () => {
      const simulation = await simulate(name, { resolvConf: POD_RESOLV_CONF });
      expect(await captured(name)).toEqual(sent(simulation));
    }, 40_000);
  }
});
