// template over real UDP: the cluster recipes (AAAA NODATA, search-path junk
// NXDOMAIN, records made from the name), sections, rcode, fallthrough, CNAME
// targets through the server, template data, the wire form CoreDNS sends,
// metrics and setup errors. Then the pieces on their own: Go regexps, Go
// templates and zone-text records, each checked against what Go and miekg/dns do.

import { describe, expect, it } from 'vitest';
import { registry } from '../src/metrics.ts';
import { builtinPlugins } from '../src/registry.ts';
import { GoTemplate, TemplateParseError } from '../plugins/template/gotemplate.ts';
import { GoMap, GoStruct } from '../plugins/template/govalues.ts';
import { compileGoRegexp, findSubmatch } from '../plugins/template/regexp.ts';
import { parseRecord } from '../plugins/template/rr.ts';
import { TEMPLATE_FUNCTIONS } from '../plugins/template/setup.ts';
import { buildQuery, decodeReply, queryUdp, sendUdp, type DecodedReply } from './support/dns.ts';
import { useFixture } from './support/fixture.ts';
import { expectSetupError } from './support/setup-errors.ts';

const { serve, captureLog } = useFixture();

type Section = 'answers' | 'authorities' | 'additionals';

/** A section as dig shows it: "name ttl TYPE data". */
function section(reply: DecodedReply, which: Section = 'answers'): string[] {
  return (reply[which] ?? []).filter((record) => record.type !== 'OPT').map((record) => {
    const { name, type, ttl, data } = record as { name: string; type: string; ttl: number; data: unknown };
    const text = Array.isArray(data) ? data.map((item) => Buffer.from(item as Uint8Array).toString()).join(' ')
      : typeof data === 'object' ? Object.values(data as object).join(' ') : String(data);
    return `${name} ${ttl} ${type} ${text}`;
  });
}

const isAuthoritative = (reply: DecodedReply) => Boolean(reply.flags! & 0x0400);

async function metricsText(): Promise<string> {
  return registry.metrics();
}

describe('cluster recipes', () => {
  it('AAAA NODATA in an IPv4-only cluster: NOERROR, no records, AA; A still answered by the next plugin', async () => {
    const port = await serve(`. {\n  template ANY AAAA {\n    rcode NOERROR\n  }\n  hosts {\n    10.96.0.10 web.demo.svc.cluster.local\n    fd00::10 web.demo.svc.cluster.local\n  }\n}\n`);
    const aaaa = await queryUdp(port, 'web.demo.svc.cluster.local', { type: 'AAAA' });
    expect(aaaa.rcode).toBe('NOERROR');
    expect(isAuthoritative(aaaa)).toBe(true);
    expect(section(aaaa)).toEqual([]);
    expect(section(aaaa, 'authorities')).toEqual([]);
    expect(section(await queryUdp(port, 'web.demo.svc.cluster.local'))).toEqual(['web.demo.svc.cluster.local 3600 A 10.96.0.10']);
  });

  it('search-path junk (*.cluster.local.cluster.local) gets NXDOMAIN with the SOA; other names go on', async () => {
    const port = await serve(`. {
  template ANY ANY cluster.local.cluster.local {
    rcode NXDOMAIN
    authority "{{ .Zone }} 60 IN SOA ns.{{ .Zone }} hostmaster.{{ .Zone }} (1 60 60 60 60)"
  }
  hosts {
    10.96.0.10 web.demo.svc.cluster.local
  }
}
`);
    const junk = await queryUdp(port, 'web.demo.svc.cluster.local.cluster.local');
    expect(junk.rcode).toBe('NXDOMAIN');
    expect(isAuthoritative(junk)).toBe(true);
    expect(section(junk)).toEqual([]);
    expect(section(junk, 'authorities')).toEqual([
      'cluster.local.cluster.local 60 SOA ns.cluster.local.cluster.local hostmaster.cluster.local.cluster.local 1 60 60 60 60',
    ]);
    expect(section(await queryUdp(port, 'web.demo.svc.cluster.local'))).toEqual(['web.demo.svc.cluster.local 3600 A 10.96.0.10']);
  });

  it('faked records for test clusters: ip-10-0-0-1.example → A 10.0.0.1 from named groups, and the PTR back', async () => {
    const port = await serve(`. {
  template IN A example {
    match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
    answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
    fallthrough
  }
  template IN PTR in-addr.arpa {
    match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
    answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
  }
  template IN A hex.example {
    match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]hex[.]example[.]$"
    answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"
  }
}
`);
    expect(section(await queryUdp(port, 'ip-10-0-0-1.example'))).toEqual(['ip-10-0-0-1.example 60 A 10.0.0.1']);
    // The match is not anchored at the start: any name below an ip- label is a wildcard.
    expect(section(await queryUdp(port, 'www.ip-10-1-2-3.example'))).toEqual(['www.ip-10-1-2-3.example 60 A 10.1.2.3']);
    expect(section(await queryUdp(port, '1.0.0.10.in-addr.arpa', { type: 'PTR' }))).toEqual(['1.0.0.10.in-addr.arpa 60 PTR ip-10-0-0-1.example']);
    expect(section(await queryUdp(port, 'ip0a7b7c7d.hex.example'))).toEqual(['ip0a7b7c7d.hex.example 60 A 10.123.124.125']);
  });
});

