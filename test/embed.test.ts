// The embedding API (src/index.ts): a server started by a program, fed
// Kubernetes objects from memory, extended with the program's own plugin,
// reloaded and closed. Queries go over real UDP/TCP sockets unless the test
// is about resolve().

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createCluster, definePlugin, emptyReply, Rcode, ReplyFlag, startServer, Type, Class, type ClusterDnsServer } from '../src/index.ts';
import { queryTcp, queryUdp } from './support/dns.ts';

const running: ClusterDnsServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function start(options: Parameters<typeof startServer>[0]): Promise<ClusterDnsServer> {
  const server = await startServer({ dnsPort: 0, ...options });
  running.push(server);
  return server;
}

const WEB = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec:
  clusterIP: 10.96.7.7
  ports: [{ name: http, port: 80, protocol: TCP }]
`;

const MEMORY_COREFILE = `.:0 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        memory
    }
    cache 30
}
`;

function udpPort(server: ClusterDnsServer): number {
  return server.listeners.find((listener) => listener.transport === 'udp')!.port;
}

describe('startServer', () => {
  it('reports each listener with the port the kernel chose for port 0, UDP and TCP', async () => {
    const server = await start({ corefile: '.:0 {\n    whoami\n}\n' });
    expect(server.listeners.map(({ transport }) => transport).sort()).toEqual(['tcp', 'udp']);
    const [udp, tcp] = server.listeners;
    expect(udp!.port).toBeGreaterThan(0);
    expect(tcp!.port).toBe(udp!.port);
    expect(udp!.zones).toEqual(['.']);
    const reply = await queryTcp(tcp!.port, 'who.example.');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.additionals?.[0]).toMatchObject({ type: 'A', data: '127.0.0.1' });
  });

  it('reads a Corefile from a path, and rejects a bad one with file:line, binding nothing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-embed-'));
    const file = path.join(dir, 'Corefile');
    fs.writeFileSync(file, '.:0 {\n    whoami\n    nosuchplugin\n}\n');
    await expect(startServer({ corefilePath: file })).rejects.toThrow(`${file}:3 - Error during parsing: Unknown directive 'nosuchplugin'`);
    fs.writeFileSync(file, '.:0 {\n    whoami\n}\n');
    const server = await start({ corefilePath: file });
    expect((await queryUdp(udpPort(server), 'a.example.')).rcode).toBe('NOERROR');
  });

  it('a Corefile with no server blocks is rejected (the command serves CoreDNS\'s default instead)', async () => {
    await expect(startServer({ corefile: '# nothing here\n' })).rejects.toThrow('the Corefile has no server blocks: nothing to serve');
  });

  it('is quiet by default; a log function receives the lines the command would print', async () => {
    const lines: string[] = [];
    const server = await start({ corefile: '.:0 {\n    log\n    whoami\n}\n', log: (line) => lines.push(line) });
    await queryUdp(udpPort(server), 'logged.example.');
    expect(lines.some((line) => line.startsWith('[INFO] 127.0.0.1:') && line.includes('"A IN logged.example. udp'))).toBe(true);
  });
});

describe('in-memory Kubernetes source (memory)', () => {
  it('K8S-3: an applied Service is answered by the next query, a deleted one is NXDOMAIN at once, through the cache', async () => {
    const cluster = createCluster();
    const server = await start({ corefile: MEMORY_COREFILE, clusters: { default: cluster } });
    const port = udpPort(server);
    const before = await queryUdp(port, 'web.demo.svc.cluster.local.');
    expect(before.rcode).toBe('NXDOMAIN');

    cluster.apply(WEB);
    const created = await queryUdp(port, 'web.demo.svc.cluster.local.');
    expect(created.rcode).toBe('NOERROR');
    expect(created.answers).toEqual([expect.objectContaining({ name: 'web.demo.svc.cluster.local', type: 'A', ttl: 5, data: '10.96.7.7' })]);

    cluster.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'demo' }, spec: { clusterIP: '10.96.8.8' } });
    expect((await queryUdp(port, 'web.demo.svc.cluster.local.')).answers?.[0]).toMatchObject({ data: '10.96.8.8' });

    cluster.delete({ kind: 'Service', metadata: { name: 'web', namespace: 'demo' } });
    const deleted = await queryUdp(port, 'web.demo.svc.cluster.local.');
    expect(deleted.rcode).toBe('NXDOMAIN');
    expect(deleted.authorities?.[0]).toMatchObject({ type: 'SOA', name: 'cluster.local' });
  });

  it('K8S-6: a selector Service gets endpoints from the Pods the program applies, as the endpoint controller would', async () => {
    const cluster = createCluster();
    const server = await start({ corefile: MEMORY_COREFILE, clusters: { default: cluster } });
    cluster.apply([
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'demo' }, spec: { clusterIP: 'None', selector: { app: 'db' } } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'db-a', namespace: 'demo', labels: { app: 'db' } }, status: { podIP: '10.244.0.5' } },
    ]);
    const answer = await server.resolve('db.demo.svc.cluster.local', 'A');
    expect(answer.rcode).toBe('NOERROR');
    expect(answer.answer.map((record) => record.data)).toEqual(['10.244.0.5']);
    cluster.delete('kind: Pod\nmetadata: {name: db-a, namespace: demo}\n');
    expect((await server.resolve('db.demo.svc.cluster.local', 'A')).answer).toEqual([]);
  });

  it('a bad object is rejected with where it was, and changes nothing', async () => {
    const cluster = createCluster(WEB);
    const server = await start({ corefile: MEMORY_COREFILE, clusters: { default: cluster } });
    expect(() => cluster.apply({ kind: 'Service', metadata: { namespace: 'demo' } } as never)).toThrow(/apply\(\): object 1: Service: metadata.name: missing/);
    expect(() => cluster.apply('kind: Service\n  bad: [indent')).toThrow(/apply\(\): document 1: invalid YAML/);
    expect((await server.resolve('web.demo.svc.cluster.local')).answer[0]).toMatchObject({ data: '10.96.7.7' });
    expect(cluster.list()).toHaveLength(1);
  });

  it('`memory NAME` names a cluster the program gave; an unknown name is a setup error with file:line', async () => {
    const corefile = '.:0 {\n    kubernetes cluster.local {\n        memory staging\n    }\n}\n';
    await expect(startServer({ corefile, dnsPort: 0, clusters: { default: createCluster() } })).rejects.toThrow(
      "Corefile:3 - Error during parsing: plugin/kubernetes: no in-memory cluster named 'staging'",
    );
    const server = await start({ corefile, clusters: { staging: createCluster(WEB) } });
    expect((await server.resolve('web.demo.svc.cluster.local')).rcode).toBe('NOERROR');
  });
});

describe('programmatic plugins', () => {
  /** Answers A 192.0.2.1 for every name, authoritatively. */
  const fixed = definePlugin<{ address: string }>({
    name: 'fixed',
    parse: (directives) => ({ address: directives[0]!.args[0]?.text ?? '192.0.2.1' }),
    create: (config) => ({
      serve: (request) => ({
        ...emptyReply(Rcode.NOERROR, ReplyFlag.AA),
        answer: [{ name: request.query.qname, type: Type.A, class: Class.IN, ttl: 60, data: config.address }],
      }),
    }),
  });
  const corefile = '.:0 {\n    fixed 192.0.2.9\n    kubernetes cluster.local {\n        memory\n    }\n}\n';

  it('CF-15: the program chooses the place in the chain, whatever the Corefile order', async () => {
    const clusters = { default: createCluster(WEB) };
    const first = await start({ corefile, clusters, plugins: [{ plugin: fixed, before: 'kubernetes' }] });
    expect((await queryUdp(udpPort(first), 'web.demo.svc.cluster.local.')).answers?.[0]).toMatchObject({ data: '192.0.2.9', ttl: 60 });

    const after = await start({ corefile, clusters, plugins: [{ plugin: fixed, after: 'kubernetes' }] });
    // kubernetes answers its zone; the plugin behind it only sees what falls off the end of kubernetes's zone.
    expect((await queryUdp(udpPort(after), 'web.demo.svc.cluster.local.')).answers?.[0]).toMatchObject({ data: '10.96.7.7' });
    expect((await queryUdp(udpPort(after), 'www.example.org.')).answers?.[0]).toMatchObject({ data: '192.0.2.9' });
  });

  it('a Corefile naming a plugin the program did not register fails as an unknown directive', async () => {
    await expect(startServer({ corefile, dnsPort: 0, clusters: { default: createCluster() } })).rejects.toThrow("Unknown directive 'fixed'");
    await expect(startServer({ corefile, plugins: [{ plugin: fixed, before: 'nosuch' }] })).rejects.toThrow("no such plugin in the chain order");
  });
});

describe('two servers in one process', () => {
  it('have their own ports, data and log lines; closing one leaves the other serving', async () => {
    const linesA: string[] = [];
    const linesB: string[] = [];
    const a = await start({ corefile: MEMORY_COREFILE.replace('    cache 30', '    log'), clusters: { default: createCluster(WEB) }, log: (line) => linesA.push(line) });
    const b = await start({ corefile: MEMORY_COREFILE.replace('    cache 30', '    log'), clusters: { default: createCluster() }, log: (line) => linesB.push(line) });
    expect(udpPort(a)).not.toBe(udpPort(b));
    expect((await queryUdp(udpPort(a), 'web.demo.svc.cluster.local.')).rcode).toBe('NOERROR');
    expect((await queryUdp(udpPort(b), 'web.demo.svc.cluster.local.')).rcode).toBe('NXDOMAIN');
    expect(linesA.filter((line) => line.includes('web.demo.svc.cluster.local.'))).toHaveLength(1);
    expect(linesB.filter((line) => line.includes('web.demo.svc.cluster.local.'))).toHaveLength(1);
    expect(linesB.some((line) => line.includes('NXDOMAIN'))).toBe(true);
    await a.close();
    running.splice(running.indexOf(a), 1);
    expect((await queryUdp(udpPort(b), 'web.demo.svc.cluster.local.')).rcode).toBe('NXDOMAIN');
  });
});

describe('reload', () => {
  it('RELOAD-4: a bad Corefile rejects with file:line and the old one keeps serving; a good one takes over the same port', async () => {
    const server = await start({ corefile: '.:0 {\n    whoami\n}\n' });
    const port = udpPort(server);
    await expect(server.reload('.:0 {\n    whoami\n    forward . nonsense://x\n}\n')).rejects.toThrow(/^Corefile:3 - /);
    expect((await queryUdp(port, 'still.example.')).additionals?.[0]).toMatchObject({ type: 'A' });
    await expect(server.reload('.:0 {\n  whoami\n  forward . nonsense://x\n}\n')).rejects.toThrow(/^Corefile:3 - /);

    const cluster = createCluster(WEB);
    const other = await start({ corefile: MEMORY_COREFILE, clusters: { default: cluster } });
    await other.reload(MEMORY_COREFILE.replace('cache 30', 'cache 60'));
    expect((await queryUdp(udpPort(other), 'web.demo.svc.cluster.local.')).answers?.[0]).toMatchObject({ data: '10.96.7.7' });
  });
});

describe('resolve', () => {
  it('runs the chain without a socket, as a query from the given client', async () => {
    const server = await start({ corefile: '.:0 {\n    whoami\n}\n' });
    const reply = await server.resolve('me.example', 'A', { from: '10.1.2.3', transport: 'tcp' });
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.authoritative).toBe(true);
    expect(reply.additional).toEqual([
      expect.objectContaining({ type: 'A', data: '10.1.2.3' }),
      expect.objectContaining({ type: 'SRV', name: '_tcp.me.example' }),
    ]);
  });
});

describe('close', () => {
  it('releases every socket, timer and watch: a program that closes its server exits by itself', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-embed-'));
    const script = path.join(dir, 'program.ts');
    const api = new URL('../src/index.ts', import.meta.url).href;
    fs.writeFileSync(script, `
import { createCluster, startServer } from ${JSON.stringify(api)};
const cluster = createCluster(${JSON.stringify(WEB)});
const server = await startServer({
  corefile: '.:0 {\\n  kubernetes cluster.local { \\n    memory\\n  }\\n  cache 30\\n  reload 2s\\n  health 127.0.0.1:0 { \\n    lameduck 200ms\\n  }\\n  ready 127.0.0.1:0\\n  prometheus 127.0.0.1:0\\n  loadbalance\\n  errors\\n}\\n',
  clusters: { default: cluster },
});
const reply = await server.resolve('web.demo.svc.cluster.local');
console.log(reply.rcode, reply.answer[0].data);
await server.close();
console.log('closed');
`);
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    expect(output).toBe('NOERROR 10.96.7.7\nclosed\n');
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
