// Command-line flags, as CoreDNS takes them (CF-21): Go's flag syntax, so
// `-conf FILE`, `-conf=FILE` and `--conf FILE` all work.

export interface CliOptions {
  conf: string | null;
  dnsPort: number;
  pidfile: string | null;
  quiet: boolean;
  plugins: boolean;
  version: boolean;
}

export class UsageError extends Error {}

const valueFlags = new Set(['conf', 'dns.port', 'p', 'pidfile']);
const booleanFlags = new Set(['quiet', 'plugins', 'version']);

export const USAGE = `Usage of clusterdns:
  -conf string
        Corefile to load, or "stdin" to read it from standard input (default "Corefile")
  -dns.port string
        Default port for server blocks without one (default "53"); -p is the same
  -pidfile string
        File to write the process ID to
  -plugins
        List the plugins this build has, in chain order, and exit
  -quiet
        Do not print the startup banner
  -version
        Show the version and exit`;

export function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { conf: null, dnsPort: 53, pidfile: null, quiet: false, plugins: false, version: false };
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
    if (booleanFlags.has(name)) {
      const enabled = value === undefined || /^(1|t|true)$/i.test(value);
      if (value !== undefined && !/^(0|1|t|f|true|false)$/i.test(value)) throw new UsageError(`invalid boolean value "${value}" for -${name}`);
      options[name as 'quiet' | 'plugins' | 'version'] = enabled;
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
  return options;
}
