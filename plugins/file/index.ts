// file: authoritative answers from RFC 1035 zone files, as CoreDNS 1.11's
// file plugin gives them (lookup rules in zone.ts, the file format in
// zonefile.ts).
//
//   file DBFILE [ZONES...] {
//       reload DURATION
//   }

import fs from 'node:fs';
import path from 'node:path';
import { expectArgs, parseDuration, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { CorefileError, type Directive, type Token } from '../../src/corefile/types.ts';
import type { Logger } from '../../src/log.ts';
import { definePlugin, type Authority, type BlockContext, type Next, type Request } from '../../src/plugin.ts';
import { ServerReply, type Reply } from '../../src/wire/message.ts';
import { longestMatchingZone } from '../../src/wire/names.ts';
import { zoneArgs } from '../cache/config.ts';
import { Zone } from './zone.ts';
import { parseZoneFile, ZoneFileError } from './zonefile.ts';

export interface FileConfig {
  /** Absolute path of the zone file. */
  path: string;
  /** DBFILE as written, for setup errors. */
  pathToken: Token;
  /** Canonical zones read from it (each with the file read for that origin). */
  zones: string[];
  /** How often the file is read again; a new SOA serial replaces the zone. 0: never. */
  reloadMs: number;
}

const DEFAULT_RELOAD_MS = 60_000;

export function parseFileDirective(directive: Directive, block: BlockContext): FileConfig {
  const [file, ...zones] = expectArgs(directive, 1, Infinity);
  const config: FileConfig = {
    // Relative to the Corefile's directory (CoreDNS: the root plugin's directory, by default the working directory).
    path: path.resolve(path.dirname(path.resolve(block.corefile)), file!.text),
    pathToken: file!,
    zones: zones.length > 0 ? zoneArgs(zones) : [...block.zones],
    reloadMs: DEFAULT_RELOAD_MS,
  };
  for (const option of directive.block ?? []) {
    switch (option.name.text) {
      case 'reload': {
        // CoreDNS reads the first argument and ignores the rest.
        const [value] = expectArgs(option, 1, Infinity);
        config.reloadMs = parseDuration(value!, 'reload');
        break;
      }
      case 'upstream':
        // Accepted and ignored, as in CoreDNS 1.11 (CNAME targets outside the zone are not chased).
        break;
      default:
        throw unknownProperty('file', option.name);
    }
  }
  return config;
}

/** While a zone file cannot be opened (CoreDNS keeps trying every minute). */
const RETRY_MS = 60_000;

/** One `file` line: its zones, re-read on an interval. */
class ZoneFile implements Authority {
  readonly config: FileConfig;
  readonly zones: readonly string[];
  private readonly log: Logger;
  /** Origin → zone; absent while the file could not be opened (queries get SERVFAIL, as in CoreDNS). */
  private readonly loaded = new Map<string, Zone>();
  private version = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(config: FileConfig, log: Logger) {
    this.config = config;
    this.zones = config.zones;
    this.log = log;
    if (!fs.existsSync(config.path)) {
      log.warning(`Failed to open "open ${config.pathToken.text}: no such file or directory": trying again in ${RETRY_MS / 60_000}m0s`);
      return;
    }
    for (const zone of config.zones) {
      try {
        this.loaded.set(zone, new Zone(zone, parseZoneFile(config.path, zone).records));
      } catch (error) {
        // A bad zone file stops startup naming its file and line (CoreDNS 1.11 would serve the records
        // read before the error and say nothing).
        if (error instanceof ZoneFileError) throw new CorefileError(error, `plugin/file: ${error.detail}`);
        throw setupError(config.pathToken, `plugin/file: ${(error as Error).message}`);
      }
    }
  }

  generation(): number {
    return this.version;
  }

  start(): void {
    const interval = this.loaded.size === 0 ? RETRY_MS : this.config.reloadMs;
    if (interval > 0 && this.timer === null) {
      this.timer = setInterval(() => this.reload(), interval);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads the file again; a zone whose SOA serial changed is replaced, a bad file keeps the old zone. */
  reload(): void {
    for (const origin of this.config.zones) {
      const current = this.loaded.get(origin);
      let next: Zone;
      try {
        next = new Zone(origin, parseZoneFile(this.config.path, origin).records);
      } catch (error) {
        this.log.error(`Failed to reload zone "${origin}" from ${this.config.path}${current ? `, keeping serial ${current.serial}` : ''}: ${(error as Error).message}`);
        continue;
      }
      if (current && next.serial === current.serial) continue;
      this.loaded.set(origin, next);
      this.version++;
      this.log.info(`Successfully reloaded zone "${origin}" in "${this.config.path}" with ${next.serial} SOA serial`);
    }
  }

  serve(request: Request, next: Next): Reply | Promise<Reply> {
    const { qname, qtype } = request.query;
    const origin = longestMatchingZone(qname, this.config.zones);
    if (origin === null) return next(request);
    return this.loaded.get(origin)?.lookup(qname, qtype) ?? ServerReply.SERVFAIL;
  }
}

export default definePlugin<FileConfig[]>({
  name: 'file',
  parse: (directives, block) => directives.map((directive) => parseFileDirective(directive, block)),
  create(configs, block, log) {
    // Several file lines each serve their own zones; the first whose zones match answers.
    const files = configs.map((config) => new ZoneFile(config, log));
    for (const file of files) block.authorities.push(file);
    const serveFrom = (index: number, request: Request, next: Next): Reply | Promise<Reply> =>
      index === files.length ? next(request) : files[index]!.serve(request, (passed) => serveFrom(index + 1, passed, next));
    return {
      serve: (request, next) => serveFrom(0, request, next),
      start: () => files.forEach((file) => file.start()),
      stop: () => files.forEach((file) => file.stop()),
      // explain: the zone and the file it was read from.
      explain: {
        after(request, _reply, step) {
          const file = files.find((candidate) => longestMatchingZone(request.query.qname, candidate.zones) !== null);
          if (file === undefined) return;
          step.detail['zone'] = longestMatchingZone(request.query.qname, file.zones);
          step.detail['file'] = file.config.path;
        },
      },
    };
  },
});
