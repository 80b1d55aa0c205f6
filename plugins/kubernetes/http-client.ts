// A lean Kubernetes API client for what cluster DNS does with the API server:
// list (one page per call) and watch, on node:http / node:https.
//
// Why not @kubernetes/client-node: importing it adds 85–90 MB of RSS on
// Node 24 (its KubeConfig pulls in the whole generated API, gen/index.js,
// plus undici and friends: a bare process is 41–43 MB, one that has imported
// it 126–135 MB), which put clusterdns at the 170 MiB memory limit of the
// CoreDNS Deployment (STOCK-8); with this client it is at 106–109 MiB. Listing and watching a few collections needs none of
// that: a GET, a JSON body, and newline-delimited JSON events on a chunked
// response. connection.ts turns the plugin's options (in-cluster, endpoint +
// tls, kubeconfig) into a ClientConfig; only kubeconfigs that need exec or
// auth-provider plugins (or a proxy-url) load client-node, and then only to
// authenticate the requests made here.
//
// The contract:
//
// - list(path, query, signal) → one page: { items, metadata: { resourceVersion,
//   continue? } }. Pagination (limit / continue) is the caller's, so that each
//   page can be converted and dropped before the next one is fetched.
//   Rejects with an ApiError (HTTP status + the API server's Status) for
//   non-2xx answers, with a TimeoutError after `timeoutMs`, with the network
//   error otherwise, and with signal.reason when the caller aborted.
// - watch(path, query, onEvent, signal) → resolves (never rejects) once the
//   watch is over, with how it ended:
//     closed   the server ended the stream (timeoutSeconds, shutdown)
//     gone     410 Gone, as an HTTP status or as an ERROR event with a Status
//              of code 410 (kube-apiserver's way): list again
//     timeout  no data at all (not even a bookmark) for `inactivityMs`
//     aborted  the caller's signal
//     error    anything else: an HTTP error status, an ERROR event with
//              another code, a network error, a broken stream, a bad line
//   onEvent(type, object) gets ADDED, MODIFIED, DELETED and BOOKMARK events;
//   onOpen() is called once the server has answered 200.
// - Credentials are applied to every request (token files are read again
//   each time: bound service-account tokens rotate, KP-5); after a 401 they
//   may be refreshed and the request is then retried once at once.
// - One keep-alive agent per client. A request that fails with ECONNRESET on
//   a reused idle connection (the server closed it as we sent) is retried
//   once, as Go's transport does for idempotent requests.
// - KP-42 metrics (metrics.ts): every HTTP request that went out is counted
//   and timed, with its status or `<error>` when no response came back; a
//   list until its body is read, a watch until its response headers. Requests
//   cut short by the caller's signal (shutdown) are not recorded.

import http from 'node:http';
import https from 'node:https';
import { STATUS_CODES } from 'node:http';
import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { hostLabel, startRestRequest } from './metrics.ts';

// ---------------------------------------------------------------------------
// Configuration

export interface TlsOptions {
  /** CA bundle to verify the server with (PEM); default: Node's root store. */
  ca?: string | Buffer;
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** false: do not verify the server's certificate (insecure-skip-tls-verify). */
  rejectUnauthorized?: boolean;
  /** TLS server name (SNI and verification) when not the URL's host. */
  servername?: string;
}

/** What credentials add to one request. */
export interface RequestAuth {
  headers: Record<string, string | string[]>;
  tls: TlsOptions;
  /** An agent to use instead of the client's keep-alive agent (a proxy agent). */
  agent?: http.Agent;
}

export interface Credentials {
  /**
   * Adds headers and TLS material to a request about to go out; called for
   * every request. Throwing fails the request before anything is sent.
   */
  apply(request: RequestAuth): void | Promise<void>;
  /**
   * After a 401: brings the credentials up to date (e.g. re-reads a token
   * file) and says whether they changed, in which case the request is
   * retried once at once.
   */
  refresh?(): boolean | Promise<boolean>;
}

export interface ClientConfig {
  /** The API server: http(s)://host[:port][/path-prefix]. */
  server: string;
  /** TLS options for every request (credentials may add to them). */
  tls?: TlsOptions;
  credentials?: Credentials;
  userAgent?: string;
}

export type QueryValue = string | number | boolean | null | undefined;
/** Query parameters; null and undefined ones are left out. */
export type Query = Record<string, QueryValue>;

