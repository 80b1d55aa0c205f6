// Builds a server block's query chain: handlers in registry order, each
// given a prebuilt `next`, so running the chain allocates nothing of its own.

import type { Handler, Next, Request } from './plugin.ts';
import { Rcode } from './wire/constants.ts';
import { emptyReply, type Reply } from './wire/message.ts';

const noNextPlugin = Object.freeze(emptyReply(Rcode.SERVFAIL, 0, new Error('no next plugin found')));

/** Falling off the end of the chain is SERVFAIL, as in CoreDNS (CF-20). Explain's traced chain ends here too. */
export const endOfChain: Next = () => noNextPlugin;

export function buildChain(handlers: readonly Handler[]): Next {
  let next: Next = endOfChain;
  for (let i = handlers.length - 1; i >= 0; i--) {
    const handler = handlers[i]!;
    const after = next;
    next = (request: Request): Reply | Promise<Reply> => handler(request, after);
  }
  return next;
}
