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

/** Inodes of the sockets this process holds open. */
function socketInodes(): Set<string> {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
        if (match) inodes.add(match[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // no /proc: not Linux
  }
  return inodes;
}

// Columns of /proc/net/udp: sl local remote st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops.
const LOCAL_COLUMN = 1;
const INODE_COLUMN = 9;
const DROPS_COLUMN = 12;

/** The table a socket of this type is listed in. */
const tableOf = (type: 'udp4' | 'udp6') => (type === 'udp6' ? '/proc/net/udp6' : '/proc/net/udp');

/** The kernel's drop count for the socket with this inode, or null when it is not listed. */
function readDrops(table: string, inode: string): number | null {
  let text: string;
  try {
    text = readFileSync(table, 'latin1');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[INODE_COLUMN] === inode) return Number(fields[DROPS_COLUMN]);
  }
  return null;
}

/**
 * Binds `socket` and finds it in the kernel's table: the socket on `port`
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
  let text = '';
  try {
    text = readFileSync(tableOf(type), 'latin1');
  } catch {
    return null;
  }
  const portHex = `:${socket.address().port.toString(16).toUpperCase().padStart(4, '0')}`;
  const mine = text.split('\n').map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[LOCAL_COLUMN]?.endsWith(portHex) && added.includes(fields[INODE_COLUMN]!));
  return mine.length === 1 ? mine[0]![INODE_COLUMN]! : null;
}

export class ReceiveQueue {
  private readonly socket: dgram.Socket;
  private readonly table: string;
  private readonly inode: string;
  private readonly label: string;
  private readonly log: Logger;
  private readonly timer: NodeJS.Timeout;
  private utilization: EventLoopUtilization = performance.eventLoopUtilization();
  /** The drop count at the last check that read it, and whether that was the previous check. */
  private lastDrops: number | null = null;
  private readLastCheck = false;
  private short = false;
  private lastDropAt = 0;
  private dropsWhileShort = 0;
  /** Feeds clusterdns_udp_queries_dropped_total. */
  private readonly reader = { label: '', read: () => this.drops() };

  constructor(socket: dgram.Socket, type: 'udp4' | 'udp6', inode: string, label: string, log: Logger) {
    this.socket = socket;
    this.table = tableOf(type);
    this.inode = inode;
    this.label = label;
    this.log = log;
    this.timer = setInterval(this.check, CHECK_MS);
    this.timer.unref();
    this.reader.label = label;
    udpDropReaders.add(this.reader);
  }

  /** Datagrams the kernel dropped because the queue was full, since the socket opened (null: unknown). */
  drops(): number | null {
    return readDrops(this.table, this.inode);
  }

  stop(): void {
    clearInterval(this.timer);
    udpDropReaders.delete(this.reader);
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
    // A count from an earlier check with unread checks between would count old drops as new.
    const dropped = this.readLastCheck && this.lastDrops !== null ? drops - this.lastDrops : 0;
    this.lastDrops = drops;
    this.readLastCheck = true;
    const at = performance.now();
    if (dropped > 0) this.lastDropAt = at;
    if (!this.short && dropped > 0) {
      this.short = true;
      this.dropsWhileShort = dropped;
      this.socket.setRecvBufferSize(SHORT_QUEUE_BYTES);
      this.log.warning(`udp ${this.label}: the kernel dropped ${dropped} queries in ${CHECK_MS} ms (receive queue full); the queue is cut to ${this.socket.getRecvBufferSize() >> 10} KiB so that queries wait less`);
    } else if (this.short) {
      this.dropsWhileShort += dropped;
      if (at - this.lastDropAt < QUIET_MS) return;
      this.short = false;
      this.socket.setRecvBufferSize(NORMAL_QUEUE_BYTES);
      this.log.info(`udp ${this.label}: no queries dropped for ${QUIET_MS / 1000}s; the receive queue is back to ${this.socket.getRecvBufferSize() >> 10} KiB (${this.dropsWhileShort} dropped meanwhile)`);
    }
  };
}
