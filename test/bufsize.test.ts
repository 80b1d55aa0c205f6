// bufsize: the client's EDNS payload size is capped, as CoreDNS 1.11.3 does
// (checked side by side with dig): the reply advertises the cap and UDP
// replies are cut to it; TCP replies are whole.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryTcp, queryUdp, startServer, type DecodedReply, type RunningServer } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { TestUpstream } from './support/upstreams.ts';

const hostsLines = Array.from({ length: 60 }, (_, i) => `  10.0.0.${i + 1} big.example`).join('\n');
let capped: RunningServer;
let uncapped: RunningServer;
beforeAll(async () => {
  capped = await startServer(`. {\n bufsize 600\n hosts {\n${hostsLines}\n }\n}\n`);
  uncapped = await startServer(`. {\n hosts {\n${hostsLines}\n }\n}\n`);
});
afterAll(async () => {
  await capped.stop();
  await uncapped.stop();
});

const advertised = (reply: DecodedReply) => (reply.additionals!.find((record) => record.type === 'OPT') as unknown as { udpPayloadSize: number }).udpPayloadSize;

describe('bufsize', () => {
  it('a client offering 4096 gets at most 600 bytes over UDP, TC set, and an OPT saying 600', async () => {
    const reply = await queryUdp(capped.port, 'big.example', { udpSize: 4096 });
    expect(reply.raw.length).toBeLessThanOrEqual(600);
    expect(reply.flag_tc).toBe(true);
    expect(reply.answers!.length).toBeGreaterThan(20);
    expect(advertised(reply)).toBe(600);
  });

  it('without bufsize the same question fits the client size', async () => {
    const reply = await queryUdp(uncapped.port, 'big.example', { udpSize: 4096 });
    expect([reply.flag_tc, reply.answers!.length, advertised(reply)]).toEqual([false, 60, 4096]);
  });

  it('over TCP the answer is whole, and the OPT still says 600', async () => {
    const reply = await queryTcp(capped.port, 'big.example', { udpSize: 4096 });
    expect([reply.flag_tc, reply.answers!.length, advertised(reply)]).toEqual([false, 60, 600]);
  });

  it('leaves smaller sizes and queries without EDNS alone', async () => {
    const small = await queryUdp(capped.port, 'big.example', { udpSize: 512 });
    expect(advertised(small)).toBe(512);
    expect(small.raw.length).toBeLessThanOrEqual(512);
    const plain = await queryUdp(capped.port, 'big.example');
    expect(plain.additionals).toEqual([]);
    expect(plain.raw.length).toBeLessThanOrEqual(512);
  });

  it('defaults to 1232, and a forwarded query carries the capped size upstream', async () => {
    const upstream = await TestUpstream.start({ records: { 'www.example.org A': [{ name: 'www.example.org', type: 'A', ttl: 60, data: '192.0.2.1' }] } });
    const server = await startServer(`. {\n bufsize\n forward . ${upstream.hostPort}\n}\n`);
    try {
      const reply = await queryUdp(server.port, 'www.example.org', { udpSize: 4096 });
      expect(advertised(reply)).toBe(1232);
      const sent = upstream.queriesFor('www.example.org').at(-1)!.packet.additionals!.find((record) => record.type === 'OPT');
      expect((sent as unknown as { udpPayloadSize: number }).udpPayloadSize).toBe(1232);
    } finally {
      await server.stop();
      await upstream.stop();
    }
  });

  it('rejects sizes outside 512..4096, non-numbers and extra arguments as CoreDNS does', () => {
    for (const [line, after] of [['bufsize 100', '100'], ['bufsize 4097', '4097'], ['bufsize x', 'x'], ['bufsize 1 2', '2']]) {
      expectSetupError(`. {\n ${line}\n}\n`, 2, new RegExp(`Wrong argument count or unexpected line ending after '${after}'`));
    }
  });
});
