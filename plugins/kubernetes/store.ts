// The cluster index behind the kubernetes plugin: the ClusterStore a source
// feeds, and the synchronous lookups answers are built from (KP-28).
//
// Memory per object is the point (users.md P3, STOCK-8): records are copied
// into a compact form on the way in (only ready endpoints, only the fields
// answers read, namespaces and port lists shared between objects), and the
// indexes hold those records, never per-object closures or copies of strings.
//
//   services        namespace → name → ServiceRecord
//   slices          namespace → slice name → IndexedSlice
//   slicesBySvc     namespace → service name → slice(s) carrying that service-name label
//   clusterIPs      cluster IP → service(s)             (PTR, K8S-22)
//   endpointIPs     ready endpoint IP → slice(s)        (PTR K8S-21, NS K8S-31)
//   namespaces      the namespaces that exist (and match namespace_labels)
//   pods            IP → pod(s), namespace → name → pod (pods verified only, KP-9;
//                   autopath finds a client's namespace here)
//   externalIPs     external IP → service(s)             (k8s_external PTR, K8SX-2)
//
// Every mutation bumps `generation`, which answer memos are checked against,
// so a change is visible to the next query (ARCHITECTURE: the kubernetes plugin).
//
// A list from the API server goes in through beginReplace, page by page, in
// place (mark and sweep): an unchanged record keeps the instance already
// indexed, and commit drops what the list did not contain. So a re-list
// holds one index, not an old one and a new one, and allocates next to
// nothing that outlives it. At 50k Services (131k endpoints) the index is
// about 210 B of V8 heap per Service+endpoint: it is mostly Map entries,
// object headers and address strings (see README.md, Memory).

import type {
  ClusterStore,
  EndpointSliceRecord,
  NamespaceRecord,
  PodRecord,
  ReplaceSession,
  ServicePort,
  ServiceRecord,
} from './model.ts';
import { canonicalIP } from './reverse.ts';

/**
 * An EndpointSlice as the index keeps it: only its ready addresses (K8S-15),
 * flattened, with the endpoint's hostname and pod name in parallel arrays
 * (null when no endpoint has one), instead of an object and an array per
 * endpoint.
 */
export interface IndexedSlice {
  readonly namespace: string;
  readonly name: string;
  /** The kubernetes.io/service-name label. */
  readonly serviceName: string;
  /** Ready addresses, canonical (IPv4-mapped IPv6 as IPv4). */
  readonly addresses: readonly string[];
  /** hostnames[i] is the hostname of the endpoint holding addresses[i]. */
  readonly hostnames: readonly (string | null)[] | null;
  /** podNames[i] is the targetRef pod name of that endpoint (kept for endpoint_pod_names only). */
  readonly podNames: readonly (string | null)[] | null;
  readonly ports: readonly ServicePort[];
}

/** One record, or several when more than one object shares the key (rare). */
type OneOrMore<T> = T | T[];

const none: readonly never[] = Object.freeze([]);

function addTo<T>(map: Map<string, OneOrMore<T>>, key: string, value: T): void {
  const current = map.get(key);
  if (current === undefined) {
    map.set(key, value);
  } else if (Array.isArray(current)) {
    if (!current.includes(value)) current.push(value);
  } else if (current !== value) {
    map.set(key, [current, value]);
  }
}

function removeFrom<T>(map: Map<string, OneOrMore<T>>, key: string, value: T): void {
  const current = map.get(key);
  if (current === undefined) return;
  if (!Array.isArray(current)) {
    if (current === value) map.delete(key);
    return;
  }
  const index = current.indexOf(value);
  if (index === -1) return;
  current.splice(index, 1);
  if (current.length === 1) map.set(key, current[0]!);
  else if (current.length === 0) map.delete(key);
}

