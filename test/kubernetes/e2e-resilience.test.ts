// End to end: what DNS clients see while the plugin's view of the API server
// is disturbed: a watch cut with 410 Gone (re-list), an API server that goes
// away or answers 503, and the time before the first sync (KP-22, KP-24..26,
// users.md P5 and P13).
//
// Continuous polling runs against the plugin alone (no cache in front, which
// would hide a gap); the readiness test also runs behind kubeadm's cache 30.

import { afterEach, describe, expect, test } from 'vitest';
import type { DecodedReply } from '../support/dns.ts';
import type { TestApiServer } from '../support/apiserver.ts';
import { waitFor } from '../support/apiserver.ts';
import {
  answersWithin,
  ask,
  cleanup,
  clusterIPService,
  data,
  endpointSlice,
  freePort,
  headlessService,
  httpGet,
  is,
  kubeadmCorefile,
  logLines,
  namespace,
  plainCorefile,
  pollContinuously,
  show,
  sleep,
  startApi,
  startDns,
  startDnsInBackground,
} from './e2e.harness.ts';

afterEach(cleanup);

const KEEP = 'keep.demo.svc.cluster.local';
const DB = 'db.demo.svc.cluster.local';

/** A cluster with a Service and a headless Service that survive everything the tests do. */
async function cluster(): Promise<TestApiServer> {
  const api = await startApi();
  api.add(namespace('demo'));
  api.add(clusterIPService('demo', 'keep', '10.96.20.1'));
  api.add(clusterIPService('demo', 'changed', '10.96.20.2'));
  api.add(clusterIPService('demo', 'gone', '10.96.20.3'));
  api.add(headlessService('demo', 'db'));
  api.add(endpointSlice('demo', 'db-1', 'db', [{ ip: '10.244.3.1', hostname: 'db-0' }, { ip: '10.244.3.2', hostname: 'db-1' }]));
  return api;
}

/** Every reply of a poll was the expected answer; lists the others. */
function unexpected(replies: DecodedReply[], ...expected: string[]): string[] {
  const check = is.answer(...expected);
  return replies.filter((reply) => !check(reply)).map(show);
}

async function pollers(port: number) {
  const keep = pollContinuously(port, KEEP);
  const db = pollContinuously(port, DB);
  return {
    async stop() {
      const [keepReplies, dbReplies] = await Promise.all([keep.stop(), db.stop()]);
      // Enough queries were made during the disturbance for "no gap" to mean something.
      expect(keepReplies.length).toBeGreaterThan(10);
      expect(unexpected(keepReplies, '10.96.20.1'), `${KEEP} while disturbed`).toEqual([]);
      expect(unexpected(dbReplies, '10.244.3.1', '10.244.3.2'), `${DB} while disturbed`).toEqual([]);
    },
  };
}

const warnings = () => logLines.filter((line) => line.startsWith('[WARNING] plugin/kubernetes:'));

describe('KP-22: a watch cut with 410 Gone', () => {
  test('KP-22/P5: re-lists without a moment of NXDOMAIN for surviving names; changes made just before the 410 are answered afterwards', async () => {
    const api = await cluster();
    const { port } = await startDns(plainCorefile(api));
    await api.waitForWatches(3);
    const polling = await pollers(port);
    await sleep(100);
    const listsBefore = api.requestsFor('list').length;

    // 1. The watches get an ERROR event with code 410 right after a change; the re-list is slow,
    //    so queries keep coming while it is in flight.
    api.delayLists(300);
    api.update(clusterIPService('demo', 'changed', '10.96.20.4'));
    api.add(clusterIPService('demo', 'fresh', '10.96.20.5'));
    api.expireHistory();
    await waitFor(() => api.requestsFor('list').length >= listsBefore + 3, 're-list of services, endpointslices and namespaces', 3000);
    await answersWithin(port, 'changed.demo.svc.cluster.local', 'A', is.answer('10.96.20.4'), 3000);
    await answersWithin(port, 'fresh.demo.svc.cluster.local', 'A', is.answer('10.96.20.5'), 3000);
    await api.waitForWatches(3);

    // 2. Changes the watches never deliver: made while no watch is open, then the history is
    //    compacted, so the resume gets 410 and only a re-list can show them.
    const listsAfterFirst = api.requestsFor('list').length;
    api.closeWatches();
    api.update(clusterIPService('demo', 'changed', '10.96.20.6'));
    api.delete(clusterIPService('demo', 'gone', '10.96.20.3'));
    api.update(endpointSlice('demo', 'db-1', 'db', [{ ip: '10.244.3.1', hostname: 'db-0' }, { ip: '10.244.3.2', hostname: 'db-1' }, { ip: '10.244.3.3', hostname: 'db-2', ready: false }]));
    api.expireHistory();
    // The watches had just started, so their end and the 410 count as failures: about 0.5 s + 1 s of backoff.
    await answersWithin(port, 'changed.demo.svc.cluster.local', 'A', is.answer('10.96.20.6'), 5000);
    await answersWithin(port, 'gone.demo.svc.cluster.local', 'A', is.rcode('NXDOMAIN'), 1000);
    expect(api.requestsFor('list').length).toBeGreaterThan(listsAfterFirst);

    await polling.stop();
    expect(warnings(), 'a 410 is routine, not worth a warning').toEqual([]);
  });
});

