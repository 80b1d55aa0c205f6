// End to end: changes made through the Kubernetes API reach DNS clients
// within a second, with the plugin alone and with kubeadm's `cache 30` in
// front of it (KP-22, K8S-8..21, K8S-26, users.md P5, STOCK-1, CACHE-9).
//
// The test API server (test/support/apiserver.ts) is a real list/watch HTTP
// server; clusterdns runs in-process from a Corefile and is asked over real
// UDP and TCP sockets.

import { afterEach, describe, expect, test } from 'vitest';
import {
  answersWithin,
  ask,
  cleanup,
  clusterIPService,
  data,
  endpointSlice,
  headlessService,
  is,
  kubeadmCorefile,
  namespace,
  plainCorefile,
  reverse,
  startApi,
  startDns,
  type Transport,
} from './e2e.harness.ts';
import type { TestApiServer } from '../support/apiserver.ts';

afterEach(cleanup);

/** The bound: a change is answered within 1 s. */
const WITHIN_MS = 1000;

const layouts = [
  { layout: 'the plugin alone', corefile: plainCorefile },
  { layout: "kubeadm's layout, cache 30 in front", corefile: kubeadmCorefile },
];

async function cluster(): Promise<TestApiServer> {
  const api = await startApi();
  api.add(namespace('default'));
  api.add(namespace('demo'));
  api.add(clusterIPService('default', 'kubernetes', '10.96.0.1', [{ name: 'https', port: 443 }]));
  return api;
}

const WEB = 'web.demo.svc.cluster.local';
const WEB_SRV = `_http._tcp.${WEB}`;

