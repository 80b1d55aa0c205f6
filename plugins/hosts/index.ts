// hosts: answers A, AAAA and PTR from an /etc/hosts style file and from
// entries written in the Corefile, as CoreDNS's hosts plugin does (STOCK-4:
// k3s's NodeHosts and minikube's host.minikube.internal depend on it).
//
//   hosts [FILE [ZONES...]] {
//       [INLINE ENTRIES: ADDRESS NAME...]
//       ttl SECONDS
//       no_reverse
//       reload DURATION
//       fallthrough [ZONES...]
//   }

import fs from 'node:fs';
import path from 'node:path';
import { Gauge } from 'prom-client';
import { expectArgs, onlyOnce, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Directive } from '../../src/corefile/types.ts';
import type { Logger } from '../../src/log.ts';
import { registry } from '../../src/metrics.ts';
import { definePlugin, type Authority, type BlockContext, type Request, type Next } from '../../src/plugin.ts';
import { Rcode, Type } from '../../src/wire/constants.ts';
import { ServerReply, type Reply } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';
import { zoneArgs } from '../cache/config.ts';
import { emptyHostsMap, HostsTable, noData, parseAddress, parseHosts, type HostsMap } from './hostsfile.ts';

export interface HostsConfig {
  /** Absolute path of the hosts file. */
  path: string;
  /** Whether FILE was written (CoreDNS warns about a missing file only then). */
  explicitPath: boolean;
  /** Canonical zones the plugin answers for; other names go to the next plugin (PTR excepted). */
  origins: string[];
  /** Inline entry lines, as written. */
  inline: string[];
  ttl: number;
  reverse: boolean;
  /** 0 disables re-reading the file. */
  reloadMs: number;
  /** null: no fallthrough; otherwise the zones it applies to. */
  fallthrough: string[] | null;
}

const DEFAULT_PATH = '/etc/hosts';
const DEFAULT_TTL = 3600;
const DEFAULT_RELOAD_MS = 5000;

export function parseHostsDirective(directive: Directive, block: BlockContext): HostsConfig {
  const [file, ...zones] = directive.args;
  let filePath = DEFAULT_PATH;
  if (file) {
    // Relative to the Corefile's directory (CoreDNS: the root plugin's directory, by default the working directory).
    filePath = path.isAbsolute(file.text) ? file.text : path.resolve(path.dirname(path.resolve(block.corefile)), file.text);
  }
  const config: HostsConfig = {
    path: filePath,
    explicitPath: file !== undefined,
    origins: zones.length > 0 ? zoneArgs(zones) : [...block.zones],
    inline: [],
    ttl: DEFAULT_TTL,
    reverse: true,
    reloadMs: DEFAULT_RELOAD_MS,
    fallthrough: null,
  };
  for (const option of directive.block ?? []) {
    const name = option.name.text;
    if (option.block !== null) throw setupError(option.name, `Unexpected '{' after '${name}': hosts options take no block`);
    switch (name) {
      case 'fallthrough':
        config.fallthrough = option.args.length > 0 ? zoneArgs(option.args) : ['.'];
        break;
      case 'no_reverse':
      case 'no-reverse':
        expectArgs(option, 0);
        config.reverse = false;
        break;
      case 'ttl': {
        const [value] = expectArgs(option, 1);
        if (!/^\d+$/.test(value!.text)) throw setupError(value!, `ttl needs a number of seconds, found '${value!.text}'`);
        const ttl = Number(value!.text);
        if (ttl <= 0 || ttl > 65535) throw setupError(value!, `ttl provided is invalid: ${value!.text} (expecting 1 to 65535 seconds)`);
        config.ttl = ttl;
        break;
      }
      case 'reload': {
        const [value] = expectArgs(option, 1);
        config.reloadMs = parseDuration(value!, 'reload');
        break;
      }
      default:
        // Before `fallthrough`, any other line is a hosts entry; after it, a mistake (as in CoreDNS).
        if (config.fallthrough !== null) throw unknownProperty('hosts', option.name);
        config.inline.push([name, ...option.args.map((token) => token.text)].join(' '));
    }
  }
  return config;
}

let gauges: { entries: Gauge; reloadTimestamp: Gauge } | null = null;

/** coredns_hosts_* (CoreDNS's hosts metrics), registered when the first hosts block is set up. */
function hostsGauges(): { entries: Gauge; reloadTimestamp: Gauge } {
  gauges ??= {
    entries: new Gauge({ name: 'coredns_hosts_entries', help: 'The combined number of entries in hosts and Corefile.', registers: [registry] }),
    reloadTimestamp: new Gauge({ name: 'coredns_hosts_reload_timestamp_seconds', help: 'The timestamp of the last reload of hosts file.', registers: [registry] }),
  };
  return gauges;
}

