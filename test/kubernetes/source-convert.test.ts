// API objects → compact records (plugins/kubernetes/convert.ts), shared by
// the API source and the manifests source.

import { describe, expect, test } from 'vitest';
import {
  endpointsToSliceRecords,
  isTerminating,
  normalizeIP,
  toEndpointSliceRecord,
  toNamespaceRecord,
  toPodRecord,
  toServiceRecord,
} from '../../plugins/kubernetes/convert.ts';

function slice(extra: Record<string, unknown> = {}, labels: Record<string, string> = { 'kubernetes.io/service-name': 'Web' }) {
  return {
    metadata: { name: 'Web-X1', namespace: 'Demo', labels },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.1'] }],
    ports: [{ name: 'HTTP', port: 80, protocol: 'TCP' }],
    ...extra,
  };
}

describe('convert: IP addresses', () => {
  test('KP-33: IPv4-mapped IPv6 is IPv4; IPv6 is written in RFC 5952 form; junk is rejected', () => {
    expect(normalizeIP('10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeIP('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeIP('::FFFF:a01:203')).toBe('10.1.2.3');
    expect(normalizeIP('0:0:0:0:0:ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeIP('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(normalizeIP('fd00:0:0:1:0:0:0:0')).toBe('fd00:0:0:1::');
    expect(normalizeIP('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(normalizeIP('::')).toBe('::');
    expect(normalizeIP('::1')).toBe('::1');
    expect(normalizeIP('10.0.0.256')).toBeNull();
    expect(normalizeIP('example.com')).toBeNull();
    expect(normalizeIP('fe80::1%eth0')).toBeNull();
  });
});

describe('convert: Services', () => {
  test('names lowercased; clusterIPs preferred over clusterIP; headless; ports lowercased with TCP default', () => {
    expect(
      toServiceRecord({
        metadata: { name: 'Web', namespace: 'Demo' },
        spec: { clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5', '2001:DB8::5'], ports: [{ name: 'HTTP', port: 80 }, { port: 53, protocol: 'UDP' }] },
      }),
    ).toEqual({
      namespace: 'demo',
      name: 'web',
      clusterIPs: ['10.96.0.5', '2001:db8::5'],
      headless: false,
      externalName: null,
      ports: [
        { name: 'http', protocol: 'tcp', port: 80 },
        { name: '', protocol: 'udp', port: 53 },
      ],
    });
    expect(toServiceRecord({ metadata: { name: 'db' }, spec: { clusterIP: 'None', clusterIPs: ['None'] } })).toMatchObject({
      namespace: 'default',
      headless: true,
      clusterIPs: [],
    });
    expect(toServiceRecord({ metadata: { name: 'x', namespace: 'y' }, spec: { clusterIP: '10.96.0.6' } }).clusterIPs).toEqual(['10.96.0.6']);
  });

  test('K8S-23: ExternalName keeps the name as stored and has no cluster IPs', () => {
    expect(
      toServiceRecord({ metadata: { name: 's', namespace: 'n' }, spec: { type: 'ExternalName', externalName: 'WWW.Example.com', clusterIP: '' } }),
    ).toEqual({ namespace: 'n', name: 's', clusterIPs: [], headless: false, externalName: 'WWW.Example.com', ports: [] });
  });

  test('malformed fields throw with the field path', () => {
    expect(() => toServiceRecord({ metadata: { name: 's' }, spec: { ports: [{ port: 0 }] } })).toThrow('spec.ports[0].port: expected a port number (1-65535), got 0');
    expect(() => toServiceRecord({ metadata: { name: 's' }, spec: { clusterIP: '10.96.0.300' } })).toThrow('spec.clusterIP: "10.96.0.300" is not an IP address');
    expect(() => toServiceRecord({ metadata: {} })).toThrow('metadata.name: missing');
    expect(() => toServiceRecord({ metadata: { name: 's' }, spec: { type: 'ExternalName' } })).toThrow('spec.externalName: required');
  });
});

describe('convert: EndpointSlices', () => {
  test('K8S-15: ready unless conditions.ready is false (absent and null count as ready); serving/terminating ignored', () => {
    const record = toEndpointSliceRecord(
      slice({
        endpoints: [
          { addresses: ['10.0.0.1'] },
          { addresses: ['10.0.0.2'], conditions: { ready: null } },
          { addresses: ['10.0.0.3'], conditions: { ready: true, serving: false } },
          { addresses: ['10.0.0.4'], conditions: { ready: false, serving: true, terminating: true } },
        ],
      }),
    )!;
    expect(record.endpoints.map((e) => e.ready)).toEqual([true, true, true, false]);
  });

  test('K8S-18/KP-10/KP-40: hostname, targetRef pod name (Pods only), zone; names lowercased', () => {
    const record = toEndpointSliceRecord(
      slice({
        endpoints: [
          { addresses: ['10.0.0.1'], hostname: 'Web-0', targetRef: { kind: 'Pod', name: 'web-0', namespace: 'demo' }, zone: 'zone-a' },
          { addresses: ['10.0.0.2'], targetRef: { kind: 'Node', name: 'node-1' } },
          { addresses: [] },
        ],
      }),
    )!;
    expect(record).toMatchObject({ namespace: 'demo', name: 'web-x1', serviceName: 'web', ports: [{ name: 'http', protocol: 'tcp', port: 80 }] });
    expect(record.endpoints).toEqual([
      { addresses: ['10.0.0.1'], ready: true, hostname: 'web-0', podName: 'web-0', zone: 'zone-a' },
      { addresses: ['10.0.0.2'], ready: true, hostname: null, podName: null, zone: null },
    ]);
  });

  test('KP-33/KP-22: FQDN slices and slices without kubernetes.io/service-name give no record', () => {
    expect(toEndpointSliceRecord(slice({ addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }] }))).toBeNull();
    expect(toEndpointSliceRecord(slice({}, {}))).toBeNull();
  });

  test('KP-33: an IPv6 slice of IPv4-mapped addresses counts as IPv4; ports without a number are skipped', () => {
    const record = toEndpointSliceRecord(slice({ addressType: 'IPv6', endpoints: [{ addresses: ['::ffff:10.9.8.7'] }], ports: [{ name: 'all' }, { port: 53, protocol: 'UDP' }] }))!;
    expect(record.addressType).toBe('IPv4');
    expect(record.endpoints[0]!.addresses).toEqual(['10.9.8.7']);
    expect(record.ports).toEqual([{ name: '', protocol: 'udp', port: 53 }]);
    const v6 = toEndpointSliceRecord(slice({ addressType: 'IPv6', endpoints: [{ addresses: ['2001:DB8::7'] }] }))!;
    expect(v6.addressType).toBe('IPv6');
    expect(v6.endpoints[0]!.addresses).toEqual(['2001:db8::7']);
  });

  test('KP-41: last-change-trigger-time in ms, or null when absent or unparsable', () => {
    const at = (value: string | undefined) =>
      toEndpointSliceRecord({
        ...slice(),
        metadata: { name: 'x', namespace: 'y', labels: { 'kubernetes.io/service-name': 's' }, annotations: value ? { 'endpoints.kubernetes.io/last-change-trigger-time': value } : {} },
      })!.lastChangeTriggerTime;
    expect(at('2024-05-06T07:08:09Z')).toBe(Date.UTC(2024, 4, 6, 7, 8, 9));
    expect(at(undefined)).toBeNull();
    expect(at('yesterday')).toBeNull();
  });

  test('an IPv4 slice with an IPv6 address is malformed', () => {
    expect(() => toEndpointSliceRecord(slice({ endpoints: [{ addresses: ['2001:db8::1'] }] }))).toThrow('endpoints[0].addresses[0]: "2001:db8::1" is not an IPv4 address');
  });
});

describe('convert: Endpoints, Pods, Namespaces', () => {
  test('core/v1 Endpoints → one slice per subset and family; notReadyAddresses are not ready', () => {
    const records = endpointsToSliceRecords({
      metadata: { name: 'legacy', namespace: 'demo' },
      subsets: [
        {
          addresses: [{ ip: '10.0.0.1', hostname: 'a', targetRef: { kind: 'Pod', name: 'legacy-a' } }, { ip: '2001:db8::1' }],
          notReadyAddresses: [{ ip: '10.0.0.2' }],
          ports: [{ name: 'http', port: 8080 }],
        },
      ],
    });
    expect(records.map((r) => [r.name, r.serviceName, r.addressType, r.endpoints.map((e) => [e.addresses[0], e.ready, e.hostname, e.podName])])).toEqual([
      ['legacy-0-ipv4', 'legacy', 'IPv4', [['10.0.0.1', true, 'a', 'legacy-a'], ['10.0.0.2', false, null, null]]],
      ['legacy-0-ipv6', 'legacy', 'IPv6', [['2001:db8::1', true, null, null]]],
    ]);
    expect(records[0]!.ports).toEqual([{ name: 'http', protocol: 'tcp', port: 8080 }]);
  });

  test('KP-9: a Pod record has the primary IP only; no IP yet → no record; deletionTimestamp → terminating', () => {
    const pod = { metadata: { name: 'P', namespace: 'N' }, status: { podIP: '10.244.0.5', podIPs: [{ ip: '10.244.0.5' }, { ip: 'fd00::5' }] } };
    expect(toPodRecord(pod)).toEqual({ namespace: 'n', name: 'p', ip: '10.244.0.5' });
    expect(toPodRecord({ metadata: { name: 'p' }, status: { phase: 'Pending' } })).toBeNull();
    expect(isTerminating(pod)).toBe(false);
    expect(isTerminating({ metadata: { name: 'p', deletionTimestamp: '2024-01-01T00:00:00Z' } })).toBe(true);
    expect(isTerminating({ metadata: { name: 'p', deletionTimestamp: new Date() } })).toBe(true); // client-node's typed objects
  });

  test('namespaces are lowercased', () => {
    expect(toNamespaceRecord({ metadata: { name: 'Demo' } })).toEqual({ name: 'demo' });
  });
});
