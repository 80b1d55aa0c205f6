// forward's Corefile syntax (FWD-1, FWD-2, FWD-4): every `forward` line of a
// block becomes one ForwardConfig, in Corefile order (FWD-3). Files named as
// upstreams (resolv.conf) and TLS material are read here, once, at setup.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { normalizeKey } from '../../src/corefile/address.ts';
import { expectArgs, parseDuration, parseInteger, setupError, unknownProperty, wrongArgCount } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';
import type { Logger } from '../../src/log.ts';
import { Rcode } from '../../src/wire/constants.ts';
import { canonicalName } from '../../src/wire/names.ts';

/** At most this many upstreams per forward line (FWD-2). */
export const MAX_UPSTREAMS = 15;

/**
 * max_concurrent when the Corefile sets none (CoreDNS: unlimited). Each
 * question in flight keeps about 3 KB live (its walk, timer, socket entry and
 * the chain's promises), but a storm also grows V8's young generation with it:
 * 2,000 q/s of distinct names at a dead upstream for 15 s peaked at 137 MiB
 * RSS with 500 (97 MiB idle), 176 MiB with 1,000 and 315 MiB unlimited
 * (bench/resilience/forward-storm.ts), against kubeadm's 170 MiB limit. 500
 * questions still carry 10,000 q/s at 50 ms upstream latency, and identical
 * questions share one slot (coalescing).
 */
export const DEFAULT_MAX_CONCURRENT = 500;

export type PolicyName = 'random' | 'round_robin' | 'sequential';

export interface UpstreamSpec {
  /** `dns` (UDP/TCP) or `tls` (DNS over TLS). */
  transport: 'dns' | 'tls';
  /** IP literal; IPv6 without brackets (a zone suffix kept when written in the Corefile). */
  host: string;
  port: number;
  /** host:port as the metrics label it, IPv6 in brackets (FWD-12). */
  addr: string;
  /** `tls://IP%name`: the name to verify, for this upstream only. */
  serverName?: string;
}

export interface TlsSettings {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** tls_servername. */
  serverName?: string;
}

export interface HealthCheckConfig {
  intervalMs: number;
  recursionDesired: boolean;
  /** Canonical name asked for, NS type. */
  domain: string;
}

export interface ForwardConfig {
  /** Canonical zone (FWD-1). */
  from: string;
  /** Canonical names that are passed on instead (except). */
  except: string[];
  upstreams: UpstreamSpec[];
  forceTcp: boolean;
  preferUdp: boolean;
  maxFails: number;
  expireMs: number;
  healthCheck: HealthCheckConfig;
  tls: TlsSettings;
  policy: PolicyName;
  /** Questions in flight upstream at most; 0: unlimited. */
  maxConcurrent: number;
  /** RCODEs that hand the query to the next forward line (since v1.11.4). */
  next: number[];
  failfastAllUnhealthy: boolean;
}

/** RCODE names as `next` takes them (miekg/dns StringToRcode). */
const RCODES: Record<string, number> = {
  ...Rcode,
  BADSIG: 16,
  BADKEY: 17,
  BADTIME: 18,
  BADMODE: 19,
  BADNAME: 20,
  BADALG: 21,
  BADTRUNC: 22,
  BADCOOKIE: 23,
};

export interface ParseContext {
  /** Directory that relative file names are resolved against (the Corefile's). */
  baseDir: string;
  log?: Logger;
}

export function parseForwardDirectives(directives: Directive[], context: ParseContext): ForwardConfig[] {
  return directives.map((directive) => parseForward(directive, context));
}

