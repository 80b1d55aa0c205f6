// The manifests source: the example cluster, the endpoint-controller
// derivation rules, bad manifests and change detection, on real files.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import {
  createManifestsSource,
  loadManifests,
  type ManifestCluster,
  type ManifestsSourceTuning,
} from '../../plugins/kubernetes/manifests-source.ts';
import type { ClusterSource, EndpointSliceRecord, SourceOptions } from '../../plugins/kubernetes/model.ts';
import type { Logger } from '../../src/log.ts';
import { RecordingStore, waitFor } from '../support/apiserver.ts';

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/cluster');
const FAST: Partial<ManifestsSourceTuning> = { pollIntervalMs: 50, debounceMs: 20 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function options(overrides: Partial<SourceOptions> = {}): SourceOptions {
  return { labelSelector: null, namespaceLabelSelector: null, watchPods: true, watchEndpoints: true, ...overrides };
}

function tempDir(files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-manifests-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    log: {
      info: (m) => lines.push(`[INFO] ${m}`),
      warning: (m) => lines.push(`[WARNING] ${m}`),
      error: (m) => lines.push(`[ERROR] ${m}`),
      debug: (m) => lines.push(`[DEBUG] ${m}`),
      write: (level, m) => lines.push(`[${level}] ${m}`),
    },
  };
}

async function startSource(
  paths: string[],
  overrides: Partial<SourceOptions> = {},
  tuning: Partial<ManifestsSourceTuning> = {},
): Promise<{ source: ClusterSource; store: RecordingStore; lines: string[] }> {
  const { log, lines } = captureLog();
  const source = createManifestsSource(paths, options(overrides), log, { ...FAST, ...tuning });
  const store = new RecordingStore();
  await source.start(store);
  cleanups.push(() => source.stop());
  return { source, store, lines };
}

function load(files: Record<string, string>, overrides: Partial<SourceOptions> = {}): Promise<ManifestCluster> {
  return loadManifests([tempDir(files)], options(overrides));
}

function sliceFor(cluster: ManifestCluster, service: string, family = 'IPv4'): EndpointSliceRecord[] {
  return cluster.slices.filter((s) => s.serviceName === service && s.addressType === family);
}

/** [address, hostname, ready, podName] of every endpoint of a service's slices of one family. */
function endpoints(cluster: ManifestCluster, service: string, family = 'IPv4'): [string, string | null, boolean, string | null][] {
  return sliceFor(cluster, service, family).flatMap((s) => s.endpoints.map((e) => [e.addresses[0]!, e.hostname, e.ready, e.podName] as [string, string | null, boolean, string | null]));
}

const HEADLESS = (name: string, extra = '') => `
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  clusterIP: None
  selector: {app: ${name}}
  ports: [{name: http, port: 80, targetPort: 8080}]
${extra}`;

const POD = (name: string, app: string, extra = '', spec = '{containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}') => `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: demo, labels: {app: ${app}}}
spec: ${spec}
${extra}`;

