import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalizeKey } from '../../src/corefile/address.ts';
import { parseCorefileFile } from '../../src/corefile/parser.ts';
import type { ServerBlockSource } from '../../src/corefile/types.ts';
import { corefileError, isDirective, outline, parse, parseError, summary, withoutPositions } from './fixtures/helpers.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

function parseFixture(name: string): { blocks: ServerBlockSource[]; warnings: string[] } {
  const warnings: string[] = [];
  const blocks = parseCorefileFile(path.join(fixtures, name), { isDirective, env: {}, warn: (message) => warnings.push(message) });
  return { blocks, warnings };
}

/** What config.ts does with the keys: normalise them. */
function zonesOf(blocks: ServerBlockSource[], port = 53) {
  const planned = blocks.map((block) => ({ addresses: block.keys.flatMap((key) => normalizeKey(key, port)) }));
  return planned.map((block) => block.addresses.map(({ scheme, zone, port: p }) => `${scheme}://${zone}:${p}`));
}

const kubeadmBody = [
  'errors',
  { health: ['lameduck 5s'] },
  'ready',
  { 'kubernetes cluster.local in-addr.arpa ip6.arpa': ['pods insecure', 'fallthrough in-addr.arpa ip6.arpa', 'ttl 30'] },
  'prometheus :9153',
  { 'forward . /etc/resolv.conf': ['max_concurrent 1000'] },
  'cache 30',
  'loop',
  'reload',
  'loadbalance',
];

describe('STOCK: the Corefiles clusters ship', () => {
  it('STOCK-1: the kubeadm Corefile parses to one .:53 block with every directive in order', () => {
    const { blocks, warnings } = parseFixture('stock-1.Corefile');
    expect(summary(blocks)).toEqual([{ keys: ['.:53'], body: kubeadmBody }]);
    expect(warnings).toEqual([]);
    expect(zonesOf(blocks)).toEqual([['dns://.:53']]);
  });

  it('STOCK-1: positions point into the Corefile', () => {
    const { blocks } = parseFixture('stock-1.Corefile');
    const file = path.join(fixtures, 'stock-1.Corefile');
    const kubernetes = blocks[0]!.directives[3]!;
    expect(kubernetes.name).toEqual({ text: 'kubernetes', file, line: 7 });
    expect(kubernetes.block![2]!.args[0]).toEqual({ text: '30', file, line: 10 });
  });

  it('STOCK-2: kubeadm >= 1.32 with the cache disable block', () => {
    const { blocks } = parseFixture('stock-2.Corefile');
    const body = outline(blocks[0]!.directives);
    expect(body[6]).toEqual({ 'cache 30': ['disable success cluster.local', 'disable denial cluster.local'] });
    expect(body.filter((_, i) => i !== 6)).toEqual(kubeadmBody.filter((_, i) => i !== 6));
  });

  it('STOCK-3: the coredns/deployment Corefile with a stub-domain block', () => {
    const { blocks } = parseFixture('stock-3.Corefile');
    expect(summary(blocks).map((b) => b.keys)).toEqual([['.:53'], ['acme.local:53']]);
    expect(outline(blocks[1]!.directives)).toEqual(['errors', 'cache 30', 'loop', { 'forward . 1.2.3.4': ['max_concurrent 1000'] }]);
    expect(zonesOf(blocks)).toEqual([['dns://.:53'], ['dns://acme.local.:53']]);
  });

  it('STOCK-4/CF-10: the k3s Corefile, whose /etc/coredns/custom imports match nothing, only warns', () => {
    expect(fs.existsSync('/etc/coredns/custom')).toBe(false);
    const { blocks, warnings } = parseFixture('k3s.Corefile');
    expect(summary(blocks)).toEqual([
      {
        keys: ['.:53'],
        body: [
          'errors',
          'health',
          'ready',
          { 'kubernetes cluster.local in-addr.arpa ip6.arpa': ['pods insecure', 'fallthrough in-addr.arpa ip6.arpa'] },
          { 'hosts /etc/coredns/NodeHosts': ['ttl 60', 'reload 15s', 'fallthrough'] },
          'prometheus :9153',
          'forward . /etc/resolv.conf',
          'cache 30',
          'loop',
          'reload',
          'loadbalance',
        ],
      },
    ]);
    expect(warnings).toEqual([
      'No files matching import glob pattern: /etc/coredns/custom/*.override',
      'No files matching import glob pattern: /etc/coredns/custom/*.server',
    ]);
  });

  it('STOCK-4: the minikube Corefile with log and a hosts block', () => {
    const { blocks } = parseFixture('minikube.Corefile');
    const body = outline(blocks[0]!.directives);
    expect(body[0]).toBe('log');
    expect(body).toContainEqual({ hosts: ['192.168.49.1 host.minikube.internal', 'fallthrough'] });
  });

  it('STOCK-5: several blocks on :53, forward to a pod IP, health and ready without options', () => {
    const { blocks } = parse('acme.local:53 {\n  forward . 10.244.0.7\n}\n.:53 {\n  health\n  ready\n  forward . /etc/resolv.conf\n}\n');
    expect(summary(blocks)).toEqual([
      { keys: ['acme.local:53'], body: ['forward . 10.244.0.7'] },
      { keys: ['.:53'], body: ['health', 'ready', 'forward . /etc/resolv.conf'] },
    ]);
    expect(zonesOf(blocks)).toEqual([['dns://acme.local.:53'], ['dns://.:53']]);
  });

  it('STOCK-5: the obsolete empty-zone key (":53") parses but is rejected as a zone', () => {
    const { blocks } = parse(':53 {\n  whoami\n}\n');
    const error = corefileError(() => zonesOf(blocks));
    expect(error.message).toMatch(/^Corefile:1 - Error during parsing: zone is not a valid domain name/);
  });
});

