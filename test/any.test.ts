// any: RFC 8482 HINFO for ANY questions, as CoreDNS 1.11.3 answers (checked with dig).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryUdp, startServer, type RunningServer } from './support/dns.ts';

let running: RunningServer;
beforeAll(async () => {
  running = await startServer('. {\n any\n whoami\n}\n');
});
afterAll(() => running.stop());

describe('any', () => {
  it('answers ANY with one HINFO "ANY obsoleted" "See RFC 8482", TTL 8482, owned by the question, no AA', async () => {
    const reply = await queryUdp(running.port, 'Example.ORG', { type: 'ANY', udpSize: 1232 });
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flag_aa).toBe(false);
    expect(reply.answers).toMatchObject([{ name: 'Example.ORG', type: 'HINFO', class: 'IN', ttl: 8482, data: { cpu: 'ANY obsoleted', os: 'See RFC 8482' } }]);
    expect(reply.authorities).toEqual([]);
    expect(reply.additionals!.map((record) => record.type)).toEqual(['OPT']);
  });

  it('lets every other type through', async () => {
    const reply = await queryUdp(running.port, 'example.org', { type: 'TXT' });
    expect(reply.flag_aa).toBe(true); // whoami's answer
    expect(reply.answers).toEqual([]);
  });
});
