// Runs a configuration and replaces it: start, reload (timer or SIGUSR1) and
// shutdown (RELOAD-2..5, HEALTH-3). The new configuration is set up and
// started while the old one serves; listeners it keeps are handed over, so no
// query is dropped; a bad Corefile leaves the old one serving.

import { configHash, parseConfig, planFromSources, type PlanOptions, type ServerPlan } from './config.ts';
import { createHash } from 'node:crypto';
import { CorefileError, UnknownDirectiveError } from './corefile/types.ts';
import { createLogger, processLog, type Logger } from './log.ts';
import { shutdownPlugins, startPlugins, stopPlugins } from './lifecycle.ts';
import { panicsTotal, reloadFailed, reloadVersionInfo } from './metrics.ts';
import { DnsServer, type BoundListener, type ServerOptions } from './server.ts';

export interface CorefileInput {
  text: string;
  /** Path used in messages and to resolve imports. */
  file: string;
}

export interface SupervisorOptions extends PlanOptions {
  /** Reads the Corefile (again, at each reload: RELOAD-2, following symlinks RELOAD-6). */
  load: () => CorefileInput;
  server?: ServerOptions;
}

export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed';

export class Supervisor {
  private readonly options: SupervisorOptions;
  private readonly server: DnsServer;
  private plan: ServerPlan | null = null;
  /** A Corefile that failed setup is not retried until it changes (RELOAD-4). */
  private failedHash: string | null = null;
  /** Why the last reload failed, until one succeeds (the embedding API rejects with it). */
  private failure: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Reloads and shutdown run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly reloadLog: Logger;

  constructor(options: SupervisorOptions) {
    this.options = options;
    this.reloadLog = createLogger('reload', options.log ?? processLog);
    this.server = new DnsServer({ onPanic: () => panicsTotal.inc(), log: createLogger('', options.log ?? processLog), ...options.server });
  }

  /** Loads, sets up and serves the Corefile; throws what went wrong. */
  async start(): Promise<ServerPlan> {
    const input = this.options.load();
    const plan = planFromSources(parseConfig(input.text, input.file, this.options), input.file, this.options);
    await startPlugins(plan);
    try {
      await this.server.serve(plan);
    } catch (error) {
      await stopPlugins(plan);
      throw error;
    }
    this.adopt(plan);
    return plan;
  }

  current(): ServerPlan | null {
    return this.plan;
  }

  listeners(): BoundListener[] {
    return this.server.listeners();
  }

  /** One message answered without a socket (DnsServer.exchange). */
  exchange(...args: Parameters<DnsServer['exchange']>): ReturnType<DnsServer['exchange']> {
    return this.server.exchange(...args);
  }

  reload(): Promise<ReloadOutcome> {
    const next = this.queue.then(() => this.reloadNow());
    this.queue = next.catch(() => {});
    return next;
  }

  /** SIGTERM: stop watching, keep serving through lameduck, close listeners, stop plugins. */
  shutdown(graceMs = 5_000): Promise<void> {
    const next = this.queue.then(async () => {
      if (this.stopped) return;
      this.stopped = true;
      if (this.timer) clearTimeout(this.timer);
      const plan = this.plan;
      if (plan) await shutdownPlugins(plan);
      if (plan && plan.settings.lameduckMs > 0) await new Promise((resolve) => setTimeout(resolve, plan.settings.lameduckMs));
      await this.server.close(graceMs);
      if (plan) await stopPlugins(plan);
    });
    this.queue = next.catch(() => {});
    return next;
  }

  private async reloadNow(): Promise<ReloadOutcome> {
    if (this.stopped || !this.plan) return 'unchanged';
    let input: CorefileInput;
    let sources;
    try {
      input = this.options.load();
      sources = parseConfig(input.text, input.file, this.options);
    } catch (error) {
      // RELOAD-4: CoreDNS meets an unknown directive while setting up: a failed reload, counted.
      if (error instanceof UnknownDirectiveError) {
        const textHash = `text ${createHash('sha512').update(input!.text).digest('hex')}`;
        return textHash === this.failedHash ? 'failed' : this.failed(textHash, error);
      }
      // RELOAD-4: unreadable or unparsable: a warning, the old config stays, not counted.
      this.failure = asError(error);
      this.reloadLog.warning(`Corefile changed but could not be parsed, keeping the running configuration: ${messageOf(error)}`);
      return 'failed';
    }
    const hash = configHash(sources);
    if (hash === this.plan.hash) return 'unchanged';
    // RELOAD-4: the Corefile that failed is not set up again until it changes.
    if (hash === this.failedHash) return 'failed';
    let plan: ServerPlan;
    try {
      plan = planFromSources(sources, input.file, this.options);
    } catch (error) {
      return this.failed(hash, error);
    }
    try {
      await startPlugins(plan);
    } catch (error) {
      return this.failed(hash, error);
    }
    try {
      await this.server.serve(plan);
    } catch (error) {
      await stopPlugins(plan);
      return this.failed(hash, error);
    }
    const previous = this.plan;
    this.adopt(plan);
    await stopPlugins(previous);
    return 'reloaded';
  }

  /** Why the last reload failed; null once a reload succeeded. */
  lastReloadError(): Error | null {
    return this.failure;
  }

  private failed(hash: string, error: unknown): ReloadOutcome {
    this.failedHash = hash;
    this.failure = asError(error);
    reloadFailed.inc();
    this.reloadLog.error(`Corefile changed but reload failed: ${messageOf(error)}`);
    return 'failed';
  }

  private adopt(plan: ServerPlan): void {
    this.plan = plan;
    this.failedHash = null;
    this.failure = null;
    reloadVersionInfo.reset();
    reloadVersionInfo.labels('sha512', plan.hash).set(1);
    if (plan.settings.reload) this.reloadLog.info(`Running configuration SHA512 = ${plan.hash}`);
    this.schedule();
  }

  /** RELOAD-1: every interval, plus or minus half the jitter, drawn again each time. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const policy = this.plan?.settings.reload;
    if (!policy || this.stopped) return;
    const delay = policy.intervalMs + (Math.random() - 0.5) * policy.jitterMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload().finally(() => {
        if (!this.timer) this.schedule();
      });
    }, delay);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function messageOf(error: unknown): string {
  if (error instanceof CorefileError) return error.message;
  return error instanceof Error ? error.message : String(error);
}