describe('manifests source: the example cluster (examples/cluster)', () => {
  test('K8S-16/K8S-18/KP-22: loads the demo cluster and marks synced once', async () => {
    const { store, source, lines } = await startSource([EXAMPLES]);
    expect(store.syncedCount).toBe(1);
    expect(store.ops.at(-1)).toBe('markSynced');
    expect([...store.namespaces.keys()].sort()).toEqual(['default', 'demo', 'kube-node-lease', 'kube-public', 'kube-system']);

    expect(store.services.get('default/kubernetes')).toMatchObject({ clusterIPs: ['10.96.0.1'], ports: [{ name: 'https', protocol: 'tcp', port: 443 }] });
    expect(store.services.get('demo/web')).toMatchObject({ clusterIPs: ['10.96.100.10'], headless: false, ports: [{ name: 'http', port: 80 }] });
    expect(store.services.get('demo/db')).toMatchObject({ clusterIPs: [], headless: true });
    expect(store.services.get('demo/search')).toMatchObject({ externalName: 'www.example.com', clusterIPs: [] });
    expect(store.services.get('demo/dual')!.clusterIPs).toEqual(['10.96.100.30', 'fd00:10:96::30']);

    // web: two ready pods, named targetPort http → container port 8080.
    const web = store.slices.get('demo/web-ipv4')!;
    expect(web.ports).toEqual([{ name: 'http', protocol: 'tcp', port: 8080 }]);
    expect(web.endpoints.map((e) => [e.addresses[0], e.ready, e.hostname]).sort()).toEqual([
      ['10.244.1.11', true, null],
      ['10.244.2.12', true, null],
    ]);
    expect(store.slices.has('demo/web-ipv6')).toBe(false); // single-stack Service

    // db: StatefulSet pods db-0..2 with hostnames (db-0.db.demo.svc.cluster.local).
    const db = store.slices.get('demo/db-ipv4')!;
    expect(db.endpoints.map((e) => [e.hostname, e.podName, e.ready])).toEqual([
      ['db-0', 'db-0', true],
      ['db-1', 'db-1', true],
      ['db-2', 'db-2', true],
    ]);
    expect(db.ports).toEqual([{ name: 'postgres', protocol: 'tcp', port: 5432 }]);
    expect(new Set(db.endpoints.map((e) => e.addresses[0])).size).toBe(3);
    for (const e of db.endpoints) expect(e.addresses[0]).toMatch(/^10\.244\.\d+\.\d+$/);

    // dual: one slice per family from the web pods' podIPs.
    expect(store.slices.get('demo/dual-ipv6')!.endpoints.map((e) => e.addresses[0]).sort()).toEqual(['fd00:10:244::1:b', 'fd00:10:244::2:c']);
    // default/kubernetes: the EndpointSlice manifest as written.
    expect(store.slices.get('default/kubernetes')!.endpoints[0]!.addresses).toEqual(['172.18.0.2']);
    expect(store.pods.get('demo/db-0')!.ip).toBe(db.endpoints[0]!.addresses[0]);
    expect(store.slices.has('demo/search-ipv4')).toBe(false); // ExternalName: no endpoints

    expect(source.state()).toMatch(/^5 services, 5 endpoint slices, 5 namespaces, 5 pods from 6 files, loaded \d{4}-/);
    expect(lines[0]).toBe('[INFO] loaded 5 services, 5 endpoint slices, 5 namespaces, 5 pods from 6 files');
  });

  test('allocated addresses are deterministic: the same manifests give the same IPs', async () => {
    const a = await loadManifests([EXAMPLES], options());
    const b = await loadManifests([EXAMPLES], options());
    expect(a.slices).toEqual(b.slices);
    expect(a.pods).toEqual(b.pods);
  });
});

