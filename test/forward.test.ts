// forward over real sockets: the server under test forwards to DNS servers
// on loopback (test/support/upstreams.ts). FWD-1..8, FWD-10..12, WIRE-6/15.
// Health checking, deadlines and setup errors are in forward-health and
// forward-setup tests.

import dnsPacket from 'dns-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  forwardMaxConcurrentRejects,
  proxyConnCacheHits,
  proxyConnCacheMisses,
  proxyRequestDuration,
  registry,
} from '../src/metrics.ts';
import { forwardLimits, forwardTiming } from '../plugins/forward/index.ts';
import { buildQuery, decodeReply, openTcp, queryTcp, queryUdp, sendUdp } from './support/dns.ts';
import { useFixture } from './support/fixture.ts';
import { respond, TestUpstream, type Mode } from './support/upstreams.ts';

const A = (name: string, data: string) => ({ type: 'A' as const, name, ttl: 60, data });
const table = {
  'example.org A': [A('example.org', '192.0.2.1')],
  'www.example.org A': [A('www.example.org', '192.0.2.2')],
  'a.sub.example.org A': [A('a.sub.example.org', '192.0.2.3')],
  'a.internal.example A': [A('a.internal.example', '192.0.2.4')],
  'internal.example A': [A('internal.example', '192.0.2.5')],
};

const { upstream, serve, captureLog } = useFixture(table);
const savedTiming = { ...forwardTiming };
const savedLimits = { ...forwardLimits };

beforeEach(() => {
  // Short per-try timeouts keep failure cases fast; the real values are tested in forward-health.
  Object.assign(forwardTiming, { readTimeoutMs: 300, overallTimeoutMs: 1_000, healthTimeoutMs: 200 });
});

afterEach(() => {
  Object.assign(forwardTiming, savedTiming);
  Object.assign(forwardLimits, savedLimits);
});


type MetricValues = { values: { value: number; labels: Partial<Record<string, string | number>> }[] };

