// hosts over real sockets: file and inline entries, PTR, NODATA, fallthrough,
// reload and the STOCK-4 forms (k3s NodeHosts, minikube host.minikube.internal).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { planFromCorefile } from '../src/config.ts';
import { parseCorefile } from '../src/corefile/parser.ts';
import { setLogSink } from '../src/log.ts';
import { registry } from '../src/metrics.ts';
import { isDirective } from '../src/registry.ts';
import { parseAddress, parseHosts, reverseToKey } from '../plugins/hosts/hostsfile.ts';
import { queryUdp, startServer as startServerOnce, type DecodedReply, type RunningServer } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';

/**
 * startServer, again when the kernel-chosen UDP port is taken for TCP
 * (EADDRINUSE: another process holds that TCP port); the core binds both on one port.
 */
async function startServer(...args: Parameters<typeof startServerOnce>): ReturnType<typeof startServerOnce> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce(...args);
    } catch (error) {
      if (attempt >= 5 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
}

let dir = '';
let running: RunningServer | null = null;
let restoreLog: ((line: string) => void) | null = null;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-hosts-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  await running?.stop();
  running = null;
  if (restoreLog) setLogSink(restoreLog);
  restoreLog = null;
});

function captureLog(): string[] {
  const lines: string[] = [];
  restoreLog = setLogSink((line) => lines.push(line));
  return lines;
}

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

const records = (reply: DecodedReply) => (reply.answers ?? []).map((record) => {
  const { name, type, ttl, data } = record as { name: string; type: string; ttl: number; data: unknown };
  return `${name} ${ttl} ${type} ${String(data)}`;
});

const HOSTS = `
# comment line
127.0.0.1   localhost localhost.domain
::1         localhost localhost.domain  # trailing comment
10.0.0.1    Example.ORG  www.example.org
::FFFF:10.0.0.2 example.com
fdfc:a744:27b5:3b0e::1 example.com
fe80::1%eth0 link.example
not-an-ip   ignored.example
10.0.0.9
`;

