// rrl over real sockets: clients over their rate get truncated (slipped) and
// dropped answers in the configured ratio, other prefixes and TCP are not
// limited, each kind of response has its own rate, requests-per-second,
// report-only, and an account table bounded by max-table-size. Clients are
// told apart by binding their sockets to addresses of 127.0.0.0/8.

import dgram from 'node:dgram';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { planFromCorefile, type ServerPlan } from '../src/config.ts';
import { startPlugins, stopPlugins } from '../src/lifecycle.ts';
import { setLogSink } from '../src/log.ts';
import { registry } from '../src/metrics.ts';
import { DnsServer } from '../src/server.ts';
import { AccountTable, Verdict } from '../plugins/rrl/accounts.ts';
import { PrefixMask } from '../plugins/rrl/prefix.ts';
import { buildQuery, decodeReply, openTcp, type DecodedReply } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';

const CLUSTER = path.resolve(import.meta.dirname, '../examples/cluster');

interface Running {
  port: number;
  plan: ServerPlan;
  /** Accounts the block's rrl holds now. */
  tracked(): number;
}

let stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.map((stop) => stop()));
  stops = [];
});

/** hosts answers a.example. and b.example. (A only) and NXDOMAIN for other names; rrl as configured. */
function serveRrl(options: string, rrlArgs = ''): Promise<Running> {
  return serveCorefile(`example.:0 {\n    rrl${rrlArgs} {\n${options}\n    }\n    hosts {\n        10.0.0.1 a.example\n        10.0.0.2 b.example\n    }\n}\n`);
}

async function serveCorefile(corefile: string): Promise<Running> {
  for (let attempt = 1; ; attempt++) {
    const plan = planFromCorefile(corefile, 'Corefile', { dnsPort: 0 });
    const server = new DnsServer();
    await startPlugins(plan);
    try {
      const [listener] = await server.serve(plan);
      stops.push(async () => {
        await server.close(100);
        await stopPlugins(plan);
      });
      const rrl = plan.blocks[0]!.plugins.find(({ name }) => name === 'rrl')!.instance as unknown as { tracked: number };
      return { port: listener!.port, plan, tracked: () => rrl.tracked };
    } catch (error) {
      await stopPlugins(plan);
      // The kernel's UDP port may be taken for TCP by another process: try another.
      if (attempt >= 5 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
}

interface Burst {
  replies: DecodedReply[];
  /** Full answers: not truncated. */
  answered: DecodedReply[];
  /** Slipped: TC set, no records. */
  slipped: DecodedReply[];
  /** Queries that got no reply at all. */
  dropped: number;
}

/**
 * Sends `count` queries at once from a socket bound to `from`, and collects
 * the replies for `waitMs`. IDs are 1..count.
 */
async function burst(port: number, from: string, count: number, question: { name: string; type?: string } | ((i: number) => { name: string; type?: string }), waitMs = 400): Promise<Burst> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, from, resolve));
  const replies: DecodedReply[] = [];
  socket.on('message', (message) => replies.push(decodeReply(message)));
  for (let i = 1; i <= count; i++) {
    const { name, type } = typeof question === 'function' ? question(i) : question;
    socket.send(buildQuery(name, { id: i, type }), port, '127.0.0.1');
  }
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  socket.close();
  const truncated = (reply: DecodedReply) => (reply.flags! & dnsPacket.TRUNCATED_RESPONSE) !== 0;
  return {
    replies,
    answered: replies.filter((reply) => !truncated(reply)),
    slipped: replies.filter(truncated),
    dropped: count - replies.length,
  };
}

const addresses = (reply: DecodedReply) => (reply.answers ?? []).map((record) => (record as { data: unknown }).data);