/** Sums a counter's series that carry `labels` (prom-client's get() is async, clusterdns's fast metrics' is not). */
async function counterValue(counter: { get(): MetricValues | Promise<MetricValues> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((entry) => Object.entries(labels).every(([key, value]) => entry.labels[key] === value))
    .reduce((sum, entry) => sum + entry.value, 0);
}

/** Client-sent queries, without health probes (`. NS`). */
function clientQueries(up: TestUpstream) {
  return up.queries.filter((query) => !(query.type === 'NS' && (query.name === '.' || query.name === '')));
}

describe('forwarding over UDP and TCP (FWD-6, FWD-7)', () => {
  it('forwards a UDP query over UDP and returns the upstream reply as it is', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const reply = await queryUdp(port, 'Example.ORG', { id: 4242 });
    expect(reply.id).toBe(4242);
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flag_ra).toBe(true);
    expect(reply.flag_aa).toBe(false);
    expect(reply.questions![0]!.name).toBe('Example.ORG');
    expect(reply.answers).toMatchObject([{ type: 'A', data: '192.0.2.1', ttl: 60 }]);
    expect(up.queries).toHaveLength(1);
    expect(up.queries[0]!.transport).toBe('udp');
    // The question goes upstream as the client wrote it (0x20 case kept).
    expect(up.queries[0]!.name).toBe('Example.ORG');
  });

  it('forwards a TCP query over TCP', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const reply = await queryTcp(port, 'www.example.org');
    expect(reply.answers).toMatchObject([{ data: '192.0.2.2' }]);
    expect(up.queries.map((query) => query.transport)).toEqual(['tcp']);
  });

  it('sends the query unchanged but for a fresh random ID: EDNS size, DO, RD and CD pass through', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const sent: Buffer[] = [];
    for (let i = 0; i < 8; i++) {
      const query = buildQuery('example.org', { id: 777, udpSize: 1400, dnssecOk: true, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED });
      sent.push(query);
      const raw = await sendUdp(port, query);
      expect(decodeReply(raw!).id).toBe(777);
    }
    expect(up.queries).toHaveLength(8);
    for (const [index, received] of up.queries.entries()) {
      expect(received.raw.subarray(2)).toEqual(sent[index]!.subarray(2));
      expect(received.packet.flag_cd).toBe(true);
      expect(received.packet.flag_rd).toBe(true);
      expect(received.packet.additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: 1400, flag_do: true }]);
    }
    const ids = new Set(up.queries.map((query) => query.id));
    expect(ids.has(777)).toBe(false);
    expect(ids.size).toBeGreaterThanOrEqual(7); // random IDs, one collision at most
  });

  it('passes the upstream RCODE and its AA and AD flags through', async () => {
    const up = await upstream({
      mode: {
        kind: 'custom',
        respond: (query) => {
          const reply = respond(query, { rcode: 5 });
          reply.writeUInt16BE(reply.readUInt16BE(2) | 0x0400 | 0x0020, 2); // AA, AD
          return [reply];
        },
      },
    });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const reply = await queryUdp(port, 'example.org');
    expect(reply.rcode).toBe('REFUSED');
    expect(reply.flag_aa).toBe(true);
    expect(reply.flag_ad).toBe(true);
    expect(reply.flag_ra).toBe(true);
  });

  it('WIRE-10: the reply carries an OPT only when the client sent one', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    expect((await queryUdp(port, 'example.org')).additionals).toEqual([]);
    expect((await queryUdp(port, 'example.org', { udpSize: 1232 })).additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: 1232 }]);
  });

  it('FWD-11, WIRE-6: CH-class queries get through to the upstream', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const query = dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] });
    const reply = decodeReply((await sendUdp(port, query))!);
    expect(reply.rcode).toBe('NXDOMAIN');
    expect(up.queries[0]!.packet.questions![0]!.class).toBe('CH');
  });

  it('FWD-12: metrics use host:port as `to` and forward as proxy_name', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    await queryUdp(port, 'example.org');
    const { values } = await proxyRequestDuration.get();
    const count = values.find((entry) => entry.metricName === 'coredns_proxy_request_duration_seconds_count' && entry.labels.to === up.hostPort);
    expect(count).toMatchObject({ value: 1, labels: { proxy_name: 'forward', to: up.hostPort, rcode: 'NOERROR' } });
  });

  it('PROM-6, PROM-13: the pre-1.11 coredns_forward_* names the mixin alerts use are exported too', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    await queryUdp(port, 'example.org');
    await queryUdp(port, 'missing.example.org');
    const text = await registry.metrics();
    expect(text).toContain(`coredns_forward_requests_total{to="${up.hostPort}"} 2`);
    expect(text).toContain(`coredns_forward_responses_total{rcode="NOERROR",to="${up.hostPort}"} 1`);
    expect(text).toContain(`coredns_forward_responses_total{rcode="NXDOMAIN",to="${up.hostPort}"} 1`);
    expect(text).toContain(`coredns_forward_request_duration_seconds_count{to="${up.hostPort}",rcode="NOERROR"} 1`);
    expect(text).toMatch(new RegExp(`coredns_forward_conn_cache_(hits|misses)_total\\{to="${up.hostPort}",proto="udp"\\} \\d+`));
  });
});

