// The serving core over real sockets: whoami over UDP and TCP, zone selection,
// registry order, and the server's own answers (CF-13, CF-14, CF-15, CF-20, WIRE-5/6).

import { afterEach, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { setLogSink } from '../src/log.ts';
import { decodeReply, queryTcp, queryUdp, sendUdp, startServer, type RunningServer } from './support/dns.ts';

let running: RunningServer | null = null;
let restoreLog: ((line: string) => void) | null = null;
afterEach(async () => {
  await running?.stop();
  running = null;
  if (restoreLog) setLogSink(restoreLog);
  restoreLog = null;
});

function captureLog(): string[] {
  const lines: string[] = [];
  restoreLog = setLogSink((line) => lines.push(line));
  return lines;
}

describe('whoami over UDP and TCP (WHOAMI-1)', () => {
  it('answers with the client address and port in the additional section over UDP', async () => {
    running = await startServer('. {\n whoami\n}\n');
    const reply = await queryUdp(running.port, 'example.org');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flag_aa).toBe(true);
    expect(reply.flag_ra).toBe(false);
    expect(reply.answers).toEqual([]);
    const [address, srv] = reply.additionals!;
    expect(address).toMatchObject({ name: 'example.org', type: 'A', ttl: 0, data: '127.0.0.1' });
    expect(srv).toMatchObject({ name: '_udp.example.org', type: 'SRV', ttl: 0 });
    expect((srv as { data: { port: number } }).data.port).toBeGreaterThan(0);
  });

  it('answers over TCP with the _tcp SRV', async () => {
    running = await startServer('. {\n whoami\n}\n');
    const reply = await queryTcp(running.port, 'example.org');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.additionals![1]).toMatchObject({ name: '_tcp.example.org', type: 'SRV' });
  });

  it('WIRE-7: echoes the question byte for byte and owner names keep the query case', async () => {
    running = await startServer('. {\n whoami\n}\n');
    const reply = await queryUdp(running.port, 'WhoAmI.Example.ORG', { id: 4242 });
    expect(reply.id).toBe(4242);
    expect(reply.questions![0]!.name).toBe('WhoAmI.Example.ORG');
    expect(reply.additionals![0]!.name).toBe('WhoAmI.Example.ORG');
    expect(reply.flag_rd).toBe(true);
  });
});

describe('zone selection (CF-13)', () => {
  const corefile = `
example.org {
    whoami
}
sub.example.org {
    errors
}
`;
  it('picks the block with the longest matching zone on a shared port', async () => {
    running = await startServer(corefile);
    const log = captureLog();
    // sub.example.org's block has only `errors`: the query falls off its chain (SERVFAIL, CF-20).
    const deep = await queryUdp(running.port, 'a.sub.example.org');
    expect(deep.rcode).toBe('SERVFAIL');
    expect(log.some((line) => line.includes('[ERROR] plugin/errors: 2 a.sub.example.org. A: no next plugin found'))).toBe(true);
    const shallow = await queryUdp(running.port, 'other.example.org');
    expect(shallow.rcode).toBe('NOERROR');
  });

  it('refuses names under no zone of the listener', async () => {
    running = await startServer(corefile);
    const reply = await queryUdp(running.port, 'example.net');
    expect(reply.rcode).toBe('REFUSED');
    expect(reply.flag_aa).toBe(false);
  });

  it('the root zone matches everything', async () => {
    running = await startServer('. {\n whoami\n}\nexample.org {\n errors\n}\n');
    expect((await queryUdp(running.port, 'anything.test')).rcode).toBe('NOERROR');
    expect((await queryUdp(running.port, 'x.example.org')).rcode).toBe('SERVFAIL');
  });

  it('CF-14: a block with no plugins answers REFUSED', async () => {
    running = await startServer('example.org {\n}\n. {\n whoami\n}\n');
    expect((await queryUdp(running.port, 'www.example.org')).rcode).toBe('REFUSED');
    expect((await queryUdp(running.port, 'www.example.net')).rcode).toBe('NOERROR');
  });

  it('CF-12: several keys in one block share its plugins', async () => {
    running = await startServer('example.org example.net {\n whoami\n}\n');
    expect((await queryUdp(running.port, 'a.example.org')).rcode).toBe('NOERROR');
    expect((await queryUdp(running.port, 'a.example.net')).rcode).toBe('NOERROR');
    expect((await queryUdp(running.port, 'a.example.com')).rcode).toBe('REFUSED');
  });
});

describe('chain order (CF-15)', () => {
  it('runs plugins in registry order, not Corefile order: log still sees whoami answers', async () => {
    running = await startServer('. {\n whoami\n log\n}\n');
    const log = captureLog();
    await queryUdp(running.port, 'order.example', { id: 7 });
    expect(log.some((line) => /^\[INFO\] 127\.0\.0\.1:\d+ - 7 "A IN order\.example\. udp \d+ false 512" NOERROR qr,aa,rd \d+ [\d.]+s$/.test(line))).toBe(true);
  });
});

describe('classes (WIRE-6)', () => {
  it('refuses CH queries when no plugin serves other classes', async () => {
    running = await startServer('. {\n whoami\n}\n');
    const packet = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] });
    
    const reply = decodeReply((await sendUdp(running.port, packet))!);
    expect(reply.rcode).toBe('REFUSED');
  });
});

describe('bind (CF-23)', () => {
  it('listens only on the bound address and labels the listener with it', async () => {
    running = await startServer('. {\n bind 127.0.0.1\n whoami\n}\n');
    expect(running.server.listeners().map((listener) => listener.label)).toEqual(['dns://127.0.0.1:0']);
    expect((await queryUdp(running.port, 'example.org')).rcode).toBe('NOERROR');
    expect((await queryTcp(running.port, 'example.org')).rcode).toBe('NOERROR');
    await expect(queryUdp(running.port, 'example.org', { host: '::1', timeoutMs: 300 })).rejects.toThrow();
  });

  it('serves IPv6 clients with an AAAA in whoami', async () => {
    running = await startServer('. {\n bind ::1\n whoami\n}\n');
    const reply = await queryUdp(running.port, 'example.org', { host: '::1' });
    expect(reply.additionals![0]).toMatchObject({ type: 'AAAA', data: '::1' });
  });

  it('CF-14: a zone served both bound and unbound is a setup error', async () => {
    await expect(startServer('example.org {\n bind 127.0.0.1\n whoami\n}\nexample.org:0 {\n whoami\n}\n')).rejects.toThrow(/Corefile:\d+ - Error during parsing: /);
  });

  it('an address that is neither an IP nor an interface is a setup error naming the line', async () => {
    await expect(startServer('. {\n whoami\n bind nosuchinterface0\n}\n')).rejects.toThrow(
      "Corefile:3 - Error during parsing: plugin/bind: 'nosuchinterface0' is neither an IP address nor a network interface on this host",
    );
  });
});
