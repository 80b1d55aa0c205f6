// Where the explain endpoint listens unless the Corefile says otherwise, and
// the URL the `clusterdns explain` command asks it at.

import { parseHttpAddress } from '../../src/http.ts';

/** Loopback by default: an explanation tells who asked what and what the cluster holds. */
export const DEFAULT_EXPLAIN_ADDRESS = '127.0.0.1:8053';

/** `:8053` → http://127.0.0.1:8053 (a wildcard is reached on loopback); null for an address that does not parse. */
export function endpointUrl(address: string): string | null {
  const parsed = parseHttpAddress(address);
  if (parsed === null) return null;
  const host = parsed.host === undefined || parsed.host === '0.0.0.0' || parsed.host === '::' ? '127.0.0.1' : parsed.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${parsed.port}`;
}
