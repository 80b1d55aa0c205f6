// loop over real sockets (LOOP-1..5): a relay upstream sends forwarded
// queries back to the server under test, which is the loop users hit with
// systemd-resolved or Docker's resolver (users.md P4). The exit is replaced
// by a hook so the detection can be asserted without ending the test runner.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planFromCorefile } from '../src/config.ts';
import { CorefileError } from '../src/corefile/types.ts';
import { setLogSink } from '../src/log.ts';
import { loopHooks, probeName } from '../plugins/loop/index.ts';
import { queryUdp, startServer, type RunningServer } from './support/dns.ts';
import { TestUpstream, type ReceivedQuery } from './support/upstreams.ts';

let servers: RunningServer[] = [];
let upstreams: TestUpstream[] = [];
let restoreLog: ((line: string) => void) | null = null;
const savedHooks = { ...loopHooks };
let exits: number[] = [];
let log: string[] = [];

beforeEach(() => {
  exits = [];
  loopHooks.exit = (code) => {
    exits.push(code);
  };
  log = [];
  restoreLog = setLogSink((line) => log.push(line));
});

afterEach(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  await Promise.all(upstreams.map((upstream) => upstream.stop()));
  servers = [];
  upstreams = [];
  if (restoreLog) setLogSink(restoreLog);
  restoreLog = null;
  Object.assign(loopHooks, savedHooks);
});

async function serve(corefile: string): Promise<RunningServer> {
  const server = await startServer(corefile);
  servers.push(server);
  return server;
}

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const hinfo = (up: TestUpstream): ReceivedQuery[] => up.queries.filter((query) => query.type === 'HINFO');

describe('loop setup (LOOP-1)', () => {
  const error = (corefile: string): string => {
    try {
      planFromCorefile(corefile, 'Corefile', { dnsPort: 53 });
    } catch (caught) {
      if (caught instanceof CorefileError) return caught.message;
      throw caught;
    }
    throw new Error('expected a setup error');
  };

  it('takes no arguments', () => {
    expect(error('. {\n    loop now\n}\n')).toMatch(/^Corefile:2 - Error during parsing: Unexpected token 'now'/);
  });

  it('is allowed once per server block', () => {
    expect(error('. {\n    loop\n    loop\n}\n')).toBe('Corefile:3 - Error during parsing: plugin/loop: this plugin can only be used once per Server Block');
  });

  it('takes no options block', () => {
    expect(error('. {\n    loop {\n        fast\n    }\n}\n')).toMatch(/^Corefile:3 - Error during parsing: Unexpected token 'fast': loop takes no options block/);
  });

  it('builds probe names <r1>.<r2>.<zone> from random numbers below 2^62 (LOOP-2)', () => {
    const name = probeName('cluster.local.');
    expect(name).toMatch(/^\d+\.\d+\.cluster\.local\.$/);
    const [r1, r2] = name.split('.').slice(0, 2).map((label) => BigInt(label));
    expect(r1! < 2n ** 62n && r2! < 2n ** 62n).toBe(true);
    expect(probeName('.')).toMatch(/^\d+\.\d+\.$/);
    expect(probeName('.')).not.toBe(probeName('.'));
  });
});