describe('which names are forwarded (FWD-1, FWD-3)', () => {
  it('passes on names outside FROM or under an except name, but never FROM itself', async () => {
    const up = await upstream();
    const log = captureLog();
    const port = await serve(`. {\n    errors\n    forward internal.example ${up.hostPort} {\n        except internal.example a.internal.example\n    }\n}\n`);
    expect((await queryUdp(port, 'internal.example')).answers).toMatchObject([{ data: '192.0.2.5' }]);
    const excluded = await queryUdp(port, 'a.internal.example');
    expect(excluded.rcode).toBe('SERVFAIL');
    expect((await queryUdp(port, 'example.org')).rcode).toBe('SERVFAIL');
    expect(up.queries.map((query) => query.name)).toEqual(['internal.example']);
    expect(log.filter((line) => line.includes('no next plugin found'))).toHaveLength(2);
  });

  it('matches FROM case-insensitively and with the dns:// prefix', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward dns://Example.ORG ${up.hostPort}\n}\n`);
    expect((await queryUdp(port, 'WWW.example.org')).answers).toMatchObject([{ data: '192.0.2.2' }]);
  });

  it('a CIDR FROM becomes its first reverse zone only, with a warning', async () => {
    const up = await upstream();
    const log = captureLog();
    const port = await serve(`. {\n    forward 192.168.0.0/23 ${up.hostPort}\n}\n`);
    expect(log.some((line) => line.startsWith('[WARNING] plugin/forward: Unsupported CIDR notation: \'192.168.0.0/23\' expands to multiple zones. Using only \'0.168.192.in-addr.arpa.\''))).toBe(true);
    expect((await queryUdp(port, '5.0.168.192.in-addr.arpa', { type: 'PTR' })).rcode).toBe('NXDOMAIN');
    expect((await queryUdp(port, '5.1.168.192.in-addr.arpa', { type: 'PTR' })).rcode).toBe('SERVFAIL');
    expect(up.queries.map((query) => query.name)).toEqual(['5.0.168.192.in-addr.arpa']);
  });

  it('several forward lines are tried in Corefile order, subdomain first', async () => {
    const inner = await upstream();
    const outer = await upstream();
    const port = await serve(`. {\n    forward sub.example.org ${inner.hostPort}\n    forward . ${outer.hostPort}\n}\n`);
    await queryUdp(port, 'a.sub.example.org');
    await queryUdp(port, 'www.example.org');
    expect(inner.queries.map((query) => query.name)).toEqual(['a.sub.example.org']);
    expect(outer.queries.map((query) => query.name)).toEqual(['www.example.org']);
  });

  it('a parent written first takes everything (Corefile order, not specificity)', async () => {
    const inner = await upstream();
    const outer = await upstream();
    const port = await serve(`. {\n    forward . ${outer.hostPort}\n    forward sub.example.org ${inner.hostPort}\n}\n`);
    await queryUdp(port, 'a.sub.example.org');
    expect(inner.queries).toHaveLength(0);
    expect(outer.queries).toHaveLength(1);
  });

  it('next RCODE hands the query to the following forward line; on the last line it does nothing', async () => {
    const first = await upstream({ records: {} });
    const second = await upstream();
    const port = await serve(`. {\n    forward . ${first.hostPort} {\n        next NXDOMAIN servfail\n    }\n    forward . ${second.hostPort} {\n        next NXDOMAIN\n    }\n}\n`);
    const handed = await queryUdp(port, 'example.org');
    expect(handed.answers).toMatchObject([{ data: '192.0.2.1' }]);
    const last = await queryUdp(port, 'nothing.example.org');
    expect(last.rcode).toBe('NXDOMAIN');
    expect(first.queries).toHaveLength(2);
    expect(second.queries).toHaveLength(2);
  });
});

