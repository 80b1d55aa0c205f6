// Hostile packets and TCP streams against the clusterdns command (bench/fuzz.ts
// has the mutators and checks; `npx node bench/fuzz.ts` is the long run).
// CI size by default; FUZZ_PACKETS, FUZZ_TCP and FUZZ_SEED change it. The
// seed is printed, and a failure prints its packet in hex.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeResult, fuzz, startFuzzTarget, type FuzzTarget } from '../bench/fuzz.ts';

const PACKETS = Number(process.env.FUZZ_PACKETS ?? 50_000);
const TCP_STREAMS = Number(process.env.FUZZ_TCP ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));

let target: FuzzTarget;
beforeAll(async () => {
  target = await startFuzzTarget();
}, 60_000);
afterAll(async () => {
  await target?.stop();
});

it(`WIRE-1, WIRE-2, WIRE-16: ${PACKETS} mutated UDP packets and ${TCP_STREAMS} hostile TCP streams: the server lives, keeps answering correctly, and every reply parses with its packet's ID`, async () => {
  console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} reproduces this round)`);
  const result = await fuzz({
    host: target.host,
    port: target.port,
    packets: PACKETS,
    tcpStreams: TCP_STREAMS,
    seed: SEED,
    alive: () => target.child.exitCode === null,
    afterBatch: () => {
      target.upstream.queries.length = 0;
    },
  });
  const report = describeResult(result);
  console.log(report);
  if (target.child.exitCode !== null) console.log(`server output:\n${target.output()}`);
  expect(result.failures, report).toEqual([]);
  expect(result.sent).toBe(PACKETS);
  expect(result.tcpStreams).toBe(TCP_STREAMS);
  // The mutations must reach the chain, not only the parser: many replies are real answers.
  expect(result.byRcode.NOERROR ?? 0).toBeGreaterThan(PACKETS / 50);
  expect(result.byRcode.FORMERR ?? 0).toBeGreaterThan(PACKETS / 50);
  expect(target.child.exitCode).toBeNull();
}, 300_000);
