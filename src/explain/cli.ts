// `clusterdns explain NAME [TYPE] -conf FILE [--from IP] [--json]`: why the
// server answers what it answers.
//
// When the Corefile configures the explain endpoint (or --server URL is
// given), the running server is asked, so its live cache and index are what
// is explained. Otherwise (or with --offline) the command sets the Corefile
// up itself, starts the plugins a query passes through (manifests, API
// server, upstreams as configured) without binding any DNS or HTTP port, and
// runs the query through the plan's zone selection and chain.

import { parseConfig, planFromCorefile, type ServerPlan } from '../config.ts';
import { CorefileError } from '../corefile/types.ts';
import { quietLog, type LogSink } from '../log.ts';
import { stopPlugins } from '../lifecycle.ts';
import { corefileLoader } from '../main.ts';
import { formatExplanation } from './format.ts';
import { formatSearchSimulation, readResolvConf, simulateSearch, type SearchOptions, type SearchResolve } from './search.ts';
import { explainQuery, ExplainError, questionType, type Explanation, type ExplainQuestion } from './trace.ts';
import { DEFAULT_EXPLAIN_ADDRESS, endpointUrl } from '../../plugins/explain/address.ts';

export const EXPLAIN_USAGE = `Usage: clusterdns explain NAME [TYPE] [flags]
  -conf string
        Corefile to load (default "Corefile")
  -dns.port string
        Default port for server blocks without one (default "53")
  --from IP
        The client address plugins see (default 127.0.0.1)
  --port N
        Explain as the server block listening on this port answers (default the first)
  --tcp
        The query arrives over TCP
  --json
        Print one JSON object: rcode, answer, authority, additional, steps, server, timeMs
  --server URL
        Ask the explain endpoint at URL (http://127.0.0.1:8053)
  --offline
        Set the Corefile up here even when it configures an explain endpoint
  --search
        Simulate a pod's resolver: every query its search-path walk sends for NAME, what each got,
        the total and the NXDOMAIN waste, and advice
  --namespace NS
        With --search: the pod's namespace (search list NS.svc.ZONE svc.ZONE ZONE; default "default")
  --ndots N
        With --search: options ndots (default 5)
  --resolver glibc|musl
        With --search: the stub resolver's rules (default glibc)
  --resolv-conf FILE
        With --search: take search, ndots and options from this resolv.conf`;

export interface ExplainCliOptions {
  question: ExplainQuestion;
  /** --search: simulate the walk instead of explaining one query. */
  search: SearchOptions | null;
  conf: string | null;
  dnsPort: number;
  json: boolean;
  server: string | null;
  offline: boolean;
}

const valueFlags = new Set(['conf', 'dns.port', 'from', 'port', 'server', 'namespace', 'ndots', 'resolver', 'resolv-conf']);
const booleanFlags = new Set(['json', 'tcp', 'offline', 'search']);

export function parseExplainArgs(argv: readonly string[]): ExplainCliOptions {
  const positional: string[] = [];
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const equals = body.indexOf('=');
    const name = equals < 0 ? body : body.slice(0, equals);
    if (booleanFlags.has(name) && equals < 0) {
      switches.add(name);
      continue;
    }
    if (!valueFlags.has(name)) throw new ExplainError(`flag provided but not defined: ${arg}`);
    const value = equals >= 0 ? body.slice(equals + 1) : argv[++i];
    if (value === undefined) throw new ExplainError(`flag needs an argument: -${name}`);
    values.set(name, value);
  }
  if (positional.length === 0) throw new ExplainError('explain needs a NAME');
  if (positional.length > 2) throw new ExplainError(`extra arguments: ${positional.slice(2).join(' ')}`);
  if (positional[1] !== undefined) questionType(positional[1]);
  const port = (flag: string): number | undefined => {
    const text = values.get(flag);
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text) || Number(text) > 65535) throw new ExplainError(`invalid value "${text}" for flag -${flag}: not a port number`);
    return Number(text);
  };
  return {
    question: {
      name: positional[0]!,
      type: positional[1] ?? 'A',
      from: values.get('from'),
      port: port('port'),
      transport: switches.has('tcp') ? 'tcp' : 'udp',
    },
    conf: values.get('conf') ?? null,
    dnsPort: port('dns.port') ?? 53,
    json: switches.has('json'),
    server: values.get('server') ?? null,
    offline: switches.has('offline'),
    search: switches.has('search') ? searchOptions(values) : null,
  };
}

function searchOptions(values: Map<string, string>): SearchOptions {
  const ndots = values.get('ndots');
  if (ndots !== undefined && !/^\d+$/.test(ndots)) throw new ExplainError(`invalid value "${ndots}" for flag -ndots: not a number`);
  const resolver = values.get('resolver') ?? 'glibc';
  if (resolver !== 'glibc' && resolver !== 'musl') throw new ExplainError(`invalid value "${resolver}" for flag -resolver: glibc or musl`);
  const resolvConfFile = values.get('resolv-conf');
  return {
    namespace: values.get('namespace'),
    ndots: ndots === undefined ? undefined : Number(ndots),
    resolver,
    resolvConf: resolvConfFile === undefined ? undefined : readResolvConf(resolvConfFile),
  };
}