export interface ListPage {
  items: unknown[];
  metadata: { resourceVersion: string; continue?: string };
}

export interface ListOptions {
  /** Abort the request (headers and body) after this long; default 60 s. */
  timeoutMs?: number;
}

export interface WatchOptions {
  /** End the watch (outcome `timeout`) after this long without any data; default 150 s. */
  inactivityMs?: number;
  /** Called once the server has accepted the watch (HTTP 200). */
  onOpen?(): void;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchOutcome {
  kind: 'closed' | 'gone' | 'timeout' | 'aborted' | 'error';
  /** ADDED/MODIFIED/DELETED/BOOKMARK events delivered to onEvent. */
  events: number;
  /** The server answered 200 (the watch was established). */
  opened: boolean;
  /** For `error` (and `gone`: the 410's ApiError). */
  error?: unknown;
}

export interface ApiClient {
  /** The server URL as configured. */
  readonly server: string;
  list(path: string, query: Query, signal?: AbortSignal, options?: ListOptions): Promise<ListPage>;
  watch(
    path: string,
    query: Query,
    onEvent: (type: WatchEventType, object: unknown) => void,
    signal?: AbortSignal,
    options?: WatchOptions,
  ): Promise<WatchOutcome>;
  /** Closes idle keep-alive connections; open requests are not affected. */
  close(): void;
}

export const DEFAULT_LIST_TIMEOUT_MS = 60_000;
/** kube-apiserver sends a bookmark about once a minute to watches that allow them. */
export const DEFAULT_WATCH_INACTIVITY_MS = 150_000;

// ---------------------------------------------------------------------------
// Errors

/** A Kubernetes Status object, as the API server sends with errors. */
export interface ApiStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: unknown;
}

/** The API server answered with an error: HTTP status (or a watch ERROR event's code) and its Status. */
export class ApiError extends Error {
  /** HTTP status code (for a watch ERROR event, the Status's code). */
  readonly statusCode: number;
  /** The Status object, when the body was one. */
  readonly status: ApiStatus | null;
  /** The server's message: the Status's message, or the body's text. */
  readonly serverMessage: string | null;

  constructor(statusCode: number, status: ApiStatus | null, serverMessage: string | null) {
    const text = STATUS_CODES[statusCode] ?? 'error';
    // "401 Unauthorized", not "401 Unauthorized: Unauthorized" when the message only repeats the status.
    const repeats = serverMessage !== null && serverMessage.toLowerCase() === text.toLowerCase();
    super(`${statusCode} ${text}${serverMessage && !repeats ? `: ${serverMessage}` : ''}`);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.status = status;
    this.serverMessage = serverMessage;
  }
}

/** A request that took longer than allowed (list timeoutMs). */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

function isStatus(value: unknown): value is ApiStatus {
  return typeof value === 'object' && value !== null && (value as ApiStatus).kind === 'Status';
}

/** The ApiError for a non-2xx answer with this body. */
function errorFromBody(statusCode: number, body: string): ApiError {
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(body);
  } catch {
    // not JSON: a proxy's error page, say
  }
  if (isStatus(parsed)) return new ApiError(statusCode, parsed, typeof parsed.message === 'string' && parsed.message ? parsed.message : null);
  const text = body.trim().replace(/\s+/g, ' ');
  return new ApiError(statusCode, null, text ? (text.length > 200 ? `${text.slice(0, 200)}…` : text) : null);
}

/** The HTTP status of an error from this client (ApiError), or null. */
export function statusCodeOf(err: unknown): number | null {
  return err instanceof ApiError ? err.statusCode : null;
}

// ---------------------------------------------------------------------------
// Credentials

/** A fixed bearer token. */
export function bearerToken(token: string): Credentials {
  return {
    apply(request) {
      request.headers.authorization = `Bearer ${token}`;
    },
  };
}

/**
 * Reads a file on every call, keeping the last good content for when the
 * file is briefly missing (mid-rotation). The first read must succeed.
 */