/** One hosts block: the tables, the file poller and the generation caches check. */
export class Hosts implements Authority {
  readonly config: HostsConfig;
  readonly zones: readonly string[];
  private readonly log: Logger;
  private readonly inline: HostsMap;
  private table: HostsTable;
  private version = 0;
  private mtimeMs = -1;
  private size = -1;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;

  constructor(config: HostsConfig, log: Logger) {
    this.config = config;
    this.log = log;
    // PTR answers come from the reverse zones whatever the origins are.
    this.zones = config.reverse ? [...config.origins, 'in-addr.arpa.', 'ip6.arpa.'] : config.origins;
    for (const line of config.inline) {
      const first = line.split(' ')[0]!;
      if (parseAddress(first) === null) log.warning(`inline line '${line}' is not an entry: '${first}' is not an IP address; ignored`);
    }
    this.inline = config.inline.length > 0 ? parseHosts(config.inline.join('\n'), config.origins, config.reverse) : emptyHostsMap();
    this.table = new HostsTable(emptyHostsMap(), this.inline, config.ttl);
    if (config.explicitPath) {
      try {
        if (fs.statSync(config.path).isDirectory()) log.warning(`Hosts file "${config.path}" is a directory`);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') log.warning(`File does not exist: ${config.path}`);
        else throw new Error(`plugin/hosts: unable to access hosts file '${config.path}': ${(error as Error).message}`);
      }
    }
    this.loadSync();
  }

  generation(): number {
    return this.version;
  }

  /** Number of entries (addresses per name plus reverse names), as coredns_hosts_entries counts them. */
  get entries(): number {
    return this.table.length;
  }

  start(): void {
    if (this.config.reloadMs > 0 && this.timer === null) {
      this.timer = setInterval(() => void this.poll(), this.config.reloadMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The first read, at setup. A file that cannot be read is served as empty, as in CoreDNS. */
  private loadSync(): void {
    try {
      const stat = fs.statSync(this.config.path);
      this.install(fs.readFileSync(this.config.path, 'utf8'), stat);
    } catch {
      hostsGauges().entries.set(this.table.length);
    }
  }

  /**
   * Re-reads the file when its modification time or size changed. A file
   * that disappears keeps its last contents in service (CoreDNS does the same).
   */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const stat = await fs.promises.stat(this.config.path);
      if (stat.mtimeMs === this.mtimeMs && stat.size === this.size) return;
      this.install(await fs.promises.readFile(this.config.path, 'utf8'), stat);
    } catch {
      // Missing or unreadable: keep serving what was read last.
    } finally {
      this.polling = false;
    }
  }

  private install(text: string, stat: fs.Stats): void {
    const file = parseHosts(text, this.config.origins, this.config.reverse);
    this.table = new HostsTable(file, this.inline, this.config.ttl);
    this.mtimeMs = stat.mtimeMs;
    this.size = stat.size;
    this.version++;
    this.log.debug(`Parsed hosts file into ${this.table.length} entries`);
    const metrics = hostsGauges();
    metrics.entries.set(this.table.length);
    metrics.reloadTimestamp.set(stat.mtimeMs / 1000);
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const { qname, qtype } = request.query;
    if (qtype === Type.PTR) {
      // PTR queries are answered for any reverse name; an unknown address always goes on.
      return this.table.pointer(qname) ?? next(request);
    }
    if (!this.inOrigins(qname)) return next(request);
    const answers = this.table.lookup(qname);
    if (answers !== null) {
      if (qtype === Type.A && answers.a !== null) return answers.a;
      if (qtype === Type.AAAA && answers.aaaa !== null) return answers.aaaa;
      // The name exists, without records of this type.
      return noData;
    }
    if (this.config.fallthrough !== null && this.config.fallthrough.some((zone) => isSubdomain(qname, zone))) return next(request);
    // CoreDNS answers SERVFAIL here (it has no SOA to build an NXDOMAIN with).
    return ServerReply.SERVFAIL;
  }

  private inOrigins(qname: string): boolean {
    for (const zone of this.config.origins) if (isSubdomain(qname, zone)) return true;
    return false;
  }
}

export default definePlugin<HostsConfig>({
  name: 'hosts',
  parse: (directives, block) => parseHostsDirective(onlyOnce(directives), block),
  create(config, block, log) {
    const hosts = new Hosts(config, log);
    block.authorities.push(hosts);
    return {
      serve: (request, next) => hosts.serve(request, next),
      start: () => hosts.start(),
      stop: () => hosts.stop(),
      // explain: which file, and why a name was passed on or failed.
      explain: {
        after(_request, reply, step, passedOn) {
          step.detail['file'] = config.path;
          if (passedOn) step.detail['reason'] = 'not in the hosts file, or outside its zones (fallthrough)';
          else if (reply.rcode === Rcode.SERVFAIL) step.detail['reason'] = 'not in the hosts file and no fallthrough: SERVFAIL, as CoreDNS answers';
          else if (reply.answer.length === 0) step.detail['reason'] = 'the name is in the hosts file without an address of this type';
        },
      },
    };
  },
});