async function exceeded(metric: 'responses' | 'requests', clientIp: string): Promise<number> {
  const text = await registry.metrics();
  const match = text.match(new RegExp(`^coredns_rrl_${metric}_exceeded_total\\{client_ip="${clientIp.replaceAll('.', '\\.')}"\\} (\\d+)$`, 'm'));
  return match ? Number(match[1]) : 0;
}

describe('rrl: responses over the rate', () => {
  it('a client over responses-per-second gets slipped (TC) and dropped answers in the slip ratio; TCP still answers it', async () => {
    const { port } = await serveRrl('        responses-per-second 5\n        slip-ratio 2');
    const result = await burst(port, '127.0.2.1', 25, { name: 'a.example' });
    // A new account holds one second of allowance: 5 answers, then 20 over the rate, every 2nd slipped.
    expect(result.answered).toHaveLength(5);
    for (const reply of result.answered) expect(addresses(reply)).toEqual(['10.0.0.1']);
    expect(result.slipped).toHaveLength(10);
    expect(result.dropped).toBe(10);
    for (const reply of result.slipped) {
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.answers).toEqual([]);
      expect(reply.authorities).toEqual([]);
      expect(reply.questions).toEqual([{ name: 'a.example', type: 'A', class: 'IN' }]);
    }
    // Every reply answers its own query.
    expect(new Set(result.replies.map((reply) => reply.id)).size).toBe(result.replies.length);
    expect(await exceeded('responses', '127.0.2.1')).toBe(20);

    // The retry over TCP that TC asks for is answered in full.
    const connection = await openTcp(port, '127.0.0.1', '127.0.2.1');
    for (let id = 1; id <= 10; id++) connection.send(buildQuery('a.example', { id }));
    const answers = (await connection.waitFor(10)).map(decodeReply);
    connection.close();
    expect(answers).toHaveLength(10);
    for (const reply of answers) expect(addresses(reply)).toEqual(['10.0.0.1']);
  });

  it('slip-ratio 1 slips every response over the rate; slip-ratio 0 (the default) drops them all', async () => {
    const slipping = await serveRrl('        responses-per-second 4\n        slip-ratio 1');
    const all = await burst(slipping.port, '127.0.3.1', 12, { name: 'a.example' });
    expect([all.answered.length, all.slipped.length, all.dropped]).toEqual([4, 8, 0]);
    const dropping = await serveRrl('        responses-per-second 4');
    const none = await burst(dropping.port, '127.0.3.1', 12, { name: 'a.example' });
    expect([none.answered.length, none.slipped.length, none.dropped]).toEqual([4, 0, 8]);
  });

  it('another client prefix is unaffected; an address in the same /24 shares the limit', async () => {
    const { port } = await serveRrl('        responses-per-second 3');
    const flooder = await burst(port, '127.0.4.1', 20, { name: 'a.example' });
    expect(flooder.answered).toHaveLength(3);
    const neighbour = await burst(port, '127.0.4.77', 3, { name: 'a.example' });
    expect(neighbour.answered).toHaveLength(0);
    const other = await burst(port, '127.0.5.1', 3, { name: 'a.example' });
    expect(other.answered).toHaveLength(3);
  });

  it('ipv4-prefix-length 32 tells every address apart', async () => {
    const { port } = await serveRrl('        responses-per-second 2\n        ipv4-prefix-length 32');
    expect((await burst(port, '127.0.6.1', 6, { name: 'a.example' })).answered).toHaveLength(2);
    expect((await burst(port, '127.0.6.2', 6, { name: 'a.example' })).answered).toHaveLength(2);
  });

  it('answers are accounted per name: another name has its own allowance', async () => {
    const { port } = await serveRrl('        responses-per-second 2');
    expect((await burst(port, '127.0.7.1', 5, { name: 'a.example' })).answered).toHaveLength(2);
    expect((await burst(port, '127.0.7.1', 5, { name: 'b.example' })).answered).toHaveLength(2);
  });

  it('credit comes back with time: after a pause the client is answered again', async () => {
    const { port } = await serveRrl('        responses-per-second 10\n        window 1');
    expect((await burst(port, '127.0.8.1', 30, { name: 'a.example' }, 50)).answered).toHaveLength(10);
    // Balances go no lower than the window (1 s): after it and one more interval, credit is back.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect((await burst(port, '127.0.8.1', 1, { name: 'a.example' })).answered).toHaveLength(1);
  });
  it('the errors plugin logs each dropped answer, as with CoreDNS\'s rrl', async () => {
    const lines: string[] = [];
    const restore = setLogSink((line) => lines.push(line));
    try {
      const { port } = await serveCorefile('example.:0 {\n    errors\n    rrl {\n        responses-per-second 1\n    }\n    hosts {\n        10.0.0.1 a.example\n    }\n}\n');
      expect((await burst(port, '127.0.17.1', 3, { name: 'a.example' })).answered).toHaveLength(1);
    } finally {
      setLogSink(restore);
    }
    expect(lines.filter((line) => line.includes('rate exceeded'))).toEqual([
      '[ERROR] plugin/errors: 0 a.example. A: response rate exceeded the limit',
      '[ERROR] plugin/errors: 0 a.example. A: response rate exceeded the limit',
    ]);
  });
});