describe('answers', () => {
  it('answer, additional and authority sections, in Corefile order, with AA', async () => {
    const port = await serve(`. {
  template IN MX example {
    match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
    answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
    additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
    authority  "example. 60 IN NS ns0.example."
    authority  "example. 60 IN NS ns1.example."
    additional "ns0.example. 60 IN A 203.0.113.8"
  }
}
`);
    const reply = await queryUdp(port, 'ip-10-0-0-7.example', { type: 'MX' });
    expect(reply.rcode).toBe('NOERROR');
    expect(isAuthoritative(reply)).toBe(true);
    expect(section(reply)).toEqual(['ip-10-0-0-7.example 60 MX 10 ip-10-0-0-7.example']);
    expect(section(reply, 'authorities')).toEqual(['example 60 NS ns0.example', 'example 60 NS ns1.example']);
    expect(section(reply, 'additionals')).toEqual(['ip-10-0-0-7.example 60 A 10.0.0.7', 'ns0.example 60 A 203.0.113.8']);
  });

  it('records take miekg/dns defaults: TTL 3600, class IN, names relative to the root, TTL and class in either order', async () => {
    const port = await serve(`. {
  template IN A rel.test {
    answer "foo.rel.test A 1.1.1.1"
    answer "{{ .Name }} IN 30 A 1.1.1.2"
    authority "rel.test 5 NS ns1"
  }
  template IN TXT rel.test {
    answer "{{ .Name }} 1h TXT \\"two words\\" more"
  }
}
`);
    const reply = await queryUdp(port, 'x.rel.test');
    expect(section(reply)).toEqual(['foo.rel.test 3600 A 1.1.1.1', 'x.rel.test 30 A 1.1.1.2']);
    expect(section(reply, 'authorities')).toEqual(['rel.test 5 NS ns1']);
    expect(section(await queryUdp(port, 'x.rel.test', { type: 'TXT' }))).toEqual(['x.rel.test 3600 TXT two words more']);
  });

  it('rcode: REFUSED keeps the records and AA; SERVFAIL answers the server SERVFAIL with no records and no AA', async () => {
    const port = await serve(`. {
  template IN ANY ref.test {
    rcode REFUSED
    answer "{{ .Name }} 60 IN A 1.2.3.4"
  }
  template ANY ANY sf.test {
    rcode SERVFAIL
    answer "{{ .Name }} 60 IN A 1.2.3.4"
  }
}
`);
    const refused = await queryUdp(port, 'x.ref.test');
    expect(refused.rcode).toBe('REFUSED');
    expect(isAuthoritative(refused)).toBe(true);
    expect(section(refused)).toEqual(['x.ref.test 60 A 1.2.3.4']);
    const servfail = await queryUdp(port, 'x.sf.test');
    expect(servfail.rcode).toBe('SERVFAIL');
    expect(isAuthoritative(servfail)).toBe(false);
    expect(section(servfail)).toEqual([]);
  });

  it('a TYPE ANY rule answers every type; an ANY question is answered by the first rule of its zone, with the rule\'s type', async () => {
    const port = await serve(`. {
  template IN AAAA any.test {
    answer "{{ .Name }} 60 IN TXT \\"{{ .Type }}\\""
  }
  template IN ANY any.test {
    answer "{{ .Name }} 60 IN TXT \\"{{ .Type }} {{ .Class }}\\""
  }
}
`);
    expect(section(await queryUdp(port, 'a.any.test', { type: 'MX' }))).toEqual(['a.any.test 60 TXT MX IN']);
    expect(section(await queryUdp(port, 'a.any.test', { type: 'ANY' }))).toEqual(['a.any.test 60 TXT AAAA']);
  });

  it('names outside every template zone go to the next plugin; a type the rules do not take too', async () => {
    const port = await serve(`. {\n  template IN A only.test {\n    answer "{{ .Name }} 60 IN A 10.0.0.1"\n  }\n  hosts {\n    10.0.0.2 other.test only.test\n  }\n}\n`);
    expect(section(await queryUdp(port, 'other.test'))).toEqual(['other.test 3600 A 10.0.0.2']);
    expect(section(await queryUdp(port, 'only.test'))).toEqual(['only.test 60 A 10.0.0.1']);
    // AAAA: the rule does not take it, hosts answers NODATA for a name it has.
    const aaaa = await queryUdp(port, 'only.test', { type: 'AAAA' });
    expect(aaaa.rcode).toBe('NOERROR');
    expect(section(aaaa)).toEqual([]);
  });
});

