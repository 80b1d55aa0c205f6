// explain (issue 13): why the kubernetes plugin answered what it answered.
// Cold path: asked only by a traced query, after the handler replied, so
// answer.ts stays as it is and the reasons are read from the same config and
// index the answer came from: how the name parsed, the object it matched, or
// the precise reason for NXDOMAIN / NODATA.

import type { Request, TraceStep } from '../../src/plugin.ts';
import { Rcode, Type, typeName } from '../../src/wire/constants.ts';
import type { Reply } from '../../src/wire/message.ts';
import { longestMatchingZone } from '../../src/wire/names.ts';
import { dashedAddress } from './answer.ts';
import { canonicalIP, familyOf, isReverseName } from './reverse.ts';
import type { KubernetesConfig } from './setup.ts';
import type { ClusterIndex, IndexedSlice } from './store.ts';

interface Parsed {
  kind: 'svc' | 'pod';
  namespace: string;
  service?: string;
  endpoint?: string;
  port?: string;
  protocol?: string;
}

/** What the trace says: the name's parse, the object matched, and why the answer is what it is. */
interface Finding {
  parsed?: Parsed;
  matched?: Record<string, unknown>;
  /** Set when the name does not exist (NXDOMAIN) or holds nothing of the type (NODATA). */
  reason?: string;
}

export function explainKubernetes(config: KubernetesConfig, store: ClusterIndex, request: Request, reply: Reply, step: TraceStep, passedOn: boolean): void {
  const { qname, qtype } = request.query;
  const zone = longestMatchingZone(qname, config.zones);
  if (zone === null) {
    step.detail['reason'] = `outside the plugin's zones (${config.zones.join(' ')})`;
    return;
  }
  step.detail['zone'] = zone;
  if (!store.synced) step.detail['synced'] = false;
  const finding = find(config, store, qname, qtype, zone);
  if (finding.parsed) step.detail['parsed'] = finding.parsed;
  if (finding.matched) step.detail['matched'] = finding.matched;
  const nodata = reply.rcode === Rcode.NOERROR && reply.answer.length === 0;
  if (passedOn) {
    step.detail['reason'] = `fallthrough: ${finding.reason ?? 'the name does not exist here'}`;
  } else if (reply.rcode === Rcode.NXDOMAIN || nodata) {
    step.outcome = nodata ? 'NODATA' : 'NXDOMAIN';
    step.detail['reason'] = finding.reason ?? (nodata ? `no ${typeName(qtype)} records at this name` : 'the name does not exist');
  } else if (reply.rcode === Rcode.SERVFAIL && !store.synced) {
    step.detail['reason'] = 'the plugin has not synced with the cluster yet (SERVFAIL until it has)';
  }
}

function relativeLabels(qname: string, zone: string): string[] {
  if (qname.length === zone.length) return [];
  return (zone === '.' ? qname.slice(0, -1) : qname.slice(0, qname.length - zone.length - 1)).split('.');
}

