// dns64: AAAA synthesized from A for IPv6 clients, as CoreDNS 1.11.3 answers
// (checked side by side with dig over ::1 and 127.0.0.1, hosts data behind it).

import { describe, expect, it } from 'vitest';
import { registry } from '../src/metrics.ts';
import { queryUdp, serverPerTest, type DecodedReply } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { synthesize } from '../plugins/dns64/index.ts';

const start = serverPerTest();
const hosts = (ttl: number, fallthrough = false) =>
  ` hosts {\n 192.0.2.1 v4only.example\n 192.0.2.2 dual.example\n 2001:db8::1 dual.example\n ttl ${ttl}\n${fallthrough ? ' fallthrough\n' : ''} }\n`;

const aaaa = (reply: DecodedReply) =>
  (reply.answers ?? []).map((record) => record as { name: string; ttl: number; type: string; data: string }).map((record) => `${record.name} ${record.ttl} ${record.type} ${record.data}`);
const ask = (port: number, name: string, host = '::1') => queryUdp(port, name, { type: 'AAAA', host });

describe('dns64', () => {
  it('translates a name with only A records for an IPv6 client: 64:ff9b::/96, TTL min(A TTL, 600), no AA, no RA', async () => {
    const port = await start(`. {\n dns64\n${hosts(3600)}}\n`);
    const reply = await ask(port, 'v4only.example');
    expect(reply.rcode).toBe('NOERROR');
    expect([reply.flag_aa, reply.flag_ra]).toEqual([false, false]);
    expect(aaaa(reply)).toEqual(['v4only.example 600 AAAA 64:ff9b::c000:201']);
  });

  it('leaves names that have AAAA records, IPv4 clients and the chain\'s failures alone', async () => {
    const port = await start(`. {\n dns64\n${hosts(3600)}}\n`);
    const dual = await ask(port, 'dual.example');
    expect([dual.flag_aa, ...aaaa(dual)]).toEqual([true, 'dual.example 3600 AAAA 2001:db8::1']);
    const fromIpv4 = await ask(port, 'v4only.example', '127.0.0.1');
    expect([fromIpv4.flag_aa, ...aaaa(fromIpv4)]).toEqual([true]);
    expect((await ask(port, 'nope.example')).rcode).toBe('SERVFAIL');
  });

  it('prefix, translate_all and allow_ipv4 in a block', async () => {
    const port = await start(`. {\n dns64 {\n prefix 2001:db8:64::/64\n translate_all\n allow_ipv4\n }\n${hosts(30)}}\n`);
    expect(aaaa(await ask(port, 'v4only.example', '127.0.0.1'))).toEqual(['v4only.example 30 AAAA 2001:db8:64:0:c0:2:100:0']);
    expect(aaaa(await ask(port, 'dual.example'))).toEqual(['dual.example 30 AAAA 2001:db8:64:0:c0:2:200:0']);
  });

  it('a PREFIX argument with a block: the block is not read (CoreDNS 1.11.3)', async () => {
    const port = await start(`. {\n dns64 2001:db8:64::/96 {\n translate_all\n }\n${hosts(30)}}\n`);
    expect(aaaa(await ask(port, 'dual.example'))).toEqual(['dual.example 30 AAAA 2001:db8::1']);
    expect(aaaa(await ask(port, 'v4only.example'))).toEqual(['v4only.example 30 AAAA 2001:db8:64::c000:201']);
  });

  it('counts coredns_dns64_requests_translated_total by server', async () => {
    const port = await start(`. {\n dns64\n${hosts(30)}}\n`);
    const count = async () => Number(/^coredns_dns64_requests_translated_total\{server="dns:\/\/:0"\} (\d+)$/m.exec(await registry.metrics())?.[1] ?? 0);
    const before = await count();
    await ask(port, 'v4only.example');
    await ask(port, 'dual.example');
    expect((await count()) - before).toBe(1);
  });

  it('embeds the IPv4 address as RFC 6052 says for every prefix length', () => {
    const prefix = (length: number) => Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0x01, 0x22, 0x03, 0x44, 0, 0, 0, 0]).subarray(0, length / 8);
    expect([32, 40, 48, 56, 64, 96].map((length) => synthesize(prefix(length), '192.0.2.33'))).toEqual([
      '2001:db8:c000:221::', '2001:db8:1c0:2:21::', '2001:db8:122:c000:2:2100::',
      '2001:db8:122:3c0:0:221::', '2001:db8:122:344:c0:2:2100:0', '2001:db8:122:344::c000:221',
    ]);
  });

  it('setup errors as CoreDNS 1.11.3 words them', () => {
    expectSetupError('. {\n dns64 foo\n}\n', 2, /invalid CIDR address: foo/);
    expectSetupError('. {\n dns64 1.2.3.0/24\n}\n', 2, /invalid netmask 32 IPv6 address: "1.2.3.0\/24"/);
    expectSetupError('. {\n dns64 64:ff9b::/100\n}\n', 2, /invalid prefix length "64:ff9b::\/100"/);
    expectSetupError('. {\n dns64 a b\n}\n', 2, /Wrong argument count or unexpected line ending after 'b'/);
    expectSetupError('. {\n dns64 {\n prefix\n }\n}\n', 3, /Wrong argument count or unexpected line ending after 'prefix'/);
    expectSetupError('. {\n dns64 {\n translate_all x\n }\n}\n', 3, /unknown property 'x'/);
  });
});
