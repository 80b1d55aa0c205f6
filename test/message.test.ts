// Encoding and decoding without sockets: compression, escapes, truncation order (WIRE-7, WIRE-13).

import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { Class, Rcode, Type } from '../src/wire/constants.ts';
import { encodeReply, type Reply, type ResourceRecord } from '../src/wire/message.ts';
import { decodeQuery, isRejection, type Query } from '../src/wire/query.ts';
import { buildQuery, decodeReply } from './support/dns.ts';

function query(name: string, options: Parameters<typeof buildQuery>[1] = {}): Query {
  const decoded = decodeQuery(buildQuery(name, options));
  if (isRejection(decoded)) throw new Error('rejected');
  return decoded;
}

const a = (name: string, address: string, ttl = 30): ResourceRecord => ({ name, type: Type.A, class: Class.IN, ttl, data: address });

describe('decodeQuery', () => {
  it('lowercases the name and keeps the original bytes for the echo', () => {
    const decoded = query('Www.Example.ORG', { type: 'AAAA' });
    expect(decoded.qname).toBe('www.example.org.');
    expect(decoded.qtype).toBe(Type.AAAA);
    expect(decoded.packet.subarray(12, decoded.questionEnd).toString('latin1')).toContain('Example');
  });

  it('escapes dots and non-printable bytes inside labels as dig prints them', () => {
    const packet = Buffer.concat([
      Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      Buffer.from([3, 0x61, 0x2e, 0x01, 3, ...Buffer.from('org'), 0, 0, 1, 0, 1]),
    ]);
    const decoded = decodeQuery(packet);
    expect(isRejection(decoded)).toBe(false);
    expect((decoded as Query).qname).toBe('a\\.\\001.org.');
  });

  it('K8S-2: keeps the name as the client spelled it; the same string as qname when it is all lowercase', () => {
    expect(query('_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL').spelledName).toBe('_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.');
    const lower = query('svc1.testns.svc.cluster.local');
    expect(lower.spelledName).toBe(lower.qname);
    const packet = Buffer.concat([
      Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      Buffer.from([4, 0x41, 0x2e, 0x01, 0x62, 3, ...Buffer.from('OrG'), 0, 0, 1, 0, 1]),
    ]);
    const decoded = decodeQuery(packet) as Query;
    expect([decoded.qname, decoded.spelledName]).toEqual(['a\\.\\001b.org.', 'A\\.\\001b.OrG.']);
  });

  it('reads the root name', () => {
    expect(query('.', { type: 'NS' }).qname).toBe('.');
  });

  it('reads EDNS size, version and DO', () => {
    expect(query('example.org', { udpSize: 1400, dnssecOk: true }).edns).toEqual({ udpSize: 1400, version: 0, dnssecOk: true });
  });

  it('rejects a name longer than 255 bytes with FORMERR', () => {
    const labels = Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]));
    const packet = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    expect(decodeQuery(packet)).toEqual({ rcode: Rcode.FORMERR, questionEnd: 0 });
  });
});

