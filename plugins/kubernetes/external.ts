// What k8s_external asks of the kubernetes plugin (K8SX-2, K8SX-3), from the
// same index the plugin answers from: the items a name below an external
// zone stands for, the PTR targets of an external IP, the addresses of this
// server's own Service, and the external zone's serial. This side follows
// CoreDNS's plugin/kubernetes/external.go; the answer shapes (which records,
// which TTLs) are k8s_external's, in plugins/k8s_external.

import { Rcode, Type } from '../../src/wire/constants.ts';
import { endpointHostname, join, NO_PORTS, portMatches, relative, splitLabels, stripUnderscore } from './answer.ts';
import { addressFromReverse, canonicalIP } from './reverse.ts';
import type { KubernetesConfig } from './setup.ts';
import type { ClusterIndex } from './store.ts';

export interface ExternalItem {
  /**
   * An IP (canonical); a load-balancer ingress hostname; or, for PTR, the
   * `<service>.<namespace>` the address belongs to.
   */
  host: string;
  /** -1 when the Service or slice has no ports (an address, never an SRV). */
  port: number;
  /** The SRV target of an address: `<svc>.<ns>.<zone>`, or `<endpoint>.<svc>.<ns>.<zone>` for headless endpoints. */
  target: string;
}

export interface ExternalResult {
  items: readonly ExternalItem[];
  /** NXDOMAIN when the name does not exist; NOERROR with no items is NODATA. */
  rcode: number;
}

const NOTHING: ExternalResult = Object.freeze({ items: Object.freeze([]), rcode: Rcode.NXDOMAIN });
const EMPTY: ExternalResult = Object.freeze({ items: Object.freeze([]), rcode: Rcode.NOERROR });

export class ExternalLookup {
  private readonly config: KubernetesConfig;
  private readonly store: ClusterIndex;
  private readonly localIPs: () => readonly string[];

  constructor(config: KubernetesConfig, store: ClusterIndex, localIPs: () => readonly string[]) {
    this.config = config;
    this.store = store;
    this.localIPs = localIPs;
  }

  /** The kubernetes plugin's TTL: k8s_external gives it to SRV and CNAME records, as CoreDNS does. */
  get ttl(): number {
    return this.config.ttl;
  }

  /** K8SX-3: the serial of the external zones (0 until an existing Service's external IPs or ports change). */
  get serial(): number {
    return this.store.externalSerial;
  }

  /** Moves whenever the index changes (k8s_external memoises answers against it). */
  get generation(): number {
    return this.store.generation;
  }

  /**
   * K8SX-2: `[_port._proto.|endpoint.]<svc>.<ns>.<zone>`, or a full reverse
   * name for PTR. `qname` is below `zone` (neither the apex nor its `dns`
   * subdomain, which k8s_external answers itself).
   */
  lookup(qname: string, qtype: number, zone: string, headless: boolean): ExternalResult {
    if (qtype === Type.PTR) {
      const ip = addressFromReverse(qname);
      if (ip !== null) {
        const names = this.reverse(ip);
        return names.length === 0 ? NOTHING : { items: names.map((host) => ({ host, port: 0, target: '' })), rcode: Rcode.NOERROR };
      }
      // Not an address: the name is looked up as any other, for NXDOMAIN or NODATA.
    }
    const labels = splitLabels(relative(qname, zone));
    let last = labels.length - 1;
    const namespace = labels[last]!;
    if (!this.namespaceExposed(namespace)) return NOTHING;
    if (--last < 0) return EMPTY; // <ns>.<zone>
    const name = labels[last--]!;
    let endpoint = '';
    let port = '';
    let protocol = '';
    if (last === 0) {
      endpoint = stripUnderscore(labels[last--]!);
    } else if (last === 1) {
      protocol = stripUnderscore(labels[1]!);
      port = stripUnderscore(labels[0]!);
      last -= 2;
    }
    if (last !== -1) return NOTHING;
    const service = this.store.service(namespace, name);
    if (service === undefined) return NOTHING;

    const items: ExternalItem[] = [];
    const serviceName = join(`${service.name}.${service.namespace}`, zone);
    const externalIPs = service.externalIPs ?? [];
    if (headless && externalIPs.length === 0 && (service.headless || endpoint !== '')) {
      // Headless endpoints (`headless`): only for Services without external addresses, as in 1.11.
      for (const slice of this.config.noEndpoints ? [] : this.store.slicesFor(namespace, name)) {
        const ports = slice.ports.length > 0 ? slice.ports : NO_PORTS;
        for (let i = 0; i < slice.addresses.length; i++) {
          const hostname = endpointHostname(slice, i, this.config.endpointPodNames);
          if (endpoint !== '' && endpoint !== hostname.toLowerCase()) continue;
          for (const candidate of ports) {
            if (portMatches(port, protocol, candidate)) items.push({ host: slice.addresses[i]!, port: candidate.port, target: `${hostname}.${serviceName}` });
          }
        }
      }
    } else {
      // The endpoint label, if any, is ignored here: CoreDNS answers the Service's external addresses.
      for (const host of externalIPs) {
        for (const candidate of service.ports.length > 0 ? service.ports : NO_PORTS) {
          if (portMatches(port, protocol, candidate)) items.push({ host, port: candidate.port, target: serviceName });
        }
      }
    }
    const rcode = items.length > 0 ? Rcode.NOERROR : Rcode.NXDOMAIN;
    // A PTR question on a forward name: NODATA or NXDOMAIN, never records.
    if (qtype === Type.PTR || items.length === 0) return rcode === Rcode.NOERROR ? EMPTY : NOTHING;
    return { items, rcode };
  }

  /** `<svc>.<ns>` of every Service with this external IP (CoreDNS's ExternalReverse). */
  reverse(ip: string): string[] {
    const restricted = this.config.namespaces !== null;
    const names: string[] = [];
    for (const service of this.store.servicesByExternalIP(ip)) {
      if (restricted && !this.namespaceExposed(service.namespace)) continue;
      names.push(`${service.name}.${service.namespace}`);
    }
    return names;
  }

  /**
   * K8SX-3: the addresses of `ns1.<apex>.<zone>`: the external IPs of the
   * Services whose endpoints hold this server's own addresses (with
   * `headless`, a headless Service's endpoint addresses); when no endpoint
   * holds them, this server's addresses themselves.
   */
  nameserverAddresses(headless: boolean): string[] {
    const local = this.localIPs();
    const out: string[] = [];
    let found = false;
    for (const ip of local) {
      for (const slice of this.store.slicesByEndpointIP(ip)) {
        found = true;
        const service = this.store.service(slice.namespace, slice.serviceName);
        if (service === undefined) continue;
        if (headless && service.headless) {
          out.push(...slice.addresses);
          continue;
        }
        // A load-balancer hostname is no address for an A or AAAA record.
        for (const external of service.externalIPs ?? []) if (canonicalIP(external) !== null) out.push(external);
      }
    }
    return found ? out : [...local];
  }

  private namespaceExposed(namespace: string): boolean {
    return (this.config.namespaces === null || this.config.namespaces.has(namespace)) && this.store.hasNamespace(namespace);
  }
}
