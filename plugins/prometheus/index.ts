// prometheus: /metrics in Prometheus text format, and the per-query DNS
// metrics of the queries its block serves (PROM-1..13).

import { collectDefaultMetrics } from 'prom-client';
import { expectArgs, onlyOnce, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { observeQuery } from '../../src/dns-metrics.ts';
import { attachRoute, parseHttpAddress, type Attachment } from '../../src/http.ts';
import { buildInfo, pluginEnabled, registry } from '../../src/metrics.ts';
import { definePlugin, type Request } from '../../src/plugin.ts';
import { encodedLength, type Reply } from '../../src/wire/message.ts';
import { VERSION } from '../../src/version.ts';

export interface PrometheusConfig {
  address: string;
}

let processMetricsOn = false;

/** Process and runtime metrics (PROM-3: process_resident_memory_bytes, process_cpu_seconds_total, ...), once per process. */
function enableProcessMetrics(): void {
  if (processMetricsOn) return;
  processMetricsOn = true;
  collectDefaultMetrics({ register: registry });
  buildInfo.labels(VERSION, '', `node ${process.version}`).set(1);
}

/** PROM-2: one observation per query, after the chain answered it. */
function record(request: Request, reply: Reply, started: number): Reply {
  const { query } = request;
  observeQuery(
    request.server,
    request.zone,
    request.transport,
    request.family,
    query.qtype,
    query.edns?.dnssecOk ?? false,
    query.packet.length,
    reply.rcode,
    encodedLength(query, reply),
    (performance.now() - started) / 1000,
  );
  return reply;
}

export default definePlugin<PrometheusConfig>({
  name: 'prometheus',
  parse(directives) {
    const directive = onlyOnce(directives);
    const [addressToken] = expectArgs(directive, 0, 1);
    const address = addressToken?.text ?? 'localhost:9153';
    if (!parseHttpAddress(address)) throw setupError(addressToken!, `plugin/prometheus: expected an address such as :9153 or localhost:9153, found '${address}'`);
    for (const option of directive.block ?? []) throw unknownProperty('prometheus', option.name);
    return { address };
  },
  create(config, block) {
    let attachment: Attachment | null = null;
    return {
      async start() {
        enableProcessMetrics();
        attachment = await attachRoute(config.address, '/metrics', (_request, response) => {
          registry.metrics().then(
            (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
            (error: Error) => response.writeHead(500).end(error.message),
          );
        });
        // coredns_plugin_enabled: one series per query-chain plugin and zone (setup-only plugins are not listed).
        const binds = block.bindAddresses.length > 0 ? block.bindAddresses : [''];
        for (const address of block.addresses) {
          for (const ip of binds) {
            const server = `dns://${ip.includes(':') ? `[${ip}]` : ip}:${address.port}`;
            for (const { name, instance } of block.plugins) {
              if (instance.serve) pluginEnabled.labels(server, address.zone, '', name).set(1);
            }
          }
        }
      },
      serve(request, next) {
        const started = performance.now();
        const result = next(request);
        // No closure on the synchronous path: this runs for every query.
        return result instanceof Promise ? result.then((reply) => record(request, reply, started)) : record(request, result, started);
      },
      async stop() {
        await attachment?.detach();
        attachment = null;
      },
    };
  },
});
