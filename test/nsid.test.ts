// nsid: the NSID option (RFC 5001) in replies to queries that ask for it, as
// CoreDNS 1.11.3 answers (checked side by side with dig +nsid).

import os from 'node:os';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { decodeReply, sendUdp, serverPerTest, type DecodedReply } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';

const start = serverPerTest();

/** A query like `dig +nsid`: an OPT with an empty NSID option (or none). */
async function ask(port: number, options: { nsid: boolean; udpSize?: number; dnssecOk?: boolean }): Promise<DecodedReply> {
  const query = dnsPacket.encode({
    type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: 'example.org', type: 'A', class: 'IN' }],
    additionals: [{
      type: 'OPT', name: '.', udpPayloadSize: options.udpSize ?? 1232, flags: options.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
      options: options.nsid ? [{ code: 3, data: Buffer.alloc(0) }] : [],
    } as never],
  });
  return decodeReply((await sendUdp(port, query))!);
}

type Opt = { udpPayloadSize: number; flags: number; options: { code: number; data: Buffer }[] };
const opt = (reply: DecodedReply) => reply.additionals!.find((record) => record.type === 'OPT') as unknown as Opt;

describe('nsid', () => {
  it('answers an NSID query with the host name by default, and sets DO in the reply (CoreDNS does)', async () => {
    const port = await start('. {\n nsid\n whoami\n}\n');
    const reply = opt(await ask(port, { nsid: true }));
    expect(reply.options.map((option) => [option.code, String(option.data)])).toEqual([[3, os.hostname()]]);
    expect(reply.flags & dnsPacket.DNSSEC_OK).toBe(dnsPacket.DNSSEC_OK);
    expect(reply.udpPayloadSize).toBe(1232);
  });

  it('answers with the configured data, words joined by a space', async () => {
    const port = await start('. {\n nsid hello world\n whoami\n}\n');
    expect(String(opt(await ask(port, { nsid: true })).options[0]!.data)).toBe('hello world');
  });

  it('adds nothing when the query has no NSID option', async () => {
    const port = await start('. {\n nsid hello\n whoami\n}\n');
    const reply = opt(await ask(port, { nsid: false }));
    expect(reply.options).toEqual([]);
    expect(reply.flags & dnsPacket.DNSSEC_OK).toBe(0);
  });

  it('with bufsize, advertises the capped size', async () => {
    const port = await start('. {\n nsid hello\n bufsize 600\n whoami\n}\n');
    expect(opt(await ask(port, { nsid: true, udpSize: 4096 })).udpPayloadSize).toBe(600);
  });

  it('follows an OPT another plugin wrote: acl\'s EDE stays, NSID comes after it', async () => {
    const port = await start('. {\n nsid hello\n acl {\n block\n }\n}\n');
    const reply = await ask(port, { nsid: true });
    expect(reply.rcode).toBe('REFUSED');
    expect(opt(reply).options.map((option) => option.code)).toEqual([15, 3]);
  });

  it('may be used once per block', () => {
    expectSetupError('. {\n nsid\n nsid\n}\n', 3, /plugin\/nsid: this plugin can only be used once per Server Block/);
  });
});
