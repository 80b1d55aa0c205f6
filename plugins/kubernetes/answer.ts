// (qname, qtype) → Reply, with CoreDNS's exact answer shapes (K8S-6..38).
//
// The structure follows CoreDNS's plugin/kubernetes (handler.go, kubernetes.go,
// parse.go, ns.go, reverse.go) and plugin/backend_lookup.go closely, because
// the corner cases (which names are NODATA and which NXDOMAIN, SRV weights,
// what an apex TXT gives) fall out of that structure:
//
//   records(name)   parse the name below the zone, check the namespace, and
//                   list the matching "items" (an address and port, or an
//                   ExternalName target), or NAME_ERROR          (Records)
//   services(name)  records(), plus ns.dns.<zone> and the SRV filter (Services)
//   answer()        per query type, turn items into RRs         (ServeDNS + plugin.A/SRV/...)
//
// The result is a Reply, NAME_ERROR (the handler turns it into NXDOMAIN,
// SERVFAIL before sync, or fallthrough), or a promise when an ExternalName
// target has to be resolved by re-entering the server (K8S-24).
//
// Owner names of answers are the query name as the request carries it
// (lowercased); the encoder points them at the question so the client sees its
// own letter case (K8S-2). Names built from the zone (SRV and NS targets, their
// glue, SOA names) are lowercase object names and the lowercase zone; for a
// query that spells the zone otherwise, withZoneSpelling gives them that
// spelling, as CoreDNS builds them from the zone as the query spells it.

import type { Request } from '../../src/plugin.ts';
import { withQuestion } from '../../src/request.ts';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import { ReplyFlag, ServerReply, type RecordData, type Reply, type ResourceRecord, type SoaData, type SrvData } from '../../src/wire/message.ts';
import { canonicalName, isSubdomain, longestMatchingZone } from '../../src/wire/names.ts';
import type { ServicePort } from './model.ts';
import { addressFromReverse, canonicalIP, familyOf, isReverseName } from './reverse.ts';
import type { KubernetesConfig, PodMode } from './setup.ts';
import type { ClusterIndex, IndexedSlice } from './store.ts';

/** "This name does not exist" (CoreDNS's errNoItems / errNsNotExposed / errInvalidRequest). */
export const NAME_ERROR: unique symbol = Symbol('name error');
export type NameError = typeof NAME_ERROR;

export type Answer = Reply | NameError | Promise<Reply>;

/** The schema version record (K8S-6). */
export const DNS_SCHEMA_VERSION = '1.1.0';
const DNS_VERSION_TTL = 28800;
/** CoreDNS stops adding CNAMEs once 8 are in the chain (`len(previousRecords) > 7`). */
const MAX_CNAME_CHAIN = 8;

const noRecords: readonly ResourceRecord[] = Object.freeze([]);

/** What a name maps to before it becomes RRs (CoreDNS's msg.Service). */
interface Item {
  /** A canonical IP, or for an ExternalName the target as stored. */
  host: string;
  /** -1 when the Service or slice has no ports (never an SRV). */
  port: number;
  /** 4 or 6 for an address, 0 for an ExternalName target. */
  family: 0 | 4 | 6;
  /** The SRV target name; '' unless asked for. */
  target: string;
}

/** An ExternalName target outside the plugin's zones, resolved by re-entering the server. */
interface Chase {
  chase: string;
}
type Piece = ResourceRecord | Chase;

const noItems: readonly Item[] = Object.freeze([]);
/** A Service or slice without ports acts as one unnamed port -1 (CoreDNS's sentinel). */
export const NO_PORTS: readonly ServicePort[] = Object.freeze([Object.freeze({ name: '', protocol: '', port: -1 })]);

/** `name` relative to `zone` without the joining dot; `name` must be at or below `zone`. */
export function relative(name: string, zone: string): string {
  if (name.length === zone.length) return '';
  if (zone === '.') return name.slice(0, -1);
  return name.slice(0, name.length - zone.length - 1);
}

