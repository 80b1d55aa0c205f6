// Servers, upstreams and captured logs for one test, all released after it.
// Call once at the top of a test file; it registers its own afterEach.

import { afterEach } from 'vitest';
import { setLogSink } from '../../src/log.ts';
import { startServer, type RunningServer } from './dns.ts';
import { TestUpstream, type UpstreamOptions } from './upstreams.ts';

export interface Fixture {
  /** A test upstream answering from `records` (plus the options given). */
  upstream(options?: UpstreamOptions): Promise<TestUpstream>;
  /** Starts the server under test from `corefile`; returns its port. */
  serve(corefile: string, options?: Parameters<typeof startServer>[1]): Promise<number>;
  /** Log lines from now until the end of the test. */
  captureLog(): string[];
}

export function useFixture(records: UpstreamOptions['records'] = {}): Fixture {
  let servers: RunningServer[] = [];
  let upstreams: TestUpstream[] = [];
  let restoreLog: ((line: string) => void) | null = null;
  afterEach(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await Promise.all(upstreams.map((upstream) => upstream.stop()));
    servers = [];
    upstreams = [];
    if (restoreLog) setLogSink(restoreLog);
    restoreLog = null;
  });
  return {
    async upstream(options = {}) {
      const started = await TestUpstream.start({ records, ...options });
      upstreams.push(started);
      return started;
    },
    async serve(corefile, options) {
      const server = await startServer(corefile, options);
      servers.push(server);
      return server.port;
    },
    captureLog() {
      const lines: string[] = [];
      const previous = setLogSink((line) => lines.push(line));
      restoreLog ??= previous;
      return lines;
    },
  };
}
