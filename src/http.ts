// The HTTP listeners of health, ready and prometheus. Plugins attach a
// handler for a path on an address; blocks and configurations sharing an
// address share one server. Handlers stack per path, so during a reload the
// new configuration's handler takes over and, if the reload fails, stopping
// it gives the old one back: no close-and-reopen gap (HEALTH-5, PROM-11).

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type RouteHandler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

interface Listener {
  server: http.Server;
  routes: Map<string, RouteHandler[]>;
}

const listeners = new Map<string, Promise<Listener>>();

/** `:8080` (all addresses), `localhost:9153`, `127.0.0.1:0`, `[::1]:8181` → host and port. */
export function parseHttpAddress(address: string): { host: string | undefined; port: number } | null {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(address);
  if (!match) return null;
  const port = Number(match[3]);
  if (port > 65535) return null;
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

function open(address: string): Promise<Listener> {
  const { host, port } = parseHttpAddress(address)!;
  const routes = new Map<string, RouteHandler[]>();
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0]!;
    const handler = routes.get(path)?.at(-1);
    if (!handler) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    handler(request, response);
  });
  // HEALTH-2, PROM-11: 5 s read, write and idle timeouts.
  server.requestTimeout = 5_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve({ server, routes });
    });
  });
}

export interface Attachment {
  /** The port actually bound (tests use port 0). */
  port: number;
  detach(): Promise<void>;
}

/** Serves `handler` for `path` on `address`, opening the listener if this is its first route. */
export async function attachRoute(address: string, path: string, handler: RouteHandler): Promise<Attachment> {
  let pending = listeners.get(address);
  if (!pending) {
    pending = open(address);
    listeners.set(address, pending);
    pending.catch(() => listeners.delete(address));
  }
  const listener = await pending;
  const stack = listener.routes.get(path) ?? [];
  stack.push(handler);
  listener.routes.set(path, stack);
  return {
    port: (listener.server.address() as AddressInfo).port,
    async detach() {
      const index = stack.lastIndexOf(handler);
      if (index >= 0) stack.splice(index, 1);
      if (stack.length === 0) listener.routes.delete(path);
      if (listener.routes.size > 0 || listeners.get(address) !== pending) return;
      listeners.delete(address);
      listener.server.closeAllConnections();
      await new Promise<void>((resolve) => listener.server.close(() => resolve()));
    },
  };
}