/** `prefix.zone.` */
export function join(prefix: string, zone: string): string {
  return zone === '.' ? `${prefix}.` : `${prefix}.${zone}`;
}

/** Labels of a relative name; escaped dots (\.) stay inside their label. */
export function splitLabels(base: string): string[] {
  if (!base.includes('\\')) return base.split('.');
  const labels: string[] = [];
  let label = '';
  for (let i = 0; i < base.length; i++) {
    const char = base[i]!;
    if (char === '\\' && i + 1 < base.length) {
      label += char + base[i + 1];
      i++;
    } else if (char === '.') {
      labels.push(label);
      label = '';
    } else {
      label += char;
    }
  }
  labels.push(label);
  return labels;
}

export function stripUnderscore(label: string): string {
  return label.startsWith('_') ? label.slice(1) : label;
}

/** Port and protocol match, an empty query part matching anything (matchPortAndProtocol). */
export function portMatches(port: string, protocol: string, candidate: ServicePort): boolean {
  return (port === '' || port === candidate.name) && (protocol === '' || protocol === candidate.protocol);
}

/** K8S-18 step 3: 10.1.2.3 → 10-1-2-3; 2001:db8::1 → 2001-db8--1; a trailing '-' gets a '0'. */
export function dashedAddress(ip: string): string {
  if (familyOf(ip) === 4) return ip.replaceAll('.', '-');
  const dashed = ip.replaceAll(':', '-');
  return dashed.endsWith('-') ? `${dashed}0` : dashed;
}

/** K8S-18: the name of a slice's i-th address: hostname, else (endpoint_pod_names) the pod name, else the dashed IP. */
export function endpointHostname(slice: IndexedSlice, i: number, endpointPodNames: boolean): string {
  const hostname = slice.hostnames?.[i];
  if (hostname) return hostname;
  const podName = slice.podNames?.[i];
  if (endpointPodNames && podName && podName.length < 64) return podName;
  return dashedAddress(slice.addresses[i]!);
}

/** `name` with its `zone` tail (lowercase, as built) spelled `spelledZone`; other names unchanged. */
function respell(name: string, zone: string, spelledZone: string): string {
  if (zone === '.' || !name.endsWith(zone)) return name;
  if (name.length !== zone.length && name[name.length - zone.length - 1] !== '.') return name;
  return name.slice(0, name.length - zone.length) + spelledZone;
}

/**
 * `reply` (built for `zone`) as CoreDNS answers a query spelling the zone
 * `spelledZone`: SOA names, SRV and NS targets and the additional records'
 * owners end in that spelling; answer owners stay the query's own (K8S-2).
 * Cold: only mixed-case queries get here.
 */
export function withZoneSpelling(reply: Reply, zone: string, spelledZone: string): Reply {
  const data = (record: ResourceRecord): RecordData => {
    switch (record.type) {
      case Type.SOA: {
        const soa = record.data as SoaData;
        return { ...soa, mname: respell(soa.mname, zone, spelledZone), rname: respell(soa.rname, zone, spelledZone) };
      }
      case Type.SRV: {
        const srv = record.data as SrvData;
        return { ...srv, target: respell(srv.target, zone, spelledZone) };
      }
      case Type.NS:
        return respell(record.data as string, zone, spelledZone);
      default:
        return record.data;
    }
  };
  const inSection = (records: readonly ResourceRecord[], owners: boolean): readonly ResourceRecord[] =>
    records.length === 0 ? records : records.map((record) => ({
      ...record,
      name: owners || record.type === Type.SOA ? respell(record.name, zone, spelledZone) : record.name,
      data: data(record),
    }));
  const copy: Reply = {
    rcode: reply.rcode,
    flags: reply.flags,
    answer: inSection(reply.answer, false),
    authority: inSection(reply.authority, false),
    additional: inSection(reply.additional, true),
  };
  if (reply.error !== undefined) copy.error = reply.error;
  return copy;
}

