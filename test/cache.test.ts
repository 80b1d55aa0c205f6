// cache over real sockets (CACHE-1..14, PROM-4), with a stand-in upstream
// after the block's real plugins and a fake clock (setCacheClock).

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { buildChain } from '../src/chain.ts';
import { planFromCorefile, type BlockPlan } from '../src/config.ts';
import { parseCorefile } from '../src/corefile/parser.ts';
import { createLogger, quietLog } from '../src/log.ts';
import { registry } from '../src/metrics.ts';
import type { Authority, Handler, Next, Request } from '../src/plugin.ts';
import { Class, Flag, Rcode, Type } from '../src/wire/constants.ts';
import { bodyFor, emptyReply, encodeReply, ServerReply, type Reply, type ResourceRecord } from '../src/wire/message.ts';
import { decodeQuery, type Query } from '../src/wire/query.ts';
import { setCacheClock } from '../plugins/cache/index.ts';
import { Cache } from '../plugins/cache/cache.ts';
import { parseCache } from '../plugins/cache/config.ts';
import { buildQuery, decodeReply, queryUdp, sendUdp, startServer as startServerOnce, type DecodedReply } from './support/dns.ts';
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

// ---------------------------------------------------------------------------
// Harness

interface Upstream extends Next {
  calls: Request[];
}

/** A stand-in for what follows the cache; records its calls. */
function upstream(answer: (request: Request, call: number) => Reply | Promise<Reply>): Upstream {
  const calls: Request[] = [];
  const next = ((request: Request) => {
    calls.push(request);
    return answer(request, calls.length);
  }) as Upstream;
  next.calls = calls;
  return next;
}

interface Running {
  port: number;
  block: BlockPlan;
  stop(): Promise<void>;
}

const stops: (() => Promise<void>)[] = [];

/**
 * `corefile` on port 0, its first block's real plugins followed by `next`.
 * The plugins come from a plan of our own, so the test can reach the block.
 */
async function start(corefile: string, next: Next): Promise<Running> {
  const plan = planFromCorefile(corefile, 'Corefile', { dnsPort: 0 });
  const block = plan.blocks[0]!;
  for (const { instance } of block.plugins) await instance.start?.();
  const handlers: Handler[] = block.plugins.flatMap(({ instance }) => (instance.serve ? [instance.serve] : []));
  handlers.push((request) => next(request));
  const running = await startServer(corefile, { chain: buildChain(handlers) });
  const stop = async () => {
    await running.stop();
    for (const { instance } of block.plugins) await instance.stop?.();
  };
  stops.push(stop);
  return { port: running.port, block, stop };
}

function rr(name: string, type: number, ttl: number, data: ResourceRecord['data']): ResourceRecord {
  return { name, type, class: Class.IN, ttl, data };
}
const A = (name: string, address: string, ttl = 300) => rr(name, Type.A, ttl, address);
const SOA = (zone: string, ttl: number, minimum = 300) =>
  rr(zone, Type.SOA, ttl, { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum });

function answer(records: ResourceRecord[], flags: number = Flag.RA, extra: Partial<Reply> = {}): Reply {
  return { rcode: Rcode.NOERROR, flags, answer: records, authority: [], additional: [], ...extra };
}
function nxdomain(zone: string, soaTtl: number, minimum = 300): Reply {
  return { rcode: Rcode.NXDOMAIN, flags: Flag.RA, answer: [], authority: [SOA(zone, soaTtl, minimum)], additional: [] };
}

let now = 1_700_000_000_000;
beforeEach(() => {
  now = 1_700_000_000_000;
  setCacheClock(() => now);
});
afterEach(async () => {
  setCacheClock(null);
  for (const stop of stops.splice(0)) await stop();
});

const ttls = (reply: DecodedReply) =>
  [...(reply.answers ?? []), ...(reply.authorities ?? []), ...(reply.additionals ?? [])].map((record) => (record as { ttl?: number }).ttl);
/** The data of the first answer record. */
const data = (reply: DecodedReply) => (reply.answers![0] as { data: unknown }).data;