export function parseForward(directive: Directive, context: ParseContext): ForwardConfig {
  const [fromToken, ...toTokens] = directive.args;
  if (!fromToken || toTokens.length === 0) {
    throw setupError(directive.args.at(-1) ?? directive.name,
      `Wrong argument count or unexpected line ending after '${(directive.args.at(-1) ?? directive.name).text}': forward needs FROM and at least one TO, as in 'forward . 10.0.0.10'`);
  }
  const config: ForwardConfig = {
    from: parseFrom(fromToken, context.log),
    except: [],
    upstreams: [],
    forceTcp: false,
    preferUdp: false,
    maxFails: 2,
    expireMs: 10_000,
    healthCheck: { intervalMs: 500, recursionDesired: true, domain: '.' },
    tls: {},
    policy: 'random',
    maxConcurrent: DEFAULT_MAX_CONCURRENT,
    next: [],
    failfastAllUnhealthy: false,
  };

  const seen = new Set<string>();
  for (const token of toTokens) {
    for (const upstream of parseTo(token, context)) {
      const id = `${upstream.transport}://${upstream.addr}`;
      if (seen.has(id)) continue; // FWD-2: duplicates are removed
      seen.add(id);
      config.upstreams.push(upstream);
    }
  }
  if (config.upstreams.length > MAX_UPSTREAMS) {
    throw setupError(toTokens[0]!, `plugin/forward: more than ${MAX_UPSTREAMS} TOs configured: ${config.upstreams.length}`);
  }

  let tlsServerNameToken: Token | null = null;
  for (const option of directive.block ?? []) {
    const name = option.name.text;
    switch (name) {
      case 'except': {
        if (option.args.length === 0) throw wrongArgCount(option.name);
        for (const token of option.args) config.except.push(...normalizeName(token, 'except'));
        break;
      }
      case 'force_tcp':
        expectArgs(option, 0);
        config.forceTcp = true;
        break;
      case 'prefer_udp':
        expectArgs(option, 0);
        config.preferUdp = true;
        break;
      case 'max_fails':
        config.maxFails = parseInteger(expectArgs(option, 1)[0]!, 0, 2 ** 32 - 1, 'max_fails');
        break;
      case 'expire':
        config.expireMs = parseDuration(expectArgs(option, 1)[0]!, 'expire');
        break;
      case 'health_check':
        config.healthCheck = parseHealthCheck(option);
        break;
      case 'tls':
        config.tls = { ...parseTls(option, context), serverName: config.tls.serverName };
        break;
      case 'tls_servername':
        tlsServerNameToken = expectArgs(option, 1)[0]!;
        config.tls.serverName = tlsServerNameToken.text;
        break;
      case 'policy': {
        const token = expectArgs(option, 1)[0]!;
        if (token.text !== 'random' && token.text !== 'round_robin' && token.text !== 'sequential') {
          throw setupError(token, `plugin/forward: unknown policy '${token.text}', expecting random, round_robin or sequential`);
        }
        config.policy = token.text;
        break;
      }
      case 'max_concurrent':
        config.maxConcurrent = parseInteger(expectArgs(option, 1)[0]!, 0, Number.MAX_SAFE_INTEGER, 'max_concurrent');
        break;
      case 'next': {
        if (option.args.length === 0) throw wrongArgCount(option.name);
        for (const token of option.args) {
          const rcode = RCODES[token.text.toUpperCase()];
          if (rcode === undefined) throw setupError(token, `plugin/forward: ${token.text} is not a valid rcode (expecting a name such as NXDOMAIN, SERVFAIL or REFUSED)`);
          config.next.push(rcode);
        }
        break;
      }
      case 'failfast_all_unhealthy_upstreams':
        expectArgs(option, 0);
        config.failfastAllUnhealthy = true;
        break;
      default:
        throw unknownProperty('forward', option.name);
    }
    if (option.block !== null) {
      throw setupError(option.name, `Unexpected '{' after '${name}': forward options take no block`);
    }
  }

  if (tlsServerNameToken) {
    const perUpstream = config.upstreams.find((upstream) => upstream.serverName !== undefined);
    if (perUpstream) {
      throw setupError(tlsServerNameToken, `plugin/forward: tls_servername conflicts with the server name given in 'tls://${perUpstream.host}%${perUpstream.serverName}'; use one or the other`);
    }
  }
  return config;
}

function parseFrom(token: Token, log?: Logger): string {
  const zones = normalizeName(token, 'FROM');
  if (zones.length > 1) {
    log?.warning(`Unsupported CIDR notation: '${token.text}' expands to multiple zones. Using only '${zones[0]}'.`);
  }
  return zones[0]!;
}

/** FROM and except names: a domain or a CIDR (reverse zones), optionally with dns:// (CoreDNS's plugin.Host). */
function normalizeName(token: Token, what: string): string[] {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(token.text);
  if (scheme && scheme[1]!.toLowerCase() !== 'dns') {
    throw setupError(token, `plugin/forward: ${what} '${token.text}' must be a domain name or a CIDR, without a ${scheme[1]}:// scheme`);
  }
  try {
    return normalizeKey(token, 53).map((address) => address.zone);
  } catch (error) {
    const detail = error instanceof Error && 'detail' in error ? String((error as { detail: string }).detail) : String(error);
    throw setupError(token, `plugin/forward: unable to normalize ${what} '${token.text}': ${detail}`);
  }
}

function parseHealthCheck(option: Directive): HealthCheckConfig {
  const [duration, ...rest] = option.args;
  if (!duration) throw wrongArgCount(option.name);
  const check: HealthCheckConfig = { intervalMs: parseDuration(duration, 'health_check'), recursionDesired: true, domain: '.' };
  for (let i = 0; i < rest.length; i++) {
    const token = rest[i]!;
    if (token.text === 'no_rec') {
      check.recursionDesired = false;
    } else if (token.text === 'domain') {
      const name = rest[++i];
      if (!name) throw wrongArgCount(token);
      if (!isDomainName(name.text)) throw setupError(name, `plugin/forward: health_check: invalid domain name ${name.text}`);
      check.domain = canonicalName(name.text);
    } else {
      throw setupError(token, `plugin/forward: health_check: unknown option ${token.text}, expecting no_rec or domain FQDN`);
    }
  }
  return check;
}

function isDomainName(name: string): boolean {
  if (name === '.') return true;
  const labels = name.replace(/\.$/, '').split('.');
  return labels.every((label) => label.length > 0 && label.length <= 63) && name.length <= 254;
}

