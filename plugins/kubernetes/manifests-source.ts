// Manifests on disk as a ClusterSource: a cluster without a cluster, for
// demos, tests and laptops. Files and directories (not recursive) of *.yaml,
// *.yml and *.json; multi-document YAML; `kind: List` (and *List) as
// `kubectl get -o yaml` writes it.
//
// Kinds read: Namespace, Service, Pod, StatefulSet, EndpointSlice, Endpoints
// (core/v1). Others (Deployment, ConfigMap, a misspelt kind, ...) are
// ignored, with one info line at each load that finds some.
//
// What a cluster's controllers would add is derived, as they would:
// - Namespaces: those listed, those any object is in, and the built-in
//   default, kube-system, kube-public and kube-node-lease. Each carries the
//   kubernetes.io/metadata.name label, for namespace_labels.
// - Service cluster IPs, when a Service has none: allocated from 10.96.0.0/12
//   (IPv6: fd00:10:96::/112) by hashing namespace/name, probing past taken
//   addresses, so the same manifests give the same IPs. default/kubernetes
//   gets 10.96.0.1 and kube-system/kube-dns 10.96.0.10 when free.
//   spec.ipFamilies, or ipFamilyPolicy PreferDualStack/RequireDualStack
//   (IPv4 then IPv6), decide the families.
// - StatefulSet pods: <name>-0 .. <name>-(replicas-1), hostname = pod name,
//   subdomain = spec.serviceName, labels from the template (plus
//   statefulset.kubernetes.io/pod-name), ready. A Pod manifest of the same
//   name wins over the synthesised one.
// - Pod IPs, when status.podIP is absent: from 10.244.0.0/16 by the same
//   hashing; each such pod also gets the IPv6 twin fd00:10:244::A:B of
//   10.244.A.B, used by IPv6 and dual-stack Services.
// - EndpointSlices for Services with a selector (not ExternalName), as the
//   EndpointSlice controller builds them: pods in the Service's namespace
//   whose labels match, except Succeeded/Failed ones; one slice per address
//   family (and per distinct port set), named <service>-ipv4 / -ipv6;
//   endpoint ready = pod ready (absent status: ready, since manifests on
//   disk rarely have one; otherwise the Ready condition) or the Service's
//   publishNotReadyAddresses (K8S-15); hostname only when the pod sets
//   spec.hostname and spec.subdomain is the Service's name (K8S-18);
//   targetRef = the pod; ports from targetPort (a name is looked up in the
//   pod's container ports; a pod without it gets no such port), carrying
//   the Service's labels.
// - Precedence per Service: EndpointSlice manifests labelled with its name win
//   (a `kubectl get -o yaml` dump has them); else Endpoints manifests,
//   mirrored as the mirroring controller would; else derivation from pods.
//
// The `labels` selector filters Services, EndpointSlices (derived ones by
// their Service's labels) and Pods; `namespace_labels` filters Namespaces,
// as the API server would for the API source (KP-15, KP-16).
//
// Changes: fs.watch on the directories involved, plus polling of file stats
// (every 2 s) where fs.watch says nothing (network filesystems, some
// ConfigMap mounts), debounced; a re-read replaces each kind whose records
// changed with store.replaceAll. A bad manifest is reported as
// `<file>: document <n>: <what>`: on the first load start() fails with it; on
// a later one it is logged and the last good state keeps being served.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../src/log.ts';
import {
  ConvertError,
  SERVICE_NAME_LABEL,
  endpointsToSliceRecords,
  ipFamily,
  isTerminating,
  labelsOf,
  normalizeIP,
  objectKey,
  toEndpointSliceRecord,
  toNamespaceRecord,
  toServiceRecord,
} from './convert.ts';
import type {
  ClusterSource,
  ClusterStore,
  EndpointRecord,
  EndpointSliceRecord,
  NamespaceRecord,
  PodRecord,
  ServicePort,
  ServiceRecord,
  SourceOptions,
} from './model.ts';
import { matchesSelector, parseLabelSelector, type LabelSelector } from './selector.ts';

/** A bad manifest: the message names file and document. */
export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

export interface ManifestsSourceTuning {
  /** How often file stats are polled, as a fallback for fs.watch (0: never). */
  pollIntervalMs: number;
  /** Wait this long after a change event before re-reading (editors write in bursts). */
  debounceMs: number;
  /** Use fs.watch (tests turn it off to exercise polling alone). */
  fsWatch: boolean;
}

const DEFAULT_TUNING: ManifestsSourceTuning = { pollIntervalMs: 2000, debounceMs: 100, fsWatch: true };

export const BUILTIN_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

