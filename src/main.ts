// The clusterdns command: flags → Corefile → supervisor → signals.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import module from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { parseArgs, UsageError, USAGE, watchNpmLauncher, type CliOptions } from './cli.ts';
import { parseConfig } from './config.ts';
import { limitHeapGrowth } from './heap-limits.ts';
import { quietLog, writeLog } from './log.ts';
import { builtinPlugins } from './registry.ts';
import { Supervisor, type CorefileInput } from './supervisor.ts';
import { formatReport, validateCorefile, type ValidationReport } from './validate.ts';
import { nativeListener } from './udp-listener.ts';
import { VERSION } from './version.ts';
import { isPrimaryOf, isWorker, runPrimary, workerCount } from './workers.ts';

/** CF-21, WHOAMI-2: -conf, else ./Corefile, else whoami and log on the root zone. */
export function corefileLoader(options: CliOptions): () => CorefileInput {
  const read = corefileReader(options);
  return () => {
    const input = read();
    // A Corefile with no server block (empty, or only comments) gets CoreDNS's default too, at start
    // and at reload, as CoreDNS 1.11.3 does; the warning says why whoami answers.
    if (input.file === 'default' || !hasNoServerBlocks(input, options.dnsPort)) return input;
    writeLog('WARNING', `${input.file} has no server blocks: serving the default configuration (whoami and log on .:${options.dnsPort}), as CoreDNS does`);
    return defaultCorefile(options.dnsPort);
  };
}

/** True for an empty or comment-only Corefile; one that does not parse is the supervisor's to report. */
function hasNoServerBlocks(input: CorefileInput, dnsPort: number): boolean {
  try {
    return parseConfig(input.text, input.file, { dnsPort, log: quietLog }).length === 0;
  } catch {
    return false;
  }
}

function corefileReader(options: CliOptions): () => CorefileInput {
  if (options.conf === 'stdin') {
    // A pipe can be read once; reloads see the same text.
    const text = readFileSync(0, 'utf8');
    return () => ({ text, file: 'stdin' });
  }
  if (options.conf !== null) {
    const file = resolve(options.conf);
    return () => ({ text: readFileSync(file, 'utf8'), file });
  }
  if (existsSync('Corefile')) {
    const file = resolve('Corefile');
    return () => ({ text: readFileSync(file, 'utf8'), file });
  }
  return () => defaultCorefile(options.dnsPort);
}

/** -validate: the report on stdout (text or --json); exit 0 when the Corefile is valid, 1 otherwise. */
async function validate(options: CliOptions): Promise<number> {
  let input: CorefileInput;
  let report: ValidationReport;
  try {
    input = corefileReader(options)();
    report = await validateCorefile(input.text, input.file, { dnsPort: options.dnsPort });
    if (input.file === 'default') {
      report.warnings.unshift({ file: 'Corefile', line: null, message: 'no -conf given and ./Corefile does not exist: the server would serve the default configuration (whoami and log)' });
    }
  } catch (error) {
    // The Corefile could not be read.
    const file = options.conf ?? 'Corefile';
    input = { text: '', file };
    report = { ok: false, errors: [{ file, line: null, message: (error as Error).message }], warnings: [] };
  }
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report, input.file === 'default' ? 'the default configuration' : input.file));
  return report.ok ? 0 : 1;
}

function defaultCorefile(dnsPort: number): CorefileInput {
  return { text: `.:${dnsPort} {\n    whoami\n    log\n}\n`, file: 'default' };
}

/** Written once serving; removed however the process ends (shutdown, fatal error, an empty event loop). */
function writePidfile(file: string): void {
  writeFileSync(file, `${process.pid}\n`);
  process.once('exit', () => rmSync(file, { force: true }));
}

function banner(supervisor: Supervisor): string {
  const lines: string[] = [];
  const plan = supervisor.current()!;
  for (const listener of supervisor.listeners()) {
    const zones = plan.listeners.find((candidate) => candidate.label === listener.label)?.zones.keys() ?? [];
    for (const zone of zones) lines.push(`${zone}:${listener.port}`);
  }
  lines.push(`clusterdns-${VERSION}`, platformLine());
  return lines.join('\n');
}

