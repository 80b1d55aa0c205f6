// forward's failure handling over real sockets: the 5 s deadline (FWD-5),
// health checking (FWD-9) and what happens when every upstream is down.

import { afterEach, describe, expect, it } from 'vitest';
import { forwardHealthcheckBroken, proxyHealthcheckFailures } from '../src/metrics.ts';
import { forwardTiming } from '../plugins/forward/index.ts';
import { queryUdp } from './support/dns.ts';
import { useFixture } from './support/fixture.ts';
import { respond, TestUpstream, type ReceivedQuery } from './support/upstreams.ts';

const table = { 'example.org A': [{ type: 'A' as const, name: 'example.org', ttl: 60, data: '192.0.2.1' }] };

const { upstream, serve, captureLog } = useFixture(table);
const savedTiming = { ...forwardTiming };

afterEach(() => {
  Object.assign(forwardTiming, savedTiming);
});

function fast(): void {
  Object.assign(forwardTiming, { readTimeoutMs: 200, overallTimeoutMs: 1_000, healthTimeoutMs: 100 });
}


const isProbe = (query: ReceivedQuery): boolean => query.type === 'NS' && (query.name === '.' || query.name === '');
const clientQueries = (up: TestUpstream): ReceivedQuery[] => up.queries.filter((query) => !isProbe(query));
const probes = (up: TestUpstream): ReceivedQuery[] => up.queries.filter(isProbe);

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function counterValue(counter: { get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }> }, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  return values
    .filter((entry) => Object.entries(labels).every(([key, value]) => entry.labels[key] === value))
    .reduce((sum, entry) => sum + entry.value, 0);
}