/** Element-wise equality of two record arrays (null for an absent list). */
function sameList<T>(a: readonly T[] | null, b: readonly T[] | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function listOf<T>(value: OneOrMore<T> | undefined): readonly T[] {
  if (value === undefined) return none;
  return Array.isArray(value) ? value : [value];
}

function nested<T>(map: Map<string, Map<string, T>>, outer: string): Map<string, T> {
  let inner = map.get(outer);
  if (inner === undefined) {
    inner = new Map();
    map.set(outer, inner);
  }
  return inner;
}

function deleteNested<T>(map: Map<string, Map<string, T>>, outer: string, inner: string): T | undefined {
  const byName = map.get(outer);
  if (byName === undefined) return undefined;
  const value = byName.get(inner);
  if (value === undefined) return undefined;
  byName.delete(inner);
  if (byName.size === 0) map.delete(outer);
  return value;
}

export interface IndexOptions {
  /** Keep endpoints' pod names (endpoint_pod_names, KP-10); dropped otherwise to save memory. */
  keepPodNames?: boolean;
  /** Clock for the SOA serial, in ms (tests). */
  now?: () => number;
}

export interface IndexCounts {
  services: number;
  endpointSlices: number;
  readyAddresses: number;
  namespaces: number;
  pods: number;
}

export class ClusterIndex implements ClusterStore {
  /** Bumped by every mutation; answer memos compare against it. */
  generation = 0;
  /** The source has listed everything once (KP-24..26). */
  synced = false;
  /** Unix seconds of the last Service/EndpointSlice/Pod change: the SOA serial (K8S-30). */
  serial: number;
  /**
   * Unix seconds of the last change of an existing Service's external IPs or
   * ports: k8s_external's SOA serial (K8SX-3). 0 until one happens: as in
   * CoreDNS, adding or deleting a Service does not move it.
   */
  externalSerial = 0;

  private readonly services = new Map<string, Map<string, ServiceRecord>>();
  private readonly slices = new Map<string, Map<string, IndexedSlice>>();
  private readonly slicesBySvc = new Map<string, Map<string, OneOrMore<IndexedSlice>>>();
  private readonly clusterIPs = new Map<string, OneOrMore<ServiceRecord>>();
  private readonly endpointIPs = new Map<string, OneOrMore<IndexedSlice>>();
  private readonly namespaceSet = new Set<string>();
  private readonly podsByIP = new Map<string, OneOrMore<PodRecord>>();
  private readonly podsByName = new Map<string, Map<string, PodRecord>>();
  private readonly externalIPIndex = new Map<string, OneOrMore<ServiceRecord>>();
  /** Shared instances: namespace names, and port lists (most Services have the same few). */
  private readonly strings = new Map<string, string>();
  private readonly portLists = new Map<string, readonly ServicePort[]>();
  private syncWaiters: (() => void)[] = [];
  /** explain: addresses of not-ready endpoints, only for slices that have some (publishNotReadyAddresses off). */
  private readonly notReady = new Map<IndexedSlice, number>();
  private readonly keepPodNames: boolean;
  private readonly now: () => number;

  constructor(options: IndexOptions = {}) {
    this.keepPodNames = options.keepPodNames ?? true;
    this.now = options.now ?? Date.now;
    this.serial = Math.floor(this.now() / 1000);
  }

  // ---- reads (synchronous map lookups) ----

  service(namespace: string, name: string): ServiceRecord | undefined {
    return this.services.get(namespace)?.get(name);
  }

  /** The slices labelled with this service name, in arrival order. */
  slicesFor(namespace: string, service: string): readonly IndexedSlice[] {
    return listOf(this.slicesBySvc.get(namespace)?.get(service));
  }

  hasNamespace(name: string): boolean {
    return this.namespaceSet.has(name);
  }

  servicesByClusterIP(ip: string): readonly ServiceRecord[] {
    return listOf(this.clusterIPs.get(ip));
  }

  /** Slices with a ready endpoint at `ip` (CoreDNS's EpIndexReverse). */
  slicesByEndpointIP(ip: string): readonly IndexedSlice[] {
    return listOf(this.endpointIPs.get(ip));
  }

  podsWithIP(ip: string): readonly PodRecord[] {
    return listOf(this.podsByIP.get(ip));
  }

  /** Services with `ip` among their external IPs (CoreDNS's SvcExtIndexReverse). */
  servicesByExternalIP(ip: string): readonly ServiceRecord[] {
    return listOf(this.externalIPIndex.get(ip));
  }

  /** explain: how many addresses of the Service's endpoints are not ready (never answered, K8S-15). */
  notReadyAddresses(namespace: string, service: string): number {
    let count = 0;
    for (const slice of this.slicesFor(namespace, service)) count += this.notReady.get(slice) ?? 0;
    return count;
  }

  /** Resolves when the source calls markSynced (at once if it has). */
  whenSynced(callback: () => void): void {
    if (this.synced) callback();
    else this.syncWaiters.push(callback);
  }

  counts(): IndexCounts {
    let services = 0;
    let endpointSlices = 0;
    let readyAddresses = 0;
    let pods = 0;
    for (const byName of this.services.values()) services += byName.size;
    for (const byName of this.slices.values()) {
      endpointSlices += byName.size;
      for (const slice of byName.values()) readyAddresses += slice.addresses.length;
    }
    for (const byName of this.podsByName.values()) pods += byName.size;
    return { services, endpointSlices, readyAddresses, namespaces: this.namespaceSet.size, pods };
  }

  // ---- ClusterStore ----

  upsertService(service: ServiceRecord): void {
    this.putService(service);
    this.changed(true);
  }

  deleteService(namespace: string, name: string): void {
    this.dropService(namespace, name);
    this.changed(true);
  }

  upsertEndpointSlice(slice: EndpointSliceRecord): void {
    this.putSlice(slice);
    this.changed(true);
  }

  deleteEndpointSlice(namespace: string, name: string): void {
    this.dropSlice(namespace, name);
    this.changed(true);
  }

  upsertNamespace(namespace: NamespaceRecord): void {
    this.namespaceSet.add(this.shared(namespace.name));
    this.changed(false);
  }

  deleteNamespace(name: string): void {
    this.namespaceSet.delete(name);
    this.changed(false);
  }

  upsertPod(pod: PodRecord): void {
    this.putPod(pod);
    this.changed(true);
  }

  deletePod(namespace: string, name: string): void {
    this.dropPod(namespace, name);
    this.changed(true);
  }

  replaceAll(kind: 'Service', records: ServiceRecord[]): void;
  replaceAll(kind: 'EndpointSlice', records: EndpointSliceRecord[]): void;
  replaceAll(kind: 'Namespace', records: NamespaceRecord[]): void;
  replaceAll(kind: 'Pod', records: PodRecord[]): void;
  replaceAll(kind: 'Service' | 'EndpointSlice' | 'Namespace' | 'Pod', records: unknown[]): void {
    switch (kind) {
      case 'Service': {
        // Kept aside so that a changed Service still counts as an update (externalSerial).
        const previous = new Map(this.services);
        this.services.clear();
        this.clusterIPs.clear();
        this.externalIPIndex.clear();
        for (const record of records as ServiceRecord[]) this.putService(record, previous.get(record.namespace)?.get(record.name));
        break;
      }
      case 'EndpointSlice':
        this.slices.clear();
        this.slicesBySvc.clear();
        this.endpointIPs.clear();
        this.notReady.clear();
        for (const record of records as EndpointSliceRecord[]) this.putSlice(record);
        break;
      case 'Namespace':
        this.namespaceSet.clear();
        for (const record of records as NamespaceRecord[]) this.namespaceSet.add(this.shared(record.name));
        break;
      case 'Pod':
        this.podsByIP.clear();
        this.podsByName.clear();
        for (const record of records as PodRecord[]) this.putPod(record);
        break;
    }
    this.changed(kind !== 'Namespace');
  }

  beginReplace(kind: 'Service'): ReplaceSession<ServiceRecord>;
  beginReplace(kind: 'EndpointSlice'): ReplaceSession<EndpointSliceRecord>;
  beginReplace(kind: 'Namespace'): ReplaceSession<NamespaceRecord>;
  beginReplace(kind: 'Pod'): ReplaceSession<PodRecord>;
  beginReplace(kind: 'Service' | 'EndpointSlice' | 'Namespace' | 'Pod'): ReplaceSession<unknown> {
    // Mark and sweep in place: each listed record is put into the live index
    // at once (an unchanged one keeps the record already there, so a re-list
    // of an unchanged cluster allocates next to nothing that survives), and
    // commit drops whatever the list did not contain. `seen` holds the kept
    // records (namespace names for Namespaces) for the life of the list only.
    const seen = new Set<unknown>();
    const touches = kind !== 'Namespace';
    let add: (record: unknown) => void;
    let sweep: () => void;
    switch (kind) {
      case 'Service':
        add = (record) => seen.add(this.putService(record as ServiceRecord));
        sweep = () => this.sweepNested(this.services, seen, (ns, name) => this.dropService(ns, name));
        break;
      case 'EndpointSlice':
        add = (record) => seen.add(this.putSlice(record as EndpointSliceRecord));
        sweep = () => this.sweepNested(this.slices, seen, (ns, name) => this.dropSlice(ns, name));
        break;
      case 'Namespace':
        add = (record) => {
          const name = this.shared((record as NamespaceRecord).name);
          if (!this.namespaceSet.has(name)) this.namespaceSet.add(name);
          seen.add(name);
        };
        sweep = () => {
          for (const name of this.namespaceSet) if (!seen.has(name)) this.namespaceSet.delete(name);
        };
        break;
      case 'Pod':
        add = (record) => seen.add(this.putPod(record as PodRecord));
        sweep = () => this.sweepNested(this.podsByName, seen, (ns, name) => this.dropPod(ns, name));
        break;
    }
    return {
      add: (record) => {
        add(record);
        // Answers see the new record from now on; memos are checked against generation.
        this.generation++;
      },
      commit: () => {
        sweep();
        seen.clear();
        this.changed(touches);
      },
    };
  }

  markSynced(): void {
    const first = !this.synced;
    this.synced = true;
    this.generation++;
    if (first) {
      const waiters = this.syncWaiters;
      this.syncWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  // ---- internals ----

  private changed(touchesSerial: boolean): void {
    this.generation++;
    if (touchesSerial) this.serial = Math.floor(this.now() / 1000);
  }

  /** Drops every record of `map` that is not in `seen` (deleting while iterating a Map is safe). */
  private sweepNested<T>(map: Map<string, Map<string, T>>, seen: Set<unknown>, drop: (namespace: string, name: string) => void): void {
    for (const [namespace, byName] of map) {
      for (const [name, record] of byName) if (!seen.has(record)) drop(namespace, name);
    }
  }

  /** One instance per distinct string (namespace names repeat across thousands of objects). */
  private shared(text: string): string {
    const known = this.strings.get(text);
    if (known !== undefined) return known;
    this.strings.set(text, text);
    return text;
  }

  private ports(ports: readonly ServicePort[]): readonly ServicePort[] {
    if (ports.length === 0) return none;
    let key = '';
    for (const port of ports) key += `${port.name}/${port.protocol}/${port.port} `;
    const known = this.portLists.get(key);
    if (known !== undefined) return known;
    const list = Object.freeze(ports.map((port) => Object.freeze({ name: port.name, protocol: port.protocol, port: port.port })));
    this.portLists.set(key, list);
    return list;
  }

  /**
   * Puts a Service; returns the record the index keeps (the one already there
   * when nothing changed). `before` is the Service as known before a
   * replaceAll emptied the index.
   */
  private putService(input: ServiceRecord, before?: ServiceRecord): ServiceRecord {
    const namespace = this.shared(input.namespace);
    const clusterIPs: string[] = [];
    if (!input.headless && input.externalName === null) {
      for (const ip of input.clusterIPs) {
        const canonical = canonicalIP(ip);
        if (canonical !== null && !clusterIPs.includes(canonical)) clusterIPs.push(canonical);
      }
    }
    // The Service and EndpointSlice lists run concurrently: when its slices came
    // first, share their copy of the name (the slices' group key) instead of a second one.
    const group = this.slicesBySvc.get(namespace)?.get(input.name);
    const service: ServiceRecord = {
      namespace,
      name: group === undefined ? input.name : listOf(group)[0]!.serviceName,
      clusterIPs: clusterIPs.length === 0 ? (none as unknown as string[]) : clusterIPs.slice(),
      headless: input.headless,
      externalName: input.externalName,
      ports: this.ports(input.ports) as ServicePort[],
    };
    // Only the few Services with external IPs or load-balancer ingress carry the field.
    if (input.externalIPs !== undefined && input.externalIPs.length > 0) service.externalIPs = input.externalIPs.slice();
    const old = this.services.get(namespace)?.get(input.name) ?? before;
    if (
      old !== undefined &&
      old.headless === service.headless &&
      old.externalName === service.externalName &&
      old.ports === service.ports &&
      sameList(old.clusterIPs, service.clusterIPs) &&
      sameList(old.externalIPs ?? null, service.externalIPs ?? null)
    ) {
      if (old === before) this.index(old);
      return old;
    }
    // CoreDNS's serviceModified: an update of external IPs or ports moves the external zone's serial.
    if (old !== undefined && (old.ports !== service.ports || !sameList(old.externalIPs ?? null, service.externalIPs ?? null))) {
      this.externalSerial = Math.floor(this.now() / 1000);
    }
    this.dropService(namespace, input.name);
    this.index(service);
    return service;
  }

  private index(service: ServiceRecord): void {
    nested(this.services, service.namespace).set(service.name, service);
    for (const ip of service.clusterIPs) addTo(this.clusterIPs, ip, service);
    for (const ip of service.externalIPs ?? none) addTo(this.externalIPIndex, ip, service);
  }

  private dropService(namespace: string, name: string): void {
    const old = deleteNested(this.services, namespace, name);
    if (!old) return;
    for (const ip of old.clusterIPs) removeFrom(this.clusterIPs, ip, old);
    for (const ip of old.externalIPs ?? none) removeFrom(this.externalIPIndex, ip, old);
  }

  /** Puts a slice; returns the slice the index keeps (the one already there when nothing changed). */
  private putSlice(input: EndpointSliceRecord): IndexedSlice {
    const namespace = this.shared(input.namespace);
    // Only ready endpoints are ever answered (K8S-15); the rest is not kept.
    const addresses: string[] = [];
    let hostnames: (string | null)[] | null = null;
    let podNames: (string | null)[] | null = null;
    let notReady = 0;
    for (const endpoint of input.endpoints) {
      if (!endpoint.ready) {
        notReady += endpoint.addresses.length;
        continue;
      }
      const hostname = endpoint.hostname || null;
      const podName = this.keepPodNames ? endpoint.podName || null : null;
      for (const address of endpoint.addresses) {
        const canonical = canonicalIP(address);
        if (canonical === null) continue;
        if (hostname !== null && hostnames === null) hostnames = addresses.map(() => null);
        if (podName !== null && podNames === null) podNames = addresses.map(() => null);
        addresses.push(canonical);
        hostnames?.push(hostname);
        podNames?.push(podName);
      }
    }
    const ports = this.ports(input.ports);
    const old = this.slices.get(namespace)?.get(input.name);
    if (
      old !== undefined &&
      old.serviceName === input.serviceName &&
      old.ports === ports &&
      sameList(old.addresses, addresses) &&
      sameList(old.hostnames, hostnames) &&
      sameList(old.podNames, podNames)
    ) {
      this.countNotReady(old, notReady);
      return old;
    }
    this.dropSlice(namespace, input.name);
    const service = this.service(namespace, input.serviceName);
    const slice: IndexedSlice = {
      namespace,
      name: input.name,
      // Share the Service's copy of the name when it is known.
      serviceName: service ? service.name : input.serviceName,
      // slice(): arrays grown by push carry spare capacity; the copies are exact.
      addresses: addresses.length === 0 ? none : addresses.slice(),
      hostnames: hostnames && hostnames.slice(),
      podNames: podNames && podNames.slice(),
      ports,
    };
    nested(this.slices, namespace).set(slice.name, slice);
    addTo(nested(this.slicesBySvc, namespace), slice.serviceName, slice);
    for (const ip of slice.addresses) addTo(this.endpointIPs, ip, slice);
    this.countNotReady(slice, notReady);
    return slice;
  }

  private countNotReady(slice: IndexedSlice, count: number): void {
    if (count > 0) this.notReady.set(slice, count);
    else this.notReady.delete(slice);
  }

  private dropSlice(namespace: string, name: string): void {
    const old = deleteNested(this.slices, namespace, name);
    if (!old) return;
    this.notReady.delete(old);
    const group = this.slicesBySvc.get(namespace);
    if (group) {
      removeFrom(group, old.serviceName, old);
      if (group.size === 0) this.slicesBySvc.delete(namespace);
    }
    for (const ip of old.addresses) removeFrom(this.endpointIPs, ip, old);
  }

  /** Puts a pod; returns the record the index keeps (the one already there when nothing changed). */
  private putPod(input: PodRecord): PodRecord {
    const namespace = this.shared(input.namespace);
    const old = this.podsByName.get(namespace)?.get(input.name);
    if (old !== undefined && old.ip === input.ip) return old;
    this.dropPod(namespace, input.name);
    // Pods are matched on the address text as the query spells it (K8S-27), so keep it as stored.
    const pod: PodRecord = { namespace, name: input.name, ip: input.ip };
    nested(this.podsByName, namespace).set(pod.name, pod);
    if (pod.ip) addTo(this.podsByIP, pod.ip, pod);
    return pod;
  }

  private dropPod(namespace: string, name: string): void {
    const old = deleteNested(this.podsByName, namespace, name);
    if (old && old.ip) removeFrom(this.podsByIP, old.ip, old);
  }
}

/** A fresh, empty store (the plugin creates one per server block). */
export function createClusterIndex(options?: IndexOptions): ClusterIndex {
  return new ClusterIndex(options);
}
