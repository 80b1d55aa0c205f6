// reload: re-read the Corefile periodically and switch to it when it changed (RELOAD-1..7).
// The work is the supervisor's (src/supervisor.ts); this only sets the period.

import { expectArgs, parseDuration, setupError } from '../../src/corefile/setup.ts';
import { definePlugin } from '../../src/plugin.ts';

export interface ReloadConfig {
  intervalMs: number;
  jitterMs: number;
}

const MIN_INTERVAL_MS = 2_000;

export default definePlugin<ReloadConfig>({
  name: 'reload',
  // CF-8: only the first reload line counts.
  parse(directives) {
    const directive = directives[0]!;
    const [intervalToken, jitterToken] = expectArgs(directive, 0, 2);
    const intervalMs = intervalToken ? parseDuration(intervalToken, 'reload interval') : 30_000;
    let jitterMs = jitterToken ? parseDuration(jitterToken, 'reload jitter') : 15_000;
    if (intervalMs < MIN_INTERVAL_MS) throw setupError(intervalToken!, `reload interval must be at least 2s, found '${intervalToken!.text}'`);
    if (jitterMs !== 0 && jitterMs < 1_000) throw setupError(jitterToken!, `reload jitter must be 0 or at least 1s, found '${jitterToken!.text}'`);
    jitterMs = Math.min(jitterMs, intervalMs / 2);
    return { intervalMs, jitterMs };
  },
  create(config, block) {
    block.settings.reload = config;
    return {};
  },
});