/** Sum of a cache metric's series whose labels include `match`. */
async function metric(name: string, match: Record<string, string>): Promise<number> {
  const values = (await registry.getSingleMetric(name)!.get()).values;
  return values
    .filter((value) => Object.entries(match).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

// ---------------------------------------------------------------------------

describe('TTL handling (CACHE-6..9)', () => {
  it('CACHE-7/8/9: the first answer gets the capped TTL, hits count it down by whole seconds', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 300)]));
    const { port } = await start('. {\n cache 30\n}\n', next);
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([30]);
    now += 999;
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([30]);
    now += 1;
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([29]);
    now += 2500;
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([27]);
    expect(next.calls).toHaveLength(1);
    // CACHE-8: at 0 remaining the entry is expired and not served.
    now += 27_000;
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([30]);
    expect(next.calls).toHaveLength(2);
  });

  it('CACHE-6: the duration is the lowest TTL of all sections, every record gets it (CACHE-7)', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 120)], Flag.RA, {
      authority: [rr('example.org.', Type.NS, 90, 'ns.example.org.')],
      additional: [A('ns.example.org.', '10.0.0.53', 60)],
    }));
    const { port } = await start('. {\n cache\n}\n', next);
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([60, 60, 60]);
    now += 10_000;
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([50, 50, 50]);
  });

  it('CACHE-9: a TTL below MINTTL comes out as 5; MINTTL and the success TTL are configurable (CACHE-2)', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 0)]));
    const { port } = await start('. {\n cache 30\n}\n', next);
    expect(ttls(await queryUdp(port, 'zero.example.org'))).toEqual([5]);
    const other = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 1)]));
    const { port: port2 } = await start('. {\n cache {\n success 100 20 2\n }\n}\n', other);
    expect(ttls(await queryUdp(port2, 'one.example.org'))).toEqual([2]);
    const long = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 1000)]));
    const { port: port3 } = await start('. {\n cache {\n success 100 20 2\n }\n}\n', long);
    expect(ttls(await queryUdp(port3, 'long.example.org'))).toEqual([20]);
  });

  it('CACHE-9: the 28800 s dns-version TXT comes out as 30 under cache 30', async () => {
    const next = upstream((request) => answer([rr(request.query.qname, Type.TXT, 28800, ['1.1.0'])], Flag.AA));
    const { port } = await start('. {\n cache 30\n}\n', next);
    expect(ttls(await queryUdp(port, 'dns-version.cluster.local', { type: 'TXT' }))).toEqual([30]);
  });

  it('CACHE-8: keepttl serves the original duration on every hit', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 300)]));
    const { port } = await start('. {\n cache 30 {\n keepttl\n }\n}\n', next);
    await queryUdp(port, 'www.example.org');
    now += 12_000;
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([30]);
    expect(next.calls).toHaveLength(1);
  });

  it('CACHE-1: names outside the cache zones bypass it: no rewrite, no storage', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 300)]));
    const { port } = await start('. {\n cache 30 example.org\n}\n', next);
    expect(ttls(await queryUdp(port, 'www.example.net'))).toEqual([300]);
    expect(ttls(await queryUdp(port, 'www.example.net'))).toEqual([300]);
    expect(next.calls).toHaveLength(2);
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([30]);
    expect(ttls(await queryUdp(port, 'www.example.org'))).toEqual([30]);
    expect(next.calls).toHaveLength(3);
  });
});

describe('denial caching (CACHE-3, CACHE-6)', () => {
  it('caches NXDOMAIN for the SOA record TTL (not its MINIMUM), capped by the cache TTL', async () => {
    const next = upstream(() => nxdomain('example.org.', 10, 600));
    const { port } = await start('. {\n cache 30\n}\n', next);
    const first = await queryUdp(port, 'missing.example.org');
    expect(first.rcode).toBe('NXDOMAIN');
    expect(ttls(first)).toEqual([10]);
    now += 4000;
    const hit = await queryUdp(port, 'missing.example.org');
    expect(hit.rcode).toBe('NXDOMAIN');
    expect(ttls(hit)).toEqual([6]);
    expect(hit.authorities![0]!.type).toBe('SOA');
    expect(next.calls).toHaveLength(1);
  });

  it('caches NODATA, and the denial TTL (1800 s by default) is separate from the success one', async () => {
    const next = upstream(() => ({ rcode: Rcode.NOERROR, flags: Flag.AA, answer: [], authority: [SOA('example.org.', 7200)], additional: [] }));
    const { port } = await start('. {\n cache {\n success 10 100\n }\n}\n', next);
    expect(ttls(await queryUdp(port, 'www.example.org', { type: 'AAAA' }))).toEqual([1800]);
    expect(ttls(await queryUdp(port, 'www.example.org', { type: 'AAAA' }))).toEqual([1800]);
    expect(next.calls).toHaveLength(1);
  });

  it('CACHE-2: disable denial for a zone stores no denial there, but still rewrites TTLs (CACHE-7)', async () => {
    const next = upstream((request) => nxdomain(request.query.qname.endsWith('cluster.local.') ? 'cluster.local.' : 'example.org.', 60));
    const { port } = await start('. {\n cache 30 {\n disable denial cluster.local\n }\n}\n', next);
    expect(ttls(await queryUdp(port, 'nope.default.svc.cluster.local'))).toEqual([30]);
    expect(ttls(await queryUdp(port, 'nope.default.svc.cluster.local'))).toEqual([30]);
    expect(next.calls).toHaveLength(2);
    await queryUdp(port, 'nope.example.org');
    await queryUdp(port, 'nope.example.org');
    expect(next.calls).toHaveLength(3);
  });

  it('STOCK-2: disable success and denial for cluster.local: answers are never stored, TTL still capped', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.96.0.10', 300)], Flag.AA));
    const { port } = await start('. {\n cache 30 {\n disable success cluster.local\n disable denial cluster.local\n }\n}\n', next);
    expect(ttls(await queryUdp(port, 'kube-dns.kube-system.svc.cluster.local'))).toEqual([30]);
    expect(ttls(await queryUdp(port, 'kube-dns.kube-system.svc.cluster.local'))).toEqual([30]);
    expect(next.calls).toHaveLength(2);
    await queryUdp(port, 'www.example.org');
    await queryUdp(port, 'www.example.org');
    expect(next.calls).toHaveLength(3);
  });
});

