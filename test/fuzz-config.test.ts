// Malformed configuration never crashes clusterdns: Corefiles (a table and
// seeded mutations of a full one), Kubernetes manifests and hosts files that
// are garbage give a clear error naming the file (at start) or are logged
// while the last good data keeps serving (on change).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { random as seededRandom } from '../bench/synthetic.ts';
import { planFromCorefile } from '../src/config.ts';
import { CorefileError } from '../src/corefile/types.ts';
import { queryUdp } from './support/dns.ts';
import { useFixture } from './support/fixture.ts';
import { runCli } from './support/process.ts';

const EXAMPLES = path.resolve(import.meta.dirname, '../examples/cluster');
const fixture = useFixture();
let dir = '';

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clusterdns-fuzz-config-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * A Corefile plans, or fails with a CorefileError naming the file and a line,
 * or with a plugin's own error saying what it could not use (a hosts file it
 * cannot open); anything else is a defect.
 */
function planOrClearError(text: string): 'planned' | Error {
  try {
    planFromCorefile(text, 'Corefile', { dnsPort: 0, env: {} });
    return 'planned';
  } catch (error) {
    if (error instanceof CorefileError || (error instanceof Error && /^plugin\/[a-z_0-9]+: /.test(error.message))) return error;
    throw new Error(`not a clear Corefile error for ${JSON.stringify(text.slice(0, 300))}: ${(error as Error).stack?.slice(0, 2000)}`);
  }
}

/** Every plugin, most options: the text the mutations start from. */
const FULL_COREFILE = `(common) {
    errors {
        consolidate 5m ".* timeout$" warning
    }
    log . "{remote} {type} {name} {rcode}" {
        class denial error
    }
}
.:1053 cluster.local:1053 {
    import common
    bind 127.0.0.1
    health 127.0.0.1:0 {
        lameduck 5s
    }
    ready 127.0.0.1:0
    prometheus 127.0.0.1:0
    rrl . {
        window 15
        responses-per-second 10
        nxdomains-per-second 5
        slip-ratio 2
        max-table-size 1000
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests ${EXAMPLES}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    hosts {
        10.0.0.1 a.example
        fallthrough
    }
    forward . 127.0.0.1:5300 127.0.0.2:5300 {
        max_concurrent 1000
        policy sequential
        health_check 5s
        expire 10s
    }
    cache 30 {
        success 1000 60 5
        denial 100
        prefetch 10 1m 20%
        serve_stale 1h
    }
    loadbalance round_robin
    loop
    reload 10s 2s
}
`;

