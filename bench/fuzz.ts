// Fuzzing the DNS server from outside, as an attacker would: seeded mutations
// of valid queries over UDP, and malformed TCP streams, against the clusterdns
// command serving the example cluster (kubernetes from manifests, cache,
// hosts, forward to a loopback upstream, rrl in report-only). After every
// batch the server must still answer known queries correctly over UDP and
// TCP, and every reply it sent to a mutated packet must parse (dns-packet)
// with the ID of a packet that was sent.
//
// test/fuzz.test.ts runs a CI-sized round; the long run is this script:
//
//   npx node bench/fuzz.ts [--packets 1000000] [--tcp 2000] [--seed N]
//
// It prints the seed, the counts, the time, the server's RSS (start, peak,
// end) and every failure with the packet in hex; it exits 1 on any failure.

import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket, { type Packet } from 'dns-packet';
import { sendUdp } from '../test/support/dns.ts';
import { TestUpstream } from '../test/support/upstreams.ts';
import { random as seededRandom } from './synthetic.ts';
import { freePort, rssBytes, stop } from './tools.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (random: Random, low: number, high: number): number => low + Math.floor(random() * (high - low + 1));

/** Known answers the server must keep giving: name, type, expected rcode and answer data. */
export const PROBES: readonly { name: string; type: 'A'; rcode: string; answers: string[] }[] = [
  { name: 'web.demo.svc.cluster.local', type: 'A', rcode: 'NOERROR', answers: ['10.96.100.10'] },
  { name: 'static.example', type: 'A', rcode: 'NOERROR', answers: ['10.1.1.1'] },
  { name: 'nope.demo.svc.cluster.local', type: 'A', rcode: 'NXDOMAIN', answers: [] },
  { name: 'fwd.example', type: 'A', rcode: 'NOERROR', answers: ['10.9.9.9'] },
];

/** The Corefile under fuzz: the example cluster, cache, hosts, forward, rrl counting only, and a second block. */
export function fuzzCorefile(port: number, upstream: string): string {
  return `.:${port} {
    rrl {
        responses-per-second 1000
        requests-per-second 1000
        slip-ratio 2
        report-only
    }
    cache 30
    hosts {
        10.1.1.1 static.example
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests ${path.join(root, 'examples/cluster')}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . ${upstream}
    loadbalance
}
example.org:${port} {
    whoami
}
`;
}

const NAMES = [
  'web.demo.svc.cluster.local', 'db.demo.svc.cluster.local', '_postgres._tcp.db.demo.svc.cluster.local',
  'db-0.db.demo.svc.cluster.local', 'search.demo.svc.cluster.local', 'dual.demo.svc.cluster.local',
  'nope.demo.svc.cluster.local', '10.100.96.10.in-addr.arpa', 'demo.svc.cluster.local', 'cluster.local',
  '1-2-3-4.demo.pod.cluster.local', 'static.example', 'fwd.example', 'example.org', 'x.example.org', '.',
  'dns-version.cluster.local', 'a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.example',
];
const TYPES = ['A', 'AAAA', 'SRV', 'PTR', 'TXT', 'NS', 'SOA', 'CNAME', 'MX', 'ANY', 'AXFR', 'IXFR', 'DS', 'DNSKEY', 'HTTPS', 'NULL'];

/** A valid query to start from: a name and type of the cluster, maybe EDNS with options. */
export function validQuery(random: Random, id: number): Buffer {
  const packet: Packet = {
    type: 'query',
    id,
    flags: random() < 0.8 ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ name: pick(random, NAMES), type: pick(random, TYPES) as 'A', class: random() < 0.9 ? 'IN' : pick(random, ['CH', 'HS', 'ANY']) as 'IN' }],
  };
  if (random() < 0.5) {
    const options: { code: number; data: Buffer }[] = [];
    if (random() < 0.3) options.push({ code: 10, data: randomBytes(random, 8) }); // cookie
    if (random() < 0.3) options.push({ code: 8, data: Buffer.from([0, 1, 24, 0, 10, 1, 2]) }); // client subnet
    if (random() < 0.2) options.push({ code: 12, data: Buffer.alloc(between(random, 0, 64)) }); // padding
    packet.additionals = [{
      type: 'OPT', name: '.', udpPayloadSize: pick(random, [512, 1232, 4096, 65535, 0, 100]),
      extendedRcode: 0, ednsVersion: 0, flags: random() < 0.3 ? dnsPacket.DNSSEC_OK : 0, options,
    } as never];
  }
  return dnsPacket.encode(packet);
}

