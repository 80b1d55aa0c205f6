// The package's public API (`import { startServer } from 'clusterdns'`).
// Everything else under src/ and plugins/ is internal and may change.

export { startServer, createCluster } from './embed.ts';
export type { ClusterDnsServer, EmbeddedPlugin, Listener, Resolution, ResolveOptions, ResolvedRecord, StartOptions } from './embed.ts';
export { MemoryCluster } from '../plugins/kubernetes/memory-source.ts';
export type { KubernetesObject, KubernetesObjects } from '../plugins/kubernetes/memory-source.ts';

// Writing a plugin: the contract the built-in ones use, and what a reply is made of.
export { definePlugin, whenReplied } from './plugin.ts';
export type { BlockContext, Handler, Next, PluginDefinition, PluginInstance, Request, Transport } from './plugin.ts';
export type { PluginPlacement } from './registry.ts';
export type { Directive, Token } from './corefile/types.ts';
export { CorefileError } from './corefile/types.ts';
export type { Logger, LogLevel, LogSink } from './log.ts';
export { Class, Rcode, Type } from './wire/constants.ts';
export { emptyReply, ReplyFlag } from './wire/message.ts';
export type { RecordData, Reply, ResourceRecord } from './wire/message.ts';
export type { Query } from './wire/query.ts';
export { VERSION } from './version.ts';