/** The explain subcommand; returns the exit code (0 explained, 1 could not, 2 bad usage). */
export async function runExplain(argv: readonly string[]): Promise<number> {
  let options: ExplainCliOptions;
  try {
    options = parseExplainArgs(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${EXPLAIN_USAGE}\n`);
    return 2;
  }
  try {
    if (options.search !== null) {
      const simulation = await withResolver(options, (resolve) => simulateSearch(options.question.name, options.search!, resolve));
      process.stdout.write(options.json ? `${JSON.stringify(simulation, null, 2)}\n` : formatSearchSimulation(simulation));
      return 0;
    }
    const explanation = await withResolver(options, (_resolve, explainOne) => explainOne(options.question));
    process.stdout.write(options.json ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
    return 0;
  } catch (error) {
    process.stderr.write(`explain: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

type ExplainOne = (question: ExplainQuestion) => Promise<Explanation>;

/**
 * Runs `work` with a way to explain queries: the running server when one is
 * configured or given, else the Corefile set up here (and stopped after).
 * `resolve` asks as the question's client over its transport, for --search.
 */
async function withResolver<T>(options: ExplainCliOptions, work: (resolve: SearchResolve, explainOne: ExplainOne) => Promise<T>): Promise<T> {
  const { question } = options;
  const run = (explainOne: ExplainOne) =>
    work((name, type) => explainOne({ ...question, name, type }).then((explanation) => ({ rcode: explanation.rcode, answer: explanation.answer })), explainOne);
  const server = await runningServer(options);
  if (server !== null) return run((asked) => askServer(server, asked));
  // Plugins' log lines (the log plugin's query line among them) go to stderr: stdout is the explanation.
  const toStderr: LogSink = (line) => process.stderr.write(`${line}\n`);
  const input = loadCorefile(options);
  const plan = planFromCorefile(input.text, input.file, { dnsPort: options.dnsPort, log: toStderr });
  try {
    await startQueryPlugins(plan);
    return await run((asked) => explainQuery(plan, asked));
  } finally {
    await stopPlugins(plan);
  }
}

function loadCorefile(options: ExplainCliOptions) {
  return corefileLoader({ conf: options.conf, dnsPort: options.dnsPort, pidfile: null, quiet: true, plugins: false, version: false, help: false, validate: false, json: false })();
}

/** The explain endpoint to ask: --server, else the one the Corefile configures if something answers there. */
async function runningServer(options: ExplainCliOptions): Promise<string | null> {
  if (options.server !== null) return options.server;
  if (options.offline) return null;
  const input = loadCorefile(options);
  const endpoint = configuredEndpoint(input.text, input.file, options.dnsPort);
  if (endpoint === null) return null;
  try {
    await fetch(new URL('/explain/top', endpoint), { signal: AbortSignal.timeout(2_000) });
    return endpoint;
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    process.stderr.write(`explain: no server answered at ${endpoint} (${cause?.code ?? cause?.message ?? (error as Error).message}); explaining offline from ${input.file}\n`);
    return null;
  }
}

/**
 * Plugins whose start opens an HTTP listener: offline they stay unstarted,
 * so explaining never takes (or fails on) a running server's ports.
 */
const LISTENING_PLUGINS = new Set(['health', 'ready', 'prometheus', 'explain']);

async function startQueryPlugins(plan: ServerPlan): Promise<void> {
  for (const block of plan.blocks) {
    for (const entry of block.plugins) {
      if (LISTENING_PLUGINS.has(entry.name)) continue;
      try {
        await entry.instance.start?.();
      } catch (error) {
        throw new Error(`${entry.directive.file}:${entry.directive.line} - plugin/${entry.name}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
}

/** The explain endpoint the Corefile configures (the first one), without setting anything up. */
function configuredEndpoint(text: string, file: string, dnsPort: number): string | null {
  let sources;
  try {
    sources = parseConfig(text, file, { dnsPort, log: quietLog });
  } catch (error) {
    if (error instanceof CorefileError) return null; // reported by the offline setup with its line
    throw error;
  }
  for (const source of sources) {
    const directive = source.directives.find((candidate) => candidate.name.text === 'explain');
    if (directive !== undefined) return endpointUrl(directive.args[0]?.text ?? DEFAULT_EXPLAIN_ADDRESS);
  }
  return null;
}

class NoServer extends Error {}

async function askServer(base: string, question: ExplainQuestion): Promise<Explanation> {
  const url = new URL('/explain', base);
  url.searchParams.set('name', question.name);
  url.searchParams.set('type', question.type ?? 'A');
  if (question.from !== undefined) url.searchParams.set('from', question.from);
  if (question.port !== undefined) url.searchParams.set('port', String(question.port));
  if (question.transport === 'tcp') url.searchParams.set('transport', 'tcp');
  let response: Response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new NoServer(cause?.code ?? cause?.message ?? (error as Error).message);
  }
  const body = await response.text();
  if (!response.ok) throw new ExplainError(`${url.origin} answered ${response.status}: ${body.trim()}`);
  return JSON.parse(body) as Explanation;
}