function randomBytes(random: Random, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

const INTERESTING = [0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xc0, 0xff];

/** One mutation of a packet; returns the new packet. */
type Mutator = (random: Random, packet: Buffer) => Buffer;

const mutators: Record<string, Mutator> = {
  flipBits(random, packet) {
    const out = Buffer.from(packet);
    for (let n = between(random, 1, 4); n > 0 && out.length > 0; n--) out[Math.floor(random() * out.length)]! ^= 1 << between(random, 0, 7);
    return out;
  },
  interestingByte(random, packet) {
    const out = Buffer.from(packet);
    if (out.length > 0) out[Math.floor(random() * out.length)] = pick(random, INTERESTING);
    return out;
  },
  truncate(random, packet) {
    return packet.subarray(0, Math.floor(random() * packet.length));
  },
  headerCounts(random, packet) {
    if (packet.length < 12) return packet;
    const out = Buffer.from(packet);
    out.writeUInt16BE(pick(random, [0, 1, 2, 3, 0x7fff, 0xffff, between(random, 0, 0xffff)]), pick(random, [4, 6, 8, 10]));
    return out;
  },
  opcodeAndFlags(random, packet) {
    if (packet.length < 4) return packet;
    const out = Buffer.from(packet);
    // Opcode (any of 16), sometimes QR, TC, Z, AD, CD, and a random RCODE.
    out[2] = (out[2]! & 0x81) | (between(random, 0, 15) << 3) | (random() < 0.2 ? 0x02 : 0) | (random() < 0.1 ? 0x80 : 0);
    out[3] = Math.floor(random() * 256);
    return out;
  },
  typeAndClass(random, packet) {
    const end = questionEnd(packet);
    if (end < 0) return packet;
    const out = Buffer.from(packet);
    if (random() < 0.5) out.writeUInt16BE(pick(random, [0, 41, 250, 251, 252, 253, 254, 255, 0xffff, between(random, 0, 0xffff)]), end - 4);
    else out.writeUInt16BE(pick(random, [0, 2, 3, 4, 254, 255, 0xffff, between(random, 0, 0xffff)]), end - 2);
    return out;
  },
  compressionPointer(random, packet) {
    if (packet.length < 14) return packet;
    const out = Buffer.from(packet);
    // A pointer in the question (to itself, forward, backward, past the end) or a loop in an added record.
    const at = between(random, 12, out.length - 2);
    const target = pick(random, [at, 12, at + 2, out.length, 0x3fff, between(random, 0, out.length)]);
    out.writeUInt16BE(0xc000 | (target & 0x3fff), at);
    if (random() < 0.5) {
      // An extra record whose owner points at itself, counted in ARCOUNT.
      const loop = Buffer.from([0xc0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
      loop.writeUInt16BE(0xc000 | (out.length & 0x3fff), 0);
      out.writeUInt16BE((out.readUInt16BE(10) + 1) & 0xffff, 10);
      return Buffer.concat([out, loop]);
    }
    return out;
  },
  oversizeLabel(random, packet) {
    if (packet.length < 12) return packet;
    // Replace the question with labels of 63..255 bytes, or a name past 255 bytes.
    const labels: Buffer[] = [];
    if (random() < 0.5) {
      const length = pick(random, [63, 64, 127, 191, 255]);
      labels.push(Buffer.concat([Buffer.from([length]), Buffer.alloc(Math.min(length, 63 + between(random, 0, 192)), 0x61)]));
    } else {
      for (let i = between(random, 5, 9); i > 0; i--) labels.push(Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x62)]));
    }
    return Buffer.concat([packet.subarray(0, 12), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  },
  ednsGarbage(random, packet) {
    if (packet.length < 12) return packet;
    // An OPT with random options, wrong lengths, a non-root owner, a version, or a second OPT.
    const options = randomBytes(random, between(random, 0, 40));
    const opt = Buffer.alloc(11);
    opt[0] = random() < 0.1 ? 1 : 0;
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(pick(random, [0, 1, 511, 512, 4096, 65535]), 3);
    opt[5] = random() < 0.2 ? Math.floor(random() * 256) : 0;
    opt[6] = random() < 0.2 ? between(random, 1, 255) : 0;
    opt.writeUInt16BE(random() < 0.3 ? 0x8000 : Math.floor(random() * 0x10000), 7);
    opt.writeUInt16BE(random() < 0.7 ? options.length : between(random, 0, 0xffff), 9);
    const out = Buffer.concat([packet, opt, options, random() < 0.2 ? opt : Buffer.alloc(0)]);
    out.writeUInt16BE(between(random, 1, 3), 10);
    return out;
  },
  appendGarbage(random, packet) {
    return Buffer.concat([packet, randomBytes(random, between(random, 1, 64))]);
  },
  insertBytes(random, packet) {
    const at = Math.floor(random() * (packet.length + 1));
    return Buffer.concat([packet.subarray(0, at), randomBytes(random, between(random, 1, 8)), packet.subarray(at)]);
  },
  splice(random, packet) {
    const other = validQuery(random, 0);
    const at = Math.floor(random() * packet.length);
    return Buffer.concat([packet.subarray(0, at), other.subarray(Math.floor(random() * other.length))]);
  },
  randomPacket(random) {
    return randomBytes(random, between(random, 0, 600));
  },
};
const MUTATORS = Object.keys(mutators);

/** The offset after the first question, or -1 when it cannot be walked without pointers. */
function questionEnd(packet: Buffer): number {
  let offset = 12;
  while (offset < packet.length) {
    const length = packet[offset]!;
    if (length === 0) return offset + 5 <= packet.length ? offset + 5 : -1;
    if (length > 63) return -1;
    offset += length + 1;
  }
  return -1;
}

export interface Mutated {
  packet: Buffer;
  mutations: string[];
}

/** A valid query with 1 to 4 mutations; its ID (when it has one) is `id`. */
export function mutatedQuery(random: Random, id: number): Mutated {
  let packet = validQuery(random, id);
  const mutations: string[] = [];
  for (let n = between(random, 1, 4); n > 0; n--) {
    const name = pick(random, MUTATORS);
    mutations.push(name);
    packet = mutators[name]!(random, packet);
  }
  // The ID is ours, so each reply can be matched to its packet.
  if (packet.length >= 2) packet.writeUInt16BE(id, 0);
  return { packet, mutations };
}

export interface Failure {
  what: string;
  packet?: string;
  mutations?: string[];
}

export interface FuzzOptions {
  host: string;
  port: number;
  packets: number;
  tcpStreams: number;
  seed: number;
  batch?: number;
  /** Whether the server process still runs. */
  alive: () => boolean;
  /** Called after each batch (memory sampling, clean-up). */
  afterBatch?: (sent: number) => void;
  log?: (line: string) => void;
}

export interface FuzzResult {
  seed: number;
  sent: number;
  replies: number;
  byRcode: Record<string, number>;
  tcpStreams: number;
  tcpReplies: number;
  probes: number;
  failures: Failure[];
  seconds: number;
}

/** Resolves after `ms`. */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Packets sent and not yet answered, by ID. IDs are reused after 65536
 * packets, and a late reply (a forward timeout) may come for the earlier
 * packet of an ID after the later one was answered: a reply is matched to the
 * unanswered packet of its ID whose question it echoes.
 */
export class InFlight {
  private readonly byId = new Map<number, Mutated[]>();

  add(id: number, query: Mutated): void {
    const waiting = this.byId.get(id);
    if (!waiting) this.byId.set(id, [query]);
    // A packet never answered (dropped, as it should be) would otherwise stay forever.
    else if (waiting.push(query) > 4) waiting.shift();
  }

  /** Takes the unanswered packet of this ID that `reply` answers; undefined when there is none. */
  answer(id: number, reply: Buffer): Mutated | undefined {
    const waiting = this.byId.get(id);
    if (!waiting || waiting.length === 0) return undefined;
    const question = echoedQuestion(reply);
    let index = question === null ? -1 : waiting.findIndex(({ packet }) => packet.subarray(12, 12 + question.length).equals(question));
    if (index < 0) index = waiting.length - 1;
    return waiting.splice(index, 1)[0];
  }

  peek(id: number): Mutated | undefined {
    return this.byId.get(id)?.at(-1);
  }
}

/** The question section of a reply that has one (uncompressed, as it is echoed), or null. */
function echoedQuestion(reply: Buffer): Buffer | null {
  if (reply.length < 12 || reply.readUInt16BE(4) !== 1) return null;
  let end = 12;
  while (end < reply.length && reply[end] !== 0) {
    if (reply[end]! > 63) return null;
    end += reply[end]! + 1;
  }
  end += 5;
  return end <= reply.length ? reply.subarray(12, end) : null;
}

/**
 * Checks one reply to a packet we sent: parseable, QR set, the ID of a packet
 * still unanswered. With `anyId` (TCP streams whose framing is broken, so the
 * server reads messages out of the middle of ours) any ID will do.
 */
function checkReply(reply: Buffer, sent: InFlight, failures: Failure[], where: string, anyId = false): string | null {
  let decoded;
  try {
    decoded = dnsPacket.decode(reply);
  } catch (error) {
    const source = reply.length >= 2 ? sent.peek(reply.readUInt16BE(0)) : undefined;
    failures.push({ what: `${where}: unparseable reply (${(error as Error).message}): ${reply.toString('hex')}`, packet: source?.packet.toString('hex'), mutations: source?.mutations });
    return null;
  }
  const rcode = (decoded as { rcode?: string }).rcode ?? 'NOERROR';
  const source = sent.answer(decoded.id!, reply);
  if (!source) {
    if (anyId) return rcode;
    failures.push({ what: `${where}: reply with ID ${decoded.id} answers no packet sent (or answers one twice): ${reply.toString('hex')}` });
    return null;
  }
  const problem = decoded.type !== 'response' ? 'reply without QR' : shapeProblem(reply, decoded, source.packet, where.startsWith('udp'));
  if (problem !== null) failures.push({ what: `${where}: ${problem}: ${reply.toString('hex')}`, packet: source.packet.toString('hex'), mutations: source.mutations });
  return rcode;
}

/**
 * What is wrong with a reply's form, or null: the question echoed byte for
 * byte (WIRE-24), FORMERR and NOTIMP with no records and AA clear (WIRE-2; a
 * forward's FORMERR, FWD-7, may carry OPT), and over UDP no more than the
 * client's buffer (512 bytes without EDNS).
 */
function shapeProblem(reply: Buffer, decoded: ReturnType<typeof dnsPacket.decode>, query: Buffer, udp: boolean): string | null {
  if (reply.readUInt16BE(4) === 1) {
    const question = echoedQuestion(reply);
    if (question === null) return 'question compressed, extended or cut';
    if (!query.subarray(12, 12 + question.length).equals(question)) return 'question not echoed byte for byte';
  }
  const rcode = (decoded as { rcode?: string }).rcode;
  const onlyOpt = (decoded.additionals ?? []).every((record) => record.type === 'OPT');
  if ((rcode === 'FORMERR' || rcode === 'NOTIMP') && (reply.readUInt16BE(6) !== 0 || reply.readUInt16BE(8) !== 0 || !onlyOpt || (reply[2]! & 0x04) !== 0)) {
    return `${rcode} with records or AA`;
  }
  if (udp) {
    const opt = (decoded.additionals ?? []).find((record) => record.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = Math.max(512, opt?.udpPayloadSize ?? 0);
    if (reply.length > limit) return `${reply.length} bytes over UDP, above the ${limit} the client can take`;
  }
  return null;
}

/** Queries the probes over UDP and TCP; returns what is wrong (empty: all right). */
export async function checkProbes(host: string, port: number): Promise<string[]> {
  const problems: string[] = [];
  for (const probe of PROBES) {
    for (const transport of ['udp', 'tcp'] as const) {
      const id = between(Math.random, 0, 0xffff);
      const query = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: probe.name, type: probe.type, class: 'IN' }] });
      const raw = await (transport === 'udp' ? sendUdp(port, query, 2000, host).catch(() => null) : tcpExchange(host, port, query, 2000));
      if (raw === null) {
        problems.push(`${probe.name} over ${transport}: no answer`);
        continue;
      }
      const reply = dnsPacket.decode(raw) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
      const data = (reply.answers ?? []).map((answer) => String((answer as { data: unknown }).data)).sort();
      if (reply.id !== id || reply.rcode !== probe.rcode || JSON.stringify(data) !== JSON.stringify(probe.answers)) {
        problems.push(`${probe.name} over ${transport}: id ${reply.id}/${id}, ${reply.rcode} [${data.join(' ')}], expected ${probe.rcode} [${probe.answers.join(' ')}]`);
      }
    }
  }
  return problems;
}


