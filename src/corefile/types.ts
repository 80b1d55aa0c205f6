// What the Corefile parser produces and plugin setup reads.

/** One token of a Corefile, with where it came from (for error messages). */
export interface Token {
  text: string;
  /** The file the token was read from (an imported file names itself). */
  file: string;
  line: number;
}

/**
 * A directive line: `name args... [{ sub-directive lines }]`.
 * Nested option blocks are sub-directives of the same shape, to any depth.
 */
export interface Directive {
  name: Token;
  args: Token[];
  /** The `{ ... }` block opened on the directive's line; null when there is none. `{}` gives []. */
  block: Directive[] | null;
}

/** A server block as written: its keys (zones) and its directives in Corefile order. */
export interface ServerBlockSource {
  keys: Token[];
  directives: Directive[];
}

/** A normalised server-block key (CF-11). */
export interface ZoneAddress {
  /** Always "dns" today; others are rejected with a setup error (WIRE-26). */
  scheme: string;
  /** Canonical zone: lowercased, fully qualified. */
  zone: string;
  port: number;
  /** The key as written, for messages. */
  key: Token;
}

/**
 * A setup error: the Corefile position, what was found and what was expected.
 * Printed as CoreDNS does: `<file>:<line> - Error during parsing: <message>`.
 */
export class CorefileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly detail: string;
  constructor(where: { file: string; line: number }, detail: string) {
    super(`${where.file}:${where.line} - Error during parsing: ${detail}`);
    this.name = 'CorefileError';
    this.file = where.file;
    this.line = where.line;
    this.detail = detail;
  }
}

/**
 * A directive no plugin has. Found while parsing here, but CoreDNS finds it
 * when it sets the server up, so a reload counts it as a failed reload (RELOAD-4).
 */
export class UnknownDirectiveError extends CorefileError {
  constructor(token: { file: string; line: number; text: string }) {
    super(token, `Unknown directive '${token.text}'`);
  }
}
