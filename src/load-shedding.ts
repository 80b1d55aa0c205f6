// The process-wide cap on queries in flight (users.md P3): past it, a query
// that would wait on I/O is answered REFUSED at once instead of queued, so
// memory stays bounded however fast clients send. Counted in
// clusterdns_shed_queries_total; one log line when shedding starts and one
// when it stops, never one per query.

import { totalmem } from 'node:os';
import type { Logger } from './log.ts';

/** Environment variable that sets the cap (a ServerOptions value wins over it). */
export const MAX_IN_FLIGHT_ENV = 'CLUSTERDNS_MAX_IN_FLIGHT';

/**
 * Heap one forwarded query holds while it waits (request, decoded query,
 * the forward walk's promise chain, timer and upstream bookkeeping), with
 * margin; measured with heap snapshots (bench/resilience/overload.ts).
 */
const BYTES_PER_QUERY_IN_FLIGHT = 4 * 1024;
/** Share of the memory limit the queries in flight may take. */
const IN_FLIGHT_MEMORY_SHARE = 0.1;
const MIN_DEFAULT = 1_000;
const MAX_DEFAULT = 10_000;
/** Shedding counts as stopped after this long without a shed query. */
const QUIET_MS = 5_000;

/**
 * The default cap: a tenth of the memory the process may use (the cgroup
 * limit in a container, else the machine's memory) at ~4 KiB per query,
 * between 1,000 and 10,000. Under kubeadm's 170 MiB limit that is 4,352.
 */
export function defaultMaxInFlight(memoryLimit = process.constrainedMemory()): number {
  const limit = memoryLimit > 0 && memoryLimit < totalmem() ? memoryLimit : totalmem();
  const sized = Math.floor((limit * IN_FLIGHT_MEMORY_SHARE) / BYTES_PER_QUERY_IN_FLIGHT);
  return Math.min(MAX_DEFAULT, Math.max(MIN_DEFAULT, sized));
}

/** The cap from the environment, or null when unset; throws on a value that is not a positive integer. */
export function maxInFlightFromEnv(env: NodeJS.ProcessEnv = process.env): number | null {
  const text = env[MAX_IN_FLIGHT_ENV];
  if (text === undefined || text === '') return null;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`${MAX_IN_FLIGHT_ENV} must be a positive integer, found '${text}'`);
  return Number(text);
}

export class LoadShedder {
  readonly limit: number;
  inFlight = 0;
  private readonly log: Logger;
  private shedding = false;
  private shedSinceStart = 0;
  private lastShedAt = 0;
  private startedAt = 0;
  private watch: NodeJS.Timeout | null = null;

  constructor(limit: number, log: Logger) {
    this.limit = limit;
    this.log = log;
  }

  get full(): boolean {
    return this.inFlight >= this.limit;
  }

  /** Records one shed query; the first one after a quiet period logs that shedding started. */
  shed(): void {
    this.lastShedAt = performance.now();
    this.shedSinceStart++;
    if (this.shedding) return;
    this.shedding = true;
    this.startedAt = this.lastShedAt;
    this.log.warning(`Shedding load: ${this.inFlight} queries in flight, the maximum; new queries that would wait are answered REFUSED`);
    this.watch = setInterval(this.checkQuiet, 1_000);
    this.watch.unref();
  }

  stop(): void {
    if (this.watch) clearInterval(this.watch);
    this.watch = null;
  }

  private readonly checkQuiet = (): void => {
    const now = performance.now();
    if (now - this.lastShedAt < QUIET_MS) return;
    this.stop();
    this.log.info(`Stopped shedding load: ${this.shedSinceStart} queries answered REFUSED in ${((this.lastShedAt - this.startedAt) / 1000).toFixed(1)}s`);
    this.shedding = false;
    this.shedSinceStart = 0;
  };
}