/** Everything one load produced. */
export interface ManifestCluster {
  services: ServiceRecord[];
  slices: EndpointSliceRecord[];
  namespaces: NamespaceRecord[];
  pods: PodRecord[];
  /** Files read, in order. */
  files: string[];
  /** Objects of kinds this source does not read, by kind. */
  ignoredKinds: Map<string, number>;
  /** Hash of the files' names and contents: equal hashes, same cluster. */
  fingerprint: string;
}

// ---------------------------------------------------------------------------
// Reading files

type Json = Record<string, unknown>;

/** One Kubernetes object as given, with where it came from for messages. */
export interface Manifest {
  obj: Json;
  kind: string;
  /** `<file>: document <n>` (and `: items[<i>]` inside a List). */
  where: string;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/** The manifest files under `paths` (directories: their *.yaml, *.yml, *.json, sorted). */
export function manifestFiles(paths: string[]): string[] {
  const files: string[] = [];
  for (const p of paths) {
    const abs = path.resolve(p);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(abs);
    } catch (err) {
      throw new ManifestError(`${abs}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    if (stat.isDirectory()) {
      const names = fs
        .readdirSync(abs, { withFileTypes: true })
        .filter((e) => MANIFEST_FILE.test(e.name) && !e.name.startsWith('.') && (e.isFile() || e.isSymbolicLink()))
        .map((e) => path.join(abs, e.name))
        .filter((f) => fs.statSync(f, { throwIfNoEntry: false })?.isFile())
        .sort();
      files.push(...names);
    } else {
      files.push(abs);
    }
  }
  return [...new Set(files)];
}

type YamlModule = typeof import('yaml');

/** `yaml` is loaded on first use (about 10 MB of RSS a server without manifests need not pay). */
let yamlModule: Promise<YamlModule> | null = null;

export function parseFile(yaml: YamlModule, file: string, text: string, out: Manifest[]): void {
  const values: { value: unknown; where: string }[] = [];
  if (/\.json$/i.test(file)) {
    try {
      values.push({ value: JSON.parse(text), where: `${file}: document 1` });
    } catch (err) {
      throw new ManifestError(`${file}: document 1: invalid JSON: ${(err as Error).message}`);
    }
  } else {
    const docs = yaml.parseAllDocuments(text, { prettyErrors: true });
    let n = 0;
    for (const doc of docs) {
      n++;
      const where = `${file}: document ${n}`;
      if (doc.errors.length > 0) {
        const first = doc.errors[0]!;
        const line = first.linePos?.[0];
        const at = line ? ` (line ${line.line}, column ${line.col})` : '';
        throw new ManifestError(`${where}: invalid YAML${at}: ${first.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
      }
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: 1000 });
      } catch (err) {
        // yaml throws plain errors here (an alias bomb past maxAliasCount): name the file and document.
        throw new ManifestError(`${where}: ${(err as Error).message}`);
      }
      values.push({ value, where });
    }
  }
  for (const { value, where } of values) {
    if (value === null || value === undefined) continue; // an empty document (`---` at the end)
    addObject(value, where, out);
  }
}

export function addObject(value: unknown, where: string, out: Manifest[]): void {
  if (!isObject(value)) throw new ManifestError(`${where}: expected a Kubernetes object (a mapping with kind and metadata)`);
  const kind = value.kind;
  if (typeof kind !== 'string' || kind === '') throw new ManifestError(`${where}: missing kind`);
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(value.items))) {
    if (!Array.isArray(value.items)) throw new ManifestError(`${where}: ${kind}: items: expected a list`);
    value.items.forEach((item, i) => addObject(item, `${where}: items[${i}]`, out));
    return;
  }
  out.push({ obj: value, kind, where });
}

// ---------------------------------------------------------------------------
// Addresses

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** An address pool: base address bytes, the number of host offsets, reserved offsets. */
interface Pool {
  format(offset: number): string;
  size: number;
  reserved: Set<number>;
}

const SERVICE_V4: Pool = {
  // 10.96.0.0/12
  format: (o) => `10.${96 + (o >> 16)}.${(o >> 8) & 255}.${o & 255}`,
  size: 1 << 20,
  reserved: new Set([0, 1, 10, (1 << 20) - 1]),
};
const SERVICE_V6: Pool = {
  // fd00:10:96::/112
  format: (o) => normalizeIP(`fd00:10:96::${o.toString(16)}`)!,
  size: 1 << 16,
  reserved: new Set([0, 1, 10]),
};
const POD_V4: Pool = {
  // 10.244.0.0/16
  format: (o) => `10.244.${o >> 8}.${o & 255}`,
  size: 1 << 16,
  reserved: new Set([0, 1, (1 << 16) - 1]),
};

