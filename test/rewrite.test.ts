// The rewrite plugin as a client sees it: real UDP queries to a server whose
// kubernetes plugin answers from an in-memory cluster, and, for what goes
// upstream (class, EDNS0 options), a real loopback upstream behind forward.
// Each expectation was first seen from CoreDNS 1.11.3 running the same
// Corefile, quirks included.

import { afterEach, describe, expect, it } from 'vitest';
import type { DecodedPacket } from 'dns-packet';
import { createCluster, startServer, type ClusterDnsServer } from '../src/index.ts';
import { builtinPlugins } from '../src/registry.ts';
import { buildQuery, decodeReply, queryUdp, sendUdp, type QueryOptions } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { TestUpstream } from './support/upstreams.ts';

const CLUSTER = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec:
  clusterIP: 10.96.7.7
  ports: [{ name: http, port: 80, protocol: TCP }]
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: demo }
spec:
  clusterIP: 10.96.7.8
---
apiVersion: v1
kind: Service
metadata: { name: search, namespace: demo }
spec:
  type: ExternalName
  externalName: www.example.com
`;

const running: ClusterDnsServer[] = [];
const upstreams: TestUpstream[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
  await Promise.all(upstreams.splice(0).map((upstream) => upstream.stop()));
});

/** A server for `rules` (Corefile lines) in front of the kubernetes plugin; returns its UDP port. */
async function serve(rules: string, extra = ''): Promise<number> {
  const corefile = `.:0 {\n${rules}\n    kubernetes cluster.local {\n        memory\n    }\n${extra}}\n`;
  const server = await startServer({ corefile, clusters: { default: createCluster(CLUSTER) } });
  running.push(server);
  return server.listeners.find((listener) => listener.transport === 'udp')!.port;
}

async function ask(port: number, name: string, options: QueryOptions = {}) {
  const reply = await queryUdp(port, name, options);
  return {
    rcode: reply.rcode,
    question: reply.questions?.map((question) => `${question.name} ${question.type}`),
    answer: reply.answers?.map(show),
    authority: reply.authorities?.map(show),
    additional: reply.additionals?.filter((record) => record.type !== 'OPT').map(show),
    opt: reply.additionals?.find((record) => record.type === 'OPT'),
  };
}

function show(record: NonNullable<DecodedPacket['answers']>[number]): string {
  const data = 'data' in record ? record.data : '';
  const text = typeof data === 'object' && data !== null && 'target' in data ? `${data.port} ${data.target}` : String(data);
  return `${record.name} ${'ttl' in record ? record.ttl : ''} ${record.type} ${text}`;
}

async function upstream(): Promise<TestUpstream> {
  const started = await TestUpstream.start({ records: { 'www.example.org A': [{ name: 'www.example.org', type: 'A', ttl: 30, data: '192.0.2.1' }] } });
  upstreams.push(started);
  return started;
}

/** The EDNS0 options of the last query the upstream received, as [code, hex data]. */
function optionsSeen(at: TestUpstream): [number, string][] {
  const query = at.queries.at(-1)!.packet;
  const opt = query.additionals?.find((record) => record.type === 'OPT') as { options: { code: number; data: Buffer }[] } | undefined;
  return opt === undefined ? [] : opt.options.map((option) => [option.code, Buffer.from(option.data).toString('hex')]);
}

describe('rewrite name', () => {
  it('is a plugin of the build, placed after cache', () => {
    const order = builtinPlugins.implemented();
    expect(order).toContain('rewrite');
    expect(order.indexOf('rewrite')).toBe(order.indexOf('cache') + 1);
  });

  it('exact: an alias answers with the Service address, owned by the alias, under the question the client asked', async () => {
    const port = await serve('    rewrite name alias.example. web.demo.svc.cluster.local.');
    expect(await ask(port, 'alias.example')).toMatchObject({
      rcode: 'NOERROR', question: ['alias.example A'], answer: ['alias.example 5 A 10.96.7.7'],
    });
    // The target's own name is not an alias of anything.
    expect((await ask(port, 'web.demo.svc.cluster.local')).answer).toEqual(['web.demo.svc.cluster.local 5 A 10.96.7.7']);
    // NXDOMAIN's SOA is not under the rewritten name, so it keeps its owner.
    const missing = await serve('    rewrite name nope.example. nope.demo.svc.cluster.local.');
    expect(await ask(missing, 'nope.example')).toMatchObject({ rcode: 'NXDOMAIN', question: ['nope.example A'], authority: [expect.stringMatching(/^cluster\.local \d+ SOA/)] });
  });

  it('suffix, prefix and substring rewrite the question; without answer auto the answer keeps the name that was looked up', async () => {
    const port = await serve([
      '    rewrite name suffix .ext.example. .demo.svc.cluster.local.',
      '    rewrite name prefix pre. web. answer auto',
      '    rewrite name substring .sub. .demo. answer auto',
    ].join('\n'));
    expect(await ask(port, 'web.ext.example')).toMatchObject({ question: ['web.ext.example A'], answer: ['web.demo.svc.cluster.local 5 A 10.96.7.7'] });
    expect((await ask(port, 'pre.demo.svc.cluster.local')).answer).toEqual(['pre.demo.svc.cluster.local 5 A 10.96.7.7']);
    expect((await ask(port, 'api.sub.svc.cluster.local')).answer).toEqual(['api.sub.svc.cluster.local 5 A 10.96.7.8']);
  });

  it('suffix with answer auto maps the suffix back in names and values', async () => {
    const port = await serve('    rewrite name suffix .ext.example. .demo.svc.cluster.local. answer auto');
    expect((await ask(port, 'web.ext.example')).answer).toEqual(['web.ext.example 5 A 10.96.7.7']);
    const srv = await ask(port, '_http._tcp.web.ext.example', { type: 'SRV' });
    expect(srv.answer).toEqual(['_http._tcp.web.ext.example 5 SRV 80 web.ext.example']);
    expect(srv.additional).toEqual(['web.ext.example 5 A 10.96.7.7']);
  });

  it('prefix and substring operands get a trailing dot as every name does in CoreDNS, so "pre-" matches nothing', async () => {
    const port = await serve('    rewrite name prefix pre- web.');
    expect((await ask(port, 'pre-demo.svc.cluster.local')).rcode).toBe('NXDOMAIN');
  });

  it('regex: {1}-style groups build the new name; answer auto maps the name back, not other names in the reply', async () => {
    const port = await serve('    rewrite name regex (.*)-(demo)\\.example\\. {1}.{2}.svc.cluster.local. answer auto');
    expect(await ask(port, 'api-demo.example')).toMatchObject({ question: ['api-demo.example A'], answer: ['api-demo.example 5 A 10.96.7.8'] });
    const srv = await ask(port, '_http._tcp.web-demo.example', { type: 'SRV' });
    // The SRV's target is another name than the question's: it stays.
    expect(srv.answer).toEqual(['_http._tcp.web-demo.example 5 SRV 80 web.demo.svc.cluster.local']);
    expect(srv.additional).toEqual(['web.demo.svc.cluster.local 5 A 10.96.7.7']);
  });

  it('answer name and answer value rewrite owners and targets (SRV target, CNAME target) by their own patterns', async () => {
    const port = await serve([
      '    rewrite stop {',
      '        name regex (.*)\\.val\\.example\\. {1}.demo.svc.cluster.local.',
      '        answer name (.*)\\.demo\\.svc\\.cluster\\.local\\. {1}.val.example.',
      '        answer value (.*)\\.demo\\.svc\\.cluster\\.local\\. {1}.val.example.',
      '    }',
      '    rewrite name regex (.*)\\.nm\\.example\\. {1}.demo.svc.cluster.local. answer name (.*)\\.demo\\.svc\\.cluster\\.local\\. {1}.nm.example.',
    ].join('\n'));
    const srv = await ask(port, '_http._tcp.web.val.example', { type: 'SRV' });
    expect(srv.answer).toEqual(['_http._tcp.web.val.example 5 SRV 80 web.val.example']);
    expect(srv.additional).toEqual(['web.val.example 5 A 10.96.7.7']);
    // answer name alone: owners change, the target does not.
    const named = await ask(port, '_http._tcp.web.nm.example', { type: 'SRV' });
    expect(named.answer).toEqual(['_http._tcp.web.nm.example 5 SRV 80 web.demo.svc.cluster.local']);
    expect(named.additional).toEqual(['web.nm.example 5 A 10.96.7.7']);
    const cname = await ask(port, 'search.val.example', { type: 'CNAME' });
    expect(cname.answer).toEqual(['search.val.example 5 CNAME www.example.com']);
  });

  it('a name the wire cannot carry after the rewrite is SERVFAIL, with the client\'s question', async () => {
    const port = await serve('    rewrite name regex (.*)\\.bad\\.example\\. {1}..x.');
    expect(await ask(port, 'foo.bad.example')).toMatchObject({ rcode: 'SERVFAIL', question: ['foo.bad.example A'], answer: [] });
  });
});

describe('several rules', () => {
  it('continue goes on to the next rule with the new name; the reverse rules run in rule order, so a chain answers under the middle name', async () => {
    const port = await serve([
      '    rewrite continue name exact a.example. b.example.',
      '    rewrite name exact b.example. web.demo.svc.cluster.local.',
    ].join('\n'));
    expect(await ask(port, 'a.example')).toMatchObject({ question: ['a.example A'], answer: ['b.example 5 A 10.96.7.7'] });
  });

  it('stop ends the walk once its rule applied; a stop rule that does not match does not', async () => {
    const port = await serve([
      '    rewrite stop name exact nomatch.example. x.example.',
      '    rewrite stop name exact s.example. t.example.',
      '    rewrite name exact t.example. web.demo.svc.cluster.local.',
    ].join('\n'));
    // s → t, then stop: t.example. is nobody's, and the chain ends in SERVFAIL.
    expect((await ask(port, 's.example')).rcode).toBe('SERVFAIL');
    expect((await ask(port, 't.example')).answer).toEqual(['t.example 5 A 10.96.7.7']);
  });

  it('ttl after a name rule: the TTL is set on the reply to the rewritten query', async () => {
    const port = await serve([
      '    rewrite continue name exact u.example. api.demo.svc.cluster.local.',
      '    rewrite ttl exact api.demo.svc.cluster.local. 15',
    ].join('\n'));
    expect((await ask(port, 'u.example')).answer).toEqual(['u.example 15 A 10.96.7.8']);
  });
});

describe('rewrite ttl', () => {
  it('a value sets every TTL; MIN-MAX, MIN- and -MAX clamp them, in every section', async () => {
    const port = await serve([
      '    rewrite continue ttl exact web.demo.svc.cluster.local. 100',
      '    rewrite continue ttl suffix .api.demo.svc.cluster.local. 30-60',
      '    rewrite continue ttl regex ^_http\\. 2-',
      '    rewrite ttl exact api.demo.svc.cluster.local. -3',
      '    rewrite ttl substring nope 3600',
    ].join('\n'));
    expect((await ask(port, 'web.demo.svc.cluster.local')).answer).toEqual(['web.demo.svc.cluster.local 100 A 10.96.7.7']);
    expect((await ask(port, 'api.demo.svc.cluster.local')).answer).toEqual(['api.demo.svc.cluster.local 3 A 10.96.7.8']);
    expect((await ask(port, 'x.api.demo.svc.cluster.local')).authority).toEqual([expect.stringMatching(/^cluster\.local 30 SOA/)]);
    const srv = await ask(port, '_http._tcp.web.demo.svc.cluster.local', { type: 'SRV' });
    expect(srv.answer).toEqual(['_http._tcp.web.demo.svc.cluster.local 5 SRV 80 web.demo.svc.cluster.local']);
    expect((await ask(port, 'nope.demo.svc.cluster.local')).authority).toEqual([expect.stringMatching(/^cluster\.local 3600 SOA/)]);
  });
});

describe('rewrite type and class', () => {
  it('type: an AAAA question is looked up as A, and the client gets its AAAA question back with the A records', async () => {
    const port = await serve('    rewrite type AAAA A');
    expect(await ask(port, 'web.demo.svc.cluster.local', { type: 'AAAA' })).toMatchObject({
      question: ['web.demo.svc.cluster.local AAAA'], answer: ['web.demo.svc.cluster.local 5 A 10.96.7.7'],
    });
  });

  it('class: a CH question reaches the upstream as IN', async () => {
    const up = await upstream();
    const port = await serve('    rewrite class CH IN', `    forward . ${up.hostPort}\n`);
    const chaos = await sendClass(port, 'www.example.org', 3);
    expect(chaos.rcode).toBe('NOERROR');
    expect(chaos.questions?.[0]).toMatchObject({ name: 'www.example.org', class: 'CH' });
    expect(up.queries.at(-1)!.packet.questions?.[0]).toMatchObject({ name: 'www.example.org', class: 'IN' });
  });
});

/** A query of another class (the builder in test/support writes IN). */
async function sendClass(port: number, name: string, qclass: number) {
  const packet = buildQuery(name);
  packet.writeUInt16BE(qclass, packet.length - 2);
  const raw = await sendUdp(port, packet);
  return decodeReply(raw!);
}

describe('rewrite rcode', () => {
  it('rewrites the RCODE of a reply to a matching name, records kept', async () => {
    const port = await serve('    rewrite rcode exact nope.demo.svc.cluster.local. NXDOMAIN NOERROR');
    expect(await ask(port, 'nope.demo.svc.cluster.local')).toMatchObject({ rcode: 'NOERROR', authority: [expect.stringMatching(/ SOA /)] });
    expect((await ask(port, 'other.demo.svc.cluster.local')).rcode).toBe('NXDOMAIN');
  });

  it('an upstream\'s SERVFAIL (no records) becomes NXDOMAIN, numbers and names both accepted', async () => {
    const up = await upstream();
    up.mode = { kind: 'rcode', rcode: 2 };
    const port = await serve('    rewrite rcode regex \\.broken\\.example\\.$ SERVFAIL 3', `    forward . ${up.hostPort}\n`);
    expect((await ask(port, 'www.broken.example', { udpSize: 1232 })).rcode).toBe('NXDOMAIN');
    expect((await ask(port, 'www.other.example', { udpSize: 1232 })).rcode).toBe('SERVFAIL');
  });

  it('a NODATA a plugin wrote (no records) keeps its RCODE, as CoreDNS has no record to run the rule on', async () => {
    const port = await serve('    rewrite rcode suffix .demo.svc.cluster.local. NOERROR REFUSED', '    hosts {\n        10.0.0.1 h.demo.svc.cluster.local\n        fallthrough\n    }\n');
    expect(await ask(port, 'h.demo.svc.cluster.local', { type: 'AAAA', udpSize: 1232 })).toMatchObject({ rcode: 'NOERROR', answer: [], authority: [] });
    expect((await ask(port, 'h.demo.svc.cluster.local', { udpSize: 1232 })).rcode).toBe('REFUSED');
  });

  it('a failure no plugin answered: rewritten after a stop rule when the query has EDNS, left alone after continue rules', async () => {
    const port = await serve([
      '    rewrite continue rcode exact cont.example. SERVFAIL NXDOMAIN',
      '    rewrite rcode exact stop.example. SERVFAIL NXDOMAIN',
    ].join('\n'));
    expect((await ask(port, 'stop.example', { udpSize: 1232 })).rcode).toBe('NXDOMAIN');
    expect((await ask(port, 'stop.example')).rcode).toBe('SERVFAIL');
    expect((await ask(port, 'cont.example', { udpSize: 1232 })).rcode).toBe('SERVFAIL');
  });
});

describe('rewrite edns0', () => {
  it('local, nsid and subnet options reach the upstream: set replaces or adds, append always adds, replace only replaces', async () => {
    const up = await upstream();
    const port = await serve([
      '    rewrite continue edns0 local set 0xffee 0x61626364',
      '    rewrite continue edns0 local append 0xffee xyz',
      '    rewrite continue edns0 local replace 0xfff0 nothere',
      '    rewrite continue edns0 nsid append',
      '    rewrite continue edns0 subnet set 24 56',
      '    rewrite continue edns0 local set 0xffe1 {client_ip}',
      '    rewrite continue edns0 local set 0xffe2 {qname}',
      '    rewrite continue edns0 local set 0xffe3 {qtype}',
      '    rewrite continue edns0 local set 0xffe4 {protocol}',
      '    rewrite edns0 local append 0xffe6 {some/label}',
    ].join('\n'), `    forward . ${up.hostPort}\n`);
    const reply = await ask(port, 'WWW.example.org', { udpSize: 1232 });
    expect(reply.answer).toEqual(['WWW.example.org 30 A 192.0.2.1']);
    expect(optionsSeen(up)).toEqual([
      [0xffee, '61626364'],
      [0xffee, '78797a'],
      [3, ''],
      [8, '000118007f0000'],
      [0xffe1, '7f000001'],
      [0xffe2, Buffer.from('WWW.example.org.').toString('hex')],
      [0xffe3, '0001'],
      [0xffe4, Buffer.from('udp').toString('hex')],
    ]);
    // The client's spelling of the name went upstream unchanged.
    expect(up.queries.at(-1)!.name).toBe('WWW.example.org');
  });

  it('a query without EDNS gets an OPT record (4096, DO off) upstream; its reply still has none', async () => {
    const up = await upstream();
    const port = await serve('    rewrite edns0 local replace 0xffee nothere', `    forward . ${up.hostPort}\n`);
    const reply = await ask(port, 'www.example.org');
    expect(reply.opt).toBeUndefined();
    const opt = up.queries.at(-1)!.packet.additionals?.find((record) => record.type === 'OPT') as { udpPayloadSize: number; flags: number } | undefined;
    expect(opt).toMatchObject({ udpPayloadSize: 4096, flags: 0 });
    expect(optionsSeen(up)).toEqual([]);
  });
});

describe('rewrite setup errors', () => {
  const cases: [string, RegExp][] = [
    ['rewrite', /^plugin\/rewrite: no rule type specified for rewrite$/],
    ['rewrite continue', /^plugin\/rewrite: continue rule must begin with a rule type$/],
    ['rewrite foo a b', /^plugin\/rewrite: invalid rule type "foo"$/],
    ['rewrite stop answer name a b', /^plugin\/rewrite: response rewrites must begin with a name rule$/],
    ['rewrite name a.', /^plugin\/rewrite: too few arguments for a name rule$/],
    ['rewrite name foo a. b.', /^plugin\/rewrite: name rule supports only exact, prefix, suffix, substring, and regex name matching, received: foo$/],
    ['rewrite name regex ( x', /^plugin\/rewrite: invalid regex matching pattern: \($/],
    ['rewrite name regex (a) {1}.{2}', /uses more subexpressions than its corresponding matching regex pattern/],
    ['rewrite name exact a. b. extra', /^plugin\/rewrite: invalid arguments for exact rule$/],
    ['rewrite name exact a. b. answer bogus', /^plugin\/rewrite: invalid type "bogus" for answer rule for exact rule$/],
    ['rewrite name regex (a) b. answer name x', /^plugin\/rewrite: name answer rule for regex rule: 2 arguments required$/],
    ['rewrite name regex (a) b. answer auto answer name x y', /^plugin\/rewrite: auto name answer rule cannot be combined with explicit name anwer rules$/],
    ['rewrite type A', /^plugin\/rewrite: type rules must have exactly two arguments$/],
    ['rewrite type A BOGUS', /^plugin\/rewrite: invalid type "BOGUS"$/],
    ['rewrite class IN XX', /^plugin\/rewrite: invalid class "XX"$/],
    ['rewrite ttl a.', /^plugin\/rewrite: too few \(1\) arguments for a ttl rule$/],
    ['rewrite ttl a. 10-5', /^plugin\/rewrite: invalid TTL '10-5' for a ttl rule$/],
    ['rewrite ttl a. -', /^plugin\/rewrite: invalid TTL '-' for a ttl rule$/],
    ['rewrite ttl bogus a. 10', /^plugin\/rewrite: ttl rule supports only exact, prefix, suffix, substring, and regex name matching$/],
    ['rewrite rcode a. NXDOMAIN', /^plugin\/rewrite: too few \(2\) arguments for a rcode rule$/],
    ['rewrite rcode a. 24 0', /^plugin\/rewrite: invalid matching RCODE '24' for a rcode rule$/],
    ['rewrite rcode a. NXDOMAIN BOGUS', /^plugin\/rewrite: invalid replacement RCODE 'BOGUS' for a rcode rule$/],
    ['rewrite edns0 local bogus 1 2', /^plugin\/rewrite: invalid action: "bogus"$/],
    ['rewrite edns0 local set 0xffee', /^plugin\/rewrite: EDNS0 local rules require exactly three args$/],
    ['rewrite edns0 local set xyz abc', /^plugin\/rewrite: strconv.ParseUint: parsing "xyz": invalid syntax$/],
    ['rewrite edns0 local set 65536 abc', /^plugin\/rewrite: strconv.ParseUint: parsing "65536": value out of range$/],
    ['rewrite edns0 local set 0xffee 0xzz', /^plugin\/rewrite: encoding\/hex: invalid byte: U\+007A 'z'$/],
    ['rewrite edns0 local set 0xffee {bogus}', /^plugin\/rewrite: unsupported variable name "\{bogus\}"$/],
    ['rewrite edns0 nsid set x', /^plugin\/rewrite: EDNS0 NSID rules do not accept args$/],
    ['rewrite edns0 subnet set 33 56', /^plugin\/rewrite: invalid IPv4 bit mask length 33$/],
    ['rewrite edns0 subnet set 24 129', /^plugin\/rewrite: invalid IPv6 bit mask length 129$/],
    ['rewrite name exact a. b. {\n        answer auto\n    }', /^plugin\/rewrite: no rule type specified for rewrite$/],
  ];
  it.each(cases)('%s', (line, detail) => {
    expectSetupError(`.:53 {\n    whoami\n    ${line}\n}\n`, 3, detail);
  });

  it('accepts what CoreDNS accepts: group references counted, not their numbers; a block read as more words; ranges and RCODE numbers', async () => {
    const port = await serve([
      '    rewrite name regex ^(zzz)\\.$ {2}',
      '    rewrite STOP NAME EXACT a. b.',
      '    rewrite stop {',
      '        name regex (.*)\\.blk\\.example\\. {1}.demo.svc.cluster.local.',
      '        answer auto',
      '    }',
      '    rewrite ttl a. 4294967295',
      '    rewrite rcode a. 23 0',
      '    rewrite edns0 LOCAL SET 0xffee abc',
    ].join('\n'));
    expect((await ask(port, 'web.blk.example')).answer).toEqual(['web.blk.example 5 A 10.96.7.7']);
  });
});
