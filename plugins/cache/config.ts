// cache: Corefile syntax to a typed config (CACHE-1, CACHE-2).
//
//   cache [TTL] [ZONES...] {
//       success CAP [TTL [MINTTL]]
//       denial CAP [TTL [MINTTL]]
//       prefetch AMOUNT [DURATION [PCT%]]
//       serve_stale [DURATION [immediate|verify]]
//       servfail DURATION
//       disable success|denial [ZONES...]
//       keepttl
//   }

import { normalizeKey } from '../../src/corefile/address.ts';
import { expectArgs, onlyOnce, parseDuration, parseInteger, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import type { Directive, Token } from '../../src/corefile/types.ts';

export interface Bucket {
  /** Entries kept at most; the least recently used one goes first. */
  capacity: number;
  /** Seconds; the computed duration is clamped to [minTtl, maxTtl] (max wins when they cross). */
  maxTtl: number;
  minTtl: number;
}

export interface CacheConfig {
  /** Canonical zones the cache covers; names outside bypass it (CACHE-1). */
  zones: string[];
  /** The `zones` metric label: the zones joined with ',' (PROM-4). */
  zonesLabel: string;
  success: Bucket;
  denial: Bucket;
  /** 0 disables prefetching (CACHE-11). */
  prefetchAmount: number;
  prefetchWindowMs: number;
  prefetchPercentage: number;
  /** How long past expiry an entry may still be served; 0 disables serve_stale (CACHE-12). */
  staleMs: number;
  verifyStale: boolean;
  /** Seconds a SERVFAIL/NOTIMP answer is kept; 0 disables. */
  servfailTtl: number;
  /** Names under these zones are never stored in the success / denial cache. */
  disableSuccess: string[];
  disableDenial: string[];
  keepTtl: boolean;
}

export const DEFAULT_CAPACITY = 10_000;
export const DEFAULT_SUCCESS_TTL = 3600;
export const DEFAULT_DENIAL_TTL = 1800;
export const DEFAULT_MIN_TTL = 5;
const MAX_SERVFAIL_MS = 5 * 60_000;

/** Zone arguments as CoreDNS normalises them: canonical names, a CIDR becomes its reverse zones. */
export function zoneArgs(tokens: readonly Token[]): string[] {
  return tokens.flatMap((token) => normalizeKey(token, 53).map((address) => address.zone));
}

function positiveTtl(token: Token, what: string): number {
  if (!/^-?\d+$/.test(token.text)) throw setupError(token, `${what} must be an integer number of seconds, found '${token.text}'`);
  const value = Number(token.text);
  if (value <= 0) throw setupError(token, `cache TTL can not be zero or negative: ${value}`);
  return value;
}

function parseBucket(option: Directive, bucket: Bucket): void {
  const args = expectArgs(option, 1, 3);
  bucket.capacity = Math.max(1, parseInteger(args[0]!, 0, Number.MAX_SAFE_INTEGER, `${option.name.text} capacity`));
  if (args[1]) bucket.maxTtl = positiveTtl(args[1], `${option.name.text} TTL`);
  if (args[2]) bucket.minTtl = parseInteger(args[2], 0, Number.MAX_SAFE_INTEGER, `${option.name.text} minimum TTL`);
}

export function parseCache(directives: Directive[], blockZones: readonly string[]): CacheConfig {
  const directive = onlyOnce(directives);
  let args = directive.args;
  const config: CacheConfig = {
    zones: [...blockZones],
    zonesLabel: '',
    success: { capacity: DEFAULT_CAPACITY, maxTtl: DEFAULT_SUCCESS_TTL, minTtl: DEFAULT_MIN_TTL },
    denial: { capacity: DEFAULT_CAPACITY, maxTtl: DEFAULT_DENIAL_TTL, minTtl: DEFAULT_MIN_TTL },
    prefetchAmount: 0,
    prefetchWindowMs: 60_000,
    prefetchPercentage: 10,
    staleMs: 0,
    verifyStale: false,
    servfailTtl: 5,
    disableSuccess: [],
    disableDenial: [],
    keepTtl: false,
  };
  // CACHE-1: a leading integer is the max TTL for both caches; the rest are zones.
  if (args[0] && /^[-+]?\d+$/.test(args[0].text)) {
    const ttl = positiveTtl(args[0], 'cache TTL');
    config.success.maxTtl = ttl;
    config.denial.maxTtl = ttl;
    args = args.slice(1);
  }
  if (args.length > 0) config.zones = zoneArgs(args);
  config.zonesLabel = config.zones.join(',');

  for (const option of directive.block ?? []) {
    const name = option.name.text;
    switch (name) {
      case 'success':
        parseBucket(option, config.success);
        break;
      case 'denial':
        parseBucket(option, config.denial);
        break;
      case 'prefetch': {
        const [amount, window, percentage] = expectArgs(option, 1, 3);
        config.prefetchAmount = parseInteger(amount!, 0, Number.MAX_SAFE_INTEGER, 'prefetch amount');
        if (window) config.prefetchWindowMs = parseDuration(window, 'prefetch duration');
        if (percentage) {
          if (!percentage.text.endsWith('%')) {
            throw setupError(percentage, `last character of percentage should be '%', found '${percentage.text}'`);
          }
          const value = percentage.text.slice(0, -1);
          if (!/^\d+$/.test(value) || Number(value) < 10 || Number(value) > 90) {
            throw setupError(percentage, `percentage should fall in range [10, 90]: ${percentage.text}`);
          }
          config.prefetchPercentage = Number(value);
        }
        break;
      }
      case 'serve_stale': {
        const [duration, mode] = expectArgs(option, 0, 2);
        config.staleMs = duration ? parseDuration(duration, 'serve_stale duration') : 3_600_000;
        if (mode) {
          if (mode.text !== 'immediate' && mode.text !== 'verify') {
            throw setupError(mode, `invalid value for serve_stale refresh mode: '${mode.text}', expecting immediate or verify`);
          }
          config.verifyStale = mode.text === 'verify';
        }
        break;
      }
      case 'servfail': {
        const [duration] = expectArgs(option, 1);
        const ms = parseDuration(duration!, 'servfail duration');
        if (ms > MAX_SERVFAIL_MS) throw setupError(duration!, `caching SERVFAIL responses over 5 minutes is not permitted, found '${duration!.text}'`);
        config.servfailTtl = Math.floor(ms / 1000);
        break;
      }
      case 'disable': {
        const [which, ...zones] = expectArgs(option, 1, Number.MAX_SAFE_INTEGER);
        if (which!.text !== 'success' && which!.text !== 'denial') {
          throw setupError(which!, `cache type for disable must be "success" or "denial", found '${which!.text}'`);
        }
        const list = zones.length > 0 ? zoneArgs(zones) : ['.'];
        // CoreDNS keeps only the last `disable` line per type; clusterdns adds them up.
        (which!.text === 'success' ? config.disableSuccess : config.disableDenial).push(...list);
        break;
      }
      case 'keepttl':
        expectArgs(option, 0);
        config.keepTtl = true;
        break;
      default:
        throw unknownProperty('cache', option.name);
    }
    if (option.block && option.block.length > 0) {
      throw setupError(option.block[0]!.name, `Unexpected token '${option.block[0]!.name.text}': ${name} takes no options block`);
    }
  }
  return config;
}
