// k8s_external: Services' external addresses under a zone of their own
// (K8SX-1..3), from the kubernetes plugin of the same block.
//
//   k8s_external [ZONE...] {
//       apex LABEL                 the label the zone's own records live under (default dns)
//       ttl SECONDS                0-3600, default 5
//       headless                   headless Services answer with their endpoints
//       fallthrough [ZONE...]      NXDOMAIN goes down the chain instead
//   }
//
// `<svc>.<ns>.<zone>` A/AAAA from spec.externalIPs and load-balancer ingress
// IPs (an ingress hostname is a CNAME, chased through the server), SRV for
// ports, PTR for external IPs when a reverse zone is listed, and SOA/NS at the
// apex with `ns1.<apex>.<zone>` as the name server. Which TTL goes where
// follows CoreDNS 1.11: A, AAAA, PTR, SOA, NS and SRV glue take this
// plugin's ttl; SRV and CNAME records the kubernetes plugin's.

import { normalizeKey } from '../../src/corefile/address.ts';
import { setupError, unknownProperty, wrongArgCount } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import { definePlugin, type BlockContext, type Next, type Request } from '../../src/plugin.ts';
import { withQuestion } from '../../src/request.ts';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import { ReplyFlag, type RecordData, type Reply, type ResourceRecord } from '../../src/wire/message.ts';
import { isSubdomain, longestMatchingZone } from '../../src/wire/names.ts';
import { join, relative, splitLabels } from '../kubernetes/answer.ts';
import type { ExternalItem, ExternalLookup } from '../kubernetes/external.ts';
import { KubernetesInstance } from '../kubernetes/instance.ts';
import { canonicalIP, familyOf } from '../kubernetes/reverse.ts';

const PLUGIN = 'k8s_external';

export interface K8sExternalConfig {
  /** Canonical zones, in the order given (the first one is where PTR targets are written). */
  zones: string[];
  /** The label under which ns1 and hostmaster live (`apex`), as written. */
  apex: string;
  ttl: number;
  headless: boolean;
  /** `fallthrough [ZONES]`: canonical zones ('.' for all); null when not set. */
  fallthrough: string[] | null;
  /** The directive, for the setup error when the block has no kubernetes plugin. */
  token: Token;
}

function zonesOf(tokens: Token[]): string[] {
  return [...new Set(tokens.flatMap((token) => normalizeKey(token, 53).map((address) => address.zone)))];
}

/** Every occurrence counts, as in CoreDNS: options add up, the last one's zones win. */
export function parseK8sExternal(directives: Directive[], block: BlockContext): K8sExternalConfig {
  const config: K8sExternalConfig = { zones: [], apex: 'dns', ttl: 5, headless: false, fallthrough: null, token: directives[0]!.name };
  for (const directive of directives) {
    config.zones = directive.args.length > 0 ? zonesOf(directive.args) : [...block.zones];
    config.token = directive.name;
    for (const option of directive.block ?? []) {
      if (option.block !== null) throw setupError(option.name, `plugin/${PLUGIN}: '${option.name.text}' takes no '{ }' block`);
      const [value] = option.args;
      switch (option.name.text) {
        case 'ttl': {
          if (value === undefined) throw wrongArgCount(option.name);
          if (!/^[+-]?\d+$/.test(value.text)) throw setupError(value, `plugin/${PLUGIN}: strconv.Atoi: parsing "${value.text}": invalid syntax`);
          const ttl = Number(value.text);
          if (ttl < 0 || ttl > 3600) throw setupError(value, `ttl must be in range [0, 3600]: ${ttl}`);
          config.ttl = ttl;
          break;
        }
        case 'apex':
          if (value === undefined) throw wrongArgCount(option.name);
          config.apex = value.text;
          break;
        case 'headless':
          // CoreDNS reads a word after `headless` as the next property.
          if (value !== undefined) throw unknownProperty(PLUGIN, value);
          config.headless = true;
          break;
        case 'fallthrough':
          config.fallthrough = option.args.length === 0 ? ['.'] : zonesOf(option.args);
          break;
        default:
          throw unknownProperty(PLUGIN, option.name);
      }
    }
  }
  return config;
}

/** An external name target to resolve through the server, in place in the answer. */
interface Chase {
  chase: string;
  qtype: number;
}
type Piece = ResourceRecord | Chase;

const noRecords: readonly ResourceRecord[] = Object.freeze([]);

/** A hostname as CoreDNS's dns.Fqdn writes it: as given, with a final dot. */
function fqdn(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}

export class K8sExternal {
  private readonly config: K8sExternalConfig;
  private readonly apex: string;
  private lookup: ExternalLookup | null = null;

