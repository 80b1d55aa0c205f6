// kubernetes: Kubernetes DNS-based service discovery (K8S-*, KP-*).
//
//   setup.ts     Corefile options → KubernetesConfig
//   store.ts     the ClusterStore a source feeds: the compact index
//   answer.ts    (qname, qtype) → Reply, CoreDNS's answer shapes
//   instance.ts  the handler (zone match, memo, fallthrough, pre-sync SERVFAIL) and the source lifecycle
//   api-source.ts / manifests-source.ts  where the objects come from
//   metrics.ts   the plugin's Prometheus metrics (KP-41, KP-42), fed by the API source

import { definePlugin } from '../../src/plugin.ts';
import { KubernetesInstance } from './instance.ts';
import { parseKubernetes, type KubernetesConfig } from './setup.ts';

export { Answers, dashedAddress, DNS_SCHEMA_VERSION, NAME_ERROR } from './answer.ts';
export { defaultSourceFactory, hostAddresses, KubernetesInstance, MEMO_LIMIT, type InstanceOptions, type SourceFactory } from './instance.ts';
export { DEFAULT_STARTUP_TIMEOUT_MS, DEFAULT_TTL, parseKubernetes, type KubernetesConfig, type PodMode, type SourceChoice } from './setup.ts';
export { ClusterIndex, createClusterIndex, type IndexCounts, type IndexOptions } from './store.ts';

export default definePlugin<KubernetesConfig>({
  name: 'kubernetes',
  parse: parseKubernetes,
  create: (config, block, log) => new KubernetesInstance(config, block, log),
});
