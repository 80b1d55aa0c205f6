// loop: detects a forwarding loop at startup and stops the process (LOOP-1..5).
//
// Once the block's listeners are open, a background task sends
// `HINFO <r1>.<r2>.<zone>.` to the server's own address over UDP. If that
// query comes back through this plugin more than twice, queries are going
// round in circles (forward pointing at ourselves: users.md P4), and the
// process exits, as CoreDNS does. A probe that fails is retried every second
// for 30 s; after one succeeds, or 30 s pass, the plugin only passes queries on.

import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { expectArgs, expectNoBlock, onlyOnce } from '../../src/corefile/setup.ts';
import { definePlugin, type BlockContext, type ListeningAddress } from '../../src/plugin.ts';
import { Class, Flag, HEADER_LENGTH, Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply } from '../../src/wire/message.ts';
import { isSubdomain } from '../../src/wire/names.ts';
import { encodeQuestion } from '../../src/wire/query.ts';

/**
 * What the plugin does on a loop, and its timings. Tests replace `exit` so a
 * detection does not end the test runner, and shorten the timings.
 */
export const loopHooks = {
  exit: (code: number): void => {
    process.exit(code);
  },
  /** Read timeout of one probe exchange (miekg/dns's default client timeout). */
  probeTimeoutMs: 2_000,
  /** Wait before retrying a failed probe (LOOP-4). */
  retryDelayMs: 1_000,
  /** How long after startup probes are retried (LOOP-4). */
  windowMs: 30_000,
};

export interface LoopConfig {
  /** The block's first zone, canonical (LOOP-1). */
  zone: string;
}

const TROUBLESHOOTING = 'https://coredns.io/plugins/loop#troubleshooting';
/** Past this many sightings of the probe, it is a loop (LOOP-3). */
const LIMIT = 2;

/** A random decimal below 2^62 (LOOP-2). */
function randomLabel(): string {
  return (randomBytes(8).readBigUInt64BE() >> 2n).toString();
}

export function probeName(zone: string): string {
  return `${randomLabel()}.${randomLabel()}.${zone === '.' ? '' : zone}`;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Sends `HINFO qname` to host:port over UDP; resolves true on a reply with our ID, false on error or timeout. */
function exchange(qname: string, host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  const id = randomBytes(2).readUInt16BE();
  const packet = encodeQuestion(id, Flag.RD, qname, Type.HINFO, Class.IN);
  return new Promise<boolean>((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    socket.unref();
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      try {
        socket.close();
      } catch {
        // closed already
      }
      resolve(ok);
    };
    const onAbort = (): void => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    signal.addEventListener('abort', onAbort);
    socket.on('error', () => finish(false));
    socket.on('message', (reply) => {
      if (reply.length >= HEADER_LENGTH && reply.readUInt16BE(0) === id && reply.readUInt16BE(2) & Flag.QR) finish(true);
    });
    socket.send(packet, port, host);
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

export function parseLoop(directives: Parameters<typeof onlyOnce>[0], block: BlockContext): LoopConfig {
  const directive = onlyOnce(directives);
  expectArgs(directive, 0);
  expectNoBlock(directive);
  return { zone: block.addresses[0]?.zone ?? '.' };
}

export default definePlugin<LoopConfig>({
  name: 'loop',
  parse: parseLoop,
  create(config, block, log) {
    const zone = config.zone;
    const qname = probeName(zone);
    let seen = 0;
    let disabled = false;
    let detected = false;
    let started = false;
    /** Where the probe goes, as the FATAL line prints it: CoreDNS's JoinHostPort(listen host, port). */
    let serverAddress = '';
    const abort = new AbortController();

    const probe = async (host: string, port: number): Promise<void> => {
      const deadline = Date.now() + loopHooks.windowMs;
      while (Date.now() < deadline && !abort.signal.aborted && !detected) {
        if (await exchange(qname, host, port, loopHooks.probeTimeoutMs, abort.signal)) break;
        // LOOP-4: a failed exchange resets the count, then waits and tries again.
        seen = 0;
        await sleep(loopHooks.retryDelayMs, abort.signal);
      }
      disabled = true;
    };

    return {
      serve(request, next) {
        if (disabled || request.query.qtype !== Type.HINFO) return next(request);
        const name = request.query.qname;
        if (!isSubdomain(name, zone)) return next(request);
        if (detected) {
          // Only reached when the exit hook returned (tests): stop feeding the loop.
          return name === qname ? emptyReply(Rcode.SERVFAIL) : next(request);
        }
        if (name === qname) seen++;
        if (seen > LIMIT) {
          detected = true;
          const client = hostPort(request.remoteAddress, request.remotePort);
          log.write('FATAL', `plugin/loop: Loop (${client} -> ${serverAddress}) detected for zone "${zone}", see ${TROUBLESHOOTING}. Query: "HINFO ${qname}"`);
          loopHooks.exit(1);
          return emptyReply(Rcode.SERVFAIL);
        }
        return next(request);
      },
      listening(listeners: readonly ListeningAddress[]) {
        // LOOP-2: the first bind host (or localhost) and the block's port.
        const host = block.bindAddresses[0] ?? '';
        const configuredPort = block.addresses[0]?.port ?? 53;
        const listener = listeners.find((candidate) => candidate.address === host && candidate.configuredPort === configuredPort) ?? listeners[0];
        if (!listener || started || disabled || detected) return;
        started = true;
        serverAddress = host === '' ? `:${listener.port}` : hostPort(host, listener.port);
        let target = host;
        if (target === '' || target === '0.0.0.0') target = '127.0.0.1';
        else if (target === '::') target = '::1';
        void probe(target, listener.port).catch((error: unknown) => log.error(`probe failed: ${String(error)}`));
      },
      stop() {
        abort.abort();
        disabled = true;
      },
    };
  },
});
