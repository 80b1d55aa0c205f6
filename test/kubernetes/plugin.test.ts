// The kubernetes plugin as the chain sees it: zone matching, the answer memo,
// the pre-sync rules and the source lifecycle (KP-3, KP-12, KP-24..27).

import { describe, expect, it } from 'vitest';
import { Rcode } from '../../src/wire/constants.ts';
import { encodeReply } from '../../src/wire/message.ts';
import definition from '../../plugins/kubernetes/index.ts';
import { MEMO_LIMIT, type KubernetesInstance, type SourceFactory } from '../../plugins/kubernetes/instance.ts';
import type { ClusterSource, ClusterStore } from '../../plugins/kubernetes/model.ts';
import { ClusterIndex } from '../../plugins/kubernetes/store.ts';
import {
  ask,
  askSync,
  blockOf,
  buildRequest,
  captureLog,
  clusterIP,
  fixtureStore,
  pluginOf,
  rrs,
  STOCK,
} from './plugin.harness.ts';

const SIMPLE = '.:53 {\n kubernetes cluster.local in-addr.arpa {\n  fallthrough in-addr.arpa\n }\n}';

/** A source that records calls and syncs when told to. */
function fakeSource(options: { syncAfterMs?: number; failStart?: Error } = {}) {
  const calls: string[] = [];
  let store: ClusterStore | null = null;
  const source: ClusterSource = {
    async start(target) {
      calls.push('start');
      if (options.failStart) throw options.failStart;
      store = target;
      target.upsertNamespace({ name: 'testns' });
      target.upsertService(clusterIP('testns', 'svc1', ['10.0.0.1']));
      if (options.syncAfterMs !== undefined) setTimeout(() => store?.markSynced(), options.syncAfterMs);
    },
    async stop() {
      calls.push('stop');
    },
    state: () => (store ? 'connected' : 'idle'),
  };
  const factory: SourceFactory = async () => source;
  return { calls, source, factory, sync: () => store?.markSynced() };
}

describe('plugin definition', () => {
  it('is named kubernetes and builds an instance from Corefile directives', () => {
    const { context, directives } = blockOf(SIMPLE);
    expect(definition.name).toBe('kubernetes');
    const config = definition.parse(directives, context);
    const instance = definition.create(config, context, captureLog());
    expect(typeof instance.serve).toBe('function');
    expect(typeof instance.start).toBe('function');
    expect(typeof instance.stop).toBe('function');
    expect(instance.ready!()).toBe(false);
  });

  it('registers an authority whose generation follows the store, for caches in front (users.md P5)', () => {
    const { context, directives } = blockOf(SIMPLE);
    const config = definition.parse(directives, context);
    const instance = definition.create(config, context, captureLog()) as KubernetesInstance;
    expect(context.authorities).toHaveLength(1);
    const [authority] = context.authorities;
    expect(authority!.zones).toEqual(['cluster.local.', 'in-addr.arpa.']);
    const before = authority!.generation();
    instance.store.upsertNamespace({ name: 'x' });
    expect(authority!.generation()).toBeGreaterThan(before);
  });

  it('serve works unbound, as the chain calls it', () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    const serve = plugin.serve!;
    const result = serve(buildRequest('svc1.testns.svc.cluster.local', 'A'), () => {
      throw new Error('next');
    });
    expect((result as { rcode: number }).rcode).toBe(Rcode.NOERROR);
  });
});

