// Starting and stopping a plan's plugins. Hooks run in registry order, block
// by block (CF-19); a failed start stops what already started.

import type { ServerPlan } from './config.ts';
import type { PluginEntry, PluginInstance } from './plugin.ts';
import { goListenError } from './server.ts';

function entries(plan: ServerPlan): PluginEntry[] {
  return plan.blocks.flatMap((block) => block.plugins);
}

function instances(plan: ServerPlan): PluginInstance[] {
  return entries(plan).map(({ instance }) => instance);
}

export async function startPlugins(plan: ServerPlan): Promise<void> {
  const started: PluginInstance[] = [];
  try {
    for (const entry of entries(plan)) {
      try {
        await entry.instance.start?.();
      } catch (error) {
        throw startError(entry, error);
      }
      started.push(entry.instance);
    }
  } catch (error) {
    await Promise.allSettled(started.map((instance) => instance.stop?.()));
    throw error;
  }
}

/**
 * A plugin that could not start (health's port taken, say), named with the
 * Corefile line that set it up: `Corefile:4 - plugin/health: listen tcp
 * :8080: bind: address already in use`.
 */
function startError(entry: PluginEntry, error: unknown): Error {
  const failure = error as NodeJS.ErrnoException & { address?: string; port?: number };
  const detail = failure.syscall === 'listen' && failure.port !== undefined
    ? goListenError('tcp', `${failure.address === '::' || failure.address === '0.0.0.0' ? '' : failure.address ?? ''}:${failure.port}`, error)
    : failure.message ?? String(error);
  const prefix = `plugin/${entry.name}: `;
  const message = `${entry.directive.file}:${entry.directive.line} - ${detail.startsWith(prefix) ? '' : prefix}${detail}`;
  return Object.assign(new Error(message, { cause: error }), { code: failure.code });
}

/** SIGTERM, first step: plugins stop watching and /ready turns 503 while DNS still serves. */
export async function shutdownPlugins(plan: ServerPlan): Promise<void> {
  await Promise.allSettled(instances(plan).map((instance) => instance.shutdown?.()));
}

export async function stopPlugins(plan: ServerPlan): Promise<void> {
  await Promise.allSettled(instances(plan).map((instance) => instance.stop?.()));
}
