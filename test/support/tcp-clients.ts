// TCP clients that misbehave the way abusive or broken ones do: connect and
// stay silent, send a length and stop, trickle bytes, ask once and linger.
// Each records when the server closed it, measured from the connection.

import net from 'node:net';
import { buildQuery } from './dns.ts';

export interface WatchedConnection {
  socket: net.Socket;
  /** ms from connect to the server's close; null while open. */
  closedAfterMs: number | null;
  /** Whole replies received. */
  replies: Buffer[];
  closed: Promise<number>;
  /** Sends a framed query for `name`. */
  query(name: string, id?: number): void;
  destroy(): void;
}

export function frame(message: Buffer): Buffer {
  const framed = Buffer.alloc(message.length + 2);
  framed.writeUInt16BE(message.length, 0);
  message.copy(framed, 2);
  return framed;
}

export async function connect(port: number): Promise<WatchedConnection> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const started = performance.now();
  let buffered = Buffer.alloc(0);
  const watched: WatchedConnection = {
    socket,
    closedAfterMs: null,
    replies: [],
    closed: new Promise<number>((resolve) => {
      socket.on('close', () => {
        watched.closedAfterMs = performance.now() - started;
        resolve(watched.closedAfterMs);
      });
    }),
    query(name, id = 1) {
      socket.write(frame(buildQuery(name, { id })));
    },
    destroy() {
      socket.destroy();
    },
  };
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      watched.replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
    }
  });
  return watched;
}

/** Resolves once `connection` has `count` replies (or after timeoutMs). */
export async function repliesOf(connection: WatchedConnection, count: number, timeoutMs = 2000): Promise<Buffer[]> {
  const deadline = performance.now() + timeoutMs;
  while (connection.replies.length < count && connection.closedAfterMs === null && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return connection.replies;
}

/** A slow sender: a 2-byte length, then one byte of the message every `everyMs`. Stops when closed. */
export function trickle(connection: WatchedConnection, everyMs: number): void {
  const message = buildQuery('slow.example');
  connection.socket.write(frame(message).subarray(0, 2));
  let sent = 0;
  const timer = setInterval(() => {
    if (connection.socket.destroyed || sent >= message.length) return clearInterval(timer);
    connection.socket.write(message.subarray(sent, ++sent));
  }, everyMs);
  connection.socket.once('close', () => clearInterval(timer));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
