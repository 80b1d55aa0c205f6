// Requests with a new question, for plugins that ask the server something
// on a client's behalf (ExternalName chase, autopath). Cold path.

import type { Request } from './plugin.ts';
import { Class, Flag } from './wire/constants.ts';
import { decodeQuery, encodeQuestion, isRejection } from './wire/query.ts';

/** A copy of `request` asking `qname`/`qtype`; EDNS size and DO carry over (KP-31). */
export function withQuestion(request: Request, qname: string, qtype: number): Request {
  const { id, flags, edns } = request.query;
  const packet = encodeQuestion(id, flags & (Flag.RD | Flag.CD), qname, qtype, Class.IN, edns);
  const query = decodeQuery(packet);
  if (isRejection(query)) throw new Error(`cannot build a query for ${qname}`);
  return { ...request, query };
}
