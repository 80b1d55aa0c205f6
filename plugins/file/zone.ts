// One authoritative zone in memory and the RFC 1034 §4.3.2 lookup over it,
// answering as CoreDNS 1.11's file plugin does (checked side by side):
// - a name with records of the type: AA, the records, the apex NS in the
//   authority section, A/AAAA of in-zone MX, SRV and NS targets as additionals;
// - a CNAME: followed inside the zone (through wildcards too), every link
//   in the answer, at most 10 records (a loop stops there), NOERROR even when
//   the chain ends nowhere; a target outside the zone is not chased;
// - at or below a zone cut (NS below the apex): a referral without AA, the
//   cut's NS in the authority section, in-zone glue as additionals;
// - a name that exists (or has names below it) without the type: NODATA
//   with the SOA; a wildcard `*.<closest encloser>` stands in for names that
//   do not exist (RFC 4592); otherwise NXDOMAIN with the SOA.

import { Rcode, Type } from '../../src/wire/constants.ts';
import { ReplyFlag, type Reply, type ResourceRecord, type MxData, type SrvData } from '../../src/wire/message.ts';
import { parentName } from '../../src/wire/names.ts';

/** CoreDNS stops following CNAMEs once the answer holds this many records. */
const MAX_CHAIN = 10;

const noRecords: readonly ResourceRecord[] = Object.freeze([]);

export class Zone {
  readonly origin: string;
  readonly serial: number;
  /** Canonical owner → type → records. */
  private readonly nodes = new Map<string, Map<number, ResourceRecord[]>>();
  /** Names with no records but names below them (empty non-terminals: NODATA, and they block wildcards). */
  private readonly emptyNonTerminals = new Set<string>();
  private readonly soa: readonly ResourceRecord[];
  private readonly apexNs: readonly ResourceRecord[];

  constructor(origin: string, records: readonly ResourceRecord[]) {
    this.origin = origin;
    for (const record of records) {
      let byType = this.nodes.get(record.name);
      if (!byType) this.nodes.set(record.name, (byType = new Map()));
      const list = byType.get(record.type);
      if (list) list.push(record);
      else byType.set(record.type, [record]);
    }
    for (const name of this.nodes.keys()) {
      for (let parent = parentName(name); parent !== null && parent !== origin && parent.endsWith(origin); parent = parentName(parent)) {
        if (!this.nodes.has(parent)) this.emptyNonTerminals.add(parent);
      }
    }
    this.soa = this.rrset(origin, Type.SOA).slice(0, 1);
    this.apexNs = this.rrset(origin, Type.NS);
    this.serial = (this.soa[0]?.data as { serial: number } | undefined)?.serial ?? 0;
  }

  lookup(qname: string, qtype: number): Reply {
    const cut = this.zoneCut(qname);
    if (cut !== null) return this.referral(cut);

    const answer: ResourceRecord[] = [];
    let name = qname;
    for (;;) {
      const found = this.find(name);
      if (found === null) {
        // Only a name reached through a CNAME can be missing here without NXDOMAIN.
        return answer.length > 0 ? this.positive(answer) : this.negative(Rcode.NXDOMAIN);
      }
      const { byType, owner } = found;
      const cname = byType?.get(Type.CNAME);
      if (cname && qtype !== Type.CNAME) {
        answer.push(owned(cname[0]!, owner));
        const target = cname[0]!.data as string;
        if (answer.length >= MAX_CHAIN || !this.contains(target) || this.zoneCut(target) !== null) return this.positive(answer);
        name = target;
        continue;
      }
      const records = byType?.get(qtype);
      if (!records) return answer.length > 0 ? this.positive(answer) : this.negative(Rcode.NOERROR);
      for (const record of records) answer.push(owned(record, owner));
      return this.positive(answer, qtype === Type.NS && owner === this.origin);
    }
  }

  private contains(name: string): boolean {
    return name === this.origin || name.endsWith(`.${this.origin}`) || this.origin === '.';
  }

  /** The records at `name`, or at the wildcard standing in for it (owned by `name`); null when neither. */
  private find(name: string): { byType: Map<number, ResourceRecord[]> | null; owner: string } | null {
    const byType = this.nodes.get(name);
    if (byType) return { byType, owner: name };
    if (this.emptyNonTerminals.has(name)) return { byType: null, owner: name };
    // RFC 4592: the closest encloser is the longest existing ancestor; only its wildcard applies.
    for (let ancestor = parentName(name); ancestor !== null; ancestor = parentName(ancestor)) {
      if (!this.nodes.has(ancestor) && !this.emptyNonTerminals.has(ancestor) && ancestor !== this.origin) continue;
      const wildcard = this.nodes.get(ancestor === '.' ? '*.' : `*.${ancestor}`);
      return wildcard ? { byType: wildcard, owner: name } : null;
    }
    return null;
  }

  /** The highest name strictly below the apex, at or above qname, with NS records. */
  private zoneCut(qname: string): string | null {
    let cut: string | null = null;
    for (let name: string | null = qname; name !== null && name !== this.origin; name = parentName(name)) {
      if (this.nodes.get(name)?.has(Type.NS)) cut = name;
    }
    return cut;
  }

  private referral(cut: string): Reply {
    const ns = this.rrset(cut, Type.NS);
    return { rcode: Rcode.NOERROR, flags: 0, answer: noRecords, authority: ns, additional: this.addressesOf(ns.map((record) => record.data as string)) };
  }

  private positive(answer: ResourceRecord[], apexNsAnswer = false): Reply {
    const targets: string[] = [];
    for (const record of answer) {
      if (record.type === Type.MX) targets.push((record.data as MxData).exchange);
      else if (record.type === Type.SRV) targets.push((record.data as SrvData).target);
      else if (record.type === Type.NS) targets.push(record.data as string);
    }
    return {
      rcode: Rcode.NOERROR,
      flags: ReplyFlag.AA,
      answer,
      authority: apexNsAnswer ? noRecords : this.apexNs,
      additional: this.addressesOf(targets),
    };
  }

  private negative(rcode: number): Reply {
    return { rcode, flags: ReplyFlag.AA, answer: noRecords, authority: this.soa, additional: noRecords };
  }

  /** A and AAAA records of the in-zone names among `names`, in that order. */
  private addressesOf(names: readonly string[]): readonly ResourceRecord[] {
    const out: ResourceRecord[] = [];
    for (const name of new Set(names)) {
      if (!this.contains(name)) continue;
      out.push(...this.rrset(name, Type.A), ...this.rrset(name, Type.AAAA));
    }
    return out.length === 0 ? noRecords : out;
  }

  private rrset(name: string, type: number): readonly ResourceRecord[] {
    return this.nodes.get(name)?.get(type) ?? noRecords;
  }
}

/** A record as served under `owner` (a wildcard's records are owned by the name asked). */
function owned(record: ResourceRecord, owner: string): ResourceRecord {
  return record.name === owner ? record : { ...record, name: owner };
}