export function fileReader(file: string, what: string): { read(): Promise<Buffer>; last(): Buffer | null } {
  let lastGood: Buffer | null = null;
  return {
    async read() {
      try {
        lastGood = await readFile(file);
      } catch (err) {
        if (!lastGood) throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`);
      }
      return lastGood;
    },
    last: () => lastGood,
  };
}

/**
 * A bearer token read from a file for every request (KP-5: bound
 * service-account tokens rotate; kubeconfig token-file). After a 401 the
 * file is read again, and the request retried if the token changed.
 */
export function tokenFile(file: string): Credentials {
  const reader = fileReader(file, 'token file');
  let sent = '';
  const token = async () => (await reader.read()).toString('utf8').trim();
  return {
    async apply(request) {
      sent = await token();
      request.headers.authorization = `Bearer ${sent}`;
    },
    async refresh() {
      try {
        return (await token()) !== sent;
      } catch {
        return false;
      }
    },
  };
}

/** HTTP basic authentication (kubeconfig username/password). */
export function basicAuth(username: string, password: string): Credentials {
  const value = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  return {
    apply(request) {
      request.headers.authorization = value;
    },
  };
}

/** Fixed extra headers (e.g. Impersonate-User). */
export function extraHeaders(headers: Record<string, string | string[]>): Credentials {
  return {
    apply(request) {
      Object.assign(request.headers, headers);
    },
  };
}

/**
 * TLS material from files, read again for every request (a rotated client
 * certificate or CA is picked up by the next connection).
 */
export function tlsFiles(files: { ca?: string; cert?: string; key?: string }): Credentials {
  const readers = {
    ca: files.ca ? fileReader(files.ca, 'CA certificate') : null,
    cert: files.cert ? fileReader(files.cert, 'client certificate') : null,
    key: files.key ? fileReader(files.key, 'client key') : null,
  };
  return {
    async apply(request) {
      if (readers.ca) request.tls.ca = await readers.ca.read();
      if (readers.cert) request.tls.cert = await readers.cert.read();
      if (readers.key) request.tls.key = await readers.key.read();
    },
  };
}

/** Several credentials applied in order; refreshed together. */
export function combineCredentials(...parts: (Credentials | null | undefined)[]): Credentials {
  const list = parts.filter((p): p is Credentials => !!p);
  return {
    async apply(request) {
      for (const p of list) await p.apply(request);
    },
    async refresh() {
      let changed = false;
      for (const p of list) if (p.refresh && (await p.refresh())) changed = true;
      return changed;
    },
  };
}

// ---------------------------------------------------------------------------
// The client

export function createApiClient(config: ClientConfig): ApiClient {
  return new HttpApiClient(config);
}

interface Exchange {
  req: http.ClientRequest;
  res: http.IncomingMessage;
}

/** The metrics observation of the request in flight (KP-42); records once. */
interface Observation {
  record: ((status: number | null) => void) | null;
}

function noop(): void {}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

/** Combines the caller's signal (optional) with a local controller; `dispose` removes the link. */
function linkSignal(outer: AbortSignal | undefined, inner: AbortController): () => void {
  if (!outer) return noop;
  if (outer.aborted) {
    inner.abort(abortReason(outer));
    return noop;
  }
  const onAbort = () => inner.abort(abortReason(outer));
  outer.addEventListener('abort', onAbort, { once: true });
  return () => outer.removeEventListener('abort', onAbort);
}

/** Reads a whole response body as text; rejects if the connection breaks first. */
function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.once('close', () => {
      if (!res.complete) reject(new Error('connection closed before the response was complete'));
    });
  });
}

class HttpApiClient implements ApiClient {
  readonly server: string;
  private readonly host: string;
  private readonly secure: boolean;
  private readonly hostname: string;
  private readonly port: number;
  private readonly prefix: string;
  private readonly tls: TlsOptions;
  private readonly credentials: Credentials | null;
  private readonly userAgent: string;
  private readonly agent: http.Agent;

  constructor(config: ClientConfig) {
    let url: URL;
    try {
      url = new URL(config.server);
    } catch {
      throw new Error(`${config.server}: not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${config.server}: expected an http:// or https:// URL`);
    this.server = config.server;
    this.host = hostLabel(config.server);
    this.secure = url.protocol === 'https:';
    this.hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = url.port ? Number(url.port) : this.secure ? 443 : 80;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.tls = config.tls ?? {};
    this.credentials = config.credentials ?? null;
    this.userAgent = config.userAgent ?? `clusterdns (node ${process.version})`;
    // keepAliveMsecs: TCP keep-alive probes after 30 s idle (as client-go's dialer), so a
    // watch on a connection that died silently fails instead of hanging.
    const agentOptions = { keepAlive: true, keepAliveMsecs: 30_000 };
    this.agent = this.secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
  }

  close(): void {
    this.agent.destroy();
  }

  async list(path: string, query: Query, signal?: AbortSignal, options: ListOptions = {}): Promise<ListPage> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_LIST_TIMEOUT_MS;
    const local = new AbortController();
    const unlink = linkSignal(signal, local);
    const timeout = new TimeoutError(`timed out after ${timeoutMs} ms`);
    const timer = setTimeout(() => local.abort(timeout), timeoutMs);
    const observation: Observation = { record: null };
    try {
      const { res } = await this.open(path, query, local.signal, observation);
      const body = await readBody(res);
      const status = res.statusCode ?? 0;
      observation.record?.(status);
      if (status < 200 || status > 299) throw errorFromBody(status, body);
      let page: unknown;
      try {
        page = JSON.parse(body);
      } catch (err) {
        throw new Error(`invalid JSON in the list response: ${(err as Error).message}`);
      }
      const items = (page as { items?: unknown } | null)?.items;
      if (!page || typeof page !== 'object' || (items !== null && items !== undefined && !Array.isArray(items))) {
        throw new Error('the list response is not a list');
      }
      const metadata = (page as { metadata?: { resourceVersion?: unknown; continue?: unknown } }).metadata ?? {};
      return {
        items: (items as unknown[] | null | undefined) ?? [],
        metadata: {
          resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
          ...(typeof metadata.continue === 'string' && metadata.continue ? { continue: metadata.continue } : {}),
        },
      };
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal); // the caller's: not a request outcome
      observation.record?.(null);
      if (local.signal.aborted) throw timeout;
      throw err;
    } finally {
      clearTimeout(timer);
      unlink();
    }
  }

  async watch(
    path: string,
    query: Query,
    onEvent: (type: WatchEventType, object: unknown) => void,
    signal?: AbortSignal,
    options: WatchOptions = {},
  ): Promise<WatchOutcome> {
    const inactivityMs = options.inactivityMs ?? DEFAULT_WATCH_INACTIVITY_MS;
    const local = new AbortController();
    const unlink = linkSignal(signal, local);
    let timedOut = false;
    let timer: NodeJS.Timeout | null = null;
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        local.abort(new TimeoutError(`no data for ${inactivityMs} ms`));
      }, inactivityMs);
    };
    let events = 0;
    let opened = false;
    const outcome = (kind: WatchOutcome['kind'], error?: unknown): WatchOutcome => {
      if (timer) clearTimeout(timer);
      unlink();
      return error === undefined ? { kind, events, opened } : { kind, events, opened, error };
    };
    // Ended by us, not by the server: the caller's abort, or nothing for inactivityMs.
    const interrupted = (): WatchOutcome | null => {
      if (signal?.aborted) return outcome('aborted');
      if (timedOut) return outcome('timeout');
      return null;
    };

    arm();
    const observation: Observation = { record: null };
    let exchange: Exchange;
    try {
      exchange = await this.open(path, { ...query, watch: 'true' }, local.signal, observation);
    } catch (err) {
      if (signal?.aborted) return outcome('aborted');
      observation.record?.(null);
      return interrupted() ?? outcome('error', err);
    }
    const { req, res } = exchange;
    const status = res.statusCode ?? 0;
    observation.record?.(status);
    if (status !== 200) {
      let body = '';
      try {
        body = await readBody(res);
      } catch {
        // the status says enough
      }
      const error = errorFromBody(status, body);
      return interrupted() ?? outcome(status === 410 ? 'gone' : 'error', error);
    }
    opened = true;
    try {
      options.onOpen?.();
    } catch {
      // the caller's business
    }

    return new Promise<WatchOutcome>((resolve) => {
      const decoder = new StringDecoder('utf8');
      let buffered = ''; // never holds a '\n'
      let done = false;
      const finish = (result: WatchOutcome, closeConnection: boolean) => {
        if (done) return;
        done = true;
        buffered = '';
        if (closeConnection) req.destroy();
        resolve(result);
      };
      const handleLine = (line: string) => {
        if (line.trim() === '') return;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line);
        } catch {
          finish(outcome('error', new Error(`invalid watch event: ${line.length > 100 ? `${line.slice(0, 100)}…` : line}`)), true);
          return;
        }
        const { type, object } = event ?? {};
        if (type === 'ERROR') {
          const st = isStatus(object) ? object : null;
          const code = typeof st?.code === 'number' ? st.code : 500;
          const error = new ApiError(code, st, st?.message || null);
          finish(outcome(code === 410 ? 'gone' : 'error', error), true);
          return;
        }
        if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED' && type !== 'BOOKMARK') return;
        events++;
        try {
          onEvent(type, object);
        } catch (err) {
          finish(outcome('error', err), true);
        }
      };
      res.on('data', (chunk: Buffer) => {
        if (done) return;
        arm();
        const from = buffered.length;
        buffered += decoder.write(chunk);
        let start = 0;
        for (let nl = buffered.indexOf('\n', from); nl !== -1 && !done; nl = buffered.indexOf('\n', start)) {
          const line = buffered.slice(start, nl);
          start = nl + 1;
          handleLine(line);
        }
        if (!done) buffered = start === 0 ? buffered : buffered.slice(start);
      });
      res.once('end', () => {
        if (done) return;
        const rest = buffered + decoder.end();
        buffered = '';
        handleLine(rest); // a last event without its newline
        finish(outcome('closed'), false);
      });
      const broken = (err?: Error) => {
        if (done) return;
        finish(interrupted() ?? outcome('error', err ?? new Error('connection closed before the watch ended')), true);
      };
      res.on('error', broken);
      res.once('close', () => {
        if (!res.complete) broken();
      });
    });
  }

  /**
   * Sends a GET and resolves with the response once its headers are in
   * (any status). Handles credentials, one retry after a 401 when the
   * credentials changed, and one retry on a stale keep-alive connection.
   */
  private async open(path: string, query: Query, signal: AbortSignal, observation: Observation): Promise<Exchange> {
    let refreshed = false;
    let resent = false;
    for (;;) {
      signal.throwIfAborted();
      const auth: RequestAuth = { headers: {}, tls: { ...this.tls } };
      await this.credentials?.apply(auth);
      signal.throwIfAborted();
      observation.record ??= startRestRequest(this.host);
      let exchange: Exchange;
      try {
        exchange = await this.send(this.requestOptions(path, query, auth), signal);
      } catch (err) {
        if (!resent && !signal.aborted && (err as { reusedSocket?: boolean }).reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET') {
          resent = true;
          continue;
        }
        throw err;
      }
      // The body stays unread (paused) while the credentials are refreshed: the caller reads it if there is no retry.
      if (exchange.res.statusCode === 401 && !refreshed && this.credentials?.refresh && (await this.credentials.refresh())) {
        refreshed = true;
        exchange.res.resume();
        observation.record(401);
        observation.record = null;
        continue;
      }
      return exchange;
    }
  }

  private requestOptions(path: string, query: Query, auth: RequestAuth): https.RequestOptions {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== null && value !== undefined) params.set(key, String(value));
    const search = params.size > 0 ? `?${params}` : '';
    const options: https.RequestOptions = {
      method: 'GET',
      hostname: this.hostname,
      port: this.port,
      path: `${this.prefix}${path.startsWith('/') ? path : `/${path}`}${search}`,
      headers: { accept: 'application/json', 'user-agent': this.userAgent, ...auth.headers },
      agent: auth.agent ?? this.agent,
    };
    if (this.secure) {
      const { ca, cert, key, rejectUnauthorized, servername } = auth.tls;
      if (ca !== undefined) options.ca = ca;
      if (cert !== undefined) options.cert = cert;
      if (key !== undefined) options.key = key;
      if (rejectUnauthorized !== undefined) options.rejectUnauthorized = rejectUnauthorized;
      if (servername !== undefined) options.servername = servername;
    }
    return options;
  }

  private send(options: https.RequestOptions, signal: AbortSignal): Promise<Exchange> {
    return new Promise((resolve, reject) => {
      let req: http.ClientRequest;
      try {
        req = this.secure ? https.request(options) : http.request(options);
      } catch (err) {
        reject(err); // e.g. a client key that does not match its certificate
        return;
      }
      const onAbort = () => req.destroy(abortReason(signal) as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', onAbort));
      // Errors after the response are seen on the response; keep this listener so none is unhandled.
      req.on('error', (err) => reject(Object.assign(err, { reusedSocket: req.reusedSocket })));
      req.once('response', (res) => resolve({ req, res }));
      req.end();
    });
  }
}
