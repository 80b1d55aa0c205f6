// clusterdns -validate (issue 13): every setup error of a Corefile at once
// with its line, warnings for mistakes CoreDNS lets through, and nothing
// bound, started or contacted. The command is run as a user runs it.

import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os, { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { definePlugin } from '../src/plugin.ts';
import { builtinPlugins, type PluginRegistry } from '../src/registry.ts';
import { validateCorefile, type ValidationReport } from '../src/validate.ts';
import { BIN, freePort, runCli } from './support/process.ts';

const EXAMPLE_CLUSTER = resolve('examples/cluster');

function tempCorefile(text: string, name = 'Corefile'): string {
  const dir = mkdtempSync(join(tmpdir(), 'clusterdns-validate-'));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** kubeadm's Corefile (STOCK-1) on the given ports, with the manifests source instead of an API server. */
function kubeadmCorefile(ports: { dns: number; health: number; ready: number; metrics: number }): string {
  return readFileSync('test/corefile/fixtures/stock-1.Corefile', 'utf8')
    .replace('.:53 {', `.:${ports.dns} {`)
    .replace('health {', `health 127.0.0.1:${ports.health} {`)
    .replace(/ready\n/, `ready 127.0.0.1:${ports.ready}\n`)
    .replace('prometheus :9153', `prometheus 127.0.0.1:${ports.metrics}`)
    .replace('pods insecure', `manifests ${EXAMPLE_CLUSTER}\n       pods insecure`);
}

function parseJson(stdout: string): ValidationReport {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as ValidationReport;
}

/** Holds a TCP and a UDP socket on the port (all addresses) until released. */
async function holdPort(port: number): Promise<() => Promise<void>> {
  const tcp = net.createServer();
  await new Promise<void>((done, fail) => tcp.once('error', fail).listen(port, done));
  const udp = dgram.createSocket('udp6');
  await new Promise<void>((done, fail) => udp.once('error', fail).bind(port, done));
  return async () => {
    await new Promise((done) => tcp.close(done));
    await new Promise((done) => udp.close(() => done(undefined)));
  };
}

const warningsOf = (report: ValidationReport): [number | null, string][] => report.warnings.map(({ line, message }) => [line, message]);

/** The warnings of a Corefile that has no errors, as [line, message]. */
async function warningsFor(corefile: string, plugins?: PluginRegistry): Promise<[number | null, string][]> {
  const report = await validateCorefile(corefile, 'Corefile', { dnsPort: 53, plugins });
  expect(report.errors).toEqual([]);
  return warningsOf(report);
}

describe('clusterdns -validate', () => {
  it('reports every error of one Corefile at once, each with its line, in CoreDNS wording, and exits 1', async () => {
    const file = tempCorefile(`.:${await freePort()} {
    errors
    nosuchplugin
    kubernetes cluster.local {
        pods sometimes
    }
    forward .
    cache 30
}

example.org:1053 {
    whoami
}
example.org:1053 {
    etcd example.org
}

tls://.:853 {
    whoami
}
`);
    const result = await runCli(['-validate', '-conf', file, '--json']);
    expect(result.code).toBe(1);
    const report = parseJson(result.stdout);
    expect(report.ok).toBe(false);
    expect(report.errors.map(({ file: where, line, message }) => [where, line, message])).toEqual([
      [file, 3, "Unknown directive 'nosuchplugin'"],
      [file, 5, 'plugin/kubernetes: wrong value for pods: sometimes, must be one of: disabled, verified, insecure'],
      [file, 7, expect.stringMatching(/^Wrong argument count or unexpected line ending after '\.'/)],
      [file, 14, 'cannot serve dns://example.org.:1053 - it is already defined'],
      [file, 15, "Directive 'etcd' is a CoreDNS plugin that clusterdns does not support"],
      [file, 18, expect.stringMatching(/^cannot serve tls:\/\/\.:853: the tls:\/\/ scheme/)],
    ]);

    // The text form: the server's own error lines, then a summary.
    const text = await runCli(['-validate', '-conf', file]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(`${file}:3 - Error during parsing: Unknown directive 'nosuchplugin'\n`);
    expect(text.stdout).toContain(`${file}:14 - Error during parsing: cannot serve dns://example.org.:1053 - it is already defined\n`);
    expect(text.stdout.trim().split('\n').at(-1)).toBe(`${file}: invalid, 6 errors, 0 warnings`);
  });

  it('a broken structure (an unclosed block) ends the check there; the errors before it are kept', async () => {
    const file = tempCorefile('.:1053 {\n    whoami\n    nosuchplugin\n    cache 30 {\n');
    const result = await runCli(['-validate', '-conf', file, '-json']);
    expect(result.code).toBe(1);
    const report = parseJson(result.stdout);
    expect(report.errors).toEqual([
      { file, line: 3, message: "Unknown directive 'nosuchplugin'" },
      { file, line: 4, message: expect.stringMatching(/^Unexpected EOF, expecting '}'/) },
    ]);
  });

  it("binds nothing: the kubeadm Corefile validates, exit 0, while its DNS, health, ready and metrics ports are held by another process", async () => {
    const ports = { dns: await freePort(), health: await freePort(), ready: await freePort(), metrics: await freePort() };
    const releases = await Promise.all(Object.values(ports).map(holdPort));
    try {
      const file = tempCorefile(kubeadmCorefile(ports));
      for (const port of Object.values(ports)) expect(readFileSync(file, 'utf8')).toContain(`:${port}`);
      const result = await runCli(['-validate', '-conf', file, '-json']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(parseJson(result.stdout)).toEqual({ ok: true, errors: [], warnings: [] });
      const text = await runCli(['-validate', '-conf', file]);
      expect(text.stdout).toBe(`${file}: valid, 0 errors, 0 warnings\n`);
      // The server itself cannot start on that Corefile now: the check above did not just miss the ports.
      const serve = await runCli(['-conf', file]);
      expect(serve.code).toBe(1);
      expect(serve.stderr).toMatch(/address already in use/);
    } finally {
      await Promise.all(releases.map((release) => release()));
    }
  });

  it('returns within a second for the kubeadm Corefile, process start included (CPU time; wall time too when the machine is not busy)', () => {
    const file = resolve('test/corefile/fixtures/stock-1.Corefile');
    // bash's `times` gives the CPU time of the command; wall time on a shared machine says more about the neighbours.
    const runs = [0, 1, 2].map(() => {
      const started = performance.now();
      const result = spawnSync('bash', ['-c', '"$@" >/dev/null; code=$?; times; exit $code', 'bash', process.execPath, BIN, '-validate', '-conf', file], { encoding: 'utf8' });
      const wall = performance.now() - started;
      expect(result.status).toBe(0);
      const [user, system] = result.stdout.trim().split('\n')[1]!.split(' ').map((time) => {
        const [, minutes, seconds] = /^(\d+)m([\d.]+)s$/.exec(time)!;
        return Number(minutes) * 60_000 + Number(seconds) * 1000;
      });
      return { wall, cpu: user! + system! };
    });
    expect(Math.min(...runs.map((run) => run.cpu))).toBeLessThan(1000);
    if (os.loadavg()[0]! < os.availableParallelism()) expect(Math.min(...runs.map((run) => run.wall))).toBeLessThan(1000);
    else console.log(`load average ${os.loadavg()[0]} on ${os.availableParallelism()} CPUs: wall times ${runs.map((run) => Math.round(run.wall)).join(', ')} ms not checked`);
  });

  it('checks what plugins check at setup from files: a bad zone file line, a missing weight file; a missing hosts file is a warning, as in CoreDNS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clusterdns-validate-'));
    writeFileSync(join(dir, 'db.example.org'), '$ORIGIN example.org.\n@ 3600 IN SOA ns1 admin 1 7200 3600 1209600 3600\nwww IN A not-an-address\n');
    const file = join(dir, 'Corefile');
    writeFileSync(file, `example.org:1053 {
    file db.example.org
}
.:1053 {
    hosts ${join(dir, 'no-such-hosts')}
    loadbalance weighted ${join(dir, 'no-such-weights')} {
        reload 0
    }
    forward . 127.0.0.1:5301
}
`);
    const report = await validateCorefile(readFileSync(file, 'utf8'), file, { dnsPort: 53 });
    expect(report.errors).toEqual([
      { file: join(dir, 'db.example.org'), line: 3, message: expect.stringMatching(/^plugin\/file: .*not-an-address/) },
      { file, line: 6, message: expect.stringMatching(/^plugin\/loadbalance: .*no such file or directory/) },
    ]);
    expect(warningsOf(report)).toEqual([[5, `plugin/hosts: File does not exist: ${join(dir, 'no-such-hosts')}`]]);
  });

  describe('warnings for mistakes CoreDNS lets through (exit 0)', () => {
    // autopath is named in CoreDNS's plugin order; until clusterdns has one, a stand-in lets the Corefile set up.
    const plugins = builtinPlugins.definition('autopath')
      ? builtinPlugins
      : builtinPlugins.withPlugin(definePlugin({ name: 'autopath', parse: () => null, create: () => ({}) }), { before: 'minimal' });

    it('autopath @kubernetes without pods verified', async () => {
      const corefile = `.:53 {
    autopath @kubernetes
    kubernetes cluster.local {
        pods insecure
    }
}
cluster.local:5300 {
    autopath @kubernetes
    kubernetes cluster.local
}
cluster.local:5301 {
    autopath @kubernetes
    kubernetes cluster.local {
        pods verified
    }
}
`;
      expect(await warningsFor(corefile, plugins)).toEqual([
        [2, "autopath @kubernetes needs 'pods verified' in the kubernetes plugin (it has 'pods insecure' at line 4): without it autopath never finds the client's namespace and does nothing"],
        [8, "autopath @kubernetes needs 'pods verified' in the kubernetes plugin (it has 'pods disabled', the default): without it autopath never finds the client's namespace and does nothing"],
      ]);
    });

    it("a forward to this block's own address and port; a forward to another block of the same server is fine", async () => {
      const corefile = `.:5300 {
    forward . 127.0.0.1:5300
}
.:5301 {
    bind 127.0.0.1
    forward . 127.0.0.1:5302 127.0.0.1:5301
}
.:5302 {
    forward . 127.0.0.1:5300
}
`;
      expect(await warningsFor(corefile)).toEqual([
        [2, "forward to 127.0.0.1:5300 sends queries for . to this server block's own listener dns://:5300: they come back to this forward (a loop; the loop plugin, when present, stops the server at start)"],
        [6, "forward to 127.0.0.1:5301 sends queries for . to this server block's own listener dns://127.0.0.1:5301: they come back to this forward (a loop; the loop plugin, when present, stops the server at start)"],
      ]);
    });

    it('a plugin zone taken by a block with a longer zone on the same port, or outside its block; a sub-zone served elsewhere is not reported', async () => {
      const corefile = `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa
    forward . 10.0.0.1
}
cluster.local:53 {
    kubernetes cluster.local
}
example.org:53 {
    hosts {
        10.0.0.5 www.example.org
    }
    kubernetes example.net
}
.:5300 {
    forward . 10.0.0.1
}
example.org:5300 {
    whoami
}
`;
      expect(await warningsFor(corefile)).toEqual([
        [2, "kubernetes zone cluster.local. is shadowed by the server block 'cluster.local:53' (Corefile:5): the longest zone wins, so queries for cluster.local. go to that block and never reach this kubernetes"],
        [12, "kubernetes zone example.net. is outside this server block's zones (example.org.): no query for it reaches this block"],
      ]);
    });

    it('fallthrough zones outside the plugin zones', async () => {
      const corefile = `.:53 {
    kubernetes cluster.local {
        fallthrough in-addr.arpa ip6.arpa
    }
    hosts {
        fallthrough
    }
}
.:5300 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        fallthrough in-addr.arpa ip6.arpa
    }
}
`;
      expect(await warningsFor(corefile)).toEqual([
        [3, 'fallthrough zone in-addr.arpa. is outside the kubernetes zones (cluster.local.): names in it never reach kubernetes, so it never falls through'],
        [3, 'fallthrough zone ip6.arpa. is outside the kubernetes zones (cluster.local.): names in it never reach kubernetes, so it never falls through'],
      ]);
    });

    it('the command exits 0 with warnings and prints them after the errors, with the summary', async () => {
      const file = tempCorefile('.:53 {\n    kubernetes cluster.local {\n        fallthrough example.com\n    }\n}\n');
      const result = await runCli(['-validate', '-conf', file]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(
        `[WARNING] ${file}:3 - fallthrough zone example.com. is outside the kubernetes zones (cluster.local.): names in it never reach kubernetes, so it never falls through\n` +
          `${file}: valid, 0 errors, 1 warning\n`,
      );
    });
  });

  it('a missing -conf file is an error, exit 1; -json without -validate is a usage error', async () => {
    const missing = join(tmpdir(), 'clusterdns-validate-no-such-Corefile');
    const result = await runCli(['-validate', '-conf', missing, '-json']);
    expect(result.code).toBe(1);
    expect(parseJson(result.stdout)).toEqual({ ok: false, errors: [{ file: missing, line: null, message: expect.stringMatching(/ENOENT/) }], warnings: [] });
    const usage = await runCli(['-json', '-conf', missing]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^-json is only for -validate/);
  });
});