describe('what is not cached (CACHE-5)', () => {
  const cases: [string, (qname: string) => Reply][] = [
    ['a truncated reply', (qname) => answer([A(qname, '10.0.0.1')], Flag.RA | Flag.TC)],
    ['REFUSED', () => ({ ...emptyReply(Rcode.REFUSED, Flag.RA) })],
    ['FORMERR', () => ({ ...emptyReply(Rcode.FORMERR, Flag.RA) })],
    ['NXDOMAIN without an SOA', () => ({ ...emptyReply(Rcode.NXDOMAIN, Flag.RA) })],
    ['NXDOMAIN that still carries answer records', (qname) => ({ ...nxdomain('example.org.', 60), answer: [rr(qname, Type.CNAME, 60, 'gone.example.org.')] })],
    ['a CNAME chain that never reaches the asked type, without an SOA', (qname) => answer([rr(qname, Type.CNAME, 60, 'elsewhere.example.net.')])],
    ['a server-written error (the chain failed)', () => emptyReply(Rcode.SERVFAIL, 0, new Error('upstream timed out'))],
    ['the shared server SERVFAIL', () => ServerReply.SERVFAIL],
  ];
  for (const [what, build] of cases) {
    it(`does not store ${what}`, async () => {
      const next = upstream((request) => build(request.query.qname));
      const { port } = await start('. {\n cache 30\n}\n', next);
      await queryUdp(port, 'www.example.org');
      await queryUdp(port, 'www.example.org');
      expect(next.calls).toHaveLength(2);
    });
  }

  it('does not store entries whose duration is 0 (servfail 0)', async () => {
    const next = upstream(() => ({ ...emptyReply(Rcode.SERVFAIL, Flag.RA) }));
    const { port } = await start('. {\n cache 30 {\n servfail 0\n }\n}\n', next);
    await queryUdp(port, 'www.example.org');
    await queryUdp(port, 'www.example.org');
    expect(next.calls).toHaveLength(2);
  });

  it('NOTIFY queries pass through without a lookup', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1')]));
    const running = await start('. {\n cache 30\n}\n', next);
    const notify = dnsPacket.encode({ type: 'query', id: 5, opcode: 'NOTIFY', flags: 0, questions: [{ name: 'www.example.org', type: 'SOA', class: 'IN' }] } as never);
    await sendUdp(running.port, notify);
    await sendUdp(running.port, notify);
    expect(next.calls).toHaveLength(2);
  });

  it('caches an upstream SERVFAIL for the servfail duration (5 s by default) in the denial cache', async () => {
    const next = upstream(() => ({ ...emptyReply(Rcode.SERVFAIL, Flag.RA) }));
    const { port } = await start('. {\n cache 30\n}\n', next);
    expect((await queryUdp(port, 'www.example.org')).rcode).toBe('SERVFAIL');
    now += 4000;
    expect((await queryUdp(port, 'www.example.org')).rcode).toBe('SERVFAIL');
    expect(next.calls).toHaveLength(1);
    now += 1000;
    await queryUdp(port, 'www.example.org');
    expect(next.calls).toHaveLength(2);
  });
});