export class Answers {
  private readonly zones: readonly string[];
  private readonly primaryZone: string;
  private readonly ttl: number;
  private readonly namespaces: ReadonlySet<string> | null;
  private readonly podMode: PodMode;
  private readonly endpointPodNames: boolean;
  private readonly ignoreEmptyService: boolean;
  private readonly noEndpoints: boolean;
  private readonly store: ClusterIndex;
  private readonly localIPs: () => readonly string[];
  /** zone → [SOA], rebuilt when the store changes (the serial moves). */
  private readonly soa = new Map<string, readonly ResourceRecord[]>();
  private soaGeneration = -1;

  constructor(config: KubernetesConfig, store: ClusterIndex, localIPs: () => readonly string[]) {
    this.zones = config.zones;
    this.primaryZone = config.primaryZone;
    this.ttl = config.ttl;
    this.namespaces = config.namespaces;
    this.podMode = config.podMode;
    this.endpointPodNames = config.endpointPodNames;
    this.ignoreEmptyService = config.ignoreEmptyService;
    this.noEndpoints = config.noEndpoints;
    this.store = store;
    this.localIPs = localIPs;
  }

  /** The answer to `qname`/`qtype`; `zone` is the longest plugin zone containing `qname`. */
  answer(request: Request, qname: string, qtype: number, zone: string): Answer {
    switch (qtype) {
      case Type.A:
      case Type.AAAA:
        return this.addressAnswer(request, qname, qtype, zone);
      case Type.TXT:
        return this.txtAnswer(qname, zone);
      case Type.CNAME:
        return this.cnameAnswer(qname, zone);
      case Type.PTR:
        return this.ptrAnswer(qname, zone);
      case Type.SRV:
        return this.srvAnswer(qname, zone);
      case Type.SOA:
        // K8S-30: the apex has the SOA; any other name is NODATA, existing or not.
        return qname === zone ? this.positive([this.soaSection(zone)[0]!]) : this.nodata(zone);
      case Type.AXFR:
      case Type.IXFR:
        return ServerReply.REFUSED; // KP-21
      case Type.NS:
        // K8S-31; below the apex NS is like any other type (K8S-32).
        return qname === zone ? this.nsAnswer(qname, zone) : this.existence(qname, zone);
      default:
        return this.existence(qname, zone);
    }
  }

  /** NODATA or NXDOMAIN, by whether an A lookup of the name would fail (K8S-36). */
  private existence(qname: string, zone: string): Answer {
    return this.services(qname, Type.A, zone, false) === NAME_ERROR ? NAME_ERROR : this.nodata(zone);
  }

  /** NXDOMAIN or SERVFAIL with the zone's SOA in the authority section, AA set (K8S-35, KP-25). */
  errorReply(rcode: number, zone: string): Reply {
    return { rcode, flags: ReplyFlag.AA, answer: noRecords, authority: this.soaSection(zone), additional: noRecords };
  }

  nodata(zone: string): Reply {
    return this.errorReply(Rcode.NOERROR, zone);
  }

  // ---- per query type ----

  private addressAnswer(request: Request, qname: string, qtype: number, zone: string): Answer {
    const pieces = this.addresses(qname, qtype, zone, []);
    if (pieces === NAME_ERROR) return NAME_ERROR;
    if (pieces.length === 0) return this.nodata(zone);
    for (const piece of pieces) if ('chase' in piece) return this.chase(request, qtype, pieces);
    return this.positive(pieces as ResourceRecord[]);
  }

