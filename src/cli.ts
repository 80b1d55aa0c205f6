// Command-line flags, as CoreDNS takes them (CF-21): Go's flag syntax, so
// `-conf FILE`, `-conf=FILE` and `--conf FILE` all work. And how the command
// notices that npm, which launched it, is gone.

import { readFileSync } from 'node:fs';

export interface CliOptions {
  conf: string | null;
  dnsPort: number;
  pidfile: string | null;
  quiet: boolean;
  plugins: boolean;
  version: boolean;
  /** -h, -help (or --help): print the usage and exit 0, as Go's flag package does. */
  help: boolean;
  /** -validate: check the Corefile as the server would set it up, bind nothing, and exit. */
  validate: boolean;
  /** -json (with -validate): the report as one JSON object. */
  json: boolean;
}

export class UsageError extends Error {}

const valueFlags = new Set(['conf', 'dns.port', 'p', 'pidfile']);
const booleanFlags = new Set(['quiet', 'plugins', 'version', 'validate', 'json']);

export const USAGE = `Usage of clusterdns:
  -conf string
        Corefile to load, or "stdin" to read it from standard input (default "Corefile")
  -dns.port string
        Default port for server blocks without one (default "53"); -p is the same
  -pidfile string
        File to write the process ID to
  -plugins
        List the plugins this build has (sorted by name, then in chain order), and exit
  -quiet
        Do not print the startup banner
  -validate
        Check the Corefile (every plugin's setup, all errors with their lines, warnings), bind nothing, and exit: 0 when valid, 1 otherwise
  -json
        With -validate: print the report as one JSON object { ok, errors, warnings }
  -version
        Show the version and exit`;

export function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { conf: null, dnsPort: 53, pidfile: null, quiet: false, plugins: false, version: false, help: false, validate: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-' ) throw new UsageError(`extra command line arguments: ${argv.slice(i).join(' ')}`);
    if (arg === '--') {
      if (i + 1 < argv.length) throw new UsageError(`extra command line arguments: ${argv.slice(i + 1).join(' ')}`);
      break;
    }
    const body = arg.replace(/^--?/, '');
    const equals = body.indexOf('=');
    const name = equals < 0 ? body : body.slice(0, equals);
    let value = equals < 0 ? undefined : body.slice(equals + 1);
    // Go stops parsing at -h or -help, whatever follows.
    if (name === 'h' || name === 'help') return { ...options, help: true };
    if (booleanFlags.has(name)) {
      const enabled = value === undefined || /^(1|t|true)$/i.test(value);
      if (value !== undefined && !/^(0|1|t|f|true|false)$/i.test(value)) throw new UsageError(`invalid boolean value "${value}" for -${name}`);
      options[name as 'quiet' | 'plugins' | 'version' | 'validate' | 'json'] = enabled;
      continue;
    }
    if (!valueFlags.has(name)) throw new UsageError(`flag provided but not defined: -${name}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    if (name === 'conf') options.conf = value;
    else if (name === 'pidfile') options.pidfile = value;
    else {
      const port = Number(value);
      if (!/^\d+$/.test(value) || port > 65535) throw new UsageError(`invalid value "${value}" for flag -${name}: not a port number`);
      options.dnsPort = port;
    }
  }
  if (options.json && !options.validate) throw new UsageError('-json is only for -validate');
  return options;
}

/**
 * `npx clusterdns` runs the command under `sh -c`, and npm passes SIGTERM to
 * that shell only, which dies and leaves the server holding its ports. So when
 * npm launched us, check every second that the process that started us is
 * still there (and, when it is that shell, the npm above it: a SIGKILLed npm
 * leaves the shell alive), and call `onGone` once either is gone. Without npm
 * (a container, a service manager) there is no timer.
 */
export function watchNpmLauncher(onGone: () => void): NodeJS.Timeout | null {
  if (process.env['npm_command'] === undefined && process.env['npm_lifecycle_event'] === undefined) return null;
  const parent = process.ppid;
  const parentStat = processStat(parent);
  const npm = parentStat && /^(sh|dash|bash|zsh)$/.test(parentStat.name) ? parentStat.ppid : null;
  // npm was stopped while we were starting: init adopted us (unless npm itself is PID 1, in a container).
  const orphaned = parent === 1 && parentStat !== null && !parentStat.name.startsWith('npm');
  const timer = setInterval(() => {
    if (!orphaned && process.ppid === parent && (npm === null || processStat(parent)?.ppid === npm)) return;
    clearInterval(timer);
    onGone();
  }, 1000);
  timer.unref();
  return timer;
}

/** Name and parent of a process, from Linux's /proc; null elsewhere or when it is gone. */
function processStat(pid: number): { name: string; ppid: number } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (name) state ppid ...": the name may hold spaces and parentheses.
  const close = stat.lastIndexOf(')');
  return { name: stat.slice(stat.indexOf('(') + 1, close), ppid: Number(stat.slice(close + 2).split(' ')[1]) };
}