describe('answers from a hosts file', () => {
  it('A and AAAA with the default TTL 3600 and AA set; names are case-insensitive', async () => {
    const file = write('basic', HOSTS);
    running = await startServer(`. {\n hosts ${file}\n}\n`);
    const reply = await queryUdp(running.port, 'example.org');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flag_aa).toBe(true);
    expect(records(reply)).toEqual(['example.org 3600 A 10.0.0.1']);
    expect(records(await queryUdp(running.port, 'WWW.example.org'))).toEqual(['WWW.example.org 3600 A 10.0.0.1']);
    expect(records(await queryUdp(running.port, 'localhost', { type: 'AAAA' }))).toEqual(['localhost 3600 AAAA ::1']);
    expect(records(await queryUdp(running.port, 'link.example', { type: 'AAAA' }))).toEqual(['link.example 3600 AAAA fe80::1']);
  });

  it('an IPv4-mapped IPv6 address is an IPv4 address', async () => {
    const file = write('mapped', HOSTS);
    running = await startServer(`. {\n hosts ${file}\n}\n`);
    expect(records(await queryUdp(running.port, 'example.com'))).toEqual(['example.com 3600 A 10.0.0.2']);
    expect(records(await queryUdp(running.port, 'example.com', { type: 'AAAA' }))).toEqual(['example.com 3600 AAAA fdfc:a744:27b5:3b0e::1']);
    expect(records(await queryUdp(running.port, '2.0.0.10.in-addr.arpa', { type: 'PTR' }))).toEqual(['2.0.0.10.in-addr.arpa 3600 PTR example.com']);
  });

  it('PTR for IPv4 and IPv6 addresses, every name of the address', async () => {
    const file = write('ptr', HOSTS);
    running = await startServer(`. {\n hosts ${file}\n}\n`);
    expect(records(await queryUdp(running.port, '1.0.0.127.in-addr.arpa', { type: 'PTR' }))).toEqual([
      '1.0.0.127.in-addr.arpa 3600 PTR localhost',
      '1.0.0.127.in-addr.arpa 3600 PTR localhost.domain',
    ]);
    const v6 = `1.${'0.'.repeat(31)}ip6.arpa`;
    expect(records(await queryUdp(running.port, v6, { type: 'PTR' }))).toEqual([`${v6} 3600 PTR localhost`, `${v6} 3600 PTR localhost.domain`]);
  });

  it('NODATA when the name exists without records of the asked type', async () => {
    const file = write('nodata', HOSTS);
    running = await startServer(`. {\n hosts ${file}\n}\n`);
    for (const type of ['AAAA', 'MX', 'TXT']) {
      const reply = await queryUdp(running.port, 'example.org', { type });
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.flag_aa).toBe(true);
      expect(reply.answers).toEqual([]);
      expect(reply.authorities).toEqual([]);
    }
  });

  it('a name not in the data is SERVFAIL without fallthrough, as CoreDNS answers it', async () => {
    const file = write('servfail', HOSTS);
    running = await startServer(`. {\n hosts ${file}\n whoami\n}\n`);
    const reply = await queryUdp(running.port, 'missing.example');
    expect(reply.rcode).toBe('SERVFAIL');
    expect(reply.flag_aa).toBe(false);
  });

  it('fallthrough passes unknown names on; with zones, only names in them', async () => {
    const file = write('fall', HOSTS);
    running = await startServer(`. {\n hosts ${file} {\n fallthrough a.example\n }\n whoami\n}\n`);
    const passed = await queryUdp(running.port, 'x.a.example');
    expect(passed.rcode).toBe('NOERROR');
    expect(passed.additionals!.length).toBe(2); // whoami answered
    expect((await queryUdp(running.port, 'x.b.example')).rcode).toBe('SERVFAIL');
    // A known name is answered, and the NODATA case does not fall through.
    expect(records(await queryUdp(running.port, 'example.org'))).toEqual(['example.org 3600 A 10.0.0.1']);
  });

  it('names outside the plugin zones go to the next plugin; entries outside them are ignored', async () => {
    const file = write('zones', HOSTS);
    running = await startServer(`. {\n hosts ${file} example.org\n whoami\n}\n`);
    expect(records(await queryUdp(running.port, 'example.org'))).toEqual(['example.org 3600 A 10.0.0.1']);
    const other = await queryUdp(running.port, 'example.com');
    expect(other.answers).toEqual([]);
    expect(other.additionals!.length).toBe(2);
    // PTR is answered for any reverse name, but only with names inside the zones.
    expect(records(await queryUdp(running.port, '1.0.0.10.in-addr.arpa', { type: 'PTR' }))).toEqual(['1.0.0.10.in-addr.arpa 3600 PTR example.org', '1.0.0.10.in-addr.arpa 3600 PTR www.example.org']);
    expect((await queryUdp(running.port, '2.0.0.10.in-addr.arpa', { type: 'PTR' })).answers).toEqual([]);
  });

  it('no_reverse: PTR queries go to the next plugin', async () => {
    const file = write('noreverse', HOSTS);
    running = await startServer(`. {\n hosts ${file} {\n no_reverse\n }\n whoami\n}\n`);
    const reply = await queryUdp(running.port, '1.0.0.10.in-addr.arpa', { type: 'PTR' });
    expect(reply.answers).toEqual([]);
    expect(reply.additionals!.length).toBe(2);
  });

  it('ttl sets the TTL of forward and reverse records', async () => {
    const file = write('ttl', HOSTS);
    running = await startServer(`. {\n hosts ${file} {\n ttl 60\n }\n}\n`);
    expect(records(await queryUdp(running.port, 'example.org'))).toEqual(['example.org 60 A 10.0.0.1']);
    expect(records(await queryUdp(running.port, '1.0.0.10.in-addr.arpa', { type: 'PTR' }))[0]).toMatch(/ 60 PTR /);
  });

  it('a relative file is read from the Corefile directory', async () => {
    write('relative.hosts', '10.9.9.9 relative.example\n');
    running = await startServer('. {\n hosts relative.hosts\n}\n', { file: path.join(dir, 'Corefile') });
    expect(records(await queryUdp(running.port, 'relative.example'))).toEqual(['relative.example 3600 A 10.9.9.9']);
  });
});

