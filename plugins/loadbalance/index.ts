// loadbalance: reorders the records of NOERROR answers written further down
// the chain, cached ones included (LB-1..5).
//
//   loadbalance [round_robin | weighted WEIGHTFILE] {
//       reload DURATION        (weighted only; default 30s, 0 never)
//       prefer CIDR...
//   }
//
// Replies are never changed: each query gets its own order, as in CoreDNS,
// in a new small Reply derived from the one it reorders (message.ts
// Reply.derived). The encoder copies the encoded records of that reply (or
// of the cache entry behind a cache hit) in the new order, so no record is
// encoded again; and nothing is kept per reply, so nothing outlives the
// query for the garbage collector to copy or promote.

import fs from 'node:fs';
import path from 'node:path';
import { expectArgs, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { CorefileError, type Directive, type Token } from '../../src/corefile/types.ts';
import type { Logger } from '../../src/log.ts';
import { definePlugin, type BlockContext, type Next, type Request } from '../../src/plugin.ts';
import { Rcode, Type } from '../../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../../src/wire/message.ts';
import { parseCidr, parseWeights, preferOrder, roundRobinOrder, weightedOrder, type Subnet, type WeightTable } from './shuffle.ts';

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

export class LoadBalancer {
  private readonly config: LoadbalanceConfig;
  private readonly log: Logger;
  private weights: WeightTable = new Map();
  private weightsText: string | null = null;
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
    if (!this.mayReorder(qtype, reply)) return reply;
    const answerOrder = this.sectionOrder(qtype, reply.answer);
    const authorityOrder = this.config.policy === 'round_robin' ? roundRobinOrder(reply.authority, this.random) : null;
    const additionalOrder = this.sectionOrder(qtype, reply.additional);
    if (answerOrder === null && authorityOrder === null && additionalOrder === null) return reply;

    // A cache hit is itself derived from the entry's stored reply: reorder that one's records.
    const from = reply.derived;
    const fromOrder = from?.order ?? null;
    const order: number[] = [];
    let offset = 0;
    const place = (sectionOrder: readonly number[] | null, length: number) => {
      for (let i = 0; i < length; i++) {
        const index = offset + (sectionOrder === null ? i : sectionOrder[i]!);
        order.push(fromOrder === null ? index : fromOrder[index]!);
      }
      offset += length;
    };
    place(answerOrder, reply.answer.length);
    place(authorityOrder, reply.authority.length);
    place(additionalOrder, reply.additional.length);
    const out: Reply = {
      rcode: reply.rcode,
      flags: reply.flags,
      answer: inOrder(reply.answer, answerOrder),
      authority: inOrder(reply.authority, authorityOrder),
      additional: inOrder(reply.additional, additionalOrder),
      derived: { base: from === undefined ? reply : from.base, ttl: from === undefined ? null : from.ttl, order },
    };
    if (reply.error) out.error = reply.error;
    return out;
  }

  /** A cheap first test; round_robin decides per section (roundRobinOrder). */
  private mayReorder(qtype: number, reply: Reply): boolean {
    if (this.config.prefer.length > 0) return reply.answer.length + reply.additional.length > 1;
    if (this.config.policy === 'weighted') {
      return (qtype === Type.A || qtype === Type.AAAA || qtype === Type.SRV) && (reply.answer.length > 1 || reply.additional.length > 1);
    }
    return reply.answer.length > 1 || reply.authority.length > 1 || reply.additional.length > 1;
  }

  /** The new order of the answer or additional section (indexes into it), or null when it stays. */
  private sectionOrder(qtype: number, records: readonly ResourceRecord[]): number[] | null {
    let order: number[] | null;
    if (this.config.policy === 'weighted') {
      const weighs = qtype === Type.A || qtype === Type.AAAA || qtype === Type.SRV;
      order = weighs ? weightedOrder(records, this.weights, this.random) : null;
    } else {
      order = roundRobinOrder(records, this.random);
    }
    if (this.config.prefer.length === 0) return order;
    // prefer runs on the policy's result: compose the two orders.
    const preferred = preferOrder(inOrder(records, order), this.config.prefer);
    if (preferred === null) return order;
    return order === null ? preferred : preferred.map((index) => order[index]!);
  }
}

function inOrder(records: readonly ResourceRecord[], order: readonly number[] | null): readonly ResourceRecord[] {
  return order === null ? records : order.map((index) => records[index]!);
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
      // explain: the policy; the traced chain already says whether the answer was reordered.
      explain: {
        after(_request, _reply, step) {
          step.detail['policy'] = config.policy;
          if (step.outcome === 'changed the reply') step.outcome = 'reordered the answer';
        },
      },
    };
  },
});
