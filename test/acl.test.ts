// acl: allow, block, filter and drop by source network and type, as CoreDNS
// 1.11.3 answers them (checked side by side with dig). Clients send from
// different loopback addresses: Linux routes all of 127/8 to lo.

import { describe, expect, it } from 'vitest';
import { registry } from '../src/metrics.ts';
import { buildQuery, decodeReply, sendUdp, serverPerTest, type DecodedReply, type QueryOptions } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';

const start = serverPerTest();

/** A UDP query sent from `from` (a 127.x.y.z address, or ::1); null when no reply came within the timeout. */
async function queryFrom(from: string, port: number, name: string, options: QueryOptions = {}, timeoutMs = 1000): Promise<DecodedReply | null> {
  const reply = await sendUdp(port, buildQuery(name, options), timeoutMs, from.includes(':') ? '::1' : '127.0.0.1', from);
  return reply === null ? null : decodeReply(reply);
}

type OptRecord = { type: 'OPT'; udpPayloadSize: number; flags: number; options: { code: number; data: Buffer }[] };
const optOf = (reply: DecodedReply) => (reply.additionals ?? []).find((record) => record.type === 'OPT') as unknown as OptRecord | undefined;

const whoamiAnswered = (reply: DecodedReply | null) => reply !== null && reply.rcode === 'NOERROR' && (reply.additionals ?? []).some((record) => record.type === 'SRV');

