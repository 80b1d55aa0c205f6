// `kubernetes [ZONES...] [{ options }]` parsing (KP-1..21) and its setup
// errors, which name file:line, the token found and what was expected.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorefileError } from '../../src/corefile/types.ts';
import { parseLabelSelector, matchesSelector, SelectorError } from '../../plugins/kubernetes/selector.ts';
import { configOf } from './plugin.harness.ts';

/** A Corefile with the kubernetes line on line 2 and options from line 3. */
function corefile(args: string, options: string[] = []): string {
  if (options.length === 0) return `.:53 {\n    kubernetes ${args}\n}\n`;
  return `.:53 {\n    kubernetes ${args} {\n${options.map((line) => `        ${line}`).join('\n')}\n    }\n}\n`;
}

function parse(args: string, options: string[] = []) {
  return configOf(corefile(args, options));
}

/** The setup error for the Corefile, checked to be a CorefileError. */
function errorOf(args: string, options: string[] = [], file = '/etc/coredns/Corefile'): CorefileError {
  try {
    configOf(corefile(args, options), file);
  } catch (error) {
    expect(error).toBeInstanceOf(CorefileError);
    return error as CorefileError;
  }
  throw new Error('expected a setup error');
}

describe('zones (KP-1, KP-2)', () => {
  it('KP-1: zones are lowercased and made fully qualified; the first non-reverse zone is primary', () => {
    const config = parse('Cluster.Local in-addr.arpa IP6.ARPA');
    expect(config.zones).toEqual(['cluster.local.', 'in-addr.arpa.', 'ip6.arpa.']);
    expect(config.primaryZone).toBe('cluster.local.');
    expect(parse('in-addr.arpa example.org cluster.local').primaryZone).toBe('example.org.');
  });

  it('KP-1: without zone arguments the server block zones are used', () => {
    const config = configOf('cluster.local:53 10.0.0.0/24 {\n    kubernetes\n}\n');
    expect(config.zones).toEqual(['cluster.local.', '0.0.10.in-addr.arpa.']);
  });

  it('KP-1: CIDR zones expand to the octet-aligned reverse zones that cover them', () => {
    expect(parse('cluster.local 10.96.0.0/24').zones).toEqual(['cluster.local.', '0.96.10.in-addr.arpa.']);
    const wide = parse('cluster.local 10.96.0.0/15').zones;
    expect(wide).toEqual(['cluster.local.', '96.10.in-addr.arpa.', '97.10.in-addr.arpa.']);
    expect(parse('cluster.local 172.16.0.0/17').zones).toHaveLength(1 + 128);
    expect(parse('cluster.local fd00::/64').zones[1]).toBe('0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.');
  });

  it('KP-1: at least one zone must be non-reverse', () => {
    const error = errorOf('in-addr.arpa 10.0.0.0/8');
    expect(error.line).toBe(2);
    expect(error.message).toBe("/etc/coredns/Corefile:2 - Error during parsing: plugin/kubernetes: non-reverse zone name must be used (found only reverse zones: in-addr.arpa. 10.in-addr.arpa.)");
    const fromKeys = (() => {
      try {
        configOf('10.0.0.0/24 {\n    kubernetes\n}\n');
      } catch (error) {
        return error as CorefileError;
      }
      throw new Error('expected an error');
    })();
    expect(fromKeys.detail).toContain('non-reverse zone name must be used');
  });

  it('KP-1: an invalid CIDR zone is a setup error at its token', () => {
    const error = errorOf('cluster.local 10.0.0.0/33');
    expect(error.line).toBe(2);
    expect(error.detail).toContain('10.0.0.0/33');
  });

  it('KP-2: the plugin may appear only once per server block', () => {
    let caught: CorefileError | null = null;
    try {
      configOf('.:53 {\n    kubernetes cluster.local\n    kubernetes other.local\n}\n');
    } catch (error) {
      caught = error as CorefileError;
    }
    expect(caught).toBeInstanceOf(CorefileError);
    expect(caught!.line).toBe(3);
    expect(caught!.detail).toBe('plugin/kubernetes: this plugin can only be used once per Server Block');
  });
});

