// edns0 rules: set, replace or append EDNS0 options of the query passed on
// (local options with fixed or per-query data, NSID, client subnet), as
// CoreDNS 1.11 does, including its quirks: `append` of a local option or of
// NSID adds one even when the query has one, and any edns0 rule gives a query
// without an OPT record one.

import * as ip from '@leichtgewicht/ip-codec';
import type { ResponseRule } from './response.ts';
import type { Mode, Rule } from './rules.ts';
import type { RewriteState } from './state.ts';

export type Edns0Action = 'set' | 'replace' | 'append';

const NSID = 3;
const SUBNET = 8;
/** Codes miekg/dns reads as their own option types; every other code is a "local" option to it. */
const typedCodes: ReadonlySet<number> = new Set([1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 15, 0xfde9]);

const none: readonly ResponseRule[] = Object.freeze([]);
const empty = Buffer.alloc(0);

/**
 * Puts `data` in the first option of `code` (set, replace) or adds it
 * (append, set when there is none). `appendAlways`: append adds even when the
 * code is there (CoreDNS's local and NSID rules do; its variable and subnet
 * rules leave the query alone).
 */
function place(state: RewriteState, action: Edns0Action, matches: (code: number) => boolean, code: number, data: () => Buffer | null, appendAlways: boolean): readonly ResponseRule[] | null {
  const { options } = state.edns();
  for (const option of options) {
    if (!matches(option.code)) continue;
    if (action === 'append') {
      if (appendAlways) continue;
      return null;
    }
    const value = data();
    if (value === null) return null;
    option.data = value;
    return none;
  }
  if (action === 'replace') return null;
  const value = data();
  if (value === null) return null;
  options.push({ code, data: value });
  return none;
}

export class Edns0LocalRule implements Rule {
  readonly mode: Mode;
  private readonly action: Edns0Action;
  private readonly code: number;
  private readonly data: Buffer;
  constructor(mode: Mode, action: Edns0Action, code: number, data: Buffer) {
    this.mode = mode;
    this.action = action;
    this.code = code;
    this.data = data;
  }
  apply(state: RewriteState): readonly ResponseRule[] | null {
    const { code, data } = this;
    return place(state, this.action, (other) => other === code && !typedCodes.has(other), code, () => data, true);
  }
}

export class Edns0NsidRule implements Rule {
  readonly mode: Mode;
  private readonly action: Edns0Action;
  constructor(mode: Mode, action: Edns0Action) {
    this.mode = mode;
    this.action = action;
  }
  apply(state: RewriteState): readonly ResponseRule[] | null {
    return place(state, this.action, (code) => code === NSID, NSID, () => empty, true);
  }
}

const variables: ReadonlySet<string> = new Set(['{qname}', '{qtype}', '{client_ip}', '{client_port}', '{protocol}', '{server_ip}', '{server_port}']);

/** A variable CoreDNS accepts: one of its own, or a metadata label `{plugin/name}`. */
export function isVariable(text: string): boolean {
  if (variables.has(text)) return true;
  const label = text.slice(1, -1);
  const slash = label.indexOf('/');
  return text.startsWith('{') && text.endsWith('}') && slash > 0 && slash < label.length - 1 && label.lastIndexOf('/') === slash;
}

function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

/** An address in the client's family, as CoreDNS's ipToWire gives it (null when it has no such form). */
function addressBytes(family: 1 | 2, address: string): Buffer | null {
  let bytes: Uint8Array;
  try {
    bytes = ip.encode(address);
  } catch {
    return null;
  }
  if (family === 1) {
    if (bytes.length === 4) return Buffer.from(bytes);
    const mapped = bytes.subarray(0, 12).every((byte, i) => byte === (i < 10 ? 0 : 0xff));
    return mapped ? Buffer.from(bytes.subarray(12)) : null;
  }
  return bytes.length === 16 ? Buffer.from(bytes) : Buffer.from([...new Uint8Array(10), 0xff, 0xff, ...bytes]);
}

export class Edns0VariableRule implements Rule {
  readonly mode: Mode;
  private readonly action: Edns0Action;
  private readonly code: number;
  private readonly variable: string;
  constructor(mode: Mode, action: Edns0Action, code: number, variable: string) {
    this.mode = mode;
    this.action = action;
    this.code = code;
    this.variable = variable;
  }

  /** The variable's value for this query; null leaves the query alone (metadata labels: clusterdns has no metadata plugin). */
  private value(state: RewriteState): Buffer | null {
    const { request } = state;
    switch (this.variable) {
      case '{qname}': return Buffer.from(state.questionName(), 'latin1');
      case '{qtype}': return u16(state.qtype);
      case '{client_ip}': return addressBytes(request.family, request.remoteAddress);
      case '{server_ip}': return addressBytes(request.family, request.localAddress);
      case '{client_port}': return u16(request.remotePort);
      case '{server_port}': return u16(request.localPort);
      case '{protocol}': return Buffer.from(request.transport);
      default: return null;
    }
  }

  apply(state: RewriteState): readonly ResponseRule[] | null {
    // The value comes first: without one the query keeps its OPT record as it was.
    const value = this.value(state);
    if (value === null) return null;
    const { code } = this;
    return place(state, this.action, (other) => other === code && !typedCodes.has(other), code, () => value, false);
  }
}

export class Edns0SubnetRule implements Rule {
  readonly mode: Mode;
  private readonly action: Edns0Action;
  private readonly v4Bits: number;
  private readonly v6Bits: number;
  constructor(mode: Mode, action: Edns0Action, v4Bits: number, v6Bits: number) {
    this.mode = mode;
    this.action = action;
    this.v4Bits = v4Bits;
    this.v6Bits = v6Bits;
  }

  /** FAMILY, SOURCE PREFIX-LENGTH, SCOPE 0 and the client's address cut to the prefix (RFC 7871). */
  private option(state: RewriteState): Buffer | null {
    const { family, remoteAddress } = state.request;
    const address = addressBytes(family, remoteAddress);
    if (address === null) return null;
    const bits = family === 1 ? this.v4Bits : this.v6Bits;
    const kept = Math.ceil(bits / 8);
    const out = Buffer.alloc(4 + kept);
    out.writeUInt16BE(family, 0);
    out[2] = bits;
    for (let i = 0; i < kept; i++) {
      const maskBits = Math.min(8, bits - i * 8);
      out[4 + i] = address[i]! & ((0xff << (8 - maskBits)) & 0xff);
    }
    return out;
  }

  apply(state: RewriteState): readonly ResponseRule[] | null {
    return place(state, this.action, (code) => code === SUBNET, SUBNET, () => this.option(state), false);
  }
}
