// Kubernetes API objects (plain JSON as the API server sends it, or as a
// manifest on disk parses) → the compact records of model.ts. Shared by the
// API source and the manifests source; nothing here keeps a reference to the
// object it was given.
//
// Rules applied here (so both sources agree):
// - namespaces, names, port names and protocols are lowercased; a missing
//   metadata.namespace means "default" (what kubectl does with a manifest);
// - EndpointSlices with addressType FQDN, or without the
//   kubernetes.io/service-name label, give no record (KP-33, KP-22);
// - an endpoint is ready unless conditions.ready is false (K8S-15);
// - IP addresses are validated and written in canonical form: IPv4-mapped
//   IPv6 (::ffff:a.b.c.d) becomes the IPv4 address (KP-33), other IPv6 text is
//   the RFC 5952 form (lowercase, longest zero run compressed), so an index
//   keyed by address text matches what a reverse query parses to.
//
// Malformed input throws ConvertError with the path of the bad field
// (`spec.ports[0].port: expected an integer`), which the manifests source
// prefixes with file and document.

import net from 'node:net';
import { canonicalIP } from './reverse.ts';
import type {
  EndpointRecord,
  EndpointSliceRecord,
  NamespaceRecord,
  PodRecord,
  ServicePort,
  ServiceRecord,
} from './model.ts';

export class ConvertError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConvertError';
  }
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const LAST_CHANGE_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

// ---------------------------------------------------------------------------
// Reading loosely typed JSON with useful errors

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object at `path` (absent → null); anything else but an object throws. */
function optObject(parent: Json, key: string, path: string): Json | null {
  const value = parent[key];
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw new ConvertError(`${path}: expected an object`);
  return value;
}