describe('KP-25/P13: the API server goes away', () => {
  test('KP-25/P13: API server stopped: answers keep coming (stale, not SERVFAIL), one warning; changes made meanwhile show after it returns', async () => {
    const api = await cluster();
    const { port } = await startDns(plainCorefile(api));
    await api.waitForWatches(3);
    await sleep(1000); // watches that lasted: their end is a lost connection, not a refusal
    const polling = await pollers(port);

    await api.stop();
    await waitFor(() => warnings().length > 0, 'the warning', 3000);
    expect(warnings()[0]).toMatch(/^\[WARNING\] plugin\/kubernetes: lost connection to the API server \((list|watch) \w+: .+\); serving last known records, retrying in [\d.]+s$/);

    // The API server's state moves on while clusterdns cannot see it.
    api.update(clusterIPService('demo', 'changed', '10.96.20.7'));
    api.delete(clusterIPService('demo', 'gone', '10.96.20.3'));
    api.add(clusterIPService('demo', 'added', '10.96.20.8'));
    await sleep(300);
    // Last known records are served, and a name that did not exist is still NXDOMAIN, not SERVFAIL.
    expect(data(await ask(port, 'changed.demo.svc.cluster.local'))).toEqual(['10.96.20.2']);
    expect(data(await ask(port, 'gone.demo.svc.cluster.local', 'A', 'tcp'))).toEqual(['10.96.20.3']);
    expect((await ask(port, 'added.demo.svc.cluster.local')).rcode).toBe('NXDOMAIN');
    expect((await ask(port, 'nothing.demo.svc.cluster.local')).rcode).toBe('NXDOMAIN');

    await api.restart();
    // Backoff after about a second of outage: the next attempt is at most ~2 s away.
    await answersWithin(port, 'changed.demo.svc.cluster.local', 'A', is.answer('10.96.20.7'), 4000);
    await answersWithin(port, 'gone.demo.svc.cluster.local', 'A', is.rcode('NXDOMAIN'), 1000);
    await answersWithin(port, 'added.demo.svc.cluster.local', 'A', is.answer('10.96.20.8'), 1000);
    await waitFor(() => logLines.some((line) => /^\[INFO\] plugin\/kubernetes: connection to the API server at \S+ restored$/.test(line)), 'restored', 3000);
    await polling.stop();
    expect(warnings(), 'one warning per outage').toHaveLength(1);
  });

  test('KP-22/KP-25: after a 4 s outage, a Service created as the API server comes back is answered within 2 s; answers never stopped meanwhile', async () => {
    const api = await cluster();
    const { port } = await startDns(plainCorefile(api));
    await api.waitForWatches(3);
    await sleep(1000);
    const polling = await pollers(port);

    await api.stop();
    // Long enough for a doubling backoff (0.5, 1, 2, 4 s) to overshoot the restart by seconds.
    await sleep(4000);
    expect(data(await ask(port, KEEP))).toEqual(['10.96.20.1']);
    await api.restart();
    const restarted = Date.now();
    api.add(clusterIPService('demo', 'late', '10.96.20.10'));
    await answersWithin(port, 'late.demo.svc.cluster.local', 'A', is.answer('10.96.20.10'), 2000);
    expect(Date.now() - restarted).toBeLessThan(2000);
    await polling.stop();
  });

  test('KP-25/P13: API server answering 503: answers keep coming, the warning names the status; recovery picks up what changed', async () => {
    const api = await cluster();
    const { port } = await startDns(plainCorefile(api));
    await api.waitForWatches(3);
    await sleep(1000);
    const polling = await pollers(port);

    const message = 'the server is currently unable to handle the request';
    api.failRequests(503, { message });
    api.closeWatches();
    await waitFor(() => warnings().length > 0, 'the warning', 3000);
    expect(warnings()[0]).toMatch(
      new RegExp(`^\\[WARNING\\] plugin/kubernetes: lost connection to the API server \\(watch \\w+: 503 Service Unavailable: ${message}\\); serving last known records, retrying in [\\d.]+s$`),
    );

    api.update(clusterIPService('demo', 'changed', '10.96.20.9'));
    api.delete(clusterIPService('demo', 'gone', '10.96.20.3'));
    await sleep(300);
    expect(data(await ask(port, 'changed.demo.svc.cluster.local'))).toEqual(['10.96.20.2']);
    expect(data(await ask(port, 'gone.demo.svc.cluster.local'))).toEqual(['10.96.20.3']);
    expect(api.requests.filter((r) => r.status === 503).length).toBeGreaterThanOrEqual(3);

    api.clearFailures();
    await answersWithin(port, 'changed.demo.svc.cluster.local', 'A', is.answer('10.96.20.9'), 4000);
    await answersWithin(port, 'gone.demo.svc.cluster.local', 'A', is.rcode('NXDOMAIN'), 1000);
    await polling.stop();
    expect(warnings()).toHaveLength(1);
  });
});