describe('keys and reply shape (CACHE-4, CACHE-10)', () => {
  it('CACHE-4: the qname is compared without case; owner names follow the asking query (WIRE-7)', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1')]));
    const { port } = await start('. {\n cache 30\n}\n', next);
    const first = await queryUdp(port, 'WWW.Example.ORG');
    expect(first.answers![0]!.name).toBe('WWW.Example.ORG');
    const second = await queryUdp(port, 'www.example.org');
    expect(next.calls).toHaveLength(1);
    expect(second.questions![0]!.name).toBe('www.example.org');
    // Deliberate: the encoder points owner names equal to the qname at the question,
    // so a hit carries the current query's case (0x20-safe), not the first one's.
    expect(second.answers![0]!.name).toBe('www.example.org');
  });

  it('CACHE-4: qtype, DO and CD are part of the key', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1')]));
    const { port } = await start('. {\n cache 30\n}\n', next);
    await queryUdp(port, 'www.example.org');
    await queryUdp(port, 'www.example.org', { udpSize: 1232, dnssecOk: true });
    await queryUdp(port, 'www.example.org', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED });
    await queryUdp(port, 'www.example.org', { type: 'MX' });
    expect(next.calls).toHaveLength(4);
    await queryUdp(port, 'www.example.org', { udpSize: 4096, dnssecOk: false });
    expect(next.calls).toHaveLength(4);
  });

  it('CACHE-10: hits have AA set, RA and RCODE as stored, the ID/RD/CD of the query', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1')], Flag.RA));
    const { port } = await start('. {\n cache 30\n}\n', next);
    const miss = await queryUdp(port, 'www.example.org', { id: 11 });
    expect(miss.flag_aa).toBe(false);
    expect(miss.flag_ra).toBe(true);
    const hit = await queryUdp(port, 'www.example.org', { id: 12, flags: 0 });
    expect(hit.id).toBe(12);
    expect(hit.flag_aa).toBe(true);
    expect(hit.flag_ra).toBe(true);
    expect(hit.flag_rd).toBe(false);
    expect(hit.rcode).toBe('NOERROR');
  });

  it('CACHE-10: AD only when the request had DO or AD, on misses and hits', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1')], Flag.RA | Flag.AD));
    const { port } = await start('. {\n cache 30\n}\n', next);
    expect((await queryUdp(port, 'www.example.org')).flag_ad).toBe(false);
    expect((await queryUdp(port, 'www.example.org')).flag_ad).toBe(false);
    expect((await queryUdp(port, 'www.example.org', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA })).flag_ad).toBe(true);
    expect((await queryUdp(port, 'www.example.org', { udpSize: 1232, dnssecOk: true })).flag_ad).toBe(true);
    expect((await queryUdp(port, 'www.example.org', { udpSize: 1232, dnssecOk: true })).flag_ad).toBe(true);
    expect(next.calls).toHaveLength(2);
  });
});

