// The file plugin: zone files answered as CoreDNS 1.11.3 answers them. Every
// expectation below was first seen from CoreDNS 1.11.3 with dig on the same
// zone (by hand, not in the test).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer as startEmbedded } from '../src/index.ts';
import { queryUdp, startServer, type DecodedReply, type RunningServer } from './support/dns.ts';

const ZONE = `$ORIGIN example.org.
$TTL 3600
@   IN SOA ns1.example.org. admin.example.org. (
        2024010101 ; serial
        7200       ; refresh
        3600       ; retry
        1209600    ; expire
        300 )      ; minimum
    IN NS ns1
    IN NS ns2.example.net.
    IN MX 10 mail
ns1     IN A 192.0.2.1
mail    300 IN A 192.0.2.25
www     IN CNAME web
web     IN A 192.0.2.80
        IN AAAA 2001:db8::80
ext     IN CNAME www.example.net.
chain   IN CNAME www
*.wild  IN A 192.0.2.99
sub.wild IN TXT "exists"
_http._tcp IN SRV 0 5 80 web
deleg   IN NS ns.deleg
ns.deleg IN A 192.0.2.53
a.b.c   IN A 192.0.2.3
txt     IN TXT "hello world" "two"
dangling IN CNAME nothere
loop1 IN CNAME loop2
loop2 IN CNAME loop1
towild IN CNAME foo.wild
$INCLUDE extra.db
`;
const EXTRA = `; included with the origin of the file that includes it
inc 2h IN A 192.0.2.7
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-file-'));
const zoneFile = path.join(dir, 'db.example.org');
let server: RunningServer;

beforeAll(async () => {
  fs.writeFileSync(zoneFile, ZONE);
  fs.writeFileSync(path.join(dir, 'extra.db'), EXTRA);
  server = await startServer(`example.org {\n    file ${zoneFile}\n}\n`);
});
afterAll(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Records as dig's short lines: name, TTL, type, data fields. */
const rr = (records: DecodedReply['answers']) =>
  (records ?? []).map((record) => {
    const { name, ttl, type, data } = record as { name: string; ttl: number; type: string; data: unknown };
    const fields = data !== null && typeof data === 'object' && !Buffer.isBuffer(data) && !Array.isArray(data) ? Object.values(data) : [data];
    return `${name} ${ttl} ${type} ${fields.map(String).join(' ')}`;
  });
const apexNs = ['example.org 3600 NS ns1.example.org', 'example.org 3600 NS ns2.example.net'];
const soa = ['example.org 3600 SOA ns1.example.org admin.example.org 2024010101 7200 3600 1209600 300'];
const AA = 1 << 10;

async function ask(name: string, type = 'A'): Promise<DecodedReply> {
  return queryUdp(server.port, name, { type });
}

describe('file: answers from a zone file', () => {
  it('a name with records: AA, the records, the apex NS in authority', async () => {
    const reply = await ask('web.example.org.', 'AAAA');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flags! & AA).toBe(AA);
    expect(rr(reply.answers)).toEqual(['web.example.org 3600 AAAA 2001:db8::80']);
    expect(rr(reply.authorities)).toEqual(apexNs);
  });

  it('CNAMEs are followed inside the zone, every link in the answer', async () => {
    const reply = await ask('chain.example.org.', 'AAAA');
    expect(rr(reply.answers)).toEqual([
      'chain.example.org 3600 CNAME www.example.org',
      'www.example.org 3600 CNAME web.example.org',
      'web.example.org 3600 AAAA 2001:db8::80',
    ]);
    expect((await ask('www.example.org.', 'CNAME')).answers).toHaveLength(1);
  });

  it('a CNAME out of the zone, to nowhere, or into a loop: NOERROR with what was found (10 records at most)', async () => {
    expect(rr((await ask('ext.example.org.')).answers)).toEqual(['ext.example.org 3600 CNAME www.example.net']);
    const dangling = await ask('dangling.example.org.');
    expect(dangling.rcode).toBe('NOERROR');
    expect(rr(dangling.answers)).toEqual(['dangling.example.org 3600 CNAME nothere.example.org']);
    expect(rr(dangling.authorities)).toEqual(apexNs);
    const loop = await ask('loop1.example.org.');
    expect(loop.rcode).toBe('NOERROR');
    expect(loop.answers).toHaveLength(10);
    expect(rr((await ask('towild.example.org.')).answers)).toEqual([
      'towild.example.org 3600 CNAME foo.wild.example.org',
      'foo.wild.example.org 3600 A 192.0.2.99',
    ]);
  });

  it('NXDOMAIN and NODATA carry the SOA; an empty non-terminal is NODATA', async () => {
    const missing = await ask('nope.example.org.');
    expect(missing.rcode).toBe('NXDOMAIN');
    expect(missing.flags! & AA).toBe(AA);
    expect(rr(missing.authorities)).toEqual(soa);
    for (const [name, type] of [['web.example.org.', 'MX'], ['b.c.example.org.', 'A'], ['example.org.', 'ANY']] as const) {
      const reply = await ask(name, type);
      expect(reply.rcode, name).toBe('NOERROR');
      expect(reply.answers, name).toEqual([]);
      expect(rr(reply.authorities), name).toEqual(soa);
    }
    expect((await ask('x.www.example.org.')).rcode).toBe('NXDOMAIN');
  });

  it('RFC 4592 wildcards: stand in for names that do not exist, not for names that do', async () => {
    expect(rr((await ask('x.wild.example.org.')).answers)).toEqual(['x.wild.example.org 3600 A 192.0.2.99']);
    expect(rr((await ask('y.x.wild.example.org.')).answers)).toEqual(['y.x.wild.example.org 3600 A 192.0.2.99']);
    const existing = await ask('sub.wild.example.org.');
    expect(existing.answers).toEqual([]);
    expect(rr(existing.authorities)).toEqual(soa);
    const otherType = await ask('x.wild.example.org.', 'TXT');
    expect(otherType.rcode).toBe('NOERROR');
    expect(rr(otherType.authorities)).toEqual(soa);
  });

  it('at or below a zone cut: a referral without AA, glue in the additional section', async () => {
    for (const name of ['deleg.example.org.', 'x.deleg.example.org.']) {
      const reply = await ask(name);
      expect(reply.rcode).toBe('NOERROR');
      expect(reply.flags! & AA).toBe(0);
      expect(reply.answers).toEqual([]);
      expect(rr(reply.authorities)).toEqual(['deleg.example.org 3600 NS ns.deleg.example.org']);
      expect(rr(reply.additionals?.filter((record) => record.type !== 'OPT'))).toEqual(['ns.deleg.example.org 3600 A 192.0.2.53']);
    }
  });

  it('in-zone targets of NS, MX and SRV get their addresses as additionals', async () => {
    const ns = await ask('example.org.', 'NS');
    expect(rr(ns.answers)).toEqual(apexNs);
    expect(ns.authorities).toEqual([]);
    expect(rr(ns.additionals)).toEqual(['ns1.example.org 3600 A 192.0.2.1']);
    const mx = await ask('example.org.', 'MX');
    expect(rr(mx.answers)).toEqual(['example.org 3600 MX 10 mail.example.org']);
    expect(rr(mx.additionals)).toEqual(['mail.example.org 300 A 192.0.2.25']);
    const srv = await ask('_http._tcp.example.org.', 'SRV');
    expect(rr(srv.additionals)).toEqual(['web.example.org 3600 A 192.0.2.80', 'web.example.org 3600 AAAA 2001:db8::80']);
  });

  it('zone file syntax: multi-line SOA, $INCLUDE with its own TTL, quoted TXT strings', async () => {
    expect(rr((await ask('example.org.', 'SOA')).answers)).toEqual(soa);
    expect(rr((await ask('inc.example.org.')).answers)).toEqual(['inc.example.org 7200 A 192.0.2.7']);
    const txt = await ask('txt.example.org.', 'TXT');
    expect(((txt.answers?.[0] as { data: Buffer[] }).data).map(String)).toEqual(['hello world', 'two']);
  });
});

describe('file: setup and reload', () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-file-setup-'));
  afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));
  const running: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((each) => each.close()));
  });

  function write(name: string, text: string): string {
    const file = path.join(temp, name);
    fs.writeFileSync(file, text);
    return file;
  }

  it('a bad zone file stops startup with the zone file and line', async () => {
    const bad = write('bad.db', ZONE.replace('web     IN A 192.0.2.80', 'web     IN A 192.0.2.x'));
    await expect(startEmbedded({ corefile: `example.org:0 {\n  file ${bad}\n}\n` })).rejects.toThrow(
      `${bad}:15 - Error during parsing: plugin/file: bad A record data '192.0.2.x': not an IPv4 address`,
    );
    const outside = write('outside.db', ZONE.replace('$INCLUDE extra.db', 'other.net. IN A 192.0.2.9'));
    await expect(startEmbedded({ corefile: `example.org:0 {\n  file ${outside}\n}\n` })).rejects.toThrow(`${outside}:30 - Error during parsing: plugin/file: other.net. is outside the zone example.org.`);
    const open = write('open.db', '$ORIGIN example.org.\n@ 3600 IN SOA a. b. ( 1 2 3 4 5\n');
    await expect(startEmbedded({ corefile: `example.org:0 {\n  file ${open}\n}\n` })).rejects.toThrow(`${open}:3 - Error during parsing: plugin/file: '(' without a matching ')'`);
  });

  it('Corefile errors as CoreDNS words them', async () => {
    await expect(startEmbedded({ corefile: 'example.org:0 {\n  file\n}\n' })).rejects.toThrow("Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'file'");
    await expect(startEmbedded({ corefile: `example.org:0 {\n  file ${zoneFile} {\n    fallthrough\n  }\n}\n` })).rejects.toThrow("Corefile:3 - Error during parsing: plugin/file: unknown property 'fallthrough'");
  });

  it('a missing file: a warning, SERVFAIL for the zone, as CoreDNS does', async () => {
    const lines: string[] = [];
    const missing = await startEmbedded({ corefile: 'example.org:0 {\n  file nonexist.db\n}\n', log: (line) => lines.push(line) });
    running.push(missing);
    expect(lines).toContain('[WARNING] plugin/file: Failed to open "open nonexist.db: no such file or directory": trying again in 1m0s');
    expect((await missing.resolve('www.example.org')).rcode).toBe('SERVFAIL');
  });

  it('reload: a new SOA serial replaces the zone, a broken file keeps the old one', async () => {
    const file = write('reload.db', ZONE.replace('$INCLUDE extra.db', ''));
    const lines: string[] = [];
    const embedded = await startEmbedded({ corefile: `example.org:0 {\n  file ${file} {\n    reload 100ms\n  }\n}\n`, log: (line) => lines.push(line) });
    running.push(embedded);
    const answer = async () => (await embedded.resolve('web.example.org')).answer.map((record) => record.data);
    expect(await answer()).toEqual(['192.0.2.80']);
    fs.writeFileSync(file, ZONE.replace('$INCLUDE extra.db', '').replace('192.0.2.80', '192.0.2.81'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await answer()).toEqual(['192.0.2.80']); // same serial: not reloaded
    fs.writeFileSync(file, ZONE.replace('$INCLUDE extra.db', '').replace('192.0.2.80', '192.0.2.82').replace('2024010101', '2024010102'));
    await expect.poll(answer, { timeout: 2000 }).toEqual(['192.0.2.82']);
    expect(lines).toContain(`[INFO] plugin/file: Successfully reloaded zone "example.org." in "${file}" with 2024010102 SOA serial`);
    fs.writeFileSync(file, 'garbage (');
    await expect.poll(() => lines.some((line) => line.startsWith('[ERROR] plugin/file: Failed to reload zone "example.org."')), { timeout: 2000 }).toBe(true);
    expect(await answer()).toEqual(['192.0.2.82']);
  });
});