describe('manifests source: deriving EndpointSlices as the controller does', () => {
  test('K8S-18: an endpoint hostname needs spec.hostname and spec.subdomain equal to the Service name', async () => {
    const c = await load({
      'a.yaml': [
        HEADLESS('svc'),
        POD('both', 'svc', '', '{hostname: h1, subdomain: svc, containers: [{name: c, image: x}]}'),
        POD('other-subdomain', 'svc', '', '{hostname: h2, subdomain: elsewhere, containers: [{name: c, image: x}]}'),
        POD('no-hostname', 'svc', '', '{subdomain: svc, containers: [{name: c, image: x}]}'),
      ].join('\n---\n'),
    });
    const byPod = Object.fromEntries(endpoints(c, 'svc').map(([, hostname, , pod]) => [pod, hostname]));
    expect(byPod).toEqual({ both: 'h1', 'no-hostname': null, 'other-subdomain': null });
  });

  test('K8S-15: readiness from the Ready condition, absent status = ready, terminating = not ready; finished pods left out', async () => {
    const c = await load({
      'pods.yaml': [
        HEADLESS('svc'),
        POD('no-status', 'svc'),
        POD('ready', 'svc', 'status: {podIP: 10.244.9.1, conditions: [{type: Ready, status: "True"}]}'),
        POD('not-ready', 'svc', 'status: {podIP: 10.244.9.2, conditions: [{type: Ready, status: "False"}]}'),
        POD('done', 'svc', 'status: {phase: Succeeded, podIP: 10.244.9.3}'),
        POD('failed', 'svc', 'status: {phase: Failed, podIP: 10.244.9.4}'),
        `${POD('terminating', 'svc', 'status: {podIP: 10.244.9.5}')}`.replace('labels: {app: svc}}', 'labels: {app: svc}, deletionTimestamp: "2024-01-01T00:00:00Z"}'),
        POD('other-app', 'web'),
      ].join('\n---\n'),
    });
    const ready = Object.fromEntries(endpoints(c, 'svc').map(([, , r, pod]) => [pod, r]));
    expect(ready).toEqual({ 'no-status': true, ready: true, 'not-ready': false, terminating: false });
    // Pod records (pods verified) follow the API's phase field selector.
    expect(c.pods.map((p) => p.name).sort()).toEqual(['no-status', 'not-ready', 'other-app', 'ready', 'terminating']);
  });

  test('K8S-15: publishNotReadyAddresses makes every endpoint ready', async () => {
    const c = await load({
      'a.yaml': [
        HEADLESS('svc').replace('clusterIP: None', 'clusterIP: None\n  publishNotReadyAddresses: true'),
        POD('not-ready', 'svc', 'status: {podIP: 10.244.9.2, conditions: [{type: Ready, status: "False"}]}'),
      ].join('\n---\n'),
    });
    expect(endpoints(c, 'svc')).toEqual([['10.244.9.2', null, true, 'not-ready']]);
  });

  test('ports: named targetPort resolves per pod (pods without it get no such port), numeric and default targetPort', async () => {
    const c = await load({
      'a.yaml': `
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: demo}
spec:
  clusterIP: 10.96.5.5
  selector: {app: svc}
  ports:
    - {name: http, port: 80, targetPort: web}
    - {name: metrics, port: 9090, targetPort: 9100}
    - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: demo, labels: {app: svc}}
spec:
  containers: [{name: c, image: x, ports: [{name: web, containerPort: 8081}, {name: web, containerPort: 9999, protocol: UDP}]}]
status: {podIP: 10.244.0.21}
---
apiVersion: v1
kind: Pod
metadata: {name: old, namespace: demo, labels: {app: svc}}
spec:
  containers: [{name: c, image: x}]
status: {podIP: 10.244.0.22}
`,
    });
    const slices = sliceFor(c, 'svc');
    expect(slices.map((s) => [s.name, s.ports, s.endpoints.map((e) => e.podName)])).toEqual([
      [
        'svc-ipv4',
        [
          { name: 'http', protocol: 'tcp', port: 8081 },
          { name: 'metrics', protocol: 'tcp', port: 9100 },
          { name: 'dns', protocol: 'udp', port: 53 },
        ],
        ['new'],
      ],
      [
        'svc-ipv4-2',
        [
          { name: 'metrics', protocol: 'tcp', port: 9100 },
          { name: 'dns', protocol: 'udp', port: 53 },
        ],
        ['old'],
      ],
    ]);
  });

  test('StatefulSet: <name>-0..N-1 with hostname and subdomain, stable allocated IPs; a Pod manifest of the same name wins', async () => {
    const files = {
      'sts.yaml': `
${HEADLESS('nginx')}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, namespace: demo}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: demo, labels: {app: nginx}}
spec: {hostname: web-1, subdomain: nginx, containers: [{name: c, image: x}]}
status: {podIP: 10.244.77.1, conditions: [{type: Ready, status: "False"}]}
`,
    };
    const c = await load(files);
    const eps = endpoints(c, 'nginx');
    expect(eps.map(([, h, r, p]) => [p, h, r])).toEqual([
      ['web-0', 'web-0', true],
      ['web-1', 'web-1', false],
      ['web-2', 'web-2', true],
    ]);
    expect(eps[1]![0]).toBe('10.244.77.1');
    expect((await load(files)).slices).toEqual(c.slices);
  });

  test('cluster IPs: allocated in 10.96.0.0/12 without collisions, given ones kept; default/kubernetes gets 10.96.0.1; dual-stack policy gives both families', async () => {
    const services = Array.from({ length: 40 }, (_, i) => `
apiVersion: v1
kind: Service
metadata: {name: s${i}, namespace: demo}
spec: {ports: [{port: 80}]}`);
    const c = await load({
      'many.yaml': services.join('\n---\n'),
      'special.yaml': `
apiVersion: v1
kind: Service
metadata: {name: kubernetes, namespace: default}
spec: {ports: [{name: https, port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: fixed, namespace: demo}
spec: {clusterIP: 10.96.33.33, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: demo}
spec: {ipFamilyPolicy: PreferDualStack, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: v6only, namespace: demo}
spec: {ipFamilies: [IPv6], ports: [{port: 80}]}
`,
    });
    const ips = c.services.flatMap((s) => s.clusterIPs);
    expect(new Set(ips).size).toBe(ips.length);
    const get = (name: string) => c.services.find((s) => s.name === name)!.clusterIPs;
    expect(get('kubernetes')).toEqual(['10.96.0.1']);
    expect(get('fixed')).toEqual(['10.96.33.33']);
    expect(get('dual')).toHaveLength(2);
    expect(get('dual')[0]).toMatch(/^10\.(9[6-9]|10[0-9]|110|111)\./);
    expect(get('dual')[1]).toMatch(/^fd00:10:96::/);
    expect(get('v6only')).toHaveLength(1);
    expect(get('v6only')[0]).toMatch(/^fd00:10:96::/);
    for (const ip of ips.filter((ip) => ip.includes('.'))) {
      const [a, b] = ip.split('.').map(Number);
      expect(a).toBe(10);
      expect(b! >= 96 && b! <= 111).toBe(true);
    }
  });

  test('Endpoints (core/v1) become slices: addresses ready, notReadyAddresses not; EndpointSlice manifests take precedence', async () => {
    const c = await load({
      'ep.yaml': `
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: demo}
spec: {clusterIP: 10.96.9.9, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: legacy, namespace: demo}
subsets:
  - addresses: [{ip: 192.168.1.10, hostname: one, targetRef: {kind: Pod, name: legacy-a}}, {ip: "2001:db8::10"}]
    notReadyAddresses: [{ip: 192.168.1.11}]
    ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: both, namespace: demo}
subsets: [{addresses: [{ip: 192.168.2.1}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: both-abc, namespace: demo, labels: {kubernetes.io/service-name: both}}
addressType: IPv4
endpoints: [{addresses: [192.168.3.1]}]
`,
    });
    expect(endpoints(c, 'legacy')).toEqual([
      ['192.168.1.10', 'one', true, 'legacy-a'],
      ['192.168.1.11', null, false, null],
    ]);
    expect(endpoints(c, 'legacy', 'IPv6')).toEqual([['2001:db8::10', null, true, null]]);
    expect(sliceFor(c, 'legacy')[0]!.ports).toEqual([{ name: 'http', protocol: 'tcp', port: 8080 }]);
    expect(endpoints(c, 'both')).toEqual([['192.168.3.1', null, true, null]]);
  });

  test('KP-33: FQDN EndpointSlices are dropped; an IPv6 slice of IPv4-mapped addresses counts as IPv4', async () => {
    const c = await load({
      's.yaml': `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: f, namespace: demo, labels: {kubernetes.io/service-name: ext}}
addressType: FQDN
endpoints: [{addresses: [example.com]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: m, namespace: demo, labels: {kubernetes.io/service-name: mapped}}
addressType: IPv6
endpoints: [{addresses: ["::ffff:10.1.2.3"]}]
`,
    });
    expect(c.slices.map((s) => [s.name, s.addressType, s.endpoints[0]!.addresses])).toEqual([['m', 'IPv4', ['10.1.2.3']]]);
  });

  test('KP-15/KP-16: labels filter Services, slices (by their Service) and Pods; namespace_labels filter Namespaces', async () => {
    const c = await load(
      {
        'a.yaml': `
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {team: a}}
---
apiVersion: v1
kind: Service
metadata: {name: shown, namespace: team-a, labels: {dns: "yes"}}
spec: {clusterIP: None, selector: {app: x}}
---
apiVersion: v1
kind: Service
metadata: {name: hidden, namespace: team-a}
spec: {clusterIP: None, selector: {app: x}}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: team-a, labels: {app: x}}
spec: {containers: [{name: c, image: x}]}
`,
      },
      { labelSelector: 'dns=yes', namespaceLabelSelector: 'team in (a)' },
    );
    expect(c.services.map((s) => s.name)).toEqual(['shown']);
    expect(c.slices.map((s) => s.serviceName)).toEqual(['shown']);
    expect(c.pods).toEqual([]); // the pod lacks the dns=yes label
    expect(c.namespaces.map((n) => n.name)).toEqual(['team-a']);
    // kubernetes.io/metadata.name is on every namespace, as in a cluster.
    const byName = await load({ 'n.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n' }, { namespaceLabelSelector: 'kubernetes.io/metadata.name in (x,default)' });
    expect(byName.namespaces.map((n) => n.name)).toEqual(['default', 'x']);
  });
});

