// local: localhost and the loopback reverse zones, answered as CoreDNS 1.11.3
// answers them (each row below was checked side by side with dig).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../src/metrics.ts';
import { queryUdp, startServer, type DecodedReply, type RunningServer } from './support/dns.ts';

let running: RunningServer;
beforeAll(async () => {
  // whoami behind it shows which queries local let through.
  running = await startServer('. {\n local\n whoami\n}\n');
});
afterAll(() => running.stop());

/** rcode, flags and sections as `dig +noall +comments +answer +authority` shows them. */
function dig(reply: DecodedReply): string[] {
  const line = (record: { name: string; ttl?: number; type: string; data?: unknown }) => {
    const data = record.data;
    const text = typeof data === 'object' && data !== null && 'mname' in data
      ? Object.values(data as Record<string, unknown>).join(' ')
      : String(data);
    return `${record.name}. ${record.ttl} ${record.type} ${text}`;
  };
  const flags = ['aa', 'ra'].filter((flag) => reply[`flag_${flag}` as 'flag_aa']).join(' ');
  return [`${reply.rcode} [${flags}]`, ...(reply.answers ?? []).map(line), ...(reply.authorities ?? []).map((record) => `NS: ${line(record)}`)];
}

const ask = async (name: string, type = 'A') => dig(await queryUdp(running.port, name, { type }));
const SOA = 'localhost root.localhost 1 0 0 0 604800';

describe('local answers, no AA, TTL 604800', () => {
  it.each([
    ['localhost', 'A', ['NOERROR []', 'localhost. 604800 A 127.0.0.1']],
    ['localhost', 'AAAA', ['NOERROR []', 'localhost. 604800 AAAA ::1']],
    ['localhost', 'MX', ['NOERROR []', `NS: localhost. 604800 SOA ${SOA}`]],
    ['localhost', 'SOA', ['NOERROR []', `localhost. 604800 SOA ${SOA}`]],
    ['localhost', 'NS', ['NOERROR []', 'localhost. 604800 NS localhost']],
    ['1.0.0.127.in-addr.arpa', 'PTR', ['NOERROR []', '1.0.0.127.in-addr.arpa. 604800 PTR localhost']],
    ['1.0.0.127.in-addr.arpa', 'A', ['NOERROR []', `NS: 127.in-addr.arpa. 604800 SOA ${SOA}`]],
    ['2.0.0.127.in-addr.arpa', 'PTR', ['NXDOMAIN []', `NS: 127.in-addr.arpa. 604800 SOA ${SOA}`]],
    ['x.1.0.0.127.in-addr.arpa', 'PTR', ['NXDOMAIN []', `NS: 127.in-addr.arpa. 604800 SOA ${SOA}`]],
    ['127.in-addr.arpa', 'A', ['NOERROR []', `NS: 127.in-addr.arpa. 604800 SOA ${SOA}`]],
    ['0.in-addr.arpa', 'NS', ['NOERROR []', '0.in-addr.arpa. 604800 NS localhost']],
    ['255.255.255.255.in-addr.arpa', 'PTR', ['NXDOMAIN []', `NS: 255.in-addr.arpa. 604800 SOA ${SOA}`]],
    ['foo.localhost', 'A', ['NXDOMAIN []', `NS: localhost. 604800 SOA ${SOA}`]],
    ['localhost.example.com', 'A', ['NOERROR []', 'localhost.example.com. 604800 A 127.0.0.1']],
    ['localhost.localhost', 'AAAA', ['NOERROR []', 'localhost.localhost. 604800 AAAA ::1']],
    ['localhost.foo', 'MX', ['NOERROR []', `NS: localhost.foo. 604800 SOA ${SOA}`]],
  ])('%s %s', async (name, type, expected) => {
    expect(await ask(name, type)).toEqual(expected);
  });

  it('keeps the letter case of the question in owner names', async () => {
    expect(await ask('LocalHost.Foo')).toEqual(['NOERROR []', 'LocalHost.Foo. 604800 A 127.0.0.1']);
    // The SOA owner is the zone as the query spells it; names inside SOA data are lower case (CoreDNS 1.11.3).
    const reply = await queryUdp(running.port, 'X.LocalHost');
    const soa = reply.authorities![0] as { name: string; data: { mname: string; rname: string } };
    expect([reply.rcode, soa.name, soa.data.mname, soa.data.rname]).toEqual(['NXDOMAIN', 'LocalHost', 'localhost', 'root.localhost']);
  });

  it('lets other names through, ::1 reverse included (CoreDNS 1.11.3 does not answer it)', async () => {
    const reverse = await queryUdp(running.port, '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa', { type: 'PTR' });
    expect(reverse.flag_aa).toBe(true); // whoami's answer
    expect((await queryUdp(running.port, 'example.org')).additionals!.map((record) => record.type)).toEqual(['A', 'SRV']);
  });

  it('counts localhost.<domain> questions in coredns_local_localhost_requests_total', async () => {
    const count = async () => Number(/^coredns_local_localhost_requests_total (\d+)$/m.exec(await registry.metrics())?.[1] ?? 0);
    const before = await count();
    await ask('localhost.svc.cluster.local');
    await ask('localhost'); // the zone itself is not counted
    expect((await count()) - before).toBe(1);
  });
});