describe('fallthrough', () => {
  const corefile = (fallthrough: string) => `. {
  template IN A ft.test {
    match ^a[.]
    answer "{{ .Name }} 60 IN A 10.0.0.1"
    ${fallthrough}
  }
  template IN A ft.test {
    match ^b[.]
    match ^c[.]
    answer "{{ .Name }} 60 IN A 10.0.0.{{ if eq (index .Match 0) \\"b.\\" }}2{{ else }}3{{ end }}"
    fallthrough
  }
  hosts {
    10.0.0.9 d.ft.test d.sub.ft.test
  }
}
`;

  it('without fallthrough, a name in the zone that no regex matches gets SERVFAIL', async () => {
    const port = await serve(corefile(''));
    expect(section(await queryUdp(port, 'a.ft.test'))).toEqual(['a.ft.test 60 A 10.0.0.1']);
    const miss = await queryUdp(port, 'b.ft.test');
    expect(miss.rcode).toBe('SERVFAIL');
    expect(section(miss)).toEqual([]);
  });

  it('with fallthrough, the next template is tried, then the next plugin; the first matching regex wins', async () => {
    const port = await serve(corefile('fallthrough'));
    expect(section(await queryUdp(port, 'b.ft.test'))).toEqual(['b.ft.test 60 A 10.0.0.2']);
    expect(section(await queryUdp(port, 'c.ft.test'))).toEqual(['c.ft.test 60 A 10.0.0.3']);
    expect(section(await queryUdp(port, 'd.ft.test'))).toEqual(['d.ft.test 3600 A 10.0.0.9']);
  });

  it('fallthrough ZONES: only names in those zones go on; others get SERVFAIL', async () => {
    const port = await serve(corefile('fallthrough sub.ft.test'));
    expect(section(await queryUdp(port, 'd.sub.ft.test'))).toEqual(['d.sub.ft.test 3600 A 10.0.0.9']);
    expect((await queryUdp(port, 'd.ft.test')).rcode).toBe('SERVFAIL');
  });
});