describe('upstream order (FWD-5.1 policy)', () => {
  async function firstTried(policy: string, count: number, queries: number): Promise<number[]> {
    const ups = await Promise.all(Array.from({ length: count }, () => upstream()));
    const port = await serve(`. {\n    forward . ${ups.map((up) => up.hostPort).join(' ')} {\n        policy ${policy}\n    }\n}\n`);
    const order: number[] = [];
    for (let i = 0; i < queries; i++) {
      const before = ups.map((up) => up.queries.length);
      await queryUdp(port, 'example.org');
      order.push(ups.findIndex((up, index) => up.queries.length > before[index]!));
    }
    return order;
  }

  it('sequential always starts with the first upstream', async () => {
    expect(await firstTried('sequential', 3, 5)).toEqual([0, 0, 0, 0, 0]);
  });

  it('round_robin rotates the first upstream, as CoreDNS counts (starting with the second)', async () => {
    expect(await firstTried('round_robin', 3, 6)).toEqual([1, 2, 0, 1, 2, 0]);
  });

  it('random spreads queries over the upstreams (the default)', async () => {
    const order = await firstTried('random', 2, 40);
    expect(order.filter((index) => index === 0).length).toBeGreaterThan(0);
    expect(order.filter((index) => index === 1).length).toBeGreaterThan(0);
  });

  it('an upstream that fails is skipped for the next in the list', async () => {
    const silent = await upstream({ mode: { kind: 'silent' } });
    const healthy = await upstream();
    const port = await serve(`. {\n    forward . ${silent.hostPort} ${healthy.hostPort} {\n        policy sequential\n    }\n}\n`);
    const started = Date.now();
    const reply = await queryUdp(port, 'example.org', { timeoutMs: 2000 });
    expect(reply.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(forwardTiming.readTimeoutMs - 20);
    expect(clientQueries(silent)).toHaveLength(1);
  });
});

describe('max_concurrent (FWD-4, users.md P3)', () => {
  it('refuses queries over the limit at once, counts them, and logs the reason', async () => {
    const slow = await upstream({ mode: { kind: 'slow', delayMs: 200 } });
    const log = captureLog();
    const port = await serve(`. {\n    errors\n    forward . ${slow.hostPort} {\n        max_concurrent 2\n    }\n}\n`);
    const rejectsBefore = await counterValue(forwardMaxConcurrentRejects);
    const started = Date.now();
    // Five different names: identical ones would share one upstream query (coalescing, below).
    const timed = async (name: string) => {
      const reply = await queryUdp(port, name, { timeoutMs: 2000 });
      return { rcode: reply.rcode, ms: Date.now() - started };
    };
    const names = ['example.org', 'www.example.org', 'a.sub.example.org', 'a.internal.example', 'internal.example'];
    const replies = await Promise.all(names.map(timed));
    const refused = replies.filter((reply) => reply.rcode === 'REFUSED');
    const answered = replies.filter((reply) => reply.rcode === 'NOERROR');
    expect(answered).toHaveLength(2);
    expect(refused).toHaveLength(3);
    for (const reply of refused) expect(reply.ms).toBeLessThan(150); // not queued behind the slow ones
    expect(slow.queries).toHaveLength(2);
    expect(await counterValue(forwardMaxConcurrentRejects) - rejectsBefore).toBe(3);
    expect(log.filter((line) => /^\[ERROR\] plugin\/errors: 5 \S+ A: concurrent queries exceeded maximum 2$/.test(line))).toHaveLength(3);
    // Once the slow ones finish, there is room again.
    expect((await queryUdp(port, 'example.org', { timeoutMs: 2000 })).rcode).toBe('NOERROR');
  });
});

describe('truncation (FWD-8, WIRE-15)', () => {
  it('passes a TC reply to a UDP client, whose TCP retry goes upstream over TCP', async () => {
    const up = await upstream({ mode: { kind: 'truncating' } });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const udp = await queryUdp(port, 'example.org');
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    const tcp = await queryTcp(port, 'example.org');
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(up.queries.map((query) => query.transport)).toEqual(['udp', 'tcp']);
  });

  it('prefer_udp: forward retries over TCP itself on TC, and uses UDP even for TCP clients', async () => {
    const up = await upstream({ mode: { kind: 'truncating' } });
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        prefer_udp\n    }\n}\n`);
    const udp = await queryUdp(port, 'example.org');
    expect(udp.flag_tc).toBe(false);
    expect(udp.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(up.queries.map((query) => query.transport)).toEqual(['udp', 'tcp']);
    const tcp = await queryTcp(port, 'www.example.org');
    expect(tcp.answers).toMatchObject([{ data: '192.0.2.2' }]);
    expect(up.queries.map((query) => query.transport)).toEqual(['udp', 'tcp', 'udp', 'tcp']);
  });

  it('force_tcp: UDP clients are forwarded over TCP (and it wins over prefer_udp)', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        prefer_udp\n        force_tcp\n    }\n}\n`);
    expect((await queryUdp(port, 'example.org')).answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(up.queries.map((query) => query.transport)).toEqual(['tcp']);
  });

  it('a UDP reply larger than the read buffer becomes an empty reply with TC', async () => {
    const big = Array.from({ length: 40 }, (_, i) => A('example.org', `192.0.2.${i + 1}`));
    const up = await upstream({ records: { 'example.org A': big } });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    // No EDNS: the buffer is 512 bytes; the upstream (which ignores that) sends ~650.
    const reply = await queryUdp(port, 'example.org');
    expect(reply.flag_tc).toBe(true);
    expect(reply.answers).toEqual([]);
    // With EDNS 4096 the same reply fits the buffer and arrives whole.
    const large = await queryUdp(port, 'example.org', { udpSize: 4096 });
    expect(large.flag_tc).toBe(false);
    expect(large.answers).toHaveLength(40);
  });
});

