import { describe, it, expect } from 'vitest';
import { followsPreferredSyntax, normalizeKey } from '../../src/corefile/address.ts';
import type { Token, ZoneAddress } from '../../src/corefile/types.ts';
import { corefileError } from './fixtures/helpers.ts';

const key = (text: string, line = 1): Token => ({ text, file: 'Corefile', line });
const zones = (text: string, port = 53): string[] => normalizeKey(key(text), port).map((address) => address.zone);
const one = (text: string, port = 53): Omit<ZoneAddress, 'key'> => {
  const addresses = normalizeKey(key(text), port);
  expect(addresses).toHaveLength(1);
  const { key: _key, ...rest } = addresses[0]!;
  return rest;
};
const keyError = (text: string, port = 53) => corefileError(() => normalizeKey(key(text, 7), port));

describe('CF-11: zone, port and scheme', () => {
  it('CF-11: the root zone, with and without a port', () => {
    expect(one('.')).toEqual({ scheme: 'dns', zone: '.', port: 53 });
    expect(one('.:53')).toEqual({ scheme: 'dns', zone: '.', port: 53 });
    expect(one('.:1053')).toEqual({ scheme: 'dns', zone: '.', port: 1053 });
  });

  it('CF-11: zones are made fully qualified and lowercased', () => {
    expect(one('cluster.local:53')).toEqual({ scheme: 'dns', zone: 'cluster.local.', port: 53 });
    expect(one('Example.ORG.')).toEqual({ scheme: 'dns', zone: 'example.org.', port: 53 });
  });

  it('CF-11: a key without a port uses the default port (-dns.port); an explicit port wins', () => {
    expect(one('example.org', 1053).port).toBe(1053);
    expect(one('example.org:5300', 1053).port).toBe(5300);
  });

  it('CF-11: port 0 is accepted (an ephemeral port, as CoreDNS tests use)', () => {
    expect(one('.:0').port).toBe(0);
  });

  it('CF-11: the dns:// scheme is the default and may be written', () => {
    expect(one('dns://example.org:5300')).toEqual({ scheme: 'dns', zone: 'example.org.', port: 5300 });
    expect(one('dns://.')).toEqual({ scheme: 'dns', zone: '.', port: 53 });
    expect(one('DNS://example.org')).toEqual({ scheme: 'dns', zone: 'example.org.', port: 53 });
  });

  it('CF-11: each address keeps the key it came from', () => {
    const written = key('example.org:53', 4);
    expect(normalizeKey(written, 53)[0]!.key).toBe(written);
  });

  it('CF-3: the empty key is ignored', () => {
    expect(normalizeKey(key(''), 53)).toEqual([]);
  });

  it('CF-11: names CoreDNS accepts as domain names are accepted (underscores, wildcards, escapes)', () => {
    expect(zones('_tcp.example.org')).toEqual(['_tcp.example.org.']);
    expect(zones('*.example.org')).toEqual(['*.example.org.']);
    expect(zones('a\\.b.example.org')).toEqual(['a\\.b.example.org.']);
    expect(zones('10.0.0.1')).toEqual(['10.0.0.1.']);
  });

  it('CF-11: RFC 2317 classless reverse names stay names', () => {
    expect(zones('0/25.2.0.192.in-addr.arpa')).toEqual(['0/25.2.0.192.in-addr.arpa.']);
  });
});