describe('KP-3: zone matching', () => {
  it('KP-3: only names in the plugin zones are answered, the longest zone wins', async () => {
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local svc.cluster.local\n}', { store: fixtureStore() });
    expect((await ask(plugin, 'example.org', 'A')).nextCalls).toBe(1);
    expect((await ask(plugin, 'local', 'A')).nextCalls).toBe(1);
    // In svc.cluster.local the name is relative to that zone: "testns" is not a kind label.
    const nested = await ask(plugin, 'svc1.testns.svc.cluster.local', 'A');
    expect(nested.wire.rcode).toBe('NXDOMAIN');
    expect(nested.wire.authorities?.[0]?.name).toBe('svc.cluster.local');
  });

  it('KP-1: zones default to the server block keys', async () => {
    const plugin = pluginOf('cluster.local:53 {\n kubernetes\n}', { store: fixtureStore() });
    expect(rrs((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['svc1.testns.svc.cluster.local 5 A 10.0.0.1']);
  });
});

describe('answer memo (performance)', () => {
  it('a repeated query returns the very same Reply object, synchronously', () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    for (const [name, type] of [['svc1.testns.svc.cluster.local', 'A'], ['nope.testns.svc.cluster.local', 'A'], ['hdls1.testns.svc.cluster.local', 'SRV']]) {
      const first = askSync(plugin, name!, type);
      // Uppercase below the zone: the same memoised reply (its owners point at the question).
      const second = askSync(plugin, name!.toUpperCase().replace('CLUSTER.LOCAL.', 'cluster.local.').replace(/CLUSTER\.LOCAL$/, 'cluster.local'), type);
      expect(second, name).toBe(first);
    }
  });

  it('K8S-2: a query spelling the zone otherwise is answered apart from the memo, and leaves it as it was', () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    const lower = askSync(plugin, 'hdls1.testns.svc.cluster.local', 'SRV');
    const spelled = askSync(plugin, 'hdls1.testns.svc.Cluster.Local', 'SRV');
    expect(spelled).not.toBe(lower);
    expect(spelled.additional.map((record) => record.name)).toContain('web-0.hdls1.testns.svc.Cluster.Local.');
    expect(askSync(plugin, 'hdls1.testns.svc.cluster.local', 'SRV')).toBe(lower);
    expect(lower.additional.map((record) => record.name)).toContain('web-0.hdls1.testns.svc.cluster.local.');
  });

  it('the memoised reply encodes correctly for every letter case of the question', () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    const lower = buildRequest('svc1.testns.svc.cluster.local', 'A');
    const upper = buildRequest('SVC1.TESTNS.svc.cluster.local', 'A');
    const reply = askSync(plugin, 'svc1.testns.svc.cluster.local', 'A');
    const wireLower = encodeReply(lower.query, reply, 512);
    const wireUpper = encodeReply(upper.query, askSync(plugin, 'SVC1.TESTNS.svc.cluster.local', 'A'), 512);
    expect(wireUpper.toString('latin1')).toContain('SVC1');
    expect(wireLower.length).toBe(wireUpper.length);
  });

  it('a store change invalidates the memo at once (no stale answer after a delete)', async () => {
    const store = fixtureStore();
    const plugin = pluginOf(SIMPLE, { store });
    const before = askSync(plugin, 'svc1.testns.svc.cluster.local', 'A');
    store.deleteService('testns', 'svc1');
    const after = askSync(plugin, 'svc1.testns.svc.cluster.local', 'A');
    expect(after).not.toBe(before);
    expect(after.rcode).toBe(Rcode.NXDOMAIN);
  });

  it('the memo is bounded: random names cannot grow it past MEMO_LIMIT entries', () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    for (let i = 0; i < MEMO_LIMIT + 50; i++) askSync(plugin, `r${i}.testns.svc.cluster.local`, 'A');
    const internals = plugin as unknown as { memoSize: number };
    expect(internals.memoSize).toBeLessThanOrEqual(MEMO_LIMIT);
    expect(internals.memoSize).toBeGreaterThan(0);
  });

  it('the entry that triggers a memo reset is kept in the fresh memo', () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    for (let i = 0; i < MEMO_LIMIT; i++) askSync(plugin, `r${i}.testns.svc.cluster.local`, 'A');
    const first = askSync(plugin, 'svc1.testns.svc.cluster.local', 'A');
    expect((plugin as unknown as { memoSize: number }).memoSize).toBe(1);
    expect(askSync(plugin, 'svc1.testns.svc.cluster.local', 'A')).toBe(first);
  });

  it('KP-12: a memoised fallthrough still calls the next plugin each time', async () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    for (let i = 0; i < 3; i++) expect((await ask(plugin, '9.9.9.9.in-addr.arpa', 'PTR')).nextCalls).toBe(1);
  });

  it('ExternalName answers that re-enter the server are not memoised', async () => {
    const plugin = pluginOf(SIMPLE, { store: fixtureStore() });
    let calls = 0;
    const reenter = () => (calls++, { rcode: 0, flags: 0, answer: [], authority: [], additional: [] });
    await ask(plugin, 'external.testns.svc.cluster.local', 'A', { reenter });
    await ask(plugin, 'external.testns.svc.cluster.local', 'A', { reenter });
    expect(calls).toBe(2);
  });
});

