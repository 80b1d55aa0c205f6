// Hostile input against the kubeadm Corefile: a flood of mutated UDP
// queries (bit flips, truncation, random counts, compression loops, oversize
// labels, EDNS garbage, other opcodes and classes) and bad TCP streams (bad
// length prefixes, partial messages, a length then silence). A probe checks
// a normal answer after every batch. Prints packets per second, failed
// probes, whether the server survived, and peak RSS.
//
//   npx node bench/resilience/mutation-flood.ts [--packets 200000] [--streams 2000]
//
// The run is --packets 1000000 (about a minute here).

import dgram from 'node:dgram';
import net from 'node:net';
import { encodeQuery, measurePeak, memory, option, probe, report, settledRss, sleep, startScenarioServer, type ScenarioServer } from './common.ts';

const PACKETS = option('packets', 200_000);
const STREAMS = option('streams', 2000);
const BATCH = 2000;

/** A small seeded generator, so a run can be repeated. */
let seed = 12345;
const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const randomInt = (below: number) => Math.floor(random() * below);

function withEdns(packet: Buffer): Buffer {
  const opt = Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
  const out = Buffer.concat([packet, opt]);
  out.writeUInt16BE(1, 10);
  return out;
}

/** One mutated query, from `seedQueries`. */
function mutate(seedQueries: Buffer[]): Buffer {
  const base = Buffer.from(seedQueries[randomInt(seedQueries.length)]!);
  switch (randomInt(9)) {
    case 0: { // bit flips
      for (let i = 0, flips = 1 + randomInt(4); i < flips; i++) base[randomInt(base.length)]! ^= 1 << randomInt(8);
      return base;
    }
    case 1: // truncation
      return base.subarray(0, randomInt(base.length));
    case 2: { // section counts
      base.writeUInt16BE(randomInt(65536), 4 + 2 * randomInt(4));
      return base;
    }
    case 3: { // a compression pointer to itself in the question
      const looped = Buffer.concat([base.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
      return looped;
    }
    case 4: { // an oversize label and name
      const label = Buffer.alloc(64 + randomInt(192), 0x61);
      label[0] = label.length - 1;
      return Buffer.concat([base.subarray(0, 12), label, label, Buffer.from([0, 0, 1, 0, 1])]);
    }
    case 5: { // EDNS with garbage options
      const edns = withEdns(base);
      const garbage = Buffer.alloc(randomInt(64));
      for (let i = 0; i < garbage.length; i++) garbage[i] = randomInt(256);
      const out = Buffer.concat([edns, garbage]);
      out.writeUInt16BE(garbage.length, edns.length - 2);
      return out;
    }
    case 6: { // opcode
      base[2] = (base[2]! & 0x87) | (randomInt(16) << 3);
      return base;
    }
    case 7: { // class and type
      base.writeUInt16BE(randomInt(65536), base.length - 2);
      base.writeUInt16BE(randomInt(65536), base.length - 4);
      return base;
    }
    default: // random bytes
      return Buffer.from(Array.from({ length: randomInt(600) }, () => randomInt(256)));
  }
}

/** One bad TCP stream: a bad length prefix, a partial message, or a length then silence. */
function badStream(server: ScenarioServer, query: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(server.dnsPort, '127.0.0.1');
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    socket.on('connect', () => {
      const kind = randomInt(4);
      if (kind === 0) socket.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
      else if (kind === 1) socket.write(Buffer.concat([Buffer.from([0, query.length]), query.subarray(0, query.length - 3)]));
      else if (kind === 2) socket.write(Buffer.from([0, query.length]));
      else socket.write(Buffer.concat([Buffer.from([0, 3]), Buffer.from([1, 2, 3]), Buffer.from([0, query.length]), query]));
      // The server closes each within its read timeout; do not wait longer than that.
      setTimeout(() => socket.destroy(), 5000);
    });
  });
}

const server = await startScenarioServer();
try {
  const before = await settledRss(server);
  const peak = measurePeak(server.pid);
  const names = [server.clusterName, 'kubernetes.default.svc.cluster.local', 'example.com', '10.96.0.10.in-addr.arpa'];
  const seeds = names.flatMap((name) => [encodeQuery(name, 1), withEdns(encodeQuery(name, 2, 28))]);
  const streams = Promise.all(Array.from({ length: STREAMS }, (_, i) => sleep(i * 2).then(() => badStream(server, seeds[0]!))));

  const socket = dgram.createSocket('udp4');
  socket.on('message', () => {});
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  let failedProbes = 0;
  let probes = 0;
  const started = performance.now();
  for (let sent = 0; sent < PACKETS; sent += BATCH) {
    for (let i = 0; i < BATCH; i++) {
      socket.send(mutate(seeds), server.dnsPort, '127.0.0.1');
      if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve));
    }
    probes++;
    if (Number.isNaN(await probe(server, 'udp', 2000))) failedProbes++;
  }
  const seconds = (performance.now() - started) / 1000;
  await streams;
  socket.close();
  const tcpProbe = await probe(server, 'tcp');
  const peakRss = peak.stop();
  await sleep(5000);
  report({
    scenario: 'mutation-flood',
    packets: PACKETS,
    streams: STREAMS,
    rssBeforeMiB: before,
    peakRssMiB: peakRss,
    rssAfterMiB: memory(server.pid).rss,
    packetsPerSecond: PACKETS / seconds,
    probes,
    failedProbes,
    tcpAnsweredAfter: Number.isNaN(tcpProbe) ? 'no' : 'yes',
    survived: server.child.exitCode === null ? 'yes' : 'no',
  });
} finally {
  await server.stop();
}
