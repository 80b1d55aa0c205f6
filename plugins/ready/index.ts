// ready: /ready answers 200 once every plugin that reports readiness is ready,
// 503 with their names until then (READY-1..4).

import { expectArgs, onlyOnce, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { attachRoute, parseHttpAddress, type Attachment } from '../../src/http.ts';
import { definePlugin, type PluginInstance } from '../../src/plugin.ts';
import type { Logger } from '../../src/log.ts';

export interface ReadyConfig {
  address: string;
  /** until-ready: a plugin seen ready once is not asked again. */
  monitor: 'until-ready' | 'continuously';
}

interface Reporter {
  name: string;
  instance: PluginInstance;
  wasReady: boolean;
}

interface ReadyInstance {
  reporters: () => Reporter[];
  monitor: ReadyConfig['monitor'];
  shuttingDown: boolean;
}

/** READY-1: blocks (and, during a reload, configurations) sharing an address combine their readiness. */
const byAddress = new Map<string, Set<ReadyInstance>>();

function answer(members: Set<ReadyInstance>, log: Logger) {
  return (_request: unknown, response: import('node:http').ServerResponse) => {
    const text = { 'content-type': 'text/plain; charset=utf-8' };
    if ([...members].some((member) => member.shuttingDown)) {
      response.writeHead(503, text).end('Shutting down');
      return;
    }
    const notReady = new Set<string>();
    for (const member of members) {
      for (const reporter of member.reporters()) {
        if (member.monitor === 'until-ready' && reporter.wasReady) continue;
        const ready = reporter.instance.ready!();
        if (ready) reporter.wasReady = true;
        else notReady.add(reporter.name);
      }
    }
    if (notReady.size === 0) {
      response.writeHead(200, text).end('OK');
      return;
    }
    const names = [...notReady].sort().join(',');
    log.info(`Plugins not ready: "${names}"`);
    response.writeHead(503, text).end(names);
  };
}

export default definePlugin<ReadyConfig>({
  name: 'ready',
  parse(directives) {
    const directive = onlyOnce(directives);
    const [addressToken] = expectArgs(directive, 0, 1);
    const address = addressToken?.text ?? ':8181';
    if (!parseHttpAddress(address)) throw setupError(addressToken!, `plugin/ready: expected an address such as :8181 or 127.0.0.1:8181, found '${address}'`);
    let monitor: ReadyConfig['monitor'] = 'until-ready';
    for (const option of directive.block ?? []) {
      if (option.name.text !== 'monitor') throw unknownProperty('ready', option.name);
      const [mode] = expectArgs(option, 1);
      if (mode!.text !== 'until-ready' && mode!.text !== 'continuously') {
        throw setupError(mode!, `plugin/ready: monitor takes until-ready or continuously, found '${mode!.text}'`);
      }
      monitor = mode!.text;
    }
    return { address, monitor };
  },
  create(config, block, log) {
    let reporters: Reporter[] | null = null;
    const self: ReadyInstance = {
      // READY-2: the block's plugins that report readiness, known once all are created.
      reporters: () => (reporters ??= block.plugins
        .filter(({ instance }) => instance.ready !== undefined)
        .map(({ name, instance }) => ({ name, instance, wasReady: false }))),
      monitor: config.monitor,
      shuttingDown: false,
    };
    let attachment: Attachment | null = null;
    return {
      async start() {
        let members = byAddress.get(config.address);
        if (!members) {
          members = new Set();
          byAddress.set(config.address, members);
        }
        members.add(self);
        attachment = await attachRoute(config.address, '/ready', answer(members, log));
      },
      shutdown() {
        self.shuttingDown = true;
      },
      async stop() {
        const members = byAddress.get(config.address);
        members?.delete(self);
        if (members?.size === 0) byAddress.delete(config.address);
        await attachment?.detach();
        attachment = null;
      },
    };
  },
});