  /** plugin.A / plugin.AAAA: addresses of the family, CNAMEs chased (K8S-24, KP-31). */
  private addresses(name: string, qtype: number, zone: string, chain: readonly ResourceRecord[]): Piece[] | NameError {
    const items = this.services(name, qtype, zone, false);
    if (items === NAME_ERROR) return NAME_ERROR;
    const family = qtype === Type.A ? 4 : 6;
    const out: Piece[] = [];
    let seen: Set<string> | null = null;
    for (const item of items) {
      if (item.family === 0) {
        const target = canonicalName(item.host);
        // x CNAME x (or a name below x) is a loop: dropped.
        if (isSubdomain(target, name)) continue;
        if (chain.length >= MAX_CNAME_CHAIN) continue;
        if (chain.some((record) => (record.data as string).toLowerCase() === target)) continue;
        const record = this.rr(name, Type.CNAME, item.host.endsWith('.') ? item.host : `${item.host}.`);
        const targetZone = longestMatchingZone(target, this.zones);
        if (targetZone !== null) {
          // Internal target: resolved here; the CNAME is kept only if the chain ends in addresses.
          const next = this.addresses(target, qtype, targetZone, [...chain, record]);
          if (next !== NAME_ERROR && next.length > 0) out.push(record, ...next);
        } else {
          out.push(record, { chase: target });
        }
        continue;
      }
      if (item.family !== family) continue;
      if (items.length > 1) {
        seen ??= new Set();
        if (seen.has(item.host)) continue;
        seen.add(item.host);
      }
      out.push(this.rr(name, qtype, item.host));
    }
    return out;
  }

  /** External ExternalName targets: re-enter the server, append its answers (K8S-24). */
  private async chase(request: Request, qtype: number, pieces: Piece[]): Promise<Reply> {
    const answer: ResourceRecord[] = [];
    let truncated = false;
    for (const piece of pieces) {
      if (!('chase' in piece)) {
        answer.push(piece);
        continue;
      }
      try {
        const reply = await request.reenter(withQuestion(request, piece.chase, qtype));
        if (reply.flags & ReplyFlag.TC) truncated = true;
        // The upstream RCODE is not propagated; its records keep their TTLs.
        for (const record of reply.answer) answer.push(record);
      } catch {
        // A failed lookup leaves just the CNAME.
      }
    }
    return {
      rcode: Rcode.NOERROR,
      flags: ReplyFlag.AA | (truncated ? ReplyFlag.TC : 0),
      answer,
      authority: noRecords,
      additional: noRecords,
    };
  }

  /** K8S-6/7: dns-version.<zone>; other names NODATA when they hold records of another type, else NXDOMAIN. */
  private txtAnswer(qname: string, zone: string): Answer {
    if (relative(qname, zone) === 'dns-version') {
      return this.positive([this.rr(qname, Type.TXT, [DNS_SCHEMA_VERSION], DNS_VERSION_TTL)]);
    }
    const items = this.records(qname, zone, false);
    return items !== NAME_ERROR && items.length > 0 ? this.nodata(zone) : NAME_ERROR;
  }

  /** K8S-23: only an ExternalName has a CNAME; the target is externalName as stored, made fully qualified. */
  private cnameAnswer(qname: string, zone: string): Answer {
    const items = this.services(qname, Type.CNAME, zone, false);
    if (items === NAME_ERROR) return NAME_ERROR;
    const first = items[0];
    if (first === undefined || first.family !== 0) return this.nodata(zone);
    return this.positive([this.rr(qname, Type.CNAME, first.host.endsWith('.') ? first.host : `${first.host}.`)]);
  }

  /** K8S-10..13, K8S-20: SRV with weights counted before de-duplication, targets' addresses as additionals. */
  private srvAnswer(qname: string, zone: string): Answer {
    const items = this.services(qname, Type.SRV, zone, true);
    if (items === NAME_ERROR) return NAME_ERROR;
    // CoreDNS: 100 / (100 × N) × 100, floored, at least 1, N counted before the port and duplicate filters.
    const weight = items.length === 0 ? 0 : Math.max(1, Math.floor((100 / (100 * items.length)) * 100));
    const answer: ResourceRecord[] = [];
    const additional: ResourceRecord[] = [];
    const seen = new Set<string>();
    for (const item of items) {
      if (item.port === -1) continue;
      const srvKey = `${item.target} ${item.port}`;
      if (!seen.has(srvKey)) {
        seen.add(srvKey);
        answer.push(this.rr(qname, Type.SRV, { priority: 0, weight, port: item.port, target: item.target }));
      }
      const addressKey = `${item.target} ${item.host}`;
      if (!seen.has(addressKey)) {
        seen.add(addressKey);
        additional.push(this.rr(item.target, item.family === 4 ? Type.A : Type.AAAA, item.host));
      }
    }
    return answer.length === 0 ? this.nodata(zone) : this.positive(answer, additional);
  }