describe('deadline (FWD-5.4, ERR-2)', () => {
  it('answers SERVFAIL within the documented 5 s when the upstream never answers, logging the i/o timeout', async () => {
    expect(forwardTiming).toEqual({ readTimeoutMs: 2_000, overallTimeoutMs: 5_000, healthTimeoutMs: 1_000 });
    const silent = await upstream({ mode: { kind: 'silent' } });
    const log = captureLog();
    const port = await serve(`. {\n    errors\n    forward . ${silent.hostPort}\n}\n`);
    const started = Date.now();
    const reply = await queryUdp(port, 'example.org', { timeoutMs: 7000 });
    const elapsed = Date.now() - started;
    expect(reply.rcode).toBe('SERVFAIL');
    expect(reply.flag_aa).toBe(false);
    expect(reply.flag_ra).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(4_900);
    expect(elapsed).toBeLessThan(5_600);
    // 2 s per try, wrapping around the one-upstream list: tries at 0, 2 and 4 s, each under a fresh ID.
    const tries = clientQueries(silent);
    expect(tries).toHaveLength(3);
    expect(new Set(tries.map((query) => query.id)).size).toBe(3);
    expect(log.filter((line) => /^\[ERROR\] plugin\/errors: 2 example\.org\. A: read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: i\/o timeout$/.test(line))).toHaveLength(1);
  }, 10_000);

  it('a closed port fails fast (connection refused) and tries the next upstream', async () => {
    fast();
    const closed = await upstream();
    const closedPort = closed.hostPort;
    await closed.stop();
    const healthy = await upstream();
    const port = await serve(`. {\n    forward . ${closedPort} ${healthy.hostPort} {\n        policy sequential\n    }\n}\n`);
    const started = Date.now();
    const reply = await queryUdp(port, 'example.org');
    expect(reply.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(Date.now() - started).toBeLessThan(150);
  });
});

describe('health checking (FWD-9)', () => {
  it('marks a failing upstream down after max_fails failed probes, skips it, and takes it back when a probe succeeds', async () => {
    fast();
    const flaky = await upstream({ mode: { kind: 'silent' } });
    const backup = await upstream();
    const port = await serve(`. {\n    forward . ${flaky.hostPort} ${backup.hostPort} {\n        policy sequential\n        max_fails 1\n        health_check 100ms\n    }\n}\n`);
    const failuresBefore = await counterValue(proxyHealthcheckFailures, { to: flaky.hostPort });

    // 1. The query times out on the flaky upstream and is answered by the backup; probing starts.
    const first = await queryUdp(port, 'example.org');
    expect(first.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(clientQueries(flaky)).toHaveLength(1);
    await waitFor(() => probes(flaky).length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 150));

    // 2. Down (2 failed probes > max_fails 1): the next query skips it entirely, so no timeout.
    const started = Date.now();
    const second = await queryUdp(port, 'example.org');
    expect(second.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(Date.now() - started).toBeLessThan(forwardTiming.readTimeoutMs);
    expect(clientQueries(flaky)).toHaveLength(1);
    expect(await counterValue(proxyHealthcheckFailures, { proxy_name: 'forward', to: flaky.hostPort }) - failuresBefore).toBeGreaterThanOrEqual(2);

    // 3. It recovers: the next probe succeeds, and queries go to it first again.
    flaky.mode = { kind: 'healthy' };
    const probesBefore = probes(flaky).length;
    await waitFor(() => probes(flaky).length > probesBefore);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const third = await queryUdp(port, 'example.org');
    expect(third.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(clientQueries(flaky)).toHaveLength(2);
    // Once healthy, probing stops.
    const settled = probes(flaky).length;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(probes(flaky).length).toBe(settled);
  });

  it('probes with `. IN NS`, RD set, only after a failure', async () => {
    fast();
    const flaky = await upstream({ mode: { kind: 'silent' } });
    const port = await serve(`. {\n    forward . ${flaky.hostPort} {\n        health_check 100ms\n    }\n}\n`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(probes(flaky)).toHaveLength(0); // not periodic
    await queryUdp(port, 'example.org', { timeoutMs: 2000 });
    await waitFor(() => probes(flaky).length >= 1);
    const probe = probes(flaky)[0]!;
    expect(probe.packet.flag_rd).toBe(true);
    expect(probe.packet.questions).toEqual([{ name: '.', type: 'NS', class: 'IN' }]);
    expect(probe.transport).toBe('udp');
  });

  it('health_check no_rec and domain change the probe; force_tcp sends it over TCP', async () => {
    fast();
    const flaky = await upstream({ mode: { kind: 'silent' } });
    const port = await serve(`. {\n    forward . ${flaky.hostPort} {\n        force_tcp\n        health_check 100ms no_rec domain Probe.Example.ORG\n    }\n}\n`);
    await queryUdp(port, 'example.org', { timeoutMs: 2000 });
    await waitFor(() => flaky.queries.some((query) => query.type === 'NS'));
    const probe = flaky.queries.find((query) => query.type === 'NS')!;
    expect(probe.packet.flag_rd).toBe(false);
    expect(probe.name).toBe('probe.example.org');
    expect(probe.transport).toBe('tcp');
  });

  it('any reply is healthy, REFUSED and SERVFAIL included: the upstream is never marked down', async () => {
    fast();
    // Client queries are never answered; probes get REFUSED.
    const picky = await upstream({
      mode: { kind: 'custom', respond: (query) => (query.questions?.[0]?.type === 'NS' ? [respond(query, { rcode: 5 })] : null) },
    });
    const backup = await upstream();
    const port = await serve(`. {\n    forward . ${picky.hostPort} ${backup.hostPort} {\n        policy sequential\n        max_fails 1\n        health_check 50ms\n    }\n}\n`);
    await queryUdp(port, 'example.org');
    await waitFor(() => probes(picky).length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(probes(picky)).toHaveLength(1); // one successful probe ends the checking
    await queryUdp(port, 'example.org');
    expect(clientQueries(picky)).toHaveLength(2); // still tried first
  });

  it('max_fails 0: never health-checked, never down', async () => {
    fast();
    const silent = await upstream({ mode: { kind: 'silent' } });
    const port = await serve(`. {\n    forward . ${silent.hostPort} {\n        max_fails 0\n        health_check 50ms\n    }\n}\n`);
    await queryUdp(port, 'example.org', { timeoutMs: 2000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(probes(silent)).toHaveLength(0);
  });
});

describe('every upstream down (FWD-5.2)', () => {
  /** An upstream that is down for health checks (probes unanswered) but can answer queries once `answering`. */
  async function downUpstream(port: () => number, state: { answering: boolean }, up: TestUpstream): Promise<void> {
    await queryUdp(port(), 'example.org', { timeoutMs: 3000 });
    await waitFor(() => probes(up).length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    state.answering = true;
  }

  it('tries a random upstream anyway and counts coredns_forward_healthcheck_broken_total', async () => {
    fast();
    const state = { answering: false };
    const up = await upstream({
      mode: { kind: 'custom', respond: (query) => (state.answering && query.questions?.[0]?.type !== 'NS' ? [respond(query, { answers: table['example.org A'] })] : null) },
    });
    const port = await serve(`. {\n    forward . ${up.hostPort} {\n        max_fails 1\n        health_check 50ms\n    }\n}\n`);
    await downUpstream(() => port, state, up);
    const brokenBefore = await counterValue(forwardHealthcheckBroken);
    const reply = await queryUdp(port, 'example.org');
    expect(reply.answers).toMatchObject([{ data: '192.0.2.1' }]);
    expect(await counterValue(forwardHealthcheckBroken) - brokenBefore).toBe(1);
  });

  it('failfast_all_unhealthy_upstreams: SERVFAIL at once instead', async () => {
    fast();
    const state = { answering: false };
    const up = await upstream({
      mode: { kind: 'custom', respond: (query) => (state.answering && query.questions?.[0]?.type !== 'NS' ? [respond(query, { answers: table['example.org A'] })] : null) },
    });
    const log = captureLog();
    const port = await serve(`. {\n    errors\n    forward . ${up.hostPort} {\n        max_fails 1\n        health_check 50ms\n        failfast_all_unhealthy_upstreams\n    }\n}\n`);
    await downUpstream(() => port, state, up);
    const queriesBefore = clientQueries(up).length;
    const brokenBefore = await counterValue(forwardHealthcheckBroken);
    const started = Date.now();
    const reply = await queryUdp(port, 'example.org');
    expect(reply.rcode).toBe('SERVFAIL');
    expect(Date.now() - started).toBeLessThan(100);
    expect(clientQueries(up)).toHaveLength(queriesBefore);
    expect(await counterValue(forwardHealthcheckBroken) - brokenBefore).toBe(1);
    expect(log).toContain('[ERROR] plugin/errors: 2 example.org. A: no healthy proxies');
  });
});