describe('CF-24: equivalent inputs', () => {
  it('CF-24: keys on one line and the two-line trailing-comma form give the same blocks', () => {
    const oneLine = parse('example.org:53 example.net:53 {\n  whoami\n}').blocks;
    const twoLines = parse('example.org:53,\nexample.net:53 {\n  whoami\n}').blocks;
    expect(withoutPositions(oneLine)).toEqual(withoutPositions(twoLines));
    expect(zonesOf(oneLine)).toEqual(zonesOf(twoLines));
  });

  it('CF-24: the one-line form { whoami } is the same as the multi-line form', () => {
    const oneLine = parse('example.org:53 example.net:53 { whoami }').blocks;
    const multiLine = parse('example.org:53 example.net:53 {\n  whoami\n}').blocks;
    expect(withoutPositions(oneLine)).toEqual(withoutPositions(multiLine));
  });

  it('CF-24: a CIDR key and its reverse zone give the same zones', () => {
    expect(zonesOf(parse('10.0.0.0/24 {\n  whoami\n}').blocks)).toEqual(zonesOf(parse('0.0.10.in-addr.arpa {\n  whoami\n}').blocks));
  });

  it('CF-6: brace on the next line, brace-less and braced forms are the same', () => {
    const braced = withoutPositions(parse('.:53 {\n  whoami\n  log\n}').blocks);
    expect(withoutPositions(parse('.:53\n{\n  whoami\n  log\n}').blocks)).toEqual(braced);
    expect(withoutPositions(parse('.:53\nwhoami\nlog\n').blocks)).toEqual(braced);
  });

  it('CF-12: several keys give several zones of one block', () => {
    expect(zonesOf(parse('a.org b.org:1053 10.0.0.0/23 {\n}').blocks)).toEqual([
      ['dns://a.org.:53', 'dns://b.org.:1053', 'dns://0.0.10.in-addr.arpa.:53', 'dns://1.0.10.in-addr.arpa.:53'],
    ]);
  });
});

describe('CF-25: invalid inputs that are parse errors', () => {
  it('CF-25: .:53 { with no closing brace is an EOF error', () => {
    const error = parseError('.:53 {\n  whoami\n');
    expect(error.detail).toMatch(/^Unexpected EOF, expecting '}'/);
    expect(parseError('.:53 {').detail).toMatch(/^Unexpected EOF/);
  });

  it('CF-25: . { foo } with an unknown directive', () => {
    const error = parseError('. { foo }');
    expect(error.message).toBe("Corefile:1 - Error during parsing: Unknown directive 'foo'");
  });

  it('CF-25: import with two arguments', () => {
    expect(parseError('.:53 {\n  import a.conf b.conf\n}').detail).toBe("Import takes only one argument (glob pattern or file), found 'b.conf' after 'a.conf'");
  });

  it('CF-25: importing a missing non-glob file', () => {
    const error = parseError('.:53 {\n  import /nonexistent-clusterdns/missing.conf\n}');
    expect(error.line).toBe(2);
    expect(error.detail).toBe('File to import not found: /nonexistent-clusterdns/missing.conf');
  });

  // "two blocks both .:53" is checked with bind known, in test/config.test.ts.
});
