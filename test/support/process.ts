// Runs the clusterdns command as a user would, with the Node that runs the tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/clusterdns.js', import.meta.url));

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves when stdout contains `text` (or rejects after timeoutMs). */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<Finished>;
}

export function startCli(args: string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Started {
  return startCommand(process.execPath, [BIN, ...args], options);
}

/** Any command (npm, npx), its output captured as startCli's is. */
export function startCommand(command: string, args: string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Started {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners: (() => void)[] = [];
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
    for (const listener of listeners) listener();
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  const exited = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    output: () => ({ stdout, stderr }),
    exited,
    waitForOutput(text, timeoutMs = 8000) {
      const matches = () => (typeof text === 'string' ? stdout.includes(text) : text.test(stdout));
      return new Promise<void>((resolve, reject) => {
        if (matches()) return resolve();
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${text}; stdout: ${stdout}; stderr: ${stderr}`)), timeoutMs);
        listeners.push(() => {
          if (matches()) {
            clearTimeout(timer);
            resolve();
          }
        });
        exited.then(() => {
          if (!matches()) {
            clearTimeout(timer);
            reject(new Error(`exited before ${text}; stdout: ${stdout}; stderr: ${stderr}`));
          }
        });
      });
    },
  };
}

export function runCli(args: string[], options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Finished> {
  return startCli(args, options).exited;
}

/** A free high port for both UDP and TCP (bound then released). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const dgram = await import('node:dgram');
  for (;;) {
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    const udp = dgram.createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise((resolve) => server.close(resolve));
    if (free) {
      await new Promise((resolve) => udp.close(() => resolve(undefined)));
      return port;
    }
    udp.close();
  }
}
