// The kernel's receive queue of a UDP listener, sized for what the load is
// doing. A queue deep enough for bursts (dnsperf's 256 outstanding queries, a
// node's pods all starting at once) becomes a standing queue under a flood the
// server cannot keep up with: each datagram then waits behind ~500 others, so
// every answer comes tens of milliseconds late, and keeps coming late after
// the flood until the queue has drained. While the kernel keeps dropping
// datagrams because the queue is full, depth adds only delay, not answers
// (CoDel's observation about router queues), so the queue is cut short; once
// the kernel has dropped nothing for a while it gets its depth back.
//
// The kernel counts those drops per socket in the last column of
// /proc/net/udp (udp6). The file is read only while the event loop is busy
// (a loop with idle time has emptied its queue) or the queue is short, never
// per query. Off Linux the queue keeps its depth and no drops are reported.

import dgram from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Logger } from './log.ts';
import { udpDropReaders } from './metrics.ts';

/** The queue's depth normally (the kernel doubles it for its bookkeeping: ~500 small datagrams). */
export const NORMAL_QUEUE_BYTES = 256 * 1024;
/** Its depth while the kernel drops (doubled: ~60 datagrams, a few milliseconds of work). */
export const SHORT_QUEUE_BYTES = 32 * 1024;
const CHECK_MS = 200;
/** The queue gets its depth back after this long without a drop. */
const QUIET_MS = 2_000;
/** Below this share of busy time the event loop has emptied the queue: nothing to read. */
const BUSY_SHARE = 0.5;

/** The socket inodes a process holds open (from /proc/PID/fd); empty off Linux or once it is gone. */
export function socketInodes(pid: number | 'self' = 'self'): Set<string> {
  const inodes = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** One socket in the kernel's table of UDP sockets. */
export interface UdpTableEntry {
  localPort: number;
  inode: string;
  /** Datagrams dropped because the receive queue was full, since the socket opened. */
  drops: number;
}

/** The kernel's table of UDP sockets of one family (/proc/net/udp or udp6); null off Linux. */
export function readUdpTable(family: 'udp4' | 'udp6'): UdpTableEntry[] | null {
  let text: string;
  try {
    text = readFileSync(family === 'udp6' ? '/proc/net/udp6' : '/proc/net/udp', 'latin1');
  } catch {
    return null;
  }
  const entries: UdpTableEntry[] = [];
  // Columns: sl local remote st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops; a header line first.
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 13) continue;
    entries.push({ localPort: parseInt(fields[1]!.slice(fields[1]!.lastIndexOf(':') + 1), 16), inode: fields[9]!, drops: Number(fields[12]) });
  }
  return entries;
}

/**
 * Binds `socket` and finds it in the kernel's table: the socket on its port
 * that this process did not hold before. Null when that is not one socket
 * (not Linux, or another socket opened on the same port meanwhile).
 */
export async function bindAndLocate(socket: dgram.Socket, type: 'udp4' | 'udp6', port: number, host: string): Promise<string | null> {
  const before = socketInodes();
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const added = [...socketInodes()].filter((inode) => !before.has(inode));
  const boundPort = socket.address().port;
  const mine = readUdpTable(type)?.filter((entry) => entry.localPort === boundPort && added.includes(entry.inode)) ?? [];
  return mine.length === 1 ? mine[0]!.inode : null;
}

/** What the queue needs of a listener (src/udp-listener.ts). */
export interface QueueSocket {
  readonly family: 'udp4' | 'udp6';
  /** Sets the kernel's receive queue (when given) and returns its size as the kernel reports it. */
  receiveBufferSize(bytes?: number): number;
}

export class ReceiveQueue {
  private readonly socket: QueueSocket;
  private readonly family: 'udp4' | 'udp6';
  private readonly inode: string;
  private readonly label: string;
  private readonly log: Logger;
  private readonly timer: NodeJS.Timeout;
  private utilization: EventLoopUtilization = performance.eventLoopUtilization();
  /** The drop count at the last check that read it, when, and whether that was the previous check. */
  private lastDrops: number | null = null;
  private lastReadAt = 0;
  private readLastCheck = false;
  private short = false;
  private lastDropAt = 0;
  private dropsWhileShort = 0;
  /** Feeds clusterdns_udp_queries_dropped_total. */
  private readonly reader: { label: string; read(): number | null };

  constructor(socket: QueueSocket, inode: string, label: string, log: Logger) {
    this.socket = socket;
    this.family = socket.family;
    this.inode = inode;
    this.label = label;
    this.log = log;
    this.timer = setInterval(this.check, CHECK_MS);
    this.timer.unref();
    this.reader = { label, read: () => this.drops() };
    udpDropReaders.add(this.reader);
  }

  /** Datagrams the kernel dropped because the queue was full, since the socket opened (null: unknown). */
  drops(): number | null {
    return readUdpTable(this.family)?.find((entry) => entry.inode === this.inode)?.drops ?? null;
  }

  stop(): void {
    clearInterval(this.timer);
    udpDropReaders.delete(this.reader);
  }

  /** False, and no more checks, when the socket is gone (closed without stop()): a timer must not throw. */
  private resize(bytes: number): boolean {
    try {
      this.socket.receiveBufferSize(bytes);
      return true;
    } catch {
      this.stop();
      return false;
    }
  }

  private readonly check = (): void => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.utilization).utilization >= BUSY_SHARE;
    this.utilization = now;
    if (!busy && !this.short) {
      this.readLastCheck = false;
      return;
    }
    const drops = this.drops();
    if (drops === null) return;
    const at = performance.now();
    // A count from an earlier check with unread checks between would count old drops as new.
    const dropped = this.readLastCheck && this.lastDrops !== null ? drops - this.lastDrops : 0;
    const sinceMs = Math.round(at - this.lastReadAt);
    this.lastDrops = drops;
    this.lastReadAt = at;
    this.readLastCheck = true;
    if (dropped > 0) this.lastDropAt = at;
    if (!this.short && dropped > 0) {
      if (!this.resize(SHORT_QUEUE_BYTES)) return;
      this.short = true;
      this.dropsWhileShort = dropped;
      this.log.warning(`udp ${this.label}: the kernel dropped ${dropped} queries in ${sinceMs} ms (receive queue full); the queue is cut to ${this.socket.receiveBufferSize() >> 10} KiB so that queries wait less`);
    } else if (this.short) {
      this.dropsWhileShort += dropped;
      if (at - this.lastDropAt < QUIET_MS || !this.resize(NORMAL_QUEUE_BYTES)) return;
      this.short = false;
      this.log.info(`udp ${this.label}: no queries dropped for ${QUIET_MS / 1000}s; the receive queue is back to ${this.socket.receiveBufferSize() >> 10} KiB (${this.dropsWhileShort} dropped meanwhile)`);
    }
  };
}
