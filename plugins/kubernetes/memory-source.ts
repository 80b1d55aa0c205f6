// Kubernetes objects held by the program that embeds clusterdns, as a
// ClusterSource (the Corefile's `memory [NAME]` option). The program applies
// and deletes objects (plain objects or YAML/JSON text) and the next query
// sees the change: each change is applied to every attached store before
// apply() returns, with no polling and no timers.
//
// The objects are the ones the manifests source reads (Namespace, Service,
// Pod, StatefulSet, EndpointSlice, Endpoints), and what a cluster's
// controllers would add is derived the same way (buildCluster), so a
// selector Service gets endpoints from its Pods without the program writing
// EndpointSlices. Each change rebuilds the cluster from all objects: meant for
// tests and development tools with hundreds of objects, not for 50k Services.

import { parseAllDocuments } from 'yaml';
import type { Logger } from '../../src/log.ts';
import { ConvertError, objectKey } from './convert.ts';
import { addObject, buildCluster, ManifestError, parseFile, replaceChangedKinds, type Manifest } from './manifests-source.ts';
import type { ClusterSource, ClusterStore, SourceOptions } from './model.ts';

/** A Kubernetes object as a plain value: at least `kind` and `metadata.name`. */
export type KubernetesObject = { kind: string; metadata?: { name?: string; namespace?: string; [key: string]: unknown }; [key: string]: unknown };

/** What apply() and delete() take: one object, several, or YAML/JSON text (multi-document, `kind: List`). */
export type KubernetesObjects = KubernetesObject | readonly KubernetesObject[] | string;

const yaml = { parseAllDocuments } as typeof import('yaml');

interface Attached {
  store: ClusterStore;
  options: SourceOptions;
  /** JSON of the records last given to the store, per kind. */
  applied: Map<string, string>;
}

export class MemoryCluster {
  /** kind/namespace/name → the object, in insertion order. */
  private readonly objects = new Map<string, Manifest>();
  private readonly attached = new Set<Attached>();
  private changes = 0;

  constructor(objects?: KubernetesObjects) {
    if (objects !== undefined) this.apply(objects);
  }

  /** Creates or replaces the objects (matched by kind, namespace and name). Throws, changing nothing, on a bad object. */
  apply(objects: KubernetesObjects): void {
    const next = new Map(this.objects);
    for (const manifest of this.manifestsOf(objects, 'apply')) next.set(keyOf(manifest), manifest);
    this.commit(next);
  }

  /** Removes the objects (matched by kind, namespace and name; other fields are ignored). Unknown ones are skipped. */
  delete(objects: KubernetesObjects): void {
    const next = new Map(this.objects);
    for (const manifest of this.manifestsOf(objects, 'delete')) next.delete(keyOf(manifest));
    this.commit(next);
  }

  /** Removes every object. */
  clear(): void {
    this.commit(new Map());
  }

  /** The objects as given, in the order first applied. */
  list(): KubernetesObject[] {
    return [...this.objects.values()].map((manifest) => manifest.obj as KubernetesObject);
  }

  /** A source for one kubernetes plugin instance (what `memory NAME` starts). */
  source(options: SourceOptions, log: Logger): ClusterSource {
    let attached: Attached | null = null;
    return {
      start: async (store) => {
        attached = { store, options, applied: new Map() };
        replaceChangedKinds(store, buildCluster([...this.objects.values()], options), options, attached.applied);
        this.attached.add(attached);
        store.markSynced();
        log.info(`serving ${this.objects.size} objects given by the program`);
      },
      stop: async () => {
        if (attached) this.attached.delete(attached);
      },
      state: () => `${this.objects.size} objects given by the program, ${this.changes} changes`,
    };
  }

  private manifestsOf(objects: KubernetesObjects, verb: string): Manifest[] {
    const manifests: Manifest[] = [];
    if (typeof objects === 'string') {
      parseFile(yaml, `${verb}()`, objects, manifests);
    } else {
      const list = Array.isArray(objects) ? objects : [objects as KubernetesObject];
      list.forEach((object, index) => addObject(object, `${verb}(): object ${index + 1}`, manifests));
    }
    for (const manifest of manifests) keyOf(manifest);
    return manifests;
  }

  /** Builds the cluster for every attached store first, so a bad set of objects changes nothing. */
  private commit(next: Map<string, Manifest>): void {
    const manifests = [...next.values()];
    const built = [...this.attached].map((attached) => ({ attached, cluster: buildCluster(manifests, attached.options) }));
    if (built.length === 0) buildCluster(manifests, { labelSelector: null, namespaceLabelSelector: null, watchPods: true, watchEndpoints: true });
    this.objects.clear();
    for (const [key, manifest] of next) this.objects.set(key, manifest);
    this.changes++;
    for (const { attached, cluster } of built) replaceChangedKinds(attached.store, cluster, attached.options, attached.applied);
  }
}

function keyOf(manifest: Manifest): string {
  try {
    const { namespace, name } = objectKey(manifest.obj);
    return manifest.kind === 'Namespace' ? `Namespace//${name}` : `${manifest.kind}/${namespace}/${name}`;
  } catch (error) {
    if (error instanceof ConvertError) throw new ManifestError(`${manifest.where}: ${manifest.kind}: ${error.message}`);
    throw error;
  }
}