function tcpExchange(host: string, port: number, query: Buffer, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => finish(null), timeoutMs);
    const finish = (reply: Buffer | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    socket.on('connect', () => socket.write(frame(query)));
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) finish(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
    });
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(null));
  });
}

function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length & 0xffff);
  return Buffer.concat([length, message]);
}

/** Kinds of hostile TCP stream. */
const TCP_KINDS = ['validThenGarbage', 'zeroLength', 'lengthThenSilence', 'partial', 'hugeLength', 'mutatedPipeline', 'trickle', 'oneByte', 'randomStream', 'lengthTooShort'] as const;
type TcpKind = (typeof TCP_KINDS)[number];

interface TcpPlan {
  kind: TcpKind;
  chunks: Buffer[];
  /** Queries in the stream. */
  sent: InFlight;
  /** IDs that must be answered correctly (well-formed queries in the stream). */
  mustAnswer: number[];
  /** Milliseconds between chunks. */
  gapMs: number;
  /** Keep the connection open (silent) until the end of the round. */
  holdOpen: boolean;
  /** The stream's framing is broken: replies may carry IDs read from anywhere in it. */
  misframed: boolean;
}

const MISFRAMED: ReadonlySet<TcpKind> = new Set(['validThenGarbage', 'zeroLength', 'hugeLength', 'randomStream', 'lengthTooShort']);

