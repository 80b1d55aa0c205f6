// The search-path walk of a pod's stub resolver (issue 13, item 3): which
// queries glibc or musl sends for a name under a pod's resolv.conf, what this
// server answers to each, which one wins, and how many were spent for nothing.
//
// The rules are the resolvers' own (glibc resolv/res_query.c and res_send.c,
// musl src/network/lookup_name.c and res_msend.c), checked against the
// queries `getent ahosts` really sends (test/search-sim.test.ts):
//
// glibc  getaddrinfo(AF_UNSPEC) asks A and AAAA together for each candidate
//        name. A name with at least ndots dots, or a trailing dot, is tried as
//        it is first (a trailing dot: only as it is); then each search suffix;
//        then, if not tried yet, the name as it is. A candidate wins when
//        either reply has records (a CNAME counts). NXDOMAIN, NODATA and
//        SERVFAIL move on to the next candidate; REFUSED and other errors stop
//        the suffixes (the name as it is is still tried). A SERVFAIL, REFUSED
//        or NOTIMP reply to the A query makes glibc send the pair again, up to
//        `attempts` (default 2) times per nameserver.
// musl   A and AAAA together too. A name with at least ndots dots, or a
//        trailing dot, is tried only as it is; otherwise each suffix, then the
//        name. Only NXDOMAIN moves on: NODATA ends the walk (no address), and
//        so does a SERVFAIL or REFUSED, which musl keeps resending until its
//        timeout (default 5 s) and then reports as a temporary failure.

import { readFileSync } from 'node:fs';

export type StubResolver = 'glibc' | 'musl';
export type AddressType = 'A' | 'AAAA';

export interface SearchConfig {
  /** Suffixes in the order tried, without trailing dots. */
  search: string[];
  ndots: number;
  /** glibc `options attempts:N`: sends of one pair when the server rejects it (default 2). */
  attempts: number;
  /** The address types asked per candidate: both for getaddrinfo(AF_UNSPEC); glibc `options no-aaaa` leaves A only. */
  types: AddressType[];
}

export interface SearchOptions {
  /** The pod's namespace, for the default search list (default `default`). */
  namespace?: string;
  /** The cluster zone, for the default search list (default `cluster.local`). */
  clusterZone?: string;
  /** Default 5, as kubelet writes it. */
  ndots?: number;
  resolver?: StubResolver;
  /** A resolv.conf's text: its search/domain, ndots, attempts and no-aaaa replace the defaults. */
  resolvConf?: string;
  /**
   * Address types asked per candidate (default both, as getaddrinfo with AF_UNSPEC asks them; glibc 2.36
   * still asks AAAA in a pod with only IPv4 and link-local IPv6, AI_ADDRCONFIG or not). A only: a client asking for AF_INET.
   */
  types?: AddressType[];
}

/** What the server answered to one query. Resolution from the embedding API fits. */
export interface SearchAnswer {
  rcode: string;
  answer: readonly unknown[];
}

export type SearchResolve = (name: string, type: AddressType) => Promise<SearchAnswer>;

export interface SimulatedQuery {
  /** Fully qualified, as the server sees it. */
  name: string;
  type: AddressType;
  rcode: string;
  /** Records in the answer section. */
  answers: number;
}

export interface CandidateOutcome {
  name: string;
  /** Queries sent for this candidate (a resent pair counts twice). */
  queries: number;
  outcome: 'answer' | 'NXDOMAIN' | 'NODATA' | 'SERVFAIL' | 'REFUSED' | 'error';
  /** True when it is a search suffix appended to the name, false for the name as written. */
  searched: boolean;
}

export interface SearchSimulation {
  name: string;
  resolver: StubResolver;
  ndots: number;
  search: string[];
  /** Every query in the order sent. */
  queries: SimulatedQuery[];
  candidates: CandidateOutcome[];
  /** The candidate whose answer the application gets; null when the lookup fails. */
  winner: string | null;
  /** What the application sees: an address, or why not. */
  result: 'answer' | 'NXDOMAIN' | 'NODATA' | 'SERVFAIL' | 'REFUSED' | 'error';
  total: number;
  /** Queries answered NXDOMAIN. */
  wastedOnNxdomain: number;
  advice: string[];
  /** Limits of the model for this walk (musl's resends are not counted). */
  notes: string[];
}

