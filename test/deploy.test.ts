// Deployment artefacts (deploy/): the Kubernetes objects are kubeadm's CoreDNS
// objects (STOCK-6..10, Corefile STOCK-2), the image runs the server the way the
// CoreDNS Deployment starts it (STOCK-7), and deploy/swap.sh drives the tools it
// needs in the right order. No container engine or cluster is needed: the image
// is checked by reading the Dockerfile and by running its command from the repo,
// and swap.sh against stub kubectl/kind/docker commands.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MANIFEST = join(ROOT, 'deploy/kubernetes/clusterdns.yaml');
const DOCKERFILE = join(ROOT, 'deploy/Dockerfile');
const DOCKERIGNORE = join(ROOT, 'deploy/Dockerfile.dockerignore');
const SWAP = join(ROOT, 'deploy/swap.sh');

const temps: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `clusterdns-deploy-${prefix}-`));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Kubernetes manifest
// ---------------------------------------------------------------------------

// Objects are read as plain JSON: the assertions say which fields matter.
type Json = any;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: Json;
}

function loadManifest(): K8sObject[] {
  const documents = parseAllDocuments(readFileSync(MANIFEST, 'utf8'));
  if (!Array.isArray(documents)) throw new Error('expected a multi-document stream');
  const objects: K8sObject[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) throw new Error(`YAML error in ${MANIFEST}: ${document.errors[0]!.message}`);
    const value = document.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

const objects = loadManifest();

function find(kind: string, name: string): K8sObject {
  const matches = objects.filter((object) => object.kind === kind && object.metadata.name === name);
  expect(matches, `${kind} ${name}`).toHaveLength(1);
  return matches[0]!;
}

const deployment = find('Deployment', 'coredns');
const podSpec: Json = deployment.spec.template.spec;
const container: Json = podSpec.containers[0];

/** kubeadm >= 1.32's Corefile (STOCK-1 with STOCK-2's cache block) for cluster.local, as kubeadm renders it. */
const STOCK_2_COREFILE = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`;

describe('deploy/kubernetes/clusterdns.yaml: the objects kubeadm creates for CoreDNS', () => {
  it('has exactly the six kubeadm objects, with their names and namespaces', () => {
    const summary = objects.map((object) => `${object.apiVersion} ${object.kind} ${object.metadata.namespace ?? '-'}/${object.metadata.name}`);
    expect(summary.sort()).toEqual([
      'apps/v1 Deployment kube-system/coredns',
      'rbac.authorization.k8s.io/v1 ClusterRole -/system:coredns',
      'rbac.authorization.k8s.io/v1 ClusterRoleBinding -/system:coredns',
      'v1 ConfigMap kube-system/coredns',
      'v1 Service kube-system/kube-dns',
      'v1 ServiceAccount kube-system/coredns',
    ]);
  });

  describe('RBAC (STOCK-6)', () => {
    const role = find('ClusterRole', 'system:coredns');
    const binding = find('ClusterRoleBinding', 'system:coredns');

    it('STOCK-6: the ClusterRole has exactly the two CoreDNS rules', () => {
      const rules = (role.rules as Json[]).map((rule) => ({
        apiGroups: [...rule.apiGroups].sort(),
        resources: [...rule.resources].sort(),
        verbs: [...rule.verbs].sort(),
        other: Object.keys(rule).filter((key) => !['apiGroups', 'resources', 'verbs'].includes(key)),
      }));
      expect(rules).toEqual([
        { apiGroups: [''], resources: ['endpoints', 'namespaces', 'pods', 'services'], verbs: ['list', 'watch'], other: [] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'], other: [] },
      ]);
    });

    it('STOCK-6: no get, no writes, no wildcards, nodes never read', () => {
      for (const rule of role.rules as Json[]) {
        for (const verb of rule.verbs as string[]) expect(['list', 'watch']).toContain(verb);
        for (const field of ['apiGroups', 'resources', 'verbs']) expect(rule[field]).not.toContain('*');
        expect(rule.resources).not.toContain('nodes');
        expect(rule.resources).not.toContain('secrets');
      }
      expect(role.aggregationRule).toBeUndefined();
    });

    it('STOCK-6: the binding ties the role to ServiceAccount kube-system/coredns, with the bootstrapping label', () => {
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' });
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }]);
      expect(role.metadata.labels).toEqual({ 'kubernetes.io/bootstrapping': 'rbac-defaults' });
      expect(binding.metadata.labels).toEqual({ 'kubernetes.io/bootstrapping': 'rbac-defaults' });
      expect(binding.metadata.annotations).toEqual({ 'rbac.authorization.kubernetes.io/autoupdate': 'true' });
      expect(podSpec.serviceAccountName).toBe('coredns');
      find('ServiceAccount', 'coredns');
    });
  });

  it('STOCK-2: the ConfigMap holds kubeadm >= 1.32\'s Corefile for cluster.local, under the key Corefile', () => {
    const configMap = find('ConfigMap', 'coredns');
    expect(Object.keys(configMap.data)).toEqual(['Corefile']);
    expect(configMap.data.Corefile).toBe(STOCK_2_COREFILE);
  });

  it('STOCK-2: every plugin that Corefile uses is in this build (clusterdns -plugins)', () => {
    const configMap = find('ConfigMap', 'coredns');
    const directives = new Set<string>();
    let depth = 0;
    for (const line of (configMap.data.Corefile as string).split('\n')) {
      const words = line.trim().split(/\s+/).filter(Boolean);
      if (depth === 1 && words.length > 0 && words[0] !== '}') directives.add(words[0]!);
      depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    }
    expect([...directives].sort()).toEqual(['cache', 'errors', 'forward', 'health', 'kubernetes', 'loadbalance', 'loop', 'prometheus', 'ready', 'reload']);
    const listed = execFileSync(process.execPath, [join(ROOT, 'bin/clusterdns.js'), '-plugins'], { encoding: 'utf8', timeout: 10_000 });
    const plugins = new Set([...listed.matchAll(/^\s+dns\.(\S+)$/gm)].map((match) => match[1]!));
    for (const directive of directives) expect(plugins, `plugin ${directive}`).toContain(directive);
  });

  describe('Deployment (STOCK-7, STOCK-8, STOCK-9)', () => {
    it('STOCK-7: labels and selector k8s-app: kube-dns; rolling update with maxUnavailable 1', () => {
      expect(deployment.metadata.labels).toEqual({ 'k8s-app': 'kube-dns' });
      expect(deployment.spec.selector).toEqual({ matchLabels: { 'k8s-app': 'kube-dns' } });
      expect(deployment.spec.template.metadata.labels).toEqual({ 'k8s-app': 'kube-dns' });
      expect(deployment.spec.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
      expect(deployment.spec.replicas).toBe(2);
    });

    it('STOCK-7: priority, anti-affinity, tolerations, nodeSelector, dnsPolicy Default', () => {
      expect(podSpec.priorityClassName).toBe('system-cluster-critical');
      expect(podSpec.affinity).toEqual({
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [{
            weight: 100,
            podAffinityTerm: {
              labelSelector: { matchExpressions: [{ key: 'k8s-app', operator: 'In', values: ['kube-dns'] }] },
              topologyKey: 'kubernetes.io/hostname',
            },
          }],
        },
      });
      expect(podSpec.tolerations).toEqual([
        { key: 'CriticalAddonsOnly', operator: 'Exists' },
        { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' },
      ]);
      expect(podSpec.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
      // The pod gets the node's resolv.conf, which `forward . /etc/resolv.conf` reads.
      expect(podSpec.dnsPolicy).toBe('Default');
      expect(podSpec.hostNetwork).toBeUndefined();
    });

    it('STOCK-7: one container coredns, image clusterdns:dev (IfNotPresent), args -conf /etc/coredns/Corefile', () => {
      expect(podSpec.containers).toHaveLength(1);
      expect(container.name).toBe('coredns');
      expect(container.image).toBe('clusterdns:dev');
      expect(container.imagePullPolicy).toBe('IfNotPresent');
      expect(container.args).toEqual(['-conf', '/etc/coredns/Corefile']);
      // The image's ENTRYPOINT must run: a `command` would override it.
      expect(container.command).toBeUndefined();
    });

    it('STOCK-7: the ConfigMap is mounted read-only at /etc/coredns with key Corefile at path Corefile', () => {
      expect(container.volumeMounts).toEqual([{ name: 'config-volume', mountPath: '/etc/coredns', readOnly: true }]);
      expect(podSpec.volumes).toEqual([
        { name: 'config-volume', configMap: { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] } },
      ]);
      // args' file is the mounted key.
      expect(join(container.volumeMounts[0].mountPath, podSpec.volumes[0].configMap.items[0].path)).toBe(container.args[1]);
    });

    it('STOCK-7: security context: read-only root, no privilege escalation, only NET_BIND_SERVICE, non-root', () => {
      expect(container.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
      });
      expect(podSpec.securityContext).toBeUndefined();
    });

    it('STOCK-8: requests cpu 100m memory 70Mi, limit memory 170Mi (no CPU limit)', () => {
      expect(container.resources).toEqual({ limits: { memory: '170Mi' }, requests: { cpu: '100m', memory: '70Mi' } });
    });

    it('STOCK-9: container ports dns 53/UDP, dns-tcp 53/TCP, metrics 9153, liveness-probe 8080, readiness-probe 8181', () => {
      expect(container.ports).toEqual([
        { containerPort: 53, name: 'dns', protocol: 'UDP' },
        { containerPort: 53, name: 'dns-tcp', protocol: 'TCP' },
        { containerPort: 9153, name: 'metrics', protocol: 'TCP' },
        { containerPort: 8080, name: 'liveness-probe', protocol: 'TCP' },
        { containerPort: 8181, name: 'readiness-probe', protocol: 'TCP' },
      ]);
    });

    const portNumber = (port: string | number): number =>
      typeof port === 'number' ? port : (container.ports as Json[]).find((entry) => entry.name === port)!.containerPort;

    it('STOCK-9: livenessProbe GET /health on 8080, initialDelay 60, timeout 5, success 1, failure 5', () => {
      const probe = container.livenessProbe;
      expect(probe.httpGet.path).toBe('/health');
      expect(portNumber(probe.httpGet.port)).toBe(8080);
      expect(probe.httpGet.scheme).toBe('HTTP');
      expect(probe).toEqual({
        httpGet: { path: '/health', port: 'liveness-probe', scheme: 'HTTP' },
        initialDelaySeconds: 60,
        timeoutSeconds: 5,
        successThreshold: 1,
        failureThreshold: 5,
      });
    });

    it('STOCK-9: readinessProbe GET /ready on 8181 with default timings', () => {
      const probe = container.readinessProbe;
      expect(portNumber(probe.httpGet.port)).toBe(8181);
      expect(probe).toEqual({ httpGet: { path: '/ready', port: 'readiness-probe', scheme: 'HTTP' } });
    });
  });

  describe('Service (STOCK-10)', () => {
    const service = find('Service', 'kube-dns');

    it('STOCK-10: name kube-dns, labels, prometheus annotations, selector k8s-app: kube-dns', () => {
      expect(service.metadata.namespace).toBe('kube-system');
      expect(service.metadata.labels).toEqual({
        'k8s-app': 'kube-dns',
        'kubernetes.io/cluster-service': 'true',
        'kubernetes.io/name': 'CoreDNS',
      });
      expect(service.metadata.annotations).toEqual({ 'prometheus.io/port': '9153', 'prometheus.io/scrape': 'true' });
      expect(service.spec.selector).toEqual({ 'k8s-app': 'kube-dns' });
      // The selector picks the Deployment's pods.
      for (const [key, value] of Object.entries(service.spec.selector)) expect(deployment.spec.template.metadata.labels[key]).toBe(value);
    });

    it('STOCK-10: clusterIP 10.96.0.10 (10th address of the default Service CIDR)', () => {
      expect(service.spec.clusterIP).toBe('10.96.0.10');
    });

    it('STOCK-10: ports dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP, each to a container port of the same protocol', () => {
      expect(service.spec.ports).toEqual([
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
        { name: 'metrics', port: 9153, protocol: 'TCP', targetPort: 9153 },
      ]);
      for (const port of service.spec.ports as Json[]) {
        expect(container.ports).toContainEqual(expect.objectContaining({ containerPort: port.targetPort, protocol: port.protocol }));
      }
    });
  });
});

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Dockerfile instructions: comments dropped, `\` continuations joined, keywords upper-cased. */
function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === '' && /^\s*(#|$)/.test(line)) return;
    if (pending !== '' && /^\s*#/.test(line)) return; // comment lines inside a continuation are skipped
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/s.exec(full)!;
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
  });
  return instructions;
}

/** The stages, each the instructions from its FROM up to the next FROM. */
function stages(instructions: Instruction[]): Instruction[][] {
  const result: Instruction[][] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') result.push([]);
    result.at(-1)?.push(instruction);
  }
  return result;
}

/** Exec (JSON) form: ENTRYPOINT ["a", "b"]. Shell form would wrap the process in /bin/sh -c and is rejected. */
function execForm(instruction: Instruction | undefined): string[] {
  expect(instruction, 'instruction present').toBeDefined();
  const value = JSON.parse(instruction!.args) as unknown;
  expect(Array.isArray(value) && value.every((item) => typeof item === 'string'), `${instruction!.keyword} in exec form`).toBe(true);
  return value as string[];
}

const dockerfile = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
const allStages = stages(dockerfile);
const finalStage = allStages.at(-1)!;
const buildStage = allStages[0]!;
const last = (stage: Instruction[], keyword: string) => stage.filter((instruction) => instruction.keyword === keyword).at(-1);
const all = (stage: Instruction[], keyword: string) => stage.filter((instruction) => instruction.keyword === keyword);
const entrypoint = execForm(last(finalStage, 'ENTRYPOINT'));
const cmd = execForm(last(finalStage, 'CMD'));
const workdir = last(finalStage, 'WORKDIR')!.args;

describe('deploy/Dockerfile: the image runs like CoreDNS\'s under the stock Deployment (STOCK-7)', () => {
  it('is multi-stage, every stage from the official node:24-slim image', () => {
    expect(allStages.length).toBeGreaterThanOrEqual(2);
    const arg = dockerfile.find((instruction) => instruction.keyword === 'ARG' && instruction.args.startsWith('NODE_IMAGE='));
    expect(arg?.args).toBe('NODE_IMAGE=node:24-slim');
    for (const stage of allStages) expect(stage[0]!.args).toMatch(/^\$\{NODE_IMAGE\}( AS \w+)?$/i);
  });

  it('runs the npm package, installed with production dependencies only, without the `node` devDependency\'s install script', () => {
    const build = allStages.slice(0, -1).flat();
    const run = build.filter((instruction) => instruction.keyword === 'RUN').map((instruction) => instruction.args);
    const npm = run.filter((args) => /\bnpm ci\b/.test(args));
    // One install to build the package (all dependencies, no install scripts), one for what it runs with.
    expect(npm).toHaveLength(2);
    expect(npm[0]).toMatch(/--ignore-scripts\b/);
    expect(run.findIndex((args) => /\bnpm pack\b/.test(args))).toBeGreaterThan(run.indexOf(npm[0]!));
    expect(npm[1]).toMatch(/tar -xzf \/tmp\/clusterdns-\*\.tgz[\s\S]*npm ci --omit=dev\b/);
    // The image's node is 24: the `node` package (and every devDependency) stays out.
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; dependencies: Record<string, string> };
    expect(manifest.devDependencies).toHaveProperty('node');
    expect(manifest.dependencies).not.toHaveProperty('node');
    expect(all(finalStage, 'COPY').map((instruction) => instruction.args)).toContain('--from=build /clusterdns ./');
  });

  it('STOCK-7: sets cap_net_bind_service=+ep on the node binary that the entrypoint runs', () => {
    const setcap = allStages.flat().filter((instruction) => instruction.keyword === 'RUN' && /\bsetcap\b/.test(instruction.args));
    expect(setcap).toHaveLength(1);
    expect(setcap[0]!.args).toMatch(/setcap cap_net_bind_service=\+ep \/usr\/local\/bin\/node\b/);
    expect(allStages.slice(0, -1).flat().some((instruction) => instruction.keyword === 'RUN' && /libcap2-bin/.test(instruction.args))).toBe(true);
    // The final stage takes that binary (with its xattr) from the build stage, and runs it.
    expect(all(finalStage, 'COPY').map((instruction) => instruction.args)).toContain('--from=build /usr/local/bin/node /usr/local/bin/node');
    expect(entrypoint[0]).toBe('/usr/local/bin/node');
  });

  it('STOCK-7: runs as a numeric non-root user', () => {
    const user = last(finalStage, 'USER')!.args;
    const [uid, gid] = user.split(':');
    expect(uid).toMatch(/^\d+$/); // numeric, so runAsNonRoot can be verified
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(Number(gid)).toBeGreaterThan(0);
    expect(uid).toBe('65532');
  });

  it('STOCK-7: ENTRYPOINT is the server and CMD is the Deployment\'s args, so the stock args work unchanged', () => {
    expect(entrypoint).toEqual(['/usr/local/bin/node', '/clusterdns/bin/clusterdns.js']);
    expect(cmd).toEqual(['-conf', '/etc/coredns/Corefile']);
    expect(cmd).toEqual(container.args);
    expect(workdir).toBe('/clusterdns');
  });

  it('STOCK-9: EXPOSE lists 53/udp, 53/tcp, 9153, 8080 and 8181', () => {
    const exposed = all(finalStage, 'EXPOSE').flatMap((instruction) => instruction.args.split(/\s+/))
      .map((port) => (port.includes('/') ? port.toLowerCase() : `${port}/tcp`));
    expect(exposed.sort()).toEqual(['53/tcp', '53/udp', '8080/tcp', '8181/tcp', '9153/tcp'].sort());
    // Every port of the Deployment is exposed.
    for (const port of container.ports as Json[]) expect(exposed).toContain(`${port.containerPort}/${port.protocol.toLowerCase()}`);
  });

  it('copies the unpacked package into the WORKDIR the ENTRYPOINT points at, and nothing from the context', () => {
    expect(all(finalStage, 'COPY').filter((instruction) => !instruction.args.startsWith('--from'))).toEqual([]);
    const fromBuild = all(finalStage, 'COPY').map((instruction) => instruction.args.split(/\s+/)[1]);
    expect(fromBuild.sort()).toEqual(['/clusterdns', '/usr/local/bin/node']);
    expect(last(buildStage, 'WORKDIR')!.args).toBe(workdir);
    expect(entrypoint[1]!.startsWith(`${workdir}/`)).toBe(true);
    expect(existsSync(join(ROOT, relative(workdir, entrypoint[1]!)))).toBe(true);
    // Nothing declares a VOLUME or writes at start: readOnlyRootFilesystem works.
    expect(all(finalStage, 'VOLUME')).toEqual([]);
  });

  it('deploy/Dockerfile.dockerignore keeps every COPY source in the build context', () => {
    const lines = readFileSync(DOCKERIGNORE, 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
    expect(lines[0]).toBe('*');
    const included = lines.filter((line) => line.startsWith('!')).map((line) => line.slice(1).replace(/\/$/, ''));
    expect(included.sort()).toEqual(['Corefile.example', 'README.md', 'bin', 'binding.gyp', 'examples', 'native', 'package-lock.json', 'package.json', 'plugins', 'src', 'tsconfig.build.json', 'tsconfig.json']);
    // Every COPY source of the build stage is in the context.
    const sources = all(buildStage, 'COPY').flatMap((instruction) => instruction.args.split(/\s+/).slice(0, -1));
    for (const source of sources) expect(included, source).toContain(source.replace(/\/$/, ''));
  });
});

// ---------------------------------------------------------------------------
// The image's command, run from the repo
// ---------------------------------------------------------------------------

/** A free UDP+TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = net.createServer();
    const port = await new Promise<number>((done) => server.listen(0, '127.0.0.1', () => done((server.address() as { port: number }).port)));
    const udp = dgram.createSocket('udp4');
    const free = await new Promise<boolean>((done) => {
      udp.once('error', () => done(false));
      udp.bind(port, '127.0.0.1', () => done(true));
    });
    await new Promise((done) => server.close(done));
    await new Promise((done) => udp.close(() => done(undefined)));
    if (free) return port;
  }
  throw new Error('no free port');
}

function udpQuery(port: number, name: string, timeoutMs: number): Promise<dnsPacket.DecodedPacket | null> {
  return new Promise((done, fail) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      done(null);
    }, timeoutMs);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      done(dnsPacket.decode(reply));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.close();
      fail(error);
    });
    socket.send(dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] }), port, '127.0.0.1');
  });
}

/** What the image's build stage makes: the packed package unpacked (its dependencies: the repository's). */
function packedCopy(): string {
  const copy = tempDir('image');
  const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', copy], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } }).trim().split('\n').at(-1)!;
  execFileSync('tar', ['-xzf', join(copy, tarball), '--strip-components=1'], { cwd: copy });
  execFileSync('ln', ['-s', join(ROOT, 'node_modules'), join(copy, 'node_modules')]);
  return copy;
}

describe('the image\'s command starts the server from the packed package (STOCK-7)', () => {
  it('STOCK-7: ENTRYPOINT + CMD with the Corefile path swapped for a temp file serves DNS from dist/, and SIGTERM exits 0', async () => {
    const image = packedCopy();
    expect(existsSync(join(image, 'src'))).toBe(false); // the JavaScript build runs, not the sources
    const port = await freePort();
    const dir = tempDir('run');
    const corefile = join(dir, 'Corefile');
    writeFileSync(corefile, `.:${port} {\n    whoami\n}\n`);
    const work = tempDir('cwd'); // cwd, HOME and TMPDIR: nothing may be written there (read-only root filesystem)

    // The image maps: the node binary → this Node 24; WORKDIR /clusterdns → the repo; the mounted Corefile → the temp file.
    const toHost = (arg: string): string => {
      if (arg === entrypoint[0]) return process.execPath;
      if (arg === '/etc/coredns/Corefile') return corefile;
      if (arg.startsWith(`${workdir}/`)) return join(image, arg.slice(workdir.length + 1));
      return arg;
    };
    const argv = [...entrypoint, ...cmd].map(toHost);
    expect(argv).toEqual([process.execPath, join(image, 'bin/clusterdns.js'), '-conf', corefile]);

    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: work,
      env: { ...process.env, HOME: work, TMPDIR: work, NODE_ENV: 'production' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('close', (code, signal) => done({ code, signal })));
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    try {
      let reply: dnsPacket.DecodedPacket | null = null;
      const deadline = Date.now() + 10_000;
      while (reply === null && Date.now() < deadline && child.exitCode === null) {
        reply = await udpQuery(port, 'whoami.example.', 300);
      }
      expect(reply, `no reply; stdout: ${stdout}; stderr: ${stderr}`).not.toBeNull();
      expect(reply!.id).toBe(4242);
      expect(reply!.flags! & 0xf).toBe(0); // NOERROR
      expect(reply!.additionals).toContainEqual(expect.objectContaining({ type: 'A', name: 'whoami.example', data: '127.0.0.1' }));
      expect(stdout).toContain(`.:${port}`);

      child.kill('SIGTERM');
      const result = await exited;
      expect(result, `stderr: ${stderr}`).toEqual({ code: 0, signal: null });
    } finally {
      clearTimeout(kill);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(readdirSync(work)).toEqual([]);
  }, 60_000);
});

/**
 * Runs argv the way runc starts a container process under the stock securityContext
 * (STOCK-7): bounding, permitted and effective sets = `caps`, no inheritable or ambient
 * capabilities, uid/gid 65532, no_new_privs, then execve.
 */
const RUNC_LIKE = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
keep = [int(c) for c in sys.argv[1].split(',') if c]
for cap in range(64):
    if cap not in keep and libc.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
        break  # PR_CAPBSET_DROP; EINVAL past the last capability
libc.prctl(8, 1, 0, 0, 0)  # PR_SET_KEEPCAPS across setresuid
os.setgroups([])
os.setresgid(65532, 65532, 65532)
os.setresuid(65532, 65532, 65532)
class Header(ctypes.Structure):
    _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32), ('inheritable', ctypes.c_uint32)]
mask = sum(1 << cap for cap in keep)
data = (Data * 2)()
data[0].effective = data[0].permitted = mask & 0xffffffff
if libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:
    raise OSError(ctypes.get_errno(), 'capset')
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS (allowPrivilegeEscalation: false)
    raise OSError(ctypes.get_errno(), 'no_new_privs')
os.execve(sys.argv[2], sys.argv[2:], {'HOME': '/nonexistent', 'PATH': '/usr/bin:/bin'})
`;

const NET_BIND_SERVICE = 10;

/** Why the capability test cannot run here, or null when it can. */
async function capabilitySkipReason(): Promise<string | null> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux';
  for (const tool of ['setcap', 'python3']) if (findOnPath(tool) === null) return `needs ${tool}`;
  // uid 65532 must reach the repo's files.
  for (let dir = ROOT; dir !== dirname(dir); dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return `${dir} is not searchable by other users`;
  }
  const udp = dgram.createSocket('udp4');
  const free = await new Promise<boolean>((done) => {
    udp.once('error', () => done(false));
    udp.bind(53, '127.0.0.1', () => done(true));
  });
  await new Promise((done) => udp.close(() => done(undefined)));
  return free ? null : '127.0.0.1:53 is in use';
}

