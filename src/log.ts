// Log lines in CoreDNS's shape: "[LEVEL] plugin/<name>: message", no timestamps
// (Kubernetes adds them; LOG-5). Everything goes to stdout, as in CoreDNS.

export type LogLevel = 'INFO' | 'WARNING' | 'ERROR' | 'DEBUG' | 'FATAL';

export interface Logger {
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

let sink: (line: string) => void = (line) => process.stdout.write(line + '\n');

/** Redirects every log line (tests capture them this way). Returns the previous sink. */
export function setLogSink(next: (line: string) => void): (line: string) => void {
  const previous = sink;
  sink = next;
  return previous;
}

export function writeLog(level: LogLevel, message: string): void {
  sink(`[${level}] ${message}`);
}

let debugEnabled = false;
export function setDebug(enabled: boolean): void {
  debugEnabled = enabled;
}

export function pluginLogger(plugin: string): Logger {
  const prefix = plugin ? `plugin/${plugin}: ` : '';
  return {
    info: (message) => writeLog('INFO', prefix + message),
    warning: (message) => writeLog('WARNING', prefix + message),
    error: (message) => writeLog('ERROR', prefix + message),
    debug: (message) => {
      if (debugEnabled) writeLog('DEBUG', prefix + message);
    },
  };
}

export const serverLog = pluginLogger('');