describe('rrl: kinds of response', () => {
  /** The example cluster from its manifests, behind a cache: rrl sees cached answers too. */
  const serveCluster = (options: string) => serveCorefile(`cluster.local:0 {\n    rrl {\n${options}\n    }\n    cache 30\n    kubernetes cluster.local {\n        manifests ${CLUSTER}\n    }\n}\n`);

  it('NXDOMAIN and NODATA are limited at their own rates, apart from positive answers', async () => {
    const { port } = await serveCluster('        responses-per-second 100\n        nxdomains-per-second 2\n        nodata-per-second 3');
    // Every undefined name of a zone counts alike (one account per zone of the authority section).
    const nxdomain = await burst(port, '127.0.9.1', 10, (i) => ({ name: `missing-${i}.demo.svc.cluster.local` }));
    expect(nxdomain.answered).toHaveLength(2);
    for (const reply of nxdomain.answered) expect(reply.rcode).toBe('NXDOMAIN');
    const nodata = await burst(port, '127.0.9.1', 10, { name: 'web.demo.svc.cluster.local', type: 'TXT' });
    expect(nodata.answered).toHaveLength(3);
    for (const reply of nodata.answered) expect([reply.rcode, reply.answers]).toEqual(['NOERROR', []]);
    const positive = await burst(port, '127.0.9.1', 10, { name: 'web.demo.svc.cluster.local' });
    expect(positive.answered).toHaveLength(10);
    for (const reply of positive.answered) expect(addresses(reply)).toEqual(['10.96.100.10']);
  });

  it('a kind with allowance 0 is not limited while the others default to responses-per-second', async () => {
    const { port } = await serveCluster('        responses-per-second 2\n        nxdomains-per-second 0');
    expect((await burst(port, '127.0.10.1', 8, (i) => ({ name: `missing-${i}.demo.svc.cluster.local` }))).answered).toHaveLength(8);
    expect((await burst(port, '127.0.10.1', 8, { name: 'web.demo.svc.cluster.local', type: 'TXT' })).answered).toHaveLength(2);
    expect((await burst(port, '127.0.10.1', 8, { name: 'web.demo.svc.cluster.local' })).answered).toHaveLength(2);
  });

  it('queries outside the plugin\'s zones are not limited', async () => {
    const { port } = await serveRrl('        responses-per-second 1', ' sub.example');
    expect((await burst(port, '127.0.11.1', 5, { name: 'a.example' })).answered).toHaveLength(5);
    expect((await burst(port, '127.0.11.1', 5, { name: 'x.sub.example' })).answered).toHaveLength(1);
  });
});

