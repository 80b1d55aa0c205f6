// One forward line: which names it takes (FWD-1), and the per-query walk
// over its upstreams (FWD-5) with the reply checks of FWD-7 and FWD-8.

import { forwardHealthcheckBroken, forwardMaxConcurrentRejects } from '../../src/metrics.ts';
import type { Next, Request } from '../../src/plugin.ts';
import { Rcode, TCP_MAX_SIZE, UDP_MIN_SIZE } from '../../src/wire/constants.ts';
import { emptyReply, type Reply } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';
import { policyFor, type Policy } from './policy.ts';
import { Proxy, timing, type ExchangeResult, type Proto } from './proxy.ts';
import type { ForwardConfig } from './setup.ts';

const formErr = Object.freeze(emptyReply(Rcode.FORMERR));
/** Shortest time between two walks over the upstream list for one query. */
const MIN_ROUND_MS = 100;
/** A try with less time left than this before the deadline is not started (timers fire a little early). */
const MIN_TRY_MS = 10;
const noHealthy = new Error('no healthy proxies');

export class Forward {
  readonly config: ForwardConfig;
  readonly proxies: Proxy[];
  private readonly policy: Policy;
  private concurrent = 0;
  private stopped = false;
  private readonly limitExceeded: Error;

  constructor(config: ForwardConfig) {
    this.config = config;
    this.policy = policyFor(config.policy);
    this.limitExceeded = new Error(`concurrent queries exceeded maximum ${config.maxConcurrent}`);
    this.proxies = config.upstreams.map((spec) => new Proxy(spec, {
      expireMs: config.expireMs,
      tls: config.tls,
      maxFails: config.maxFails,
      healthIntervalMs: config.healthCheck.intervalMs,
      healthRecursionDesired: config.healthCheck.recursionDesired,
      healthDomain: config.healthCheck.domain,
      healthOverTcp: config.forceTcp,
    }));
  }

  /** FWD-1: at or below FROM, and not under an `except` name (FROM itself never is). */
  matches(qname: string): boolean {
    const { from, except } = this.config;
    if (!isSubdomain(qname, from)) return false;
    if (qname === from) return true;
    for (const name of except) if (isSubdomain(qname, name)) return false;
    return true;
  }

  /** In-flight queries of this line (max_concurrent counts these). */
  inFlight(): number {
    return this.concurrent;
  }

  /**
   * Forwards the query, or passes it on when the name is not ours. `next` is
   * the following forward line when `nextIsForward`, which the `next` option
   * may hand the query to.
   */
  serve(request: Request, next: Next, nextIsForward: boolean): Reply | Promise<Reply> {
    if (!this.matches(request.query.qname)) return next(request);
    const limit = this.config.maxConcurrent;
    if (limit > 0 && this.concurrent >= limit) {
      // Refused at once, never queued; not a health failure (users.md P3).
      forwardMaxConcurrentRejects.inc();
      return emptyReply(Rcode.REFUSED, 0, this.limitExceeded);
    }
    this.concurrent++;
    return this.forward(request, next, nextIsForward).finally(() => {
      this.concurrent--;
    });
  }

  private async forward(request: Request, next: Next, nextIsForward: boolean): Promise<Reply> {
    const { config, proxies } = this;
    const { query } = request;
    // FWD-6: the reply is read into max(client's size, 512); TCP clients take 64 KiB.
    const bufSize = request.transport === 'tcp' ? TCP_MAX_SIZE : Math.max(query.edns?.udpSize ?? 0, UDP_MIN_SIZE);
    const list = this.policy(proxies);
    const deadline = performance.now() + timing.overallTimeoutMs;
    let i = 0;
    let fails = 0;
    let lastError: Error | null = null;
    let roundStarted = performance.now();

    while (deadline - performance.now() > MIN_TRY_MS && !this.stopped) {
      if (i >= list.length) {
        // End of the list: wrap around (FWD-5.3). Upstreams that fail at once
        // (connection refused) are not hammered: a round lasts at least MIN_ROUND_MS.
        i = 0;
        fails = 0;
        const pause = Math.min(roundStarted + MIN_ROUND_MS, deadline) - performance.now();
        if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
        roundStarted = performance.now();
        if (deadline - performance.now() <= MIN_TRY_MS || this.stopped) break;
      }
      let proxy = list[i++]!;
      if (proxy.down(config.maxFails)) {
        fails++;
        if (fails < proxies.length) continue;
        // Every upstream is down: assume health checking itself is broken (FWD-5.2).
        forwardHealthcheckBroken.inc();
        if (config.failfastAllUnhealthy) break;
        proxy = proxies[Math.floor(Math.random() * proxies.length)]!;
      }

      let forceTcp = config.forceTcp;
      let result: ExchangeResult;
      // A try the deadline cuts short says little about the upstream: its error does not replace an earlier one.
      const cutShort = deadline - performance.now() < timing.readTimeoutMs;
      try {
        for (;;) {
          result = await proxy.exchange(query, this.proto(proxy, request, forceTcp), bufSize, deadline);
          // prefer_udp: a truncated UDP reply is retried over TCP on the same upstream (FWD-8).
          if (result.truncated && config.preferUdp && !forceTcp && !proxy.isTls) {
            forceTcp = true;
            continue;
          }
          break;
        }
      } catch (error) {
        if (lastError === null || !cutShort) lastError = error instanceof Error ? error : new Error(String(error));
        // FWD-9: a failed query starts health checking of that upstream.
        if (config.maxFails !== 0) proxy.healthcheck();
        if (fails < proxies.length) continue;
        break;
      }

      if (result.mismatch) return formErr;
      if (nextIsForward && config.next.includes(result.rcode)) return next(request);
      return result.reply;
    }
    return emptyReply(Rcode.SERVFAIL, 0, lastError ?? noHealthy);
  }

  /** FWD-6: the client's transport unless force_tcp / prefer_udp; TLS upstreams always TLS. */
  private proto(proxy: Proxy, request: Request, forceTcp: boolean): Proto {
    if (proxy.isTls) return 'tcp-tls';
    if (forceTcp) return 'tcp';
    if (this.config.preferUdp) return 'udp';
    return request.transport;
  }

  stop(): void {
    this.stopped = true;
    for (const proxy of this.proxies) proxy.stop();
  }
}
