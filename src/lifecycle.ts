// Starting and stopping a plan's plugins. Hooks run in registry order, block
// by block (CF-19); a failed start stops what already started.

import type { ServerPlan } from './config.ts';
import type { PluginInstance } from './plugin.ts';

function instances(plan: ServerPlan): PluginInstance[] {
  return plan.blocks.flatMap((block) => block.plugins.map(({ instance }) => instance));
}

export async function startPlugins(plan: ServerPlan): Promise<void> {
  const started: PluginInstance[] = [];
  try {
    for (const instance of instances(plan)) {
      await instance.start?.();
      started.push(instance);
    }
  } catch (error) {
    await Promise.allSettled(started.map((instance) => instance.stop?.()));
    throw error;
  }
}

/** SIGTERM, first step: plugins stop watching and /ready turns 503 while DNS still serves. */
export async function shutdownPlugins(plan: ServerPlan): Promise<void> {
  await Promise.allSettled(instances(plan).map((instance) => instance.shutdown?.()));
}

export async function stopPlugins(plan: ServerPlan): Promise<void> {
  await Promise.allSettled(instances(plan).map((instance) => instance.stop?.()));
}
