// The timeouts plugin: CoreDNS's syntax and setup errors, and the TCP
// deadlines it changes (WIRE-18), seen by real clients.

import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from './support/dns.ts';
import { expectSetupError } from './support/setup-errors.ts';
import { connect, repliesOf, trickle } from './support/tcp-clients.ts';

let running: RunningServer | null = null;
afterEach(async () => {
  await running?.stop();
  running = null;
});

describe('timeouts setup (WIRE-18)', () => {
  it('rejects what CoreDNS rejects, with its messages and the line', () => {
    expectSetupError('. {\n timeouts\n whoami\n}\n', 2, /^timeouts block with no timeouts specified$/);
    expectSetupError('. {\n timeouts {\n }\n whoami\n}\n', 2, /^timeouts block with no timeouts specified$/);
    expectSetupError('. {\n timeouts a {\n  read 3s\n }\n}\n', 2, /^Wrong argument count or unexpected line ending after 'a'$/);
    expectSetupError('. {\n timeouts {\n  read 0.5s\n }\n}\n', 3, /^timeout provided '500ms' needs to be between 1 second and 24 hours$/);
    expectSetupError('. {\n timeouts {\n  read 25h\n }\n}\n', 3, /^timeout provided '25h0m0s' needs to be between 1 second and 24 hours$/);
    expectSetupError('. {\n timeouts {\n  idle abc\n }\n}\n', 3, /^failed to parse duration 'abc'$/);
    expectSetupError('. {\n timeouts {\n  read\n }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'read'$/);
    expectSetupError('. {\n timeouts {\n  write 1s 2s\n }\n}\n', 3, /^Wrong argument count or unexpected line ending after '2s'$/);
    expectSetupError('. {\n timeouts {\n  max_queries 5\n }\n}\n', 3, /^unknown option: 'max_queries'$/);
  });

  it('accepts bare seconds and Go durations, as CoreDNS does', async () => {
    running = await startServer('. {\n timeouts {\n  read 30\n  write 1m30s\n  idle 24h\n }\n whoami\n}\n');
    const connection = await connect(running.port);
    connection.query('ok.example');
    expect(await repliesOf(connection, 1)).toHaveLength(1);
    connection.destroy();
  });
});

describe('timeouts change the TCP deadlines (WIRE-18)', () => {
  it('read: a silent connection and a slow sender are closed after the configured time, not 3 s', async () => {
    running = await startServer('. {\n timeouts {\n  read 1s\n }\n whoami\n}\n');
    const [silent, slow] = await Promise.all([connect(running.port), connect(running.port)]);
    trickle(slow, 200);
    const [silentMs, slowMs] = await Promise.all([silent.closed, slow.closed]);
    expect(silentMs).toBeGreaterThan(950);
    expect(silentMs).toBeLessThan(1500);
    // The trickle kept the connection busy; only a whole message would have counted.
    expect(slowMs).toBeLessThan(1500);
    expect(slow.replies).toHaveLength(0);
  });

  it('idle: after an answer the next query must come within the configured time', async () => {
    running = await startServer('. {\n timeouts {\n  read 5s\n  idle 1s\n }\n whoami\n}\n');
    const connection = await connect(running.port);
    connection.query('first.example');
    expect(await repliesOf(connection, 1)).toHaveLength(1);
    const closedMs = await connection.closed;
    expect(closedMs).toBeGreaterThan(950);
    expect(closedMs).toBeLessThan(1600);
  });

  it('the last block on a shared listener that sets a timeout wins, as in CoreDNS', async () => {
    running = await startServer('a.example {\n timeouts {\n  read 5s\n }\n whoami\n}\n. {\n timeouts {\n  read 1s\n }\n whoami\n}\nb.example {\n whoami\n}\n');
    const connection = await connect(running.port);
    const closedMs = await connection.closed;
    expect(closedMs).toBeGreaterThan(950);
    expect(closedMs).toBeLessThan(1500);
  });
});