function find(config: KubernetesConfig, store: ClusterIndex, qname: string, qtype: number, zone: string): Finding {
  const labels = relativeLabels(qname, zone);
  const type = typeName(qtype);
  if (labels.length === 0) return { reason: `the zone apex ${zone} has only SOA and NS records` };
  if (labels.length === 1 && (labels[0] === 'svc' || labels[0] === 'pod')) return { reason: `${qname} exists but holds no records` };
  if (labels.join('.') === 'dns-version') return { reason: qtype === Type.TXT ? undefined : 'dns-version has only a TXT record' };
  const kind = labels.at(-1)!;
  if (kind !== 'svc' && kind !== 'pod') {
    return { reason: `the name is not in the schema: expected SERVICE.NAMESPACE.svc.${zone} or IP.NAMESPACE.pod.${zone}, found '${kind}' where svc or pod goes` };
  }
  const namespace = labels.at(-2)!;
  const rest = labels.slice(0, -2);
  if (rest.length > 3 || (kind === 'pod' && rest.length > 1)) return { reason: `too many labels for the ${kind} schema` };
  const parsed: Parsed = kind === 'pod' ? { kind, namespace } : { kind, namespace };
  if (kind === 'svc') {
    parsed.service = rest.at(-1) ?? '';
    if (rest.length === 2) parsed.endpoint = rest[0]!;
    if (rest.length === 3) {
      parsed.port = rest[0]!.replace(/^_/, '');
      parsed.protocol = rest[1]!.replace(/^_/, '');
      parsed.service = rest[2]!;
    }
  }
  if (isReverseName(qname)) return { parsed, reason: 'a reverse name inside a forward zone' };
  if (config.namespaces !== null && !config.namespaces.has(namespace)) {
    return { parsed, reason: `namespace ${namespace} is not exposed: the namespaces option lists only ${[...config.namespaces].join(' ')}` };
  }
  if (!store.hasNamespace(namespace)) {
    const labelled = config.sourceOptions.namespaceLabelSelector;
    return { parsed, reason: `no such namespace: ${namespace}${labelled ? ` (or it does not match namespace_labels ${labelled})` : ''}` };
  }
  if (kind === 'pod') return findPod(config, store, parsed, rest[0] ?? '', type);
  return findService(config, store, parsed, type);
}

function findPod(config: KubernetesConfig, store: ClusterIndex, parsed: Parsed, label: string, type: string): Finding {
  if (config.podMode === 'disabled') return { parsed, reason: 'pod records are off (the pods option is disabled)' };
  if (label === '') return { parsed, reason: `${parsed.namespace}.pod exists but holds no records` };
  const dashes = label.split('-').length - 1;
  const text = dashes === 3 && !label.includes('--') ? label.replaceAll('-', '.') : label.replaceAll('-', ':');
  const ip = canonicalIP(text);
  if (ip === null) return { parsed, reason: `pod name not known: '${label}' is not a dashed IP address; pod records are named by IP, such as 10-244-1-5.${parsed.namespace}.pod` };
  const pods = store.podsWithIP(text).filter((pod) => pod.namespace === parsed.namespace);
  if (config.podMode === 'verified' && pods.length === 0) {
    return { parsed, matched: { ip }, reason: `pods verified: no pod in namespace ${parsed.namespace} has IP ${text}` };
  }
  const matched = { ip, ...(pods[0] ? { pod: `${pods[0].namespace}/${pods[0].name}` } : { pods: 'insecure (not checked)' }) };
  const wanted = familyOf(ip) === 4 ? 'A' : 'AAAA';
  return { parsed, matched, reason: type === wanted ? undefined : `type not served at this name: the pod address is ${wanted}` };
}