async function metricLine(prefix: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const policies = `. {
  acl {
    block type AAAA net 127.0.0.2
    filter type MX
    drop net 127.0.0.3/32
    allow net 127.0.0.0/8
    block
  }
  whoami
}
`;

describe('acl policies, first match wins', () => {
  it('block answers REFUSED with no records, no AA, and an OPT carrying EDE 15 (Blocked) and DO', async () => {
    const port = await start(policies);
    const reply = (await queryFrom('127.0.0.2', port, 'x.example', { type: 'AAAA', udpSize: 1232 }))!;
    expect(reply.rcode).toBe('REFUSED');
    expect(reply.flag_aa).toBe(false);
    expect(reply.answers).toEqual([]);
    const opt = optOf(reply)!;
    expect(opt.udpPayloadSize).toBe(1232);
    expect(opt.flags & 0x8000).toBe(0x8000);
    expect(opt.options.map((option) => [option.code, [...option.data]])).toEqual([[15, [0, 15]]]);
  });

  it('block without a client OPT still sends one, advertising 4096 (CoreDNS does)', async () => {
    const port = await start(policies);
    const reply = (await queryFrom('127.0.0.2', port, 'x.example', { type: 'AAAA' }))!;
    expect(reply.rcode).toBe('REFUSED');
    expect(optOf(reply)?.udpPayloadSize).toBe(4096);
  });

  it('a policy matches only its types: the same client asking A is allowed', async () => {
    const port = await start(policies);
    expect(whoamiAnswered(await queryFrom('127.0.0.2', port, 'x.example', { type: 'A' }))).toBe(true);
  });

  it('filter answers NOERROR with empty sections and EDE 17 (Filtered)', async () => {
    const port = await start(policies);
    const reply = (await queryFrom('127.0.0.1', port, 'x.example', { type: 'MX' }))!;
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.answers).toEqual([]);
    expect(reply.authorities).toEqual([]);
    expect(reply.additionals!.filter((record) => record.type !== 'OPT')).toEqual([]);
    expect(optOf(reply)!.options.map((option) => [...option.data])).toEqual([[0, 17]]);
  });

  it('drop sends nothing back, over UDP', async () => {
    const port = await start(policies);
    expect(await queryFrom('127.0.0.3', port, 'x.example', {}, 600)).toBeNull();
    // The server is still there for others.
    expect(whoamiAnswered(await queryFrom('127.0.0.4', port, 'x.example'))).toBe(true);
  });

  it('allow stops the walk: a later catch-all block does not apply', async () => {
    const port = await start('. {\n acl {\n allow net 127.0.0.5\n block\n }\n whoami\n}\n');
    expect(whoamiAnswered(await queryFrom('127.0.0.5', port, 'x.example'))).toBe(true);
    expect((await queryFrom('127.0.0.6', port, 'x.example'))!.rcode).toBe('REFUSED');
  });

  it('a bare block matches every source, IPv6 included; `net ::1` only that address', async () => {
    const port = await start('. {\n acl {\n block net ::1\n }\n whoami\n}\n');
    expect((await queryFrom('::1', port, 'x.example'))!.rcode).toBe('REFUSED');
    expect(whoamiAnswered(await queryFrom('127.0.0.1', port, 'x.example'))).toBe(true);
  });

  it('type * and net * match everything', async () => {
    const port = await start('. {\n acl {\n filter type * net *\n }\n whoami\n}\n');
    expect(optOf((await queryFrom('127.0.0.9', port, 'x.example', { type: 'TXT' }))!)!.options[0]!.code).toBe(15);
  });

  it('rules apply inside their zones only; several acl lines are tried in order', async () => {
    const port = await start('example.org {\n acl sub.example.org {\n block\n }\n acl {\n filter net 127.0.0.7\n }\n whoami\n}\n');
    expect((await queryFrom('127.0.0.1', port, 'a.sub.example.org'))!.rcode).toBe('REFUSED');
    expect(whoamiAnswered(await queryFrom('127.0.0.1', port, 'example.org'))).toBe(true);
    const filteredReply = (await queryFrom('127.0.0.7', port, 'www.example.org'))!;
    expect(filteredReply.rcode).toBe('NOERROR');
    expect(filteredReply.additionals!.filter((record) => record.type !== 'OPT')).toEqual([]);
  });

  it('counts coredns_acl_{blocked,filtered,dropped}_requests_total by server and rule zone, allowed by server', async () => {
    const port = await start('example.org {\n acl sub.example.org {\n block type A\n filter type MX\n drop type TXT\n }\n whoami\n}\n');
    // Tests start servers on port 0, so the server label is dns://:0 in every test: compare before and after.
    const zoned = '{server="dns://:0",zone="sub.example.org.",view=""}';
    const names = ['blocked', 'filtered', 'dropped'].map((action) => `coredns_acl_${action}_requests_total${zoned}`);
    const allowedName = 'coredns_acl_allowed_requests_total{server="dns://:0",view=""}';
    const before = await Promise.all([...names, allowedName].map(metricLine));
    await queryFrom('127.0.0.1', port, 'x.sub.example.org', { type: 'A' });
    await queryFrom('127.0.0.1', port, 'x.sub.example.org', { type: 'MX' });
    await queryFrom('127.0.0.1', port, 'x.sub.example.org', { type: 'TXT' }, 300);
    await queryFrom('127.0.0.1', port, 'x.sub.example.org', { type: 'AAAA' });
    await queryFrom('127.0.0.1', port, 'example.org', { type: 'A' });
    const after = await Promise.all([...names, allowedName].map(metricLine));
    expect(after.map((value, i) => value - before[i]!)).toEqual([1, 1, 1, 2]);
  });
});

describe('acl setup errors, as CoreDNS 1.11.3 words them', () => {
  it('rejects unknown actions, sections, types and networks at their line', () => {
    expectSetupError('. {\n acl {\n frob\n }\n}\n', 3, /unexpected token "frob"; expect 'allow', 'block', 'filter' or 'drop'/);
    expectSetupError('. {\n acl {\n block type\n }\n}\n', 3, /no token specified in "type" section/);
    expectSetupError('. {\n acl {\n block type FOO\n }\n}\n', 3, /unexpected token "FOO"; expect legal QTYPE/);
    expectSetupError('. {\n acl {\n block type a\n }\n}\n', 3, /unexpected token "a"; expect legal QTYPE/);
    expectSetupError('. {\n acl {\n block net 1.2.3.4/40\n }\n}\n', 3, /illegal CIDR notation "1.2.3.4\/40"/);
    expectSetupError('. {\n acl {\n block net foo\n }\n}\n', 3, /illegal CIDR notation "foo\/32"/);
    expectSetupError('. {\n acl {\n block file /etc/hosts\n }\n}\n', 3, /unexpected token "file"; expect 'type \| net'/);
  });
});
