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
        Set the Corefile up here even when it configures an explain endpoint`;

export interface ExplainCliOptions {
  question: ExplainQuestion;
  conf: string | null;
  dnsPort: number;
  json: boolean;
  server: string | null;
  offline: boolean;
}

const valueFlags = new Set(['conf', 'dns.port', 'from', 'port', 'server']);
const booleanFlags = new Set(['json', 'tcp', 'offline']);

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
    const explanation = await explain(options);
    process.stdout.write(options.json ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
    return 0;
  } catch (error) {
    process.stderr.write(`explain: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

async function explain(options: ExplainCliOptions): Promise<Explanation> {
  if (options.server !== null) return askServer(options.server, options.question);
  const input = corefileLoader({ conf: options.conf, dnsPort: options.dnsPort, pidfile: null, quiet: true, plugins: false, version: false, help: false, validate: false, json: false })();
  if (!options.offline) {
    const endpoint = configuredEndpoint(input.text, input.file, options.dnsPort);
    if (endpoint !== null) {
      try {
        return await askServer(endpoint, options.question);
      } catch (error) {
        if (!(error instanceof NoServer)) throw error;
        process.stderr.write(`explain: no server answered at ${endpoint} (${error.message}); explaining offline from ${input.file}\n`);
      }
    }
  }
  // Plugins' log lines (the log plugin's query line among them) go to stderr: stdout is the explanation.
  const toStderr: LogSink = (line) => process.stderr.write(`${line}\n`);
  const plan = planFromCorefile(input.text, input.file, { dnsPort: options.dnsPort, log: toStderr });
  try {
    await startQueryPlugins(plan);
    return await explainQuery(plan, options.question);
  } finally {
    await stopPlugins(plan);
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
