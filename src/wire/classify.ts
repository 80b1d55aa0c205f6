// What kind of answer a reply is, as CoreDNS's response.Typify decides it.
// The log plugin's classes (LOG-3) and the cache's success/denial split use it.

import { Rcode, Type } from './constants.ts';
import type { Reply } from './message.ts';

export type ResponseType = 'NoError' | 'NameError' | 'NoData' | 'Delegation' | 'ServerError' | 'OtherError';

export function typify(reply: Reply): ResponseType {
  if (reply.rcode === Rcode.NOERROR && reply.answer.length > 0) return 'NoError';
  let soa = false;
  let ns = false;
  for (const record of reply.authority) {
    if (record.type === Type.SOA) soa = true;
    else if (record.type === Type.NS) ns = true;
  }
  if (soa && reply.rcode === Rcode.NOERROR) return 'NoData';
  if (soa && reply.rcode === Rcode.NXDOMAIN) return 'NameError';
  if (reply.rcode === Rcode.SERVFAIL) return 'ServerError';
  if (ns && reply.rcode === Rcode.NOERROR) return 'Delegation';
  if (reply.rcode === Rcode.NOERROR) return 'NoError';
  return 'OtherError';
}

export type ResponseClass = 'success' | 'denial' | 'error';

export function classify(type: ResponseType): ResponseClass {
  switch (type) {
    case 'NoError':
    case 'Delegation':
      return 'success';
    case 'NameError':
    case 'NoData':
      return 'denial';
    default:
      return 'error';
  }
}
