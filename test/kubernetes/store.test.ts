// The cluster index (KP-28): compact records, the indexes answers read, the
// generation every mutation bumps, and the address helpers behind them.

import { describe, expect, it } from 'vitest';
import { addressFromReverse, canonicalIP, isReverseZone, reverseName } from '../../plugins/kubernetes/reverse.ts';
import { dashedAddress } from '../../plugins/kubernetes/answer.ts';
import { ClusterIndex } from '../../plugins/kubernetes/store.ts';
import { clusterIP, endpoint, externalName, headless, port, slice } from './plugin.harness.ts';

describe('ClusterIndex', () => {
  it('KP-28: services are looked up by (namespace, name)', () => {
    const store = new ClusterIndex();
    store.upsertService(clusterIP('ns', 'web', ['10.0.0.1']));
    expect(store.service('ns', 'web')?.clusterIPs).toEqual(['10.0.0.1']);
    expect(store.service('ns', 'other')).toBeUndefined();
    expect(store.service('other', 'web')).toBeUndefined();
  });

  it('every mutation bumps the generation', () => {
    const store = new ClusterIndex();
    const seen = [store.generation];
    store.upsertNamespace({ name: 'ns' });
    seen.push(store.generation);
    store.upsertService(clusterIP('ns', 'web', ['10.0.0.1']));
    seen.push(store.generation);
    store.upsertEndpointSlice(slice('ns', 'web', 'web-a', [endpoint('10.1.0.1')]));
    seen.push(store.generation);
    store.upsertPod({ namespace: 'ns', name: 'p', ip: '10.1.0.1' });
    seen.push(store.generation);
    store.deletePod('ns', 'p');
    seen.push(store.generation);
    store.deleteEndpointSlice('ns', 'web-a');
    seen.push(store.generation);
    store.deleteService('ns', 'web');
    seen.push(store.generation);
    store.deleteNamespace('ns');
    seen.push(store.generation);
    store.replaceAll('Service', []);
    seen.push(store.generation);
    store.markSynced();
    seen.push(store.generation);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('K8S-30: the serial is the time of the last Service/EndpointSlice/Pod change', () => {
    let now = 1_700_000_000_000;
    const store = new ClusterIndex({ now: () => now });
    expect(store.serial).toBe(1_700_000_000);
    now += 5000;
    store.upsertNamespace({ name: 'ns' });
    expect(store.serial).toBe(1_700_000_000);
    store.upsertService(clusterIP('ns', 'web', ['10.0.0.1']));
    expect(store.serial).toBe(1_700_000_005);
  });

  it('KP-28/K8S-22: the cluster-IP index follows updates and deletes', () => {
    const store = new ClusterIndex();
    store.upsertService(clusterIP('ns', 'web', ['10.0.0.1', 'FD00:0:0:0:0:0:0:1']));
    expect(store.servicesByClusterIP('10.0.0.1').map((service) => service.name)).toEqual(['web']);
    expect(store.servicesByClusterIP('fd00::1').map((service) => service.name)).toEqual(['web']);
    store.upsertService(clusterIP('ns', 'web', ['10.0.0.2']));
    expect(store.servicesByClusterIP('10.0.0.1')).toEqual([]);
    expect(store.servicesByClusterIP('fd00::1')).toEqual([]);
    expect(store.servicesByClusterIP('10.0.0.2')).toHaveLength(1);
    store.deleteService('ns', 'web');
    expect(store.servicesByClusterIP('10.0.0.2')).toEqual([]);
  });

  it('headless and ExternalName Services keep no cluster IPs', () => {
    const store = new ClusterIndex();
    store.upsertService({ ...headless('ns', 'h'), clusterIPs: ['None'] });
    store.upsertService(externalName('ns', 'e', 'example.org'));
    expect(store.service('ns', 'h')?.clusterIPs).toEqual([]);
    expect(store.service('ns', 'e')?.clusterIPs).toEqual([]);
    expect(store.servicesByClusterIP('None')).toEqual([]);
  });

  it('K8S-15: only ready endpoints are kept; addresses are canonical', () => {
    const store = new ClusterIndex();
    store.upsertEndpointSlice(
      slice('ns', 'web', 'web-a', [endpoint('10.1.0.1'), endpoint('10.1.0.2', { ready: false }), endpoint('FD00::0001'), endpoint('::ffff:10.1.0.3'), endpoint('not-an-ip')]),
    );
    const [kept] = store.slicesFor('ns', 'web');
    expect(kept!.addresses).toEqual(['10.1.0.1', 'fd00::1', '10.1.0.3']);
    expect([kept!.hostnames, kept!.podNames]).toEqual([null, null]);
    expect(store.counts().readyAddresses).toBe(3);
  });

  it('K8S-18: hostnames and pod names stay aligned with the flattened addresses', () => {
    const store = new ClusterIndex();
    store.upsertEndpointSlice(
      slice('ns', 'web', 'web-a', [
        endpoint('10.1.0.1', { podName: 'p1' }),
        { addresses: ['10.1.0.2', '10.1.0.3'], ready: true, hostname: 'web-1', podName: null, zone: null },
        endpoint('10.1.0.4', { hostname: 'web-2', podName: 'p4' }),
      ]),
    );
    const [kept] = store.slicesFor('ns', 'web');
    expect(kept!.addresses).toEqual(['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4']);
    expect(kept!.hostnames).toEqual([null, 'web-1', 'web-1', 'web-2']);
    expect(kept!.podNames).toEqual(['p1', null, null, 'p4']);
  });

  it('KP-28/K8S-21: slices are grouped by service name and indexed by endpoint IP', () => {
    const store = new ClusterIndex();
    store.upsertEndpointSlice(slice('ns', 'web', 'web-a', [endpoint('10.1.0.1')]));
    store.upsertEndpointSlice(slice('ns', 'web', 'web-b', [endpoint('10.1.0.2')]));
    store.upsertEndpointSlice(slice('ns', 'api', 'api-a', [endpoint('10.1.0.1')]));
    expect(store.slicesFor('ns', 'web').map((s) => s.name)).toEqual(['web-a', 'web-b']);
    expect(store.slicesByEndpointIP('10.1.0.1').map((s) => s.name)).toEqual(['web-a', 'api-a']);
    // An update replaces the slice in place of the old one.
    store.upsertEndpointSlice(slice('ns', 'web', 'web-a', [endpoint('10.1.0.9')]));
    expect(store.slicesByEndpointIP('10.1.0.1').map((s) => s.name)).toEqual(['api-a']);
    expect(store.slicesByEndpointIP('10.1.0.9').map((s) => s.name)).toEqual(['web-a']);
    expect(store.slicesFor('ns', 'web').map((s) => s.name)).toEqual(['web-b', 'web-a']);
    store.deleteEndpointSlice('ns', 'web-a');
    store.deleteEndpointSlice('ns', 'web-b');
    expect(store.slicesFor('ns', 'web')).toEqual([]);
    expect(store.slicesByEndpointIP('10.1.0.9')).toEqual([]);
  });

  it('a slice that moves to another service leaves the old group', () => {
    const store = new ClusterIndex();
    store.upsertEndpointSlice(slice('ns', 'web', 'shared', [endpoint('10.1.0.1')]));
    store.upsertEndpointSlice(slice('ns', 'api', 'shared', [endpoint('10.1.0.1')]));
    expect(store.slicesFor('ns', 'web')).toEqual([]);
    expect(store.slicesFor('ns', 'api')).toHaveLength(1);
    expect(store.slicesByEndpointIP('10.1.0.1')).toHaveLength(1);
  });

  it('beginReplace: listed records are served as they arrive; commit removes the rest', () => {
    const store = new ClusterIndex();
    store.upsertService(clusterIP('ns', 'a', ['10.0.0.1']));
    store.upsertService(clusterIP('ns', 'b', ['10.0.0.2']));
    store.upsertEndpointSlice(slice('ns', 'a', 'a-1', [endpoint('10.1.0.1')]));
    store.upsertEndpointSlice(slice('ns', 'b', 'b-1', [endpoint('10.1.0.2')]));
    store.upsertNamespace({ name: 'x' });
    store.upsertPod({ namespace: 'ns', name: 'p', ip: '10.2.0.1' });
    const unchanged = store.service('ns', 'b');
    const unchangedSlice = store.slicesFor('ns', 'b')[0];
    const services = store.beginReplace('Service');
    const generation = store.generation;
    services.add(clusterIP('ns', 'b', ['10.0.0.2']));
    services.add(clusterIP('ns', 'c', ['10.0.0.3']));
    expect(store.generation).toBeGreaterThan(generation);
    // Before commit: the new record is there, and so is the one the list has not reached (or lacks).
    expect(store.service('ns', 'c')?.clusterIPs).toEqual(['10.0.0.3']);
    expect(store.service('ns', 'a')).toBeDefined();
    services.commit();
    expect(store.service('ns', 'a')).toBeUndefined();
    expect(store.servicesByClusterIP('10.0.0.1')).toEqual([]);
    // An unchanged record keeps its instance (a re-list allocates nothing that survives).
    expect(store.service('ns', 'b')).toBe(unchanged);
    const slices = store.beginReplace('EndpointSlice');
    slices.add(slice('ns', 'b', 'b-1', [endpoint('10.1.0.2')]));
    slices.add(slice('ns', 'c', 'c-1', [endpoint('10.1.0.3')]));
    slices.commit();
    expect(store.slicesFor('ns', 'a')).toEqual([]);
    expect(store.slicesByEndpointIP('10.1.0.1')).toEqual([]);
    expect(store.slicesFor('ns', 'b')[0]).toBe(unchangedSlice);
    expect(store.slicesByEndpointIP('10.1.0.3').map((s) => s.name)).toEqual(['c-1']);
    const changed = store.beginReplace('EndpointSlice');
    changed.add(slice('ns', 'b', 'b-1', [endpoint('10.1.0.4')]));
    changed.commit();
    expect(store.slicesFor('ns', 'b')[0]!.addresses).toEqual(['10.1.0.4']);
    expect(store.slicesByEndpointIP('10.1.0.2')).toEqual([]);
    expect(store.slicesFor('ns', 'c')).toEqual([]);
    const namespaces = store.beginReplace('Namespace');
    namespaces.add({ name: 'y' });
    expect([store.hasNamespace('x'), store.hasNamespace('y')]).toEqual([true, true]);
    namespaces.commit();
    expect([store.hasNamespace('x'), store.hasNamespace('y')]).toEqual([false, true]);
    const pods = store.beginReplace('Pod');
    pods.add({ namespace: 'ns', name: 'q', ip: '10.2.0.2' });
    pods.commit();
    expect(store.podsWithIP('10.2.0.1')).toEqual([]);
    expect(store.podsWithIP('10.2.0.2')).toHaveLength(1);
    expect(store.counts()).toEqual({ services: 2, endpointSlices: 1, readyAddresses: 1, namespaces: 1, pods: 1 });
  });

  it('beginReplace: a session never committed (the list failed) removes nothing', () => {
    const store = new ClusterIndex();
    store.upsertService(clusterIP('ns', 'a', ['10.0.0.1']));
    store.beginReplace('Service').add(clusterIP('ns', 'b', ['10.0.0.2']));
    const retry = store.beginReplace('Service');
    retry.add(clusterIP('ns', 'a', ['10.0.0.1']));
    retry.commit();
    expect(store.service('ns', 'a')).toBeDefined();
    expect(store.service('ns', 'b')).toBeUndefined();
  });

  it('replaceAll removes objects missing from the new list', () => {
    const store = new ClusterIndex();
    store.upsertService(clusterIP('ns', 'a', ['10.0.0.1']));
    store.upsertService(clusterIP('ns', 'b', ['10.0.0.2']));
    store.replaceAll('Service', [clusterIP('ns', 'b', ['10.0.0.3'])]);
    expect(store.service('ns', 'a')).toBeUndefined();
    expect(store.servicesByClusterIP('10.0.0.2')).toEqual([]);
    expect(store.servicesByClusterIP('10.0.0.3')).toHaveLength(1);
    store.upsertEndpointSlice(slice('ns', 'b', 'b-1', [endpoint('10.1.0.1')]));
    store.replaceAll('EndpointSlice', []);
    expect(store.slicesFor('ns', 'b')).toEqual([]);
    expect(store.slicesByEndpointIP('10.1.0.1')).toEqual([]);
    store.upsertNamespace({ name: 'x' });
    store.replaceAll('Namespace', [{ name: 'y' }]);
    expect([store.hasNamespace('x'), store.hasNamespace('y')]).toEqual([false, true]);
    store.upsertPod({ namespace: 'ns', name: 'p', ip: '10.2.0.1' });
    store.replaceAll('Pod', [{ namespace: 'ns', name: 'q', ip: '10.2.0.2' }]);
    expect(store.podsWithIP('10.2.0.1')).toEqual([]);
    expect(store.podsWithIP('10.2.0.2')).toHaveLength(1);
  });

  it('KP-9: pods are indexed by IP and removed by name', () => {
    const store = new ClusterIndex();
    store.upsertPod({ namespace: 'a', name: 'p', ip: '10.2.0.1' });
    store.upsertPod({ namespace: 'b', name: 'p', ip: '10.2.0.1' });
    expect(store.podsWithIP('10.2.0.1').map((pod) => pod.namespace)).toEqual(['a', 'b']);
    store.upsertPod({ namespace: 'a', name: 'p', ip: '10.2.0.2' });
    expect(store.podsWithIP('10.2.0.1').map((pod) => pod.namespace)).toEqual(['b']);
    store.deletePod('b', 'p');
    expect(store.podsWithIP('10.2.0.1')).toEqual([]);
    expect(store.counts().pods).toBe(1);
  });

  it('memory: port lists and namespace names are shared between objects', () => {
    const store = new ClusterIndex();
    for (let i = 0; i < 3; i++) store.upsertService(clusterIP('ns', `web${i}`, [`10.0.0.${i + 1}`], [port('http', 80)]));
    const [a, b] = [store.service('ns', 'web0')!, store.service('ns', 'web1')!];
    expect(a.ports).toBe(b.ports);
    expect(Object.isFrozen(a.ports)).toBe(true);
    store.upsertEndpointSlice(slice('ns', 'web0', 'web0-a', [endpoint('10.1.0.1')], [port('http', 80)]));
    expect(store.slicesFor('ns', 'web0')[0]!.ports).toBe(a.ports);
  });

  it('memory: endpoint pod names are dropped unless endpoint_pod_names needs them', () => {
    const lean = new ClusterIndex({ keepPodNames: false });
    lean.upsertEndpointSlice(slice('ns', 'web', 'web-a', [endpoint('10.1.0.1', { podName: 'web-abc' })]));
    expect(lean.slicesFor('ns', 'web')[0]!.podNames).toBeNull();
    const full = new ClusterIndex({ keepPodNames: true });
    full.upsertEndpointSlice(slice('ns', 'web', 'web-a', [endpoint('10.1.0.1', { podName: 'web-abc' })]));
    expect(full.slicesFor('ns', 'web')[0]!.podNames).toEqual(['web-abc']);
  });

  it('KP-24: whenSynced runs at the first markSynced, or at once after it', () => {
    const store = new ClusterIndex();
    const calls: string[] = [];
    store.whenSynced(() => calls.push('early'));
    expect(calls).toEqual([]);
    store.markSynced();
    store.markSynced();
    store.whenSynced(() => calls.push('late'));
    expect(calls).toEqual(['early', 'late']);
    expect(store.synced).toBe(true);
  });

  it('counts reports what the index holds', () => {
    const store = new ClusterIndex();
    store.upsertNamespace({ name: 'ns' });
    store.upsertService(clusterIP('ns', 'web', ['10.0.0.1']));
    store.upsertEndpointSlice(slice('ns', 'web', 'web-a', [endpoint('10.1.0.1'), endpoint('10.1.0.2')]));
    expect(store.counts()).toEqual({ services: 1, endpointSlices: 1, readyAddresses: 2, namespaces: 1, pods: 0 });
  });
});

describe('address helpers', () => {
  it('KP-33: canonicalIP prints addresses as Go does (RFC 5952, IPv4-mapped as IPv4)', () => {
    expect(canonicalIP('10.0.0.1')).toBe('10.0.0.1');
    expect(canonicalIP('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIP('1:0:0:1:0:0:0:1')).toBe('1:0:0:1::1');
    expect(canonicalIP('1:0:0:1:1:0:0:1')).toBe('1::1:1:0:0:1');
    expect(canonicalIP('1:0:1:1:1:1:1:1')).toBe('1:0:1:1:1:1:1:1');
    expect(canonicalIP('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(canonicalIP('::')).toBe('::');
    for (const bad of ['10.0.0.01', '10.0.0', 'fe80::1%eth0', 'example.org', '']) expect(canonicalIP(bad), bad).toBeNull();
  });

  it('KP-37: addressFromReverse reads full reverse names only', () => {
    expect(addressFromReverse('4.3.2.1.in-addr.arpa.')).toBe('1.2.3.4');
    expect(addressFromReverse(reverseName('fd00::2'))).toBe('fd00::2');
    expect(reverseName('fd00::2')).toBe('2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.');
    for (const partial of ['3.2.1.in-addr.arpa.', '5.4.3.2.1.in-addr.arpa.', '04.3.2.1.in-addr.arpa.', 'x.3.2.1.in-addr.arpa.', '0.0.d.f.ip6.arpa.', 'in-addr.arpa.', 'svc.cluster.local.']) {
      expect(addressFromReverse(partial), partial).toBeNull();
    }
    expect(addressFromReverse(`g${reverseName('fd00::2').slice(1)}`)).toBeNull();
    expect(addressFromReverse(`12.${reverseName('fd00::2').slice(2)}`)).toBeNull();
  });

  it('KP-1: reverse zones are in-addr.arpa., ip6.arpa. and names below them', () => {
    expect(isReverseZone('in-addr.arpa.')).toBe(true);
    expect(isReverseZone('0.96.10.in-addr.arpa.')).toBe(true);
    expect(isReverseZone('ip6.arpa.')).toBe(true);
    expect(isReverseZone('arpa.')).toBe(false);
    expect(isReverseZone('cluster.local.')).toBe(false);
  });

  it('K8S-18: dashed endpoint names for IPv4 and IPv6', () => {
    expect(dashedAddress('10.1.2.3')).toBe('10-1-2-3');
    expect(dashedAddress('2001:db8::1')).toBe('2001-db8--1');
    expect(dashedAddress('fd00:1::')).toBe('fd00-1--0');
    expect(dashedAddress('::1')).toBe('--1');
  });
});
