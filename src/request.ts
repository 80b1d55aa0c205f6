// Requests with a new question, for plugins that ask the server something
// on a client's behalf (ExternalName chase, autopath). Cold path.

import type { Request } from './plugin.ts';
import { Class, Flag } from './wire/constants.ts';
import { nameToLabels } from './wire/names.ts';
import { decodeQuery, isRejection } from './wire/query.ts';

/** A copy of `request` asking `qname`/`qtype`; EDNS size and DO carry over (KP-31). */
export function withQuestion(request: Request, qname: string, qtype: number): Request {
  const labels = nameToLabels(qname);
  const nameLength = labels.reduce((sum, label) => sum + label.length + 1, 1);
  const edns = request.query.edns;
  const packet = Buffer.alloc(12 + nameLength + 4 + (edns ? 11 : 0));
  packet.writeUInt16BE(request.query.id, 0);
  packet.writeUInt16BE(request.query.flags & (Flag.RD | Flag.CD), 2);
  packet.writeUInt16BE(1, 4);
  let offset = 12;
  for (const label of labels) {
    packet[offset++] = label.length;
    offset += packet.write(label, offset, 'latin1');
  }
  packet[offset++] = 0;
  packet.writeUInt16BE(qtype, offset);
  packet.writeUInt16BE(Class.IN, offset + 2);
  offset += 4;
  if (edns) {
    packet.writeUInt16BE(1, 10);
    packet.writeUInt16BE(41, offset + 1);
    packet.writeUInt16BE(edns.udpSize, offset + 3);
    packet.writeUInt16BE(edns.dnssecOk ? 0x8000 : 0, offset + 7);
  }
  const query = decodeQuery(packet);
  if (isRejection(query)) throw new Error(`cannot build a query for ${qname}`);
  return { ...request, query };
}