describe('malformed Corefiles', () => {
  const table: [string, string][] = [
    ['unclosed block', '. {\n whoami\n'],
    ['stray closing brace', '. {\n whoami\n}\n}\n'],
    ['block without key', '{\n whoami\n}\n'],
    ['unterminated quote', '. {\n log "abc\n}\n'],
    ['nested braces', '. {\n cache {\n {\n }\n }\n}\n'],
    ['numbers out of range', '. {\n cache 99999999999999999999999\n}\n'],
    ['negative numbers', '. {\n cache -1\n forward . 1.2.3.4 {\n max_fails -3\n }\n}\n'],
    ['not an address', '. {\n forward . 300.1.2.3:99999\n}\n'],
    ['bad CIDR key', '10.0.0.0/33 {\n whoami\n}\n'],
    ['bad port key', '.:99999 {\n whoami\n}\n'],
    ['binary garbage', '. {\n \u0000\u0001\u00ff\ufffd whoami\n}\n'],
    ['only braces', '{}{}{}}{'],
    ['empty env', '{$NOPE} {\n whoami\n}\n'],
    ['import of nothing', '. {\n import\n}\n'],
    ['import loop', '(a) {\n import a\n}\n. {\n import a\n}\n'],
    ['deep nesting', `. {\n kubernetes ${'{ '.repeat(200)}${'} '.repeat(200)}\n}\n`],
    ['huge token', `. {\n hosts ${'x'.repeat(100_000)}\n}\n`],
    ['regexp bomb', '. {\n errors {\n consolidate 1s "(a+)+$"\n }\n}\n'],
    ['rrl NaN', '. {\n rrl {\n responses-per-second NaN\n window Infinity\n }\n}\n'],
  ];
  for (const [what, text] of table) {
    it(`${what}: planned or a clear error`, () => {
      const outcome = planOrClearError(text);
      if (outcome !== 'planned') expect(outcome.message).toMatch(/^Corefile:\d+ - Error during parsing: |^plugin\/[a-z]+: /);
    });
  }

  it('500 seeded mutations of a full Corefile: each plans or fails with file and line', () => {
    const seed = Number(process.env.FUZZ_SEED ?? 7);
    const random = seededRandom(seed);
    const pieces = ['{', '}', '"', '\\', '#', '$', '{$X}', '-1', '0', '1e309', 'NaN', '99999999999', '1.5', '::', '[::1]:53', '300.1.1.1/33', '.', ':', 'import', 'x'.repeat(300), '\u0000', '\n'];
    const lines = FULL_COREFILE.split('\n');
    let planned = 0;
    for (let i = 0; i < 500; i++) {
      const mutated = [...lines];
      for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
        const at = Math.floor(random() * mutated.length);
        const choice = random();
        if (choice < 0.25) mutated.splice(at, 1);
        else if (choice < 0.45) mutated.splice(at, 0, mutated[Math.floor(random() * mutated.length)]!);
        else {
          // Replace or insert a token within the line.
          const words = mutated[at]!.split(' ');
          const word = Math.floor(random() * words.length);
          words.splice(word, choice < 0.75 ? 1 : 0, pieces[Math.floor(random() * pieces.length)]!);
          mutated[at] = words.join(' ');
        }
      }
      if (planOrClearError(mutated.join('\n')) === 'planned') planned++;
    }
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    expect(planned).toBeGreaterThan(10);
    expect(planned).toBeLessThan(490);
  });

  it('the command reports a garbage Corefile on one line and exits 1, without a stack trace', async () => {
    const result = await runCli(['-conf', 'stdin'], { input: '. {\n forward . 300.1.2.3\n cache {\n}\n' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^\[FATAL\] stdin:\d+ - Error during parsing: [^\n]+\n$/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

/** Kubernetes manifests and hosts files that are garbage in one way or another. */
const GARBAGE: [string, string][] = [
  ['binary', '\u0000\u0001\u0002\u00ff\ufffe'.repeat(50)],
  ['YAML syntax', 'kind: Service\nmetadata: {name: [oops\n'],
  ['JSON syntax', '{"kind": "Service", "metadata": {"name": "x"'],
  ['deep nesting', `${'['.repeat(5000)}${']'.repeat(5000)}`],
  ['alias bomb', 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n'],
  ['wrong types', 'kind: Service\nmetadata: 42\nspec: "text"\n'],
  ['wrong nested types', 'kind: Service\nmetadata: {name: s, namespace: [1]}\nspec: {ports: {a: 1}, clusterIP: {x: 1}, selector: 3}\n'],
  ['endpoint slice garbage', 'kind: EndpointSlice\nmetadata: {name: e, labels: 5}\nendpoints: [{addresses: [1, null]}, 7]\nports: "x"\n'],
  ['pod garbage', 'kind: Pod\nmetadata: {name: p}\nstatus: {podIPs: [{ip: []}], conditions: "ready"}\nspec: {hostname: {}}\n'],
  ['list garbage', 'kind: List\nitems: {a: 1}\n'],
  ['null document', '---\nnull\n---\n~\n---\n[]\n'],
  ['huge line', `kind: Service\nmetadata: {name: ${'s'.repeat(1_000_000)}}\n`],
];

describe('malformed manifests', () => {
  /** A copy of the example cluster, plus `garbage` as zz-garbage.yaml when given. */
  function cluster(garbage: string | null): { dir: string; corefile: string } {
    const copy = fs.mkdtempSync(path.join(dir, 'cluster-'));
    for (const file of fs.readdirSync(EXAMPLES)) fs.copyFileSync(path.join(EXAMPLES, file), path.join(copy, file));
    if (garbage !== null) fs.writeFileSync(path.join(copy, 'zz-garbage.yaml'), garbage);
    return { dir: copy, corefile: `cluster.local:0 {\n    kubernetes cluster.local {\n        manifests ${copy}\n    }\n}\n` };
  }
  /** Every error logged names the bad file. */
  const errorsNameTheFile = (lines: string[]) =>
    expect(lines.filter((line) => line.startsWith('[ERROR]')).filter((line) => !line.includes('zz-garbage.yaml'))).toEqual([]);

  async function startWithGarbage(text: string): Promise<{ failure: Error | null; lines: string[] }> {
    const { corefile } = cluster(text);
    const lines = fixture.captureLog();
    const failure = await fixture.serve(corefile).then(() => null, (error: Error) => error);
    return { failure, lines };
  }

  async function editToGarbage(text: string): Promise<string[]> {
    const { dir: copy, corefile } = cluster(null);
    const lines = fixture.captureLog();
    const port = await fixture.serve(corefile);
    fs.writeFileSync(path.join(copy, 'zz-garbage.yaml'), text);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const reply = await queryUdp(port, 'web.demo.svc.cluster.local');
    expect(reply.rcode).toBe('NOERROR');
    expect((reply.answers ?? []).map((record) => (record as { data: unknown }).data)).toEqual(['10.96.100.10']);
    return lines;
  }

  for (const [what, text] of GARBAGE) {
    it(`${what}: at start, a clear error naming the file (or the garbage is skipped)`, async () => {
      const { failure, lines } = await startWithGarbage(text);
      if (failure !== null) expect(failure.message).toContain('zz-garbage.yaml');
      errorsNameTheFile(lines);
    });

    it(`${what}: as an edit while serving, logged naming the file, and the last good state keeps serving`, async () => {
      const lines = await editToGarbage(text);
      errorsNameTheFile(lines);
    });
  }
});

describe('malformed hosts files', () => {
  for (const [what, text] of [...GARBAGE, ['addresses garbage', '300.1.1.1 a\n::::: b\n10.0.0.1\n1.2.3.4 ' + 'x.'.repeat(200) + '\nfe80::1%' + 'e'.repeat(1000) + ' c\n']] as [string, string][]) {
    it(`${what}: served around, at start and as an edit`, async () => {
      const file = path.join(dir, `hosts-${what.replaceAll(' ', '-')}`);
      fs.writeFileSync(file, text);
      const lines = fixture.captureLog();
      const port = await fixture.serve(`example:0 {\n    hosts ${file} {\n        10.0.0.9 inline.example\n        reload 100ms\n    }\n}\n`);
      expect((await queryUdp(port, 'inline.example')).rcode).toBe('NOERROR');
      fs.writeFileSync(file, `10.0.0.7 good.example\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 400));
      const reply = await queryUdp(port, 'good.example');
      expect((reply.answers ?? []).map((record) => (record as { data: unknown }).data)).toEqual(['10.0.0.7']);
      expect(lines.filter((line) => line.startsWith('[ERROR]')).filter((line) => !line.includes(file))).toEqual([]);
    });
  }
});
