// Wire-level rules over real sockets (server-protocol.md, WIRE-*).

import { afterEach, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import type { Next } from '../src/plugin.ts';
import { Class, Rcode, Type } from '../src/wire/constants.ts';
import type { Reply, ResourceRecord } from '../src/wire/message.ts';
import { buildQuery, decodeReply, headerRcode, openTcp, queryTcp, queryUdp, sendUdp, startServer, type RunningServer } from './support/dns.ts';

let running: RunningServer | null = null;
afterEach(async () => {
  await running?.stop();
  running = null;
});

const whoami = '. {\n whoami\n}\n';

function header(fields: { id?: number; flags?: number; qd?: number; an?: number; ns?: number; ar?: number }): Buffer {
  const buffer = Buffer.alloc(12);
  buffer.writeUInt16BE(fields.id ?? 0x1234, 0);
  buffer.writeUInt16BE(fields.flags ?? 0x0100, 2);
  buffer.writeUInt16BE(fields.qd ?? 1, 4);
  buffer.writeUInt16BE(fields.an ?? 0, 6);
  buffer.writeUInt16BE(fields.ns ?? 0, 8);
  buffer.writeUInt16BE(fields.ar ?? 0, 10);
  return buffer;
}

/** example.org. A IN */
const question = Buffer.from([7, ...Buffer.from('example'), 3, ...Buffer.from('org'), 0, 0, 1, 0, 1]);

/** A stand-in plugin answering `count` A records for any name. */
function manyAddresses(count: number): Next {
  return (request) => {
    const answer: ResourceRecord[] = [];
    for (let i = 0; i < count; i++) {
      answer.push({ name: request.query.qname, type: Type.A, class: Class.IN, ttl: 30, data: `10.0.${i >> 8}.${i & 255}` });
    }
    const reply: Reply = { rcode: Rcode.NOERROR, flags: 0x0400, answer, authority: [], additional: [] };
    return reply;
  };
}

describe('intake (WIRE-1, WIRE-2)', () => {
  it('WIRE-1: drops datagrams shorter than a header', async () => {
    running = await startServer(whoami);
    expect(await sendUdp(running.port, Buffer.from([1, 2, 3, 4, 5]), 300)).toBeNull();
  });

  it('WIRE-1: drops responses (QR=1)', async () => {
    running = await startServer(whoami);
    expect(await sendUdp(running.port, Buffer.concat([header({ flags: 0x8100 }), question]), 300)).toBeNull();
  });

  it('WIRE-2: non-QUERY opcodes get NOTIMP with the opcode kept and no question', async () => {
    running = await startServer(whoami);
    const reply = (await sendUdp(running.port, Buffer.concat([header({ flags: 0x1100 /* STATUS */ }), question])))!;
    expect(reply.readUInt16BE(0)).toBe(0x1234);
    expect(headerRcode(reply)).toBe(Rcode.NOTIMP);
    expect((reply.readUInt16BE(2) >> 11) & 0xf).toBe(2);
    expect(reply.readUInt16BE(4)).toBe(0);
    expect(reply.length).toBe(12);
  });

  it('WIRE-4: NOTIFY reaches the chain and keeps opcode 4', async () => {
    running = await startServer(whoami);
    const reply = (await sendUdp(running.port, Buffer.concat([header({ flags: 0x2000 }), question])))!;
    expect(headerRcode(reply)).toBe(Rcode.NOERROR);
    expect((reply.readUInt16BE(2) >> 11) & 0xf).toBe(4);
  });

  it.each([0, 2])('WIRE-2: QDCOUNT %i gets FORMERR without a question', async (qd) => {
    running = await startServer(whoami);
    const reply = (await sendUdp(running.port, Buffer.concat([header({ qd }), question, question])))!;
    expect(headerRcode(reply)).toBe(Rcode.FORMERR);
    expect(reply.readUInt16BE(4)).toBe(0);
    expect(reply.readUInt16BE(2) & 0x8000).toBe(0x8000);
    expect(reply.readUInt16BE(2) & 0x0100).toBe(0x0100); // RD copied
  });

  it('WIRE-2: too many records in a section gets FORMERR', async () => {
    running = await startServer(whoami);
    const reply = (await sendUdp(running.port, Buffer.concat([header({ an: 2 }), question])))!;
    expect(headerRcode(reply)).toBe(Rcode.FORMERR);
  });

  it('WIRE-2: a compression-pointer loop gets FORMERR, with the question already parsed', async () => {
    running = await startServer(whoami);
    // Additional record whose owner is a pointer to itself.
    const loopOffset = 12 + question.length;
    const record = Buffer.from([0xc0 | (loopOffset >> 8), loopOffset & 0xff, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    const reply = (await sendUdp(running.port, Buffer.concat([header({ ar: 1 }), question, record])))!;
    expect(headerRcode(reply)).toBe(Rcode.FORMERR);
    expect(reply.readUInt16BE(4)).toBe(1);
    expect(reply.subarray(12)).toEqual(question);
  });

  it('WIRE-2: a question that runs past the end gets FORMERR', async () => {
    running = await startServer(whoami);
    const reply = (await sendUdp(running.port, Buffer.concat([header({}), question.subarray(0, 6)])))!;
    expect(headerRcode(reply)).toBe(Rcode.FORMERR);
  });

  it('keeps answering after a burst of garbage', async () => {
    running = await startServer(whoami);
    const { default: dgram } = await import('node:dgram');
    const socket = dgram.createSocket('udp4');
    for (let i = 0; i < 500; i++) {
      const junk = Buffer.alloc(1 + (i % 300));
      for (let j = 0; j < junk.length; j++) junk[j] = (i * 31 + j * 17) & 0xff;
      socket.send(junk, running.port, '127.0.0.1');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.close();
    expect((await queryUdp(running.port, 'after.garbage')).rcode).toBe('NOERROR');
  });
});

describe('EDNS (WIRE-9, WIRE-10)', () => {
  it('WIRE-10: no OPT in the query, no OPT in the reply', async () => {
    running = await startServer(whoami);
    const reply = await queryUdp(running.port, 'example.org');
    expect(reply.additionals!.some((record) => record.type === 'OPT')).toBe(false);
  });

  it('WIRE-10: echoes one OPT last, with the client size and the DO bit', async () => {
    running = await startServer(whoami);
    const reply = await queryUdp(running.port, 'example.org', { udpSize: 1232, dnssecOk: true });
    const last = reply.additionals!.at(-1) as unknown as { type: string; udpPayloadSize: number; flags: number; ednsVersion: number };
    expect(last.type).toBe('OPT');
    expect(last.udpPayloadSize).toBe(1232);
    expect(last.ednsVersion).toBe(0);
    expect(last.flags & dnsPacket.DNSSEC_OK).toBe(dnsPacket.DNSSEC_OK);
    expect(reply.additionals!.filter((record) => record.type === 'OPT')).toHaveLength(1);
  });

  it('WIRE-9: EDNS version 1 gets BADVERS with our payload size and no other records', async () => {
    running = await startServer(whoami);
    const raw = (await sendUdp(running.port, buildQuery('example.org', { udpSize: 1232, ednsVersion: 1 })))!;
    expect(headerRcode(raw)).toBe(0);
    expect(raw.readUInt16BE(6)).toBe(0);
    expect(raw.readUInt16BE(10)).toBe(1);
    const reply = decodeReply(raw);
    const opt = reply.additionals![0] as unknown as { type: string; udpPayloadSize: number; extendedRcode: number; ednsVersion: number };
    expect(opt).toMatchObject({ type: 'OPT', udpPayloadSize: 4096, extendedRcode: 1, ednsVersion: 0 });
    expect(reply.questions![0]!.name).toBe('example.org');
  });

  it('WIRE-12: two OPT records get FORMERR', async () => {
    running = await startServer(whoami);
    const opt = Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    const reply = (await sendUdp(running.port, Buffer.concat([header({ ar: 2 }), question, opt, opt])))!;
    expect(headerRcode(reply)).toBe(Rcode.FORMERR);
  });
});

describe('truncation (WIRE-11, WIRE-13)', () => {
  it('cuts a UDP answer to 512 bytes without EDNS, at a record boundary, with TC', async () => {
    running = await startServer(whoami, { chain: manyAddresses(100) });
    const reply = await queryUdp(running.port, 'big.example');
    expect(reply.raw.length).toBeLessThanOrEqual(512);
    expect(reply.flag_tc).toBe(true);
    expect(reply.answers!.length).toBeGreaterThan(10);
    expect(reply.answers!.length).toBeLessThan(100);
  });

  it('cuts to the EDNS size the client advertised', async () => {
    running = await startServer(whoami, { chain: manyAddresses(200) });
    const reply = await queryUdp(running.port, 'big.example', { udpSize: 1232 });
    expect(reply.raw.length).toBeLessThanOrEqual(1232);
    expect(reply.raw.length).toBeGreaterThan(1100);
    expect(reply.flag_tc).toBe(true);
    expect(reply.additionals!.at(-1)!.type).toBe('OPT');
  });

  it('treats an EDNS size below 512 as 512', async () => {
    running = await startServer(whoami, { chain: manyAddresses(100) });
    const reply = await queryUdp(running.port, 'big.example', { udpSize: 100 });
    expect(reply.raw.length).toBeGreaterThan(400);
    expect(reply.raw.length).toBeLessThanOrEqual(512);
  });

  it('does not truncate what fits, and TCP carries the whole answer', async () => {
    running = await startServer(whoami, { chain: manyAddresses(200) });
    const tcp = await queryTcp(running.port, 'big.example');
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(200);
  });
});

describe('TCP (WIRE-16..18)', () => {
  it('WIRE-17: pipelined queries on one connection are answered as each completes', async () => {
    const delays: Record<string, number> = { 'slow.example.': 200, 'fast.example.': 0, 'mid.example.': 80 };
    const chain: Next = (request) =>
      new Promise((resolve) =>
        setTimeout(() => resolve(manyAddresses(1)(request) as Reply), delays[request.query.qname] ?? 0),
      );
    running = await startServer(whoami, { chain });
    const connection = await openTcp(running.port);
    const ids = { slow: 1, fast: 2, mid: 3 };
    connection.socket.write(Buffer.concat(
      Object.entries(ids).map(([label, id]) => {
        const message = buildQuery(`${label}.example`, { id });
        const frame = Buffer.alloc(2);
        frame.writeUInt16BE(message.length);
        return Buffer.concat([frame, message]);
      }),
    ));
    const replies = await connection.waitFor(3);
    connection.close();
    expect(replies.map((reply) => reply.readUInt16BE(0))).toEqual([ids.fast, ids.mid, ids.slow]);
  });

  it('WIRE-16: reassembles a length and message split across segments', async () => {
    running = await startServer(whoami);
    const connection = await openTcp(running.port);
    const message = buildQuery('split.example', { id: 99 });
    const frame = Buffer.alloc(message.length + 2);
    frame.writeUInt16BE(message.length);
    message.copy(frame, 2);
    for (const piece of [frame.subarray(0, 1), frame.subarray(1, 5), frame.subarray(5)]) {
      connection.socket.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [reply] = await connection.waitFor(1);
    connection.close();
    expect(reply!.readUInt16BE(0)).toBe(99);
  });

  it('WIRE-18: a malformed message gets FORMERR and the connection stays open', async () => {
    running = await startServer(whoami);
    const connection = await openTcp(running.port);
    connection.send(Buffer.concat([header({ qd: 2 }), question]));
    connection.send(buildQuery('still.open', { id: 5 }));
    const replies = await connection.waitFor(2);
    connection.close();
    expect(headerRcode(replies[0]!)).toBe(Rcode.FORMERR);
    expect(replies[1]!.readUInt16BE(0)).toBe(5);
  });

  it('WIRE-18: closes a connection that sends nothing within the first-query timeout', async () => {
    running = await startServer(whoami, { tcpFirstQueryTimeoutMs: 150 });
    const connection = await openTcp(running.port);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(connection.closed).toBe(true);
  });
});

describe('server errors (WIRE-5, WIRE-25, users.md P3)', () => {
  it('WIRE-5: an exception in a plugin is SERVFAIL and the server keeps serving', async () => {
    let panics = 0;
    running = await startServer(whoami, {
      chain: () => {
        throw new Error('boom');
      },
      onPanic: () => panics++,
    });
    expect((await queryUdp(running.port, 'panic.example')).rcode).toBe('SERVFAIL');
    expect((await queryUdp(running.port, 'panic.example')).rcode).toBe('SERVFAIL');
    expect(panics).toBe(2);
  });

  it('WIRE-25: a server-written REFUSED carries an OPT when the query had one', async () => {
    running = await startServer('example.org {\n whoami\n}\n');
    const reply = await queryUdp(running.port, 'example.net', { udpSize: 1232 });
    expect(reply.rcode).toBe('REFUSED');
    expect(reply.additionals!.map((record) => record.type)).toEqual(['OPT']);
  });

  it('sheds load past maxInFlight with REFUSED instead of queueing', async () => {
    const never: Next = () => new Promise<Reply>(() => {});
    running = await startServer(whoami, { chain: never, maxInFlight: 2 });
    const pending = [sendUdp(running.port, buildQuery('a.example'), 300), sendUdp(running.port, buildQuery('b.example'), 300)];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const third = await queryUdp(running.port, 'c.example');
    expect(third.rcode).toBe('REFUSED');
    expect(await Promise.all(pending)).toEqual([null, null]);
  });
});