const capabilitySkip = await capabilitySkipReason();

describe('STOCK-7: the setcap\'d node binds :53 as uid 65532 with only NET_BIND_SERVICE and no_new_privs', () => {
  if (capabilitySkip !== null) it.skip(`skipped: ${capabilitySkip}`, () => {});

  /** Starts a copy of this Node (with or without the file capability) the way runc would, serving whoami on 127.0.0.1:53. */
  async function runAsContainer(options: { setcap: boolean; caps: number[] }) {
    const dir = tempDir('caps');
    chmodSync(dir, 0o755);
    const node = join(dir, 'node');
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
    if (options.setcap) execFileSync(findOnPath('setcap')!, ['cap_net_bind_service=+ep', node]);
    const corefile = join(dir, 'Corefile');
    writeFileSync(corefile, '.:53 {\n    bind 127.0.0.1\n    whoami\n}\n');
    const launcher = join(dir, 'runc_like.py');
    writeFileSync(launcher, RUNC_LIKE);
    for (const file of [corefile, launcher]) chmodSync(file, 0o644);
    const argv = [...entrypoint, ...cmd].map((arg) =>
      arg === entrypoint[0] ? node : arg === '/etc/coredns/Corefile' ? corefile : arg.startsWith(`${workdir}/`) ? join(ROOT, arg.slice(workdir.length + 1)) : arg);
    const child = spawn('python3', [launcher, options.caps.join(','), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    exited.then(() => clearTimeout(kill));
    return { child, exited, output: () => output };
  }

  it.skipIf(capabilitySkip !== null)('with the file capability: serves DNS on 127.0.0.1:53, SIGTERM exits 0', async () => {
    const run = await runAsContainer({ setcap: true, caps: [NET_BIND_SERVICE] });
    try {
      let reply: dnsPacket.DecodedPacket | null = null;
      const deadline = Date.now() + 10_000;
      while (reply === null && Date.now() < deadline && run.child.exitCode === null) reply = await udpQuery(53, 'whoami.example.', 300);
      expect(reply, run.output()).not.toBeNull();
      expect(reply!.additionals).toContainEqual(expect.objectContaining({ type: 'A', data: '127.0.0.1' }));
      run.child.kill('SIGTERM');
      expect(await run.exited, run.output()).toBe(0);
    } finally {
      run.child.kill('SIGKILL');
    }
  }, 30_000);

  it.skipIf(capabilitySkip !== null)('without it the same container cannot bind :53 (EACCES, exit 1): the setcap is what makes it work', async () => {
    const run = await runAsContainer({ setcap: false, caps: [NET_BIND_SERVICE] });
    expect(await run.exited).toBe(1);
    expect(run.output()).toContain('bind: permission denied');
  }, 30_000);

  it.skipIf(capabilitySkip !== null)('with the file capability but NET_BIND_SERVICE dropped, exec itself fails (as with CoreDNS\'s image)', async () => {
    const run = await runAsContainer({ setcap: true, caps: [] });
    expect(await run.exited).not.toBe(0);
    expect(run.output()).toMatch(/Operation not permitted/);
  }, 30_000);
});

// ---------------------------------------------------------------------------
// deploy/swap.sh
// ---------------------------------------------------------------------------

function findOnPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

const BASH = findOnPath('bash');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function runSwap(args: string[], env: NodeJS.ProcessEnv): Run {
  const result = spawnSync(BASH!, [SWAP, ...args], { env, encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Stub kubectl, kind and docker that log their arguments and keep the Deployment's
 * image and pull policy in files, so swap.sh can run its whole install and restore.
 */
function stubCluster(options: { rolloutFails?: boolean } = {}) {
  const dir = tempDir('stubs');
  const bin = join(dir, 'bin');
  const state = join(dir, 'state');
  mkdirSync(bin);
  mkdirSync(state);
  writeFileSync(join(state, 'image'), 'registry.k8s.io/coredns/coredns:v1.11.3\n');
  writeFileSync(join(state, 'policy'), 'IfNotPresent\n');
  const script = (body: string) => `#!/usr/bin/env bash\nprintf '%s\\n' "$(basename "$0") $*" >>"$STUB_LOG"\n${body}\n`;
  writeFileSync(join(bin, 'kubectl'), script(`
if [[ "$1" == --context ]]; then shift 2; fi
args="$*"
case "$args" in
  'config current-context') echo kind-test ;;
  'get --raw /readyz') echo ok ;;
  '-n kube-system get deployment coredns') echo 'coredns   2/2' ;;
  *'get deployment coredns -o jsonpath={range .spec.template.spec.containers[*]}'*) echo coredns ;;
  *'get deployment coredns -o jsonpath={.spec.template.spec.containers[?(@.name=="coredns")].image}') tr -d '\\n' <"$STUB_STATE/image" ;;
  *'get deployment coredns -o jsonpath={.spec.template.spec.containers[?(@.name=="coredns")].imagePullPolicy}') tr -d '\\n' <"$STUB_STATE/policy" ;;
  '-n kube-system get deployment coredns -o yaml') printf 'kind: Deployment\\nimage: %s\\n' "$(cat "$STUB_STATE/image")" ;;
  '-n kube-system get configmap coredns -o yaml') echo 'kind: ConfigMap' ;;
  '-n kube-system get configmap coredns -o jsonpath={.data.Corefile}') printf '.:53 {\\n    errors\\n}' ;;
  '-n kube-system set image deployment/coredns coredns='*) echo "\${args#*coredns=}" >"$STUB_STATE/image" ;;
  '-n kube-system patch deployment coredns --type json -p '*) echo "$args" | sed 's/.*"value":"\\([^"]*\\)".*/\\1/' >"$STUB_STATE/policy" ;;
  '-n kube-system rollout status deployment/coredns --timeout '*) [[ -z "$STUB_ROLLOUT_FAILS" || "$(cat "$STUB_STATE/image")" != clusterdns:dev ]] ;;
  '-n kube-system rollout restart deployment/coredns') ;;
  '-n kube-system get pods -l k8s-app=kube-dns -o jsonpath={range .items[*]}{.metadata.name}{"\\t"}'*)
    # One pod of the current image; crash-looping when the rollout is to fail.
    if [[ -n "$STUB_ROLLOUT_FAILS" && "$(cat "$STUB_STATE/image")" == clusterdns:dev ]]; then state='3\tCrashLoopBackOff'; else state='0\t'; fi
    printf "coredns-1\t%s\t$state\n" "$(cat "$STUB_STATE/image")" ;;
  '-n kube-system get pods '*) echo 'coredns-1' ;;
  '-n kube-system logs '*) echo '[FATAL] some log' ;;
  'run '*' -- nslookup kubernetes.default') printf 'Name: kubernetes.default\\nAddress 1: 10.96.0.1\\n' ;;
  *) echo "stub kubectl: unexpected: $args" >&2; exit 3 ;;
esac`));
  writeFileSync(join(bin, 'kind'), script(''));
  writeFileSync(join(bin, 'docker'), script(''));
  for (const name of ['kubectl', 'kind', 'docker']) chmodSync(join(bin, name), 0o755);
  const log = join(dir, 'calls.log');
  writeFileSync(log, '');
  const env: NodeJS.ProcessEnv = {
    PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
    HOME: dir,
    STUB_LOG: log,
    STUB_STATE: state,
    STUB_ROLLOUT_FAILS: options.rolloutFails ? '1' : '',
  };
  return {
    env,
    bin,
    backup: join(dir, 'backup'),
    calls: () => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean),
    image: () => readFileSync(join(state, 'image'), 'utf8').trim(),
    policy: () => readFileSync(join(state, 'policy'), 'utf8').trim(),
  };
}

describe.skipIf(BASH === null)('deploy/swap.sh', () => {
  it('is executable bash with strict mode, and parses', () => {
    const text = readFileSync(SWAP, 'utf8');
    expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(text).toMatch(/^set -euo pipefail$/m);
    expect(statSync(SWAP).mode & 0o111).not.toBe(0);
    expect(spawnSync(BASH!, ['-n', SWAP]).status).toBe(0);
  });

  it.skipIf(findOnPath('shellcheck') === null)('passes shellcheck (when installed)', () => {
    expect(() => execFileSync('shellcheck', [SWAP], { encoding: 'utf8' })).not.toThrow();
  });

  it('--help prints the usage; a missing or unknown command is a usage error (exit 2)', () => {
    const env = { PATH: process.env.PATH };
    const help = runSwap(['--help'], env);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: deploy/swap.sh install|restore');
    expect(runSwap([], env).status).toBe(2);
    const unknown = runSwap(['upgrade'], env);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'upgrade'");
    const badCluster = runSwap(['install', '--cluster', 'eks'], env);
    expect(badCluster.status).toBe(2);
    expect(badCluster.stderr).toContain('--cluster must be kind, k3d or minikube');
  });

  it('names a missing tool with a hint (kubectl, then the cluster tool, then docker)', () => {
    const empty = tempDir('emptypath');
    const noKubectl = runSwap(['install', '--cluster', 'kind'], { PATH: empty });
    expect(noKubectl.status).toBe(1);
    expect(noKubectl.stderr).toContain("'kubectl' is required but was not found on PATH");

    // PATH is the stub directory alone (kubectl, kind, docker; no k3d): the checks need only bash builtins.
    const stubs = stubCluster();
    const noK3d = runSwap(['install', '--cluster', 'k3d'], { ...stubs.env, PATH: stubs.bin });
    expect(noK3d.status).toBe(1);
    expect(noK3d.stderr).toContain("'k3d' is required but was not found on PATH. Install it: https://k3d.io");

    const noDocker = runSwap(['install', '--cluster', 'kind'], { ...stubs.env, PATH: stubs.bin, DOCKER: 'no-such-docker' });
    expect(noDocker.status).toBe(1);
    expect(noDocker.stderr).toContain("'no-such-docker' is required but was not found on PATH. A Docker engine is needed");

    // Nothing was touched.
    expect(stubs.image()).toBe('registry.k8s.io/coredns/coredns:v1.11.3');
    expect(stubs.calls().filter((call) => / set image | patch /.test(call))).toEqual([]);
  });

  it('install builds, loads, backs up, swaps only the image, waits and smoke-tests; restore puts CoreDNS back', () => {
    const stubs = stubCluster();
    const install = runSwap(['install', '--backup-dir', stubs.backup], stubs.env);
    expect(install.status, install.stderr).toBe(0);
    const calls = stubs.calls();
    const index = (pattern: RegExp) => {
      const at = calls.findIndex((call) => pattern.test(call));
      expect(at, `${pattern} in\n${calls.join('\n')}`).toBeGreaterThanOrEqual(0);
      return at;
    };
    // The cluster is guessed from the context kind-test: kind cluster "test".
    const root = ROOT.replace(/\/$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const build = index(new RegExp(`^docker build -f ${root}/deploy/Dockerfile -t clusterdns:dev ${root}$`));
    const load = index(/^kind load docker-image clusterdns:dev --name test$/);
    const backupAt = index(/^kubectl --context kind-test -n kube-system get configmap coredns -o yaml$/);
    const swap = index(/^kubectl --context kind-test -n kube-system set image deployment\/coredns coredns=clusterdns:dev$/);
    const rollout = index(/^kubectl --context kind-test -n kube-system rollout status deployment\/coredns --timeout 5s$/);
    const smoke = index(/^kubectl --context kind-test run clusterdns-smoke-\d+ .*-- nslookup kubernetes\.default$/);
    expect([build, load, backupAt, swap, rollout, smoke]).toEqual([...[build, load, backupAt, swap, rollout, smoke]].sort((a, b) => a - b));
    // The ConfigMap is only read, never written.
    expect(calls.filter((call) => /configmap/.test(call) && !/ get configmap /.test(call))).toEqual([]);
    expect(stubs.image()).toBe('clusterdns:dev');
    expect(readFileSync(join(stubs.backup, 'image'), 'utf8').trim()).toBe('registry.k8s.io/coredns/coredns:v1.11.3');
    expect(readFileSync(join(stubs.backup, 'configmap.yaml'), 'utf8')).toContain('kind: ConfigMap');
    expect(readFileSync(join(stubs.backup, 'deployment.yaml'), 'utf8')).toContain('kind: Deployment');

    // A second install keeps the CoreDNS backup and restarts to pick up the new image.
    const again = runSwap(['install', '--backup-dir', stubs.backup, '--skip-build'], stubs.env);
    expect(again.status, again.stderr).toBe(0);
    expect(stubs.calls().some((call) => /rollout restart deployment\/coredns$/.test(call))).toBe(true);
    expect(readFileSync(join(stubs.backup, 'image'), 'utf8').trim()).toBe('registry.k8s.io/coredns/coredns:v1.11.3');

    const restore = runSwap(['restore', '--cluster', 'kind', '--name', 'test', '--backup-dir', stubs.backup], stubs.env);
    expect(restore.status, restore.stderr).toBe(0);
    expect(stubs.image()).toBe('registry.k8s.io/coredns/coredns:v1.11.3');
    expect(stubs.calls().at(-1)).toMatch(/nslookup kubernetes\.default$/);
  });

  it('a crash-looping rollout fails early, shows the logs and puts the CoreDNS image back', () => {
    const stubs = stubCluster({ rolloutFails: true });
    const started = Date.now();
    const install = runSwap(['install', '--cluster', 'kind', '--name', 'test', '--backup-dir', stubs.backup], stubs.env);
    expect(Date.now() - started).toBeLessThan(10_000); // not the 180 s timeout
    expect(install.status).toBe(1);
    expect(install.stderr).toContain('pods running clusterdns:dev are failing: coredns-1 (CrashLoopBackOff)');
    expect(install.stderr).toContain('install failed');
    expect(install.stderr).toContain('[FATAL] some log');
    expect(stubs.image()).toBe('registry.k8s.io/coredns/coredns:v1.11.3');
    expect(stubs.policy()).toBe('IfNotPresent');
  });

  it('an imagePullPolicy of Always is set to IfNotPresent for the loaded image, and restored', () => {
    const stubs = stubCluster();
    writeFileSync(join(stubs.env.STUB_STATE!, 'policy'), 'Always\n');
    expect(runSwap(['install', '--cluster', 'kind', '--name', 'test', '--backup-dir', stubs.backup, '--no-smoke'], stubs.env).status).toBe(0);
    expect(stubs.policy()).toBe('IfNotPresent');
    expect(runSwap(['restore', '--cluster', 'kind', '--name', 'test', '--backup-dir', stubs.backup, '--no-smoke'], stubs.env).status).toBe(0);
    expect(stubs.policy()).toBe('Always');
    expect(stubs.image()).toBe('registry.k8s.io/coredns/coredns:v1.11.3');
  });

  it('restore without a backup fails clearly', () => {
    const stubs = stubCluster();
    const restore = runSwap(['restore', '--cluster', 'kind', '--name', 'test', '--backup-dir', join(stubs.backup, 'none')], stubs.env);
    expect(restore.status).toBe(1);
    expect(restore.stderr).toContain('no backup in');
  });
});