describe('the hit path', () => {
  function request(name: string): Request {
    const query = decodeQuery(buildQuery(name)) as Query;
    const noop: Next = () => ServerReply.REFUSED;
    return { query, transport: 'udp', remoteAddress: '127.0.0.1', remotePort: 1, family: 1, localAddress: '127.0.0.1', localPort: 53, zone: '.', server: 'dns://:53', reenter: noop, overloaded: false };
  }
  const block = { zones: ['.'], addresses: [], bindAddresses: [], corefile: 'Corefile', authorities: [], plugins: [], settings: {} } as never;
  const log = createLogger('cache', quietLog);

  it('CACHE-8: a hit shares the entry\'s records and encoded body, its TTL counts down on the wire', () => {
    const config = parseCache(cacheDirectives('cache 30'), ['.']);
    const cache = new Cache(config, block, log);
    const next = upstream((req) => answer([A(req.query.qname, '10.0.0.1')]));
    const miss = cache.serve(request('www.example.org'), next) as Reply;
    const hit1 = cache.serve(request('www.example.org'), next) as Reply;
    const hit2 = cache.serve(request('WWW.example.org'), next) as Reply;
    expect(hit1).not.toBe(miss);
    expect(hit2.derived!.base).toBe(hit1.derived!.base);
    expect(hit1.flags & Flag.AA).toBe(Flag.AA);
    now += 1000;
    const hit3 = cache.serve(request('www.example.org'), next) as Reply;
    expect(hit3.answer).toBe(hit1.answer);
    expect([hit1.derived!.ttl, hit3.derived!.ttl]).toEqual([30, 29]);
    const wireTtl = (reply: Reply) => (decodeReply(encodeReply(request('www.example.org').query, reply, 512)).answers![0] as { ttl: number }).ttl;
    expect([wireTtl(hit1), wireTtl(hit3)]).toEqual([30, 29]);
    expect(bodyFor(hit3, 'www.example.org.')).toBe(bodyFor(hit1, 'www.example.org.'));
    expect(next.calls).toHaveLength(1);
    cache.stop();
  });

  it('CACHE-6: an expired entry refilled with the same records is refreshed in place, keeping its encoded body', () => {
    const config = parseCache(cacheDirectives('cache 30'), ['.']);
    const cache = new Cache(config, block, log);
    const same = answer([A('www.example.org.', '10.0.0.1', 30)]);
    const next = upstream(() => same);
    cache.serve(request('www.example.org'), next);
    const before = cache.serve(request('www.example.org'), next) as Reply;
    const body = bodyFor(before, 'www.example.org.');
    now += 31_000;
    cache.serve(request('www.example.org'), next); // expired: asks again, same records
    const after = cache.serve(request('www.example.org'), next) as Reply;
    expect(next.calls).toHaveLength(2);
    expect(after.derived!.base).toBe(before.derived!.base);
    expect(bodyFor(after, 'www.example.org.')).toBe(body);
    expect(after.derived!.ttl).toBe(30);
    // Different records make a new entry.
    now += 31_000;
    const changed = answer([A('www.example.org.', '10.0.0.2', 30)]);
    cache.serve(request('www.example.org'), () => changed);
    const third = cache.serve(request('www.example.org'), next) as Reply;
    expect(third.derived!.base).not.toBe(before.derived!.base);
    expect(third.answer[0]!.data).toBe('10.0.0.2');
    expect(cache.sizes).toEqual({ success: 1, denial: 0 });
    cache.stop();
  });

  it('leaves the upstream reply untouched and returns it as is when nothing needs rewriting', () => {
    const config = parseCache(cacheDirectives('cache 30'), ['.']);
    const cache = new Cache(config, block, log);
    const exact = Object.freeze(answer([Object.freeze(A('a.example.org.', '10.0.0.1', 30))]));
    expect(cache.serve(request('a.example.org'), () => exact)).toBe(exact);
    const long = Object.freeze(answer([Object.freeze(A('b.example.org.', '10.0.0.1', 300))]));
    const out = cache.serve(request('b.example.org'), () => long) as Reply;
    expect(out).not.toBe(long);
    expect(out.answer[0]!.ttl).toBe(30);
    expect(long.answer[0]!.ttl).toBe(300);
    cache.stop();
  });

  it('identical misses waiting on I/O share one upstream query', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const next = upstream(async (request) => {
      await gate;
      return answer([A(request.query.qname, '10.0.0.1')]);
    });
    const { port } = await start('. {\n cache 30\n}\n', next);
    const replies = Promise.all([queryUdp(port, 'www.example.org'), queryUdp(port, 'www.example.org'), queryUdp(port, 'www.example.org')]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    for (const reply of await replies) expect(ttls(reply)).toEqual([30]);
    expect(next.calls).toHaveLength(1);
  });
});

describe('prefetch (CACHE-11)', () => {
  it('refreshes a popular entry in the background once its TTL falls under the threshold', async () => {
    const next = upstream((request, call) => answer([A(request.query.qname, `10.0.0.${call}`, 10)]));
    const { port } = await start('. {\n cache 10 prefetch.example {\n prefetch 2 1m 50%\n }\n}\n', next);
    await queryUdp(port, 'www.prefetch.example');
    now += 1000;
    await queryUdp(port, 'www.prefetch.example'); // hit 1, 9 s left
    now += 5000;
    const served = await queryUdp(port, 'www.prefetch.example'); // hit 2, 4 s left <= ceil(50% of 10): prefetch
    expect(data(served)).toBe('10.0.0.1');
    expect(ttls(served)).toEqual([4]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(next.calls).toHaveLength(2);
    const refreshed = await queryUdp(port, 'www.prefetch.example');
    expect(data(refreshed)).toBe('10.0.0.2');
    expect(ttls(refreshed)).toEqual([10]);
    expect(await metric('coredns_cache_prefetch_total', { zones: 'prefetch.example.' })).toBe(1);
  });

  it('does not prefetch an entry that is not popular enough', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1', 10)]));
    const { port } = await start('. {\n cache 10 {\n prefetch 3 1m 50%\n }\n}\n', next);
    await queryUdp(port, 'www.example.org');
    now += 6000;
    await queryUdp(port, 'www.example.org');
    now += 1000;
    await queryUdp(port, 'www.example.org');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(next.calls).toHaveLength(1);
  });

  it('CACHE-13: a SERVFAIL stored by a refresh gives way to the still valid positive entry', async () => {
    const next = upstream((request, call) => (call === 1 ? answer([A(request.query.qname, '10.0.0.1', 10)]) : { ...emptyReply(Rcode.SERVFAIL, Flag.RA) }));
    const { port } = await start('. {\n cache 10 {\n prefetch 1 1m 90%\n }\n}\n', next);
    await queryUdp(port, 'www.example.org');
    now += 2000;
    await queryUdp(port, 'www.example.org'); // 8 s left <= 9: prefetch, which gets SERVFAIL
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(next.calls).toHaveLength(2);
    const reply = await queryUdp(port, 'www.example.org');
    expect(reply.rcode).toBe('NOERROR');
    expect(data(reply)).toBe('10.0.0.1');
  });
});