describe('manifests source: file formats', () => {
  test('kind: List (kubectl get -o yaml), JSON files, empty documents; other kinds ignored with one info line', async () => {
    const dir = tempDir({
      'dump.yaml': `
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: a, namespace: x}
    spec: {clusterIP: 10.96.1.1, ports: [{port: 80}]}
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: d, namespace: x}
---
---
`,
      'b.json': JSON.stringify({ apiVersion: 'v1', kind: 'ServiceList', items: [{ metadata: { name: 'b', namespace: 'x' }, kind: 'Service', spec: { clusterIP: '10.96.1.2' } }] }),
      'c.yml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n',
      'notes.txt': 'not a manifest',
    });
    const { store, lines } = await startSource([dir]);
    expect([...store.services.keys()].sort()).toEqual(['x/a', 'x/b']);
    expect(store.namespaces.has('x')).toBe(true);
    expect(lines).toContain('[INFO] ignoring 1 ConfigMap, 1 Deployment (only Namespace, Service, Pod, StatefulSet, EndpointSlice and Endpoints are read)');
  });

  test('single files as well as directories; a missing path fails start()', async () => {
    const dir = tempDir({ 'one.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: one}\nspec: {clusterIP: 10.96.7.7}\n' });
    const { store } = await startSource([path.join(dir, 'one.yaml')]);
    expect(store.services.get('default/one')!.clusterIPs).toEqual(['10.96.7.7']);
    const { log } = captureLog();
    await expect(createManifestsSource([path.join(dir, 'nope')], options(), log).start(new RecordingStore())).rejects.toThrow(
      `${path.join(dir, 'nope')}: no such file or directory`,
    );
  });
});