function planTcpStream(random: Random, nextId: () => number): TcpPlan {
  const kind = pick(random, TCP_KINDS);
  const sent = new InFlight();
  const mustAnswer: number[] = [];
  const valid = () => {
    const id = nextId();
    const packet = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: PROBES[0]!.name, type: 'A', class: 'IN' }] });
    sent.add(id, { packet, mutations: ['valid'] });
    mustAnswer.push(id);
    return packet;
  };
  const mutated = () => {
    const id = nextId();
    const query = mutatedQuery(random, id);
    sent.add(id, query);
    return query.packet;
  };
  const plan = (chunks: Buffer[], gapMs = 0, holdOpen = false): TcpPlan => ({ kind, chunks, sent, mustAnswer, gapMs, holdOpen, misframed: MISFRAMED.has(kind) });
  switch (kind) {
    case 'validThenGarbage':
      return plan([frame(valid()), randomBytes(random, between(random, 1, 300))]);
    case 'zeroLength':
      return plan([Buffer.from([0, 0]), frame(mutated())]);
    case 'lengthThenSilence':
      return plan([Buffer.from([0, between(random, 12, 255)])], 0, true);
    case 'partial': {
      const message = frame(mutated());
      return plan([message.subarray(0, between(random, 1, message.length - 1))]);
    }
    case 'hugeLength':
      return plan([Buffer.from([0xff, 0xff]), randomBytes(random, between(random, 0, 2000))]);
    case 'mutatedPipeline':
      return plan(Array.from({ length: between(random, 2, 8) }, () => frame(mutated())));
    case 'trickle': {
      const message = frame(valid());
      return plan([...message].map((byte) => Buffer.from([byte])), 2);
    }
    case 'oneByte':
      return plan([Buffer.from([Math.floor(random() * 256)])]);
    case 'randomStream':
      return plan([randomBytes(random, between(random, 1, 1000))]);
    case 'lengthTooShort': {
      // A length shorter than the message: the rest is read as the next length.
      const message = mutated();
      const length = Buffer.alloc(2);
      length.writeUInt16BE(between(random, 0, Math.max(0, message.length - 1)));
      return plan([length, message]);
    }
  }
}