describe('CNAME answers', () => {
  it('an A or AAAA question follows the CNAME target through the server, with or without upstream', async () => {
    const port = await serve(`. {
  template IN ANY alias.test {
    answer "{{ .Name }} 60 IN CNAME target.test."
    upstream
  }
  template IN A noup.test {
    answer "noup.test 60 IN CNAME target.test"
  }
  hosts {
    10.9.9.9 target.test
    fd00::9 target.test
  }
}
`);
    expect(section(await queryUdp(port, 'alias.test'))).toEqual(['alias.test 60 CNAME target.test', 'target.test 3600 A 10.9.9.9']);
    expect(section(await queryUdp(port, 'alias.test', { type: 'AAAA' }))).toEqual(['alias.test 60 CNAME target.test', 'target.test 3600 AAAA fd00::9']);
    expect(section(await queryUdp(port, 'noup.test'))).toEqual(['noup.test 60 CNAME target.test', 'target.test 3600 A 10.9.9.9']);
    // Other types are not followed.
    expect(section(await queryUdp(port, 'alias.test', { type: 'TXT' }))).toEqual(['alias.test 60 CNAME target.test']);
  });

  it('a chain of template CNAMEs is followed to the end; an unresolvable target leaves the CNAME and NOERROR', async () => {
    const port = await serve(`. {
  template IN A a.test {
    answer "a.test. 60 IN CNAME b.test."
  }
  template IN A b.test {
    answer "b.test. 60 IN CNAME c.test."
  }
  template IN A c.test {
    answer "c.test. 60 IN A 3.3.3.3"
  }
  template IN A dangling.test {
    answer "dangling.test. 60 IN CNAME nowhere.test."
  }
}
`);
    expect(section(await queryUdp(port, 'a.test'))).toEqual(['a.test 60 CNAME b.test', 'b.test 60 CNAME c.test', 'c.test 60 A 3.3.3.3']);
    const dangling = await queryUdp(port, 'dangling.test');
    expect(dangling.rcode).toBe('NOERROR');
    expect(section(dangling)).toEqual(['dangling.test 60 CNAME nowhere.test']);
  });

  it('a CNAME to itself is followed 8 times, then answered (CoreDNS never answers it)', async () => {
    const port = await serve(`. {\n  template IN A loop.test {\n    answer "{{ .Name }} 60 IN CNAME {{ .Name }}"\n  }\n}\n`);
    const reply = await queryUdp(port, 'x.loop.test');
    expect(section(reply)).toEqual(Array(9).fill('x.loop.test 60 CNAME x.loop.test'));
  });
});

describe('template data', () => {
  it('.Name, .Zone, .Class, .Type, .Remote, .Match, .Group, .Regex, .Question, .Message, .Meta', async () => {
    const port = await serve(`. {
  template IN TXT data.test {
    match ^(?P<first>[a-z]+)[.]
    answer "{{ .Name }} 60 IN TXT \\"{{ .Zone }}\\" \\"{{ .Class }}\\" \\"{{ .Type }}\\" \\"{{ .Remote }}\\" \\"{{ index .Match 1 }}\\" \\"{{ .Group.first }}\\" \\"{{ .Group.nosuch }}\\" \\"{{ .Regex }}\\""
    additional "{{ .Name }} 60 IN TXT \\"{{ .Question.Name }}\\" \\"{{ .Question.Qtype }}\\" \\"{{ .Message.Id }}\\" \\"{{ .Meta \\"kubernetes/client-namespace\\" }}\\" \\"{{ printf \\"%03d-%x\\" 7 255 }}\\""
  }
}
`);
    const reply = await queryUdp(port, 'Host.Data.Test', { type: 'TXT', id: 4242 });
    expect(section(reply)).toEqual(['host.data.test 60 TXT data.test. IN TXT 127.0.0.1 host host <no value> ^(?P<first>[a-z]+)[.]']);
    expect(section(reply, 'additionals')).toEqual(['host.data.test 60 TXT Host.Data.Test. 16 4242  007-ff']);
  });

  it('the owner name is .Name, lowercased, written in full: CoreDNS sends template replies uncompressed', async () => {
    const port = await serve(`. {\n  template IN A example {\n    answer "{{ .Name }} 60 IN A 10.0.0.1"\n  }\n}\n`);
    const raw = await sendUdp(port, buildQuery('IP-1.Example', { id: 7, flags: 0 }));
    // Header, question as sent, then the record with its owner spelled out (no 0xc00c pointer).
    const question = Buffer.from('0449502d31074578616d706c650000010001', 'hex');
    const record = Buffer.from('0469702d31076578616d706c6500000100010000003c00040a000001', 'hex');
    expect(raw!.subarray(12)).toEqual(Buffer.concat([question, record]));
    expect(decodeReply(raw!).answers![0]!.name).toBe('ip-1.example');
  });
});

