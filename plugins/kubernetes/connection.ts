// How to reach the API server (KP-5..7): the plugin's `kubeconfig`,
// `endpoint` + `tls` options, or the in-cluster service account, turned into
// a ClientConfig for the lean list/watch client (http-client.ts).
//
// - kubeconfig PATH [CONTEXT] wins over endpoint. The file is parsed here
//   (with the `yaml` package, loaded only then): cluster server,
//   certificate-authority(-data), insecure-skip-tls-verify, tls-server-name;
//   user token, token-file, client-certificate(-data) / client-key(-data),
//   username / password, as / as-groups (impersonation). Relative file paths
//   are taken from the kubeconfig's directory, as kubectl does.
//   Only a user with `exec` or `auth-provider` (oidc, gcp, azure), or a
//   cluster with `proxy-url`, needs more: then @kubernetes/client-node is
//   imported (lazily: 85–90 MB of RSS) and its KubeConfig prepares each
//   request (headers, TLS material, the proxy agent) for the same lean
//   list/watch code.
// - endpoint URL (http or https), with tls CERT KEY CACERT for mutual TLS.
// - neither: in-cluster, as client-go's rest.InClusterConfig: https to
//   KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT, verified with the
//   service account's ca.crt, with its token.
//
// Token files (in-cluster, kubeconfig token-file) are read again for every
// request and after a 401 (KP-5: bound service-account tokens rotate); TLS
// files are read again for every request too, so that rotated certificates
// are used by the next connection.

import fs from 'node:fs';
import type https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { Cluster, KubeConfig, User } from '@kubernetes/client-node';
import {
  basicAuth,
  bearerToken,
  combineCredentials,
  extraHeaders,
  tlsFiles,
  tokenFile,
  type ClientConfig,
  type Credentials,
  type TlsOptions,
} from './http-client.ts';
import type { ApiConnection } from './model.ts';

export interface ConnectionEnvironment {
  /** In-cluster: where token and ca.crt are. */
  serviceAccountDir: string;
  /** In-cluster: where KUBERNETES_SERVICE_HOST/PORT are read. */
  env: Record<string, string | undefined>;
}

export const IN_CLUSTER: ConnectionEnvironment = {
  serviceAccountDir: '/var/run/secrets/kubernetes.io/serviceaccount',
  env: process.env,
};

export interface ResolvedConnection {
  config: ClientConfig;
  /** The API server URL. */
  server: string;
  /** How it was configured, for logs. */
  description: string;
  /** @kubernetes/client-node was loaded to authenticate (exec, auth-provider, proxy-url). */
  clientNode: boolean;
}