/** Runs one planned stream; resolves once it is over (answered, closed by the server, or `until` for silent ones). */
async function runTcpStream(host: string, port: number, plan: TcpPlan, failures: Failure[], until: Promise<void>): Promise<number> {
  const socket = net.connect({ host, port });
  socket.on('error', () => {});
  let buffered = Buffer.alloc(0);
  let replies = 0;
  const answered = new Set<number>();
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      const reply = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
      buffered = buffered.subarray(2 + reply.length);
      replies++;
      const id = reply.length >= 2 ? reply.readUInt16BE(0) : -1;
      if (checkReply(reply, plan.sent, failures, `tcp ${plan.kind}`, plan.misframed) !== null) answered.add(id);
    }
  });
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', resolve);
  });
  for (const chunk of plan.chunks) {
    if (socket.destroyed) break;
    socket.write(chunk);
    if (plan.gapMs > 0) await sleep(plan.gapMs);
  }
  if (plan.holdOpen) {
    // Silent until the round's probes are done (or the server closes it).
    await Promise.race([closed, until]);
  } else {
    // The answers that must come, then a moment for any others; or the server closing; at most 3 s.
    const answeredAll = async () => {
      while (!plan.mustAnswer.every((id) => answered.has(id)) && !socket.destroyed) await sleep(5);
      await sleep(20);
    };
    await Promise.race([answeredAll(), closed, sleep(3000)]);
  }
  socket.destroy();
  for (const id of plan.mustAnswer) {
    if (!answered.has(id)) failures.push({ what: `tcp ${plan.kind}: a well-formed query in the stream was not answered`, packet: Buffer.concat(plan.chunks).toString('hex') });
  }
  return replies;
}

