// Opt-in multi-process serving: CLUSTERDNS_WORKERS=N runs N worker processes
// (Node's cluster module), each a whole clusterdns with its own Corefile,
// Kubernetes watch and cache, as N CoreDNS replicas would be. They share the
// DNS and HTTP ports: the primary opens each socket once and hands it to
// every worker, so the kernel spreads UDP datagrams over the workers and the
// primary spreads TCP connections. Default 1: a single process, no primary.
//
// Why opt-in (README, Performance): a worker is a full copy of the cluster
// state and of the cache, and on the 2-core machine the benchmarks ran on it
// did not pay for itself. Each scrape of /metrics reaches one worker, so the
// counters are per worker; scale with replicas where that matters.

import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';

/** CLUSTERDNS_WORKERS: unset, empty or 1 for one process; a count; or "auto" for one per available CPU. */
export function workerCount(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 1;
  if (value.trim() === 'auto') return availableParallelism();
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 256) {
    throw new Error(`CLUSTERDNS_WORKERS must be a whole number from 1 to 256 or "auto", not '${value}'`);
  }
  return count;
}

/** True in the primary of a multi-worker run: it forks and supervises, and serves nothing itself. */
export function isPrimaryOf(count: number): boolean {
  return count > 1 && cluster.isPrimary;
}

/** True in a worker process (it leaves the pidfile to the primary). */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Forks `count` workers running the same command, passes on SIGTERM/SIGINT
 * (graceful shutdown, each worker keeps its lameduck) and SIGUSR1 (reload),
 * and resolves with the exit status once every worker is gone. A worker that
 * exits on its own takes the others down with status 1, so the pod restarts
 * as a whole instead of running with fewer workers than asked.
 */
export function runPrimary(count: number): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    let status = 0;
    const live = new Set<number>();
    const signalAll = (signal: NodeJS.Signals) => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    };
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      // A terminal's Ctrl-C reaches the workers too (same process group); they ignore a second TERM.
      signalAll(signal === 'SIGINT' ? 'SIGTERM' : signal);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGUSR1', () => signalAll('SIGUSR1'));
    process.on('SIGHUP', () => {});
    cluster.on('exit', (worker, code, signal) => {
      live.delete(worker.id);
      if (!stopping) {
        process.stderr.write(`[ERROR] worker ${worker.process.pid} exited (${signal ?? code}); stopping the others\n`);
        status = 1;
        stop('SIGTERM');
      } else if (code !== 0 && status === 0) {
        status = code ?? 1;
      }
      if (live.size === 0) resolve(status);
    });
    for (let i = 0; i < count; i++) live.add(cluster.fork().id);
  });
}