/** CoreDNS's second banner line (`linux/amd64, go1.21.11, a6338e9`), naming how UDP is read instead of a commit. */
function platformLine(): string {
  return `${process.platform}/${process.arch}, node ${process.version}, udp ${nativeListener() === null ? 'dgram' : 'recvmmsg'}`;
}

/**
 * On a single CPU (taskset, a cpuset), V8's concurrent marking threads only
 * take turns with the main thread, and a full collection showed up as one
 * 12-26 ms stall of serving (bench/load.ts, server pinned to one core).
 * Marked on the main thread in small increments, the longest step was
 * 0.2-2 ms. V8 reads the flag as each collection starts, so setting it at
 * startup is enough; with more CPUs, concurrent marking stays on.
 */
function markOnMainThreadIfSingleCpu(): void {
  if (availableParallelism() === 1) setFlagsFromString('--no-concurrent-marking');
}

export async function main(argv: readonly string[]): Promise<number> {
  // `clusterdns explain ...` (issue 13): loaded only when asked for.
  if (argv[0] === 'explain') return (await import('./explain/cli.ts')).runExplain(argv.slice(1));
  let options: CliOptions;
  try {
    options = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n${USAGE}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.version) {
    process.stdout.write(`clusterdns-${VERSION}\n${platformLine()}\n`);
    return 0;
  }
  if (options.plugins) {
    // CoreDNS's shape and order (sorted by name), then the order queries pass through them (CF-15, CF-16).
    const names = builtinPlugins.implemented().map((name) => `  dns.${name}`).sort();
    process.stdout.write(`Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n${names.join('\n')}\n\n` +
      `The list above is sorted by name. The order plugins run in, whatever their order in the Corefile:\n  ${builtinPlugins.implemented().join(' ')}\n`);
    return 0;
  }

  if (options.validate) return validate(options);

  let workers: number;
  try {
    workers = workerCount(process.env['CLUSTERDNS_WORKERS']);
    if (workers > 1 && options.conf === 'stdin') throw new Error('CLUSTERDNS_WORKERS above 1 needs a Corefile file: workers cannot each read stdin');
  } catch (error) {
    process.stderr.write(`[FATAL] ${(error as Error).message}\n`);
    return 1;
  }
  if (!isWorker()) {
    watchNpmLauncher(() => {
      writeLog('INFO', 'npm, which started clusterdns, is gone: stopping as on SIGTERM');
      process.kill(process.pid, 'SIGTERM');
    });
  }
  if (isPrimaryOf(workers)) {
    // The pidfile names the primary, which passes signals on to the workers.
    if (options.pidfile) writePidfile(options.pidfile);
    return runPrimary(workers);
  }

  markOnMainThreadIfSingleCpu();
  limitHeapGrowth();
  let supervisor: Supervisor;
  try {
    supervisor = new Supervisor({ load: corefileLoader(options), dnsPort: options.dnsPort });
    await supervisor.start();
  } catch (error) {
    process.stderr.write(`[FATAL] ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  // Every module is loaded now: write the compile cache (bin/clusterdns.js) at once rather than at
  // exit, which a killed process never reaches.
  module.flushCompileCache?.();
  // RELOAD-5: USR1 reloads, HUP is ignored, TERM and INT shut down (a second INT exits at once), QUIT exits.
  // Handlers go in before the pidfile and the banner: whoever sees those may signal at once.
  process.on('SIGUSR1', () => void supervisor.reload());
  process.on('SIGHUP', () => {});
  process.on('SIGQUIT', () => process.exit(1));
  const exited = new Promise<number>((resolveExit) => {
    let stopping = false;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) {
        if (signal === 'SIGINT') process.exit(1);
        return;
      }
      stopping = true;
      writeLog('INFO', `${signal}: Shutting down`);
      supervisor.shutdown().then(() => resolveExit(0));
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
  });
  if (options.pidfile && !isWorker()) writePidfile(options.pidfile);
  if (!options.quiet) process.stdout.write(banner(supervisor) + '\n');
  return exited;
}