  constructor(config: K8sExternalConfig) {
    this.config = config;
    this.apex = config.apex.toLowerCase();
  }

  /** CoreDNS resolves the kubernetes plugin at startup; a block without one is a setup error. */
  connect(block: BlockContext): void {
    const kubernetes = block.plugins.find(({ name }) => name === 'kubernetes');
    if (kubernetes === undefined) throw setupError(this.config.token, `plugin/${PLUGIN}: kubernetes plugin not loaded`);
    if (!(kubernetes.instance instanceof KubernetesInstance)) {
      throw setupError(this.config.token, `plugin/${PLUGIN}: kubernetes plugin does not implement the Externaler interface`);
    }
    this.lookup = kubernetes.instance.external;
  }

  /** For caches in front: answers change with the kubernetes plugin's index. */
  generation(): number {
    return this.lookup?.generation ?? 0;
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const { qname, qtype } = request.query;
    const zone = longestMatchingZone(qname, this.config.zones);
    if (zone === null || this.lookup === null) return next(request);
    for (const each of this.config.zones) {
      if (qname === each) return this.apexAnswer(qname, qtype, zone);
      if (isSubdomain(qname, join(this.apex, each))) return this.subApexAnswer(qname, qtype, zone);
    }
    const { items, rcode } = this.lookup.lookup(qname, qtype, zone, this.config.headless);
    if (items.length === 0) {
      if (rcode === Rcode.NXDOMAIN && this.fallsThrough(qname)) return next(request);
      return this.negative(rcode, zone);
    }
    let pieces: Piece[];
    let additional: Piece[] = [];
    switch (qtype) {
      case Type.A:
      case Type.AAAA:
        pieces = this.addresses(qname, qtype, items);
        break;
      case Type.SRV:
        [pieces, additional] = this.services(qname, items);
        break;
      case Type.PTR:
        pieces = this.pointers(qname, items);
        break;
      default:
        pieces = [];
    }
    if (pieces.length === 0) return this.answer(noRecords, [this.soa(zone)], additional as ResourceRecord[]);
    if (pieces.some(isChase) || additional.some(isChase)) return this.chase(request, zone, pieces, additional);
    return this.answer(pieces as ResourceRecord[], noRecords, additional as ResourceRecord[]);
  }

  // ---- the zone's own names (K8SX-3) ----

  private apexAnswer(qname: string, qtype: number, zone: string): Reply {
    if (qtype === Type.SOA) return this.answer([this.soa(zone)]);
    if (qtype !== Type.NS) return this.negative(Rcode.NOERROR, zone);
    const nameserver = join(`ns1.${this.config.apex}`, qname);
    const glue = this.lookup!.nameserverAddresses(this.config.headless).map((ip) => this.rr(nameserver, familyOf(ip) === 4 ? Type.A : Type.AAAA, ip, this.config.ttl));
    return this.answer([this.rr(zone, Type.NS, join(`ns1.${this.config.apex}`, zone), this.config.ttl)], noRecords, glue);
  }

  /** `<apex>.<zone>` is an empty non-terminal; `ns1.<apex>.<zone>` has this server's addresses; nothing else exists. */
  private subApexAnswer(qname: string, qtype: number, zone: string): Reply {
    const labels = splitLabels(relative(qname, zone));
    if (labels.length === 1) return this.negative(Rcode.NOERROR, zone);
    if (labels.length !== 2 || labels[0] !== 'ns1') return this.negative(Rcode.NXDOMAIN, zone);
    const family = qtype === Type.A ? 4 : qtype === Type.AAAA ? 6 : 0;
    const answer = this.lookup!
      .nameserverAddresses(this.config.headless)
      .filter((ip) => familyOf(ip) === family)
      .map((ip) => this.rr(qname, qtype, ip, this.config.ttl));
    return answer.length === 0 ? this.negative(Rcode.NOERROR, zone) : this.answer(answer);
  }

  // ---- records from items (CoreDNS's msg_to_dns.go) ----

  /** A/AAAA: each address once; an ingress hostname is a CNAME (not de-duplicated) followed by its own answer. */
  private addresses(qname: string, qtype: number, items: readonly ExternalItem[]): Piece[] {
    const family = qtype === Type.A ? 4 : 6;
    const out: Piece[] = [];
    const seen = new Set<string>();
    for (const { host } of items) {
      if (canonicalIP(host) === null) {
        out.push(this.rr(qname, Type.CNAME, fqdn(host), this.lookup!.ttl), { chase: fqdn(host), qtype });
        continue;
      }
      if (familyOf(host) !== family || seen.has(host)) continue;
      seen.add(host);
      out.push(this.rr(qname, qtype, host, this.config.ttl));
    }
    return out;
  }

