// explain (issue 13): one query run through a plan's zone selection and a
// traced copy of the chosen block's chain, recording what every plugin
// decided and why.
//
// Nothing here is on the serving path: the listeners run the chains
// config.ts built, and never see a trace. The traced chain wraps the same
// plugin instances (so the live cache and index are what is explained) and is
// built anew for each explained query; plugins add their reasons through
// PluginInstance.explain, and forward through Request.trace while it waits.

import dnsPacket from 'dns-packet';
import { endOfChain } from '../chain.ts';
import type { BlockPlan, ListenerPlan, ServerPlan } from '../config.ts';
import type { Next, PluginEntry, PluginInstance, Request, TraceStep, Transport } from '../plugin.ts';
import { ANY_CLASS_PLUGINS } from '../registry.ts';
import { Class, Flag, rcodeName, TCP_MAX_SIZE, Type, typeFromName, typeName } from '../wire/constants.ts';
import { encodeReply, ServerReply, type Reply } from '../wire/message.ts';
import { canonicalName, isSubdomain } from '../wire/names.ts';
import { decodeQuery, encodeQuestion, isRejection, type Query } from '../wire/query.ts';

export type { TraceStep } from '../plugin.ts';

export interface ExplainQuestion {
  name: string;
  /** A type name (A, AAAA, SRV...) or number; default A. */
  type?: string;
  /** The client address plugins see (acl, autopath, views); default 127.0.0.1. */
  from?: string;
  /** Which listener, by its port (the configured one); default the first. */
  port?: number;
  transport?: Transport;
}