/** The IPv6 twin of an allocated pod address 10.244.A.B: fd00:10:244::A:B. */
function podV6Twin(offset: number): string {
  return normalizeIP(`fd00:10:244::${(offset >> 8).toString(16)}:${(offset & 255).toString(16)}`)!;
}

class Allocator {
  private readonly taken = new Set<string>();

  reserve(ip: string): void {
    this.taken.add(ip);
  }

  /** The address for `key` in `pool`: `preferred` (an offset) when free, else hashed and probed. */
  allocate(pool: Pool, key: string, preferred?: number): { ip: string; offset: number } {
    if (preferred !== undefined && !this.taken.has(pool.format(preferred))) {
      this.taken.add(pool.format(preferred));
      return { ip: pool.format(preferred), offset: preferred };
    }
    const start = fnv1a(key) % pool.size;
    for (let i = 0; i < pool.size; i++) {
      const offset = (start + i) % pool.size;
      if (pool.reserved.has(offset)) continue;
      const ip = pool.format(offset);
      if (this.taken.has(ip)) continue;
      this.taken.add(ip);
      return { ip, offset };
    }
    throw new ManifestError(`address pool exhausted allocating for ${key}`);
  }
}

// ---------------------------------------------------------------------------
// Building the cluster

interface ContainerPort {
  name: string;
  port: number;
  protocol: string;
}

interface PodInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  hostname: string | null;
  subdomain: string | null;
  /** Given addresses (status.podIPs / podIP); empty → allocated. */
  ips: string[];
  ready: boolean;
  phase: string;
  ports: ContainerPort[];
  where: string;
}

function fail(m: Manifest, detail: string): never {
  let name = '';
  try {
    const key = objectKey(m.obj);
    name = m.kind === 'Namespace' ? ` ${key.name}` : ` ${key.namespace}/${key.name}`;
  } catch {
    // no usable name
  }
  throw new ManifestError(`${m.where}: ${m.kind}${name}: ${detail}`);
}

/** Runs `fn`, turning conversion errors into errors naming the manifest. */
function within<T>(m: Manifest, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ManifestError) throw err;
    if (err instanceof ConvertError) fail(m, err.message);
    throw err;
  }
}

function field(obj: Json, ...keys: string[]): unknown {
  let value: unknown = obj;
  for (const key of keys) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  return value;
}

function stringField(m: Manifest, obj: Json, pathText: string, ...keys: string[]): string | null {
  const value = field(obj, ...keys);
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') fail(m, `${pathText}: expected a string`);
  return value;
}

function containerPorts(m: Manifest, podSpec: Json, prefix: string): ContainerPort[] {
  const out: ContainerPort[] = [];
  const containers = podSpec.containers ?? [];
  if (!Array.isArray(containers)) fail(m, `${prefix}.containers: expected a list`);
  containers.forEach((c, i) => {
    if (!isObject(c)) fail(m, `${prefix}.containers[${i}]: expected an object`);
    const ports = c.ports ?? [];
    if (!Array.isArray(ports)) fail(m, `${prefix}.containers[${i}].ports: expected a list`);
    ports.forEach((p, j) => {
      const where = `${prefix}.containers[${i}].ports[${j}]`;
      if (!isObject(p)) fail(m, `${where}: expected an object`);
      const port = p.containerPort;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
        fail(m, `${where}.containerPort: expected a port number (1-65535), got ${JSON.stringify(port)}`);
      }
      out.push({
        name: typeof p.name === 'string' ? p.name : '',
        port,
        protocol: (typeof p.protocol === 'string' ? p.protocol : 'TCP').toUpperCase(),
      });
    });
  });
  return out;
}

function podReady(m: Manifest, obj: Json): boolean {
  if (isTerminating(obj)) return false;
  const status = obj.status;
  if (status === undefined || status === null) return true;
  if (!isObject(status)) fail(m, 'status: expected an object');
  const conditions = status.conditions ?? [];
  if (!Array.isArray(conditions)) fail(m, 'status.conditions: expected a list');
  const ready = conditions.find((c) => isObject(c) && c.type === 'Ready') as Json | undefined;
  return ready ? ready.status === 'True' : true;
}

