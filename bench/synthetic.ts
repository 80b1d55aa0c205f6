// A synthetic cluster and the queries its pods would send, from a fixed seed
// so every run measures the same thing.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** mulberry32: small, fast, deterministic. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SyntheticService {
  namespace: string;
  name: string;
  headless: boolean;
  clusterIP: string | null;
  endpoints: string[];
  ports: { name: string; port: number; protocol: string }[];
}

export interface SyntheticCluster {
  namespaces: string[];
  services: SyntheticService[];
}

export interface ClusterShape {
  namespaces: number;
  services: number;
  headlessShare: number;
  /** Mean endpoints per Service (1..2×mean-1, uniform). */
  endpointsPerService: number;
  seed: number;
}

export const DEFAULT_SHAPE: ClusterShape = { namespaces: 20, services: 1000, headlessShare: 0.1, endpointsPerService: 2.6, seed: 42 };

export function generateCluster(shape: ClusterShape): SyntheticCluster {
  const next = random(shape.seed);
  const namespaces = Array.from({ length: shape.namespaces }, (_, i) => `ns-${i}`);
  const services: SyntheticService[] = [];
  let podIndex = 0;
  for (let i = 0; i < shape.services; i++) {
    const headless = next() < shape.headlessShare;
    const count = 1 + Math.floor(next() * (2 * shape.endpointsPerService - 1));
    const endpoints = Array.from({ length: count }, () => {
      const index = podIndex++;
      return `10.${64 + (index >> 16)}.${(index >> 8) & 255}.${index & 255}`;
    });
    services.push({
      namespace: namespaces[i % namespaces.length]!,
      name: `svc-${i}`,
      headless,
      clusterIP: headless ? null : `10.96.${(i >> 8) & 255}.${i & 255}`,
      endpoints,
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    });
  }
  return { namespaces, services };
}

/** The cluster as Kubernetes objects: Namespaces, Services and one EndpointSlice per Service. */
export interface ClusterObject {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export function clusterObjects(cluster: SyntheticCluster): ClusterObject[] {
  const objects: ClusterObject[] =
    cluster.namespaces.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }));
  for (const service of cluster.services) {
    objects.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: service.name, namespace: service.namespace },
      spec: {
        clusterIP: service.headless ? 'None' : service.clusterIP,
        clusterIPs: [service.headless ? 'None' : service.clusterIP],
        ports: service.ports.map((port) => ({ ...port, targetPort: port.port })),
      },
    });
    objects.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service.name}-abcde`, namespace: service.namespace, labels: { 'kubernetes.io/service-name': service.name } },
      addressType: 'IPv4',
      endpoints: service.endpoints.map((address, i) => ({
        addresses: [address],
        conditions: { ready: true },
        targetRef: { kind: 'Pod', name: `${service.name}-${i}`, namespace: service.namespace },
      })),
      ports: service.ports,
    });
  }
  return objects;
}

/** Writes the cluster as manifests the kubernetes plugin's `manifests` option reads. */
export function writeManifests(cluster: SyntheticCluster, directory: string): void {
  mkdirSync(directory, { recursive: true });
  // JSON is valid YAML; a List keeps it one file, as `kubectl get -o yaml` writes.
  writeFileSync(join(directory, 'cluster.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: clusterObjects(cluster) }));
}

/** The query mix of the issue: what pods with ndots:5 and a search path send. */
export const MIX = [
  { kind: 'clusterip-a', share: 0.38 },
  { kind: 'aaaa-nodata', share: 0.1 },
  { kind: 'headless-a', share: 0.1 },
  { kind: 'srv', share: 0.07 },
  { kind: 'ptr', share: 0.05 },
  { kind: 'search-nxdomain', share: 0.3 },
] as const;

const EXTERNAL = ['api.github.com', 'www.googleapis.com', 'sts.amazonaws.com', 'registry.npmjs.org', 'api.stripe.com', 'hooks.slack.com'];

/** Zipf popularity over `count` items: item i has weight 1/(i+1). Returns a sampler of indexes. */
function zipf(count: number, next: () => number): () => number {
  const cumulative: number[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) cumulative.push((total += 1 / (i + 1)));
  return () => {
    const target = next() * total;
    let low = 0;
    let high = count - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (cumulative[middle]! < target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

/** dnsperf's input format: one `name type` per line. */
export function generateQueries(cluster: SyntheticCluster, count: number, seed: number): string[] {
  const next = random(seed);
  const clusterIP = cluster.services.filter((service) => !service.headless);
  const headless = cluster.services.filter((service) => service.headless);
  const pickClusterIP = zipf(clusterIP.length, next);
  const pickHeadless = zipf(headless.length, next);
  const pickExternal = zipf(EXTERNAL.length, next);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    let roll = next();
    const kind = MIX.find((entry) => (roll -= entry.share) < 0)?.kind ?? 'search-nxdomain';
    const service = kind === 'headless-a' ? headless[pickHeadless()]! : clusterIP[pickClusterIP()]!;
    const fqdn = `${service.name}.${service.namespace}.svc.cluster.local`;
    switch (kind) {
      case 'clusterip-a':
      case 'headless-a':
        lines.push(`${fqdn} A`);
        break;
      case 'aaaa-nodata':
        lines.push(`${fqdn} AAAA`);
        break;
      case 'srv':
        lines.push(`_http._tcp.${fqdn} SRV`);
        break;
      case 'ptr': {
        const ip = service.endpoints[0]!.split('.').reverse().join('.');
        lines.push(`${ip}.in-addr.arpa PTR`);
        break;
      }
      default: {
        const external = EXTERNAL[pickExternal()]!;
        const suffix = [`${service.namespace}.svc.cluster.local`, 'svc.cluster.local', 'cluster.local'][Math.floor(next() * 3)]!;
        lines.push(`${external}.${suffix} ${next() < 0.5 ? 'A' : 'AAAA'}`);
      }
    }
  }
  return lines;
}

export interface KubeadmPorts {
  dns: number;
  health: number;
  ready: number;
  metrics: number;
}

/** Where the kubernetes plugin reads the cluster: manifests in a directory, or an API server (`endpoint URL`). */
export type ClusterSource = { manifests: string } | { endpoint: string };

/**
 * kubeadm's default Corefile (STOCK-1) with the cluster source, loopback
 * ports and `forward` as given (its upstream and options block).
 */
export function kubeadmCorefile(ports: KubeadmPorts, source: ClusterSource, forward: string): string {
  return `.:${ports.dns} {
    errors
    health 127.0.0.1:${ports.health} {
       lameduck 5s
    }
    ready 127.0.0.1:${ports.ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       ${'manifests' in source ? `manifests ${source.manifests}` : `endpoint ${source.endpoint}`}
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus 127.0.0.1:${ports.metrics}
    forward ${forward}
    cache 30
    loop
    reload
    loadbalance
}
`;
}