function findService(config: KubernetesConfig, store: ClusterIndex, parsed: Parsed, type: string): Finding {
  const { namespace, service: name = '' } = parsed;
  if (name === '') return { parsed, reason: `${namespace}.svc exists but holds no records` };
  const service = store.service(namespace, name);
  if (service === undefined) return { parsed, reason: `no such Service: ${name} in namespace ${namespace}` };
  const slices = config.noEndpoints ? [] : store.slicesFor(namespace, name);
  const ready = slices.reduce((sum, slice) => sum + slice.addresses.length, 0);
  const notReady = config.noEndpoints ? 0 : store.notReadyAddresses(namespace, name);
  const kindOf = service.externalName !== null ? 'ExternalName' : service.headless ? 'headless' : 'ClusterIP';
  const matched: Record<string, unknown> = { service: `${namespace}/${name}`, type: kindOf };
  if (service.clusterIPs.length > 0) matched['clusterIPs'] = service.clusterIPs;
  if (service.ports.length > 0) matched['ports'] = service.ports.map(portText);
  if (service.externalName === null) matched['readyEndpoints'] = ready;
  if (notReady > 0) matched['notReadyEndpoints'] = notReady;
  const found = (reason?: string): Finding => ({ parsed, matched, reason });

  if (service.externalName !== null) {
    matched['externalName'] = service.externalName;
    if (parsed.endpoint !== undefined || parsed.port !== undefined) return found('an ExternalName Service has no endpoint or port names');
    if (canonicalIP(service.externalName) !== null) return found(`externalName ${service.externalName} is an IP address, which cannot be a CNAME target`);
    if (type === 'SRV') return found('type not served at this name: an ExternalName Service has no SRV records');
    const target = service.externalName.endsWith('.') ? service.externalName.toLowerCase() : `${service.externalName.toLowerCase()}.`;
    matched['target'] = longestMatchingZone(target, config.zones) !== null
      ? 'a CNAME, resolved in this plugin'
      : 'a CNAME, resolved by asking this server again (the steps that follow)';
    return found(type === 'A' || type === 'AAAA' || type === 'CNAME' ? undefined : `type not served at this name: an ExternalName Service has only a CNAME to ${service.externalName}`);
  }
  const withoutEndpoints = (): string => notReady > 0
    ? `publishNotReadyAddresses is off: the ${notReady} endpoint address(es) of ${namespace}/${name} are not ready, and only ready ones are answered`
    : config.noEndpoints ? 'the noendpoints option: endpoints are not read' : `Service ${namespace}/${name} has no ready endpoints`;
  if (config.ignoreEmptyService && !service.headless && ready === 0) return found(`${withoutEndpoints()} (ignore empty_service)`);

  if (parsed.port !== undefined) {
    const ports = service.headless ? slices.flatMap((slice) => slice.ports) : service.ports;
    if (!ports.some((port) => (parsed.port === '' || port.name === parsed.port) && port.protocol === parsed.protocol)) {
      return found(`no port named ${parsed.port} with protocol ${parsed.protocol} (ports: ${ports.map(portText).join(' ') || 'none'})`);
    }
  }
  if (service.headless || parsed.endpoint !== undefined) {
    if (ready === 0) return found(withoutEndpoints());
    if (parsed.endpoint !== undefined) {
      const names = endpointNames(config, slices);
      const endpoint = parsed.endpoint;
      const hit = names.find((entry) => entry.name.toLowerCase() === endpoint);
      if (hit === undefined) {
        const hostnamesSet = names.some((entry) => entry.hostname);
        const known = names.slice(0, 8).map((entry) => entry.name).join(' ');
        return found(hostnamesSet
          ? `no endpoint named ${endpoint} (endpoint names: ${known})`
          : `endpoint hostname not set: no endpoint of ${namespace}/${name} has a hostname, so they are named by IP (${known})${config.endpointPodNames ? '' : '; endpoint_pod_names would name them by pod'}`);
      }
      matched['endpoint'] = { name: hit.name, ip: hit.ip };
    }
  }
  const families = new Set(service.headless || parsed.endpoint !== undefined
    ? slices.flatMap((slice) => slice.addresses.map(familyOf))
    : service.clusterIPs.map(familyOf));
  const served = [...(families.has(4) ? ['A'] : []), ...(families.has(6) ? ['AAAA'] : []), ...(service.ports.length > 0 || service.headless ? ['SRV'] : [])];
  if (served.includes(type)) return found();
  return found(`type not served at this name: ${namespace}/${name} has ${served.join(' and ') || 'no'} records, not ${type}`);
}

function portText(port: { name: string; protocol: string; port: number }): string {
  return `${port.name || '(unnamed)'}/${port.protocol}:${port.port}`;
}

/** Each ready address with the name it answers to (K8S-18: hostname, pod name, dashed IP). */
function endpointNames(config: KubernetesConfig, slices: readonly IndexedSlice[]): { name: string; ip: string; hostname: boolean }[] {
  return slices.flatMap((slice) => slice.addresses.map((ip, i) => {
    const hostname = slice.hostnames?.[i];
    if (hostname) return { name: hostname, ip, hostname: true };
    const podName = slice.podNames?.[i];
    if (config.endpointPodNames && podName && podName.length < 64) return { name: podName, ip, hostname: false };
    return { name: dashedAddress(ip), ip, hostname: false };
  }));
}
