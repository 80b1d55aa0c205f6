// Full decoding of upstream replies (src/wire/records.ts): dns-packet builds
// the messages, so the decoder is checked against an independent encoder; the
// corrupt ones are made by hand. Round trips go through encodeReply, the path
// forward's replies take to the client (FWD-7).

import dnsPacket, { type Packet } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { Class, Flag, Type } from '../src/wire/constants.ts';
import { encodeReply, type Reply } from '../src/wire/message.ts';
import { decodeQuery, isRejection, type Query } from '../src/wire/query.ts';
import { decodeMessage, decodeQuestion, MessageFormatError } from '../src/wire/records.ts';
import { buildQuery } from './support/dns.ts';

function reply(packet: Partial<Packet>): Buffer {
  return dnsPacket.encode({ type: 'response', id: 0x1234, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, ...packet } as Packet);
}

const soa = { mname: 'ns1.Example.ORG', rname: 'hostmaster.example.org', serial: 2024010101, refresh: 7200, retry: 3600, expire: 1209600, minimum: 300 };

describe('decodeMessage', () => {
  it('reads header, question (case kept) and the records with names, as ResourceRecords', () => {
    const message = decodeMessage(reply({
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER,
      questions: [{ name: 'WwW.Example.ORG', type: 'A', class: 'IN' }],
      answers: [
        { name: 'WwW.Example.ORG', type: 'CNAME', ttl: 300, data: 'Web.Example.ORG' },
        { name: 'Web.Example.ORG', type: 'A', ttl: 60, data: '192.0.2.7' },
        { name: 'Web.Example.ORG', type: 'AAAA', ttl: 60, data: '2001:db8::7' },
      ],
      authorities: [
        { name: 'example.org', type: 'NS', ttl: 3600, data: 'ns1.example.org' },
        { name: 'example.org', type: 'SOA', ttl: 3600, data: soa },
      ],
      additionals: [
        { name: 'example.org', type: 'MX', ttl: 3600, data: { preference: 10, exchange: 'mail.example.org' } },
        { name: '_sip._udp.example.org', type: 'SRV', ttl: 30, data: { priority: 1, weight: 2, port: 5060, target: 'sip.example.org' } },
        { name: '7.2.0.192.in-addr.arpa', type: 'PTR', ttl: 30, data: 'web.example.org' },
      ],
    }));
    expect(message.id).toBe(0x1234);
    expect(message.flags & Flag.QR).toBe(Flag.QR);
    expect(message.flags & Flag.AA).toBe(Flag.AA);
    expect(message.opcode).toBe(0);
    expect(message.rcode).toBe(0);
    expect(message.question).toEqual({ name: 'WwW.Example.ORG.', qtype: Type.A, qclass: Class.IN });
    expect(message.answer).toEqual([
      { name: 'WwW.Example.ORG.', type: Type.CNAME, class: Class.IN, ttl: 300, data: 'Web.Example.ORG.' },
      { name: 'Web.Example.ORG.', type: Type.A, class: Class.IN, ttl: 60, data: '192.0.2.7' },
      { name: 'Web.Example.ORG.', type: Type.AAAA, class: Class.IN, ttl: 60, data: '2001:db8::7' },
    ]);
    expect(message.authority).toEqual([
      { name: 'example.org.', type: Type.NS, class: Class.IN, ttl: 3600, data: 'ns1.example.org.' },
      { name: 'example.org.', type: Type.SOA, class: Class.IN, ttl: 3600, data: { ...soa, mname: 'ns1.Example.ORG.', rname: 'hostmaster.example.org.' } },
    ]);
    expect(message.additional).toEqual([
      { name: 'example.org.', type: Type.MX, class: Class.IN, ttl: 3600, data: { preference: 10, exchange: 'mail.example.org.' } },
      { name: '_sip._udp.example.org.', type: Type.SRV, class: Class.IN, ttl: 30, data: { priority: 1, weight: 2, port: 5060, target: 'sip.example.org.' } },
      { name: '7.2.0.192.in-addr.arpa.', type: Type.PTR, class: Class.IN, ttl: 30, data: 'web.example.org.' },
    ]);
    expect(message.edns).toBeNull();
  });

  it('keeps TXT and unknown types as raw rdata', () => {
    const message = decodeMessage(reply({
      questions: [{ name: 'example.org', type: 'TXT', class: 'IN' }],
      answers: [
        { name: 'example.org', type: 'TXT', ttl: 60, data: ['v=spf1 -all', 'second'] },
        { name: 'example.org', type: 'CAA', ttl: 60, data: { flags: 0, tag: 'issue', value: 'letsencrypt.org' } },
      ],
    }));
    const [txt, caa] = message.answer;
    expect(Buffer.isBuffer(txt!.data)).toBe(true);
    expect((txt!.data as Buffer).toString('latin1')).toBe('\x0bv=spf1 -all\x06second');
    expect(caa!.type).toBe(Type.CAA);
    expect(Buffer.isBuffer(caa!.data)).toBe(true);
  });

  it('decodes DNAME targets as names', () => {
    const packet = reply({
      questions: [{ name: 'a.old.example', type: 'A', class: 'IN' }],
      answers: [{ name: 'old.example', type: 'DNAME', ttl: 60, data: 'new.example' } as never],
    });
    const message = decodeMessage(packet);
    expect(message.answer[0]).toEqual({ name: 'old.example.', type: Type.DNAME, class: Class.IN, ttl: 60, data: 'new.example.' });
  });

  it('takes the OPT out of the additional section into edns, with its extended RCODE bits', () => {
    const packet = reply({
      flags: dnsPacket.RECURSION_AVAILABLE | 7, // header RCODE 7 ...
      questions: [{ name: 'example.org', type: 'A', class: 'IN' }],
      additionals: [
        { name: 'example.org', type: 'A', ttl: 1, data: '192.0.2.1' },
        { type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 1, ednsVersion: 0, flags: dnsPacket.DNSSEC_OK, options: [{ code: 10, data: Buffer.from('0123456789abcdef', 'hex') }] } as never,
      ],
    });
    const message = decodeMessage(packet);
    expect(message.rcode).toBe(23); // ... plus extended 1: BADCOOKIE
    expect(message.additional).toHaveLength(1);
    expect(message.edns).toMatchObject({ udpSize: 1232, version: 0, dnssecOk: true });
    expect(message.edns!.options).toHaveLength(1);
    expect(message.edns!.options[0]!.code).toBe(10);
  });

  it('decodes a question-less error reply', () => {
    const packet = Buffer.from([0x12, 0x34, 0x81, 0x05, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(decodeMessage(packet)).toMatchObject({ id: 0x1234, rcode: 5, question: null, answer: [] });
  });

  it('escapes dots and odd bytes in labels as dig does, and the encoder reads them back', () => {
    const packet = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]),
      Buffer.from([3, 0x61, 0x2e, 0xff, 3, ...Buffer.from('org'), 0, 0, 12, 0, 1]),
      Buffer.from([0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]),
    ]);
    const message = decodeMessage(packet);
    expect(message.question!.name).toBe('a\\.\\255.org.');
    expect(message.answer[0]!.data).toBe('a\\.\\255.org.');
  });

  it('expands compressed names inside obsolete types (MINFO) into self-contained raw rdata', () => {
    const packet = Buffer.concat([
      Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]),
      Buffer.from([1, 0x78, 0, 0, 14, 0, 1]),
      Buffer.from([0xc0, 12, 0, 14, 0, 1, 0, 0, 0, 60, 0, 4, 0xc0, 12, 0xc0, 12]),
    ]);
    const record = decodeMessage(packet).answer[0]!;
    expect(record.data).toEqual(Buffer.from([1, 0x78, 0, 1, 0x78, 0]));
  });
});