  /** K8S-14, K8S-21/22, KP-37: cluster IPs first, then endpoints; targets in the primary zone. */
  private ptrAnswer(qname: string, zone: string): Answer {
    const ip = addressFromReverse(qname);
    if (ip === null) {
      // Not a full reverse address: NODATA if the name exists as something else.
      return this.records(qname, zone, false) === NAME_ERROR ? NAME_ERROR : this.nodata(zone);
    }
    const targets = this.reverseTargets(ip);
    if (targets.length === 0) return NAME_ERROR;
    return this.positive(targets.map((target) => this.rr(qname, Type.PTR, target)));
  }

  /** K8S-31: NS at the apex, the addresses in the additional section. */
  private nsAnswer(qname: string, zone: string): Answer {
    const answer: ResourceRecord[] = [];
    const additional: ResourceRecord[] = [];
    const names = new Set<string>();
    for (const { name, ip } of this.nameservers(zone)) {
      additional.push(this.rr(name, familyOf(ip) === 4 ? Type.A : Type.AAAA, ip));
      if (names.has(name)) continue;
      names.add(name);
      answer.push(this.rr(qname, Type.NS, name));
    }
    return answer.length === 0 ? this.nodata(zone) : this.positive(answer, additional);
  }

  // ---- name → items ----

  /** CoreDNS's Services(): records() plus ns.dns.<zone> (K8S-32) and dropping ExternalNames for SRV. */
  private services(name: string, qtype: number, zone: string, withTargets: boolean): readonly Item[] | NameError {
    if (relative(name, zone) === 'ns.dns') {
      if (qtype !== Type.A && qtype !== Type.AAAA) return noItems;
      const family = qtype === Type.A ? 4 : 6;
      const items: Item[] = [];
      for (const { ip } of this.nameservers(zone)) {
        if (familyOf(ip) === family) items.push({ host: ip, port: 0, family, target: '' });
      }
      return items;
    }
    const items = this.records(name, zone, withTargets);
    if (qtype === Type.SRV && items !== NAME_ERROR) return items.filter((item) => item.family !== 0);
    return items;
  }

  /** CoreDNS's parseRequest + Records(): K8S-3 grammar, namespace exposure (KP-8, KP-16). */
  private records(name: string, zone: string, withTargets: boolean): readonly Item[] | NameError {
    const base = relative(name, zone);
    // The apex, svc.<zone> and pod.<zone> exist with no records (K8S-33).
    if (base === '' || base === 'svc' || base === 'pod') return noItems;
    const labels = splitLabels(base);
    let last = labels.length - 1;
    const kind = labels[last]!;
    if (kind !== 'svc' && kind !== 'pod') return NAME_ERROR;
    if (--last < 0) return noItems;
    const namespace = labels[last--]!;
    let service = '';
    let endpoint = '';
    let port = '';
    let protocol = '';
    if (last >= 0) service = labels[last--]!;
    if (last === 0) {
      endpoint = labels[0]!;
    } else if (last === 1) {
      port = stripUnderscore(labels[0]!);
      protocol = stripUnderscore(labels[1]!);
    } else if (last > 1) {
      return NAME_ERROR; // too many labels (K8S-3.6)
    }
    if (isReverseName(name)) return NAME_ERROR;
    if (!this.namespaceExposed(namespace)) return NAME_ERROR;
    if (kind === 'pod') return this.findPods(namespace, service);
    return this.findServices(namespace, service, endpoint, port, protocol, zone, withTargets);
  }