describe.each(layouts)('a ClusterIP Service through the API, $layout', ({ corefile }) => {
  for (const transport of ['udp', 'tcp'] as Transport[]) {
    test(`K8S-8/K8S-10/K8S-14/K8S-26/P5 (${transport}): added, changed and deleted Services are answered within 1 s (A, SRV, PTR)`, async () => {
      const api = await cluster();
      const { port } = await startDns(corefile(api));
      const within = (name: string, type: string, expected: Parameters<typeof answersWithin>[3]) =>
        answersWithin(port, name, type, expected, WITHIN_MS, transport);

      // Asked before it exists: NXDOMAIN, which the cache (in kubeadm's layout) now holds for 30 s.
      for (const [name, type] of [[WEB, 'A'], [WEB_SRV, 'SRV'], [reverse('10.96.10.10'), 'PTR']] as const) {
        expect((await ask(port, name, type, transport)).rcode, `${name} ${type}`).toBe('NXDOMAIN');
      }

      // Created: the cached NXDOMAIN must not hide it.
      api.add(clusterIPService('demo', 'web', '10.96.10.10', [{ name: 'http', port: 80 }]));
      await Promise.all([
        within(WEB, 'A', is.answer('10.96.10.10')),
        within(WEB_SRV, 'SRV', is.answer(`0 100 80 ${WEB}`)),
        within(reverse('10.96.10.10'), 'PTR', is.answer(WEB)),
      ]);
      const created = await ask(port, WEB, 'A', transport);
      expect(created.flags! & 0x400, 'AA').toBeTruthy();
      expect((created.answers![0] as { ttl?: number }).ttl).toBe(corefile === kubeadmCorefile ? 30 : 5);

      // Changed: new cluster IP and port. The old answers were just cached; they must not linger.
      api.update(clusterIPService('demo', 'web', '10.96.10.20', [{ name: 'http', port: 8080 }]));
      await Promise.all([
        within(WEB, 'A', is.answer('10.96.10.20')),
        within(WEB_SRV, 'SRV', is.answer(`0 100 8080 ${WEB}`)),
        within(reverse('10.96.10.20'), 'PTR', is.answer(WEB)),
        within(reverse('10.96.10.10'), 'PTR', is.rcode('NXDOMAIN')),
      ]);

      // Deleted: NXDOMAIN for every name it had.
      api.delete(clusterIPService('demo', 'web', '10.96.10.20'));
      await Promise.all([
        within(WEB, 'A', is.rcode('NXDOMAIN')),
        within(WEB_SRV, 'SRV', is.rcode('NXDOMAIN')),
        within(reverse('10.96.10.20'), 'PTR', is.rcode('NXDOMAIN')),
      ]);
      // Other Services were never disturbed.
      expect(data(await ask(port, 'kubernetes.default.svc.cluster.local', 'A', transport))).toEqual(['10.96.0.1']);
    });
  }

  test('K8S-26: a Service changing type (ExternalName → ClusterIP) is answered with its new records within 1 s', async () => {
    const api = await cluster();
    api.add({ kind: 'Service', metadata: { name: 'ext', namespace: 'demo' }, spec: { type: 'ExternalName', externalName: 'kubernetes.default.svc.cluster.local' } });
    const { port } = await startDns(corefile(api));
    const name = 'ext.demo.svc.cluster.local';
    const cname = await ask(port, name, 'A');
    expect(cname.answers!.map((r) => `${r.type} ${String((r as { data: unknown }).data)}`)).toEqual([
      'CNAME kubernetes.default.svc.cluster.local',
      'A 10.96.0.1',
    ]);
    api.update(clusterIPService('demo', 'ext', '10.96.10.30'));
    await answersWithin(port, name, 'A', (reply) => reply.rcode === 'NOERROR' && reply.answers!.map((r) => r.type).join() === 'A' && data(reply)[0] === '10.96.10.30', WITHIN_MS);
  });

  test('K8S-16/K8S-18/K8S-20/K8S-21: a headless Service follows its EndpointSlices (not ready → gone, new StatefulSet pod → resolves)', async () => {
    const api = await cluster();
    api.add(headlessService('demo', 'db'));
    api.add(endpointSlice('demo', 'db-abcde', 'db', [
      { ip: '10.244.1.10', hostname: 'db-0', pod: 'db-0' },
      { ip: '10.244.1.11', hostname: 'db-1', pod: 'db-1' },
    ]));
    const { port } = await startDns(corefile(api));
    const DB = 'db.demo.svc.cluster.local';
    const within = (name: string, type: string, expected: Parameters<typeof answersWithin>[3]) => answersWithin(port, name, type, expected, WITHIN_MS);

    expect(data(await ask(port, DB))).toEqual(['10.244.1.10', '10.244.1.11']);
    expect(data(await ask(port, `db-1.${DB}`))).toEqual(['10.244.1.11']);
    expect(data(await ask(port, `_pg._tcp.${DB}`, 'SRV'))).toEqual([`0 50 5432 db-0.${DB}`, `0 50 5432 db-1.${DB}`]);

    // db-1 stops being ready: it leaves the A, SRV and per-pod answers.
    api.update(endpointSlice('demo', 'db-abcde', 'db', [
      { ip: '10.244.1.10', hostname: 'db-0', pod: 'db-0' },
      { ip: '10.244.1.11', hostname: 'db-1', pod: 'db-1', ready: false },
    ]));
    await Promise.all([
      within(DB, 'A', is.answer('10.244.1.10')),
      within(`db-1.${DB}`, 'A', is.rcode('NXDOMAIN')),
      within(`_pg._tcp.${DB}`, 'SRV', is.answer(`0 100 5432 db-0.${DB}`)),
      within(reverse('10.244.1.11'), 'PTR', is.rcode('NXDOMAIN')),
    ]);

    // The StatefulSet scales up: db-2 appears in the same slice, db-3 in a second slice of the Service.
    api.update(endpointSlice('demo', 'db-abcde', 'db', [
      { ip: '10.244.1.10', hostname: 'db-0', pod: 'db-0' },
      { ip: '10.244.1.11', hostname: 'db-1', pod: 'db-1', ready: false },
      { ip: '10.244.1.12', hostname: 'db-2', pod: 'db-2' },
    ]));
    api.add(endpointSlice('demo', 'db-fghij', 'db', [{ ip: '10.244.2.13', hostname: 'db-3', pod: 'db-3' }]));
    await Promise.all([
      within(`db-2.${DB}`, 'A', is.answer('10.244.1.12')),
      within(`db-3.${DB}`, 'A', is.answer('10.244.2.13')),
      within(DB, 'A', is.answer('10.244.1.10', '10.244.1.12', '10.244.2.13')),
      within(reverse('10.244.1.12'), 'PTR', is.answer(`db-2.${DB}`)),
      within(`_pg._tcp.${DB}`, 'SRV', is.answer(`0 33 5432 db-0.${DB}`, `0 33 5432 db-2.${DB}`, `0 33 5432 db-3.${DB}`)),
    ]);

    // The second slice goes away; then the last ready endpoint of the first: no ready address left is NXDOMAIN (K8S-17).
    api.delete({ kind: 'EndpointSlice', metadata: { name: 'db-fghij', namespace: 'demo' } });
    await within(`db-3.${DB}`, 'A', is.rcode('NXDOMAIN'));
    api.update(endpointSlice('demo', 'db-abcde', 'db', [
      { ip: '10.244.1.10', hostname: 'db-0', pod: 'db-0', ready: false },
      { ip: '10.244.1.11', hostname: 'db-1', pod: 'db-1', ready: false },
      { ip: '10.244.1.12', hostname: 'db-2', pod: 'db-2', ready: false },
    ]));
    await within(DB, 'A', is.rcode('NXDOMAIN'));
  });
});