describe('decodeMessage rejects malformed messages (strict)', () => {
  const header = (qd: number, an: number) => Buffer.from([0, 1, 0x81, 0x80, 0, qd, 0, an, 0, 0, 0, 0]);

  it('a pointer loop', () => {
    // Question name is a pointer to itself.
    const packet = Buffer.concat([header(1, 0), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(() => decodeMessage(packet)).toThrow(MessageFormatError);
    expect(() => decodeMessage(packet)).toThrow(/does not point backwards/);
  });

  it('a forward pointer', () => {
    const packet = Buffer.concat([header(1, 0), Buffer.from([0xc0, 20, 0, 1, 0, 1, 0, 0, 0, 0])]);
    expect(() => decodeMessage(packet)).toThrow(/does not point backwards/);
  });

  it('a message shorter than a header', () => {
    expect(() => decodeMessage(Buffer.alloc(5))).toThrow(/shorter than a header/);
  });

  it('records announced but missing', () => {
    const good = reply({ questions: [{ name: 'example.org', type: 'A', class: 'IN' }] });
    good.writeUInt16BE(2, 6);
    expect(() => decodeMessage(good)).toThrow(/runs past the end/);
  });

  it('rdata running past the end', () => {
    const good = reply({
      questions: [{ name: 'example.org', type: 'A', class: 'IN' }],
      answers: [{ name: 'example.org', type: 'A', ttl: 1, data: '192.0.2.1' }],
    });
    expect(() => decodeMessage(good.subarray(0, good.length - 2))).toThrow(/runs past the end/);
  });

  it('an A record of the wrong length', () => {
    const packet = Buffer.concat([header(0, 1), Buffer.from([0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3])]);
    expect(() => decodeMessage(packet)).toThrow(/A rdata must be 4 bytes/);
  });

  it('a name in rdata that overruns its rdlength', () => {
    // CNAME with rdlength 2 whose name is 5 bytes.
    const packet = Buffer.concat([header(0, 1), Buffer.from([0, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 3, 0x61, 0x62, 0x63, 0])]);
    expect(() => decodeMessage(packet)).toThrow(MessageFormatError);
  });

  it('a name longer than 255 bytes', () => {
    const label = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]);
    const packet = Buffer.concat([header(1, 0), label, label, label, label, Buffer.from([0, 0, 1, 0, 1])]);
    expect(() => decodeMessage(packet)).toThrow(/longer than 255/);
  });

  it('extended label types', () => {
    const packet = Buffer.concat([header(1, 0), Buffer.from([0x41, 0, 0, 1, 0, 1])]);
    expect(() => decodeMessage(packet)).toThrow(/unsupported label type/);
  });

  it('two OPT records, or an OPT in the answer section', () => {
    const opt = Buffer.from([0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    const two = Buffer.concat([Buffer.from([0, 1, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 2]), opt, opt]);
    expect(() => decodeMessage(two)).toThrow(/more than one OPT/);
    const inAnswer = Buffer.concat([Buffer.from([0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0]), opt]);
    expect(() => decodeMessage(inAnswer)).toThrow(/outside the additional section/);
  });

  it('more than one question', () => {
    expect(() => decodeMessage(header(2, 0))).toThrow(/2 questions/);
  });
});

describe('decodeQuestion', () => {
  it('reads the header and question of a reply whose records are cut off (FWD-8)', () => {
    const full = reply({
      flags: dnsPacket.TRUNCATED_RESPONSE | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ name: 'Big.Example.org', type: 'TXT', class: 'IN' }],
      answers: [{ name: 'big.example.org', type: 'TXT', ttl: 1, data: 'x'.repeat(200) }],
    });
    const cut = full.subarray(0, full.length - 50);
    expect(() => decodeMessage(cut)).toThrow(MessageFormatError);
    expect(decodeQuestion(cut)).toMatchObject({ id: 0x1234, question: { name: 'Big.Example.org.', qtype: Type.TXT, qclass: Class.IN } });
  });
});