  private namespaceExposed(namespace: string): boolean {
    return (this.namespaces === null || this.namespaces.has(namespace)) && this.store.hasNamespace(namespace);
  }

  private findServices(
    namespace: string,
    name: string,
    endpoint: string,
    port: string,
    protocol: string,
    zone: string,
    withTargets: boolean,
  ): readonly Item[] | NameError {
    if (name === '') return noItems; // <ns>.svc.<zone>: NODATA
    const service = this.store.service(namespace, name);
    if (service === undefined) return NAME_ERROR;

    // KP-13: a ClusterIP Service without ready addresses does not exist.
    if (this.ignoreEmptyService && service.externalName === null && !service.headless && this.readyCount(namespace, name) === 0) {
      return NAME_ERROR;
    }

    if (service.externalName !== null) {
      // K8S-25: no endpoint or port names; an IP literal is not a CNAME target.
      if (endpoint !== '' || port !== '' || protocol !== '') return NAME_ERROR;
      if (canonicalIP(service.externalName) !== null) return NAME_ERROR;
      return [{ host: service.externalName, port: 0, family: 0, target: '' }];
    }

    const items: Item[] = [];
    const serviceName = `${service.name}.${service.namespace}.svc`;

    if (service.headless || endpoint !== '') {
      // K8S-16..20: endpoints (also of ClusterIP Services when an endpoint label is asked, K8S-19).
      for (const slice of this.slicesOf(namespace, name)) {
        const ports = slice.ports.length > 0 ? slice.ports : NO_PORTS;
        const addresses = slice.addresses;
        for (let i = 0; i < addresses.length; i++) {
          const address = addresses[i]!;
          let hostname: string | null = null;
          if (endpoint !== '') {
            hostname = this.hostname(slice, i);
            if (hostname !== endpoint && hostname.toLowerCase() !== endpoint) continue;
          }
          for (const candidate of ports) {
            if (!portMatches(port, protocol, candidate)) continue;
            const target = withTargets ? join(`${hostname ?? this.hostname(slice, i)}.${serviceName}`, zone) : '';
            items.push({ host: address, port: candidate.port, family: familyOf(address), target });
          }
        }
      }
      return items.length > 0 ? items : NAME_ERROR;
    }

    // K8S-8..12: the cluster IPs, once per matching port.
    let matched = false;
    const target = withTargets ? join(serviceName, zone) : '';
    for (const candidate of service.ports.length > 0 ? service.ports : NO_PORTS) {
      if (!portMatches(port, protocol, candidate)) continue;
      matched = true;
      for (const ip of service.clusterIPs) items.push({ host: ip, port: candidate.port, family: familyOf(ip), target });
    }
    return matched ? items : NAME_ERROR;
  }

  /** K8S-27, KP-9. */
  private findPods(namespace: string, label: string): readonly Item[] | NameError {
    if (this.podMode === 'disabled') return NAME_ERROR;
    if (label === '') return noItems; // <ns>.pod.<zone>: NODATA
    let dashes = 0;
    for (let i = 0; i < label.length; i++) if (label.charCodeAt(i) === 45) dashes++;
    const text = dashes === 3 && !label.includes('--') ? label.replaceAll('-', '.') : label.replaceAll('-', ':');
    const ip = canonicalIP(text);
    if (ip === null) return NAME_ERROR;
    if (this.podMode === 'verified') {
      // The pod index is keyed by status.podIP as stored; the query must spell it the same way.
      let found = false;
      for (const pod of this.store.podsWithIP(text)) if (pod.namespace === namespace) found = true;
      if (!found) return NAME_ERROR;
    }
    return [{ host: ip, port: 0, family: familyOf(ip), target: '' }];
  }

