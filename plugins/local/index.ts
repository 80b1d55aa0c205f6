// local: answers localhost and the loopback reverse zones itself, as
// CoreDNS 1.11's local plugin does, so they never reach an upstream.

import { Counter } from 'prom-client';
import { registry } from '../../src/metrics.ts';
import { definePlugin, type Request } from '../../src/plugin.ts';
import { Class, Rcode, Type } from '../../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../../src/wire/message.ts';
import { longestMatchingZone } from '../../src/wire/names.ts';

const localhostRequests = new Counter({
  name: 'coredns_local_localhost_requests_total',
  help: 'Counter of localhost.<domain> requests.',
  registers: [registry],
});

const ZONES = ['localhost.', '0.in-addr.arpa.', '127.in-addr.arpa.', '255.in-addr.arpa.'];
const LOCALHOST = 'localhost.';
const LOOPBACK_PTR = '1.0.0.127.in-addr.arpa.';
const TTL = 604800;
const none: readonly ResourceRecord[] = [];

const record = (name: string, type: number, data: ResourceRecord['data']): ResourceRecord => ({ name, type, class: Class.IN, ttl: TTL, data });
const soa = (origin: string) =>
  record(origin, Type.SOA, { mname: 'localhost.', rname: 'root.localhost.', serial: 1, refresh: 0, retry: 0, expire: 0, minimum: TTL });

// Owner names are the query name (the encoder points it at the question) or
// its zone suffix as the client spelled it, so they keep the client's letter
// case, as CoreDNS's do; names in data are lowercase.
// CoreDNS sets neither AA nor RA on these answers.
const answer = (records: ResourceRecord[]): Reply => ({ rcode: Rcode.NOERROR, flags: 0, answer: records, authority: none, additional: none });
const negative = (rcode: number, origin: string): Reply => ({ rcode, flags: 0, answer: none, authority: [soa(origin)], additional: none });

/** `localhost.<anything>`: loopback addresses, NODATA for other types. */
function localhostPrefixed(qname: string, qtype: number): Reply {
  if (qtype === Type.A) return answer([record(qname, Type.A, '127.0.0.1')]);
  if (qtype === Type.AAAA) return answer([record(qname, Type.AAAA, '::1')]);
  return negative(Rcode.NOERROR, qname);
}

function zoneApex(qname: string, qtype: number): Reply {
  switch (qtype) {
    case Type.A:
      return qname === LOCALHOST ? answer([record(qname, Type.A, '127.0.0.1')]) : negative(Rcode.NOERROR, qname);
    case Type.AAAA:
      return qname === LOCALHOST ? answer([record(qname, Type.AAAA, '::1')]) : negative(Rcode.NOERROR, qname);
    case Type.SOA:
      return answer([soa(qname)]);
    case Type.NS:
      return answer([record(qname, Type.NS, 'localhost.')]);
    default:
      return negative(Rcode.NOERROR, qname);
  }
}

export function localReply(request: Request): Reply | null {
  const { qname, qtype, spelledName } = request.query;
  if (qname.length > LOCALHOST.length && qname.startsWith(LOCALHOST)) {
    localhostRequests.inc();
    return localhostPrefixed(qname, qtype);
  }
  const zone = longestMatchingZone(qname, ZONES);
  if (zone === null) return null;
  if (qname === zone) return zoneApex(qname, qtype);
  const spelledZone = spelledName.slice(spelledName.length - zone.length);
  if (qname === LOOPBACK_PTR) {
    return qtype === Type.PTR ? answer([record(qname, Type.PTR, 'localhost.')]) : negative(Rcode.NOERROR, spelledZone);
  }
  return negative(Rcode.NXDOMAIN, spelledZone);
}

export default definePlugin({
  name: 'local',
  // CoreDNS 1.11.3 reads neither arguments nor a block here, and rejects none.
  parse() {
    return {};
  },
  create() {
    return {
      serve(request, next) {
        return localReply(request) ?? next(request);
      },
    };
  },
});