function podFromManifest(m: Manifest): PodInfo {
  const { namespace, name } = within(m, () => objectKey(m.obj));
  const spec = field(m.obj, 'spec') ?? {};
  if (!isObject(spec)) fail(m, 'spec: expected an object');
  const status = field(m.obj, 'status');
  const ips: string[] = [];
  const addIP = (text: unknown, where: string) => {
    if (typeof text !== 'string' || !normalizeIP(text)) fail(m, `${where}: ${JSON.stringify(text)} is not an IP address`);
    const ip = normalizeIP(text)!;
    if (!ips.includes(ip)) ips.push(ip);
  };
  if (isObject(status)) {
    if (status.podIP !== undefined && status.podIP !== null && status.podIP !== '') addIP(status.podIP, 'status.podIP');
    if (Array.isArray(status.podIPs)) status.podIPs.forEach((p, i) => addIP(isObject(p) ? p.ip : p, `status.podIPs[${i}].ip`));
  }
  return {
    namespace,
    name,
    labels: within(m, () => labelsOf(m.obj)),
    hostname: stringField(m, spec, 'spec.hostname', 'hostname'),
    subdomain: stringField(m, spec, 'spec.subdomain', 'subdomain'),
    ips,
    ready: podReady(m, m.obj),
    phase: (isObject(status) && typeof status.phase === 'string' ? status.phase : null) ?? 'Running',
    ports: containerPorts(m, spec, 'spec'),
    where: m.where,
  };
}

function podsFromStatefulSet(m: Manifest): PodInfo[] {
  const { namespace, name } = within(m, () => objectKey(m.obj));
  const spec = field(m.obj, 'spec');
  if (!isObject(spec)) fail(m, 'spec: missing');
  const replicas = spec.replicas ?? 1;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    fail(m, `spec.replicas: expected an integer >= 0, got ${JSON.stringify(replicas)}`);
  }
  const serviceName = stringField(m, spec, 'spec.serviceName', 'serviceName');
  const template = field(spec, 'template');
  if (!isObject(template)) fail(m, 'spec.template: missing');
  const labels = within(m, () => labelsOf(template));
  const podSpec = field(template, 'spec') ?? {};
  if (!isObject(podSpec)) fail(m, 'spec.template.spec: expected an object');
  const ports = containerPorts(m, podSpec, 'spec.template.spec');
  const pods: PodInfo[] = [];
  for (let i = 0; i < replicas; i++) {
    const podName = `${name}-${i}`;
    pods.push({
      namespace,
      name: podName,
      labels: { ...labels, 'statefulset.kubernetes.io/pod-name': podName, 'apps.kubernetes.io/pod-index': String(i) },
      hostname: podName,
      subdomain: serviceName,
      ips: [],
      ready: true,
      phase: 'Running',
      ports,
      where: `${m.where} (StatefulSet ${namespace}/${name} replica ${i})`,
    });
  }
  return pods;
}

type Family = 'IPv4' | 'IPv6';

function wantedFamilies(m: Manifest, spec: Json, firstIP: string | null): Family[] {
  const listed = spec.ipFamilies;
  if (listed !== undefined && listed !== null) {
    if (!Array.isArray(listed) || listed.some((f) => f !== 'IPv4' && f !== 'IPv6') || listed.length === 0 || listed.length > 2) {
      fail(m, 'spec.ipFamilies: expected [IPv4], [IPv6], [IPv4, IPv6] or [IPv6, IPv4]');
    }
    return listed as Family[];
  }
  const primary: Family = (firstIP && ipFamily(firstIP)) || 'IPv4';
  const policy = spec.ipFamilyPolicy;
  if (policy === 'RequireDualStack' || policy === 'PreferDualStack') return [primary, primary === 'IPv4' ? 'IPv6' : 'IPv4'];
  return [primary];
}

interface ServiceInfo {
  manifest: Manifest;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  selector: Record<string, string> | null;
  externalName: boolean;
  headless: boolean;
  publishNotReady: boolean;
  families: Family[];
  /** Given addresses (spec.clusterIPs / clusterIP); may be fewer than families. */
  givenIPs: string[];
  ports: { name: string; protocol: string; port: number; targetPort: number | string }[];
}

