// From Corefile to listeners: duplicates, bind-aware overlap, plugin setup errors (CF-8, CF-14, CF-25).

import { describe, expect, it } from 'vitest';
import { planFromCorefile } from '../src/config.ts';
import { CorefileError } from '../src/corefile/types.ts';

function planError(corefile: string): CorefileError {
  try {
    planFromCorefile(corefile, 'Corefile', { dnsPort: 53 });
  } catch (error) {
    if (error instanceof CorefileError) return error;
    throw error;
  }
  throw new Error('expected a setup error');
}

describe('CF-14: the same zone twice', () => {
  it('CF-25: two .:53 blocks are an error at the later key', () => {
    const error = planError('.:53 {\n whoami\n}\n\n. {\n whoami\n}\n');
    expect(error.line).toBe(5);
    expect(error.message).toBe('Corefile:5 - Error during parsing: cannot serve dns://.:53 - it is already defined');
  });

  it('spelling differences do not hide a duplicate', () => {
    expect(planError('Example.org {\n whoami\n}\nexample.ORG.:53 {\n whoami\n}\n').detail).toBe('cannot serve dns://example.org.:53 - it is already defined');
  });

  it('the same key twice in one block is a duplicate too', () => {
    expect(planError('example.org example.org {\n whoami\n}\n').detail).toContain('it is already defined');
  });

  it('the same zone on different ports, or different zones on one port, are fine', () => {
    const plan = planFromCorefile('example.org:53 {\n whoami\n}\nexample.org:1053 {\n whoami\n}\nacme.local:53 {\n whoami\n}\n', 'Corefile', { dnsPort: 53 });
    expect(plan.listeners.map((listener) => [listener.label, [...listener.zones.keys()]])).toEqual([
      ['dns://:53', ['example.org.', 'acme.local.']],
      ['dns://:1053', ['example.org.']],
    ]);
  });

  it('CF-23: the same zone may be served on different bind addresses', () => {
    const plan = planFromCorefile('example.org {\n bind 127.0.0.1\n whoami\n}\nexample.org {\n bind 127.0.0.2\n whoami\n}\n', 'Corefile', { dnsPort: 53 });
    expect(plan.listeners.map((listener) => listener.label)).toEqual(['dns://127.0.0.1:53', 'dns://127.0.0.2:53']);
  });

  it('CF-14: a zone served both bound and unbound is "zone overlap listener capacity"', () => {
    const error = planError('example.org {\n bind 127.0.0.1\n whoami\n}\nexample.org {\n whoami\n}\n');
    expect(error.line).toBe(5);
    expect(error.detail).toContain('zone overlap listener capacity');
  });
});

describe('plugin setup', () => {
  it('CF-8: errors may be used once per block', () => {
    const error = planError('. {\n errors\n whoami\n errors\n}\n');
    expect(error.message).toBe('Corefile:4 - Error during parsing: plugin/errors: this plugin can only be used once per Server Block');
  });

  it('a CoreDNS plugin clusterdns lacks is named as such', () => {
    expect(planError('. {\n geoip /db\n}\n').message).toBe("Corefile:2 - Error during parsing: Directive 'geoip' is a CoreDNS plugin that clusterdns does not support");
  });

  it('an unknown directive names the token', () => {
    expect(planError('. {\n whoami\n forwardd . 1.1.1.1\n}\n').message).toBe("Corefile:3 - Error during parsing: Unknown directive 'forwardd'");
  });

  it('whoami takes no arguments', () => {
    expect(planError('. {\n whoami extra\n}\n').message).toContain("Corefile:2 - Error during parsing: Unexpected token 'extra'");
  });

  it('log class must be one of success, denial, error, all', () => {
    expect(planError('. {\n log {\n  class everything\n }\n}\n').message).toBe(
      "Corefile:3 - Error during parsing: invalid class 'everything': expected success, denial, error or all",
    );
  });

  it('errors consolidate needs a duration and a regexp', () => {
    expect(planError('. {\n errors {\n  consolidate 5m\n }\n}\n').message).toContain('Corefile:3 - Error during parsing: consolidate takes DURATION REGEXP');
    expect(planError('. {\n errors {\n  consolidate five ".*"\n }\n}\n').message).toContain("duration must be a duration such as 5s or 1m30s, found 'five'");
  });

  it('bind needs an address', () => {
    expect(planError('. {\n bind\n}\n').message).toBe("Corefile:2 - Error during parsing: plugin/bind: at least one address or interface is required after 'bind'");
  });
});
