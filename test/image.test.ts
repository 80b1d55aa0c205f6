// The container image, built and run for real: deploy/image-test.sh builds it
// with podman (on a base made locally, no registry needed) and runs it the way
// the Deployment does (STOCK-7, STOCK-8): uid 65532, only NET_BIND_SERVICE,
// no_new_privs, read-only root, 170 MiB limit, Corefile at
// /etc/coredns/Corefile, host network, DNS on :53.
//
// Runs when the machine can (root, podman, runc, dig, curl, and debootstrap
// unless the base image exists); skipped with the reason otherwise.
// CLUSTERDNS_IMAGE_TEST=1 runs it regardless (a missing tool then fails it),
// CLUSTERDNS_IMAGE_TEST=0 skips it. About 20 s once the base image and the
// npm layer exist, about 2 minutes from nothing (debootstrap, apt, npm ci).

import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../deploy/image-test.sh', import.meta.url));
const BASE_IMAGE = 'localhost/clusterdns-node:24-slim';
const SCRIPT_TIMEOUT_MS = 9 * 60_000;

function installed(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Why the image cannot be built and run here, or null when it can. */
function skipReason(): string | null {
  const wanted = process.env.CLUSTERDNS_IMAGE_TEST;
  if (wanted === '0') return 'CLUSTERDNS_IMAGE_TEST=0';
  if (wanted === '1') return null;
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux (rootful podman)';
  const missing = ['podman', 'runc', 'dig', 'curl', 'ss'].filter((tool) => !installed(tool));
  if (missing.length > 0) return `needs ${missing.join(', ')} (Debian: apt-get install podman runc bind9-dnsutils curl iproute2)`;
  const baseExists = spawnSync('podman', ['--runtime', 'runc', 'image', 'exists', BASE_IMAGE], { stdio: 'ignore' }).status === 0;
  if (!baseExists && !installed('debootstrap')) return `needs debootstrap to make ${BASE_IMAGE}`;
  return null;
}

function runScript(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'], timeout: SCRIPT_TIMEOUT_MS });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('close', (code) => resolve({ code, output }));
  });
}

const skip = skipReason();
if (skip !== null) console.warn(`image test skipped: ${skip}`);

describe('the container image, built with podman and run as the Deployment runs it', () => {
  if (skip !== null) it.skip(`skipped: ${skip}`, () => {});

  it.skipIf(skip !== null)('STOCK-7, STOCK-8: deploy/image-test.sh answers dig on :53 over UDP and TCP, stays under 170 MiB, exits 0 on SIGTERM', async () => {
    const { code, output } = await runScript();
    // The figures the README quotes, in the test's output.
    for (const line of output.split('\n')) if (/^image-test: (image size|idle RSS|base: \S+ is|PASS)/.test(line)) console.log(line);

    expect(code, output).toBe(0);
    expect(output).toMatch(/^image-test: dig @127\.0\.0\.1 -p \d+ web\.demo\.svc\.cluster\.local A over udp: 10\.96\.100\.10$/m);
    expect(output).toMatch(/^image-test: dig @127\.0\.0\.1 -p \d+ web\.demo\.svc\.cluster\.local A over tcp: 10\.96\.100\.10$/m);
    expect(output).toMatch(/^image-test: dig nope\.demo\.svc\.cluster\.local A: NXDOMAIN$/m);
    expect(output).toMatch(/^image-test: process: \/usr\/local\/bin\/node \/clusterdns\/bin\/clusterdns\.js -conf \/etc\/coredns\/Corefile \| uid 65532, CapEff=CapBnd=NET_BIND_SERVICE, no_new_privs, root mounted ro$/m);
    expect(output).toMatch(/^image-test: stop: podman stop \(SIGTERM\) -> exit code 0 /m);

    const rssKb = Number(/^image-test: idle RSS: \d+ MiB \((\d+) kB VmRSS/m.exec(output)?.[1]);
    expect(rssKb).toBeGreaterThan(0);
    expect(rssKb).toBeLessThan(170 * 1024);
  }, SCRIPT_TIMEOUT_MS + 60_000);
});