describe('CF-11: CIDR keys expand to reverse zones', () => {
  it('CF-11: octet-aligned IPv4 prefixes give one zone', () => {
    expect(zones('10.0.0.0/24')).toEqual(['0.0.10.in-addr.arpa.']);
    expect(zones('10.0.0.0/8')).toEqual(['10.in-addr.arpa.']);
    expect(zones('172.16.0.0/16')).toEqual(['16.172.in-addr.arpa.']);
    expect(zones('192.0.2.1/32')).toEqual(['1.2.0.192.in-addr.arpa.']);
    expect(zones('0.0.0.0/0')).toEqual(['in-addr.arpa.']);
  });

  it('CF-11: host bits are masked off', () => {
    expect(zones('10.0.0.77/24')).toEqual(['0.0.10.in-addr.arpa.']);
  });

  it('CF-11: a /17 becomes 128 zones of /24 size, in address order', () => {
    const result = zones('10.0.0.0/17');
    expect(result).toHaveLength(128);
    expect(result[0]).toBe('0.0.10.in-addr.arpa.');
    expect(result[1]).toBe('1.0.10.in-addr.arpa.');
    expect(result[127]).toBe('127.0.10.in-addr.arpa.');
  });

  it('CF-11: a /27 becomes 32 single-address zones', () => {
    const result = zones('10.0.0.0/27');
    expect(result).toHaveLength(32);
    expect(result[0]).toBe('0.0.0.10.in-addr.arpa.');
    expect(result[31]).toBe('31.0.0.10.in-addr.arpa.');
  });

  it('CF-11: a split prefix starts at its own network, not at zero', () => {
    expect(zones('10.1.0.32/27')).toEqual(Array.from({ length: 32 }, (_, i) => `${32 + i}.0.1.10.in-addr.arpa.`));
    expect(zones('192.168.0.0/23')).toEqual(['0.168.192.in-addr.arpa.', '1.168.192.in-addr.arpa.']);
  });

  it('CF-11: splits reach the top of the address space without wrapping', () => {
    expect(zones('255.255.255.252/30')).toEqual(['252.255.255.255.in-addr.arpa.', '253.255.255.255.in-addr.arpa.', '254.255.255.255.in-addr.arpa.', '255.255.255.255.in-addr.arpa.']);
  });

  it('CF-11: IPv6 prefixes split on nibble boundaries', () => {
    expect(zones('fd00::/64')).toEqual(['0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.']);
    expect(zones('2001:db8::/32')).toEqual(['8.b.d.0.1.0.0.2.ip6.arpa.']);
    expect(zones('2001:db8::/30')).toEqual(['8.b.d.0.1.0.0.2.ip6.arpa.', '9.b.d.0.1.0.0.2.ip6.arpa.', 'a.b.d.0.1.0.0.2.ip6.arpa.', 'b.b.d.0.1.0.0.2.ip6.arpa.']);
    expect(zones('2001:DB8:1::/48')).toEqual(['1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.']);
  });

  it('CF-11: a CIDR key may carry a port', () => {
    expect(normalizeKey(key('10.0.0.0/24:1053'), 53).map(({ zone, port }) => [zone, port])).toEqual([['0.0.10.in-addr.arpa.', 1053]]);
    expect(normalizeKey(key('fd00::/64:1053'), 53).map(({ port }) => port)).toEqual([1053]);
    expect(normalizeKey(key('dns://10.0.0.0/25'), 5353).every(({ port }) => port === 5353)).toBe(true);
  });

  it('CF-24: 10.0.0.0/24 and 0.0.10.in-addr.arpa are the same zone', () => {
    expect(zones('10.0.0.0/24')).toEqual(zones('0.0.10.in-addr.arpa'));
  });

  it('CF-11: IPv6 forms CoreDNS rejects as invalid CIDR are rejected', () => {
    expect(keyError('::1/128').detail).toBe('invalid CIDR ::1/128');
    expect(keyError('0::/64').detail).toBe('invalid CIDR 0::/64');
  });

  it('CF-11: things that look like a CIDR but do not parse are rejected', () => {
    expect(keyError('10.0.0.0/33').detail).toBe('invalid CIDR 10.0.0.0/33');
    expect(keyError('10.0.0/24').detail).toBe('invalid CIDR 10.0.0/24');
    expect(keyError('256.0.0.0/8').detail).toBe('invalid CIDR 256.0.0.0/8');
    expect(keyError('010.0.0.0/8').detail).toBe('invalid CIDR 010.0.0.0/8');
    expect(keyError('fd00::/129').detail).toBe('invalid CIDR fd00::/129');
    expect(keyError('fd00:::1/64').detail).toBe('invalid CIDR fd00:::1/64');
  });
});