describe('failures', () => {
  it('a template that fails to run: SERVFAIL, logged by errors, counted with the template as Go prints it', async () => {
    const lines = captureLog();
    const port = await serve(`. {\n  errors\n  template IN A fail.test {\n    answer "{{ index .Match 3 }} 60 IN A 1.2.3.4"\n  }\n}\n`);
    const reply = await queryUdp(port, 'x.fail.test');
    expect(reply.rcode).toBe('SERVFAIL');
    expect(section(reply)).toEqual([]);
    expect(lines.some((line) => line.includes('x.fail.test. A:') && line.includes('error calling index: index out of range: 3'))).toBe(true);
    expect(await metricsText()).toContain(
      'coredns_template_template_failures_total{server="dns://:0",zone="fail.test.",view="",class="IN",type="A",section="answer",template="{{index .Match 3}} 60 IN A 1.2.3.4"} 1',
    );
  });

  it('a template that makes no record: SERVFAIL, counted in coredns_template_rr_failures_total', async () => {
    const port = await serve(`. {\n  template IN A rrfail.test {\n    authority "{{ .Name }} 60 IN A 1.2.3"\n  }\n}\n`);
    expect((await queryUdp(port, 'x.rrfail.test')).rcode).toBe('SERVFAIL');
    expect(await metricsText()).toContain(
      'coredns_template_rr_failures_total{server="dns://:0",zone="rrfail.test.",view="",class="IN",type="A",section="authority",template="{{.Name}} 60 IN A 1.2.3"} 1',
    );
  });

  it('coredns_template_matches_total counts matches by zone, class and type', async () => {
    const port = await serve(`. {\n  template IN A count.test {\n    answer "{{ .Name }} 60 IN A 10.0.0.1"\n  }\n}\n`);
    for (let i = 0; i < 3; i++) await queryUdp(port, 'x.count.test');
    await queryUdp(port, 'other.test');
    expect(await metricsText()).toContain('coredns_template_matches_total{server="dns://:0",zone="count.test.",view="",class="IN",type="A"} 3');
  });
});