describe('serve_stale (CACHE-12)', () => {
  it('immediate: serves an expired entry with TTL 0 and refreshes it in the background', async () => {
    let failing = false;
    const next = upstream((request, call) => (failing ? emptyReply(Rcode.SERVFAIL, 0, new Error('upstream down')) : answer([A(request.query.qname, `10.0.0.${call}`, 30)])));
    const { port } = await start('. {\n cache 30 stale.example {\n serve_stale 1h\n }\n}\n', next);
    await queryUdp(port, 'www.stale.example');
    failing = true;
    now += 40_000;
    const stale = await queryUdp(port, 'www.stale.example');
    expect(stale.rcode).toBe('NOERROR');
    expect(data(stale)).toBe('10.0.0.1');
    expect(ttls(stale)).toEqual([0]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(next.calls).toHaveLength(2); // the background refresh failed
    expect(ttls(await queryUdp(port, 'www.stale.example'))).toEqual([0]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    failing = false;
    await queryUdp(port, 'www.stale.example');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fresh = await queryUdp(port, 'www.stale.example');
    expect(ttls(fresh)).toEqual([30]);
    expect(data(fresh)).toMatch(/^10\.0\.0\.\d$/);
    expect(await metric('coredns_cache_served_stale_total', { zones: 'stale.example.' })).toBeGreaterThanOrEqual(3);
  });

  it('does not serve entries older than the stale window', async () => {
    const next = upstream((request, call) => (call > 1 ? emptyReply(Rcode.SERVFAIL, 0, new Error('down')) : answer([A(request.query.qname, '10.0.0.1', 30)])));
    const { port } = await start('. {\n cache 30 {\n serve_stale 10s\n }\n}\n', next);
    await queryUdp(port, 'www.example.org');
    now += 41_000;
    expect((await queryUdp(port, 'www.example.org')).rcode).toBe('SERVFAIL');
  });

  it('verify: asks first and serves the fresh answer, or the stale one when the refresh fails', async () => {
    let mode: 'ok' | 'fail' = 'ok';
    const next = upstream((request, call) => (mode === 'fail' ? emptyReply(Rcode.SERVFAIL, 0, new Error('down')) : answer([A(request.query.qname, `10.0.0.${call}`, 30)])));
    const { port } = await start('. {\n cache 30 {\n serve_stale 1h verify\n }\n}\n', next);
    await queryUdp(port, 'www.example.org');
    now += 31_000;
    const fresh = await queryUdp(port, 'www.example.org');
    expect(data(fresh)).toBe('10.0.0.2');
    expect(ttls(fresh)).toEqual([30]);
    mode = 'fail';
    now += 31_000;
    const stale = await queryUdp(port, 'www.example.org');
    expect(data(stale)).toBe('10.0.0.2');
    expect(ttls(stale)).toEqual([0]);
    expect(next.calls).toHaveLength(3);
  });
});

describe('capacity (CACHE-3) and metrics (PROM-4)', () => {
  it('keeps at most CAP entries per cache and counts evictions', async () => {
    const next = upstream((request) => answer([A(request.query.qname, '10.0.0.1')]));
    const running = await start('. {\n cache 30 cap.example {\n success 3\n }\n}\n', next);
    for (const name of ['a', 'b', 'c', 'd', 'e']) await queryUdp(running.port, `${name}.cap.example`);
    const labels = { zones: 'cap.example.' };
    expect(await metric('coredns_cache_entries', { ...labels, type: 'success' })).toBe(3);
    expect(await metric('coredns_cache_evictions_total', { ...labels, type: 'success' })).toBe(2);
    // The most recently used entries stayed.
    await queryUdp(running.port, 'e.cap.example');
    expect(next.calls).toHaveLength(5);
    await queryUdp(running.port, 'a.cap.example');
    expect(next.calls).toHaveLength(6);
  });

  it('counts requests, hits by type and misses with server, zones and view labels', async () => {
    const next = upstream((request) => (request.query.qname.startsWith('nx.') ? nxdomain('metrics.example.', 60) : answer([A(request.query.qname, '10.0.0.1')])));
    const running = await start('. {\n cache 30 metrics.example\n}\n', next);
    await queryUdp(running.port, 'www.metrics.example');
    await queryUdp(running.port, 'www.metrics.example');
    await queryUdp(running.port, 'nx.metrics.example');
    await queryUdp(running.port, 'nx.metrics.example');
    await queryUdp(running.port, 'nx.metrics.example');
    await queryUdp(running.port, 'outside.example'); // not in the cache zones: not counted
    const labels = { zones: 'metrics.example.', view: '' };
    expect(await metric('coredns_cache_requests_total', labels)).toBe(5);
    expect(await metric('coredns_cache_misses_total', labels)).toBe(2);
    expect(await metric('coredns_cache_hits_total', { ...labels, type: 'success' })).toBe(1);
    expect(await metric('coredns_cache_hits_total', { ...labels, type: 'denial' })).toBe(2);
    expect(await metric('coredns_cache_entries', { ...labels, type: 'denial' })).toBe(1);
    const text = await registry.getSingleMetricAsString('coredns_cache_hits_total');
    expect(text).toMatch(/coredns_cache_hits_total\{server="dns:\/\/:0",type="denial",zones="metrics\.example\.",view=""\} 2/);
  });
});

describe('freshness against authorities (users.md P5)', () => {
  it('drops an entry as soon as an authority covering the name changes its generation', async () => {
    let version = 0;
    const authority: Authority = { zones: ['cluster.local.'], generation: () => version };
    let address = '10.96.0.1';
    const next = upstream((request) => answer([A(request.query.qname, address, 30)], Flag.AA));
    const running = await start('. {\n cache 30\n}\n', next);
    running.block.context.authorities.push(authority);
    expect(data(await queryUdp(running.port, 'web.default.svc.cluster.local'))).toBe('10.96.0.1');
    expect(data(await queryUdp(running.port, 'web.default.svc.cluster.local'))).toBe('10.96.0.1');
    await queryUdp(running.port, 'www.example.org');
    expect(next.calls).toHaveLength(2);
    address = '10.96.0.2';
    version++;
    expect(data(await queryUdp(running.port, 'web.default.svc.cluster.local'))).toBe('10.96.0.2');
    // Names outside the authority's zones keep their entries.
    await queryUdp(running.port, 'www.example.org');
    expect(next.calls).toHaveLength(3);
  });

  it('a created Service is visible at once: a cached NXDOMAIN does not outlive the change', async () => {
    let version = 7;
    let exists = false;
    const next = upstream((request) => (exists ? answer([A(request.query.qname, '10.96.0.9', 5)], Flag.AA) : nxdomain('cluster.local.', 5)));
    const running = await start('. {\n cache 30\n}\n', next);
    running.block.context.authorities.push({ zones: ['cluster.local.'], generation: () => version });
    expect((await queryUdp(running.port, 'new.default.svc.cluster.local')).rcode).toBe('NXDOMAIN');
    expect((await queryUdp(running.port, 'new.default.svc.cluster.local')).rcode).toBe('NXDOMAIN');
    exists = true;
    version++;
    const reply = await queryUdp(running.port, 'new.default.svc.cluster.local');
    expect(reply.rcode).toBe('NOERROR');
    expect(data(reply)).toBe('10.96.0.9');
  });

  it('a changed entry is not served stale either', async () => {
    let version = 0;
    const next = upstream((request, call) => (call > 1 ? emptyReply(Rcode.SERVFAIL, 0, new Error('down')) : answer([A(request.query.qname, '10.0.0.1', 30)])));
    const running = await start('. {\n cache 30 {\n serve_stale\n }\n}\n', next);
    running.block.context.authorities.push({ zones: ['.'], generation: () => version });
    await queryUdp(running.port, 'www.example.org');
    version++;
    now += 40_000;
    expect((await queryUdp(running.port, 'www.example.org')).rcode).toBe('SERVFAIL');
  });
});

describe('chain position (CACHE-14) with real plugins', () => {
  it('caches what hosts answers (cache runs before hosts whatever the Corefile order)', async () => {
    const running = await startServer('. {\n hosts {\n 10.1.2.3 app.example\n fallthrough\n }\n cache 30\n whoami\n}\n');
    stops.push(running.stop);
    const first = await queryUdp(running.port, 'app.example');
    expect(first.answers).toEqual([expect.objectContaining({ name: 'app.example', type: 'A', ttl: 30, data: '10.1.2.3' })]);
    now += 3000;
    expect(ttls(await queryUdp(running.port, 'app.example'))).toEqual([27]);
    // whoami's TTL 0 becomes 5 (CACHE-9) and is cached too.
    expect(ttls(await queryUdp(running.port, 'other.example'))).toEqual([5, 5]);
  });
});

describe('setup (CACHE-1, CACHE-2)', () => {
  const parse = (corefile: string) => () => planFromCorefile(corefile, 'Corefile', { dnsPort: 0 });

  it('accepts the stock forms (STOCK-1, STOCK-2) and every option', () => {
    expect(parse('.:53 {\n cache 30\n}\n')).not.toThrow();
    expect(parse('.:53 {\n cache 30 {\n disable success cluster.local\n disable denial cluster.local\n }\n}\n')).not.toThrow();
    expect(parse('. {\n cache 30 example.org 10.0.0.0/8 {\n success 5000 600 10\n denial 2500 60\n prefetch 10 30s 20%\n serve_stale 2h verify\n servfail 10s\n keepttl\n }\n}\n')).not.toThrow();
  });

  it('reads TTL and zones as CoreDNS does', () => {
    const config = (text: string) => parseCache(cacheDirectives(text), ['.']);
    expect(config('cache')).toMatchObject({ zones: ['.'], success: { capacity: 10000, maxTtl: 3600, minTtl: 5 }, denial: { capacity: 10000, maxTtl: 1800, minTtl: 5 }, servfailTtl: 5, staleMs: 0 });
    expect(config('cache 30')).toMatchObject({ success: { maxTtl: 30 }, denial: { maxTtl: 30 } });
    expect(config('cache 30 Example.ORG 10.0.0.0/8')).toMatchObject({ zones: ['example.org.', '10.in-addr.arpa.'], zonesLabel: 'example.org.,10.in-addr.arpa.' });
    expect(config('cache {\n serve_stale\n prefetch 5\n disable success\n }')).toMatchObject({ staleMs: 3_600_000, verifyStale: false, prefetchAmount: 5, prefetchWindowMs: 60_000, prefetchPercentage: 10, disableSuccess: ['.'] });
  });

  it('rejects bad values with file and line', () => {
    expectSetupError('. {\n cache 0\n}\n', 2, /cache TTL can not be zero or negative: 0/);
    expectSetupError('. {\n cache -5\n}\n', 2, /zero or negative/);
    expectSetupError('. {\n cache 30\n cache 20\n}\n', 3, /can only be used once per Server Block/);
    expectSetupError('. {\n cache {\n   nosuch 1\n }\n}\n', 3, /unknown property 'nosuch'/);
    expectSetupError('. {\n cache {\n success\n }\n}\n', 3, /Wrong argument count/);
    expectSetupError('. {\n cache {\n success many\n }\n}\n', 3, /success capacity must be an integer, found 'many'/);
    expectSetupError('. {\n cache {\n denial 10 0\n }\n}\n', 3, /zero or negative/);
    expectSetupError('. {\n cache {\n prefetch 10 1m 5%\n }\n}\n', 3, /range \[10, 90\]/);
    expectSetupError('. {\n cache {\n prefetch 10 1m 50\n }\n}\n', 3, /should be '%'/);
    expectSetupError('. {\n cache {\n prefetch -1\n }\n}\n', 3, /prefetch amount/);
    expectSetupError('. {\n cache {\n serve_stale 1h sometimes\n }\n}\n', 3, /refresh mode/);
    expectSetupError('. {\n cache {\n serve_stale soon\n }\n}\n', 3, /duration/);
    expectSetupError('. {\n cache {\n servfail 6m\n }\n}\n', 3, /over 5 minutes/);
    expectSetupError('. {\n cache {\n disable everything\n }\n}\n', 3, /must be "success" or "denial"/);
    expectSetupError('. {\n cache {\n keepttl now\n }\n}\n', 3, /keepttl takes at most 0 arguments/);
  });
});

/** The `cache` directives of `text` placed in a root block, as the Corefile parser reads them. */
function cacheDirectives(text: string) {
  const [source] = parseCorefile(`. {\n ${text.split('\n').join('\n ')}\n}\n`, 'Corefile', { isDirective: () => true, env: {} });
  return source!.directives.filter((directive) => directive.name.text === 'cache');
}
