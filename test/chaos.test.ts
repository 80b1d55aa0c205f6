// chaos: version.bind and friends in class CH, as CoreDNS 1.11.3 answers them (checked with dig).

import os from 'node:os';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../src/version.ts';
import { decodeReply, sendUdp, serverPerTest, type DecodedReply } from './support/dns.ts';

const start = serverPerTest();

async function ask(port: number, name: string, type = 'TXT', qclass = 'CH'): Promise<DecodedReply> {
  const query = dnsPacket.encode({ type: 'query', id: 7, flags: 0, questions: [{ name, type: type as 'TXT', class: qclass as 'CH' }] });
  return decodeReply((await sendUdp(port, query))!);
}

const texts = (reply: DecodedReply) => (reply.answers ?? []).map((record) => (record as { data: Buffer[] }).data.map(String).join(''));

describe('chaos', () => {
  it('answers version.bind and version.server with the server version, CH TXT, TTL 0, no AA', async () => {
    const port = await start('. {\n chaos\n whoami\n}\n');
    for (const name of ['version.bind', 'version.server', 'VERSION.BIND']) {
      const reply = await ask(port, name);
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.flag_aa).toBe(false);
      expect(reply.answers).toMatchObject([{ name, type: 'TXT', class: 'CH', ttl: 0 }]);
      expect(texts(reply)).toEqual([`clusterdns-${VERSION}`]);
    }
  });

  it('answers hostname.bind and id.server with the host name', async () => {
    const port = await start('. {\n chaos\n whoami\n}\n');
    expect(texts(await ask(port, 'hostname.bind'))).toEqual([os.hostname()]);
    expect(texts(await ask(port, 'id.server'))).toEqual([os.hostname()]);
  });

  it('takes VERSION and AUTHORS: authors deduplicated, one TXT each, in a new order per answer', async () => {
    const port = await start('. {\n chaos CoreDNS-001 "Miek Gieben" miek@miek.nl a b c d e a\n whoami\n}\n');
    expect(texts(await ask(port, 'version.bind'))).toEqual(['CoreDNS-001']);
    const orders = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const authors = texts(await ask(port, 'authors.bind'));
      expect([...authors].sort()).toEqual(['Miek Gieben', 'a', 'b', 'c', 'd', 'e', 'miek@miek.nl']);
      orders.add(authors.join());
    }
    expect(orders.size).toBeGreaterThan(1);
  });

  it('passes other CH names, other CH types and IN questions to the next plugin', async () => {
    const port = await start('. {\n chaos v1\n whoami\n}\n');
    for (const [name, type, qclass] of [['foo.bind', 'TXT', 'CH'], ['version.bind', 'A', 'CH'], ['version.bind', 'TXT', 'IN']] as const) {
      const reply = await ask(port, name, type, qclass);
      expect(reply.flag_aa).toBe(true); // whoami's answer
      expect(reply.answers).toEqual([]);
    }
  });
});
