// One forward line: which names it takes (FWD-1), and the walk over its
// upstreams (FWD-5) with the reply checks of FWD-7 and FWD-8.
//
// Identical questions in flight at the same time share one walk (coalescing,
// kubernetes/dns#387): a query whose question the upstreams are already being
// asked waits for that answer instead of sending its own. "Identical" means
// everything the upstream would see but the message ID and the case of the
// name: the header flags (RD, CD, AD, opcode) and counts, type, class, and the
// EDNS record byte for byte (DO bit, buffer size, options such as client
// subnet), and the client's transport (it picks UDP or TCP upstream and the
// size of the reply that fits). Any of those can change the upstream's reply;
// the name's case cannot (RFC 4343), and each client still gets its own ID and
// its own question back, because replies are encoded from each client's query.

import { forwardCoalesced, forwardHealthcheckBroken, forwardMaxConcurrentRejects } from '../../src/metrics.ts';
import type { Next, Request, TraceStep, Transport } from '../../src/plugin.ts';
import { HEADER_LENGTH, Rcode, rcodeName, TCP_MAX_SIZE, Type, UDP_MIN_SIZE } from '../../src/wire/constants.ts';
import { emptyReply, ServerReply, type Reply } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';
import { policyFor, type Policy } from './policy.ts';
import type { Query } from '../../src/wire/query.ts';
import { MalformedReply, Proxy, timing, type ExchangeResult, type Proto } from './proxy.ts';
import type { ForwardConfig } from './setup.ts';

const formErr = Object.freeze(emptyReply(Rcode.FORMERR));
/** Shortest time between two walks over the upstream list for one query. */
const MIN_ROUND_MS = 100;
/** A try with less time left than this before the deadline is not started (timers fire a little early). */
const MIN_TRY_MS = 10;
const noHealthy = new Error('no healthy proxies');

/** What a walk over the upstreams ended with: the reply to relay, or why there is none (SERVFAIL). */
type Outcome = ExchangeResult | Error;

/**
 * The coalescing key: what the upstream sees of the query but its ID and the
 * case of its name. The lowercased name cannot hold a NUL (presentation form
 * escapes it), so the NUL after it keeps the parts apart.
 */
function flightKey(query: Query, transport: Transport): string {
  const { packet } = query;
  const key = transport + query.qname + '\0' + packet.toString('latin1', 2, HEADER_LENGTH) + packet.toString('latin1', query.questionEnd - 4);
  // The loop plugin's probe (HINFO for a random name) must come back through a loop as a new
  // question each time, or it would wait for itself and the loop would never be seen (LOOP-3).
  return query.qtype === Type.HINFO ? `${key}\0${uncoalesced++}` : key;
}

let uncoalesced = 0;

function elapsed(since: number): number {
  return Math.round((performance.now() - since) * 1000) / 1000;
}

export class Forward {
  readonly config: ForwardConfig;
  readonly proxies: Proxy[];
  private readonly policy: Policy;
  /** Walks under way, by flightKey: each is one question being asked upstream. */
  private readonly flights = new Map<string, Promise<Outcome>>();
  private stopped = false;
  private readonly refused: Readonly<Reply>;

