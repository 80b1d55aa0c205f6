// prometheus: /metrics in Prometheus text format, and the per-query DNS
// metrics of the queries its block serves (PROM-1..13).

import { collectDefaultMetrics } from 'prom-client';
import { expectArgs, onlyOnce, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { observeQuery } from '../../src/dns-metrics.ts';
import { attachRoute, parseHttpAddress, type Attachment } from '../../src/http.ts';
import { buildInfo, pluginEnabled, registry } from '../../src/metrics.ts';
import { definePlugin, whenReplied } from '../../src/plugin.ts';
import { encodedLength } from '../../src/wire/message.ts';
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
        return whenReplied(next(request), (reply) => {
          const { query } = request;
          observeQuery({
            server: request.server,
            zone: request.zone,
            transport: request.transport,
            family: request.family,
            qtype: query.qtype,
            dnssecOk: query.edns?.dnssecOk ?? false,
            requestSize: query.packet.length,
            rcode: reply.rcode,
            responseSize: encodedLength(query, reply),
            seconds: (performance.now() - started) / 1000,
          });
          return reply;
        });
      },
      async stop() {
        await attachment?.detach();
        attachment = null;
      },
    };
  },
});