/** A record as the client would see it, in presentation form. */
export interface ExplainedRecord {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

export interface Explanation {
  question: { name: string; type: string; from: string; transport: Transport };
  /** The listener (dns://:53), the zone chosen and the block serving it. */
  server: {
    listener: string;
    /** Every zone on the listener containing the name, longest first: the ones the chosen zone competed with. */
    candidates: string[];
    zone: string | null;
    /** The chosen block's zones and the Corefile line of its key. */
    block: { zones: string[]; at: string } | null;
  };
  steps: TraceStep[];
  /** NOERROR, NXDOMAIN...; "no reply" when a plugin (rrl) dropped it. */
  rcode: string;
  flags: string[];
  answer: ExplainedRecord[];
  authority: ExplainedRecord[];
  additional: ExplainedRecord[];
  /** Wall time of the whole query through the chain, in ms. */
  timeMs: number;
}

export class ExplainError extends Error {}

/** Runs `question` through `plan` as the listener would, recording every decision. */
export async function explainQuery(plan: ServerPlan, question: ExplainQuestion): Promise<Explanation> {
  const listener = question.port === undefined ? plan.listeners[0] : plan.listeners.find((candidate) => candidate.port === question.port);
  if (listener === undefined) {
    throw new ExplainError(question.port === undefined ? 'the Corefile has no server block' : `no server block listens on port ${question.port}`);
  }
  const query = buildQuery(question);
  const from = question.from ?? '127.0.0.1';
  const transport = question.transport ?? 'udp';
  const steps: TraceStep[] = [];
  const selection = selectBlock(listener, query);
  const started = performance.now();
  let reply: Reply;
  if (selection.refusal !== null) {
    steps.push({ plugin: 'server', outcome: 'refused', detail: { reason: selection.refusal } });
    reply = ServerReply.REFUSED;
  } else {
    const request: Request = {
      query,
      transport,
      remoteAddress: from,
      remotePort: 0,
      family: from.includes(':') ? 2 : 1,
      localAddress: listener.address,
      localPort: listener.port,
      zone: selection.zone!,
      server: listener.label,
      reenter: reentry(listener, steps),
      overloaded: false,
    };
    try {
      reply = await tracedChain(selection.block!.plugins, steps)(request);
    } catch (error) {
      // WIRE-5: the server answers SERVFAIL; the step that threw says why.
      reply = ServerReply.SERVFAIL;
      steps.push({ plugin: 'server', outcome: 'SERVFAIL after an error', detail: { error: messageOf(error) } });
    }
  }
  const timeMs = Math.round((performance.now() - started) * 1000) / 1000;
  const block = selection.block;
  return {
    question: { name: query.qname, type: typeName(query.qtype), from, transport },
    server: {
      listener: listener.label,
      candidates: selection.candidates,
      zone: selection.zone,
      block: block === undefined ? null : { zones: block.context.zones, at: blockKeyAt(block) },
    },
    steps,
    ...sections(query, reply),
    timeMs,
  };
}

/** A type name (AAAA), TYPE28 or 28 → the number; ExplainError for anything else. */
export function questionType(text: string): number {
  const upper = text.toUpperCase();
  const qtype = /^\d+$/.test(upper) ? Number(upper) : /^TYPE\d+$/.test(upper) ? Number(upper.slice(4)) : typeFromName(upper);
  if (qtype === undefined || !(qtype >= 0 && qtype <= 65535)) throw new ExplainError(`unknown query type '${text}'`);
  return qtype;
}

function buildQuery(question: ExplainQuestion): Query {
  const qtype = questionType(question.type ?? 'A');
  let packet: Buffer;
  try {
    // As dig asks by default: RD, EDNS with a 1232-byte buffer, DO off.
    packet = encodeQuestion(Math.floor(Math.random() * 65536), Flag.RD, canonicalName(question.name), qtype, Class.IN, { udpSize: 1232, dnssecOk: false });
  } catch (error) {
    throw new ExplainError(`'${question.name}' is not a valid name: ${messageOf(error)}`);
  }
  const query = decodeQuery(packet);
  if (isRejection(query)) throw new ExplainError(`'${question.name}' is not a valid name`);
  return query;
}

interface Selection {
  candidates: string[];
  zone: string | null;
  block: BlockPlan | undefined;
  /** Why the server answers REFUSED before any plugin; null when a block takes the query. */
  refusal: string | null;
}

/** CF-13 as src/server.ts does it: the longest zone containing the name (for DS the parent-most). */
function selectBlock(listener: ListenerPlan, query: Query): Selection {
  const candidates = [...listener.zones.keys()].filter((zone) => isSubdomain(query.qname, zone)).sort((a, b) => b.length - a.length);
  const zone = (query.qtype === Type.DS ? candidates.at(-1) : candidates[0]) ?? null;
  const block = zone === null ? undefined : listener.zones.get(zone);
  let refusal: string | null = null;
  if (block === undefined) refusal = `no server block on ${listener.label} serves a zone containing ${query.qname}`;
  else if (block.chain === null) refusal = 'the server block has no plugins';
  else if (query.qclass !== Class.IN && !block.plugins.some(({ name }) => ANY_CLASS_PLUGINS.has(name))) refusal = 'class not IN';
  return { candidates, zone, block, refusal };
}

function blockKeyAt(block: BlockPlan): string {
  const key = block.context.addresses[0]?.key;
  return key === undefined ? '' : `${key.file}:${key.line}`;
}

/**
 * A plugin that asks the server a new question (ExternalName chase,
 * autopath) re-enters it traced: its steps follow, after a step naming the
 * question and the zone chosen for it.
 */
function reentry(listener: ListenerPlan, steps: TraceStep[]): Next {
  const reenter: Next = (request) => {
    const selection = selectBlock(listener, request.query);
    steps.push({
      plugin: 'server',
      outcome: selection.refusal === null ? 're-entered' : 'refused',
      detail: { question: `${request.query.qname} ${typeName(request.query.qtype)}`, zone: selection.zone, ...(selection.refusal === null ? {} : { reason: selection.refusal }) },
    });
    if (selection.refusal !== null) return ServerReply.REFUSED;
    return tracedChain(selection.block!.plugins, steps)({ ...request, zone: selection.zone!, reenter });
  };
  return reenter;
}

/** The block's handlers in order, each wrapped to record its step. */
export function tracedChain(entries: readonly PluginEntry[], steps: TraceStep[]): Next {
  let next: Next = endOfChain;
  for (let i = entries.length - 1; i >= 0; i--) {
    const { name, instance } = entries[i]!;
    if (instance.serve === undefined) continue;
    const after = next;
    next = (request) => traceOne(name, instance, request, after, steps);
  }
  return next;
}

function traceOne(name: string, instance: PluginInstance, request: Request, after: Next, steps: TraceStep[]): Reply | Promise<Reply> {
  const step: TraceStep = { plugin: name, outcome: 'visited', detail: {} };
  steps.push(step);
  Object.assign(step.detail, instance.explain?.before?.(request));
  let passedOn = false;
  let nextReply: Reply | undefined;
  const next: Next = (passed) => {
    passedOn = true;
    // A plugin that passes another question on (rewrite, autopath, dns64): what the rest of the chain was asked.
    if (passed.query.qname !== request.query.qname || passed.query.qtype !== request.query.qtype) {
      const asked = (step.detail['passedOnAs'] ??= []) as string[];
      asked.push(`${passed.query.qname} ${typeName(passed.query.qtype)}`);
    }
    const result = after(passed);
    if (result instanceof Promise) return result.then((reply) => (nextReply = reply));
    nextReply = result;
    return result;
  };
  const traced: Request = { ...request, trace: step };
  const finish = (reply: Reply): Reply => {
    step.outcome = reply.silent === true ? 'dropped the reply'
      : !passedOn ? 'answered'
      : reply === nextReply ? 'passed on'
      : 'changed the reply';
    if (step.outcome !== 'passed on') Object.assign(step.detail, summary(reply));
    instance.explain?.after?.(traced, reply, step, passedOn);
    return reply;
  };
  const failed = (error: unknown): never => {
    step.outcome = 'failed';
    step.detail['error'] = messageOf(error);
    throw error;
  };
  let result: Reply | Promise<Reply>;
  try {
    result = instance.serve!(traced, next);
  } catch (error) {
    return failed(error);
  }
  return result instanceof Promise ? result.then(finish, failed) : finish(result);
}

/** What a reply held, for the step that produced it. */
function summary(reply: Reply): Record<string, unknown> {
  const out: Record<string, unknown> = {
    rcode: rcodeName(reply.rcode),
    answer: reply.answer.length,
    authority: reply.authority.length,
    additional: reply.additional.length,
  };
  if (reply.error !== undefined) out['error'] = reply.error.message;
  return out;
}


/** The reply as the client would get it (encoded, so cache TTLs and shuffles show), in presentation form. */
function sections(query: Query, reply: Reply): Pick<Explanation, 'rcode' | 'flags' | 'answer' | 'authority' | 'additional'> {
  if (reply.silent === true) return { rcode: 'no reply', flags: [], answer: [], authority: [], additional: [] };
  const decoded = dnsPacket.decode(encodeReply(query, reply, TCP_MAX_SIZE)) as dnsPacket.DecodedPacket & { flag_aa?: boolean };
  const flags: string[] = [];
  const bits = decoded.flags ?? 0;
  for (const [flag, label] of [[Flag.AA, 'aa'], [Flag.TC, 'tc'], [Flag.RD, 'rd'], [Flag.RA, 'ra'], [Flag.AD, 'ad'], [Flag.CD, 'cd']] as const) {
    if (bits & flag) flags.push(label);
  }
  const list = (records: dnsPacket.Answer[] | undefined): ExplainedRecord[] =>
    (records ?? []).filter((record) => record.type !== 'OPT').map((record) => ({
      name: `${record.name === '.' || record.name === '' ? '' : record.name}.`,
      type: record.type,
      ttl: (record as { ttl?: number }).ttl ?? 0,
      data: presentation(record),
    }));
  return {
    rcode: rcodeName(reply.rcode),
    flags,
    answer: list(decoded.answers),
    authority: list(decoded.authorities),
    additional: list(decoded.additionals),
  };
}

/** Record data as a zone file writes it. */
function presentation(record: dnsPacket.Answer): string {
  const data = (record as { data?: unknown }).data;
  const fqdn = (name: string) => (name.endsWith('.') ? name : `${name}.`);
  switch (record.type) {
    case 'CNAME':
    case 'PTR':
    case 'NS':
    case 'DNAME':
      return fqdn(String(data));
    case 'SRV': {
      const srv = data as { priority: number; weight: number; port: number; target: string };
      return `${srv.priority} ${srv.weight} ${srv.port} ${fqdn(srv.target)}`;
    }
    case 'MX': {
      const mx = data as { preference: number; exchange: string };
      return `${mx.preference} ${fqdn(mx.exchange)}`;
    }
    case 'SOA': {
      const soa = data as { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };
      return `${fqdn(soa.mname)} ${fqdn(soa.rname)} ${soa.serial} ${soa.refresh} ${soa.retry} ${soa.expire} ${soa.minimum}`;
    }
    case 'TXT':
      return (data as Buffer[]).map((part) => JSON.stringify(part.toString())).join(' ');
    default:
      return Buffer.isBuffer(data) ? `\\# ${data.length} ${data.toString('hex')}` : String(data);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