describe('garbage and mismatched replies (FWD-7)', () => {
  const garbageFirst: Mode = { kind: 'garbage', send: ['wrong-id', 'wrong-question', 'wrong-type', 'not-response'], answer: true };

  it('ignores other IDs, other questions and non-responses on UDP, and waits for the real reply', async () => {
    const up = await upstream({ mode: garbageFirst });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    for (let i = 0; i < 3; i++) {
      const reply = await queryUdp(port, 'example.org');
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.answers).toMatchObject([{ type: 'A', data: '192.0.2.1' }]);
    }
  });

  it('an upstream that only sends such replies leads to SERVFAIL after the deadline, not to a forged answer', async () => {
    const up = await upstream({ mode: { ...garbageFirst, answer: false } as Mode });
    const log = captureLog();
    const port = await serve(`. {\n    errors\n    forward . ${up.hostPort} {\n        max_fails 0\n    }\n}\n`);
    const reply = await queryUdp(port, 'example.org', { timeoutMs: 3000 });
    expect(reply.rcode).toBe('SERVFAIL');
    expect(reply.answers).toEqual([]);
    expect(log.some((line) => /^\[ERROR\] plugin\/errors: 2 example\.org\. A: read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: i\/o timeout$/.test(line))).toBe(true);
  });

  for (const garbage of ['junk', 'cut'] as const) {
    it(`a reply under our ID that cannot be parsed (${garbage}) fails the try at once: SERVFAIL well before the read timeout, over UDP and TCP`, async () => {
      // Real timings here: the point is not waiting out the 2 s read timeout.
      Object.assign(forwardTiming, savedTiming);
      const up = await upstream({ mode: { kind: 'garbage', send: [garbage], answer: false } });
      const log = captureLog();
      const port = await serve(`. {\n    errors\n    forward . ${up.hostPort}\n}\n`);
      for (const ask of [queryUdp, queryTcp]) {
        const started = performance.now();
        const reply = await ask(port, 'example.org', { timeoutMs: 3000 });
        expect(reply.rcode).toBe('SERVFAIL');
        expect(reply.answers).toEqual([]);
        expect(performance.now() - started).toBeLessThan(500);
      }
      // One try each: an upstream that garbled the question is not asked it again by the same query.
      expect(clientQueries(up)).toHaveLength(2);
      expect(log.filter((line) => /^\[ERROR\] plugin\/errors: 2 example\.org\. A: dns: .+$/.test(line))).toHaveLength(2);
    });
  }

  it('a garbled reply from one upstream moves on to the next, which answers', async () => {
    const bad = await upstream({ mode: { kind: 'garbage', send: ['cut'], answer: false } });
    const good = await upstream();
    const port = await serve(`. {\n    forward . ${bad.hostPort} ${good.hostPort} {\n        policy sequential\n    }\n}\n`);
    const started = performance.now();
    const reply = await queryUdp(port, 'example.org');
    expect(reply.answers).toMatchObject([{ type: 'A', data: '192.0.2.1' }]);
    expect(performance.now() - started).toBeLessThan(forwardTiming.readTimeoutMs);
    expect(clientQueries(bad)).toHaveLength(1);
  });

  it('over TCP, a reply with our ID but another question gives the client FORMERR', async () => {
    const up = await upstream({
      mode: { kind: 'custom', respond: (query) => [respond(query, { question: { name: 'evil.example', type: 'A' }, answers: [A('evil.example', '6.6.6.6')] })] },
    });
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        force_tcp\n    }\n}\n`);
    const reply = await queryUdp(port, 'example.org');
    expect(reply.rcode).toBe('FORMERR');
    expect(reply.answers).toEqual([]);
  });
});

describe('connection reuse (FWD-10)', () => {
  it('reuses one UDP socket for sequential queries and counts cache hits and misses', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const labels = { to: up.hostPort, proto: 'udp' };
    for (let i = 0; i < 5; i++) await queryUdp(port, 'example.org');
    expect(new Set(up.queries.map((query) => query.remotePort)).size).toBe(1);
    expect(await counterValue(proxyConnCacheMisses, labels)).toBe(1);
    expect(await counterValue(proxyConnCacheHits, labels)).toBe(4);
  });

  it('keeps a TCP connection open between queries and closes it after `expire` idle', async () => {
    const up = await upstream();
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        expire 300ms\n    }\n}\n`);
    const labels = { to: up.hostPort, proto: 'tcp' };
    await queryTcp(port, 'example.org');
    await queryTcp(port, 'www.example.org');
    expect(up.tcpConnections).toBe(1);
    expect(await counterValue(proxyConnCacheHits, labels)).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 800));
    await queryTcp(port, 'example.org');
    expect(up.tcpConnections).toBe(2);
    expect(await counterValue(proxyConnCacheMisses, labels)).toBe(2);
  });

  it('pipelined TCP queries from one client each get their own upstream exchange', async () => {
    const up = await upstream({ mode: { kind: 'slow', delayMs: 50 } });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const connection = await openTcp(port);
    try {
      connection.send(buildQuery('example.org', { id: 1 }));
      connection.send(buildQuery('www.example.org', { id: 2 }));
      const replies = (await connection.waitFor(2)).map(decodeReply);
      expect(replies.map((reply) => reply.id).sort()).toEqual([1, 2]);
      expect(replies.find((reply) => reply.id === 2)!.answers).toMatchObject([{ data: '192.0.2.2' }]);
    } finally {
      connection.close();
    }
  });

  it('bounds the TCP connections per upstream under load, pipelining the rest on open ones', async () => {
    expect(forwardLimits.streamsPerUpstream).toBe(128);
    forwardLimits.streamsPerUpstream = 4;
    const up = await upstream({ mode: { kind: 'slow', delayMs: 100 } });
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        force_tcp\n    }\n}\n`);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => queryUdp(port, `n${i}.example.org`, { timeoutMs: 3000 })));
    expect(replies.every((reply) => reply.rcode === 'NXDOMAIN')).toBe(true);
    expect(up.queries).toHaveLength(20);
    expect(up.tcpConnections).toBe(4);
  });

  it('bounds the UDP sockets per upstream the same way', async () => {
    Object.assign(forwardLimits, { udpQueriesPerSocket: 2, udpMaxSockets: 3 });
    const up = await upstream({ mode: { kind: 'slow', delayMs: 100 } });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => queryUdp(port, `n${i}.example.org`, { timeoutMs: 3000 })));
    expect(replies.every((reply) => reply.rcode === 'NXDOMAIN')).toBe(true);
    expect(new Set(up.queries.map((query) => query.remotePort)).size).toBe(3);
  });

  it('a cached TCP connection the upstream closed is replaced transparently', async () => {
    const up = await upstream();
    up.closeTcpAfterReply = true;
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    for (let i = 0; i < 3; i++) {
      expect((await queryTcp(port, 'example.org')).answers).toMatchObject([{ data: '192.0.2.1' }]);
    }
    expect(up.tcpConnections).toBe(3);
  });
});
