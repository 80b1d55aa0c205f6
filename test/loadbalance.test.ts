// loadbalance (LB-1..5): shuffling over real sockets and at the unit level.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildChain } from '../src/chain.ts';
import { planFromCorefile } from '../src/config.ts';
import { CorefileError } from '../src/corefile/types.ts';
import { createLogger, quietLog } from '../src/log.ts';
import type { Handler, Next } from '../src/plugin.ts';
import { Class, Flag, Rcode, Type } from '../src/wire/constants.ts';
import { encodeReply, type Reply, type ResourceRecord } from '../src/wire/message.ts';
import { decodeQuery, type Query } from '../src/wire/query.ts';
import { LoadBalancer, type LoadbalanceConfig } from '../plugins/loadbalance/index.ts';
import { parseCidr, parseWeights, preferOrder, roundRobinOrder } from '../plugins/loadbalance/shuffle.ts';
import { buildQuery, decodeReply, queryUdp, startServer as startServerOnce, type DecodedReply, type RunningServer } from './support/dns.ts';
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

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-lb-'));
let running: RunningServer | null = null;
afterEach(async () => {
  await running?.stop();
  running = null;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const rr = (name: string, type: number, data: ResourceRecord['data'], ttl = 30): ResourceRecord => ({ name, type, class: Class.IN, ttl, data });
const A = (name: string, address: string) => rr(name, Type.A, address);
const AAAA = (name: string, address: string) => rr(name, Type.AAAA, address);
const reply = (answer: ResourceRecord[], extra: Partial<Reply> = {}): Reply => ({ rcode: Rcode.NOERROR, flags: Flag.AA, answer, authority: [], additional: [], ...extra });

/** Starts `corefile` with its real plugins followed by a stand-in answering `answer`. */
async function start(corefile: string, answer: (qname: string) => Reply): Promise<{ port: number; calls: () => number }> {
  const plan = planFromCorefile(corefile, 'Corefile', { dnsPort: 0 });
  const block = plan.blocks[0]!;
  for (const { instance } of block.plugins) await instance.start?.();
  let calls = 0;
  const handlers: Handler[] = block.plugins.flatMap(({ instance }) => (instance.serve ? [instance.serve] : []));
  const stand: Next = (request) => {
    calls++;
    return answer(request.query.qname);
  };
  handlers.push((request) => stand(request));
  const server = await startServer(corefile, { chain: buildChain(handlers) });
  running = {
    ...server,
    stop: async () => {
      await server.stop();
      for (const { instance } of block.plugins) await instance.stop?.();
    },
  };
  return { port: server.port, calls: () => calls };
}

/** The records in `order` (indexes into them; null: as they are). */
const ordered = (records: ResourceRecord[], order: number[] | null) => (order === null ? records : order.map((index) => records[index]!));

const answers = (message: DecodedReply) => (message.answers ?? []).map((record) => `${record.type} ${String((record as { data: unknown }).data)}`);

function balancer(config: Partial<LoadbalanceConfig> = {}, random = Math.random): LoadBalancer {
  const log = createLogger('loadbalance', quietLog);
  return new LoadBalancer({ policy: 'round_robin', weightFile: null, weightToken: null, reloadMs: 0, prefer: [], ...config }, log, random);
}

describe('round_robin over real sockets (LB-3)', () => {
  it('shuffles the A records of every answer, CNAME first, each address first about as often', async () => {
    const { port } = await start('. {\n loadbalance\n}\n', (qname) =>
      reply([rr(qname, Type.CNAME, 'web.example.org.'), A('web.example.org.', '10.0.0.1'), A('web.example.org.', '10.0.0.2'), A('web.example.org.', '10.0.0.3')]));
    const firsts = new Map<string, number>();
    const orders = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const list = answers(await queryUdp(port, 'www.example.org'));
      expect(list[0]).toBe('CNAME web.example.org');
      expect(list.slice(1).sort()).toEqual(['A 10.0.0.1', 'A 10.0.0.2', 'A 10.0.0.3']);
      firsts.set(list[1]!, (firsts.get(list[1]!) ?? 0) + 1);
      orders.add(list.join(','));
    }
    expect(orders.size).toBeGreaterThanOrEqual(3);
    expect(firsts.size).toBe(3);
    for (const count of firsts.values()) expect(count).toBeGreaterThan(50);
  });

  it('CACHE-14: cached answers are still shuffled (loadbalance runs before cache)', async () => {
    const { port, calls } = await start('. {\n cache 30\n loadbalance\n}\n', (qname) => reply([A(qname, '10.0.0.1'), A(qname, '10.0.0.2'), A(qname, '10.0.0.3'), A(qname, '10.0.0.4')]));
    const firsts = new Set<string>();
    for (let i = 0; i < 100; i++) firsts.add(answers(await queryUdp(port, 'svc.example.org'))[0]!);
    expect(calls()).toBe(1);
    expect(firsts.size).toBe(4);
  });

  it('LB-2: leaves non-NOERROR replies alone', async () => {
    const { port } = await start('. {\n loadbalance\n}\n', () => ({ ...reply([A('x.example.', '10.0.0.1'), A('x.example.', '10.0.0.2')]), rcode: Rcode.NXDOMAIN }));
    for (let i = 0; i < 20; i++) expect(answers(await queryUdp(port, 'x.example'))).toEqual(['A 10.0.0.1', 'A 10.0.0.2']);
  });
});

describe('round_robin ordering (LB-2, LB-3)', () => {
  it('orders a mixed section: CNAMEs, other types in order, A and AAAA together, then MX', () => {
    const records = [
      rr('a.', Type.MX, { preference: 10, exchange: 'mx1.' }),
      A('a.', '10.0.0.1'),
      rr('a.', Type.TXT, ['t']),
      AAAA('a.', '2001:db8::1'),
      rr('a.', Type.CNAME, 'b.'),
      rr('a.', Type.MX, { preference: 20, exchange: 'mx2.' }),
      rr('a.', Type.SRV, { priority: 0, weight: 0, port: 1, target: 'c.' }),
    ];
    for (let i = 0; i < 20; i++) {
      const out = ordered(records, roundRobinOrder(records, Math.random));
      expect(out.map((record) => record.type)).toEqual([Type.CNAME, Type.TXT, Type.SRV, ...out.slice(3, 5).map((record) => record.type), Type.MX, Type.MX]);
      expect(new Set(out.slice(3, 5).map((record) => record.type))).toEqual(new Set([Type.A, Type.AAAA]));
    }
  });

  it('returns the very reply when nothing would move, and never changes the reply it got', () => {
    const lb = balancer();
    const single = Object.freeze(reply([Object.freeze(A('a.', '10.0.0.1'))]));
    expect(lb.balance(Type.A, single)).toBe(single);
    const frozen = Object.freeze(reply(Object.freeze([A('a.', '10.0.0.1'), A('a.', '10.0.0.2')]) as ResourceRecord[]));
    for (let i = 0; i < 50; i++) lb.balance(Type.A, frozen);
    expect(frozen.answer.map((record) => record.data)).toEqual(['10.0.0.1', '10.0.0.2']);
    const transfer = reply([A('a.', '10.0.0.1'), A('a.', '10.0.0.2')]);
    expect(lb.balance(Type.AXFR, transfer)).toBe(transfer);
  });

  it('shuffles authority and additional sections too', () => {
    const lb = balancer();
    const source = reply([], { authority: [A('a.', '10.0.0.1'), A('a.', '10.0.0.2')], additional: [A('b.', '10.0.1.1'), A('b.', '10.0.1.2')] });
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const out = lb.balance(Type.NS, source);
      seen.add(`${out.authority[0]!.data}|${out.additional[0]!.data}`);
    }
    expect(seen.size).toBe(4);
  });

  it('each query gets its own order, uniform over all orders, and the base\'s encoded body is reused', () => {
    const lb = balancer();
    const source = reply([A('a.', '10.0.0.1'), A('a.', '10.0.0.2'), A('a.', '10.0.0.3')]);
    const query = decodeQuery(buildQuery('a')) as Query;
    const counts = new Map<string, number>();
    const total = 30_000;
    for (let i = 0; i < total; i++) {
      const out = lb.balance(Type.A, source);
      expect(out.derived!.base).toBe(source);
      const key = out.answer.map((record) => record.data).join(',');
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (i < 50) {
        const wire = decodeReply(encodeReply(query, out, 512)).answers!.map((record) => (record as { data: string }).data).join(',');
        expect(wire).toBe(key);
      }
    }
    expect(source.encoded?.qname).toBe('a.');
    expect(counts.size).toBe(6);
    for (const count of counts.values()) expect(count / total).toBeGreaterThan(0.15);
  });

  it('CACHE-14: a cache hit is reordered from the entry\'s records, with the hit\'s TTL, flags and base body', () => {
    const lb = balancer();
    const base = reply([A('a.', '10.0.0.1'), A('a.', '10.0.0.2'), A('a.', '10.0.0.3')]);
    // As the cache builds hits: the stored records, their TTL given by `derived`.
    const hit = (ttl: number, flags: number): Reply => ({ ...base, flags, derived: { base, ttl, order: null } });
    const query = decodeQuery(buildQuery('a')) as Query;
    const firsts = new Set<unknown>();
    for (const [ttl, flags] of [[30, 0x0400], [29, 0x0400], [29, 0x0480]] as const) {
      const h = hit(ttl, flags);
      for (let i = 0; i < 200; i++) {
        const out = lb.balance(Type.A, h);
        expect(out.flags).toBe(flags);
        expect(out.derived!.base).toBe(base);
        expect(out.derived!.ttl).toBe(ttl);
        firsts.add(out.answer[0]!.data);
        if (i < 20) {
          const wire = decodeReply(encodeReply(query, out, 512));
          expect(wire.answers!.map((record) => [(record as { data: string }).data, (record as { ttl: number }).ttl]))
            .toEqual(out.answer.map((record) => [record.data, ttl]));
        }
      }
    }
    expect(firsts.size).toBe(3);
  });
});