function optArray(parent: Json, key: string, path: string): unknown[] {
  const value = parent[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConvertError(`${path}: expected a list`);
  return value;
}

function optString(parent: Json, key: string, path: string): string | null {
  const value = parent[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new ConvertError(`${path}: expected a string`);
  return value;
}

function optBoolean(parent: Json, key: string, path: string): boolean | null {
  const value = parent[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'boolean') throw new ConvertError(`${path}: expected true or false`);
  return value;
}

function optPort(parent: Json, key: string, path: string): number | null {
  const value = parent[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new ConvertError(`${path}: expected a port number (1-65535), got ${JSON.stringify(value)}`);
  }
  return value;
}

function arrayItem(value: unknown, path: string): Json {
  if (!isObject(value)) throw new ConvertError(`${path}: expected an object`);
  return value;
}

function stringMap(parent: Json, key: string, path: string): Record<string, string> {
  const value = optObject(parent, key, path);
  const out: Record<string, string> = {};
  if (!value) return out;
  for (const [k, v] of Object.entries(value)) {
    if (v === null || v === undefined) continue;
    if (typeof v !== 'string') throw new ConvertError(`${path}.${k}: expected a string`);
    out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Object identity

export interface ObjectKey {
  namespace: string;
  name: string;
}

/** metadata.name and metadata.namespace, lowercased; namespace defaults to "default". */
export function objectKey(obj: unknown): ObjectKey {
  if (!isObject(obj)) throw new ConvertError('expected an object');
  const metadata = optObject(obj, 'metadata', 'metadata');
  const name = metadata ? optString(metadata, 'name', 'metadata.name') : null;
  if (!name) throw new ConvertError('metadata.name: missing');
  const namespace = (metadata && optString(metadata, 'namespace', 'metadata.namespace')) || 'default';
  return { namespace: namespace.toLowerCase(), name: name.toLowerCase() };
}

export function labelsOf(obj: unknown): Record<string, string> {
  if (!isObject(obj)) return {};
  const metadata = optObject(obj, 'metadata', 'metadata');
  return metadata ? stringMap(metadata, 'labels', 'metadata.labels') : {};
}

export function annotationsOf(obj: unknown): Record<string, string> {
  if (!isObject(obj)) return {};
  const metadata = optObject(obj, 'metadata', 'metadata');
  return metadata ? stringMap(metadata, 'annotations', 'metadata.annotations') : {};
}

/** metadata.resourceVersion, or '' (BOOKMARK and watch events carry it). */
export function resourceVersionOf(obj: unknown): string {
  if (!isObject(obj) || !isObject(obj.metadata)) return '';
  const rv = obj.metadata.resourceVersion;
  return typeof rv === 'string' ? rv : '';
}

/** The Pod is being deleted (metadata.deletionTimestamp set). */
export function isTerminating(obj: unknown): boolean {
  if (!isObject(obj) || !isObject(obj.metadata)) return false;
  const ts = obj.metadata.deletionTimestamp;
  return ts !== undefined && ts !== null && ts !== '';
}

// ---------------------------------------------------------------------------
// IP addresses

/**
 * Canonical text for an IP address, or null if `text` is not one. IPv4-mapped
 * IPv6 addresses come back as IPv4 (KP-33).
 */
export function normalizeIP(text: string): string | null {
  return canonicalIP(text.trim());
}

export function ipFamily(ip: string): 'IPv4' | 'IPv6' | null {
  if (net.isIPv4(ip)) return 'IPv4';
  if (net.isIPv6(ip)) return 'IPv6';
  return null;
}

function requireIP(text: unknown, path: string): string {
  if (typeof text !== 'string') throw new ConvertError(`${path}: expected an IP address`);
  const ip = normalizeIP(text);
  if (!ip) throw new ConvertError(`${path}: ${JSON.stringify(text)} is not an IP address`);
  return ip;
}

// ---------------------------------------------------------------------------
// Records

function servicePorts(spec: Json, path: string): ServicePort[] {
  return optArray(spec, 'ports', `${path}.ports`).map((raw, i) => {
    const p = arrayItem(raw, `${path}.ports[${i}]`);
    const port = optPort(p, 'port', `${path}.ports[${i}].port`);
    if (port === null) throw new ConvertError(`${path}.ports[${i}].port: missing`);
    return {
      name: (optString(p, 'name', `${path}.ports[${i}].name`) ?? '').toLowerCase(),
      protocol: (optString(p, 'protocol', `${path}.ports[${i}].protocol`) ?? 'TCP').toLowerCase(),
      port,
    };
  });
}

/**
 * What k8s_external answers for a Service (K8SX-2): spec.externalIPs, then
 * each load-balancer ingress's ip, or its hostname when it has no ip, in
 * CoreDNS's order. Kept for every type of Service, as CoreDNS does.
 */
function externalAddresses(obj: Json, spec: Json): string[] {
  const out: string[] = [];
  optArray(spec, 'externalIPs', 'spec.externalIPs').forEach((ip, i) => out.push(requireIP(ip, `spec.externalIPs[${i}]`)));
  const status = optObject(obj, 'status', 'status');
  const loadBalancer = status && optObject(status, 'loadBalancer', 'status.loadBalancer');
  if (!loadBalancer) return out;
  optArray(loadBalancer, 'ingress', 'status.loadBalancer.ingress').forEach((raw, i) => {
    const path = `status.loadBalancer.ingress[${i}]`;
    const ingress = arrayItem(raw, path);
    const ip = optString(ingress, 'ip', `${path}.ip`);
    const hostname = optString(ingress, 'hostname', `${path}.hostname`);
    if (ip) out.push(requireIP(ip, `${path}.ip`));
    else if (hostname) out.push(hostname);
  });
  return out;
}

/** A v1 Service. ExternalName Services have no cluster IPs; headless ones have clusterIP None. */
export function toServiceRecord(obj: unknown): ServiceRecord {
  const { namespace, name } = objectKey(obj);
  const spec = optObject(obj as Json, 'spec', 'spec') ?? {};
  const type = optString(spec, 'type', 'spec.type') ?? 'ClusterIP';
  const clusterIP = optString(spec, 'clusterIP', 'spec.clusterIP');
  const ports = servicePorts(spec, 'spec');
  const external = externalAddresses(obj as Json, spec);
  // Only Services that have some carry the field: the records stay as small as before.
  const externalIPs = external.length > 0 ? { externalIPs: external } : {};
  if (type === 'ExternalName') {
    const externalName = optString(spec, 'externalName', 'spec.externalName');
    if (!externalName) throw new ConvertError('spec.externalName: required for type ExternalName');
    return { namespace, name, clusterIPs: [], headless: false, externalName, ports, ...externalIPs };
  }
  const headless = clusterIP === 'None';
  const clusterIPs: string[] = [];
  if (!headless) {
    const listed = optArray(spec, 'clusterIPs', 'spec.clusterIPs');
    const raw = listed.length > 0 ? listed : clusterIP ? [clusterIP] : [];
    raw.forEach((ip, i) => {
      if (ip === 'None' || ip === '') return;
      const normal = requireIP(ip, listed.length > 0 ? `spec.clusterIPs[${i}]` : 'spec.clusterIP');
      if (!clusterIPs.includes(normal)) clusterIPs.push(normal);
    });
  }
  return { namespace, name, clusterIPs, headless, externalName: null, ports, ...externalIPs };
}

/**
 * A discovery.k8s.io/v1 EndpointSlice, or null when it gives no record:
 * addressType FQDN (KP-33) or no kubernetes.io/service-name label.
 */
export function toEndpointSliceRecord(obj: unknown): EndpointSliceRecord | null {
  const { namespace, name } = objectKey(obj);
  const o = obj as Json;
  const serviceName = labelsOf(obj)[SERVICE_NAME_LABEL];
  const addressType = optString(o, 'addressType', 'addressType');
  if (addressType === 'FQDN') return null;
  if (addressType !== 'IPv4' && addressType !== 'IPv6') {
    throw new ConvertError(`addressType: expected IPv4, IPv6 or FQDN, got ${JSON.stringify(addressType)}`);
  }
  if (!serviceName) return null;
  let allIPv4 = true;
  const endpoints: EndpointRecord[] = [];
  optArray(o, 'endpoints', 'endpoints').forEach((raw, i) => {
    const path = `endpoints[${i}]`;
    const ep = arrayItem(raw, path);
    const addresses: string[] = [];
    optArray(ep, 'addresses', `${path}.addresses`).forEach((a, j) => {
      const ip = requireIP(a, `${path}.addresses[${j}]`);
      if (addressType === 'IPv4' && !net.isIPv4(ip)) {
        throw new ConvertError(`${path}.addresses[${j}]: ${JSON.stringify(a)} is not an IPv4 address`);
      }
      if (!net.isIPv4(ip)) allIPv4 = false;
      if (!addresses.includes(ip)) addresses.push(ip);
    });
    if (addresses.length === 0) return;
    const conditions = optObject(ep, 'conditions', `${path}.conditions`);
    const ready = conditions ? optBoolean(conditions, 'ready', `${path}.conditions.ready`) !== false : true;
    const targetRef = optObject(ep, 'targetRef', `${path}.targetRef`);
    const podName =
      targetRef && optString(targetRef, 'kind', `${path}.targetRef.kind`) === 'Pod'
        ? optString(targetRef, 'name', `${path}.targetRef.name`)?.toLowerCase() ?? null
        : null;
    endpoints.push({
      addresses,
      ready,
      hostname: optString(ep, 'hostname', `${path}.hostname`)?.toLowerCase() || null,
      podName,
      zone: optString(ep, 'zone', `${path}.zone`) || null,
    });
  });
  const ports: ServicePort[] = [];
  optArray(o, 'ports', 'ports').forEach((raw, i) => {
    const p = arrayItem(raw, `ports[${i}]`);
    const port = optPort(p, 'port', `ports[${i}].port`);
    if (port === null) return; // "all ports": nothing a DNS name can carry
    ports.push({
      name: (optString(p, 'name', `ports[${i}].name`) ?? '').toLowerCase(),
      protocol: (optString(p, 'protocol', `ports[${i}].protocol`) ?? 'TCP').toLowerCase(),
      port,
    });
  });
  return {
    namespace,
    name,
    serviceName: serviceName.toLowerCase(),
    // An IPv6 slice whose addresses are all IPv4-mapped counts as IPv4 (KP-33).
    addressType: addressType === 'IPv6' && allIPv4 && endpoints.length > 0 ? 'IPv4' : addressType,
    endpoints,
    ports,
    lastChangeTriggerTime: parseTime(annotationsOf(obj)[LAST_CHANGE_TRIGGER_TIME]),
  };
}

function parseTime(text: string | undefined): number | null {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

/**
 * A core/v1 Endpoints object as the EndpointSlice mirroring controller would
 * turn it into slices: one record per subset and address family, named
 * `<name>-<subset>-ipv4|ipv6`. `addresses` are ready, `notReadyAddresses`
 * are not (K8S-15).
 */
export function endpointsToSliceRecords(obj: unknown): EndpointSliceRecord[] {
  const { namespace, name } = objectKey(obj);
  const lastChangeTriggerTime = parseTime(annotationsOf(obj)[LAST_CHANGE_TRIGGER_TIME]);
  const records: EndpointSliceRecord[] = [];
  optArray(obj as Json, 'subsets', 'subsets').forEach((raw, s) => {
    const subset = arrayItem(raw, `subsets[${s}]`);
    const ports: ServicePort[] = optArray(subset, 'ports', `subsets[${s}].ports`).map((rawPort, i) => {
      const p = arrayItem(rawPort, `subsets[${s}].ports[${i}]`);
      const port = optPort(p, 'port', `subsets[${s}].ports[${i}].port`);
      if (port === null) throw new ConvertError(`subsets[${s}].ports[${i}].port: missing`);
      return {
        name: (optString(p, 'name', `subsets[${s}].ports[${i}].name`) ?? '').toLowerCase(),
        protocol: (optString(p, 'protocol', `subsets[${s}].ports[${i}].protocol`) ?? 'TCP').toLowerCase(),
        port,
      };
    });
    const byFamily: Record<'IPv4' | 'IPv6', EndpointRecord[]> = { IPv4: [], IPv6: [] };
    for (const [field, ready] of [['addresses', true], ['notReadyAddresses', false]] as const) {
      optArray(subset, field, `subsets[${s}].${field}`).forEach((rawAddress, i) => {
        const path = `subsets[${s}].${field}[${i}]`;
        const a = arrayItem(rawAddress, path);
        const ip = requireIP(a.ip, `${path}.ip`);
        const targetRef = optObject(a, 'targetRef', `${path}.targetRef`);
        byFamily[net.isIPv4(ip) ? 'IPv4' : 'IPv6'].push({
          addresses: [ip],
          ready,
          hostname: optString(a, 'hostname', `${path}.hostname`)?.toLowerCase() || null,
          podName:
            targetRef && optString(targetRef, 'kind', `${path}.targetRef.kind`) === 'Pod'
              ? optString(targetRef, 'name', `${path}.targetRef.name`)?.toLowerCase() ?? null
              : null,
          zone: null,
        });
      });
    }
    for (const family of ['IPv4', 'IPv6'] as const) {
      if (byFamily[family].length === 0) continue;
      records.push({
        namespace,
        name: `${name}-${s}-${family.toLowerCase()}`,
        serviceName: name,
        addressType: family,
        endpoints: byFamily[family],
        ports,
        lastChangeTriggerTime,
      });
    }
  });
  return records;
}

/** A v1 Pod, or null when it has no status.podIP yet. Only the primary IP (KP-9). */
export function toPodRecord(obj: unknown): PodRecord | null {
  const { namespace, name } = objectKey(obj);
  const status = optObject(obj as Json, 'status', 'status');
  const podIP = status ? optString(status, 'podIP', 'status.podIP') : null;
  if (!podIP) return null;
  return { namespace, name, ip: requireIP(podIP, 'status.podIP') };
}

export function toNamespaceRecord(obj: unknown): NamespaceRecord {
  return { name: objectKey(obj).name };
}