describe('rrl: requests and report-only', () => {
  it('requests-per-second drops requests over the rate, never slipped, and counts them', async () => {
    const { port } = await serveRrl('        requests-per-second 4\n        slip-ratio 1');
    const result = await burst(port, '127.0.12.1', 12, (i) => ({ name: i % 2 ? 'a.example' : `missing-${i}.example` }));
    expect(result.answered).toHaveLength(4);
    expect(result.slipped).toHaveLength(0);
    expect(result.dropped).toBe(8);
    expect(await exceeded('requests', '127.0.12.1')).toBe(8);
  });

  it('requests-per-second counts TCP queries too, as rrl does', async () => {
    const { port } = await serveRrl('        requests-per-second 3');
    const connection = await openTcp(port, '127.0.0.1', '127.0.13.1');
    for (let id = 1; id <= 6; id++) connection.send(buildQuery('a.example', { id }));
    const replies = await connection.waitFor(6, 600);
    connection.close();
    expect(replies).toHaveLength(3);
  });

  it('report-only answers everything but counts what it would have limited', async () => {
    const { port } = await serveRrl('        responses-per-second 2\n        requests-per-second 3\n        slip-ratio 1\n        report-only');
    const result = await burst(port, '127.0.14.1', 10, { name: 'a.example' });
    expect(result.answered).toHaveLength(10);
    for (const reply of result.answered) expect(addresses(reply)).toEqual(['10.0.0.1']);
    expect(await exceeded('requests', '127.0.14.1')).toBe(7);
    expect(await exceeded('responses', '127.0.14.1')).toBe(8);
  });
});

describe('rrl: max-table-size', () => {
  it('the table never holds more than max-table-size accounts under many source addresses; the least recently used goes first', async () => {
    const running = await serveRrl('        responses-per-second 1\n        ipv4-prefix-length 32\n        max-table-size 50');
    // A client over its rate stays limited while its account is kept.
    expect((await burst(running.port, '127.0.15.1', 2, { name: 'a.example' })).answered).toHaveLength(1);
    expect((await burst(running.port, '127.0.15.1', 1, { name: 'a.example' })).answered).toHaveLength(0);
    let peak = 0;
    for (let batch = 0; batch < 8; batch++) {
      await Promise.all(Array.from({ length: 25 }, (_, i) => burst(running.port, `127.1.${batch}.${i + 1}`, 2, { name: 'a.example' }, 150)));
      peak = Math.max(peak, running.tracked());
    }
    expect(peak).toBe(50);
    // 200 newer accounts pushed the limited client's out: it starts afresh.
    expect((await burst(running.port, '127.0.15.1', 1, { name: 'a.example' })).answered).toHaveLength(1);
  });

  it('the account table stays at its capacity for any number of tokens', () => {
    let now = 0;
    const table = new AccountTable(1000, 15_000, 2, () => now);
    let largest = 0;
    for (let i = 0; i < 100_000; i++) {
      now += 0.01;
      table.debit(`10.${i >> 16}.${(i >> 8) & 0xff}.${i & 0xff}/0/1/a.example.`, 100);
      largest = Math.max(largest, table.size);
    }
    expect(largest).toBe(1000);
  });

  it('max-table-size 0 tracks nothing and limits nothing', async () => {
    const running = await serveRrl('        responses-per-second 1\n        max-table-size 0');
    expect((await burst(running.port, '127.0.16.1', 5, { name: 'a.example' })).answered).toHaveLength(5);
    expect(running.tracked()).toBe(0);
  });
});

