// health: process liveness on /health (HEALTH-1..5), and lameduck for shutdown.

import http from 'node:http';
import { expectArgs, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { attachRoute, parseHttpAddress, type Attachment } from '../../src/http.ts';
import { healthRequestDuration, healthRequestFailures } from '../../src/metrics.ts';
import { definePlugin } from '../../src/plugin.ts';

export interface HealthConfig {
  address: string;
  lameduckMs: number;
}

const PROBE_INTERVAL_MS = 1_000;

export default definePlugin<HealthConfig>({
  name: 'health',
  // HEALTH-2: within a block the last health line wins.
  parse(directives) {
    const directive = directives.at(-1)!;
    const [addressToken] = expectArgs(directive, 0, 1);
    const address = addressToken?.text ?? ':8080';
    if (!parseHttpAddress(address)) throw setupError(addressToken!, `plugin/health: expected an address such as :8080 or 127.0.0.1:8080, found '${address}'`);
    let lameduckMs = 0;
    for (const option of directive.block ?? []) {
      if (option.name.text !== 'lameduck') throw unknownProperty('health', option.name);
      const [duration] = expectArgs(option, 1);
      lameduckMs = parseDuration(duration!, 'lameduck');
    }
    return { address, lameduckMs };
  },
  create(config, block, log) {
    block.settings.lameduckMs = Math.max(block.settings.lameduckMs, config.lameduckMs);
    let attachment: Attachment | null = null;
    let probe: NodeJS.Timeout | null = null;
    const host = parseHttpAddress(config.address)!.host ?? 'localhost';

    // HEALTH-4: the plugin checks its own endpoint once a second.
    const selfCheck = (port: number) => {
      const started = performance.now();
      const request = http.get({ host, port, path: '/health', timeout: 5_000 }, (response) => {
        response.resume();
        response.on('end', () => {
          const seconds = (performance.now() - started) / 1000;
          healthRequestDuration.observe(seconds);
          if (response.statusCode !== 200) healthRequestFailures.inc();
          if (seconds > 1) log.warning(`Local health request to "http://${host}:${port}/health" took more than 1s: ${seconds.toFixed(3)}s`);
        });
      });
      request.on('timeout', () => request.destroy(new Error('timeout')));
      request.on('error', () => healthRequestFailures.inc());
    };

    return {
      async start() {
        attachment = await attachRoute(config.address, '/health', (_request, response) => {
          response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('OK');
        });
        const port = attachment.port;
        probe = setInterval(() => selfCheck(port), PROBE_INTERVAL_MS);
        probe.unref();
      },
      async stop() {
        if (probe) clearInterval(probe);
        await attachment?.detach();
        attachment = null;
      },
    };
  },
});

