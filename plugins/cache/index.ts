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
    };
  },
});
