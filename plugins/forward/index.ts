// forward: sends queries to upstream resolvers (FWD-1..12).
//
// The chain holds one handler per plugin name, so this one instance keeps
// every `forward` line of the block and runs them in Corefile order: a line
// that does not take a name, or hands it on with `next`, passes it to the
// following line, and the last line to the rest of the chain (FWD-3).

import path from 'node:path';
import { createLogger } from '../../src/log.ts';
import { definePlugin, type Next, type PluginInstance, type Request } from '../../src/plugin.ts';
import type { Reply } from '../../src/wire/message.ts';
import { Forward } from './forward.ts';
import { parseForwardDirectives, type ForwardConfig } from './setup.ts';

export { Forward } from './forward.ts';
export { limits as forwardLimits, timing as forwardTiming } from './proxy.ts';
export type { ForwardConfig } from './setup.ts';

export interface ForwardInstance {
  /** The forward lines, in Corefile order. */
  readonly forwards: readonly Forward[];
}

export default definePlugin<ForwardConfig[]>({
  name: 'forward',
  parse: (directives, block) =>
    parseForwardDirectives(directives, { baseDir: path.dirname(block.corefile), log: createLogger('forward', block.log) }),
  create(configs) {
    const forwards = configs.map((config) => new Forward(config));
    const last = forwards.length - 1;
    const serveFrom = (index: number, request: Request, next: Next): Reply | Promise<Reply> => {
      if (index === last) return forwards[index]!.serve(request, next, false);
      return forwards[index]!.serve(request, (passed) => serveFrom(index + 1, passed, next), true);
    };
    const instance: PluginInstance & ForwardInstance = {
      forwards,
      serve: (request, next) => serveFrom(0, request, next),
      stop() {
        for (const forward of forwards) forward.stop();
      },
    };
    return instance;
  },
});
