// The clusterdns command: flags → Corefile → plan → running server.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs, UsageError, USAGE, type CliOptions } from './cli.ts';
import { planFromCorefile } from './config.ts';
import { CorefileError } from './corefile/types.ts';
import { implementedPlugins } from './registry.ts';
import { DnsServer } from './server.ts';
import { VERSION } from './version.ts';

export interface CorefileInput {
  text: string;
  /** Path used in messages and to resolve imports. */
  file: string;
}

/** CF-21, WHOAMI-2: -conf, else ./Corefile, else whoami and log on the root zone. */
export function loadCorefile(options: CliOptions): CorefileInput {
  if (options.conf === 'stdin') return { text: readFileSync(0, 'utf8'), file: 'stdin' };
  if (options.conf !== null) return { text: readFileSync(options.conf, 'utf8'), file: resolve(options.conf) };
  if (existsSync('Corefile')) return { text: readFileSync('Corefile', 'utf8'), file: resolve('Corefile') };
  return { text: `.:${options.dnsPort} {\n    whoami\n    log\n}\n`, file: 'default' };
}

function banner(server: DnsServer, zonesByLabel: Map<string, string[]>): string {
  const lines: string[] = [];
  for (const listener of server.listeners()) {
    for (const zone of zonesByLabel.get(listener.label) ?? []) lines.push(`${zone}:${listener.port}`);
  }
  lines.push(`clusterdns-${VERSION}`, `${process.platform}/${process.arch}, node ${process.version}`);
  return lines.join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  let options: CliOptions;
  try {
    options = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    return 2;
  }
  if (options.version) {
    process.stdout.write(`clusterdns-${VERSION}\n${process.platform}/${process.arch}, node ${process.version}\n`);
    return 0;
  }
  if (options.plugins) {
    const names = implementedPlugins().map((name) => `  dns.${name}`).sort();
    process.stdout.write(`Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n${names.join('\n')}\n`);
    return 0;
  }

  let server: DnsServer;
  let zonesByLabel: Map<string, string[]>;
  try {
    const input = loadCorefile(options);
    const plan = planFromCorefile(input.text, input.file, { dnsPort: options.dnsPort });
    zonesByLabel = new Map(plan.listeners.map((listener) => [listener.label, [...listener.zones.keys()]]));
    server = new DnsServer(plan);
    await server.start();
  } catch (error) {
    const message = error instanceof CorefileError ? error.message : error instanceof Error ? error.message : String(error);
    process.stderr.write(`[FATAL] ${message}\n`);
    return 1;
  }
  if (!options.quiet) process.stdout.write(banner(server, zonesByLabel) + '\n');
  if (options.pidfile) writeFileSync(options.pidfile, `${process.pid}\n`);

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const shutdown = () => {
      if (stopping) return;
      stopping = true;
      server.stop().then(() => {
        if (options.pidfile) rmSync(options.pidfile, { force: true });
        resolveExit(0);
      });
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
}
