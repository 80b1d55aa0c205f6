// cache: answers repeated questions from memory (CACHE-1..14). The parser is
// in config.ts, the cache in cache.ts, the metrics plumbing in metrics.ts.

import { definePlugin } from '../../src/plugin.ts';
import { Cache } from './cache.ts';
import { parseCache, type CacheConfig } from './config.ts';

export { Cache, setCacheClock } from './cache.ts';
export type { CacheConfig } from './config.ts';

export default definePlugin<CacheConfig>({
  name: 'cache',
  parse: (directives, block) => parseCache(directives, block.zones),
  create(config, block, log) {
    const cache = new Cache(config, block, log);
    return {
      serve: (request, next) => cache.serve(request, next),
      start: () => cache.start(),
      stop: () => cache.stop(),
      // explain: hit or miss, positive or negative, TTL left; after a miss, what was stored.
      explain: {
        before: (request) => cache.explainLookup(request.query),
        after(request, _reply, step) {
          if (step.detail['entry']) {
            step.outcome = step.detail['stale'] ? 'hit (stale)' : 'hit';
            return;
          }
          if (step.detail['cached'] !== undefined) return;
          step.outcome = 'miss';
          delete step.detail['entry'];
          const stored = cache.explainLookup(request.query);
          step.detail['stored'] = stored['entry'] ? `${stored['entry']} for ${stored['ttlLeft']}s` : 'nothing';
        },
      },
    };
  },
});