describe('rrl: accounting', () => {
  it('a steady client at its rate is never limited; the balance caps at one second of credit', () => {
    let now = 0;
    const table = new AccountTable(10, 15_000, 0, () => now);
    // 10 per second for 5 s.
    const verdicts = Array.from({ length: 50 }, () => {
      now += 100;
      return table.debit('t', 100);
    });
    expect(verdicts.every((verdict) => verdict === Verdict.SEND)).toBe(true);
    // A long pause earns no more than one second (10 responses) of credit.
    now += 60_000;
    const burstVerdicts = Array.from({ length: 15 }, () => table.debit('t', 100));
    expect(burstVerdicts.filter((verdict) => verdict === Verdict.SEND)).toHaveLength(10);
  });

  it('a client that keeps sending stays limited: its balance sinks to minus the window', () => {
    let now = 0;
    const table = new AccountTable(10, 2_000, 0, () => now);
    table.debit('t', 100);
    for (let i = 0; i < 1000; i++) table.debit('t', 100);
    // Now 2 s in debt: 1.9 s later (1 s of credit would be needed more) still dropped; 2.2 s later sent.
    now += 1_900;
    expect(table.debit('t', 100)).toBe(Verdict.DROP);
    now += 2_200;
    expect(table.debit('t', 100)).toBe(Verdict.SEND);
  });

  it('prefixes: /24 and /56 by default, any length', () => {
    const mask = new PrefixMask(24, 56);
    expect(mask.prefixOf('10.1.2.3', 1)).toBe('10.1.2.0');
    expect(mask.prefixOf('2001:db8:aa:bbcc::1', 2)).toBe('2001:db8:aa:bb00::');
    expect(new PrefixMask(1, 1).prefixOf('200.1.2.3', 1)).toBe('128.0.0.0');
    expect(new PrefixMask(32, 128).prefixOf('fe80::1', 2)).toBe('fe80::1');
  });
});

describe('rrl: setup errors name the file and line', () => {
  const corefile = (option: string) => `. {\n    rrl {\n        ${option}\n    }\n    whoami\n}\n`;
  const cases: [string, RegExp][] = [
    ['window 0', /window must be greater than zero/],
    ['window five', /window invalid value 'five'/],
    ['window 1 2', /Unexpected token '2'/],
    ['ipv4-prefix-length 33', /ipv4-prefix-length must be between 1 and 32/],
    ['ipv6-prefix-length 0', /ipv6-prefix-length must be between 1 and 128/],
    ['responses-per-second -1', /responses-per-second cannot be negative/],
    ['nodata-per-second abc', /nodata-per-second invalid value 'abc'/],
    ['nxdomains-per-second NaN', /nxdomains-per-second invalid value 'NaN'/],
    ['referrals-per-second', /Wrong argument count/],
    ['errors-per-second 1 2', /Unexpected token '2'/],
    ['requests-per-second -5', /requests-per-second cannot be negative/],
    ['slip-ratio 11', /slip-ratio must be between 0 and 10/],
    ['max-table-size -1', /max-table-size must be between 0/],
    ['max-table-size ginormous', /max-table-size must be an integer/],
    ['report-only yes', /Unexpected token 'yes'/],
    ['blah', /plugin\/rrl: unknown property 'blah'/],
  ];
  for (const [option, detail] of cases) {
    it(`rejects '${option}'`, () => expectSetupError(corefile(option), 3, detail));
  }

  it('a second rrl in one block is an error', () => {
    expectSetupError('. {\n    rrl\n    rrl\n    whoami\n}\n', 3, /can only be used once per Server Block/);
  });

  it('accepts every option; zones default to the block\'s', () => {
    const plan = planFromCorefile(`example.org:0 {\n    rrl {\n        window 10.5\n        ipv4-prefix-length 25\n        ipv6-prefix-length 64\n        responses-per-second 10\n        nodata-per-second 5\n        nxdomains-per-second 6\n        referrals-per-second 7\n        errors-per-second 0.5\n        slip-ratio 2\n        requests-per-second 100\n        max-table-size 5000\n        report-only\n    }\n    whoami\n}\n`, 'Corefile', { dnsPort: 0 });
    expect(plan.blocks[0]!.plugins.map(({ name }) => name)).toEqual(['rrl', 'whoami']);
  });
});