describe('round trip through encodeReply', () => {
  function query(name: string, type = 'A', options: Parameters<typeof buildQuery>[1] = {}): Query {
    const decoded = decodeQuery(buildQuery(name, { type, ...options }));
    if (isRejection(decoded)) throw new Error('rejected');
    return decoded;
  }

  it('re-encodes every record the upstream sent, raw rdata unchanged', () => {
    const upstream = reply({
      questions: [{ name: 'www.example.org', type: 'A', class: 'IN' }],
      answers: [
        { name: 'www.example.org', type: 'CNAME', ttl: 300, data: 'web.example.org' },
        { name: 'web.example.org', type: 'A', ttl: 60, data: '192.0.2.7' },
        { name: 'web.example.org', type: 'TXT', ttl: 60, data: ['hello world'] },
        { name: 'old.example', type: 'DNAME', ttl: 60, data: 'new.example' } as never,
      ],
      authorities: [{ name: 'example.org', type: 'SOA', ttl: 3600, data: soa }],
      additionals: [{ name: '_x._tcp.example.org', type: 'SRV', ttl: 30, data: { priority: 1, weight: 2, port: 80, target: 'web.example.org' } }],
    });
    const message = decodeMessage(upstream);
    const forwarded: Reply = { rcode: message.rcode, flags: message.flags & (Flag.AA | Flag.TC | Flag.RA | Flag.AD), answer: message.answer, authority: message.authority, additional: message.additional };
    const wire = encodeReply(query('WWW.example.org'), forwarded, 65535);
    const decoded = dnsPacket.decode(wire);
    expect(decoded.flag_ra).toBe(true);
    expect(decoded.questions![0]!.name).toBe('WWW.example.org');
    expect(decoded.answers!.map((answer) => [answer.type, (answer as { data: unknown }).data])).toEqual([
      ['CNAME', 'web.example.org'],
      ['A', '192.0.2.7'],
      ['TXT', [Buffer.from('hello world')]],
      ['DNAME', 'new.example'],
    ]);
    // The encoder compresses names case-insensitively, so only the question keeps its case (WIRE-24).
    expect(decoded.authorities![0]).toMatchObject({ type: 'SOA', data: { serial: 2024010101 } });
    expect(((decoded.authorities![0] as { data: unknown }).data as { mname: string }).mname.toLowerCase()).toBe('ns1.example.org');
    expect(decoded.additionals![0]).toMatchObject({ type: 'SRV', data: { port: 80, target: 'web.example.org' } });
    // Decoding our own output again gives the same records.
    const lower = (records: typeof message.answer) => JSON.stringify(records).toLowerCase();
    expect(lower(decodeMessage(wire).answer)).toEqual(lower(message.answer));
  });
});