/** The whole fuzz round: UDP batches with probes after each, TCP streams spread over them. */
export async function fuzz(options: FuzzOptions): Promise<FuzzResult> {
  const started = performance.now();
  const random = seededRandom(options.seed);
  const batchSize = options.batch ?? 1000;
  const failures: Failure[] = [];
  const byRcode: Record<string, number> = {};
  const inFlight = new InFlight();
  let nextId = 0;
  const takeId = () => (nextId = (nextId + 1) & 0xffff);
  const socket = dgram.createSocket({ type: net.isIPv6(options.host) ? 'udp6' : 'udp4', recvBufferSize: 8 << 20 });
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  let replies = 0;
  socket.on('message', (reply) => {
    replies++;
    const rcode = checkReply(reply, inFlight, failures, 'udp');
    if (rcode !== null) byRcode[rcode] = (byRcode[rcode] ?? 0) + 1;
  });
  const batches = Math.ceil(options.packets / batchSize);
  const streamsPerBatch = Math.ceil(options.tcpStreams / Math.max(1, batches));
  let sent = 0;
  let streams = 0;
  let tcpReplies = 0;
  let probes = 0;
  for (let batch = 0; batch < batches && failures.length < 20; batch++) {
    // TCP streams run while this batch's datagrams are sent; silent ones stay open through the probes.
    let endRound!: () => void;
    const roundOver = new Promise<void>((resolve) => (endRound = resolve));
    const plans = Array.from({ length: Math.min(streamsPerBatch, options.tcpStreams - streams) }, () => planTcpStream(random, takeId));
    streams += plans.length;
    const running = plans.map((plan) => runTcpStream(options.host, options.port, plan, failures, roundOver));
    const count = Math.min(batchSize, options.packets - sent);
    for (let i = 0; i < count; i++) {
      const id = takeId();
      const query = mutatedQuery(random, id);
      inFlight.add(id, query);
      socket.send(query.packet, options.port, options.host);
      // Yield now and then so replies are read while sending.
      if (i % 200 === 199) await sleep(1);
    }
    sent += count;
    await sleep(50);
    if (!options.alive()) {
      failures.push({ what: `the server process died during batch ${batch}` });
      endRound();
      break;
    }
    const problems = await checkProbes(options.host, options.port);
    probes++;
    for (const problem of problems) failures.push({ what: `after batch ${batch} (${sent} packets): ${problem}` });
    endRound();
    tcpReplies += (await Promise.all(running)).reduce((sum, n) => sum + n, 0);
    options.afterBatch?.(sent);
    if (batch % 50 === 49) options.log?.(`${sent} packets, ${replies} replies, ${streams} TCP streams, ${Math.round(performance.now() - started) / 1000} s`);
  }
  await sleep(100);
  socket.close();
  return { seed: options.seed, sent, replies, byRcode, tcpStreams: streams, tcpReplies, probes, failures, seconds: (performance.now() - started) / 1000 };
}

