// minimal: positive answers lose their authority and additional sections;
// NXDOMAIN, NODATA and delegations keep them (CoreDNS 1.11.3's response typing).

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryUdp, startServer, type RunningServer } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';

const manifests = path.resolve(import.meta.dirname, '../examples/cluster');
let running: RunningServer;
beforeAll(async () => {
  running = await startServer(`cluster.local {\n minimal\n kubernetes {\n manifests ${manifests}\n }\n}\nexample.org {\n minimal\n whoami\n}\nexample.net {\n whoami\n}\n`);
});
afterAll(() => running.stop());

const sections = async (name: string, type = 'A') => {
  const reply = await queryUdp(running.port, name, { type, udpSize: 1232 });
  return [reply.rcode, reply.answers!.length, reply.authorities!.length, reply.additionals!.filter((record) => record.type !== 'OPT').length];
};

describe('minimal', () => {
  it('drops the additional records of an SRV answer', async () => {
    const [rcode, answers, authorities, additionals] = await sections('_postgres._tcp.db.demo.svc.cluster.local', 'SRV');
    expect([rcode, authorities, additionals]).toEqual(['NOERROR', 0, 0]);
    expect(answers).toBeGreaterThan(0);
  });

  it('keeps the SOA of NXDOMAIN and NODATA answers', async () => {
    expect(await sections('nope.demo.svc.cluster.local')).toEqual(['NXDOMAIN', 0, 1, 0]);
    expect(await sections('web.demo.svc.cluster.local', 'TXT')).toEqual(['NOERROR', 0, 1, 0]);
  });

  it('strips a NOERROR reply with no answer and no SOA or NS (whoami), as CoreDNS does', async () => {
    expect(await sections('example.net')).toEqual(['NOERROR', 0, 0, 2]);
    expect(await sections('example.org')).toEqual(['NOERROR', 0, 0, 0]);
  });

  it('rejects arguments and blocks as CoreDNS 1.11.3 does', () => {
    expectSetupError('. {\n minimal foo\n}\n', 2, /Wrong argument count or unexpected line ending after 'foo'/);
    expectSetupError('. {\n minimal {\n x\n }\n}\n', 2, /Unexpected token '\{', expecting argument/);
  });
});