describe('loop detection (LOOP-2, LOOP-3)', () => {
  it('detects a forwarding loop back to this server, logs FATAL and exits with status 1', async () => {
    let target: { host: string; port: number } | null = null;
    const relay = await TestUpstream.start({ mode: { kind: 'forward', target: () => target, limit: 20 } });
    upstreams.push(relay);
    const server = await serve(`. {\n    loop\n    forward . ${relay.hostPort}\n}\n`);
    target = { host: '127.0.0.1', port: server.port };
    await waitFor(() => exits.length > 0);
    expect(exits).toEqual([1]);
    const fatal = log.filter((line) => line.startsWith('[FATAL]'));
    expect(fatal).toHaveLength(1);
    const pattern = new RegExp(
      `^\\[FATAL\\] plugin/loop: Loop \\(127\\.0\\.0\\.1:\\d+ -> :${server.port}\\) detected for zone "\\.", ` +
      'see https://coredns\\.io/plugins/loop#troubleshooting\\. Query: "HINFO (\\d+\\.\\d+\\.)"$',
    );
    const match = pattern.exec(fatal[0]!);
    expect(match).not.toBeNull();
    // The probe the relay carried is the one named in the message.
    const probes = hinfo(relay);
    expect(probes.length).toBeGreaterThanOrEqual(2);
    expect(probes[0]!.name + '.').toBe(match![1]);
    // Once detected (exit hooked), the probe is no longer fed round the loop.
    const carried = relay.queries.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(relay.queries.length).toBeLessThanOrEqual(carried + 1);
  });

  it('uses the first server-block zone and probes with HINFO, RD set, over UDP', async () => {
    const up = await TestUpstream.start();
    upstreams.push(up);
    await serve(`example.org cluster.local {\n    loop\n    forward . ${up.hostPort}\n}\n`);
    await waitFor(() => hinfo(up).length > 0);
    const [probe] = hinfo(up);
    expect(probe!.name).toMatch(/^\d+\.\d+\.example\.org$/);
    expect(probe!.transport).toBe('udp');
    expect(probe!.packet.flag_rd).toBe(true);
  });

  it('normal traffic never triggers it: after a probe is answered the plugin turns itself off (LOOP-4)', async () => {
    const up = await TestUpstream.start();
    upstreams.push(up);
    const server = await serve(`. {\n    loop\n    forward . ${up.hostPort}\n}\n`);
    await waitFor(() => hinfo(up).length > 0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const probe = hinfo(up)[0]!.name;
    // Even the probe name itself, asked many times, is just forwarded now.
    for (let i = 0; i < 5; i++) expect((await queryUdp(server.port, probe, { type: 'HINFO' })).rcode).toBe('NXDOMAIN');
    for (let i = 0; i < 5; i++) await queryUdp(server.port, `${i}.${i}.`, { type: 'HINFO' });
    for (let i = 0; i < 5; i++) await queryUdp(server.port, 'example.org', { type: 'A' });
    expect(exits).toEqual([]);
    expect(log.filter((line) => line.startsWith('[FATAL]'))).toEqual([]);
  });

  it('retries a failed probe after a pause with the same name, for a limited time, then turns off (LOOP-4)', async () => {
    // The pause is long next to the timeout, so that scheduling jitter on a busy machine cannot hide it.
    Object.assign(loopHooks, { probeTimeoutMs: 100, retryDelayMs: 200, windowMs: 1200 });
    // Answers come after the probe gave up, so every exchange fails.
    const slow = await TestUpstream.start({ mode: { kind: 'slow', delayMs: 250 } });
    upstreams.push(slow);
    const server = await serve(`. {\n    loop\n    forward . ${slow.hostPort}\n}\n`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const probes = hinfo(slow);
    expect(probes.length).toBeGreaterThanOrEqual(3);
    expect(probes.length).toBeLessThanOrEqual(6);
    expect(new Set(probes.map((query) => query.name)).size).toBe(1);
    // Spaced by the probe timeout plus the pause (300 ms); without the pause it would be 100.
    expect(probes[1]!.at - probes[0]!.at).toBeGreaterThanOrEqual(250);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hinfo(slow)).toHaveLength(probes.length);
    // Disabled now: the probe name passing three more times is not a loop.
    const name = probes[0]!.name;
    const replies = await Promise.all([0, 1, 2, 3].map(() => queryUdp(server.port, name, { type: 'HINFO', timeoutMs: 1000 })));
    expect(replies.map((reply) => reply.rcode)).toEqual(['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN']);
    expect(exits).toEqual([]);
  });
});
