// loadbalance: reorders the records of NOERROR answers written further down
// the chain, cached ones included (LB-1..5).
//
//   loadbalance [round_robin | weighted WEIGHTFILE] {
//       reload DURATION        (weighted only; default 30s, 0 never)
//       prefer CIDR...
//   }
//
// Replies are never changed: a reordered reply is a new object. Building and
// encoding a new reply per query would cost more than the rest of a cache
// hit, so each reply that needs reordering gets a small pool of reordered
// variants (weakly held, so it lives as long as the reply). A query takes a
// random slot; a slot is redrawn after a few uses. The slots split the
// choice of the leading record into equal strata, so the pool stays
// balanced, and over a random slot the order is uniform (round_robin) or
// follows the weights (weighted). Each variant keeps its encoded body memo.

import fs from 'node:fs';
import path from 'node:path';
import { expectArgs, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { CorefileError, type Directive, type Token } from '../../src/corefile/types.ts';
import type { Logger } from '../../src/log.ts';
import { definePlugin, type BlockContext, type Next, type Request } from '../../src/plugin.ts';
import { Rcode, Type } from '../../src/wire/constants.ts';
import type { Reply } from '../../src/wire/message.ts';
import { parseCidr, parseWeights, preferSubnets, roundRobin, roundRobinMatters, weighted, type Stratum, type Subnet, type WeightTable } from './shuffle.ts';

export interface LoadbalanceConfig {
  policy: 'round_robin' | 'weighted';
  /** weighted: the absolute path of the weight file, and the token naming it (for errors). */
  weightFile: string | null;
  weightToken: Token | null;
  /** weighted: how often the file is re-read; 0 never. */
  reloadMs: number;
  prefer: Subnet[];
}

function parseOne(directive: Directive, block: BlockContext): LoadbalanceConfig {
  const config: LoadbalanceConfig = { policy: 'round_robin', weightFile: null, weightToken: null, reloadMs: 30_000, prefer: [] };
  const [policy, ...rest] = directive.args;
  if (policy) {
    if (policy.text === 'round_robin') {
      if (rest.length > 0) throw setupError(rest[0]!, `unknown property for round_robin: '${rest[0]!.text}'`);
    } else if (policy.text === 'weighted') {
      if (rest.length === 0) throw setupError(policy, 'missing weight file argument after \'weighted\'');
      if (rest.length > 1) throw setupError(rest[1]!, `unexpected argument '${rest[1]!.text}' after the weight file`);
      config.policy = 'weighted';
      config.weightToken = rest[0]!;
      const file = rest[0]!.text;
      config.weightFile = path.isAbsolute(file) ? file : path.resolve(path.dirname(path.resolve(block.corefile)), file);
    } else {
      throw setupError(policy, `unknown policy: '${policy.text}', expecting round_robin or weighted`);
    }
  }
  for (const option of directive.block ?? []) {
    if (option.block !== null) throw setupError(option.name, `Unexpected '{' after '${option.name.text}': loadbalance options take no block`);
    if (option.name.text === 'reload' && config.policy === 'weighted') {
      const [value] = expectArgs(option, 1);
      config.reloadMs = parseDuration(value!, 'reload');
    } else if (option.name.text === 'prefer') {
      if (option.args.length === 0) throw setupError(option.name, 'prefer needs at least one CIDR');
      for (const token of option.args) {
        const subnet = parseCidr(token.text);
        if (subnet === null) throw setupError(token, `invalid CIDR '${token.text}'`);
        config.prefer.push(subnet);
      }
    } else {
      throw unknownProperty('loadbalance', option.name);
    }
  }
  return config;
}

/** Reordered variants per reply: POOL_SLOTS slots, each redrawn after SLOT_USES answers. */
const POOL_SLOTS = 16;
const SLOT_USES = 64;

interface Slot {
  reply: Reply;
  uses: number;
}

export class LoadBalancer {
  private readonly config: LoadbalanceConfig;
  private readonly log: Logger;
  private weights: WeightTable = new Map();
  private weightsText: string | null = null;
  private pools = new WeakMap<Reply, Slot[]>();
  private timer: NodeJS.Timeout | null = null;
  private readonly random: () => number;

  constructor(config: LoadbalanceConfig, log: Logger, random: () => number = Math.random) {
    this.config = config;
    this.log = log;
    this.random = random;
  }

  /** Reads the weight file (weighted); a missing file is an error unless it will be retried. */
  start(): void {
    if (this.config.policy !== 'weighted') return;
    try {
      this.loadWeights();
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (!(missing && this.config.reloadMs > 0)) {
        throw new CorefileError(this.config.weightToken!, `plugin/loadbalance: ${(error as Error).message}`);
      }
      this.log.warning(`Failed to open weight file ${this.config.weightFile}: will try again in ${this.config.reloadMs / 1000}s`);
    }
    if (this.config.reloadMs > 0) {
      this.timer = setInterval(() => {
        try {
          this.loadWeights();
        } catch (error) {
          this.log.error((error as Error).message);
        }
      }, this.config.reloadMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private loadWeights(): void {
    const file = this.config.weightFile!;
    const text = fs.readFileSync(file, 'utf8');
    if (text === this.weightsText) return;
    this.weights = parseWeights(text, file);
    this.weightsText = text;
    // Variants drawn with the old weights go with them.
    this.pools = new WeakMap();
    this.log.info(`Successfully reloaded weight file ${file}`);
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const result = next(request);
    const qtype = request.query.qtype;
    if (result instanceof Promise) return result.then((reply) => this.balance(qtype, reply));
    return this.balance(qtype, result);
  }

  /** LB-2: NOERROR replies other than zone transfers; the same object when nothing would move. */
  balance(qtype: number, reply: Reply): Reply {
    if (reply.rcode !== Rcode.NOERROR || qtype === Type.AXFR || qtype === Type.IXFR) return reply;
    if (!this.reorders(qtype, reply)) return reply;
    // A cache hit is a retimed copy of the entry's stored reply, new every
    // second: the pool hangs on the stored reply, so variants (and their
    // encoded bodies) last as long as the entry, and only their TTLs change.
    const retimed = reply.retimed;
    const source = retimed === undefined ? reply : retimed.base;
    let slots = this.pools.get(source);
    if (slots === undefined) {
      slots = new Array<Slot>(POOL_SLOTS);
      this.pools.set(source, slots);
    }
    const index = Math.floor(this.random() * POOL_SLOTS);
    let slot = slots[index];
    if (slot === undefined || slot.uses >= SLOT_USES) {
      slot = { reply: this.variant(qtype, source, { slot: index, slots: POOL_SLOTS }), uses: 0 };
      slots[index] = slot;
    }
    slot.uses++;
    return retimed === undefined ? slot.reply : retimedVariant(slot.reply, reply, retimed.ttl);
  }

  private reorders(qtype: number, reply: Reply): boolean {
    if (this.config.prefer.length > 0) return reply.answer.length + reply.additional.length > 1;
    if (this.config.policy === 'weighted') {
      return (qtype === Type.A || qtype === Type.AAAA || qtype === Type.SRV) && (reply.answer.length > 1 || reply.additional.length > 1);
    }
    return roundRobinMatters(reply.answer) || roundRobinMatters(reply.authority) || roundRobinMatters(reply.additional);
  }

  /** One reordered copy of `reply`. */
  variant(qtype: number, reply: Reply, stratum: Stratum): Reply {
    let { answer, authority, additional } = reply;
    if (this.config.policy === 'weighted') {
      if (qtype === Type.A || qtype === Type.AAAA || qtype === Type.SRV) {
        answer = weighted(answer, this.weights, this.random, stratum);
        additional = weighted(additional, this.weights, this.random);
      }
    } else {
      answer = roundRobin(answer, this.random, stratum);
      authority = roundRobin(authority, this.random);
      additional = roundRobin(additional, this.random);
    }
    if (this.config.prefer.length > 0) {
      answer = preferSubnets(answer, this.config.prefer);
      additional = preferSubnets(additional, this.config.prefer);
    }
    if (answer === reply.answer && authority === reply.authority && additional === reply.additional) return reply;
    const out: Reply = { rcode: reply.rcode, flags: reply.flags, answer, authority, additional };
    if (reply.error) out.error = reply.error;
    return out;
  }
}

/**
 * `variant` (records of a stored reply, reordered) as the cache hit `reply`
 * has it: its rcode, flags and TTL. Built per hit, like the hit itself, so
 * it dies young (see the cache's hit path).
 */
function retimedVariant(variant: Reply, reply: Reply, ttl: number): Reply {
  const out: Reply = {
    rcode: reply.rcode,
    flags: reply.flags,
    answer: variant.answer,
    authority: variant.authority,
    additional: variant.additional,
    retimed: { base: variant, ttl },
  };
  if (reply.error) out.error = reply.error;
  return out;
}

export default definePlugin<LoadbalanceConfig>({
  name: 'loadbalance',
  // Like CoreDNS, a repeated directive is accepted and the last one wins.
  parse: (directives, block) => directives.map((directive) => parseOne(directive, block)).at(-1)!,
  create(config, _block, log) {
    const balancer = new LoadBalancer(config, log);
    return {
      serve: (request, next) => balancer.serve(request, next),
      start: () => balancer.start(),
      stop: () => balancer.stop(),
    };
  },
});
