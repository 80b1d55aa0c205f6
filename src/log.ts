// Log lines in CoreDNS's shape: "[LEVEL] plugin/<name>: message", no timestamps
// (Kubernetes adds them; LOG-5). Everything goes to stdout, as in CoreDNS.
//
// Each running server writes to its own sink (an embedding program may give
// one per server); the command and the tests use the process-wide sink.

export type LogLevel = 'INFO' | 'WARNING' | 'ERROR' | 'DEBUG' | 'FATAL';

/** Where whole log lines go, without a trailing newline. */
export type LogSink = (line: string) => void;

export interface Logger {
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  debug(message: string): void;
  /** A line with its level only, no plugin prefix (the log plugin's query lines, errors' own lines). */
  write(level: LogLevel, line: string): void;
}

let processSink: LogSink = (line) => process.stdout.write(line + '\n');

/** Redirects the process-wide sink (tests capture lines this way). Returns the previous sink. */
export function setLogSink(next: LogSink): LogSink {
  const previous = processSink;
  processSink = next;
  return previous;
}

/** The process-wide sink, looked up per line so that setLogSink also redirects loggers made earlier. */
export const processLog: LogSink = (line) => processSink(line);

/** Drops every line: the default of an embedded server. */
export const quietLog: LogSink = () => {};

export function writeLog(level: LogLevel, message: string, sink: LogSink = processLog): void {
  sink(`[${level}] ${message}`);
}

let debugEnabled = false;
export function setDebug(enabled: boolean): void {
  debugEnabled = enabled;
}

/** A logger prefixing "plugin/<name>: " ('' for the server's own lines). */
export function createLogger(plugin: string, sink: LogSink = processLog): Logger {
  const prefix = plugin ? `plugin/${plugin}: ` : '';
  return {
    info: (message) => writeLog('INFO', prefix + message, sink),
    warning: (message) => writeLog('WARNING', prefix + message, sink),
    error: (message) => writeLog('ERROR', prefix + message, sink),
    debug: (message) => {
      if (debugEnabled) writeLog('DEBUG', prefix + message, sink);
    },
    write: (level, line) => writeLog(level, line, sink),
  };
}
