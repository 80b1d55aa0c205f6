// TCP abuse against the kubeadm Corefile: first 2,000 idle connections (each
// asked once, answered, then silent), then 1,200 slow senders (a 2-byte
// length, then one byte every 2 s) on top. In each phase a fresh UDP and a
// fresh TCP query must be answered; prints how long they took, how long the
// server kept the slow senders and the idle connections, and peak RSS.
//
//   npx node bench/resilience/tcp-abuse.ts [--idle 2000] [--slow 1200]

import net from 'node:net';
import { encodeQuery, measurePeak, memory, metricValue, option, probe, report, settledRss, sleep, startScenarioServer, type ScenarioServer } from './common.ts';

const IDLE = option('idle', 2000);
const SLOW = option('slow', 1200);

interface Client {
  socket: net.Socket;
  openedAt: number;
  closedAt: number | null;
}

function open(server: ScenarioServer): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.dnsPort, '127.0.0.1');
    const client: Client = { socket, openedAt: 0, closedAt: null };
    socket.once('connect', () => {
      client.openedAt = performance.now();
      resolve(client);
    });
    socket.once('error', reject);
    socket.on('close', () => (client.closedAt = performance.now()));
  });
}

async function openMany(server: ScenarioServer, count: number, setup: (client: Client) => Promise<void> | void): Promise<Client[]> {
  const clients: Client[] = [];
  for (let start = 0; start < count; start += 100) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(100, count - start) }, async () => {
      const client = await open(server);
      await setup(client);
      return client;
    })));
  }
  return clients;
}

/** Asks once and waits for the answer; the connection then stays open and silent. */
function askOnce(server: ScenarioServer) {
  return (client: Client) => new Promise<void>((resolve) => {
    const packet = encodeQuery(server.clusterName, 1);
    const frame = Buffer.alloc(packet.length + 2);
    frame.writeUInt16BE(packet.length, 0);
    packet.copy(frame, 2);
    client.socket.once('data', () => resolve());
    client.socket.once('close', () => resolve());
    client.socket.write(frame);
  });
}

function trickle(client: Client): void {
  client.socket.write(Buffer.from([0, 40]));
  const timer = setInterval(() => (client.socket.destroyed ? clearInterval(timer) : client.socket.write(Buffer.from([0]))), 2000);
  client.socket.on('error', () => {});
}

const fresh = async (server: ScenarioServer) => ({ udpMs: await probe(server, 'udp'), tcpMs: await probe(server, 'tcp') });
const openNow = (clients: Client[]) => clients.filter((client) => client.closedAt === null).length;

const server = await startScenarioServer();
try {
  const before = await settledRss(server);
  const peak = measurePeak(server.pid);
  const idle = await openMany(server, IDLE, askOnce(server));
  const idleAnsweredAt = performance.now();
  await sleep(500);
  const withIdle = await fresh(server);
  const idleHeld = openNow(idle);

  const slow = await openMany(server, SLOW, trickle);
  await sleep(500);
  const withSlow = await fresh(server);
  const slowOpenAfter1s = openNow(slow);
  while (openNow(slow) > 0 && performance.now() - slow[0]!.openedAt < 30_000) await sleep(100);
  const slowClosedWithinMs = Math.max(...slow.map((client) => (client.closedAt ?? Infinity) - client.openedAt));
  while (openNow(idle) > 0 && performance.now() - idleAnsweredAt < 30_000) await sleep(100);
  const idleClosedAfterAnswerMs = Math.max(...idle.map((client) => (client.closedAt ?? Infinity) - idleAnsweredAt));
  const peakRss = peak.stop();
  report({
    scenario: 'tcp-abuse',
    idle: IDLE,
    slow: SLOW,
    rssBeforeMiB: before,
    peakRssMiB: peakRss,
    rssAfterMiB: memory(server.pid).rss,
    idleHeld,
    freshUdpWithIdleMs: withIdle.udpMs,
    freshTcpWithIdleMs: withIdle.tcpMs,
    freshUdpWithSlowMs: withSlow.udpMs,
    freshTcpWithSlowMs: withSlow.tcpMs,
    slowOpenAfter1s,
    slowClosedWithinMs,
    idleClosedAfterAnswerMs,
    evicted: await metricValue(server, 'clusterdns_tcp_connections_closed_total', 'reason="evicted"') || 0,
  });
  for (const client of [...idle, ...slow]) client.socket.destroy();
} finally {
  await server.stop();
}