describe('manifests source: bad manifests', () => {
  const cases: [string, string, RegExp][] = [
    ['YAML syntax', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: Service\nmetadata: {name: [oops\n', /bad\.yaml: document 2: invalid YAML \(line \d+, column \d+\): /],
    ['missing kind', 'apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\nmetadata: {name: b}\n', /bad\.yaml: document 3: missing kind$/],
    [
      'bad port',
      'kind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b}\n---\nkind: Service\nmetadata: {name: web, namespace: demo}\nspec: {ports: [{port: http}]}\n',
      /bad\.yaml: document 3: Service demo\/web: spec\.ports\[0\]\.port: expected a port number \(1-65535\), got "http"$/,
    ],
    ['bad IP', 'kind: Pod\nmetadata: {name: p}\nstatus: {podIP: 10.0.0.300}\n', /bad\.yaml: document 1: Pod default\/p: status\.podIP: "10\.0\.0\.300" is not an IP address$/],
    ['no name', 'kind: Service\nmetadata: {}\n', /bad\.yaml: document 1: Service: metadata\.name: missing$/],
    ['List item', 'kind: List\nitems:\n  - kind: Service\n    metadata: {name: s}\n    spec: {type: ExternalName}\n', /bad\.yaml: document 1: items\[0\]: Service default\/s: spec\.externalName: required for type ExternalName$/],
    ['duplicate', 'kind: Service\nmetadata: {name: s}\n---\nkind: Service\nmetadata: {name: s}\n', /bad\.yaml: document 2: Service default\/s is already defined at .*bad\.yaml: document 1$/],
  ];
  for (const [what, text, message] of cases) {
    test(`start() fails naming file and document: ${what}`, async () => {
      const dir = tempDir({ 'bad.yaml': text });
      const { log } = captureLog();
      const store = new RecordingStore();
      await expect(createManifestsSource([dir], options(), log, FAST).start(store)).rejects.toThrow(message);
      expect(store.ops).toEqual([]);
    });
  }

  test('a bad edit is logged once and the last good state kept; the fix is picked up', async () => {
    const dir = tempDir({ 'svc.yaml': 'kind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.1.1}\n' });
    const { store, source, lines } = await startSource([dir]);
    const opsBefore = store.ops.length;
    fs.writeFileSync(path.join(dir, 'svc.yaml'), 'kind: Service\nmetadata: {name: web}\nspec: {clusterIP: nope}\n');
    await waitFor(() => lines.some((l) => l.startsWith('[ERROR]')), 'error logged');
    expect(lines.find((l) => l.startsWith('[ERROR]'))).toMatch(/svc\.yaml: document 1: Service default\/web: spec\.clusterIP: "nope" is not an IP address; keeping the last good state$/);
    expect(source.state()).toMatch(/is not an IP address; serving the last good state \(1 services/);
    expect(store.ops.length).toBe(opsBefore);
    expect(store.services.get('default/web')!.clusterIPs).toEqual(['10.96.1.1']);
    await new Promise((r) => setTimeout(r, 150)); // further polls: no repeated error
    expect(lines.filter((l) => l.startsWith('[ERROR]'))).toHaveLength(1);

    fs.writeFileSync(path.join(dir, 'svc.yaml'), 'kind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.1.2}\n');
    await waitFor(() => store.services.get('default/web')!.clusterIPs[0] === '10.96.1.2', 'fixed manifest loaded');
    expect(source.state()).not.toContain('last good state');
  });
});

describe('manifests source: change detection', () => {
  test('edits, new files and removed files reach the store through replaceAll (fs.watch)', async () => {
    const dir = tempDir({ 'a.yaml': 'kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.1.1}\n' });
    const { store } = await startSource([dir], {}, { pollIntervalMs: 0 });
    fs.writeFileSync(path.join(dir, 'b.yaml'), 'kind: Service\nmetadata: {name: b}\nspec: {clusterIP: 10.96.1.2}\n');
    await waitFor(() => store.services.has('default/b'), 'new file');
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.1.3}\n');
    await waitFor(() => store.services.get('default/a')?.clusterIPs[0] === '10.96.1.3', 'edited file');
    fs.rmSync(path.join(dir, 'b.yaml'));
    await waitFor(() => !store.services.has('default/b'), 'removed file');
    expect(store.ops.filter((op) => op.startsWith('deleteService'))).toEqual([]);
  });

  test('polling alone notices changes (no fs.watch), and only kinds that changed are replaced', async () => {
    const dir = tempDir({ 'a.yaml': 'kind: Service\nmetadata: {name: a, namespace: x}\nspec: {clusterIP: 10.96.1.1}\n' });
    const { store } = await startSource([dir], {}, { fsWatch: false, pollIntervalMs: 30 });
    const before = store.ops.length;
    fs.writeFileSync(path.join(dir, 'a.yaml'), 'kind: Service\nmetadata: {name: a, namespace: x}\nspec: {clusterIP: 10.96.1.9, ports: [{port: 53, protocol: UDP}]}\n');
    await waitFor(() => store.services.get('x/a')?.clusterIPs[0] === '10.96.1.9', 'polled change');
    expect(store.ops.slice(before)).toEqual(['replaceAll Service 1']);
  });

  test('KP-14: noendpoints and pods disabled: slices and pods are not fed', async () => {
    const { store } = await startSource([EXAMPLES], { watchEndpoints: false, watchPods: false });
    expect(store.ops.some((op) => op.includes('EndpointSlice') || op.includes('Pod'))).toBe(false);
    expect(store.services.size).toBe(5);
  });
});