describe('CF-11: invalid keys', () => {
  it('CF-11/STOCK-5: an empty zone (":53") is rejected as not a valid domain name', () => {
    const error = keyError(':53');
    expect(error.file).toBe('Corefile');
    expect(error.line).toBe(7);
    expect(error.detail).toBe("zone is not a valid domain name: '' (the key ':53' has no zone; the root zone is written '.', as in '.:53')");
  });

  it('CF-11: a trailing colon is rejected', () => {
    expect(keyError('example.org:').detail).toBe('expecting data after last colon: "example.org:"');
  });

  it('CF-11: a port above 65535 is rejected', () => {
    expect(keyError('example.org:65536').detail).toBe("port 65536 in 'example.org:65536' is out of range, expecting 0 to 65535");
  });

  it('CF-11: a port that is not a number is rejected', () => {
    expect(keyError('example.org:dns').detail).toBe("invalid port 'dns' in 'example.org:dns', expecting a number after the last ':'");
    expect(keyError('example.org:-1').detail).toContain("invalid port '-1'");
  });

  it('CF-11: names that are not valid domain names are rejected', () => {
    expect(keyError('a..b').detail).toBe('zone is not a valid domain name: a..b');
    expect(keyError('.example.org').detail).toBe('zone is not a valid domain name: .example.org');
    expect(keyError(`${'a'.repeat(64)}.org`).detail).toBe(`zone is not a valid domain name: ${'a'.repeat(64)}.org`);
    expect(keyError('trailing\\').detail).toBe('zone is not a valid domain name: trailing\\');
  });

  it('CF-11: a zone longer than 255 characters is rejected', () => {
    const long = Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.');
    expect(keyError(long).detail).toBe(`specified zone is too long: ${long.length} > 255`);
  });

  it('CF-11: a name whose wire form exceeds 255 octets is rejected', () => {
    const name = Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.');
    expect(name.length).toBe(255);
    expect(keyError(name).detail).toBe(`zone is not a valid domain name: ${name}`);
  });

  it('CF-2: a key glued to a brace is rejected with a hint', () => {
    expect(keyError('www.example.org:1053{').detail).toContain("('{' and '}' must be separated from the keys by spaces)");
    expect(keyError('{}').detail).toContain('must be separated from the keys by spaces');
  });

  it('CF-9: a lone (name) key without a block is rejected with a hint', () => {
    expect(keyError('(snippet)').detail).toBe("zone is not a valid domain name: (snippet) (a snippet definition '(name)' needs a '{ }' block)");
  });

  it('CF-6: keys joined by a comma without a space are rejected', () => {
    expect(keyError('a.org,b.org').detail).toContain("zone is not a valid domain name: a.org,b.org");
  });
});

describe('WIRE-26: only plain DNS is served', () => {
  for (const [scheme, what] of [
    ['tls', 'DNS over TLS'],
    ['https', 'DNS over HTTPS'],
    ['grpc', 'DNS over gRPC'],
    ['quic', 'DNS over QUIC'],
    ['https3', 'DNS over HTTP/3'],
  ] as const) {
    it(`WIRE-26/CF-11: ${scheme}:// keys are rejected with a clear error`, () => {
      const error = keyError(`${scheme}://.:853`);
      expect(error.line).toBe(7);
      expect(error.detail).toBe(`cannot serve ${scheme}://.:853: the ${scheme}:// scheme (${what}) is not supported; clusterdns serves plain DNS only, use dns:// or no scheme`);
    });
  }

  it('CF-11: an unknown scheme is rejected', () => {
    expect(keyError('foo://example.org').detail).toBe("unknown scheme 'foo://' in 'foo://example.org', expecting dns:// or no scheme");
  });

  it('CF-11: a scheme twice is rejected', () => {
    expect(keyError('dns://dns://example.org').detail).toBe("unexpected '://' in the zone of 'dns://dns://example.org', expecting [dns://]zone[:port]");
  });
});

describe('CF-11: RFC 1035 preferred syntax (startup warning)', () => {
  it('CF-11: ordinary names follow it; the root and reverse zones are exempt', () => {
    expect(followsPreferredSyntax('example.org.')).toBe(true);
    expect(followsPreferredSyntax('.')).toBe(true);
    expect(followsPreferredSyntax('0.0.10.in-addr.arpa.')).toBe(true);
    expect(followsPreferredSyntax('d.f.ip6.arpa.')).toBe(true);
  });

  it('CF-11: names with underscores, digits first or IP-like labels do not', () => {
    expect(followsPreferredSyntax('_tcp.example.org.')).toBe(false);
    expect(followsPreferredSyntax('127.0.0.1.')).toBe(false);
    expect(followsPreferredSyntax('a-.example.')).toBe(false);
  });
});
