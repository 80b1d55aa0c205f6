// explain: an HTTP endpoint that says why the running server answers what it
// answers (GET /explain?name=&type=&from=), and the top offenders it has seen
// (GET /explain/top): NXDOMAIN names, search-path waste, clients (issue 13).
//
// Off unless configured, on loopback unless told otherwise. The trace runs
// the live plan's zone selection and a traced copy of the chosen block's
// chain (src/explain/trace.ts), so the cache and index explained are the
// ones serving. Its serve handler only feeds the top-K sketches.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { expectArgs, parseInteger, setupError, unknownProperty } from '../../src/corefile/setup.ts';
import { formatExplanation } from '../../src/explain/format.ts';
import { formatSearchSimulation, simulateSearch } from '../../src/explain/search.ts';
import { explainQuery, ExplainError, type ExplainQuestion } from '../../src/explain/trace.ts';
import { attachRoute, parseHttpAddress, type Attachment } from '../../src/http.ts';
import { definePlugin, type BlockContext } from '../../src/plugin.ts';
import { DEFAULT_EXPLAIN_ADDRESS } from './address.ts';
import { trackOffenders } from './metrics.ts';
import { Offenders, type ViewName } from './offenders.ts';

export interface ExplainConfig {
  address: string;
  /** How many entries each top view shows (K). */
  topK: number;
}

const DEFAULT_TOP_K = 20;

/** Blocks (and, during a reload, configurations) sharing an address: /explain/top reports them all. */
const byAddress = new Map<string, Set<Offenders>>();

export default definePlugin<ExplainConfig>({
  name: 'explain',
  parse(directives) {
    // As health: the last explain line of a block wins.
    const directive = directives.at(-1)!;
    const [addressToken] = expectArgs(directive, 0, 1);
    const address = addressToken?.text ?? DEFAULT_EXPLAIN_ADDRESS;
    if (!parseHttpAddress(address)) throw setupError(addressToken!, `plugin/explain: expected an address such as 127.0.0.1:8053, found '${address}'`);
    let topK = DEFAULT_TOP_K;
    for (const option of directive.block ?? []) {
      if (option.name.text !== 'top') throw unknownProperty('explain', option.name);
      const [count] = expectArgs(option, 1);
      topK = parseInteger(count!, 1, 1000, 'top');
    }
    return { address, topK };
  },
  create(config, block) {
    const offenders = new Offenders(config.topK, block.zones, () => clusterZones(block));
    let attachments: Attachment[] = [];
    let untrack: (() => void) | null = null;
    return {
      serve(request, next) {
        const result = next(request);
        // Explained queries are not traffic.
        if (request.trace !== undefined) return result;
        if (result instanceof Promise) return result.then((reply) => offenders.observe(request, reply));
        return offenders.observe(request, result);
      },
      async start() {
        let members = byAddress.get(config.address);
        if (!members) {
          members = new Set();
          byAddress.set(config.address, members);
        }
        members.add(offenders);
        untrack = trackOffenders(offenders);
        attachments = [
          await attachRoute(config.address, '/explain', (request, response) => void explainRoute(block, request, response)),
          await attachRoute(config.address, '/explain/top', (request, response) => topRoute(members, request, response)),
        ];
      },
      async stop() {
        const members = byAddress.get(config.address);
        members?.delete(offenders);
        if (members?.size === 0) byAddress.delete(config.address);
        untrack?.();
        untrack = null;
        await Promise.all(attachments.map((attachment) => attachment.detach()));
        attachments = [];
      },
    };
  },
});

/** The kubernetes plugin's zones in this block (where search suffixes end), else the block's own zones but the root. */
function clusterZones(block: BlockContext): readonly string[] {
  const zones = block.plugins.flatMap(({ name, instance }) =>
    name === 'kubernetes' ? ((instance as { config?: { zones?: readonly string[] } }).config?.zones ?? []) : []);
  return zones.length > 0 ? zones : block.zones.filter((zone) => zone !== '.');
}

function wantsText(request: IncomingMessage): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('text/plain') && !accept.includes('application/json');
}

function send(response: ServerResponse, status: number, body: unknown, text: string | null): void {
  if (text !== null) response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
  else response.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
}

function fail(request: IncomingMessage, response: ServerResponse, status: number, message: string): void {
  send(response, status, { error: message }, wantsText(request) ? `${message}\n` : null);
}

async function explainRoute(block: BlockContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.method !== 'GET') return fail(request, response, 405, 'only GET');
  const params = new URL(request.url ?? '/', 'http://explain').searchParams;
  const name = params.get('name');
  if (!name) return fail(request, response, 400, 'name is required: /explain?name=NAME&type=TYPE&from=IP');
  const plan = block.settings.plan;
  if (plan === undefined) return fail(request, response, 503, 'the server is not set up yet');
  const portText = params.get('port');
  // Default: the first listener serving this block.
  const own = plan.listeners.find((listener) => [...listener.zones.values()].some((candidate) => candidate.context === block));
  const question: ExplainQuestion = {
    name,
    type: params.get('type') ?? 'A',
    from: params.get('from') ?? undefined,
    port: portText !== null ? Number(portText) : own?.port,
    transport: params.get('transport') === 'tcp' ? 'tcp' : 'udp',
  };
  try {
    if (params.has('search')) {
      // A pod's search-path walk for the name, each query explained against this server (issue 13 item 3).
      const ndots = params.get('ndots');
      const resolver = params.get('resolver') ?? 'glibc';
      if (resolver !== 'glibc' && resolver !== 'musl') return fail(request, response, 400, 'resolver must be glibc or musl');
      if (ndots !== null && !/^\d+$/.test(ndots)) return fail(request, response, 400, 'ndots must be a number');
      const simulation = await simulateSearch(name, { namespace: params.get('namespace') ?? undefined, ndots: ndots === null ? undefined : Number(ndots), resolver },
        (asked, type) => explainQuery(plan, { ...question, name: asked, type }).then((explanation) => ({ rcode: explanation.rcode, answer: explanation.answer })));
      return send(response, 200, simulation, wantsText(request) ? formatSearchSimulation(simulation) : null);
    }
    const explanation = await explainQuery(plan, question);
    send(response, 200, explanation, wantsText(request) ? formatExplanation(explanation) : null);
  } catch (error) {
    if (error instanceof ExplainError) return fail(request, response, 400, error.message);
    fail(request, response, 500, error instanceof Error ? error.message : String(error));
  }
}

function topRoute(members: Set<Offenders>, request: IncomingMessage, response: ServerResponse): void {
  const servers = [...members].flatMap((offenders) => offenders.report());
  if (!wantsText(request)) return send(response, 200, { servers }, null);
  const titles: Record<ViewName, string> = { nxdomain: 'NXDOMAIN names', search_waste: 'search-path waste (by the name meant)', clients: 'clients' };
  const lines: string[] = [];
  for (const { server, zones, views } of servers) {
    for (const [view, report] of Object.entries(views) as [ViewName, (typeof views)[ViewName]][]) {
      lines.push(`;; ${server} ${zones.join(' ')} top ${titles[view]}: ${report.total} counted, ${report.tracked} tracked`);
      for (const entry of report.top) lines.push(`${String(entry.count).padStart(8)}  ${entry.key}${entry.error > 0 ? `  (±${entry.error})` : ''}`);
      lines.push('');
    }
  }
  send(response, 200, null, lines.join('\n'));
}
