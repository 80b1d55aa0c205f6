// Real DNS servers on loopback for the forward and loop tests: UDP and TCP on
// one kernel-chosen port, built with dns-packet so they share no code with
// the server under test. Each records the queries it received (raw bytes and
// decoded) so tests can check IDs, EDNS pass-through and transport.
//
// The behaviour can be switched while running (`upstream.mode = ...`), which
// is how a health-check test takes an upstream down and brings it back.

import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket, { type Answer, type DecodedPacket, type Packet } from 'dns-packet';

export type Transport = 'udp' | 'tcp';

export interface ReceivedQuery {
  transport: Transport;
  raw: Buffer;
  packet: DecodedPacket;
  id: number;
  /** Question name as sent (case kept), without the trailing dot (dns-packet's form). */
  name: string;
  type: string;
  remotePort: number;
  at: number;
}

/** Junk a garbage upstream sends before (or instead of) the real answer. */
export type GarbageKind =
  /** Random bytes that start with the query's ID. */
  | 'junk'
  /** A well-formed reply under another ID. */
  | 'wrong-id'
  /** The right ID, another question, a bogus answer. */
  | 'wrong-question'
  /** The right ID and question, another type. */
  | 'wrong-type'
  /** The right ID and question but QR=0. */
  | 'not-response'
  /** The right ID, header and question, records cut off mid-way. */
  | 'cut';

export type Mode =
  /** Answers from the record table; NXDOMAIN (with an SOA) for anything else. */
  | { kind: 'healthy' }
  /** Reads everything, answers nothing. */
  | { kind: 'silent' }
  /** Answers every query with this RCODE and no records. */
  | { kind: 'rcode'; rcode: number }
  /** TC=1 with no records over UDP; the full answer over TCP. */
  | { kind: 'truncating' }
  /** Answers from the table after a delay. */
  | { kind: 'slow'; delayMs: number }
  /** Sends the listed junk, then the real answer unless `answer` is false. */
  | { kind: 'garbage'; send: GarbageKind[]; answer: boolean }
  /** Relays each query to another DNS server and its reply back (at most `limit` queries). */
  | { kind: 'forward'; target: () => { host: string; port: number } | null; limit: number }
  /** Custom: return the reply messages, or null for silence. */
  | { kind: 'custom'; respond: (query: DecodedPacket, transport: Transport) => Buffer[] | null };

export interface UpstreamOptions {
  /** `name TYPE` (name lowercased, no trailing dot) → answer records. */
  records?: Record<string, Answer[]>;
  mode?: Mode;
  /** Serve DNS over TLS on the TCP port instead of plain TCP (UDP stays plain). */
  tls?: { key: Buffer | string; cert: Buffer | string };
}

const RCODE_NXDOMAIN = 3;

export class TestUpstream {
  readonly address = '127.0.0.1';
  port = 0;
  mode: Mode;
  records: Record<string, Answer[]>;
  readonly queries: ReceivedQuery[] = [];
  /** TCP connections accepted so far. */
  tcpConnections = 0;
  /** Close each TCP connection right after its first reply (an upstream with no keep-alive). */
  closeTcpAfterReply = false;
  private udp!: dgram.Socket;
  private tcp!: net.Server | tls.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private forwarded = 0;
  private stopped = false;

  private readonly tlsOptions: UpstreamOptions['tls'];

  private constructor(options: UpstreamOptions) {
    this.mode = options.mode ?? { kind: 'healthy' };
    this.records = options.records ?? {};
    this.tlsOptions = options.tls;
  }

  static async start(options: UpstreamOptions = {}): Promise<TestUpstream> {
    const upstream = new TestUpstream(options);
    await upstream.listen();
    return upstream;
  }

  /** `127.0.0.1:port`, as a Corefile TO. */
  get hostPort(): string {
    return `${this.address}:${this.port}`;
  }

  queriesFor(name: string): ReceivedQuery[] {
    const wanted = name.toLowerCase().replace(/\.$/, '');
    return this.queries.filter((query) => query.name.toLowerCase() === wanted);
  }