describe('weighted (LB-4)', () => {
  it('parses the weight file and rejects bad lines with their line number', () => {
    const table = parseWeights('# comment\nwww.example.org\n10.0.0.1 100\n10.0.0.2 1\n\nother.example.\n2001:db8::1 5\n', 'w');
    expect([...table.keys()]).toEqual(['www.example.org.', 'other.example.']);
    expect([...table.get('www.example.org.')!.values()]).toEqual([100, 1]);
    expect(() => parseWeights('10.0.0.1\n', 'w')).toThrow(/w:1: wrong domain name/);
    expect(() => parseWeights('a.\n10.0.0.1 0\n', 'w')).toThrow(/w:2: wrong weight value '0'/);
    expect(() => parseWeights('a.\n10.0.0.1 256\n', 'w')).toThrow(/wrong weight value/);
    expect(() => parseWeights('10.0.0.1 5\n', 'w')).toThrow(/missing domain name/);
    expect(() => parseWeights('a.\n10.0.0.1 5 6\n', 'w')).toThrow(/could not parse/);
  });

  it('puts the address picked by weight on top, over real sockets', async () => {
    const file = path.join(dir, 'weights');
    fs.writeFileSync(file, 'www.example.org\n10.0.0.1 9\n10.0.0.2 1\n');
    const { port } = await start(`. {\n loadbalance weighted ${file} {\n reload 0\n }\n}\n`, (qname) => reply([A(qname, '10.0.0.2'), A(qname, '10.0.0.1')]));
    let heavy = 0;
    for (let i = 0; i < 200; i++) if (answers(await queryUdp(port, 'www.example.org'))[0] === 'A 10.0.0.1') heavy++;
    expect(heavy).toBeGreaterThan(150);
    expect(heavy).toBeLessThan(200);
  });

  it('a missing file without reload fails at start; with reload it is retried', async () => {
    const missing = path.join(dir, 'nope');
    const plan = planFromCorefile(`. {\n loadbalance weighted ${missing} {\n reload 0\n }\n}\n`, 'Corefile', { dnsPort: 0 });
    const instance = plan.blocks[0]!.plugins[0]!.instance;
    expect(() => instance.start!()).toThrow(CorefileError);
    const retried = planFromCorefile(`. {\n loadbalance weighted ${missing}\n}\n`, 'Corefile', { dnsPort: 0 }).blocks[0]!.plugins[0]!.instance;
    expect(() => retried.start!()).not.toThrow();
    retried.stop!();
  });
});

