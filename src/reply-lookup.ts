// The address lookup for UDP sockets that only ever reply to where a query
// came from (the server's listeners, bench/ceiling.ts).

import type dgram from 'node:dgram';
import dns from 'node:dns';

/**
 * The address lookup dgram runs before every send. Node's default checks the
 * address with isIP (a regular expression for IPv6) and defers the send to
 * process.nextTick, once per datagram: under load that was a few percent of
 * the CPU. Replies go to the address the kernel reported for the query,
 * always an IP literal of the socket's family, so once bound the lookup
 * passes it through at once. Binding still goes through Node's own lookup.
 */
export function replyLookup(): dgram.SocketOptions['lookup'] {
  let bound = false;
  const lookup = ((address: string, options: unknown, callback: (error: Error | null, address: string, family: number) => void) => {
    if (bound) return callback(null, address, 0);
    return dns.lookup(address, options as dns.LookupOneOptions, (error, resolved, family) => {
      if (!error) bound = true;
      callback(error, resolved, family);
    });
  }) as unknown as dgram.SocketOptions['lookup'];
  return lookup;
}