function serviceInfo(m: Manifest): ServiceInfo {
  // toServiceRecord validates ports, IPs and externalName.
  const record = within(m, () => toServiceRecord(m.obj));
  const spec = (field(m.obj, 'spec') ?? {}) as Json;
  const selector = field(spec, 'selector');
  if (selector !== undefined && selector !== null && !isObject(selector)) fail(m, 'spec.selector: expected a mapping of labels');
  const selectorMap: Record<string, string> = {};
  for (const [k, v] of Object.entries(selector ?? {})) {
    if (typeof v !== 'string') fail(m, `spec.selector.${k}: expected a string`);
    selectorMap[k] = v;
  }
  const rawPorts = Array.isArray(spec.ports) ? (spec.ports as Json[]) : [];
  const ports = record.ports.map((p, i) => {
    const target = rawPorts[i]?.targetPort;
    if (target !== undefined && target !== null && typeof target !== 'number' && typeof target !== 'string') {
      fail(m, `spec.ports[${i}].targetPort: expected a port number or a port name`);
    }
    if (typeof target === 'number' && (!Number.isInteger(target) || target < 1 || target > 65535)) {
      fail(m, `spec.ports[${i}].targetPort: expected a port number (1-65535), got ${target}`);
    }
    return { ...p, targetPort: (target ?? p.port) as number | string };
  });
  return {
    manifest: m,
    namespace: record.namespace,
    name: record.name,
    labels: within(m, () => labelsOf(m.obj)),
    selector: Object.keys(selectorMap).length > 0 ? selectorMap : null,
    externalName: record.externalName !== null,
    headless: record.headless,
    publishNotReady: spec.publishNotReadyAddresses === true,
    families: record.externalName !== null ? [] : wantedFamilies(m, spec, record.clusterIPs[0] ?? null),
    givenIPs: record.clusterIPs,
    ports,
  };
}

function resolveTargetPort(target: number | string, protocol: string, pod: PodInfo): number | null {
  if (typeof target === 'number') return target;
  // As podutil.FindPort: a name matches a container port of that name and protocol.
  const found = pod.ports.find((p) => p.name === target && p.protocol === protocol.toUpperCase());
  return found ? found.port : null;
}

function deriveSlices(svc: ServiceInfo, pods: PodInfo[], podIPs: Map<PodInfo, string[]>): EndpointSliceRecord[] {
  const selector = svc.selector!;
  const members = pods
    .filter((p) => p.namespace === svc.namespace && p.phase !== 'Succeeded' && p.phase !== 'Failed')
    .filter((p) => Object.entries(selector).every(([k, v]) => p.labels[k] === v))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const records: EndpointSliceRecord[] = [];
  for (const family of svc.families) {
    // One slice per distinct port set, as the controller groups endpoints.
    const groups = new Map<string, { ports: ServicePort[]; endpoints: EndpointRecord[] }>();
    for (const pod of members) {
      const ip = podIPs.get(pod)!.find((a) => ipFamily(a) === family);
      if (!ip) continue;
      const ports: ServicePort[] = [];
      for (const p of svc.ports) {
        const port = resolveTargetPort(p.targetPort, p.protocol, pod);
        if (port !== null) ports.push({ name: p.name, protocol: p.protocol, port });
      }
      const key = JSON.stringify(ports);
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { ports, endpoints: [] }));
      group.endpoints.push({
        addresses: [ip],
        ready: pod.ready || svc.publishNotReady,
        hostname: pod.hostname && pod.subdomain === svc.name ? pod.hostname.toLowerCase() : null,
        podName: pod.name,
        zone: null,
      });
    }
    let n = 0;
    for (const group of groups.values()) {
      n++;
      records.push({
        namespace: svc.namespace,
        name: `${svc.name}-${family.toLowerCase()}${n > 1 ? `-${n}` : ''}`,
        serviceName: svc.name,
        addressType: family,
        endpoints: group.endpoints,
        ports: group.ports,
        lastChangeTriggerTime: null,
      });
    }
  }
  return records;
}

const NAMESPACED_KINDS = new Set(['Service', 'Pod', 'StatefulSet', 'EndpointSlice', 'Endpoints']);

/**
 * Reads `paths` and builds the cluster they describe, with the filters of
 * `options` applied. Rejects with a ManifestError naming file and document.
 */
export async function loadManifests(paths: string[], options: SourceOptions): Promise<ManifestCluster> {
  yamlModule ??= import('yaml');
  const yaml = await yamlModule;

  const files = manifestFiles(paths);
  const hash = crypto.createHash('sha256');
  const manifests: Manifest[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ManifestError(`${file}: ${(err as Error).message}`);
    }
    hash.update(file).update('\0').update(text).update('\0');
    parseFile(yaml, file, text, manifests);
  }
  return { ...buildCluster(manifests, options), files, fingerprint: hash.digest('hex') };
}