  constructor(config: ForwardConfig) {
    this.config = config;
    this.policy = policyFor(config.policy);
    this.refused = Object.freeze(emptyReply(Rcode.REFUSED, 0, new Error(`concurrent queries exceeded maximum ${config.maxConcurrent}`)));
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

  /** Questions this line is asking upstream now (max_concurrent counts these). */
  inFlight(): number {
    return this.flights.size;
  }

  /**
   * Forwards the query, or passes it on when the name is not ours. `next` is
   * the following forward line when `nextIsForward`, which the `next` option
   * may hand the query to.
   */
  serve(request: Request, next: Next, nextIsForward: boolean): Reply | Promise<Reply> {
    const { query } = request;
    if (!this.matches(query.qname)) return next(request);
    // explain: a traced query walks on its own, recording each try (never set on the serving path).
    if (request.trace !== undefined) return this.tracedServe(request, next, nextIsForward, request.trace);
    const key = flightKey(query, request.transport);
    let flight = this.flights.get(key);
    if (flight !== undefined) {
      forwardCoalesced.inc();
    } else {
      // At the server's in-flight cap no new upstream work starts (joining a question in flight costs none).
      if (request.overloaded) return ServerReply.SHED;
      const limit = this.config.maxConcurrent;
      if (limit > 0 && this.flights.size >= limit) {
        // Refused at once, never queued; not a health failure (users.md P3).
        forwardMaxConcurrentRejects.inc();
        return this.refused;
      }
      flight = this.walk(query, request.transport);
      this.flights.set(key, flight);
      // Registered before any waiter's: the question is off the table before the first reply goes out.
      const landed = (): void => {
        this.flights.delete(key);
      };
      void flight.then(landed, landed);
    }
    return flight.then((outcome) => this.relay(outcome, request, next, nextIsForward));
  }

  private relay(outcome: Outcome, request: Request, next: Next, nextIsForward: boolean): Reply | Promise<Reply> {
    if (outcome instanceof Error) return emptyReply(Rcode.SERVFAIL, 0, outcome);
    if (outcome.mismatch) return formErr;
    if (nextIsForward && this.config.next.includes(outcome.rcode)) return next(request);
    return outcome.reply;
  }

  /** explain: the walk of one traced query, its tries in the trace step (cold path). */
  private async tracedServe(request: Request, next: Next, nextIsForward: boolean, step: TraceStep): Promise<Reply> {
    const tries: Record<string, unknown>[] = [];
    const line = { from: this.config.from, policy: this.config.policy, upstreams: this.proxies.map((proxy) => proxy.addr) };
    const lines = (step.detail['lines'] ??= []) as unknown[];
    lines.push({ ...line, tries });
    const outcome = await this.walk(request.query, request.transport, tries);
    const reply = await this.relay(outcome, request, next, nextIsForward);
    if (outcome instanceof Error) step.detail['error'] = outcome.message;
    else if (reply !== outcome.reply) step.detail['handedOn'] = `rcode ${rcodeName(outcome.rcode)} is in next`;
    return reply;
  }

  /**
   * Asks the upstreams in policy order until one answers or time runs out
   * (FWD-5); never rejects. `tries`, only for explain, gets each attempt.
   */
  private async walk(query: Query, transport: Transport, tries?: Record<string, unknown>[]): Promise<Outcome> {
    const { config, proxies } = this;
    // FWD-6: the reply is read into max(client's size, 512); TCP clients take 64 KiB.
    const bufSize = transport === 'tcp' ? TCP_MAX_SIZE : Math.max(query.edns?.udpSize ?? 0, UDP_MIN_SIZE);
    const list = this.policy(proxies);
    const deadline = performance.now() + timing.overallTimeoutMs;
    let i = 0;
    let fails = 0;
    let lastError: Error | null = null;
    let roundStarted = performance.now();
    // Upstreams that sent an unreadable reply to this question: asking them again would get the same.
    let garbled: Set<Proxy> | null = null;

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
      if (garbled?.has(proxy)) continue;
      if (proxy.down(config.maxFails)) {
        fails++;
        if (fails < proxies.length) continue;
        // Every upstream is down: assume health checking itself is broken (FWD-5.2).
        forwardHealthcheckBroken.inc();
        if (config.failfastAllUnhealthy) break;
        proxy = proxies[Math.floor(Math.random() * proxies.length)]!;
      }

      let forceTcp = config.forceTcp;
      // A try the deadline cuts short says little about the upstream: its error does not replace an earlier one.
      const cutShort = deadline - performance.now() < timing.readTimeoutMs;
      const tried = tries === undefined ? 0 : performance.now();
      try {
        for (;;) {
          const result = await proxy.exchange(query, this.proto(proxy, transport, forceTcp), bufSize, deadline);
          tries?.push({ upstream: proxy.addr, proto: this.proto(proxy, transport, forceTcp), rttMs: elapsed(tried), rcode: rcodeName(result.rcode), ...(result.truncated ? { truncated: true } : {}) });
          // prefer_udp: a truncated UDP reply is retried over TCP on the same upstream (FWD-8).
          if (result.truncated && config.preferUdp && !forceTcp && !proxy.isTls) {
            forceTcp = true;
            continue;
          }
          return result;
        }
      } catch (error) {
        if (lastError === null || !cutShort) lastError = error instanceof Error ? error : new Error(String(error));
        tries?.push({ upstream: proxy.addr, proto: this.proto(proxy, transport, forceTcp), rttMs: elapsed(tried), error: (error as Error).message });
        // FWD-9: a failed query starts health checking of that upstream.
        if (config.maxFails !== 0) proxy.healthcheck();
        if (error instanceof MalformedReply) {
          garbled ??= new Set();
          garbled.add(proxy);
          if (garbled.size === proxies.length) break;
        }
        if (fails < proxies.length) continue;
        break;
      }
    }
    return lastError ?? noHealthy;
  }

  /** FWD-6: the client's transport unless force_tcp / prefer_udp; TLS upstreams always TLS. */
  private proto(proxy: Proxy, transport: Transport, forceTcp: boolean): Proto {
    if (proxy.isTls) return 'tcp-tls';
    if (forceTcp) return 'tcp';
    if (this.config.preferUdp) return 'udp';
    return transport;
  }

  /**
   * Questions in flight when a reload replaces this configuration still get
   * their answers: the sockets close once those land (within the walk's
   * deadline), not under them (issue 14: none answered SERVFAIL by a reload).
   */
  stop(): void {
    const stopNow = (): void => {
      this.stopped = true;
      for (const proxy of this.proxies) proxy.stop();
    };
    if (this.flights.size === 0) stopNow();
    else void Promise.allSettled(this.flights.values()).then(stopNow);
  }
}
