// forward under load: identical questions in flight share one upstream
// exchange (coalescing, kubernetes/dns#387), and the default max_concurrent
// refuses questions past it at once (users.md P3, issue 14). Real upstreams
// on loopback (test/support/upstreams.ts) count what actually went out.

import dnsPacket from 'dns-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { forwardCoalesced, forwardMaxConcurrentRejects } from '../src/metrics.ts';
import { forwardTiming } from '../plugins/forward/index.ts';
import { DEFAULT_MAX_CONCURRENT } from '../plugins/forward/setup.ts';
import { buildQuery, decodeReply, queryTcp, queryUdp, sendUdp, type DecodedReply } from './support/dns.ts';
import { useFixture } from './support/fixture.ts';
import type { TestUpstream } from './support/upstreams.ts';

const A = (name: string, data: string) => ({ type: 'A' as const, name, ttl: 60, data });
const { upstream, serve } = useFixture({ 'popular.example.org A': [A('popular.example.org', '192.0.2.7')] });
const savedTiming = { ...forwardTiming };

beforeEach(() => {
  Object.assign(forwardTiming, { readTimeoutMs: 300, overallTimeoutMs: 1_000, healthTimeoutMs: 200 });
});

afterEach(() => {
  Object.assign(forwardTiming, savedTiming);
});

async function counter(metric: typeof forwardCoalesced): Promise<number> {
  return (await metric.get()).values.reduce((sum, entry) => sum + entry.value, 0);
}

/** Client queries the upstream received (health probes, `. NS`, left out). */
function clientQueries(up: TestUpstream) {
  return up.queries.filter((query) => !(query.type === 'NS' && (query.name === '.' || query.name === '')));
}

/** The name with each letter's case picked at random, as DNS 0x20 clients send it. */
function mixedCase(name: string): string {
  return [...name].map((char) => (Math.random() < 0.5 ? char.toUpperCase() : char)).join('');
}

describe('coalescing identical questions in flight', () => {
  // The real 2 s read timeout: a slow upstream here must not look like a dead one.
  beforeEach(() => {
    Object.assign(forwardTiming, savedTiming);
  });

  // With cache in front (kubeadm's layout), the cache's own miss coalescing
  // answers the 199 followers before they reach forward; alone, forward does.
  it.each([
    { layout: 'forward alone', plugins: '', forwardJoins: 199 },
    { layout: "kubeadm's cache 30 in front", plugins: '    cache 30\n', forwardJoins: 0 },
  ])('two hundred clients asking the same uncached name cause exactly one upstream query; each gets its own ID and question case ($layout)', async ({ plugins, forwardJoins }) => {
    const up = await upstream({ mode: { kind: 'slow', delayMs: 400 } });
    const port = await serve(`. {\n${plugins}    forward . ${up.hostPort}\n}\n`);
    const coalescedBefore = await counter(forwardCoalesced);
    const asked = Array.from({ length: 200 }, (_, i) => ({ id: (i * 257 + 11) & 0xffff, name: mixedCase('popular.example.org') }));
    const replies = await Promise.all(asked.map(async ({ id, name }) => decodeReply((await sendUdp(port, buildQuery(name, { id })))!)));
    expect(clientQueries(up)).toHaveLength(1);
    for (const [index, reply] of replies.entries()) {
      expect(reply.id).toBe(asked[index]!.id);
      expect(reply.questions![0]!.name).toBe(asked[index]!.name);
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.answers).toMatchObject([{ type: 'A', data: '192.0.2.7' }]);
    }
    expect(await counter(forwardCoalesced) - coalescedBefore).toBe(forwardJoins);
  });

  it('questions that differ in type, DO, CD, EDNS buffer size or transport are not coalesced', async () => {
    const up = await upstream({ mode: { kind: 'slow', delayMs: 300 } });
    const port = await serve(`. {\n    forward . ${up.hostPort}\n}\n`);
    const coalescedBefore = await counter(forwardCoalesced);
    const name = 'popular.example.org';
    await Promise.all([
      sendUdp(port, buildQuery(name)),
      sendUdp(port, buildQuery(name.toUpperCase())), // the only one that joins: same question, other case
      sendUdp(port, buildQuery(name, { type: 'AAAA' })),
      sendUdp(port, buildQuery(name, { udpSize: 1232 })),
      sendUdp(port, buildQuery(name, { udpSize: 1232, dnssecOk: true })),
      sendUdp(port, buildQuery(name, { udpSize: 4096 })),
      sendUdp(port, buildQuery(name, { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED })),
      queryTcp(port, name),
    ]);
    expect(clientQueries(up)).toHaveLength(7);
    expect(await counter(forwardCoalesced) - coalescedBefore).toBe(1);
  });

  it('a failed exchange fails every query that waited on it, and the next query asks again', async () => {
    const up = await upstream({ mode: { kind: 'silent' } });
    Object.assign(forwardTiming, { readTimeoutMs: 300, overallTimeoutMs: 1_000, healthTimeoutMs: 200 });
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        max_fails 0\n    }\n}\n`);
    const replies = await Promise.all(Array.from({ length: 20 }, () => queryUdp(port, 'popular.example.org', { timeoutMs: 3000 })));
    expect(replies.map((reply) => reply.rcode)).toEqual(Array(20).fill('SERVFAIL'));
    const tries = clientQueries(up).length;
    expect(tries).toBeGreaterThanOrEqual(1);
    expect(tries).toBeLessThanOrEqual(4); // the tries of one walk within the 1 s deadline, not twenty walks'
    up.mode = { kind: 'healthy' };
    expect((await queryUdp(port, 'popular.example.org')).answers).toMatchObject([{ data: '192.0.2.7' }]);
  });
});

describe('default max_concurrent (users.md P3)', () => {
  it(`without max_concurrent, the ${DEFAULT_MAX_CONCURRENT + 1}st distinct question in flight is REFUSED at once and counted`, async () => {
    const up = await upstream({ mode: { kind: 'silent' } });
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        max_fails 0\n    }\n}\n`);
    const rejectsBefore = await counter(forwardMaxConcurrentRejects);
    // Sent in batches: the test fills max_concurrent, not the server's socket queue (the kernel's default).
    const waiting: Promise<DecodedReply>[] = [];
    for (let i = 0; i < DEFAULT_MAX_CONCURRENT; i++) {
      waiting.push(queryUdp(port, `q${i}.example.org`, { timeoutMs: 3000 }));
      if (i % 50 !== 49) continue;
      for (const deadline = Date.now() + 2000; new Set(clientQueries(up).map((query) => query.name)).size <= i && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    // Every one of them has reached the upstream: the limit is full.
    for (const deadline = Date.now() + 2000; new Set(clientQueries(up).map((query) => query.name)).size < DEFAULT_MAX_CONCURRENT && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const started = performance.now();
    const over = await queryUdp(port, 'one-too-many.example.org');
    expect(over.rcode).toBe('REFUSED');
    expect(performance.now() - started).toBeLessThan(100);
    // Joining a question already in flight needs no slot.
    expect((await Promise.race([queryUdp(port, 'q0.example.org', { timeoutMs: 3000 }), new Promise((resolve) => setTimeout(() => resolve(null), 150))]))).toBeNull();
    expect(await counter(forwardMaxConcurrentRejects) - rejectsBefore).toBe(1);
    expect((await Promise.all(waiting)).every((reply) => reply.rcode === 'SERVFAIL')).toBe(true);
  });
});
