// dns64: synthesizes AAAA records from A records (RFC 6147) for IPv6-only
// clients, as CoreDNS 1.11's dns64 plugin does: when the chain has no AAAA
// for a name, the server is asked for its A records and each address is
// embedded in the NAT64 prefix (RFC 6052).

import * as ip from '@leichtgewicht/ip-codec';
import { Counter } from 'prom-client';
import { setupError, unknownProperty, wrongArgCount } from '../../src/corefile/setup.ts';
import type { Token } from '../../src/corefile/types.ts';
import { registry } from '../../src/metrics.ts';
import { definePlugin, type Request } from '../../src/plugin.ts';
import { withQuestion } from '../../src/request.ts';
import { Class, Flag, Rcode, Type } from '../../src/wire/constants.ts';
import { ServerReply, type Reply, type ResourceRecord } from '../../src/wire/message.ts';

const translated = new Counter({
  name: 'coredns_dns64_requests_translated_total',
  help: 'Counter of DNS requests translated by dns64.',
  labelNames: ['server'],
  registers: [registry],
});

export interface Dns64Config {
  /** The prefix's first bytes (prefixLength / 8 of them). */
  prefix: Uint8Array;
  prefixLength: number;
  translateAll: boolean;
  allowIpv4: boolean;
}

/** Go's net.ParseCIDR, then CoreDNS's checks: IPv6, a length of 32, 40, 48, 56, 64 or 96. */
function parsePrefix(token: Token): Pick<Dns64Config, 'prefix' | 'prefixLength'> {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(token.text);
  let bytes: Uint8Array | null = null;
  try {
    if (match) bytes = ip.encode(match[1]!);
  } catch {
    bytes = null;
  }
  const length = match ? Number(match[2]) : -1;
  if (bytes === null || length > bytes.length * 8) throw setupError(token, `invalid CIDR address: ${token.text}`);
  const network = masked(bytes, length);
  const text = `${ip.decode(network)}/${length}`;
  if (bytes.length !== 16) throw setupError(token, `invalid netmask ${bytes.length * 8} IPv6 address: "${text}"`);
  if (length % 8 !== 0 || length < 32 || length > 96) throw setupError(token, `invalid prefix length "${text}"`);
  return { prefix: network.subarray(0, length / 8), prefixLength: length };
}

function masked(bytes: Uint8Array, length: number): Uint8Array {
  const network = Uint8Array.from(bytes);
  for (let bit = length; bit < network.length * 8; bit++) network[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return network;
}

/** RFC 6052 §2.2: the IPv4 address after the prefix, skipping byte 8 (bits 64..71 stay zero). */
export function synthesize(prefix: Uint8Array, ipv4: string): string {
  const address = new Uint8Array(16);
  address.set(prefix);
  const v4 = ip.encode(ipv4);
  let at = prefix.length;
  for (const byte of v4) {
    if (at === 8) at++;
    address[at++] = byte;
  }
  return ip.decode(address);
}

/**
 * A CoreDNS plugin that fails returns an rcode without writing a reply, and
 * dns64 then passes the failure on untranslated. Here such failures are the
 * replies carrying an error and the server's shared error replies.
 */
function unwritten(reply: Reply): boolean {
  return reply.error !== undefined || reply === ServerReply.SERVFAIL || reply === ServerReply.REFUSED;
}

/** CoreDNS's test: no translation for NXDOMAIN with an SOA, or when an AAAA is there (unless translate_all). */
function needsTranslation(reply: Reply, translateAll: boolean): boolean {
  if (reply.rcode === Rcode.NXDOMAIN && reply.authority.some((record) => record.type === Type.SOA)) return false;
  return translateAll || !reply.answer.some((record) => record.type === Type.AAAA);
}

/**
 * The AAAA answer built from the A answer: CoreDNS's synthesized reply is
 * NOERROR without AA or RA, keeps the A reply's TC, authority and additional,
 * and gives each AAAA the smaller of the A's TTL and the AAAA reply's SOA TTL
 * (600 without one, RFC 6147 §5.1.7).
 */
function translation(aaaaReply: Reply, aReply: Reply, prefix: Uint8Array): Reply {
  let soaTtl = 600;
  for (const record of aaaaReply.authority) if (record.type === Type.SOA) soaTtl = record.ttl;
  const answer: ResourceRecord[] = aReply.answer.map((record) =>
    record.type !== Type.A ? record
      : { name: record.name, type: Type.AAAA, class: record.class, ttl: Math.min(record.ttl, soaTtl), data: synthesize(prefix, record.data as string) });
  return { rcode: Rcode.NOERROR, flags: aReply.flags & Flag.TC, answer, authority: aReply.authority, additional: aReply.additional };
}

export default definePlugin<Dns64Config>({
  name: 'dns64',
  parse(directives) {
    const config: Dns64Config = { ...parsePrefix({ text: '64:ff9b::/96', file: '', line: 0 }), translateAll: false, allowIpv4: false };
    for (const directive of directives) {
      const { args } = directive;
      if (args.length > 1) throw wrongArgCount(args.at(-1)!);
      if (args.length === 1) {
        // With a PREFIX argument CoreDNS 1.11.3 does not read the block.
        Object.assign(config, parsePrefix(args[0]!));
        continue;
      }
      for (const option of directive.block ?? []) {
        // CoreDNS reads an option's arguments as the next options.
        const words = [option.name, ...option.args];
        for (let i = 0; i < words.length; i++) {
          const word = words[i]!;
          if (word.text === 'prefix') {
            const value = words[++i];
            if (value === undefined) throw wrongArgCount(word);
            Object.assign(config, parsePrefix(value));
          } else if (word.text === 'translate_all') {
            config.translateAll = true;
          } else if (word.text === 'allow_ipv4') {
            config.allowIpv4 = true;
          } else {
            throw unknownProperty('dns64', word);
          }
        }
      }
    }
    return config;
  },
  create({ prefix, translateAll, allowIpv4 }) {
    async function translate(request: Request, aaaaReply: Reply): Promise<Reply> {
      // The A question goes through the whole server again, as CoreDNS's upstream lookup does.
      const aReply = await request.reenter(withQuestion(request, request.query.qname, Type.A));
      translated.labels(request.server).inc();
      return translation(aaaaReply, aReply, prefix);
    }
    return {
      serve(request, next) {
        const { query } = request;
        if (query.qtype !== Type.AAAA || query.qclass !== Class.IN || (request.family === 1 && !allowIpv4)) return next(request);
        const inspect = (reply: Reply): Reply | Promise<Reply> =>
          unwritten(reply) || !needsTranslation(reply, translateAll) ? reply : translate(request, reply);
        const result = next(request);
        return result instanceof Promise ? result.then(inspect) : inspect(result);
      },
    };
  },
});