const DEFAULT_NDOTS = 5;
/** Both resolvers cap ndots at 15. */
const MAX_NDOTS = 15;
const MAX_NAME_LENGTH = 253;

/** The search, ndots, attempts and address types a resolv.conf gives; the last search or domain line wins, as in glibc. */
export function parseResolvConf(text: string, base: SearchConfig): SearchConfig {
  const config: SearchConfig = { ...base, types: [...base.types] };
  for (const raw of text.split('\n')) {
    const [keyword, ...values] = raw.replace(/[#;].*$/, '').trim().split(/\s+/);
    if (keyword === 'search') config.search = values.map(withoutTrailingDot).filter((suffix) => suffix !== '');
    else if (keyword === 'domain' && values[0]) config.search = [withoutTrailingDot(values[0])];
    else if (keyword === 'options') {
      for (const option of values) {
        const [key, value] = option.split(':');
        if (key === 'ndots' && /^\d+$/.test(value ?? '')) config.ndots = Math.min(Number(value), MAX_NDOTS);
        else if (key === 'attempts' && /^\d+$/.test(value ?? '')) config.attempts = Math.max(1, Math.min(Number(value), 5));
        else if (key === 'no-aaaa') config.types = ['A'];
      }
    }
  }
  return config;
}

export function searchConfig(options: SearchOptions = {}): SearchConfig {
  const zone = withoutTrailingDot(options.clusterZone ?? 'cluster.local');
  const namespace = options.namespace ?? 'default';
  const base: SearchConfig = {
    search: [`${namespace}.svc.${zone}`, `svc.${zone}`, zone],
    ndots: Math.min(options.ndots ?? DEFAULT_NDOTS, MAX_NDOTS),
    attempts: 2,
    types: options.types ?? ['A', 'AAAA'],
  };
  const config = options.resolvConf === undefined ? base : parseResolvConf(options.resolvConf, base);
  // An explicit --ndots wins over the file's.
  if (options.ndots !== undefined) config.ndots = Math.min(options.ndots, MAX_NDOTS);
  return config;
}

export function readResolvConf(file: string): string {
  return readFileSync(file, 'utf8');
}

function withoutTrailingDot(name: string): string {
  return name.replace(/\.+$/, '');
}

function fullyQualified(name: string): string {
  return name.endsWith('.') ? name : `${name}.`;
}

/**
 * The candidates in the order the resolver tries them if each one fails,
 * fully qualified: the walk may stop earlier.
 */
export function searchCandidates(name: string, resolver: StubResolver, config: SearchConfig): { name: string; searched: boolean }[] {
  const trailingDot = name.endsWith('.');
  const bare = withoutTrailingDot(name);
  const dots = (name.match(/\./g) ?? []).length;
  const asIs = { name: fullyQualified(bare), searched: false };
  const suffixes = config.search.map((suffix) => ({ name: suffix === '' ? asIs.name : `${bare}.${suffix}.`, searched: suffix !== '' }));
  if (trailingDot) return [asIs];
  if (dots >= config.ndots) return resolver === 'musl' ? [asIs] : [asIs, ...suffixes];
  // glibc does not try the name as it is again when "." is on the search list.
  return config.search.includes('') ? suffixes : [...suffixes, asIs];
}

const REJECTED = new Set(['SERVFAIL', 'REFUSED', 'NOTIMP']);

/** Runs the walk against `resolve`, one query at a time in the order the resolver sends them. */
export async function simulateSearch(name: string, options: SearchOptions, resolve: SearchResolve): Promise<SearchSimulation> {
  const resolver = options.resolver ?? 'glibc';
  const config = searchConfig(options);
  const queries: SimulatedQuery[] = [];
  const candidates: CandidateOutcome[] = [];
  const notes: string[] = [];
  let winner: string | null = null;
  let result: SearchSimulation['result'] = 'NXDOMAIN';
  let sawNodata = false;
  let sawServfail = false;

  const ask = async (candidate: string): Promise<SimulatedQuery[]> => {
    const pair: SimulatedQuery[] = [];
    for (const type of config.types) {
      const reply = await resolve(candidate, type);
      const query = { name: candidate, type, rcode: reply.rcode, answers: reply.answer.length };
      queries.push(query);
      pair.push(query);
    }
    return pair;
  };

  let skipSuffixes = false;
  for (const candidate of searchCandidates(name, resolver, config)) {
    if (candidate.searched && skipSuffixes) continue;
    if (candidate.name.length - 1 > MAX_NAME_LENGTH) {
      // Neither resolver sends a name that long; to glibc it is an error that ends the suffixes.
      if (resolver === 'glibc' && candidate.searched) skipSuffixes = true;
      continue;
    }
    const sentBefore = queries.length;
    let replies = await ask(candidate.name);
    if (resolver === 'glibc') {
      // res_send: a rejected reply to the first query sends the pair again, `attempts` times in all.
      for (let attempt = 1; attempt < config.attempts && REJECTED.has(replies[0]!.rcode); attempt++) replies = await ask(candidate.name);
    }
    const outcome = resolver === 'glibc' ? glibcOutcome(replies) : muslOutcome(replies);
    candidates.push({ name: candidate.name, queries: queries.length - sentBefore, outcome, searched: candidate.searched });
    result = outcome;
    if (outcome === 'answer') {
      winner = candidate.name;
      break;
    }
    if (resolver === 'musl') {
      if (outcome === 'NXDOMAIN') continue;
      if (outcome !== 'NODATA') notes.push(`musl does not accept ${outcome}: it resends ${candidate.name} until its timeout (5 s by default) and then fails the lookup; the resends are not listed`);
      break;
    }
    // glibc's search loop: NXDOMAIN, NODATA and SERVFAIL try the next suffix; any other error ends the
    // suffixes, and the name as it is is still tried. A failure of the name tried first goes on to the suffixes.
    if (outcome === 'NODATA') sawNodata = true;
    else if (outcome === 'SERVFAIL') sawServfail = true;
    else if (outcome !== 'NXDOMAIN' && candidate.searched) skipSuffixes = true;
  }
  if (resolver === 'glibc' && winner === null) {
    // res_search reports the error of the name tried first as it is, else NODATA if any suffix had it, else SERVFAIL.
    const first = candidates[0];
    if (first && !first.searched && candidates.length > 1) result = first.outcome;
    else if (sawNodata) result = 'NODATA';
    else if (sawServfail) result = 'SERVFAIL';
  }

  const simulation: SearchSimulation = {
    name,
    resolver,
    ndots: config.ndots,
    search: config.search,
    queries,
    candidates,
    winner,
    result,
    total: queries.length,
    wastedOnNxdomain: queries.filter((query) => query.rcode === 'NXDOMAIN').length,
    advice: [],
    notes,
  };
  simulation.advice = advise(simulation, config);
  return simulation;
}

/** glibc __res_context_query: success when either reply has records; else the error of the A reply, or the AAAA's when A was NOERROR. */
function glibcOutcome(replies: SimulatedQuery[]): CandidateOutcome['outcome'] {
  // A rejected A reply after the last attempt: no answer at all for this candidate.
  if (REJECTED.has(replies[0]!.rcode)) return replies[0]!.rcode === 'SERVFAIL' ? 'SERVFAIL' : replies[0]!.rcode === 'REFUSED' ? 'REFUSED' : 'error';
  // A rejected AAAA reply after a good A reply is dropped: glibc keeps what it has.
  const usable = replies.filter((reply, index) => index === 0 || !REJECTED.has(reply.rcode));
  if (usable.some((reply) => reply.rcode === 'NOERROR' && reply.answers > 0)) return 'answer';
  const first = usable[0]!;
  const deciding = first.rcode === 'NOERROR' ? (usable[1] ?? first) : first;
  if (deciding.rcode === 'NXDOMAIN') return 'NXDOMAIN';
  if (deciding.rcode === 'NOERROR') return 'NODATA';
  return 'error';
}

/** musl name_from_dns: any SERVFAIL or unusable reply fails, any NXDOMAIN moves on, else records or NODATA. */
function muslOutcome(replies: SimulatedQuery[]): CandidateOutcome['outcome'] {
  for (const reply of replies) {
    if (reply.rcode === 'SERVFAIL') return 'SERVFAIL';
    if (reply.rcode === 'NXDOMAIN') return 'NXDOMAIN';
    if (reply.rcode !== 'NOERROR') return reply.rcode === 'REFUSED' ? 'REFUSED' : 'error';
  }
  return replies.some((reply) => reply.answers > 0) ? 'answer' : 'NODATA';
}

function plural(count: number, what: string, many = `${what}s`): string {
  return `${count} ${count === 1 ? what : many}`;
}

function queryCount(count: number): string {
  return plural(count, 'query', 'queries');
}

function advise(simulation: SearchSimulation, config: SearchConfig): string[] {
  const advice: string[] = [];
  const { name, candidates, winner, total } = simulation;
  const perCandidate = config.types.length;
  const bare = withoutTrailingDot(name);
  const dots = (bare.match(/\./g) ?? []).length;
  if (name.endsWith('.')) return advice;
  const won = candidates.find((candidate) => candidate.name === winner);
  if (won && !won.searched && total > perCandidate) {
    advice.push(`Write the name with a trailing dot, '${bare}.': ${queryCount(perCandidate)} instead of ${total}.`);
    if (dots > 0 && dots < config.ndots) {
      advice.push(`Or set 'ndots:${dots}' in the pod's dnsConfig options: names with ${plural(dots, 'dot')} are then tried as they are first (${queryCount(perCandidate)} here), at the cost of one failed lookup first for in-cluster names written with as many dots, such as 'service.namespace'.`);
    }
  }
  if (won && won.searched && total > perCandidate) {
    advice.push(`Write the full name with a trailing dot, '${winner}': ${queryCount(perCandidate)} instead of ${total}.`);
  }
  if (candidates.length > 1 && candidates[0]!.searched && total > perCandidate && (winner === null || winner !== candidates[0]!.name)) {
    advice.push(`Or add 'autopath @kubernetes' (with 'pods verified' in the kubernetes plugin) to the Corefile: the server then answers the first query of the walk with the final answer, so the client sends ${queryCount(perCandidate)} instead of ${total}.`);
  }
  if (winner === null && simulation.result === 'NXDOMAIN') {
    advice.push(`No candidate exists: '${bare}' is not a Service or pod name in the search list's namespaces, nor a name that resolves on its own.`);
  }
  if (simulation.resolver === 'musl' && simulation.result === 'NODATA') {
    const stopped = candidates.at(-1)!;
    advice.push(`musl ended the walk at ${stopped.name}, which exists without addresses (NOERROR, no records): it does not try further candidates as glibc does. Use the full name with a trailing dot.`);
  }
  return advice;
}

/** The walk as text: one line per query, then the outcome and the advice. */
export function formatSearchSimulation(simulation: SearchSimulation): string {
  const lines = [
    `Search-path walk of ${simulation.name} (${simulation.resolver}, ndots ${simulation.ndots}, search ${simulation.search.join(' ') || '(none)'})`,
  ];
  const width = Math.max(...simulation.queries.map((query) => query.name.length), 0);
  simulation.queries.forEach((query, index) => {
    const records = query.rcode === 'NOERROR' ? `  ${query.answers === 0 ? 'no records' : plural(query.answers, 'record')}` : '';
    lines.push(`  ${String(index + 1).padStart(2)}  ${query.type.padEnd(4)}  ${query.name.padEnd(width)}  ${query.rcode}${records}`);
  });
  const outcome = simulation.winner === null
    ? `No answer (${simulation.result})`
    : `Answered by ${simulation.winner} (candidate ${simulation.candidates.findIndex((candidate) => candidate.name === simulation.winner) + 1} of ${simulation.candidates.length} tried)`;
  lines.push(`${outcome}: ${queryCount(simulation.total)}, ${simulation.wastedOnNxdomain} wasted on NXDOMAIN.`);
  for (const note of simulation.notes) lines.push(`Note: ${note}`);
  if (simulation.advice.length > 0) lines.push('Advice:', ...simulation.advice.map((line) => `  - ${line}`));
  return lines.join('\n') + '\n';
}