function parseTls(option: Directive, context: ParseContext): TlsSettings {
  const args = expectArgs(option, 0, 3);
  const read = (token: Token, what: string): Buffer => {
    const file = path.resolve(context.baseDir, token.text);
    try {
      return fs.readFileSync(file);
    } catch (error) {
      throw setupError(token, `plugin/forward: tls: cannot read the ${what} file '${token.text}': ${(error as Error).message}`);
    }
  };
  switch (args.length) {
    case 0:
      return {};
    case 1:
      return { ca: read(args[0]!, 'CA') };
    case 2:
      return { cert: read(args[0]!, 'certificate'), key: read(args[1]!, 'key') };
    default:
      return { cert: read(args[0]!, 'certificate'), key: read(args[1]!, 'key'), ca: read(args[2]!, 'CA') };
  }
}

/** Splits `host[:port]` / `[v6]:port` / bare IPv6; null when it is not an IP with an optional port. */
function splitHostPort(text: string): { host: string; port: number | null } | null {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    const host = bracketed[1]!;
    if (net.isIPv6(stripZone(host)) === false) return null;
    return { host, port: bracketed[2] === undefined ? null : Number(bracketed[2]) };
  }
  if (net.isIPv6(stripZone(text))) return { host: text, port: null };
  const colon = text.lastIndexOf(':');
  if (colon === -1) return net.isIPv4(text) ? { host: text, port: null } : null;
  const host = text.slice(0, colon);
  const port = text.slice(colon + 1);
  if (!/^\d+$/.test(port) || !net.isIPv4(host)) return null;
  return { host, port: Number(port) };
}

function stripZone(host: string): string {
  const percent = host.indexOf('%');
  return percent === -1 ? host : host.slice(0, percent);
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** One TO argument: an address, or a resolv.conf-style file (FWD-2). */
function parseTo(token: Token, context: ParseContext): UpstreamSpec[] {
  let text = token.text;
  let transport: 'dns' | 'tls' = 'dns';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    if (name === 'https') {
      throw setupError(token, `plugin/forward: '${token.text}': DNS over HTTPS (https://) upstreams are not supported by clusterdns; use dns:// or tls:// instead`);
    }
    if (name !== 'dns' && name !== 'tls') {
      throw setupError(token, `plugin/forward: '${name}' is not supported as a destination protocol in forward: ${token.text} (expecting dns:// or tls://)`);
    }
    transport = name;
    text = text.slice(scheme[0].length);
  }
  if (text === '') throw setupError(token, `plugin/forward: invalid address: "${token.text}"`);

  let serverName: string | undefined;
  if (transport === 'tls') {
    // tls://IP%servername[:port]; for IPv6, tls://[v6%name]:port is not a thing: only IPv4 and bracketed forms.
    const match = /^(\[[^\]]+\]|[^%]+)%([^:%\]]+)(?::(\d+))?$/.exec(text);
    if (match) {
      serverName = match[2]!;
      text = match[3] === undefined ? match[1]! : `${match[1]}:${match[3]}`;
    }
  }

  const split = splitHostPort(text);
  if (split) {
    const port = split.port ?? (transport === 'tls' ? 853 : 53);
    if (port < 1 || port > 65535) throw setupError(token, `plugin/forward: port ${port} in '${token.text}' is out of range, expecting 1 to 65535`);
    const host = split.host;
    const upstream: UpstreamSpec = { transport, host, port, addr: hostPort(host, port) };
    if (serverName !== undefined) upstream.serverName = serverName;
    return [upstream];
  }
  if (scheme) {
    throw setupError(token, `plugin/forward: not an IP address: "${token.text}" (hostnames are not supported; give an IP, IP:port or [IPv6]:port)`);
  }
  return readResolvConf(token, context);
}

/** FWD-2: every `nameserver` line of a resolv.conf-style file, as IP:53, IPv6 zone stripped. */
function readResolvConf(token: Token, context: ParseContext): UpstreamSpec[] {
  const file = path.resolve(context.baseDir, token.text);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw setupError(token, `plugin/forward: not an IP address or file: "${token.text}" (expecting IP, IP:port, [IPv6]:port, tls://IP or a resolv.conf file)`);
    }
    throw setupError(token, `plugin/forward: failed to read file "${token.text}": ${(error as Error).message}`);
  }
  return parseResolvConf(text, token);
}

export function parseResolvConf(text: string, token: Token): UpstreamSpec[] {
  const upstreams: UpstreamSpec[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const fields = line.split(/\s+/);
    if (fields[0] !== 'nameserver' || fields.length < 2) continue;
    const host = stripZone(fields[1]!);
    if (net.isIP(host) === 0) {
      throw setupError(token, `plugin/forward: ${token.text}:${i + 1}: nameserver '${fields[1]}' is not an IP address`);
    }
    upstreams.push({ transport: 'dns', host, port: 53, addr: hostPort(host, 53) });
  }
  if (upstreams.length === 0) {
    throw setupError(token, `plugin/forward: no nameservers found in "${token.text}" (expecting lines such as 'nameserver 10.0.0.10')`);
  }
  return upstreams;
}
