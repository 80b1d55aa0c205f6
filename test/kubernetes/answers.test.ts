// Answer shapes of the kubernetes plugin (K8S-*, KP-*), asserted on the
// Reply and on the bytes a client receives (decoded with dns-packet).

import { describe, expect, it } from 'vitest';
import { Rcode, Type } from '../../src/wire/constants.ts';
import { emptyReply, ReplyFlag, type Reply } from '../../src/wire/message.ts';
import type { Next } from '../../src/plugin.ts';
import { reverseName } from '../../plugins/kubernetes/reverse.ts';
import {
  ask,
  clusterIP,
  endpoint,
  externalName,
  fixtureStore,
  headless,
  pluginOf,
  port,
  rrs,
  slice,
} from './plugin.harness.ts';

const BASIC = `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        ttl 30
    }
}`;

function basic(corefile = BASIC, store = fixtureStore()) {
  return pluginOf(corefile, { store });
}

const SOA = 'cluster.local 30 SOA ns.dns.cluster.local hostmaster.cluster.local 7200 1800 86400 30';

describe('general rules (K8S-1..5)', () => {
  it('K8S-1/KP-3: names outside the plugin zones go to the next plugin', async () => {
    const result = await ask(basic(), 'www.example.org', 'A');
    expect(result.nextCalls).toBe(1);
    expect(result.reply.rcode).toBe(Rcode.REFUSED);
  });

  it('K8S-1: the plugin is authoritative for its zone (AA=1, RA=0)', async () => {
    const { wire } = await ask(basic(), 'svc1.testns.svc.cluster.local', 'A');
    expect(wire.rcode).toBe('NOERROR');
    expect(wire.flag_aa).toBe(true);
    expect(wire.flag_ra).toBe(false);
  });

  it('K8S-2: owner names keep the letter case of the question; SRV targets are lowercase', async () => {
    const a = await ask(basic(), 'SVC1.TestNS.svc.Cluster.Local', 'A');
    expect(rrs(a.wire.answers)).toEqual(['SVC1.TestNS.svc.Cluster.Local 30 A 10.0.0.1']);
    const srv = await ask(basic(), '_HTTP._TCP.Svc1.TESTNS.svc.cluster.local', 'SRV');
    expect(rrs(srv.wire.answers)).toEqual(['_HTTP._TCP.Svc1.TESTNS.svc.cluster.local 30 SRV 0 100 80 svc1.testns.svc.cluster.local']);
    const nx = await ask(basic(), 'nope.testns.svc.CLUSTER.local', 'A');
    expect(nx.wire.authorities?.[0]?.name).toBe('CLUSTER.local');
  });

  // Spellings seen from CoreDNS 1.11.3 side by side (dig), issue 12 item 7: names built from the
  // zone take the query's spelling of the zone; object names and PTR targets stay lowercase.
  it('K8S-2: an SRV target carries the query\'s zone spelling and its address record is owned by exactly that name', async () => {
    const { wire } = await ask(basic(), '_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL', 'SRV');
    expect(rrs(wire.answers)).toEqual(['_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL 30 SRV 0 100 80 svc1.testns.svc.cLuStEr.LoCaL']);
    expect(rrs(wire.additionals)).toEqual(['svc1.testns.svc.cLuStEr.LoCaL 30 A 10.0.0.1']);
  });

  it('K8S-2: a glue record whose name equals the question is owned by the target\'s spelling, not the question\'s', async () => {
    const { wire } = await ask(basic(), 'sVc1.TeStNs.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual(['sVc1.TeStNs.svc.cluster.local 30 SRV 0 100 80 svc1.testns.svc.cluster.local']);
    expect(rrs(wire.additionals)).toEqual(['svc1.testns.svc.cluster.local 30 A 10.0.0.1']);
    // The SOA's mname equal to the question is data: written as built too.
    const nodata = await ask(basic(), 'nS.dNs.cluster.local', 'AAAA');
    expect(rrs(nodata.wire.authorities)).toEqual([SOA]);
  });

  it('K8S-2: headless SRV glue keeps the lowercase object names under a mixed-case question', async () => {
    const { wire } = await ask(basic(), '_HtTp._TcP.hDlS1.TeStNs.SvC.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual([
      '_HtTp._TcP.hDlS1.TeStNs.SvC.cluster.local 30 SRV 0 50 80 172-0-0-2.hdls1.testns.svc.cluster.local',
      '_HtTp._TcP.hDlS1.TeStNs.SvC.cluster.local 30 SRV 0 50 80 web-0.hdls1.testns.svc.cluster.local',
    ]);
    expect(rrs(wire.additionals)).toEqual([
      '172-0-0-2.hdls1.testns.svc.cluster.local 30 A 172.0.0.2',
      'web-0.hdls1.testns.svc.cluster.local 30 A 172.0.0.3',
    ]);
  });

  it('K8S-2: the SOA of NXDOMAIN and NODATA is the zone as the query spells it, mname and rname too', async () => {
    const nx = await ask(basic(), 'nOpE.TeStNs.SvC.cLuStEr.LoCaL', 'A');
    expect(nx.wire.rcode).toBe('NXDOMAIN');
    expect(rrs(nx.wire.authorities)).toEqual(['cLuStEr.LoCaL 30 SOA ns.dns.cLuStEr.LoCaL hostmaster.cLuStEr.LoCaL 7200 1800 86400 30']);
    // Not the question's own spelling of ns.dns: mname is built, not pointed at the question.
    const nodata = await ask(basic(), 'nS.dNs.cLuStEr.LoCaL', 'AAAA');
    expect(rrs(nodata.wire.authorities)).toEqual(['cLuStEr.LoCaL 30 SOA ns.dns.cLuStEr.LoCaL hostmaster.cLuStEr.LoCaL 7200 1800 86400 30']);
  });

  it('K8S-2: NS names and their addresses take the query\'s zone spelling', async () => {
    const { wire } = await ask(basic(), 'ClUsTeR.lOcAl', 'NS');
    expect(rrs(wire.answers)).toEqual(['ClUsTeR.lOcAl 30 NS kube-dns.kube-system.svc.ClUsTeR.lOcAl']);
    expect(rrs(wire.additionals)).toEqual(['kube-dns.kube-system.svc.ClUsTeR.lOcAl 30 A 10.96.0.10']);
  });

  it('K8S-2: an ExternalName target and the records under it keep their stored spelling', async () => {
    const { wire } = await ask(basic(), 'ExT-InTeRnAl.TeStNs.SvC.cLuStEr.LoCaL', 'A');
    expect(rrs(wire.answers)).toEqual([
      'ExT-InTeRnAl.TeStNs.SvC.cLuStEr.LoCaL 30 CNAME svc1.testns.svc.cluster.local',
      'svc1.testns.svc.cluster.local 30 A 10.0.0.1',
    ]);
  });

  it('K8S-2: PTR targets are lowercase in the configured zone, whatever the reverse name\'s case', async () => {
    const { wire } = await ask(basic(), '1.0.0.10.In-AdDr.ArPa', 'PTR');
    expect(rrs(wire.answers)).toEqual(['1.0.0.10.In-AdDr.ArPa 30 PTR svc1.testns.svc.cluster.local']);
  });

  it('K8S-2: a lowercase query after a mixed-case one gets lowercase names, and the other way round', async () => {
    const plugin = basic();
    const target = async (name: string) => ((await ask(plugin, name, 'SRV')).wire.answers![0] as { data: { target: string } }).data.target;
    expect(await target('_http._tcp.svc1.testns.svc.cluster.local')).toBe('svc1.testns.svc.cluster.local');
    expect(await target('_http._tcp.svc1.testns.svc.CLUSTER.local')).toBe('svc1.testns.svc.CLUSTER.local');
    expect(await target('_http._tcp.svc1.testns.svc.cluster.local')).toBe('svc1.testns.svc.cluster.local');
  });

  it('K8S-3: an unknown kind label is NXDOMAIN', async () => {
    for (const name of ['svc1.testns.foo.cluster.local', 'cluster.cluster.local', 'testns.service.cluster.local']) {
      const { wire } = await ask(basic(), name, 'A');
      expect(wire.rcode, name).toBe('NXDOMAIN');
      expect(rrs(wire.authorities), name).toEqual([SOA]);
    }
  });

  it('K8S-3: more than two labels below a service are NXDOMAIN', async () => {
    const { wire } = await ask(basic(), 'a.b.c.svc1.testns.svc.cluster.local', 'A');
    expect(wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-3: port and protocol labels match without their underscores too', async () => {
    const { wire } = await ask(basic(), 'http.tcp.svc1.testns.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual(['http.tcp.svc1.testns.svc.cluster.local 30 SRV 0 100 80 svc1.testns.svc.cluster.local']);
  });

  it('K8S-4: * and any are ordinary labels that match nothing', async () => {
    for (const name of ['*.testns.svc.cluster.local', 'any.testns.svc.cluster.local', 'svc1.*.svc.cluster.local', '*.svc1.testns.svc.cluster.local']) {
      const { wire } = await ask(basic(), name, 'A');
      expect(wire.rcode, name).toBe('NXDOMAIN');
    }
  });
});

describe('schema version (K8S-6, K8S-7)', () => {
  it('K8S-6: dns-version.<zone> TXT is "1.1.0" with TTL 28800 whatever the ttl option', async () => {
    const { wire } = await ask(basic(), 'dns-version.cluster.local', 'TXT');
    expect(wire.rcode).toBe('NOERROR');
    expect(rrs(wire.answers)).toEqual(['dns-version.cluster.local 28800 TXT 1.1.0']);
    expect(wire.authorities).toEqual([]);
  });

  it('K8S-7: TXT on an existing name is NODATA, on a missing name NXDOMAIN', async () => {
    const existing = await ask(basic(), 'svc1.testns.svc.cluster.local', 'TXT');
    expect(existing.wire.rcode).toBe('NOERROR');
    expect(existing.wire.answers).toEqual([]);
    expect(rrs(existing.wire.authorities)).toEqual([SOA]);
    const missing = await ask(basic(), 'nope.testns.svc.cluster.local', 'TXT');
    expect(missing.wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-7: dns-version is recognised only directly under the apex', async () => {
    expect((await ask(basic(), 'dns-version.testns.svc.cluster.local', 'TXT')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(basic(), 'dns-version.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-7 (CoreDNS): TXT at names holding no records (apex, <ns>.svc) is NXDOMAIN, as CoreDNS answers', async () => {
    expect((await ask(basic(), 'cluster.local', 'TXT')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(basic(), 'testns.svc.cluster.local', 'TXT')).wire.rcode).toBe('NXDOMAIN');
  });
});

describe('ClusterIP Services (K8S-8..14)', () => {
  it('K8S-8: A gives the IPv4 cluster IP; AAAA on a v4-only Service is NODATA', async () => {
    const a = await ask(basic(), 'svc1.testns.svc.cluster.local', 'A');
    expect(rrs(a.wire.answers)).toEqual(['svc1.testns.svc.cluster.local 30 A 10.0.0.1']);
    expect(a.wire.authorities).toEqual([]);
    const aaaa = await ask(basic(), 'svc1.testns.svc.cluster.local', 'AAAA');
    expect(aaaa.wire.rcode).toBe('NOERROR');
    expect(aaaa.wire.answers).toEqual([]);
    expect(rrs(aaaa.wire.authorities)).toEqual([SOA]);
  });

  it('K8S-8: dual-stack Services answer A with the v4 and AAAA with the v6 cluster IP', async () => {
    const a = await ask(basic(), 'dual.testns.svc.cluster.local', 'A');
    expect(rrs(a.wire.answers)).toEqual(['dual.testns.svc.cluster.local 30 A 10.0.0.2']);
    const aaaa = await ask(basic(), 'dual.testns.svc.cluster.local', 'AAAA');
    expect(rrs(aaaa.wire.answers)).toEqual(['dual.testns.svc.cluster.local 30 AAAA fd00::2']);
  });

  it('K8S-9: a ClusterIP Service without endpoints still has its A record', async () => {
    const { wire } = await ask(basic(), 'empty.testns.svc.cluster.local', 'A');
    expect(rrs(wire.answers)).toEqual(['empty.testns.svc.cluster.local 30 A 10.0.0.5']);
  });

  it('K8S-10: SRV on _port._proto gives priority 0 weight 100 and the cluster IP as additional', async () => {
    const { wire } = await ask(basic(), '_http._tcp.svc1.testns.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual(['_http._tcp.svc1.testns.svc.cluster.local 30 SRV 0 100 80 svc1.testns.svc.cluster.local']);
    expect(rrs(wire.additionals)).toEqual(['svc1.testns.svc.cluster.local 30 A 10.0.0.1']);
  });

  it('K8S-10: port and protocol matching is case-insensitive; the wrong protocol is NXDOMAIN', async () => {
    const upper = await ask(basic(), '_DNS._UDP.multi.testns.svc.cluster.local', 'SRV');
    expect(rrs(upper.wire.answers)).toEqual(['_DNS._UDP.multi.testns.svc.cluster.local 30 SRV 0 100 53 multi.testns.svc.cluster.local']);
    const wrong = await ask(basic(), '_dns._tcp.multi.testns.svc.cluster.local', 'SRV');
    expect(wrong.wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-11: one SRV per port on the bare name with weight floor(100/N)', async () => {
    const { wire } = await ask(basic(), 'multi.testns.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual([
      'multi.testns.svc.cluster.local 30 SRV 0 33 80 multi.testns.svc.cluster.local',
      'multi.testns.svc.cluster.local 30 SRV 0 33 53 multi.testns.svc.cluster.local',
      'multi.testns.svc.cluster.local 30 SRV 0 33 8080 multi.testns.svc.cluster.local',
    ]);
    expect(rrs(wire.additionals)).toEqual(['multi.testns.svc.cluster.local 30 A 10.0.0.3']);
  });

  it('K8S-11: a dual-stack Service with one port gives one SRV of weight 50 and both addresses', async () => {
    const { wire } = await ask(basic(), '_http._tcp.dual.testns.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual(['_http._tcp.dual.testns.svc.cluster.local 30 SRV 0 50 80 dual.testns.svc.cluster.local']);
    expect(rrs(wire.additionals)).toEqual([
      'dual.testns.svc.cluster.local 30 A 10.0.0.2',
      'dual.testns.svc.cluster.local 30 AAAA fd00::2',
    ]);
  });

  it('K8S-12: the bare-name SRV includes unnamed ports; a Service without ports has no SRV (NODATA)', async () => {
    const multi = await ask(basic(), 'multi.testns.svc.cluster.local', 'SRV');
    expect(rrs(multi.wire.answers).some((line) => line.includes(' 8080 '))).toBe(true);
    const portless = await ask(basic(), 'portless.testns.svc.cluster.local', 'SRV');
    expect(portless.wire.rcode).toBe('NOERROR');
    expect(portless.wire.answers).toEqual([]);
    expect(rrs(portless.wire.authorities)).toEqual([SOA]);
  });

  it('K8S-10: an unnamed port has no _port._proto name', async () => {
    const { wire } = await ask(basic(), '_._tcp.portless.testns.svc.cluster.local', 'SRV');
    expect(wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-13: additional A/AAAA records are de-duplicated by (name, address)', async () => {
    const { wire } = await ask(basic(), 'multi.testns.svc.cluster.local', 'SRV');
    expect(wire.additionals).toHaveLength(1);
  });

  it('K8S-14: PTR of a cluster IP names the Service in the first non-reverse zone, fully lowercase', async () => {
    const store = fixtureStore();
    const v4 = await ask(basic(BASIC, store), '1.0.0.10.IN-ADDR.ARPA', 'PTR');
    expect(rrs(v4.wire.answers)).toEqual(['1.0.0.10.IN-ADDR.ARPA 30 PTR svc1.testns.svc.cluster.local']);
    const v6 = await ask(basic(BASIC, store), reverseName('fd00::2'), 'PTR');
    expect(rrs(v6.wire.answers)).toEqual([`${reverseName('fd00::2').slice(0, -1)} 30 PTR dual.testns.svc.cluster.local`]);
    const reverseFirst = pluginOf('.:53 {\n kubernetes in-addr.arpa Cluster.Local\n}', { store });
    const primary = await ask(reverseFirst, '1.0.0.10.in-addr.arpa', 'PTR');
    expect(rrs(primary.wire.answers)).toEqual(['1.0.0.10.in-addr.arpa 5 PTR svc1.testns.svc.cluster.local']);
  });
});

describe('headless Services (K8S-15..22)', () => {
  it('K8S-15/16: A gives each ready endpoint address; not-ready endpoints are left out', async () => {
    const { wire } = await ask(basic(), 'hdls1.testns.svc.cluster.local', 'A');
    expect(rrs(wire.answers)).toEqual([
      'hdls1.testns.svc.cluster.local 30 A 172.0.0.2',
      'hdls1.testns.svc.cluster.local 30 A 172.0.0.3',
    ]);
  });

  it('K8S-16: addresses from several slices are merged and de-duplicated', async () => {
    const store = fixtureStore();
    store.upsertEndpointSlice(slice('testns', 'hdls1', 'hdls1-b', [endpoint('172.0.0.2'), endpoint('172.0.0.7')], [port('http', 80), port('https', 443)]));
    const { wire } = await ask(basic(BASIC, store), 'hdls1.testns.svc.cluster.local', 'A');
    expect(rrs(wire.answers)).toEqual([
      'hdls1.testns.svc.cluster.local 30 A 172.0.0.2',
      'hdls1.testns.svc.cluster.local 30 A 172.0.0.3',
      'hdls1.testns.svc.cluster.local 30 A 172.0.0.7',
    ]);
  });

  it('K8S-17: headless service with no ready endpoints is NXDOMAIN', async () => {
    const { wire } = await ask(basic(), 'hdls-none.testns.svc.cluster.local', 'A');
    expect(wire.rcode).toBe('NXDOMAIN');
    expect(rrs(wire.authorities)).toEqual([SOA]);
  });

  it('K8S-17: ready endpoints of the other family only give NODATA', async () => {
    const a = await ask(basic(), 'hdls-v6.testns.svc.cluster.local', 'A');
    expect(a.wire.rcode).toBe('NOERROR');
    expect(a.wire.answers).toEqual([]);
    const aaaa = await ask(basic(), 'hdls-v6.testns.svc.cluster.local', 'AAAA');
    expect(rrs(aaaa.wire.answers)).toEqual([
      'hdls-v6.testns.svc.cluster.local 30 AAAA fd00::5',
      'hdls-v6.testns.svc.cluster.local 30 AAAA fd00:1::',
    ]);
  });

  it('K8S-18: endpoint names: hostname first, else the dashed IP', async () => {
    const named = await ask(basic(), 'web-0.hdls1.testns.svc.cluster.local', 'A');
    expect(rrs(named.wire.answers)).toEqual(['web-0.hdls1.testns.svc.cluster.local 30 A 172.0.0.3']);
    const dashed = await ask(basic(), '172-0-0-2.hdls1.testns.svc.cluster.local', 'A');
    expect(rrs(dashed.wire.answers)).toEqual(['172-0-0-2.hdls1.testns.svc.cluster.local 30 A 172.0.0.2']);
    // An endpoint with a hostname is not reachable by its dashed IP.
    expect((await ask(basic(), '172-0-0-3.hdls1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(basic(), '172-0-0-4.hdls1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-18: IPv6 dashed names, with a 0 appended when the text would end in "-"', async () => {
    const plain = await ask(basic(), 'fd00--5.hdls-v6.testns.svc.cluster.local', 'AAAA');
    expect(rrs(plain.wire.answers)).toEqual(['fd00--5.hdls-v6.testns.svc.cluster.local 30 AAAA fd00::5']);
    const trailing = await ask(basic(), 'fd00-1--0.hdls-v6.testns.svc.cluster.local', 'AAAA');
    expect(rrs(trailing.wire.answers)).toEqual(['fd00-1--0.hdls-v6.testns.svc.cluster.local 30 AAAA fd00:1::']);
  });

  it('K8S-18/KP-10: endpoint_pod_names names endpoints by their pod', async () => {
    const config = `.:53 {\n kubernetes cluster.local {\n  endpoint_pod_names\n }\n}`;
    const withPods = await ask(pluginOf(config, { store: fixtureStore() }), 'svc1-pod.svc1.testns.svc.cluster.local', 'A');
    expect(rrs(withPods.wire.answers)).toEqual(['svc1-pod.svc1.testns.svc.cluster.local 5 A 172.0.0.2']);
    const without = await ask(basic(), 'svc1-pod.svc1.testns.svc.cluster.local', 'A');
    expect(without.wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-18: pod names of 64 characters or more are not used', async () => {
    const store = fixtureStore();
    store.upsertEndpointSlice(slice('testns', 'svc1', 'svc1-a', [endpoint('172.0.0.2', { podName: 'p'.repeat(64) })]));
    const plugin = pluginOf(`.:53 {\n kubernetes cluster.local {\n  endpoint_pod_names\n }\n}`, { store });
    expect((await ask(plugin, '172-0-0-2.svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
  });

  it('K8S-19: endpoint names also resolve for ClusterIP Services', async () => {
    const { wire } = await ask(basic(), '172-0-0-2.svc1.testns.svc.cluster.local', 'A');
    expect(rrs(wire.answers)).toEqual(['172-0-0-2.svc1.testns.svc.cluster.local 30 A 172.0.0.2']);
  });

  it('K8S-20: SRV on a headless Service: one per endpoint and port, targets are the endpoint names', async () => {
    const { wire } = await ask(basic(), '_http._tcp.hdls1.testns.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual([
      '_http._tcp.hdls1.testns.svc.cluster.local 30 SRV 0 50 80 172-0-0-2.hdls1.testns.svc.cluster.local',
      '_http._tcp.hdls1.testns.svc.cluster.local 30 SRV 0 50 80 web-0.hdls1.testns.svc.cluster.local',
    ]);
    expect(rrs(wire.additionals)).toEqual([
      '172-0-0-2.hdls1.testns.svc.cluster.local 30 A 172.0.0.2',
      'web-0.hdls1.testns.svc.cluster.local 30 A 172.0.0.3',
    ]);
  });

  it('K8S-20: N endpoints × M ports; duplicates collapse but count in the weight (6 candidates → 16)', async () => {
    const store = fixtureStore();
    store.upsertEndpointSlice(slice('testns', 'hdls1', 'hdls1-b', [endpoint('172.0.0.2')], [port('http', 80), port('https', 443)]));
    const { wire } = await ask(basic(BASIC, store), 'hdls1.testns.svc.cluster.local', 'SRV');
    expect(rrs(wire.answers)).toEqual([
      'hdls1.testns.svc.cluster.local 30 SRV 0 16 80 172-0-0-2.hdls1.testns.svc.cluster.local',
      'hdls1.testns.svc.cluster.local 30 SRV 0 16 443 172-0-0-2.hdls1.testns.svc.cluster.local',
      'hdls1.testns.svc.cluster.local 30 SRV 0 16 80 web-0.hdls1.testns.svc.cluster.local',
      'hdls1.testns.svc.cluster.local 30 SRV 0 16 443 web-0.hdls1.testns.svc.cluster.local',
    ]);
    expect(wire.additionals).toHaveLength(2);
  });

  it('K8S-21: PTR of an endpoint address names the endpoint; one PTR per Service it backs', async () => {
    const named = await ask(basic(), '3.0.0.172.in-addr.arpa', 'PTR');
    expect(rrs(named.wire.answers)).toEqual(['3.0.0.172.in-addr.arpa 30 PTR web-0.hdls1.testns.svc.cluster.local']);
    const shared = await ask(basic(), '2.0.0.172.in-addr.arpa', 'PTR');
    expect(rrs(shared.wire.answers)).toEqual([
      '2.0.0.172.in-addr.arpa 30 PTR 172-0-0-2.svc1.testns.svc.cluster.local',
      '2.0.0.172.in-addr.arpa 30 PTR 172-0-0-2.hdls1.testns.svc.cluster.local',
    ]);
  });

  it('K8S-21: an address backing no Service has no PTR (NXDOMAIN with the reverse zone SOA)', async () => {
    const { wire } = await ask(basic(), '99.1.244.10.in-addr.arpa', 'PTR');
    expect(wire.rcode).toBe('NXDOMAIN');
    expect(rrs(wire.authorities)).toEqual(['in-addr.arpa 30 SOA ns.dns.in-addr.arpa hostmaster.in-addr.arpa 7200 1800 86400 30']);
  });

  it('K8S-22: cluster IPs are checked before endpoint addresses', async () => {
    const store = fixtureStore();
    store.upsertEndpointSlice(slice('testns', 'hdls1', 'hdls1-c', [endpoint('10.0.0.1')]));
    const { wire } = await ask(basic(BASIC, store), '1.0.0.10.in-addr.arpa', 'PTR');
    expect(rrs(wire.answers)).toEqual(['1.0.0.10.in-addr.arpa 30 PTR svc1.testns.svc.cluster.local']);
  });
});

describe('ExternalName Services (K8S-23..26)', () => {
  it('K8S-23: a CNAME query returns just the CNAME, the target made fully qualified', async () => {
    const { wire, nextCalls } = await ask(basic(), 'external.testns.svc.cluster.local', 'CNAME');
    expect(rrs(wire.answers)).toEqual(['external.testns.svc.cluster.local 30 CNAME ext.interwebs.test']);
    expect(wire.additionals).toEqual([]);
    expect(nextCalls).toBe(0);
  });

  it('K8S-23: the CNAME target is externalName exactly as stored', async () => {
    const store = fixtureStore();
    store.upsertService(externalName('testns', 'mixed', 'Foo.Example.COM.'));
    const { reply } = await ask(basic(BASIC, store), 'mixed.testns.svc.cluster.local', 'CNAME');
    expect(reply.answer[0]!.data).toBe('Foo.Example.COM.');
  });

  it('K8S-24: A on an external target re-enters the server and appends its records with their TTLs', async () => {
    const asked: string[] = [];
    const reenter: Next = (request) => {
      asked.push(`${request.query.qname} ${request.query.qtype}`);
      return { ...emptyReply(Rcode.NOERROR), answer: [{ name: 'ext.interwebs.test.', type: Type.A, class: 1, ttl: 1234, data: '192.0.2.7' }] };
    };
    const { wire } = await ask(basic(), 'External.testns.svc.cluster.local', 'A', { reenter });
    expect(asked).toEqual([`ext.interwebs.test. ${Type.A}`]);
    expect(wire.rcode).toBe('NOERROR');
    expect(wire.flag_aa).toBe(true);
    expect(rrs(wire.answers)).toEqual([
      'External.testns.svc.cluster.local 30 CNAME ext.interwebs.test',
      'ext.interwebs.test 1234 A 192.0.2.7',
    ]);
  });

  it('K8S-24: the upstream RCODE is not propagated: NXDOMAIN or SERVFAIL upstream leaves the CNAME alone', async () => {
    for (const rcode of [Rcode.NXDOMAIN, Rcode.SERVFAIL]) {
      const { wire } = await ask(basic(), 'external.testns.svc.cluster.local', 'AAAA', { reenter: () => emptyReply(rcode) });
      expect(wire.rcode).toBe('NOERROR');
      expect(rrs(wire.answers)).toEqual(['external.testns.svc.cluster.local 30 CNAME ext.interwebs.test']);
    }
    const failing = await ask(basic(), 'external.testns.svc.cluster.local', 'A', { reenter: () => Promise.reject(new Error('boom')) });
    expect(rrs(failing.wire.answers)).toEqual(['external.testns.svc.cluster.local 30 CNAME ext.interwebs.test']);
  });

  it('K8S-24: TC on the upstream sub-answer sets TC on the reply', async () => {
    const { reply, wire } = await ask(basic(), 'external.testns.svc.cluster.local', 'A', {
      reenter: async () => ({ ...emptyReply(Rcode.NOERROR, ReplyFlag.TC) }),
    });
    expect(reply.flags & ReplyFlag.TC).toBe(ReplyFlag.TC);
    expect(wire.flag_tc).toBe(true);
  });

  it('K8S-24: targets inside the plugin zones are resolved internally', async () => {
    let reentered = 0;
    const { wire } = await ask(basic(), 'ext-internal.testns.svc.cluster.local', 'A', { reenter: () => (reentered++, emptyReply(0)) });
    expect(reentered).toBe(0);
    expect(rrs(wire.answers)).toEqual([
      'ext-internal.testns.svc.cluster.local 30 CNAME svc1.testns.svc.cluster.local',
      'svc1.testns.svc.cluster.local 30 A 10.0.0.1',
    ]);
  });

  it('K8S-24: self loops and CNAME loops are dropped (NODATA)', async () => {
    for (const name of ['ext-loop.testns.svc.cluster.local', 'ext-a.testns.svc.cluster.local']) {
      const { wire } = await ask(basic(), name, 'A');
      expect(wire.rcode, name).toBe('NOERROR');
      expect(wire.answers, name).toEqual([]);
    }
  });

  it('K8S-24/KP-31: internal chains stop after 8 CNAMEs, as in CoreDNS', async () => {
    const store = fixtureStore();
    for (let i = 0; i < 9; i++) store.upsertService(externalName('testns', `c${i}`, `c${i + 1}.testns.svc.cluster.local`));
    store.upsertService(externalName('testns', 'c9', 'svc1.testns.svc.cluster.local'));
    const eight = await ask(basic(BASIC, store), 'c2.testns.svc.cluster.local', 'A');
    expect(eight.wire.answers).toHaveLength(9); // 8 CNAMEs and the A
    const nine = await ask(basic(BASIC, store), 'c1.testns.svc.cluster.local', 'A');
    expect(nine.wire.answers).toEqual([]);
  });

  it('K8S-25: SRV on an ExternalName is NODATA; endpoint and port names are NXDOMAIN', async () => {
    const srv = await ask(basic(), 'external.testns.svc.cluster.local', 'SRV');
    expect(srv.wire.rcode).toBe('NOERROR');
    expect(srv.wire.answers).toEqual([]);
    for (const name of ['x.external.testns.svc.cluster.local', '_http._tcp.external.testns.svc.cluster.local']) {
      expect((await ask(basic(), name, 'A')).wire.rcode, name).toBe('NXDOMAIN');
    }
  });

  it('K8S-25: an ExternalName that is an IP literal does not exist', async () => {
    for (const type of ['A', 'CNAME']) expect((await ask(basic(), 'ext-ip.testns.svc.cluster.local', type)).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-26: a type change (ExternalName → ClusterIP) shows in the next answer', async () => {
    const store = fixtureStore();
    const plugin = basic(BASIC, store);
    expect(rrs((await ask(plugin, 'external.testns.svc.cluster.local', 'CNAME')).wire.answers)).toHaveLength(1);
    store.upsertService(clusterIP('testns', 'external', ['10.0.0.77']));
    expect((await ask(plugin, 'external.testns.svc.cluster.local', 'CNAME')).wire.answers).toEqual([]);
    expect(rrs((await ask(plugin, 'external.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['external.testns.svc.cluster.local 30 A 10.0.0.77']);
  });
});

describe('pod records (K8S-27, KP-9)', () => {
  const withPods = (mode: string, store = fixtureStore()) => pluginOf(`.:53 {\n kubernetes cluster.local {\n  pods ${mode}\n }\n}`, { store });

  it('K8S-27: pods insecure turns the dashed label back into the address', async () => {
    const { wire } = await ask(withPods('insecure'), '10-244-1-7.testns.pod.cluster.local', 'A');
    expect(rrs(wire.answers)).toEqual(['10-244-1-7.testns.pod.cluster.local 5 A 10.244.1.7']);
    const v6 = await ask(withPods('insecure'), 'fd00--1.testns.pod.cluster.local', 'AAAA');
    expect(rrs(v6.wire.answers)).toEqual(['fd00--1.testns.pod.cluster.local 5 AAAA fd00::1']);
    const otherFamily = await ask(withPods('insecure'), '10-244-1-7.testns.pod.cluster.local', 'AAAA');
    expect(otherFamily.wire.rcode).toBe('NOERROR');
    expect(otherFamily.wire.answers).toEqual([]);
  });

  it('K8S-27: pods insecure needs a valid address and an existing namespace', async () => {
    expect((await ask(withPods('insecure'), '10-20-0-101.nonexistent-ns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(withPods('insecure'), 'not-an-ip.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(withPods('insecure'), '10-244-1-777.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-27: pods disabled (the default) gives NXDOMAIN', async () => {
    expect((await ask(withPods('disabled'), '10-244-1-7.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    const byDefault = pluginOf('.:53 {\n kubernetes cluster.local\n}', { store: fixtureStore() });
    expect((await ask(byDefault, '10-244-1-7.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-27/KP-9: pods verified answers only for a Pod with that IP in that namespace', async () => {
    const store = fixtureStore();
    store.upsertPod({ namespace: 'testns', name: 'p1', ip: '10.244.1.7' });
    const plugin = withPods('verified', store);
    expect(rrs((await ask(plugin, '10-244-1-7.testns.pod.cluster.local', 'A')).wire.answers)).toEqual(['10-244-1-7.testns.pod.cluster.local 5 A 10.244.1.7']);
    expect((await ask(plugin, '10-244-1-8.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, '10-244-1-7.other.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    store.deletePod('testns', 'p1');
    expect((await ask(plugin, '10-244-1-7.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-28: a pod name itself has no record under <ns>.pod', async () => {
    const store = fixtureStore();
    store.upsertPod({ namespace: 'testns', name: 'p1', ip: '10.244.1.7' });
    expect((await ask(withPods('verified', store), 'p1.testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });
});

describe('apex, NS and SOA (K8S-30..34)', () => {
  it('K8S-30: SOA at the apex, TTL min(ttl,300), MINIMUM = ttl, serial = last change time', async () => {
    const store = fixtureStore();
    const { wire, reply } = await ask(basic(BASIC, store), 'Cluster.Local', 'SOA');
    expect(rrs(wire.answers)).toEqual([SOA.replace('cluster.local 30', 'Cluster.Local 30').replaceAll('.cluster.local', '.Cluster.Local')]);
    expect((reply.answer[0]!.data as { serial: number }).serial).toBe(store.serial);
    const long = pluginOf('.:53 {\n kubernetes cluster.local {\n  ttl 3600\n }\n}', { store });
    const soa = (await ask(long, 'cluster.local', 'SOA')).wire.answers![0] as { ttl: number; data: { minimum: number } };
    expect(soa.ttl).toBe(300);
    expect(soa.data.minimum).toBe(3600);
  });

  it('K8S-30: SOA below the apex is NODATA even for names that do not exist', async () => {
    for (const name of ['svc1.testns.svc.cluster.local', 'nope.nope.svc.cluster.local', 'x.y.z.cluster.local']) {
      const { wire } = await ask(basic(), name, 'SOA');
      expect(wire.rcode, name).toBe('NOERROR');
      expect(wire.answers, name).toEqual([]);
      expect(rrs(wire.authorities), name).toEqual([SOA]);
    }
  });

  it('K8S-31: NS at the apex names the Service whose endpoints hold this server, with its cluster IP', async () => {
    const { wire } = await ask(basic(), 'cluster.local', 'NS');
    expect(rrs(wire.answers)).toEqual(['cluster.local 30 NS kube-dns.kube-system.svc.cluster.local']);
    expect(rrs(wire.additionals)).toEqual(['kube-dns.kube-system.svc.cluster.local 30 A 10.96.0.10']);
    expect(wire.authorities).toEqual([]);
  });

  it('K8S-31: a headless DNS Service gives the endpoint names and addresses', async () => {
    const store = fixtureStore();
    store.upsertService(headless('kube-system', 'kube-dns', [port('dns', 53, 'udp')]));
    const { wire } = await ask(basic(BASIC, store), 'cluster.local', 'NS');
    expect(rrs(wire.answers)).toEqual(['cluster.local 30 NS 10-244-0-5.kube-dns.kube-system.svc.cluster.local']);
    expect(rrs(wire.additionals)).toEqual(['10-244-0-5.kube-dns.kube-system.svc.cluster.local 30 A 10.244.0.5']);
  });

  it('K8S-31: outside the cluster NS falls back to ns.dns.<zone> with the local addresses', async () => {
    const plugin = pluginOf(BASIC, { store: fixtureStore(), localIPs: () => ['192.0.2.1', '2001:db8::1'] });
    const { wire } = await ask(plugin, 'cluster.local', 'NS');
    expect(rrs(wire.answers)).toEqual(['cluster.local 30 NS ns.dns.cluster.local']);
    expect(rrs(wire.additionals)).toEqual(['ns.dns.cluster.local 30 A 192.0.2.1', 'ns.dns.cluster.local 30 AAAA 2001:db8::1']);
  });

  it('K8S-31/KP-35: the bind addresses are the local addresses when the block is bound', async () => {
    const plugin = pluginOf(BASIC, { store: fixtureStore(), localIPs: undefined, bind: ['127.0.0.1', '192.0.2.53'] });
    const { wire } = await ask(plugin, 'cluster.local', 'NS');
    expect(rrs(wire.additionals)).toEqual(['ns.dns.cluster.local 30 A 192.0.2.53']);
  });

  it('K8S-31/KP-35: a block bound to loopback only has no address for ns.dns.<zone>: NS is NODATA, as in CoreDNS', async () => {
    const plugin = pluginOf(BASIC, { store: fixtureStore(), localIPs: undefined, bind: ['127.0.0.1', '::1'] });
    const { wire } = await ask(plugin, 'cluster.local', 'NS');
    expect(wire.rcode).toBe('NOERROR');
    expect(wire.answers).toEqual([]);
    expect(rrs(wire.authorities)).toEqual([SOA]);
  });

  it('K8S-32: ns.dns.<zone> A/AAAA answers with the NS addresses; other NS queries act like other types', async () => {
    const plugin = pluginOf(BASIC, { store: fixtureStore(), localIPs: () => ['192.0.2.1'] });
    expect(rrs((await ask(plugin, 'NS.dns.cluster.local', 'A')).wire.answers)).toEqual(['NS.dns.cluster.local 30 A 192.0.2.1']);
    expect((await ask(plugin, 'ns.dns.cluster.local', 'AAAA')).wire.answers).toEqual([]);
    const existing = await ask(basic(), 'svc1.testns.svc.cluster.local', 'NS');
    expect(existing.wire.rcode).toBe('NOERROR');
    expect(rrs(existing.wire.authorities)).toEqual([SOA]);
    expect((await ask(basic(), 'nope.testns.svc.cluster.local', 'NS')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-33: the apex, svc.<zone>, pod.<zone> and existing <ns>.svc.<zone> are NODATA', async () => {
    for (const name of ['cluster.local', 'svc.cluster.local', 'pod.cluster.local', 'testns.svc.cluster.local', 'testns.pod.cluster.local']) {
      for (const type of ['A', 'AAAA', 'MX']) {
        const { wire } = await ask(basic(), name, type);
        expect(wire.rcode, `${name} ${type}`).toBe('NOERROR');
        expect(wire.answers, `${name} ${type}`).toEqual([]);
        expect(rrs(wire.authorities), `${name} ${type}`).toEqual([SOA]);
      }
    }
  });

  it('K8S-33: a missing namespace, <ns>.pod with pods disabled and dns.<zone> are NXDOMAIN', async () => {
    expect((await ask(basic(), 'nons.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(basic(), 'dns.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    const disabled = pluginOf('.:53 {\n kubernetes cluster.local\n}', { store: fixtureStore() });
    expect((await ask(disabled, 'testns.pod.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-34: reverse zones are zones of their own: SOA, NS at their apex, their SOA in negative answers', async () => {
    const config = '.:53 {\n kubernetes cluster.local 10.0.0.0/24\n}';
    const plugin = pluginOf(config, { store: fixtureStore(), localIPs: () => ['192.0.2.1'] });
    const soa = await ask(plugin, '0.0.10.in-addr.arpa', 'SOA');
    expect(rrs(soa.wire.answers)).toEqual(['0.0.10.in-addr.arpa 5 SOA ns.dns.0.0.10.in-addr.arpa hostmaster.0.0.10.in-addr.arpa 7200 1800 86400 5']);
    const ns = await ask(plugin, '0.0.10.in-addr.arpa', 'NS');
    expect(rrs(ns.wire.answers)).toEqual(['0.0.10.in-addr.arpa 5 NS ns.dns.0.0.10.in-addr.arpa']);
    const ptr = await ask(plugin, '1.0.0.10.in-addr.arpa', 'PTR');
    expect(rrs(ptr.wire.answers)).toEqual(['1.0.0.10.in-addr.arpa 5 PTR svc1.testns.svc.cluster.local']);
    const missing = await ask(plugin, '99.0.0.10.in-addr.arpa', 'PTR');
    expect(missing.wire.rcode).toBe('NXDOMAIN');
    expect(rrs(missing.wire.authorities)).toEqual(['0.0.10.in-addr.arpa 5 SOA ns.dns.0.0.10.in-addr.arpa hostmaster.0.0.10.in-addr.arpa 7200 1800 86400 5']);
    // Outside the CIDR: not this plugin's name.
    expect((await ask(plugin, '1.0.1.10.in-addr.arpa', 'PTR')).nextCalls).toBe(1);
  });

  it('K8S-34/KP-37/38: partial reverse names and non-PTR types in a reverse zone are NXDOMAIN', async () => {
    for (const [name, type] of [['0.10.in-addr.arpa', 'PTR'], ['x.1.0.0.10.in-addr.arpa', 'PTR'], ['1.0.0.10.in-addr.arpa', 'A'], ['1.0.0.10.in-addr.arpa', 'TXT'], ['1.0.ip6.arpa', 'PTR']]) {
      expect((await ask(basic(), name!, type!)).wire.rcode, `${name} ${type}`).toBe('NXDOMAIN');
    }
  });
});

describe('negative answers and flags (K8S-35..39)', () => {
  it('K8S-35: NODATA and NXDOMAIN carry the zone SOA and AA; positive answers have no authority', async () => {
    const nodata = await ask(basic(), 'svc1.testns.svc.cluster.local', 'AAAA');
    const nxdomain = await ask(basic(), 'nope.testns.svc.cluster.local', 'A');
    const positive = await ask(basic(), 'svc1.testns.svc.cluster.local', 'A');
    for (const { wire } of [nodata, nxdomain, positive]) {
      expect(wire.flag_aa).toBe(true);
      expect(wire.flag_ra).toBe(false);
    }
    expect(rrs(nodata.wire.authorities)).toEqual([SOA]);
    expect(nxdomain.wire.rcode).toBe('NXDOMAIN');
    expect(rrs(nxdomain.wire.authorities)).toEqual([SOA]);
    expect(positive.wire.authorities).toEqual([]);
  });

  it('K8S-36: other types on existing names are NODATA, on missing names NXDOMAIN', async () => {
    for (const type of ['MX', 'HINFO', 'CAA', 'HTTPS', 'ANY', 'NAPTR']) {
      const existing = await ask(basic(), 'svc1.testns.svc.cluster.local', type);
      expect(existing.wire.rcode, type).toBe('NOERROR');
      expect(existing.wire.answers, type).toEqual([]);
      expect((await ask(basic(), 'nope.testns.svc.cluster.local', type)).wire.rcode, type).toBe('NXDOMAIN');
    }
    expect((await ask(basic(), 'svc1.testns.svc.cluster.local', 'CNAME')).wire.answers).toEqual([]);
  });

  it('K8S-36/KP-21: AXFR and IXFR are REFUSED', async () => {
    for (const type of ['AXFR', 'IXFR']) {
      const { wire } = await ask(basic(), 'cluster.local', type);
      expect(wire.rcode, type).toBe('REFUSED');
    }
  });

  it('K8S-37: empty non-terminals below a Service are NXDOMAIN', async () => {
    expect((await ask(basic(), '_tcp.svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(basic(), '_tcp.svc1.testns.svc.cluster.local', 'SRV')).wire.rcode).toBe('NXDOMAIN');
  });

  it('K8S-38: ttl 0 gives TTL 0 on records and on the SOA', async () => {
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local {\n  ttl 0\n }\n}', { store: fixtureStore() });
    expect(rrs((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['svc1.testns.svc.cluster.local 0 A 10.0.0.1']);
    const soa = (await ask(plugin, 'nope.testns.svc.cluster.local', 'A')).wire.authorities![0] as { ttl: number; data: { minimum: number } };
    expect([soa.ttl, soa.data.minimum]).toEqual([0, 0]);
    // The default TTL is 5.
    const plain = pluginOf('.:53 {\n kubernetes cluster.local\n}', { store: fixtureStore() });
    expect(rrs((await ask(plain, 'svc1.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['svc1.testns.svc.cluster.local 5 A 10.0.0.1']);
  });

  it('K8S-39: search-path misses are NXDOMAIN and answered synchronously', async () => {
    const plugin = basic();
    for (const name of ['api.github.com.testns.svc.cluster.local', 'api.github.com.svc.cluster.local', 'api.github.com.cluster.local']) {
      const result = plugin.serve!(
        (await import('./plugin.harness.ts')).buildRequest(name, 'A'),
        () => emptyReply(Rcode.REFUSED),
      );
      expect(result instanceof Promise).toBe(false);
      expect((result as Reply).rcode, name).toBe(Rcode.NXDOMAIN);
    }
  });
});

describe('options that change answers (KP-8..16, KP-30..34)', () => {
  it('KP-8: namespaces restricts names and PTRs to the listed namespaces', async () => {
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local in-addr.arpa {\n  namespaces testns\n }\n}', { store: fixtureStore() });
    expect((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
    expect((await ask(plugin, 'svc2.other.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, 'other.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, '1.1.0.10.in-addr.arpa', 'PTR')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, '1.0.0.10.in-addr.arpa', 'PTR')).wire.rcode).toBe('NOERROR');
  });

  it('KP-12: fallthrough passes NXDOMAIN in the listed zones to the next plugin, nothing else', async () => {
    const plugin = pluginOf(STOCK_FALLTHROUGH, { store: fixtureStore() });
    expect((await ask(plugin, '9.9.9.9.in-addr.arpa', 'PTR')).nextCalls).toBe(1);
    const local = await ask(plugin, 'nope.testns.svc.cluster.local', 'A');
    expect([local.nextCalls, local.wire.rcode]).toEqual([0, 'NXDOMAIN']);
    const nodata = await ask(plugin, '1.0.0.10.in-addr.arpa', 'TXT');
    expect(nodata.nextCalls).toBe(1); // TXT in a reverse zone is a name error, so it falls through
    const positive = await ask(plugin, '1.0.0.10.in-addr.arpa', 'PTR');
    expect(positive.nextCalls).toBe(0);
  });

  it('KP-12: fallthrough without zones covers every zone; NODATA never falls through', async () => {
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local {\n  fallthrough\n }\n}', { store: fixtureStore() });
    expect((await ask(plugin, 'nope.testns.svc.cluster.local', 'A')).nextCalls).toBe(1);
    const nodata = await ask(plugin, 'svc1.testns.svc.cluster.local', 'AAAA');
    expect([nodata.nextCalls, nodata.wire.rcode]).toEqual([0, 'NOERROR']);
  });

  it('KP-13: ignore empty_service makes ClusterIP Services without ready endpoints NXDOMAIN', async () => {
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local {\n  ignore empty_service\n }\n}', { store: fixtureStore() });
    expect((await ask(plugin, 'empty.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
    expect((await ask(plugin, 'external.testns.svc.cluster.local', 'CNAME')).wire.rcode).toBe('NOERROR');
    expect((await ask(plugin, 'hdls1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
  });

  it('KP-14: noendpoints makes headless and endpoint names NXDOMAIN and NS fall back', async () => {
    const plugin = pluginOf('.:53 {\n kubernetes cluster.local {\n  noendpoints\n }\n}', { store: fixtureStore() });
    expect((await ask(plugin, 'hdls1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, '172-0-0-2.svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
    expect((await ask(plugin, 'svc1.testns.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
    expect(rrs((await ask(plugin, 'cluster.local', 'NS')).wire.answers)).toEqual(['cluster.local 5 NS ns.dns.cluster.local']);
  });

  it('KP-16: names in namespaces the index does not hold (deleted, or not matching namespace_labels) are NXDOMAIN', async () => {
    const store = fixtureStore();
    const plugin = basic(BASIC, store);
    expect((await ask(plugin, 'svc2.other.svc.cluster.local', 'A')).wire.rcode).toBe('NOERROR');
    store.deleteNamespace('other');
    expect((await ask(plugin, 'svc2.other.svc.cluster.local', 'A')).wire.rcode).toBe('NXDOMAIN');
  });

  it('KP-30: A on an SRV-shaped name gives the cluster IP, or the endpoints of a headless Service', async () => {
    expect(rrs((await ask(basic(), '_http._tcp.svc1.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['_http._tcp.svc1.testns.svc.cluster.local 30 A 10.0.0.1']);
    expect((await ask(basic(), '_https._tcp.hdls1.testns.svc.cluster.local', 'A')).wire.answers).toHaveLength(2);
  });

  it('KP-33: IPv4-mapped IPv6 endpoint addresses count as IPv4', async () => {
    const store = fixtureStore();
    store.upsertService(headless('testns', 'mapped'));
    store.upsertEndpointSlice(slice('testns', 'mapped', 'mapped-a', [endpoint('::ffff:172.0.0.20')], [port('http', 80)], 'IPv6'));
    expect(rrs((await ask(basic(BASIC, store), 'mapped.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['mapped.testns.svc.cluster.local 30 A 172.0.0.20']);
  });

  it('KP-34: Services without ports keep A records; headless port-less slices still give addresses', async () => {
    expect(rrs((await ask(basic(), 'portless.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['portless.testns.svc.cluster.local 30 A 10.0.0.4']);
    expect(rrs((await ask(basic(), 'hdls-portless.testns.svc.cluster.local', 'A')).wire.answers)).toEqual(['hdls-portless.testns.svc.cluster.local 30 A 172.0.0.9']);
    const srv = await ask(basic(), 'hdls-portless.testns.svc.cluster.local', 'SRV');
    expect([srv.wire.rcode, srv.wire.answers]).toEqual(['NOERROR', []]);
    expect((await ask(basic(), '_http._tcp.hdls-portless.testns.svc.cluster.local', 'SRV')).wire.rcode).toBe('NXDOMAIN');
  });
});

const STOCK_FALLTHROUGH = `.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
}`;