  /** SRV: weights over every item, one SRV per target and port, the targets' addresses as additionals. */
  private services(qname: string, items: readonly ExternalItem[]): [Piece[], Piece[]] {
    const weight = Math.max(1, Math.floor((100 / (100 * items.length)) * 100));
    const answer: Piece[] = [];
    const additional: Piece[] = [];
    const seen = new Set<string>();
    const firstTime = (key: string): boolean => {
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    };
    for (const { host, port, target: serviceTarget } of items) {
      if (port === -1) continue;
      const isName = canonicalIP(host) === null;
      const target = isName ? fqdn(host) : serviceTarget;
      if (firstTime(`${target} ${port}`)) answer.push(this.rr(qname, Type.SRV, { priority: 0, weight, port, target }, this.lookup!.ttl));
      if (!firstTime(`${target} @${host}`)) continue;
      if (isName) additional.push({ chase: target, qtype: Type.A }, { chase: target, qtype: Type.AAAA });
      else additional.push(this.rr(target, familyOf(host) === 4 ? Type.A : Type.AAAA, host, this.config.ttl));
    }
    return [answer, additional];
  }

  /** PTR: `<svc>.<ns>` under the first zone of the directive, as CoreDNS writes it. */
  private pointers(qname: string, items: readonly ExternalItem[]): Piece[] {
    const names = [...new Set(items.map(({ host }) => host))];
    return names.map((name) => this.rr(qname, Type.PTR, join(name, this.config.zones[0]!), this.config.ttl));
  }

  /** Ingress hostnames: asked of the whole server, their answers put in place (CoreDNS's upstream lookup). */
  private async chase(request: Request, zone: string, answerPieces: Piece[], additionalPieces: Piece[]): Promise<Reply> {
    let truncated = false;
    const resolve = async (pieces: Piece[]): Promise<ResourceRecord[]> => {
      const out: ResourceRecord[] = [];
      for (const piece of pieces) {
        if (!isChase(piece)) {
          out.push(piece);
          continue;
        }
        try {
          const reply = await request.reenter(withQuestion(request, piece.chase, piece.qtype));
          if (reply.flags & ReplyFlag.TC) truncated = true;
          out.push(...reply.answer);
        } catch {
          // A failed lookup leaves the CNAME alone.
        }
      }
      return out;
    };
    const answer = await resolve(answerPieces);
    const additional = await resolve(additionalPieces);
    const reply = this.answer(answer, answer.length === 0 ? [this.soa(zone)] : noRecords, additional);
    if (truncated) reply.flags |= ReplyFlag.TC;
    return reply;
  }

  // ---- replies ----

  private fallsThrough(qname: string): boolean {
    return this.config.fallthrough !== null && this.config.fallthrough.some((zone) => isSubdomain(qname, zone));
  }

  private rr(name: string, type: number, data: RecordData, ttl: number): ResourceRecord {
    return { name, type, class: Class.IN, ttl, data };
  }

  /** K8SX-3: `<zone> SOA ns1.<apex>.<zone> hostmaster.<apex>.<zone> <serial> 7200 1800 86400 <ttl>`. */
  private soa(zone: string): ResourceRecord {
    const ttl = this.config.ttl;
    return this.rr(zone, Type.SOA, {
      mname: join(`ns1.${this.config.apex}`, zone),
      rname: join(`hostmaster.${this.config.apex}`, zone),
      serial: this.lookup!.serial >>> 0,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: ttl,
    }, ttl);
  }

  private answer(answer: readonly ResourceRecord[], authority: readonly ResourceRecord[] = noRecords, additional: readonly ResourceRecord[] = noRecords): Reply {
    return { rcode: Rcode.NOERROR, flags: ReplyFlag.AA, answer, authority, additional };
  }

  /** NXDOMAIN, or NODATA with NOERROR: the SOA in the authority section, AA set. */
  private negative(rcode: number, zone: string): Reply {
    return { rcode, flags: ReplyFlag.AA, answer: noRecords, authority: [this.soa(zone)], additional: noRecords };
  }
}

function isChase(piece: Piece): piece is Chase {
  return 'chase' in piece;
}

export default definePlugin<K8sExternalConfig>({
  name: PLUGIN,
  parse: parseK8sExternal,
  create(config, block) {
    const external = new K8sExternal(config);
    block.authorities.push({ zones: config.zones, generation: () => external.generation() });
    return {
      serve: (request, next) => external.serve(request, next),
      start: () => external.connect(block),
    };
  },
});
