// chaos: answers the CH-class TXT questions servers are asked for their
// version, authors and host name (version.bind and friends), as CoreDNS 1.11's
// chaos plugin does. Other questions go to the next plugin.

import os from 'node:os';
import { definePlugin } from '../../src/plugin.ts';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../../src/wire/message.ts';
import { VERSION } from '../../src/version.ts';

export interface ChaosConfig {
  version: string;
  authors: string[];
}

/** What the server calls itself, as its startup banner does (CoreDNS: CoreDNS-1.11.3). */
const DEFAULT_VERSION = `clusterdns-${VERSION}`;
const DEFAULT_AUTHORS = ['clusterdns'];
const none: readonly ResourceRecord[] = [];

/** A TXT string holds at most 255 bytes; CoreDNS cuts longer ones. */
function trim(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length < 256 ? text : bytes.subarray(0, 255).toString('utf8');
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

function txtReply(qname: string, texts: readonly string[]): Reply {
  return {
    rcode: Rcode.NOERROR,
    flags: 0,
    answer: texts.map((text) => ({ name: qname, type: Type.TXT, class: Class.CH, ttl: 0, data: [text] })),
    authority: none,
    additional: none,
  };
}

export default definePlugin<ChaosConfig>({
  name: 'chaos',
  parse(directives) {
    // Only the first line counts, and a block is not read (CoreDNS 1.11.3).
    const args = directives[0]!.args.map((token) => token.text);
    if (args.length === 0) return { version: DEFAULT_VERSION, authors: DEFAULT_AUTHORS };
    if (args.length === 1) return { version: trim(args[0]!), authors: DEFAULT_AUTHORS };
    return { version: trim(args[0]!), authors: [...new Set(args.slice(1).map(trim))].sort() };
  },
  create({ version, authors }) {
    const hostname = trim(os.hostname() || 'localhost');
    return {
      serve(request, next) {
        const { qclass, qtype, qname } = request.query;
        if (qclass !== Class.CH || qtype !== Type.TXT) return next(request);
        switch (qname) {
          case 'version.bind.':
          case 'version.server.':
            return txtReply(qname, [version]);
          case 'authors.bind.':
            // A new order for every answer, as CoreDNS gives.
            return txtReply(qname, shuffled(authors));
          case 'hostname.bind.':
          case 'id.server.':
            return txtReply(qname, [hostname]);
          default:
            return next(request);
        }
      },
    };
  },
});