describe('prefer (LB-5)', () => {
  it('moves addresses in the preferred subnets first, in subnet order', () => {
    const subnets = [parseCidr('10.1.0.0/16')!, parseCidr('fd00::/8')!];
    const records = [rr('a.', Type.TXT, ['x']), A('a.', '192.168.0.1'), AAAA('a.', 'fd00::1'), A('a.', '10.1.2.3'), rr('a.', Type.CNAME, 'b.')];
    const out = ordered(records, preferOrder(records, subnets));
    expect(out.map((record) => String(record.data))).toEqual(['b.', '10.1.2.3', 'fd00::1', '192.168.0.1', 'x']);
  });

  it('applies after the shuffle, over real sockets', async () => {
    const { port } = await start('. {\n loadbalance round_robin {\n prefer 10.0.0.0/8\n }\n}\n', (qname) => reply([A(qname, '192.168.0.1'), A(qname, '10.0.0.5'), A(qname, '172.16.0.1')]));
    for (let i = 0; i < 30; i++) expect(answers(await queryUdp(port, 'p.example'))[0]).toBe('A 10.0.0.5');
  });
});

describe('setup (LB-1)', () => {

  it('accepts the stock form and the options', () => {
    expect(() => planFromCorefile('.:53 {\n loadbalance\n}\n', 'Corefile', { dnsPort: 0 })).not.toThrow();
    expect(() => planFromCorefile('. {\n loadbalance round_robin {\n prefer 10.0.0.0/8 fd00::/8\n }\n}\n', 'Corefile', { dnsPort: 0 })).not.toThrow();
    expect(() => planFromCorefile('. {\n loadbalance weighted w.txt {\n reload 10s\n }\n}\n', 'Corefile', { dnsPort: 0 })).not.toThrow();
  });

  it('rejects what CoreDNS rejects, with file and line', () => {
    expectSetupError('. {\n loadbalance random\n}\n', 2, /unknown policy: 'random'/);
    expectSetupError('. {\n loadbalance round_robin extra\n}\n', 2, /unknown property for round_robin/);
    expectSetupError('. {\n loadbalance weighted\n}\n', 2, /missing weight file/);
    expectSetupError('. {\n loadbalance weighted a b\n}\n', 2, /unexpected argument 'b'/);
    expectSetupError('. {\n loadbalance {\n   reload 5s\n }\n}\n', 3, /unknown property 'reload'/);
    expectSetupError('. {\n loadbalance {\n prefer 10.0.0.0\n }\n}\n', 3, /invalid CIDR '10.0.0.0'/);
    expectSetupError('. {\n loadbalance weighted w {\n reload later\n }\n}\n', 3, /reload must be a duration/);
  });
});