describe('inline entries', () => {
  it('are served with the file; a name in both gets the file addresses then the inline ones', async () => {
    const file = write('inline', '10.0.0.1 both.example\n10.0.0.5 fileonly.example\n');
    running = await startServer(`. {\n hosts ${file} {\n 10.0.0.2 both.example\n 10.0.0.3 inline.example\n 2001:db8::3 inline.example\n fallthrough\n }\n whoami\n}\n`);
    expect(records(await queryUdp(running.port, 'both.example'))).toEqual(['both.example 3600 A 10.0.0.1', 'both.example 3600 A 10.0.0.2']);
    expect(records(await queryUdp(running.port, 'inline.example'))).toEqual(['inline.example 3600 A 10.0.0.3']);
    expect(records(await queryUdp(running.port, 'inline.example', { type: 'AAAA' }))).toEqual(['inline.example 3600 AAAA 2001:db8::3']);
    expect(records(await queryUdp(running.port, 'fileonly.example'))).toEqual(['fileonly.example 3600 A 10.0.0.5']);
    expect(records(await queryUdp(running.port, '3.0.0.10.in-addr.arpa', { type: 'PTR' }))).toEqual(['3.0.0.10.in-addr.arpa 3600 PTR inline.example']);
  });

  it('a line that is not an entry is reported and ignored', () => {
    const lines = captureLog();
    const plan = planFromCorefile('. {\n hosts /nonexistent/hosts {\n tll 60\n }\n}\n', 'Corefile', { dnsPort: 0 });
    expect(plan.blocks).toHaveLength(1);
    expect(lines).toContain("[WARNING] plugin/hosts: inline line 'tll 60' is not an entry: 'tll' is not an IP address; ignored");
  });
});

describe('reload', () => {
  it('re-reads a changed file and bumps its generation, so the cache drops its answers (users.md P5)', async () => {
    const file = write('reload', '10.0.0.1 svc.example\n');
    running = await startServer(`. {\n cache 30\n hosts ${file} {\n reload 30ms\n }\n}\n`);
    expect(records(await queryUdp(running.port, 'svc.example'))).toEqual(['svc.example 30 A 10.0.0.1']);
    expect(records(await queryUdp(running.port, 'svc.example'))).toEqual(['svc.example 30 A 10.0.0.1']);
    fs.writeFileSync(file, '10.0.0.22 svc.example\n10.0.0.23 new.example\n');
    let reply: DecodedReply | null = null;
    for (let attempt = 0; attempt < 50; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      reply = await queryUdp(running.port, 'svc.example');
      if (records(reply)[0] !== 'svc.example 30 A 10.0.0.1') break;
    }
    expect(records(reply!)).toEqual(['svc.example 30 A 10.0.0.22']);
    expect(records(await queryUdp(running.port, 'new.example'))).toEqual(['new.example 30 A 10.0.0.23']);
  });

  it('keeps serving the last contents when the file disappears', async () => {
    const file = write('vanish', '10.0.0.1 stays.example\n');
    running = await startServer(`. {\n hosts ${file} {\n reload 20ms\n }\n}\n`);
    fs.rmSync(file);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(records(await queryUdp(running.port, 'stays.example'))).toEqual(['stays.example 3600 A 10.0.0.1']);
  });

  it('exports coredns_hosts_entries and coredns_hosts_reload_timestamp_seconds', async () => {
    const file = write('metrics', '10.0.0.1 m1.example m2.example\n::1 m1.example\n');
    running = await startServer(`. {\n hosts ${file}\n}\n`);
    const entries = await registry.getSingleMetric('coredns_hosts_entries')!.get();
    // Two IPv4 names, one IPv6 name, and three reverse names.
    expect(entries.values[0]!.value).toBe(6);
    const stamp = await registry.getSingleMetric('coredns_hosts_reload_timestamp_seconds')!.get();
    expect(stamp.values[0]!.value).toBeCloseTo(fs.statSync(file).mtimeMs / 1000, 3);
  });
});

describe('stock forms (STOCK-4)', () => {
  it('k3s: hosts /etc/coredns/NodeHosts { ttl 60 reload 15s fallthrough } runs unchanged, missing file warned', async () => {
    const lines = captureLog();
    running = await startServer('. {\n    hosts /etc/coredns/NodeHosts {\n      ttl 60\n      reload 15s\n      fallthrough\n    }\n    whoami\n}\n');
    expect(lines).toContain('[WARNING] plugin/hosts: File does not exist: /etc/coredns/NodeHosts');
    const reply = await queryUdp(running.port, 'node-1');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.additionals!.length).toBe(2);
  });

  it('k3s: NodeHosts entries are served with TTL 60', async () => {
    const file = write('NodeHosts', '172.18.0.2 k3d-server-0\n172.18.0.3 k3d-agent-0\n');
    running = await startServer(`. {\n    hosts ${file} {\n      ttl 60\n      reload 15s\n      fallthrough\n    }\n    whoami\n}\n`);
    expect(records(await queryUdp(running.port, 'k3d-agent-0'))).toEqual(['k3d-agent-0 60 A 172.18.0.3']);
    expect(records(await queryUdp(running.port, '2.0.18.172.in-addr.arpa', { type: 'PTR' }))).toEqual(['2.0.18.172.in-addr.arpa 60 PTR k3d-server-0']);
  });

  it('minikube: hosts { 192.168.49.1 host.minikube.internal; fallthrough } with /etc/hosts behind it', async () => {
    running = await startServer('. {\n    log\n    hosts {\n       192.168.49.1 host.minikube.internal\n       fallthrough\n    }\n    whoami\n}\n');
    captureLog();
    expect(records(await queryUdp(running.port, 'host.minikube.internal'))).toEqual(['host.minikube.internal 3600 A 192.168.49.1']);
    const other = await queryUdp(running.port, 'kubernetes.default.svc.cluster.local');
    expect(other.rcode).toBe('NOERROR');
    expect(other.additionals!.length).toBe(2);
  });

  it('the whole k3s block parses, hosts placed between kubernetes and prometheus', () => {
    const text = `.:53 {
    errors
    health
    ready
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
`;
    const [block] = parseCorefile(text, 'Corefile', { isDirective, env: {} });
    const hosts = block!.directives.find((directive) => directive.name.text === 'hosts')!;
    expect(hosts.block!.map((option) => option.name.text)).toEqual(['ttl', 'reload', 'fallthrough']);
  });
});