/** What a set of objects describes, with what the cluster's controllers would add (see the top of this file). */
export function buildCluster(manifests: readonly Manifest[], options: SourceOptions): Omit<ManifestCluster, 'files' | 'fingerprint'> {
  const labelSelector = options.labelSelector ? parseLabelSelector(options.labelSelector) : null;
  const namespaceSelector = options.namespaceLabelSelector ? parseLabelSelector(options.namespaceLabelSelector) : null;
  const matches = (selector: LabelSelector | null, labels: Record<string, string>) => !selector || matchesSelector(selector, labels);

  // Group by kind; refuse duplicates (two definitions of one object are a mistake to point out).
  const seen = new Map<string, string>();
  const byKind = new Map<string, Manifest[]>();
  const ignoredKinds = new Map<string, number>();
  const namespaceNames = new Set(BUILTIN_NAMESPACES);
  for (const m of manifests) {
    if (m.kind !== 'Namespace' && !NAMESPACED_KINDS.has(m.kind)) {
      ignoredKinds.set(m.kind, (ignoredKinds.get(m.kind) ?? 0) + 1);
      continue;
    }
    const key = within(m, () => objectKey(m.obj));
    const id = m.kind === 'Namespace' ? `Namespace ${key.name}` : `${m.kind} ${key.namespace}/${key.name}`;
    const previous = seen.get(id);
    if (previous) throw new ManifestError(`${m.where}: ${id} is already defined at ${previous}`);
    seen.set(id, m.where);
    namespaceNames.add(m.kind === 'Namespace' ? key.name : key.namespace);
    if (!byKind.has(m.kind)) byKind.set(m.kind, []);
    byKind.get(m.kind)!.push(m);
  }
  const ofKind = (kind: string) => byKind.get(kind) ?? [];

  // Namespaces.
  const namespaceLabels = new Map<string, Record<string, string>>();
  for (const m of ofKind('Namespace')) {
    const record = within(m, () => toNamespaceRecord(m.obj));
    namespaceLabels.set(record.name, within(m, () => labelsOf(m.obj)));
  }
  const namespaces: NamespaceRecord[] = [...namespaceNames]
    .sort()
    .filter((name) => matches(namespaceSelector, { ...namespaceLabels.get(name), 'kubernetes.io/metadata.name': name }))
    .map((name) => ({ name }));

  // Pods: manifests first; StatefulSet replicas unless a Pod manifest has the name.
  const pods: PodInfo[] = ofKind('Pod').map(podFromManifest);
  const podNames = new Set(pods.map((p) => `${p.namespace}/${p.name}`));
  for (const m of ofKind('StatefulSet')) {
    for (const p of podsFromStatefulSet(m)) {
      if (!podNames.has(`${p.namespace}/${p.name}`)) pods.push(p);
    }
  }
  const services = ofKind('Service').map(serviceInfo);

  // Addresses: reserve every given one, then allocate in a stable order.
  const allocator = new Allocator();
  for (const p of pods) for (const ip of p.ips) allocator.reserve(ip);
  for (const s of services) for (const ip of s.givenIPs) allocator.reserve(ip);
  const podIPs = new Map<PodInfo, string[]>();
  const byKey = <T extends { namespace: string; name: string }>(a: T, b: T) => {
    const ka = `${a.namespace}/${a.name}`;
    const kb = `${b.namespace}/${b.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
  for (const p of [...pods].sort(byKey)) {
    if (p.ips.length > 0) {
      podIPs.set(p, p.ips);
    } else {
      const { ip, offset } = allocator.allocate(POD_V4, `${p.namespace}/${p.name}`);
      podIPs.set(p, [ip, podV6Twin(offset)]);
    }
  }
  const serviceIPs = new Map<ServiceInfo, string[]>();
  for (const s of [...services].sort(byKey)) {
    if (s.externalName || s.headless) {
      serviceIPs.set(s, []);
      continue;
    }
    const ips = [...s.givenIPs];
    const key = `${s.namespace}/${s.name}`;
    for (const family of s.families) {
      if (ips.some((ip) => ipFamily(ip) === family)) continue;
      const preferred = key === 'default/kubernetes' ? 1 : key === 'kube-system/kube-dns' ? 10 : undefined;
      ips.push(allocator.allocate(family === 'IPv4' ? SERVICE_V4 : SERVICE_V6, key, preferred).ip);
    }
    serviceIPs.set(s, ips);
  }

  const serviceRecords: ServiceRecord[] = [];
  for (const s of services) {
    if (!matches(labelSelector, s.labels)) continue;
    const record = toServiceRecord(s.manifest.obj);
    serviceRecords.push({ ...record, clusterIPs: serviceIPs.get(s)! });
  }

  // EndpointSlices: explicit slices, then mirrored Endpoints, then derived.
  const slices: EndpointSliceRecord[] = [];
  const explicitFor = new Set<string>();
  for (const m of ofKind('EndpointSlice')) {
    const labels = within(m, () => labelsOf(m.obj));
    const record = within(m, () => toEndpointSliceRecord(m.obj));
    const key = within(m, () => objectKey(m.obj));
    if (labels[SERVICE_NAME_LABEL]) explicitFor.add(`${key.namespace}/${labels[SERVICE_NAME_LABEL]!.toLowerCase()}`);
    if (record && matches(labelSelector, labels)) slices.push(record);
  }
  const mirroredFor = new Set<string>();
  for (const m of ofKind('Endpoints')) {
    const key = within(m, () => objectKey(m.obj));
    const labels = within(m, () => labelsOf(m.obj));
    const records = within(m, () => endpointsToSliceRecords(m.obj));
    if (explicitFor.has(`${key.namespace}/${key.name}`)) continue;
    if (labels['endpointslice.kubernetes.io/skip-mirror'] === 'true') continue;
    mirroredFor.add(`${key.namespace}/${key.name}`);
    if (matches(labelSelector, labels)) slices.push(...records);
  }
  for (const s of services) {
    const key = `${s.namespace}/${s.name}`;
    if (!s.selector || s.externalName || explicitFor.has(key) || mirroredFor.has(key)) continue;
    // Headless Services take their families from ipFamilies / the policy; others from their IPs.
    const families = s.headless ? s.families : (serviceIPs.get(s)!.map((ip) => ipFamily(ip)!) as Family[]);
    if (!matches(labelSelector, s.labels)) continue; // derived slices carry the Service's labels
    slices.push(...deriveSlices({ ...s, families }, pods, podIPs));
  }

  // Pod records (pods verified): what the API's phase field selector lets through.
  const podRecords: PodRecord[] = pods
    .filter((p) => p.phase !== 'Succeeded' && p.phase !== 'Failed' && p.phase !== 'Unknown')
    .filter((p) => matches(labelSelector, p.labels))
    .sort(byKey)
    .map((p) => ({ namespace: p.namespace, name: p.name, ip: podIPs.get(p)![0]! }));

  return {
    services: serviceRecords.sort(byKey),
    slices: slices.sort(byKey),
    namespaces,
    pods: podRecords,
    ignoredKinds,
  };
}

// ---------------------------------------------------------------------------
// The source

/**
 * Gives the store each kind whose records changed since the last call with
 * the same `applied` memo (JSON of the records per kind); returns those kinds.
 * An unchanged kind is not replaced, so answers memoised for it stay.
 */
export function replaceChangedKinds(
  store: ClusterStore,
  cluster: Omit<ManifestCluster, 'files' | 'fingerprint'>,
  options: SourceOptions,
  applied: Map<string, string>,
): string[] {
  const changed: string[] = [];
  const put = (kind: string, records: unknown[], replace: () => void) => {
    const json = JSON.stringify(records);
    if (applied.get(kind) === json) return;
    applied.set(kind, json);
    replace();
    changed.push(kind);
  };
  put('Namespace', cluster.namespaces, () => store.replaceAll('Namespace', cluster.namespaces));
  put('Service', cluster.services, () => store.replaceAll('Service', cluster.services));
  if (options.watchEndpoints) put('EndpointSlice', cluster.slices, () => store.replaceAll('EndpointSlice', cluster.slices));
  if (options.watchPods) put('Pod', cluster.pods, () => store.replaceAll('Pod', cluster.pods));
  return changed;
}

function summary(c: ManifestCluster): string {
  return `${c.services.length} services, ${c.slices.length} endpoint slices, ${c.namespaces.length} namespaces, ${c.pods.length} pods from ${c.files.length} files`;
}

class ManifestsSource implements ClusterSource {
  private readonly paths: string[];
  private readonly options: SourceOptions;
  private readonly log: Logger;
  private readonly tuning: ManifestsSourceTuning;
  private store: ClusterStore | null = null;
  private current: ManifestCluster | null = null;
  /** JSON of the records last given to the store, per kind: unchanged kinds are not replaced. */
  private applied = new Map<string, string>();
  private lastError: string | null = null;
  private loadedAt = '';
  private watchers: fs.FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | null = null;
  private debounceTimer: NodeJS.Timeout | null = null;
  private statSignature = '';
  private started = false;
  private stopped = false;
  private reloading = false;
  private reloadAgain = false;

  constructor(paths: string[], options: SourceOptions, log: Logger, tuning: ManifestsSourceTuning) {
    this.paths = paths.map((p) => path.resolve(p));
    this.options = options;
    this.log = log;
    this.tuning = tuning;
  }

  async start(store: ClusterStore): Promise<void> {
    if (this.started) throw new Error('the manifests source is already started');
    if (this.paths.length === 0) throw new ManifestError('no manifest files or directories given');
    this.started = true;
    let cluster: ManifestCluster;
    try {
      cluster = await loadManifests(this.paths, this.options); // a bad manifest fails startup, naming it
    } catch (err) {
      this.started = false;
      throw err;
    }
    this.store = store;
    this.apply(cluster);
    store.markSynced();
    this.log.info(`loaded ${summary(cluster)}`);
    this.reportIgnoredKinds(cluster);
    this.statSignature = this.signature();
    this.watch();
  }

  async stop(): Promise<void> {
    if (!this.started || this.stopped) return;
    this.stopped = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
  }

  state(): string {
    if (!this.started) return 'not started';
    if (this.stopped) return 'stopped';
    const loaded = `${summary(this.current!)}, loaded ${this.loadedAt}`;
    return this.lastError ? `${this.lastError}; serving the last good state (${loaded})` : loaded;
  }

  /** Re-reads now (also what change detection calls). */
  async reload(): Promise<void> {
    if (this.stopped) return;
    if (this.reloading) {
      // A change arrived mid-read: read again once this one is done.
      this.reloadAgain = true;
      return;
    }
    this.reloading = true;
    try {
      await this.reloadOnce();
    } finally {
      this.reloading = false;
    }
    if (this.reloadAgain && !this.stopped) {
      this.reloadAgain = false;
      await this.reload();
    }
  }

  private async reloadOnce(): Promise<void> {
    let cluster: ManifestCluster;
    try {
      cluster = await loadManifests(this.paths, this.options);
      if (this.stopped) return;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.lastError) this.log.error(`${message}; keeping the last good state`);
      this.lastError = message;
      return;
    }
    const recovered = this.lastError !== null;
    this.lastError = null;
    if (cluster.fingerprint === this.current!.fingerprint && !recovered) return;
    const changed = this.apply(cluster);
    if (changed.length > 0 || recovered) this.log.info(`reloaded ${summary(cluster)}${changed.length ? ` (changed: ${changed.join(', ')})` : ''}`);
    this.reportIgnoredKinds(cluster);
  }

  /** At start and at each re-read of changed files: a kind added later (or misspelt) is seen too. */
  private reportIgnoredKinds(cluster: ManifestCluster): void {
    if (cluster.ignoredKinds.size === 0) return;
    const kinds = [...cluster.ignoredKinds].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => `${n} ${k}`).join(', ');
    this.log.info(`ignoring ${kinds} (only Namespace, Service, Pod, StatefulSet, EndpointSlice and Endpoints are read)`);
  }

  private apply(cluster: ManifestCluster): string[] {
    const changed = replaceChangedKinds(this.store!, cluster, this.options, this.applied);
    this.current = cluster;
    this.loadedAt = new Date().toISOString();
    return changed;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null;
      this.statSignature = this.signature();
      this.reload().catch((err: unknown) => this.log.error(`reloading manifests: ${(err as Error).message}`));
    }, this.tuning.debounceMs);
    this.debounceTimer.unref();
  }

  /** Names, sizes, mtimes and inodes of the manifest files: cheap to poll. */
  private signature(): string {
    let files: string[];
    try {
      files = manifestFiles(this.paths);
    } catch (err) {
      return `error ${(err as Error).message}`;
    }
    return files
      .map((f) => {
        const st = fs.statSync(f, { throwIfNoEntry: false });
        return st ? `${f}:${st.size}:${st.mtimeMs}:${st.ino}` : `${f}:missing`;
      })
      .join('|');
  }

  private watch(): void {
    // Watch directories, not files: editors and ConfigMap updates replace files by rename.
    const dirs = new Set<string>();
    for (const p of this.paths) {
      const st = fs.statSync(p, { throwIfNoEntry: false });
      dirs.add(st?.isDirectory() ? p : path.dirname(p));
    }
    for (const dir of this.tuning.fsWatch ? dirs : []) {
      try {
        const watcher = fs.watch(dir, { persistent: false }, () => this.schedule());
        watcher.on('error', (err) => this.log.debug(`watching ${dir}: ${err.message}; polling only`));
        this.watchers.push(watcher);
      } catch (err) {
        this.log.debug(`cannot watch ${dir} (${(err as Error).message}); polling only`);
      }
    }
    if (this.tuning.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => {
        const signature = this.signature();
        if (signature !== this.statSignature) {
          this.statSignature = signature;
          this.schedule();
        }
      }, this.tuning.pollIntervalMs);
      this.pollTimer.unref();
    }
  }
}

/**
 * A ClusterSource reading Kubernetes manifests from files and directories.
 * `tuning` is for tests (faster polling).
 */
export function createManifestsSource(
  paths: string[],
  options: SourceOptions,
  log: Logger,
  tuning: Partial<ManifestsSourceTuning> = {},
): ClusterSource {
  return new ManifestsSource(paths, options, log, { ...DEFAULT_TUNING, ...tuning });
}