describe('KP-25: before the first sync', () => {
  it('KP-25: a would-be NXDOMAIN is SERVFAIL with the SOA and AA', async () => {
    const store = new ClusterIndex();
    store.upsertNamespace({ name: 'testns' });
    const plugin = pluginOf(SIMPLE, { store });
    const { wire } = await ask(plugin, 'nope.testns.svc.cluster.local', 'A');
    expect(wire.rcode).toBe('SERVFAIL');
    expect(wire.flag_aa).toBe(true);
    expect(wire.authorities?.[0]?.type).toBe('SOA');
  });

  it('KP-25: NODATA and positive answers are served from what is already known', async () => {
    const store = new ClusterIndex();
    store.upsertNamespace({ name: 'testns' });
    store.upsertService(clusterIP('testns', 'svc1', ['10.0.0.1']));
    const plugin = pluginOf(SIMPLE, { store });
    expect(rrs((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['svc1.testns.svc.cluster.local 5 A 10.0.0.1']);
    expect((await ask(plugin, 'svc1.testns.svc.cluster.local', 'AAAA')).wire.rcode).toBe('NOERROR');
  });

  it('KP-12/KP-25: fallthrough is checked before the sync state', async () => {
    const plugin = pluginOf(STOCK, { store: new ClusterIndex() });
    const { nextCalls } = await ask(plugin, '9.9.9.9.in-addr.arpa', 'PTR');
    expect(nextCalls).toBe(1);
  });

  it('KP-25: after the sync the same name is NXDOMAIN (the memo follows the sync)', async () => {
    const store = new ClusterIndex();
    store.upsertNamespace({ name: 'testns' });
    const plugin = pluginOf(SIMPLE, { store });
    expect((await ask(plugin, 'nope.testns.svc.cluster.local', 'A')).wire.rcode).toBe('SERVFAIL');
    store.markSynced();
    expect((await ask(plugin, 'nope.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });
});

describe('lifecycle (KP-24, KP-26, KP-27)', () => {
  it('KP-24/26: start runs the source and returns once it has synced; ready follows', async () => {
    const fake = fakeSource({ syncAfterMs: 50 });
    const log = captureLog();
    const plugin = pluginOf(SIMPLE, { store: new ClusterIndex(), sourceFactory: fake.factory, log });
    expect(plugin.ready()).toBe(false);
    const started = Date.now();
    await plugin.start();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(plugin.ready()).toBe(true);
    expect(fake.calls).toEqual(['start']);
    expect(plugin.sourceState()).toBe('connected');
    expect(log.lines).toEqual([]);
    expect(rrs((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['svc1.testns.svc.cluster.local 5 A 10.0.0.1']);
  });

  it('KP-24: without a sync, start logs every 500 ms and gives up after startup_timeout', async () => {
    const fake = fakeSource();
    const log = captureLog();
    const config = '.:53 {\n kubernetes cluster.local {\n  startup_timeout 1200ms\n }\n}';
    const plugin = pluginOf(config, { store: new ClusterIndex(), sourceFactory: fake.factory, log });
    const started = Date.now();
    await plugin.start();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1150);
    expect(elapsed).toBeLessThan(2500);
    expect(log.lines).toEqual([
      '[INFO] waiting for Kubernetes API before starting server',
      '[INFO] waiting for Kubernetes API before starting server',
      '[WARNING] starting server with unsynced Kubernetes API',
    ]);
    expect(plugin.ready()).toBe(false);
    fake.sync();
    expect(plugin.ready()).toBe(true);
  });

  it('KP-24: a source that fails to start fails the start hook', async () => {
    const fake = fakeSource({ failStart: new Error('unable to load in-cluster configuration') });
    const plugin = pluginOf(SIMPLE, { store: new ClusterIndex(), sourceFactory: fake.factory });
    await expect(plugin.start()).rejects.toThrow('in-cluster');
  });

  it('KP-27: stop stops the source; answers keep coming from the index', async () => {
    const fake = fakeSource({ syncAfterMs: 0 });
    const plugin = pluginOf(SIMPLE, { store: new ClusterIndex(), sourceFactory: fake.factory });
    await plugin.start();
    await plugin.stop();
    expect(fake.calls).toEqual(['start', 'stop']);
    expect((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
  });

  it('KP-27: shutdown (SIGTERM) stops the watches first; the later stop has nothing left to do', async () => {
    const fake = fakeSource({ syncAfterMs: 0 });
    const plugin = pluginOf(SIMPLE, { store: new ClusterIndex(), sourceFactory: fake.factory });
    await plugin.start();
    await plugin.shutdown();
    expect(fake.calls).toEqual(['start', 'stop']);
    expect(plugin.ready()).toBe(true);
    expect((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
    await plugin.stop();
    expect(fake.calls).toEqual(['start', 'stop']);
  });

  it('KP-27: stop during the startup wait ends the wait', async () => {
    const fake = fakeSource();
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local {\n  startup_timeout 30s\n }\n}', { store: new ClusterIndex(), sourceFactory: fake.factory });
    const starting = plugin.start();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await plugin.stop();
    await starting;
    expect(fake.calls).toEqual(['start', 'stop']);
  });

  it('KP-5: extra endpoint URLs are reported through the plugin logger', () => {
    const log = captureLog();
    pluginOf('.:53 {\n kubernetes cluster.local {\n  endpoint https://a:6443 https://b:6443\n }\n}', { log });
    expect(log.lines).toEqual([
      "[WARNING] Multiple endpoints have been deprecated, only the first specified endpoint 'https://a:6443' is used; ignoring 'https://b:6443'",
    ]);
  });
});