describe('defaults', () => {
  it('KP-9/11/18: pods disabled, ttl 5, startup_timeout 5s, the in-cluster API source', () => {
    const config = parse('cluster.local');
    expect(config.podMode).toBe('disabled');
    expect(config.ttl).toBe(5);
    expect(config.startupTimeoutMs).toBe(5000);
    expect(config.fallthrough).toBeNull();
    expect(config.namespaces).toBeNull();
    expect(config.endpointPodNames).toBe(false);
    expect(config.ignoreEmptyService).toBe(false);
    expect(config.noEndpoints).toBe(false);
    expect(config.source).toEqual({ kind: 'api', connection: { endpoint: null, tls: null, kubeconfig: null }, ignoredEndpoints: [] });
    expect(config.sourceOptions).toEqual({ labelSelector: null, namespaceLabelSelector: null, watchPods: false, watchEndpoints: true });
  });

  it('STOCK-1: the kubeadm Corefile options parse', () => {
    const config = configOf(`.:53 {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
}
`);
    expect(config.podMode).toBe('insecure');
    expect(config.fallthrough).toEqual(['in-addr.arpa.', 'ip6.arpa.']);
    expect(config.ttl).toBe(30);
  });
});

describe('connection options (KP-5..7) and manifests', () => {
  it('KP-5: endpoint takes URLs; only the first is used', () => {
    const config = parse('cluster.local', ['endpoint https://10.0.0.1:6443 https://10.0.0.2:6443']);
    expect(config.source).toEqual({
      kind: 'api',
      connection: { endpoint: 'https://10.0.0.1:6443', tls: null, kubeconfig: null },
      ignoredEndpoints: ['https://10.0.0.2:6443'],
    });
    const error = errorOf('cluster.local', ['endpoint']);
    expect([error.line, error.detail]).toEqual([3, "plugin/kubernetes: 'endpoint' takes at least 1 argument (endpoint URL...), found 0"]);
  });

  it('KP-6: tls takes exactly CERT KEY CACERT', () => {
    const config = parse('cluster.local', ['endpoint https://api:6443', 'tls cert.pem key.pem ca.pem']);
    expect(config.source.kind === 'api' && config.source.connection.tls).toEqual({ cert: 'cert.pem', key: 'key.pem', ca: 'ca.pem' });
    const error = errorOf('cluster.local', ['tls cert.pem key.pem']);
    expect(error.message).toBe("/etc/coredns/Corefile:3 - Error during parsing: plugin/kubernetes: 'tls' takes exactly 3 arguments (tls CERT KEY CACERT), found 2");
    expect(errorOf('cluster.local', ['tls a b c d']).detail).toContain("found 4");
  });

  it('KP-7: kubeconfig takes a path and an optional context', () => {
    const one = parse('cluster.local', ['kubeconfig /etc/kube/config']);
    expect(one.source.kind === 'api' && one.source.connection.kubeconfig).toEqual({ path: '/etc/kube/config', context: null });
    const two = parse('cluster.local', ['kubeconfig /etc/kube/config kind-kind']);
    expect(two.source.kind === 'api' && two.source.connection.kubeconfig).toEqual({ path: '/etc/kube/config', context: 'kind-kind' });
    expect(errorOf('cluster.local', ['kubeconfig a b c']).detail).toContain("'kubeconfig' takes 1 to 2 arguments");
  });

  it('manifests: paths are resolved against the Corefile directory and select the manifests source', () => {
    // The paths must exist (a missing one is a setup error: test/cli.test.ts).
    const root = mkdtempSync(join(tmpdir(), 'clusterdns-setup-'));
    mkdirSync(join(root, 'dns'));
    mkdirSync(join(root, 'shared/dir'), { recursive: true });
    for (const file of ['dns/cluster.yaml', 'more.yaml']) writeFileSync(join(root, file), '');
    const config = configOf(corefile('cluster.local', [`manifests cluster.yaml ${root}/more.yaml ../shared/dir`]), `${root}/dns/Corefile`);
    expect(config.source).toEqual({ kind: 'manifests', paths: [`${root}/dns/cluster.yaml`, `${root}/more.yaml`, `${root}/shared/dir`] });
  });

  it('manifests: needs a path, and cannot be combined with an API connection', () => {
    expect(errorOf('cluster.local', ['manifests']).detail).toContain("'manifests' takes at least 1");
    const error = errorOf('cluster.local', ['manifests a.yaml', 'endpoint https://api:6443']);
    expect(error.line).toBe(4);
    expect(error.detail).toContain("'manifests' reads objects from files and cannot be combined with 'endpoint'");
  });
});