export interface FuzzTarget {
  host: string;
  port: number;
  child: ChildProcess;
  upstream: TestUpstream;
  output(): string;
  stop(): Promise<void>;
}

/** Starts the clusterdns command on the fuzz Corefile, with its loopback upstream, and waits until it answers. */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const upstream = await TestUpstream.start({ records: { 'fwd.example A': [{ name: 'fwd.example', type: 'A', ttl: 60, data: '10.9.9.9' }] } });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clusterdns-fuzz-'));
  const port = await freePort();
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(corefile, fuzzCorefile(port, upstream.hostPort));
  const child = spawn(process.execPath, [path.join(root, 'bin/clusterdns.js'), '-conf', corefile], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Keep only the end of the output, for a report if it dies.
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const target: FuzzTarget = {
    host: '127.0.0.1',
    port,
    child,
    upstream,
    output: () => output,
    async stop() {
      await stop(child);
      await upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // The banner says the listeners are open; the probes say the manifests are loaded.
  while (!output.includes('clusterdns-')) {
    if (child.exitCode !== null) throw new Error(`clusterdns exited at start: ${output}`);
    await sleep(20);
  }
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`clusterdns exited at start: ${output}`);
    if ((await checkProbes(target.host, port)).length === 0) return target;
    if (attempt > 100) throw new Error(`clusterdns does not answer the probes: ${(await checkProbes(target.host, port)).join('; ')}\n${output}`);
    await sleep(200);
  }
}

/** A report of a round for people: counts, time, and every failure with its packet. */
export function describeResult(result: FuzzResult): string {
  const lines = [
    `seed ${result.seed}: ${result.sent} mutated UDP packets (${result.replies} replies: ${Object.entries(result.byRcode).map(([rcode, n]) => `${rcode} ${n}`).join(', ')}), ` +
      `${result.tcpStreams} hostile TCP streams (${result.tcpReplies} replies), ${result.probes} probe rounds, ${result.seconds.toFixed(1)} s`,
  ];
  for (const failure of result.failures) {
    lines.push(`FAIL ${failure.what}${failure.packet ? `\n  packet ${failure.packet}` : ''}${failure.mutations ? `\n  mutations ${failure.mutations.join(', ')}` : ''}`);
  }
  if (result.failures.length > 0) lines.push(`reproduce with FUZZ_SEED=${result.seed} (or --seed ${result.seed})`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const option = (name: string, fallback: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
  const seed = option('--seed', Math.floor(Math.random() * 2 ** 32));
  const packets = option('--packets', 1_000_000);
  const tcpStreams = option('--tcp', 2_000);
  const target = await startFuzzTarget();
  const pid = target.child.pid!;
  const rssStart = rssBytes(pid);
  let rssPeak = rssStart;
  console.log(`fuzzing clusterdns (pid ${pid}) on ${target.host}:${target.port}: ${packets} packets, ${tcpStreams} TCP streams, seed ${seed}`);
  const result = await fuzz({
    host: target.host,
    port: target.port,
    packets,
    tcpStreams,
    seed,
    batch: 2000,
    alive: () => target.child.exitCode === null,
    afterBatch: () => {
      if (target.child.exitCode === null) rssPeak = Math.max(rssPeak, rssBytes(pid));
      // The upstream keeps every query it saw; it is not under test.
      target.upstream.queries.length = 0;
    },
    log: (line) => console.log(line),
  });
  const rssEnd = target.child.exitCode === null ? rssBytes(pid) : 0;
  console.log(describeResult(result));
  const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  console.log(`server RSS: ${mb(rssStart)} MB at start, ${mb(rssPeak)} MB peak, ${mb(rssEnd)} MB at the end; ${Math.round(result.sent / result.seconds)} packets/s`);
  if (target.child.exitCode !== null) console.log(`server output:\n${target.output()}`);
  await target.stop();
  process.exit(result.failures.length === 0 ? 0 : 1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await main();