describe('encodeReply', () => {
  const reply: Reply = {
    rcode: Rcode.NOERROR,
    flags: 0x0400,
    answer: [
      { name: 'web.demo.svc.cluster.local.', type: Type.CNAME, class: Class.IN, ttl: 30, data: 'db.demo.svc.cluster.local.' },
      a('db.demo.svc.cluster.local.', '10.0.0.1'),
    ],
    authority: [],
    additional: [
      { name: 'db.demo.svc.cluster.local.', type: Type.AAAA, class: Class.IN, ttl: 30, data: 'fd00::1' },
      { name: '_http._tcp.db.demo.svc.cluster.local.', type: Type.SRV, class: Class.IN, ttl: 5, data: { priority: 0, weight: 100, port: 80, target: 'db-0.db.demo.svc.cluster.local.' } },
      { name: 'dns-version.cluster.local.', type: Type.TXT, class: Class.IN, ttl: 28800, data: ['1.1.0'] },
    ],
  };

  it('compresses owner names to the question, so the client sees its own case (WIRE-7, K8S-2)', () => {
    const q = query('WEB.demo.SVC.cluster.local');
    const bytes = encodeReply(q, reply, 65535);
    const decoded = decodeReply(bytes);
    expect(decoded.answers![0]!.name).toBe('WEB.demo.SVC.cluster.local');
    expect(decoded.answers![1]).toMatchObject({ type: 'A', data: '10.0.0.1' });
    expect(decoded.additionals![0]).toMatchObject({ type: 'AAAA', data: 'fd00::1' });
    expect(decoded.additionals![1]).toMatchObject({ type: 'SRV', data: { port: 80, target: 'db-0.db.demo.svc.cluster.local' } });
    expect(decoded.additionals![2]).toMatchObject({ type: 'TXT', ttl: 28800 });
    // Compression made it smaller than the sum of the names.
    expect(bytes.length).toBeLessThan(220);
  });

  it('reuses the memoised body for the same spelling of the name, with another ID', () => {
    const first = encodeReply(query('Web.Demo.Svc.Cluster.Local', { id: 1 }), reply, 65535);
    const body = reply.encoded;
    const second = encodeReply(query('Web.Demo.Svc.Cluster.Local', { id: 2 }), reply, 65535);
    expect(reply.encoded).toBe(body);
    expect(first.readUInt16BE(0)).toBe(1);
    expect(second.readUInt16BE(0)).toBe(2);
    expect(first.subarray(2)).toEqual(second.subarray(2));
  });

  it('WIRE-7: other names are compressed only against byte-identical suffixes, as CoreDNS does', () => {
    // The owner equal to the question takes the client's spelling; the CNAME target and the
    // records under it keep their own, and "cluster.local" is not pointed at "Cluster.Local".
    const decoded = decodeReply(encodeReply(query('Web.Demo.Svc.Cluster.Local'), reply, 65535));
    expect(decoded.answers!.map((record) => `${record.name} ${(record as { data: string }).data}`)).toEqual([
      'Web.Demo.Svc.Cluster.Local db.demo.svc.cluster.local',
      'db.demo.svc.cluster.local 10.0.0.1',
    ]);
    expect(decoded.additionals![0]!.name).toBe('db.demo.svc.cluster.local');
    // A lowercase question: the same names, now compressed against the question.
    const lower = encodeReply(query('web.demo.svc.cluster.local'), reply, 65535);
    expect(decodeReply(lower).answers![1]!.name).toBe('db.demo.svc.cluster.local');
    expect(lower.length).toBeLessThan(encodeReply(query('Web.Demo.Svc.Cluster.Local'), reply, 65535).length);
  });

  it('WIRE-7: a name spelled as the question in another case is pointed at its identical suffix only', () => {
    const soa: Reply = {
      rcode: Rcode.NXDOMAIN,
      flags: 0x0400,
      answer: [],
      authority: [{
        name: 'Cluster.Local.', type: Type.SOA, class: Class.IN, ttl: 5,
        data: { mname: 'ns.dns.Cluster.Local.', rname: 'hostmaster.Cluster.Local.', serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 },
      }],
      additional: [],
    };
    const bytes = encodeReply(query('NS.DNS.Cluster.Local'), soa, 512);
    const record = decodeReply(bytes).authorities![0] as { name: string; data: { mname: string; rname: string } };
    expect([record.name, record.data.mname, record.data.rname]).toEqual(['Cluster.Local', 'ns.dns.Cluster.Local', 'hostmaster.Cluster.Local']);
    // The owner is a pointer into the question (2 bytes).
    expect(bytes.readUInt16BE(query('NS.DNS.Cluster.Local').questionEnd)).toBe(0xc000 | (12 + 7));
  });

  it('WIRE-13: keeps answer, then authority, then additional, and sets TC when anything is dropped', () => {
    const big: Reply = {
      rcode: Rcode.NOERROR,
      flags: 0x0400,
      answer: Array.from({ length: 20 }, (_, i) => a('x.example.', `10.0.0.${i}`)),
      authority: [],
      additional: Array.from({ length: 20 }, (_, i) => a(`host${i}.example.`, `10.1.0.${i}`)),
    };
    const bytes = encodeReply(query('x.example'), big, 512);
    const decoded = decodeReply(bytes);
    expect(bytes.length).toBeLessThanOrEqual(512);
    expect(decoded.answers).toHaveLength(20);
    expect(decoded.additionals!.length).toBeLessThan(20);
    expect(decoded.flag_tc).toBe(true);
  });

  it('a derived reply with a TTL is its base with every TTL rewritten, truncation included, and reuses the base body', () => {
    const base: Reply = {
      rcode: Rcode.NOERROR,
      flags: 0,
      answer: Array.from({ length: 20 }, (_, i) => a('x.example.', `10.0.0.${i}`, 30)),
      authority: [],
      additional: Array.from({ length: 20 }, (_, i) => a(`host${i}.example.`, `10.1.0.${i}`, 30)),
    };
    const at = (ttl: number): Reply => ({
      rcode: Rcode.NOERROR,
      flags: 0x0400,
      answer: base.answer.map((record) => ({ ...record, ttl })),
      authority: [],
      additional: base.additional.map((record) => ({ ...record, ttl })),
    });
    const q = query('x.example');
    for (const limit of [65535, 512]) {
      const derived = encodeReply(q, { ...base, flags: 0x0400, derived: { base, ttl: 17, order: null } }, limit);
      expect(derived).toEqual(encodeReply(q, at(17), limit));
      expect(decodeReply(derived).answers!.every((record) => (record as { ttl?: number }).ttl === 17)).toBe(true);
    }
    expect(base.encoded?.qname).toBe('x.example.');
  });

  describe('a reordered reply (Reply.derived.order)', () => {
    /** `base`'s records in `order`, as a reply of their own and as one derived from base. */
    const reorder = (base: Reply, order: number[], ttl: number | null = null) => {
      const all = [...base.answer, ...base.authority, ...base.additional];
      const records = order.map((index) => all[index]!);
      // Built field by field: a spread would carry base's memoised body along.
      const own = (): Reply => ({ rcode: base.rcode, flags: base.flags, answer: records.slice(0, base.answer.length), authority: [], additional: records.slice(base.answer.length) });
      return { own: own(), derived: { ...own(), derived: { base, ttl, order } } };
    };
    const owners = (bytes: Buffer) => decodeReply(bytes).answers!.map((record) => `${record.name} ${(record as { data: string }).data} ${(record as { ttl: number }).ttl}`);

    it('copies the base\'s encoded records in the new order: the same bytes as encoding that order', () => {
      const base: Reply = { rcode: 0, flags: 0, answer: [a('x.example.', '10.0.0.1'), a('x.example.', '10.0.0.2'), a('x.example.', '10.0.0.3')], authority: [], additional: [] };
      const q = query('X.example');
      const { own, derived } = reorder(base, [2, 0, 1]);
      expect(encodeReply(q, derived, 512)).toEqual(encodeReply(q, own, 512));
      expect(owners(encodeReply(q, derived, 512))).toEqual(['X.example 10.0.0.3 30', 'X.example 10.0.0.1 30', 'X.example 10.0.0.2 30']);
      expect(base.encoded?.qname).toBe('X.example.');
    });

    it('rewrites TTLs and cuts at a record boundary of the new order', () => {
      const base: Reply = {
        rcode: 0,
        flags: 0,
        answer: Array.from({ length: 40 }, (_, i) => a('x.example.', `10.0.${i}.${i}`)),
        authority: [],
        additional: [],
      };
      const q = query('x.example');
      const order = Array.from({ length: 40 }, (_, i) => 39 - i);
      const { derived } = reorder(base, order, 7);
      const bytes = encodeReply(q, derived, 512);
      expect(bytes.length).toBeLessThanOrEqual(512);
      const decoded = decodeReply(bytes);
      expect(decoded.flag_tc).toBe(true);
      expect(owners(bytes)).toEqual(order.slice(0, decoded.answers!.length).map((i) => `x.example 10.0.${i}.${i} 7`));
    });

    it('encodes afresh when a moved record was the target of another\'s name compression', () => {
      // The second and third owners point at the first one's name, written out in full.
      const base: Reply = { rcode: 0, flags: 0, answer: [a('web.example.', '10.0.0.1'), a('web.example.', '10.0.0.2'), a('web.example.', '10.0.0.3')], authority: [], additional: [] };
      const q = query('www.example');
      const { own, derived } = reorder(base, [1, 2, 0], 9);
      expect(owners(encodeReply(q, derived, 512))).toEqual(['web.example 10.0.0.2 9', 'web.example 10.0.0.3 9', 'web.example 10.0.0.1 9']);
      expect(encodeReply(q, derived, 512).length).toBe(encodeReply(q, own, 512).length);
      // Moves that keep the target in place still copy.
      const kept = reorder(base, [0, 2, 1]);
      expect(encodeReply(q, kept.derived, 512)).toEqual(encodeReply(q, kept.own, 512));
    });
  });

  it('copies RD and CD from the query and sets QR', () => {
    const q = query('example.org', { flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED });
    const decoded = decodeReply(encodeReply(q, { ...reply, answer: [], additional: [] }, 512));
    expect(decoded.flag_rd).toBe(true);
    expect(decoded.flag_cd).toBe(true);
    expect(decoded.flag_qr).toBe(true);
    expect(decoded.flag_aa).toBe(true);
  });
});