describe('answer options (KP-8..16)', () => {
  it('KP-8: namespaces takes at least one name; repeated lines add up', () => {
    expect([...parse('cluster.local', ['namespaces a B', 'namespaces c']).namespaces!]).toEqual(['a', 'b', 'c']);
    expect(errorOf('cluster.local', ['namespaces']).line).toBe(3);
  });

  it('KP-8/KP-16: namespaces and namespace_labels cannot both be set', () => {
    const error = errorOf('cluster.local', ['namespaces a', 'namespace_labels team=dns']);
    expect(error.line).toBe(4);
    expect(error.detail).toBe('plugin/kubernetes: namespaces and namespace_labels cannot both be set');
  });

  it('KP-9: pods takes exactly one of disabled, insecure, verified; verified watches pods', () => {
    expect(parse('cluster.local', ['pods verified']).sourceOptions.watchPods).toBe(true);
    expect(parse('cluster.local', ['pods insecure']).sourceOptions.watchPods).toBe(false);
    const error = errorOf('cluster.local', ['pods secure']);
    expect(error.message).toBe('/etc/coredns/Corefile:3 - Error during parsing: plugin/kubernetes: wrong value for pods: secure, must be one of: disabled, verified, insecure');
    expect(errorOf('cluster.local', ['pods']).detail).toContain("'pods' takes exactly 1 argument");
    expect(errorOf('cluster.local', ['pods insecure verified']).detail).toContain('found 2');
  });

  it('KP-10: endpoint_pod_names takes no arguments', () => {
    expect(parse('cluster.local', ['endpoint_pod_names']).endpointPodNames).toBe(true);
    expect(errorOf('cluster.local', ['endpoint_pod_names yes']).detail).toContain("'endpoint_pod_names' takes exactly 0 arguments");
  });

  it('KP-11: ttl is an integer from 0 to 3600', () => {
    expect(parse('cluster.local', ['ttl 0']).ttl).toBe(0);
    expect(parse('cluster.local', ['ttl 3600']).ttl).toBe(3600);
    const error = errorOf('cluster.local', ['ttl 3601']);
    expect(error.message).toBe('/etc/coredns/Corefile:3 - Error during parsing: plugin/kubernetes: ttl must be in range [0, 3600]: 3601');
    expect(errorOf('cluster.local', ['ttl -1']).detail).toContain('ttl must be in range [0, 3600]: -1');
    expect(errorOf('cluster.local', ['ttl 5s']).detail).toContain("ttl must be an integer number of seconds, found '5s'");
    expect(errorOf('cluster.local', ['ttl']).line).toBe(3);
  });

  it('KP-12: fallthrough with zones, or all zones without', () => {
    expect(parse('cluster.local', ['fallthrough']).fallthrough).toEqual(['.']);
    expect(parse('cluster.local', ['fallthrough In-Addr.Arpa 10.0.0.0/24']).fallthrough).toEqual(['in-addr.arpa.', '0.0.10.in-addr.arpa.']);
  });

  it('KP-13: ignore takes exactly empty_service', () => {
    expect(parse('cluster.local', ['ignore empty_service']).ignoreEmptyService).toBe(true);
    const error = errorOf('cluster.local', ['ignore empty_services']);
    expect(error.detail).toBe("plugin/kubernetes: unable to parse ignore value: 'empty_services', expecting 'empty_service'");
    expect(errorOf('cluster.local', ['ignore']).line).toBe(3);
  });

  it('KP-14: noendpoints takes no arguments and turns the EndpointSlice watch off', () => {
    const config = parse('cluster.local', ['noendpoints']);
    expect(config.noEndpoints).toBe(true);
    expect(config.sourceOptions.watchEndpoints).toBe(false);
    expect(errorOf('cluster.local', ['noendpoints please']).line).toBe(3);
  });

  it('KP-15: labels joins its arguments into one selector (set-based syntax allowed)', () => {
    expect(parse('cluster.local', ['labels app=web, tier in (a, b)']).sourceOptions.labelSelector).toBe('app=web,tier in (a,b)');
    expect(parse('cluster.local', ['labels !canary']).sourceOptions.labelSelector).toBe('!canary');
  });

  it('KP-15: a selector that does not parse is a setup error', () => {
    for (const selector of ['app in (a', 'app!=web', '=web', 'app=we$b', 'a b']) {
      const error = errorOf('cluster.local', [`labels ${selector}`]);
      expect(error.line, selector).toBe(3);
      expect(error.detail, selector).toContain('unable to parse label selector value');
    }
  });

  it('KP-16: namespace_labels sets the Namespace selector', () => {
    expect(parse('cluster.local', ['namespace_labels istio-injection=enabled']).sourceOptions.namespaceLabelSelector).toBe('istio-injection=enabled');
  });
});