  private async listen(): Promise<void> {
    // UDP first on port 0, then TCP on the same port; retry if TCP finds it taken.
    for (let attempt = 0; attempt < 20; attempt++) {
      const udp = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => udp.bind(0, this.address, resolve));
      const port = udp.address().port;
      const tcp = this.tlsOptions
        ? tls.createServer(this.tlsOptions, (socket) => this.serveTcp(socket))
        : net.createServer((socket) => this.serveTcp(socket));
      const ok = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false));
        tcp.listen(port, this.address, () => resolve(true));
      });
      if (!ok) {
        udp.close();
        continue;
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      udp.on('message', (raw, remote) => this.receive(raw, 'udp', remote.port, (reply) => udp.send(reply, remote.port, remote.address)));
      return;
    }
    throw new Error('could not bind a test upstream');
  }

  private serveTcp(socket: net.Socket): void {
    this.tcpConnections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const raw = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + raw.length);
        this.receive(Buffer.from(raw), 'tcp', socket.remotePort ?? 0, (reply) => {
          if (socket.destroyed) return;
          const frame = Buffer.alloc(reply.length + 2);
          frame.writeUInt16BE(reply.length, 0);
          reply.copy(frame, 2);
          socket.write(frame);
          if (this.closeTcpAfterReply) socket.end();
        });
      }
    });
  }

  private receive(raw: Buffer, transport: Transport, remotePort: number, send: (reply: Buffer) => void): void {
    let packet: DecodedPacket;
    try {
      packet = dnsPacket.decode(raw);
    } catch {
      return;
    }
    const question = packet.questions?.[0];
    this.queries.push({
      transport,
      raw,
      packet,
      id: packet.id ?? 0,
      name: question?.name ?? '',
      type: question?.type ?? '',
      remotePort,
      at: Date.now(),
    });
    const mode = this.mode;
    switch (mode.kind) {
      case 'silent':
        return;
      case 'healthy':
        return send(this.answer(packet));
      case 'rcode':
        return send(respond(packet, { rcode: mode.rcode }));
      case 'truncating':
        return send(transport === 'udp' ? respond(packet, { truncated: true }) : this.answer(packet));
      case 'slow':
        return this.later(mode.delayMs, () => send(this.answer(packet)));
      case 'garbage': {
        for (const kind of mode.send) send(garbage(kind, packet, this.answer(packet)));
        if (mode.answer) this.later(20, () => send(this.answer(packet)));
        return;
      }
      case 'forward':
        return this.relay(raw, mode, send);
      case 'custom': {
        for (const reply of mode.respond(packet, transport) ?? []) send(reply);
        return;
      }
    }
  }

  /** The table's answer, or NXDOMAIN with an SOA. */
  answer(packet: DecodedPacket): Buffer {
    const question = packet.questions?.[0];
    const key = `${(question?.name ?? '').toLowerCase().replace(/\.$/, '')} ${question?.type ?? ''}`;
    const answers = this.records[key];
    if (answers) return respond(packet, { answers });
    return respond(packet, {
      rcode: RCODE_NXDOMAIN,
      authorities: [{
        type: 'SOA',
        name: '.',
        ttl: 60,
        data: { mname: 'a.root-servers.net', rname: 'nstld.verisign-grs.com', serial: 1, refresh: 1800, retry: 900, expire: 604800, minimum: 86400 },
      }],
    });
  }

  private relay(raw: Buffer, mode: Extract<Mode, { kind: 'forward' }>, send: (reply: Buffer) => void): void {
    if (this.forwarded >= mode.limit) return;
    this.forwarded++;
    const attempt = (tries: number): void => {
      const target = mode.target();
      if (!target) {
        if (tries < 100) this.later(20, () => attempt(tries + 1));
        return;
      }
      const socket = dgram.createSocket('udp4');
      const timer = setTimeout(() => socket.close(), 3000);
      socket.on('message', (reply) => {
        clearTimeout(timer);
        socket.close();
        send(reply);
      });
      socket.on('error', () => {
        clearTimeout(timer);
        socket.close();
      });
      socket.send(raw, target.port, target.host);
    };
    attempt(0);
  }

  private later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }

  /** Stops serving; calling it again does nothing (tests may stop an upstream early). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([
      new Promise<void>((resolve) => this.udp.close(() => resolve())),
      new Promise<void>((resolve) => this.tcp.close(() => resolve())),
    ]);
  }
}

export interface RespondOptions {
  rcode?: number;
  answers?: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
  truncated?: boolean;
  id?: number;
  /** Replace the question (name as sent, type). */
  question?: { name: string; type: string };
  response?: boolean;
}

/** A reply to `query`: its question and RD echoed, RA set, its EDNS answered with an OPT. */
export function respond(query: DecodedPacket, options: RespondOptions = {}): Buffer {
  const question = query.questions?.[0];
  const flags = ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | dnsPacket.RECURSION_AVAILABLE |
    (options.truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) | (options.rcode ?? 0);
  const additionals: Answer[] = [...(options.additionals ?? [])];
  if (query.additionals?.some((record) => record.type === 'OPT')) {
    additionals.push({ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] } as never);
  }
  const packet: Packet = {
    type: options.response === false ? 'query' : 'response',
    id: options.id ?? query.id,
    flags,
    questions: options.question
      ? [{ name: options.question.name, type: options.question.type as 'A', class: 'IN' }]
      : question ? [question] : [],
    answers: options.answers ?? [],
    authorities: options.authorities ?? [],
    additionals,
  };
  return dnsPacket.encode(packet);
}

function garbage(kind: GarbageKind, query: DecodedPacket, real: Buffer): Buffer {
  const id = query.id ?? 0;
  const bogus: Answer[] = [{ type: 'A', name: query.questions?.[0]?.name ?? '', ttl: 60, data: '6.6.6.6' }];
  switch (kind) {
    case 'junk': {
      const bytes = Buffer.alloc(40);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
      bytes.writeUInt16BE(id, 0);
      bytes[2] = (bytes[2]! | 0x80) & ~0x02; // QR and no TC, so only the body is junk
      return bytes;
    }
    case 'wrong-id':
      return respond(query, { id: (id + 1) & 0xffff, answers: bogus });
    case 'wrong-question':
      return respond(query, { question: { name: 'evil.example', type: query.questions?.[0]?.type ?? 'A' }, answers: bogus });
    case 'wrong-type':
      return respond(query, { question: { name: query.questions?.[0]?.name ?? '', type: 'MX' }, answers: bogus });
    case 'not-response':
      return respond(query, { response: false, answers: bogus });
    case 'cut':
      return real.subarray(0, real.length - 3);
  }
}

/** Starts several upstreams at once. */
export async function startUpstreams(count: number, options: UpstreamOptions = {}): Promise<TestUpstream[]> {
  return Promise.all(Array.from({ length: count }, () => TestUpstream.start(options)));
}