describe('setup errors', () => {

  it('rejects bad options with file and line', () => {
    expectSetupError('. {\n hosts {\n ttl 0\n }\n}\n', 3, /ttl provided is invalid/);
    expectSetupError('. {\n hosts {\n ttl 65536\n }\n}\n', 3, /ttl provided is invalid/);
    expectSetupError('. {\n hosts {\n ttl soon\n }\n}\n', 3, /ttl needs a number of seconds/);
    expectSetupError('. {\n hosts {\n ttl\n }\n}\n', 3, /Wrong argument count/);
    expectSetupError('. {\n hosts {\n reload often\n }\n}\n', 3, /reload must be a duration/);
    expectSetupError('. {\n hosts {\n fallthrough\n 10.0.0.1 late.example\n }\n}\n', 4, /unknown property '10.0.0.1'/);
    expectSetupError('. {\n hosts\n hosts\n}\n', 3, /can only be used once per Server Block/);
    expectSetupError('. {\n hosts {\n no_reverse please\n }\n}\n', 3, /at most 0 arguments/);
  });

  it('reload 0 disables reloading', () => {
    const plan = planFromCorefile('. {\n hosts /nonexistent {\n reload 0\n }\n}\n', 'Corefile', { dnsPort: 0 });
    expect(plan.blocks[0]!.plugins.map((plugin) => plugin.name)).toEqual(['hosts']);
  });
});

describe('hosts text parsing', () => {
  it('reads addresses as CoreDNS does', () => {
    expect(parseAddress('10.0.0.1')).toEqual({ family: 4, text: '10.0.0.1', key: '0a000001' });
    expect(parseAddress('::ffff:10.0.0.2')).toEqual({ family: 4, text: '10.0.0.2', key: '0a000002' });
    expect(parseAddress('fe80::1%eth0')).toMatchObject({ family: 6, text: 'fe80::1' });
    expect(parseAddress('010.0.0.1')).toBeNull();
    expect(parseAddress('example')).toBeNull();
  });

  it('turns reverse names into address keys', () => {
    expect(reverseToKey('4.3.2.1.in-addr.arpa.')).toBe('01020304');
    expect(reverseToKey('3.2.1.in-addr.arpa.')).toBeNull();
    expect(reverseToKey('256.3.2.1.in-addr.arpa.')).toBeNull();
    // ::ffff:10.0.0.2 in nibbles is the IPv4 address.
    expect(reverseToKey(`2.0.0.0.0.0.a.0.f.f.f.f.${'0.'.repeat(20)}ip6.arpa.`)).toBe('0a000002');
    expect(reverseToKey(`1.${'0.'.repeat(31)}ip6.arpa.`)).toBe('0'.repeat(31) + '1');
    expect(reverseToKey(`1.${'0.'.repeat(30)}ip6.arpa.`)).toBeNull();
    expect(reverseToKey('example.org.')).toBeNull();
  });

  it('skips lines without names, bad addresses and names outside the zones', () => {
    const map = parseHosts('10.0.0.1\nbad 1.example\n10.0.0.2 in.example out.test\n', ['example.'], true);
    expect([...map.name4.entries()]).toEqual([['in.example.', ['10.0.0.2']]]);
    expect([...map.byAddress.entries()]).toEqual([['0a000002', ['in.example.']]]);
  });
});