function readable(file: string, what: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (err) {
    throw new Error(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** Builds the client configuration from the plugin's options. Rejects on unusable configuration. */
export async function resolveConnection(
  connection: ApiConnection,
  environment: ConnectionEnvironment = IN_CLUSTER,
): Promise<ResolvedConnection> {
  if (connection.kubeconfig) return fromKubeconfig(path.resolve(connection.kubeconfig.path), connection.kubeconfig.context);
  if (connection.endpoint) return fromEndpoint(connection.endpoint, connection.tls);
  return inCluster(environment);
}

// ---------------------------------------------------------------------------
// endpoint + tls

function fromEndpoint(endpoint: string, tls: ApiConnection['tls']): ResolvedConnection {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`endpoint ${endpoint}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`endpoint ${endpoint}: expected an http:// or https:// URL`);
  }
  const server = endpoint.replace(/\/+$/, '');
  let credentials: Credentials | undefined;
  if (tls) {
    const files = { cert: path.resolve(tls.cert), key: path.resolve(tls.key), ca: path.resolve(tls.ca) };
    readable(files.cert, 'tls client certificate');
    readable(files.key, 'tls client key');
    readable(files.ca, 'tls CA certificate');
    credentials = tlsFiles(files);
  }
  return { config: { server, credentials }, server, description: `endpoint ${server}`, clientNode: false };
}

// ---------------------------------------------------------------------------
// in-cluster

function inCluster(environment: ConnectionEnvironment): ResolvedConnection {
  const host = environment.env.KUBERNETES_SERVICE_HOST;
  const port = environment.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error(
      'unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined ' +
        '(outside a cluster, set endpoint or kubeconfig)',
    );
  }
  const token = path.join(environment.serviceAccountDir, 'token');
  const ca = path.join(environment.serviceAccountDir, 'ca.crt');
  readable(token, 'unable to load in-cluster configuration: service account token');
  const server = `https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  // Without ca.crt, client-go goes on with the system roots; so does this.
  const credentials = combineCredentials(tokenFile(token), fs.existsSync(ca) ? tlsFiles({ ca }) : null);
  return { config: { server, credentials }, server, description: `in-cluster ${server}`, clientNode: false };
}

// ---------------------------------------------------------------------------
// kubeconfig

type Entry = Record<string, unknown>;

function named(list: unknown, name: string, field: string): Entry | null {
  if (!Array.isArray(list)) return null;
  const found = list.find((e) => e && typeof e === 'object' && (e as Entry).name === name) as Entry | undefined;
  if (!found) return null;
  const value = found[field];
  return value && typeof value === 'object' ? (value as Entry) : {};
}

function str(entry: Entry, key: string): string | null {
  const value = entry[key];
  return typeof value === 'string' && value !== '' ? value : null;
}

async function fromKubeconfig(file: string, context: string | null): Promise<ResolvedConnection> {
  const fail = (message: string): never => {
    throw new Error(`kubeconfig ${file}: ${message}`);
  };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return fail((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message);
  }
  const { parse } = await import('yaml'); // only kubeconfig users pay for it
  let doc: Entry;
  try {
    const parsed: unknown = parse(text);
    doc = parsed && typeof parsed === 'object' ? (parsed as Entry) : {};
  } catch (err) {
    return fail((err as Error).message);
  }
  const contextName = context ?? str(doc, 'current-context');
  if (!contextName) return fail('no current-context (name one after the path)');
  const ctx = named(doc.contexts, contextName, 'context') ?? fail(`context "${contextName}" not found`);
  const clusterName = str(ctx, 'cluster') ?? fail(`context "${contextName}" names no cluster`);
  const cluster = named(doc.clusters, clusterName, 'cluster') ?? fail(`context "${contextName}" names unknown cluster "${clusterName}"`);
  const userName = str(ctx, 'user');
  const user = userName ? (named(doc.users, userName, 'user') ?? fail(`context "${contextName}" names unknown user "${userName}"`)) : {};
  const server = (str(cluster, 'server') ?? fail(`cluster "${clusterName}" has no server`)).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return fail(`cluster "${clusterName}": server ${server} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`cluster "${clusterName}": server ${server} is not an http:// or https:// URL`);
  const description = `kubeconfig ${file} context "${contextName}"`;
  const dir = path.dirname(file);
  const resolve = (p: string) => path.resolve(dir, p);

  // The user's own credentials, as far as they are files, data and headers.
  const parts: Credentials[] = [];
  const token = str(user, 'token');
  const tokenPath = str(user, 'token-file');
  const username = str(user, 'username');
  if (token) parts.push(bearerToken(token));
  else if (tokenPath) {
    readable(resolve(tokenPath), `kubeconfig ${file}: token-file`);
    parts.push(tokenFile(resolve(tokenPath)));
  } else if (username) parts.push(basicAuth(username, typeof user.password === 'string' ? user.password : ''));

  const tls: TlsOptions = {};
  const files: { ca?: string; cert?: string; key?: string } = {};
  const data = (entry: Entry, key: string): Buffer | null => {
    const value = str(entry, key);
    return value ? Buffer.from(value, 'base64') : null;
  };
  const caData = data(cluster, 'certificate-authority-data');
  const caFile = str(cluster, 'certificate-authority');
  if (caData) tls.ca = caData;
  else if (caFile) files.ca = resolve(caFile);
  const certData = data(user, 'client-certificate-data');
  const certFile = str(user, 'client-certificate');
  const keyData = data(user, 'client-key-data');
  const keyFile = str(user, 'client-key');
  if (certData) tls.cert = certData;
  else if (certFile) files.cert = resolve(certFile);
  if (keyData) tls.key = keyData;
  else if (keyFile) files.key = resolve(keyFile);
  if ((certData || certFile) && !(keyData || keyFile)) fail(`user "${userName}" has a client certificate but no client key`);
  if ((keyData || keyFile) && !(certData || certFile)) fail(`user "${userName}" has a client key but no client certificate`);
  if (files.ca) readable(files.ca, `kubeconfig ${file}: certificate-authority`);
  if (files.cert) readable(files.cert, `kubeconfig ${file}: client-certificate`);
  if (files.key) readable(files.key, `kubeconfig ${file}: client-key`);
  if (files.ca || files.cert || files.key) parts.push(tlsFiles(files));
  if (cluster['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;
  const serverName = str(cluster, 'tls-server-name');
  if (serverName) tls.servername = serverName;

  const impersonate: Record<string, string | string[]> = {};
  const as = str(user, 'as');
  if (as) impersonate['impersonate-user'] = as;
  if (Array.isArray(user['as-groups']) && user['as-groups'].length > 0) impersonate['impersonate-group'] = user['as-groups'].map(String);
  if (Object.keys(impersonate).length > 0) parts.push(extraHeaders(impersonate));

  if (user.exec || user['auth-provider'] || str(cluster, 'proxy-url')) {
    return viaClientNode(doc, file, contextName, server, description, tokenPath && !token ? tokenFile(resolve(tokenPath)) : null);
  }
  return {
    config: { server, tls, credentials: parts.length > 0 ? combineCredentials(...parts) : undefined },
    server,
    description,
    clientNode: false,
  };
}

// ---------------------------------------------------------------------------
// exec, auth-provider, proxy-url: client-node prepares the requests

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: Promise<ClientNode> | null = null;

/** client-node, imported on first use only (it adds 85–90 MB of RSS). */
export function loadClientNode(): Promise<ClientNode> {
  clientNode ??= import('@kubernetes/client-node');
  return clientNode;
}

/**
 * client-node refuses plain-http servers unless insecure-skip-tls-verify is
 * set; with http there is no TLS to verify, so set it (kubectl accepts them).
 */
function allowHttp(cluster: Cluster): Cluster {
  return cluster.server.startsWith('http:') ? { ...cluster, skipTLSVerify: true } : cluster;
}

async function viaClientNode(
  doc: Entry,
  file: string,
  contextName: string,
  server: string,
  description: string,
  rereadToken: Credentials | null,
): Promise<ResolvedConnection> {
  const { KubeConfig } = await loadClientNode();
  const kc: KubeConfig = new KubeConfig();
  try {
    // token-file: client-node would read it once, relative to the working directory; it is read
    // per request here instead (rereadToken, applied after client-node's headers).
    const copy = structuredClone(doc) as { users?: { user?: Entry }[] };
    for (const u of copy.users ?? []) if (u?.user) delete u.user['token-file'];
    kc.loadFromString(JSON.stringify(copy));
  } catch (err) {
    throw new Error(`kubeconfig ${file}: ${(err as Error).message}`);
  }
  kc.makePathsAbsolute(path.dirname(file));
  kc.loadFromOptions({
    clusters: kc.getClusters().map(allowHttp),
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: contextName,
  });
  const proxied = !!kc.getCurrentCluster()?.proxyUrl;
  const user: User | null = kc.getCurrentUser();
  const credentials: Credentials = {
    async apply(request) {
      const opts: https.RequestOptions & { headers: Record<string, string | string[] | number> } = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      for (const [key, value] of Object.entries(opts.headers)) request.headers[key.toLowerCase()] = typeof value === 'number' ? String(value) : value;
      if (opts.auth) request.headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
      if (opts.ca) request.tls.ca = opts.ca as string | Buffer;
      if (opts.cert) request.tls.cert = opts.cert as string | Buffer;
      if (opts.key) request.tls.key = opts.key as string | Buffer;
      if (opts.rejectUnauthorized !== undefined) request.tls.rejectUnauthorized = opts.rejectUnauthorized;
      if (opts.servername) request.tls.servername = opts.servername;
      // Its agent only for a proxy; otherwise the client's own keep-alive agent.
      if (proxied && typeof opts.agent === 'object') request.agent = opts.agent;
      await rereadToken?.apply(request);
    },
    refresh: rereadToken?.refresh ? () => rereadToken.refresh!() : undefined,
  };
  const how = user?.exec ? 'exec' : user?.authProvider ? `auth-provider ${user.authProvider.name ?? ''}`.trim() : 'proxy-url';
  return { config: { server, credentials }, server, description: `${description} (${how} through @kubernetes/client-node)`, clientNode: true };
}
