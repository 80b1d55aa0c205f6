// The compact view of a cluster the kubernetes plugin keeps: only the fields
// DNS answers need, never whole API objects (users.md P3: informer caches of
// full objects are why CoreDNS needs 170–340 Mi at scale).
//
// Sources (the API server through list/watch, or manifests on disk) turn
// objects into these records and feed a ClusterStore; the index behind the
// store never knows which source fed it.

export interface ServicePort {
  /** Lowercased; '' for an unnamed port. */
  name: string;
  /** Lowercased: tcp, udp, sctp. */
  protocol: string;
  port: number;
}

export interface ServiceRecord {
  /** Lowercased. */
  namespace: string;
  name: string;
  /** spec.clusterIPs (or spec.clusterIP); empty for headless and ExternalName Services. */
  clusterIPs: string[];
  /** spec.clusterIP is "None". */
  headless: boolean;
  /** spec.externalName for type ExternalName, as stored; null otherwise. */
  externalName: string | null;
  ports: ServicePort[];
  /**
   * spec.externalIPs, then status.loadBalancer.ingress (the ip, else the
   * hostname), in that order (k8s_external, K8SX-2). IPs canonical,
   * hostnames as given. Absent when there are none (most Services).
   */
  externalIPs?: string[];
}

export interface EndpointRecord {
  addresses: string[];
  /** conditions.ready, where absent/null counts as true (K8S-15). */
  ready: boolean;
  /** The endpoint's hostname field (StatefulSet pods), if any. */
  hostname: string | null;
  /** targetRef.name when targetRef.kind is Pod (endpoint_pod_names, KP-10). */
  podName: string | null;
  /** The slice's zone for this endpoint (zonal grammar, KP-40); null when unset. */
  zone: string | null;
}

export interface EndpointSliceRecord {
  namespace: string;
  name: string;
  /** The kubernetes.io/service-name label, lowercased; slices without it are ignored. */
  serviceName: string;
  /** FQDN slices are dropped by sources (KP-33). */
  addressType: 'IPv4' | 'IPv6';
  endpoints: EndpointRecord[];
  ports: ServicePort[];
  /** endpoints.kubernetes.io/last-change-trigger-time in ms since the epoch, for KP-41. */
  lastChangeTriggerTime: number | null;
}

export interface PodRecord {
  namespace: string;
  name: string;
  /** status.podIP (KP-9: primary IP only). */
  ip: string;
}

export interface NamespaceRecord {
  name: string;
}

/** Where a source delivers changes. Every call bumps the store's generation. */
export interface ClusterStore {
  upsertService(service: ServiceRecord): void;
  deleteService(namespace: string, name: string): void;
  upsertEndpointSlice(slice: EndpointSliceRecord): void;
  deleteEndpointSlice(namespace: string, name: string): void;
  upsertNamespace(namespace: NamespaceRecord): void;
  deleteNamespace(name: string): void;
  upsertPod(pod: PodRecord): void;
  deletePod(namespace: string, name: string): void;
  /**
   * Replaces everything of one kind at once (a re-list after 410 Gone, a
   * manifests re-read): objects not in `records` are removed.
   */
  replaceAll(kind: 'Service', records: ServiceRecord[]): void;
  replaceAll(kind: 'EndpointSlice', records: EndpointSliceRecord[]): void;
  replaceAll(kind: 'Namespace', records: NamespaceRecord[]): void;
  replaceAll(kind: 'Pod', records: PodRecord[]): void;
  /**
   * Optional, instead of replaceAll for a paginated list: a session that takes
   * the listed records one page at a time and, on commit, removes the objects
   * of that kind the list did not contain. Records go into the store as they
   * arrive (so a list never holds all its records, and a re-list never holds a
   * second copy of the index); records that still exist are never absent in
   * between. A session that is never committed (the list failed) leaves what
   * it added and removes nothing.
   */
  beginReplace?(kind: 'Service'): ReplaceSession<ServiceRecord>;
  beginReplace?(kind: 'EndpointSlice'): ReplaceSession<EndpointSliceRecord>;
  beginReplace?(kind: 'Namespace'): ReplaceSession<NamespaceRecord>;
  beginReplace?(kind: 'Pod'): ReplaceSession<PodRecord>;
  /** The source has listed everything once (KP-24..26). */
  markSynced(): void;
  /** The Service of that name, if known: lets the API source label KP-41 observations (optional). */
  service?(namespace: string, name: string): ServiceRecord | undefined;
}

/** A list of one kind being applied to a store page by page (ClusterStore.beginReplace). */
export interface ReplaceSession<R> {
  add(record: R): void;
  /** The list is complete: objects of the kind not added in this session are removed. */
  commit(): void;
}

/** What the source must watch, from the plugin's options (KP-8, KP-9, KP-14..16). */
export interface SourceOptions {
  /** Label selector for Services, EndpointSlices and Pods (`labels`), or null. */
  labelSelector: string | null;
  /** Label selector for Namespaces (`namespace_labels`), or null. */
  namespaceLabelSelector: string | null;
  /** `pods verified`: watch Pods. */
  watchPods: boolean;
  /** `noendpoints`: do not watch EndpointSlices. */
  watchEndpoints: boolean;
}

/** A feed of cluster state: the API server, or manifests on disk. */
export interface ClusterSource {
  /** Starts listing and watching into `store`; returns once started, not once synced. */
  start(store: ClusterStore): Promise<void>;
  stop(): Promise<void>;
  /** For logs and /ready details: 'connected', 'reconnecting in 2s after ...', etc. */
  state(): string;
}

/** How to reach the API server (KP-5..7); all null means in-cluster config. */
export interface ApiConnection {
  /** `endpoint URL` (only the first is used). */
  endpoint: string | null;
  /** `tls CERT KEY CACERT`, paths as given (relative to the working directory). */
  tls: { cert: string; key: string; ca: string } | null;
  /** `kubeconfig PATH [CONTEXT]`; takes precedence over endpoint. */
  kubeconfig: { path: string; context: string | null } | null;
}
