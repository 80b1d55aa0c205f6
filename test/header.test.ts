// header: set or clear AA, RA and RD on queries and replies, as CoreDNS 1.11.3
// does (each flag combination below was checked side by side with dig).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildQuery, decodeReply, queryUdp, sendUdp, serverPerTest, type DecodedReply } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { TestUpstream } from './support/upstreams.ts';

const start = serverPerTest();
const RD = 0x0100;

const flags = (reply: DecodedReply) => ['aa', 'rd', 'ra'].filter((flag) => reply[`flag_${flag}` as 'flag_aa']).join(' ');

describe('header response rules', () => {
  it('response set ra aa, response clear rd', async () => {
    const port = await start('. {\n header {\n response set ra aa\n response clear rd\n }\n whoami\n}\n');
    expect(flags(await queryUdp(port, 'x.example', { flags: RD }))).toBe('aa ra');
  });

  it('the old form without a selector applies to responses (set ra, clear aa)', async () => {
    const port = await start('. {\n header {\n set ra\n clear aa\n }\n whoami\n}\n');
    const reply = await queryUdp(port, 'x.example', { flags: RD });
    expect(flags(reply)).toBe('rd ra');
    // The records are untouched.
    expect(reply.additionals!.map((record) => record.type)).toEqual(['A', 'SRV']);
  });

  it('response set rd answers RD=1 to a query without it', async () => {
    const port = await start('. {\n header {\n response set rd\n }\n whoami\n}\n');
    expect(flags(await queryUdp(port, 'x.example', { flags: 0 }))).toBe('aa rd');
  });
});

describe('header query rules', () => {
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await TestUpstream.start({ records: { 'www.example.org A': [{ name: 'www.example.org', type: 'A', ttl: 60, data: '192.0.2.1' }] } });
  });
  afterAll(() => upstream.stop());

  it('query clear rd: the reply echoes the cleared RD', async () => {
    const port = await start('. {\n header {\n query clear rd\n }\n whoami\n}\n');
    expect(flags(await queryUdp(port, 'x.example', { flags: RD }))).toBe('aa');
  });

  it('query set rd reaches the upstream a query is forwarded to', async () => {
    const port = await start(`. {\n header {\n query set rd\n }\n forward . ${upstream.hostPort}\n}\n`);
    const reply = decodeReply((await sendUdp(port, buildQuery('www.example.org', { flags: 0 })))!);
    expect(reply.answers).toMatchObject([{ type: 'A', data: '192.0.2.1' }]);
    expect(upstream.queriesFor('www.example.org').at(-1)!.packet.flag_rd).toBe(true);
  });
});

describe('header setup errors, as CoreDNS 1.11.3 words them', () => {
  it('needs a block with rules', () => {
    expectSetupError('. {\n header\n}\n', 2, /Wrong argument count or unexpected line ending after 'header'/);
  });
  it('rejects bad selectors, actions and flags (ad and cd are not in 1.11.3)', () => {
    expectSetupError('. {\n header {\n foo set aa\n }\n}\n', 3, /setting up rule: invalid selector=foo should be query or response/);
    expectSetupError('. {\n header {\n response\n }\n}\n', 3, /setting up rule: no flag action provided/);
    expectSetupError('. {\n header {\n response set\n }\n}\n', 3, /setting up rule: invalid length for flags, at least one should be provided/);
    expectSetupError('. {\n header {\n response toggle aa\n }\n}\n', 3, /setting up rule: unknown flag action=toggle, should be set or clear/);
    expectSetupError('. {\n header {\n query set ad\n }\n}\n', 3, /setting up rule: unknown\/unsupported flag=ad/);
  });
});