describe('setup', () => {
  it('is a plugin of the build, in plugin.cfg order between minimal and transfer', () => {
    const order = builtinPlugins.order;
    expect(builtinPlugins.implemented()).toContain('template');
    expect(order.indexOf('template')).toBe(order.indexOf('minimal') + 1);
  });

  it.each([
    ['. {\n  template\n}\n', 2, /^Wrong argument count or unexpected line ending after 'template'$/],
    ['. {\n  template IN\n}\n', 2, /^Wrong argument count or unexpected line ending after 'IN'$/],
    ['. {\n  template in A\n}\n', 2, /^invalid query class in$/],
    ['. {\n  template IN FOO\n}\n', 2, /^invalid RR class FOO$/],
    ['. {\n  template IN A {\n    match "(?=x)"\n  }\n}\n', 3, /^could not parse regex: \(\?=x\), error parsing regexp: invalid or unsupported Perl syntax: `\(\?=`$/],
    ['. {\n  template IN A {\n    match\n  }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'match'$/],
    ['. {\n  template IN A {\n\n    answer "{{ .Name "\n  }\n}\n', 4, /^could not compile template: \{\{ \.Name , template: answer:1: unclosed action$/],
    ['. {\n  template IN A {\n    additional "{{ nosuch }}"\n  }\n}\n', 3, /function "nosuch" not defined$/],
    ['. {\n  template IN A {\n    answer\n  }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'answer'$/],
    ['. {\n  template IN A {\n    rcode nxdomain\n  }\n}\n', 3, /^unknown rcode nxdomain$/],
    ['. {\n  template IN A {\n    rcode\n  }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'rcode'$/],
    ['. {\n  template IN A {\n    bogus\n  }\n}\n', 3, /^Wrong argument count or unexpected line ending after 'bogus'$/],
    ['. {\n  template IN A {\n    ederror x\n  }\n}\n', 3, /^error parsing extended DNS error code x, strconv.ParseUint: parsing "x": invalid syntax$/],
  ])('rejects %j at line %i as CoreDNS does', (corefile, line, detail) => {
    expectSetupError(corefile, line, detail);
  });

  it('takes what CoreDNS 1.11 takes: an empty block, upstream with addresses, ederror (warned: not sent), several templates', async () => {
    const lines = captureLog();
    const port = await serve(`. {
  template IN A empty.test {
  }
  template ANY ANY invalid {
    rcode NXDOMAIN
    authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
    ederror 21 "Blocked according to RFC2606"
    upstream 8.8.8.8
  }
}
`);
    expect(lines.some((line) => line.includes('ederror'))).toBe(true);
    const empty = await queryUdp(port, 'x.empty.test');
    expect(empty.rcode).toBe('NOERROR');
    expect(section(empty)).toEqual([]);
    const invalid = await queryUdp(port, 'foo.invalid');
    expect(invalid.rcode).toBe('NXDOMAIN');
    expect(section(invalid, 'authorities')).toEqual(['invalid 60 SOA ns.invalid hostmaster.invalid 1 60 60 60 60']);
  });
});

describe('Go regular expressions', () => {
  const submatch = (pattern: string, text: string) => findSubmatch(compileGoRegexp(pattern), text);

  it('named groups (?P<name>) and (?<name>), names JS would refuse, and group names in order', () => {
    const regexp = compileGoRegexp('(?P<1st>[a-z]+)-(?<second>[0-9]+)-([a-z])?');
    expect(regexp.names).toEqual(['', '1st', 'second', '']);
    expect(findSubmatch(regexp, 'ab-12-')).toEqual(['ab-12-', 'ab', '12', '']);
  });

  it('RE2 forms JS lacks or reads differently: flags, \\A \\z, \\Q..\\E, POSIX and Perl classes, a leading ] in a class, octal', () => {
    expect(submatch('(?i)ABC', 'xabc')).toEqual(['abc']);
    expect(submatch('a(?i)b|c', 'C')).toEqual(['C']);
    expect(submatch('(?U)a+', 'aaa')).toEqual(['a']);
    expect(submatch('(?s).', '\n')).toEqual(['\n']);
    expect(submatch('.', '\n')).toBeNull();
    expect(submatch('(?m)^b$', 'a\nb\nc')).toEqual(['b']);
    expect(submatch('\\Aa.\\z', 'ab')).toEqual(['ab']);
    expect(submatch('\\Qa.b\\E', 'axb')).toBeNull();
    expect(submatch('[[:alpha:]]+[[:^alpha:]]', 'ab1')).toEqual(['ab1']);
    expect(submatch('[]a]+', ']a]')).toEqual([']a]']);
    expect(submatch('\\s', '\u00a0 ')).toEqual([' ']);
    expect(submatch('\\101\\x42\\x{43}', 'ABC')).toEqual(['ABC']);
    expect(submatch('x{,3}', 'x{,3}')).toEqual(['x{,3}']);
    expect(submatch('^*a', 'a')).toEqual(['a']);
  });

  it.each([
    ['(?=x)', 'invalid or unsupported Perl syntax: `(?=`'],
    ['(?<!x)', 'invalid or unsupported Perl syntax: `(?<!`'],
    ['(a)\\1', 'invalid escape sequence: `\\1`'],
    ['a**', 'invalid nested repetition operator: `**`'],
    ['*', 'missing argument to repetition operator: `*`'],
    ['a{1001}', 'invalid repeat count: `{1001}`'],
    ['(a', 'missing closing ): `(a`'],
    ['a)', 'unexpected ): `a)`'],
    ['[a', 'missing closing ]: `[a`'],
    ['[z-a]', 'invalid character class range: `z-a`'],
    ['\\i', 'invalid escape sequence: `\\i`'],
    ['(?P<>a)', 'invalid named capture: `(?P<>`'],
  ])('rejects %s as Go does', (pattern, message) => {
    expect(() => compileGoRegexp(pattern)).toThrow(`error parsing regexp: ${message}`);
  });
});

describe('Go templates', () => {
  const data = new GoStruct('*template.templateData', {
    Name: () => 'ip-10-0-0-1.example.',
    Match: () => ['ip-10-0-0-1.example.', '10'],
    Group: () => new GoMap(new Map([['0', 'ip-10-0-0-1.example.'], ['a', '10']]), '', 'map[string]string'),
    Type: () => 'A',
  });
  const run = (text: string) => new GoTemplate('answer', text, TEMPLATE_FUNCTIONS).execute(data);

  it.each([
    ['{{ .Name }} {{ .Group.a }} {{ index .Match 1 }}', 'ip-10-0-0-1.example. 10 10'],
    ['{{ .Group.nosuch }}|{{ index .Group "nosuch" }}|', '<no value>||'],
    ['{{ if eq .Type "AAAA" "A" }}yes{{ else if .Name }}name{{ else }}no{{ end }}', 'yes'],
    ['{{ $n := .Name }}{{ with .Group.a }}{{ . }}@{{ $n }}{{ end }}', '10@ip-10-0-0-1.example.'],
    ['{{ range $i, $m := .Match }}{{ $i }}={{ $m }};{{ end }}', '0=ip-10-0-0-1.example.;1=10;'],
    ['{{ .Name | printf "%s!" }} {{ printf "%03d|%-3s|%x|%q" 7 "a" 255 "q" }}', 'ip-10-0-0-1.example.! 007|a  |ff|"q"'],
    ['{{ parseInt "ff" 16 8 }} {{ parseInt "0x1F" 0 64 }}', '255 31'],
    ['{{ len .Match }} {{ .Match }} {{ slice .Name 0 2 }} {{ not .Group.nosuch }} {{ and 1 0 }} {{ or "" "b" }}', '2 [ip-10-0-0-1.example. 10] ip true 0 b'],
    ['a {{- /* comment */ -}} b {{- " c " }}', 'ab c '],
  ])('%s', (text, expected) => {
    expect(run(text)).toBe(expected);
  });

  it('prints a template the way Go\'s parse tree does (the metrics label)', () => {
    expect(new GoTemplate('answer', '{{ .Name }} 60 IN A {{index .Match  1}}{{- if eq .Type "A" }}x{{ end }}', TEMPLATE_FUNCTIONS).text)
      .toBe('{{.Name}} 60 IN A {{index .Match 1}}{{if eq .Type "A"}}x{{end}}');
  });

  it.each([
    ['{{ index .Match 5 }}', 'error calling index: index out of range: 5'],
    ['{{ .Nosuch }}', "can't evaluate field Nosuch in type *template.templateData"],
    ['{{ parseInt .Group.a 16 4 }}', 'error calling parseInt: strconv.ParseUint: parsing "10": value out of range'],
    ['{{ parseInt .Group.nosuch 10 8 }}', 'error calling parseInt: invalid value; expected string'],
    ['{{ eq 1 "a" }}', 'error calling eq: incompatible types for comparison'],
  ])('%s fails to run: %s', (text, message) => {
    expect(() => run(text)).toThrow(message);
  });

  it.each([
    ['{{ .Name ', 'template: answer:1: unclosed action'],
    ['{{ nosuch }}', 'template: answer:1: function "nosuch" not defined'],
    ['{{ end }}', 'template: answer:1: unexpected {{end}}'],
    ['{{ if .Name }}', 'template: answer:1: unexpected EOF'],
    ['{{ $x }}', 'template: answer:1: undefined variable "$x"'],
    ['{{ }}', 'template: answer:1: missing value for command'],
    ['{{ "abc }}', 'template: answer:1: unterminated quoted string'],
  ])('%s does not parse: %s', (text, message) => {
    expect(() => new GoTemplate('answer', text, TEMPLATE_FUNCTIONS)).toThrow(TemplateParseError);
    expect(() => new GoTemplate('answer', text, TEMPLATE_FUNCTIONS)).toThrow(message);
  });
});

describe('zone-text records', () => {
  it.each([
    ['a.example. 60 IN A 10.0.0.1', { name: 'a.example.', type: 1, class: 1, ttl: 60, data: '10.0.0.1' }],
    ['a.example AAAA fd00::1', { name: 'a.example.', type: 28, class: 1, ttl: 3600, data: 'fd00::1' }],
    ['@ IN 1h30m NS ns1', { name: '.', type: 2, class: 1, ttl: 5400, data: 'ns1.' }],
    ['x. 60 CH TXT "a \\"b\\"" c', { name: 'x.', type: 16, class: 3, ttl: 60, data: ['a "b"', 'c'] }],
    ['x. 60 IN SRV 0 5 53 t.example.', { name: 'x.', type: 33, class: 1, ttl: 60, data: { priority: 0, weight: 5, port: 53, target: 't.example.' } }],
    ['x. 60 IN MX 10 mail', { name: 'x.', type: 15, class: 1, ttl: 60, data: { preference: 10, exchange: 'mail.' } }],
    ['z. 60 IN SOA ns.z. h.z. (\n 1 ; serial\n 60 1m 1h 1d )', { name: 'z.', type: 6, class: 1, ttl: 60, data: { mname: 'ns.z.', rname: 'h.z.', serial: 1, refresh: 60, retry: 60, expire: 3600, minimum: 86400 } }],
    ['x. 60 IN TYPE65280 \\# 2 abcd', { name: 'x.', type: 65280, class: 1, ttl: 60, data: Buffer.from('abcd', 'hex') }],
  ])('%j', (text, record) => {
    expect(parseRecord(text)).toEqual(record);
  });

  it.each([
    ['x. 60 IN A 1.2.3', 'bad A A'],
    ['x. 60 IN A 01.2.3.4', 'bad A A'],
    ['x. 60 IN AAAA 1.2.3.4', 'bad AAAA'],
    ['x. 60 IN A', 'bad A A'],
    ['x. 60 IN FOO bar', 'unknown RR type'],
    ['x. 60 IN MX 70000 mail.', 'bad MX Pref'],
    ['a..b. 60 IN A 1.2.3.4', 'bad owner name'],
    [`${'a'.repeat(64)}. 60 IN A 1.2.3.4`, 'bad owner name'],
    ['x. 60 IN TXT "open', 'unbalanced quotes'],
    ['x. 60 IN CAA 0 issue "ca.example"', 'cannot build CAA records'],
    ['', 'missing owner'],
  ])('%j is not a record: %s', (text, message) => {
    expect(() => parseRecord(text)).toThrow(message);
  });
});