describe('other options (KP-17..21, KP-4)', () => {
  it('KP-18: startup_timeout takes a duration', () => {
    expect(parse('cluster.local', ['startup_timeout 30s']).startupTimeoutMs).toBe(30000);
    expect(parse('cluster.local', ['startup_timeout 1m30s']).startupTimeoutMs).toBe(90000);
    const error = errorOf('cluster.local', ['startup_timeout soon']);
    expect(error.line).toBe(3);
    expect(error.detail).toContain("startup_timeout must be a duration such as 5s or 1m30s, found 'soon'");
  });

  it('KP-19: apiserver_qps/burst/max_inflight are accepted with values >= 0', () => {
    const config = parse('cluster.local', ['apiserver_qps 12.5', 'apiserver_burst 20', 'apiserver_max_inflight 0']);
    expect(config.apiserver).toEqual({ qps: 12.5, burst: 20, maxInflight: 0 });
    expect(errorOf('cluster.local', ['apiserver_qps -1']).detail).toContain('apiserver_qps must be a number >= 0');
    expect(errorOf('cluster.local', ['apiserver_burst 1.5']).detail).toContain('apiserver_burst must be an integer >= 0');
  });

  it('KP-17/KP-20: multicluster and zonal are rejected as not supported', () => {
    for (const option of ['multicluster clusterset.local', 'zonal']) {
      const error = errorOf('cluster.local clusterset.local', [option]);
      expect(error.line).toBe(3);
      expect(error.detail).toContain('is not supported by clusterdns');
    }
  });

  it('KP-4: unknown properties are errors, upstream and resyncperiod included', () => {
    const unknown = errorOf('cluster.local', ['pods insecure', 'frobnicate 1']);
    expect(unknown.message).toBe("/etc/coredns/Corefile:4 - Error during parsing: plugin/kubernetes: unknown property 'frobnicate'");
    const upstream = errorOf('cluster.local', ['upstream']);
    expect(upstream.line).toBe(3);
    expect(upstream.detail).toContain("unknown property 'upstream'");
    expect(errorOf('cluster.local', ['resyncperiod 10s']).detail).toContain("unknown property 'resyncperiod'");
  });

  it('KP-21: the removed transfer option is an unknown property', () => {
    expect(errorOf('cluster.local', ['transfer to *']).detail).toBe("plugin/kubernetes: unknown property 'transfer'");
  });

  it('setup errors name the file they come from', () => {
    const error = errorOf('cluster.local', ['ttl 9999'], '/tmp/other/Corefile.test');
    expect(error.file).toBe('/tmp/other/Corefile.test');
    expect(error.message.startsWith('/tmp/other/Corefile.test:3 - Error during parsing:')).toBe(true);
  });

  it('options take no nested blocks', () => {
    const error = (() => {
      try {
        configOf('.:53 {\n    kubernetes cluster.local {\n        pods insecure {\n            x\n        }\n    }\n}\n');
      } catch (error) {
        return error as CorefileError;
      }
      throw new Error('expected an error');
    })();
    expect(error.line).toBe(3);
    expect(error.detail).toContain("'pods' takes no '{ }' block");
  });
});

describe('label selectors (KP-15)', () => {
  it('parses equality and set-based requirements and matches labels', () => {
    const selector = parseLabelSelector('app=web,tier in (front, back),!canary,env notin (dev),team');
    expect(selector.text).toBe('app=web,tier in (front,back),!canary,env notin (dev),team');
    expect(matchesSelector(selector, { app: 'web', tier: 'front', env: 'prod', team: 'x' })).toBe(true);
    expect(matchesSelector(selector, { app: 'web', tier: 'front', env: 'prod', team: 'x', canary: '1' })).toBe(false);
    expect(matchesSelector(selector, { app: 'web', tier: 'mid', team: 'x' })).toBe(false);
    expect(matchesSelector(selector, { app: 'web', tier: 'back', env: 'dev', team: 'x' })).toBe(false);
    expect(matchesSelector(parseLabelSelector('app==web'), { app: 'web' })).toBe(true);
    expect(matchesSelector(parseLabelSelector('example.com/role=dns'), { 'example.com/role': 'dns' })).toBe(true);
  });

  it('rejects what metav1.ParseToLabelSelector rejects', () => {
    for (const bad of ['app!=web', 'n>1', 'app in ()', 'app in (a', ',app', 'app,', 'UPPER.prefix/x=y', '-bad=1']) {
      expect(() => parseLabelSelector(bad), bad).toThrow(SelectorError);
    }
  });
});