describe.each([
  { layout: 'the plugin alone', corefile: plainCorefile },
  { layout: "kubeadm's layout, cache 30 in front", corefile: kubeadmCorefile },
])('KP-24..26: before the first sync, $layout', ({ corefile }) => {
  test('KP-24/KP-25/KP-26: /ready is 503 "kubernetes" and would-be NXDOMAINs are SERVFAIL until the first sync; then 200, answers and NXDOMAIN', async () => {
    const api = await cluster();
    api.delayLists(2000); // the first lists take 2 s
    const readyPort = await freePort();
    const started = Date.now();
    const running = startDnsInBackground(corefile(api, { readyPort, kubernetes: ['startup_timeout 500ms'] }));

    // KP-24: during the startup wait, the ready endpoint is already up and says who is not ready.
    const waiting = await (async () => {
      for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(20)) {
        const reply = await httpGet(readyPort, '/ready').catch(() => null);
        if (reply) return reply;
      }
      throw new Error('the ready endpoint never answered');
    })();
    expect(waiting).toEqual({ status: 503, body: 'kubernetes' });

    // startup_timeout: the DNS listeners open unsynced (the 503 and SERVFAILs below show it is before the sync).
    const { port } = await running;
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(logLines).toContain('[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API');
    expect(logLines).toContain('[INFO] plugin/kubernetes: waiting for Kubernetes API before starting server');
    expect(await httpGet(readyPort, '/ready')).toEqual({ status: 503, body: 'kubernetes' });

    // KP-25: unknown yet is SERVFAIL, with the SOA and AA, so clients retry instead of caching a negative.
    for (const transport of ['udp', 'tcp'] as const) {
      const early = await ask(port, KEEP, 'A', transport);
      expect(early.rcode).toBe('SERVFAIL');
      expect(early.flags! & 0x400, 'AA').toBeTruthy();
      expect(early.authorities!.map((r) => r.type)).toEqual(['SOA']);
    }
    expect((await ask(port, 'nothing.demo.svc.cluster.local')).rcode).toBe('SERVFAIL');

    // KP-26: the first sync makes it ready; the same questions now get real answers (not a cached SERVFAIL).
    const deadline = Date.now() + 4000;
    let ready = await httpGet(readyPort, '/ready');
    while (ready.status !== 200 && Date.now() < deadline) {
      await sleep(20);
      ready = await httpGet(readyPort, '/ready');
    }
    expect(ready).toEqual({ status: 200, body: 'OK' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    await answersWithin(port, KEEP, 'A', is.answer('10.96.20.1'), 500);
    await answersWithin(port, 'nothing.demo.svc.cluster.local', 'A', is.rcode('NXDOMAIN'), 500);
    api.delayLists(0);
  });
});