  private hostname(slice: IndexedSlice, i: number): string {
    return endpointHostname(slice, i, this.endpointPodNames);
  }

  private slicesOf(namespace: string, service: string): readonly IndexedSlice[] {
    return this.noEndpoints ? [] : this.store.slicesFor(namespace, service);
  }

  private readyCount(namespace: string, service: string): number {
    let count = 0;
    for (const slice of this.slicesOf(namespace, service)) count += slice.addresses.length;
    return count;
  }

  /** PTR targets for an address (K8S-14, K8S-21, K8S-22). */
  private reverseTargets(ip: string): string[] {
    const restricted = this.namespaces !== null; // KP-37: `namespaces` applies, namespace_labels does not
    for (const service of this.store.servicesByClusterIP(ip)) {
      if (restricted && !this.namespaceExposed(service.namespace)) continue;
      return [join(`${service.name}.${service.namespace}.svc`, this.primaryZone)];
    }
    const targets: string[] = [];
    if (this.noEndpoints) return targets;
    for (const slice of this.store.slicesByEndpointIP(ip)) {
      if (restricted && !this.namespaceExposed(slice.namespace)) continue;
      for (let i = 0; i < slice.addresses.length; i++) {
        if (slice.addresses[i] !== ip) continue;
        const target = join(`${this.hostname(slice, i)}.${slice.serviceName}.${slice.namespace}.svc`, this.primaryZone);
        if (!targets.includes(target)) targets.push(target);
      }
    }
    return targets;
  }

  /**
   * K8S-31 / KP-35: the Services whose endpoints hold this server's own IPs;
   * when no endpoint holds them, ns.dns.<zone> with the local IPs.
   */
  private nameservers(zone: string): { name: string; ip: string }[] {
    const local = this.localIPs();
    const out: { name: string; ip: string }[] = [];
    let found = false;
    if (!this.noEndpoints) {
      for (const ip of local) {
        for (const slice of this.store.slicesByEndpointIP(ip)) {
          found = true;
          const service = this.store.service(slice.namespace, slice.serviceName);
          if (service === undefined) continue;
          const serviceName = join(`${service.name}.${service.namespace}.svc`, zone);
          if (service.headless) {
            for (let i = 0; i < slice.addresses.length; i++) out.push({ name: `${this.hostname(slice, i)}.${serviceName}`, ip: slice.addresses[i]! });
          } else {
            for (const clusterIP of service.clusterIPs) out.push({ name: serviceName, ip: clusterIP });
          }
        }
      }
    }
    if (!found) for (const ip of local) out.push({ name: join('ns.dns', zone), ip });
    return out;
  }

  // ---- records ----

  private rr(name: string, type: number, data: RecordData, ttl = this.ttl): ResourceRecord {
    return { name, type, class: Class.IN, ttl, data };
  }

  private positive(answer: readonly ResourceRecord[], additional: readonly ResourceRecord[] = noRecords): Reply {
    return { rcode: Rcode.NOERROR, flags: ReplyFlag.AA, answer, authority: noRecords, additional };
  }

  /** K8S-30: `<zone> min(ttl,300) SOA ns.dns.<zone> hostmaster.<zone> serial 7200 1800 86400 ttl`. */
  private soaSection(zone: string): readonly ResourceRecord[] {
    if (this.soaGeneration !== this.store.generation) {
      this.soa.clear();
      this.soaGeneration = this.store.generation;
    }
    let section = this.soa.get(zone);
    if (section === undefined) {
      const record = this.rr(
        zone,
        Type.SOA,
        {
          mname: join('ns.dns', zone),
          rname: join('hostmaster', zone),
          serial: this.store.serial >>> 0,
          refresh: 7200,
          retry: 1800,
          expire: 86400,
          minimum: this.ttl,
        },
        Math.min(this.ttl, 300),
      );
      section = Object.freeze([record]);
      this.soa.set(zone, section);
    }
    return section;
  }
}
