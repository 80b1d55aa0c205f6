// The search domains of a resolv.conf, as Go's miekg/dns reads them (what
// CoreDNS uses for `autopath RESOLV-CONF`, and the kubernetes plugin for the
// tail of a pod's search path, KP-39): `search` and `domain` lines, the last
// one winning (`domain` stands for a one-element search list), comments
// starting with # or ;. Domains come back lowercased and fully qualified.
// A few lines read once at setup: no parser library is worth it.

import fs from 'node:fs';
import { canonicalName } from '../../src/wire/names.ts';

export function parseSearchDomains(text: string): string[] {
  let search: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const fields = line.trim().split(/\s+/);
    const keyword = fields[0];
    if (keyword === 'search') search = fields.slice(1);
    else if (keyword === 'domain') search = fields.slice(1, 2);
  }
  return search.map(canonicalName);
}

/** The search domains of `file`, or null when it cannot be read (the error is left to the caller). */
export function readSearchDomains(file: string): string[] | null {
  try {
    return parseSearchDomains(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}
