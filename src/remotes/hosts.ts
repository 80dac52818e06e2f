/**
 * Registry host configuration in containerd's `certs.d/<host>/hosts.toml` format
 * (containerd docs/hosts.md): which endpoints serve a registry's namespace, in which order,
 * for which operations, with which TLS settings and extra headers.
 *
 * ```toml
 * server = "https://registry.k8s.io"          # the upstream, tried last
 *
 * [host."http://127.0.0.1:5000"]              # mirrors, tried in file order first
 *   capabilities = ["pull", "resolve"]
 *   header = { x-team = "infra" }
 *   override_path = false                     # true: the URL's path is the API root
 * ```
 *
 * @example
 * ```ts
 * import { loadHosts } from "./hosts.ts";
 * const hosts = await loadHosts("/etc/k8scontainerd/certs.d", "registry.k8s.io");
 * for (const h of hosts) console.log(h.url, h.capabilities);
 * ```
 * @module
 */
import { join } from "node:path";
import { parse } from "smol-toml";
import { InvalidArgumentError } from "../errdefs/errors.ts";

/** What a host may be used for: resolving tags, pulling content by digest, pushing. */
export type Capability = "pull" | "resolve" | "push";

const ALL_CAPABILITIES: readonly Capability[] = ["pull", "resolve", "push"];

/** A TLS client certificate and its key (PEM file paths). */
export interface ClientCertPaths {
  /** PEM certificate path. */
  cert: string;
  /** Omitted when the certificate file also holds the key. */
  key?: string;
}

/**
 * One endpoint that serves a registry's repositories.
 *
 * @example
 * ```ts
 * const h: RegistryHost = {
 *   host: "127.0.0.1:5000",
 *   url: "http://127.0.0.1:5000/v2",
 *   capabilities: ["pull", "resolve"],
 *   headers: {},
 *   skipVerify: false,
 *   overridePath: false,
 * };
 * ```
 */
export interface RegistryHost {
  /** `host[:port]` of the endpoint: the key for credentials and the name in messages. */
  host: string;
  /** The API root without a trailing slash: `<scheme>://<host>/v2`, or the given path with
   * override_path. Requests go to `<url>/<repository>/manifests/<ref>` and so on. */
  url: string;
  /** What this host may be used for ("pull", "resolve", "push"). */
  capabilities: Capability[];
  /** Extra request headers (hosts.toml `header`); several values are joined with ", ". */
  headers: Record<string, string>;
  /** hosts.toml `skip_verify`. Deno cannot turn off verification per client; see registry.ts. */
  skipVerify: boolean;
  /** CA certificate files (PEM) trusted in addition to the system roots. */
  caPath?: string[];
  /** TLS client certificates (mutual TLS). */
  clientCerts?: ClientCertPaths[];
  /** True when `url`'s path is the API root itself (no /v2 appended). */
  overridePath: boolean;
}

/** Options of {@linkcode loadHosts}. */
export interface LoadHostsOptions {
  /** Hosts (`host` or `host:port`) to reach over plain HTTP when no hosts.toml says otherwise. */
  plainHttp?: string[];
}

/** The name of the fallback directory containerd consults when no host directory exists. */
export const DEFAULT_HOST_DIR = "_default";

/**
 * True for hosts that are this machine (localhost, 127.0.0.0/8, ::1), with or without a port:
 * like containerd, these default to plain HTTP.
 *
 * @example
 * ```ts
 * isLoopbackHost("127.0.0.1:5000"); // true
 * isLoopbackHost("registry.k8s.io"); // false
 * ```
 */
export function isLoopbackHost(host: string): boolean {
  const h = hostname(host);
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The host without port and IPv6 brackets. */
function hostname(host: string): string {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    return end > 0 ? host.slice(1, end) : host;
  }
  const colon = host.lastIndexOf(":");
  return colon >= 0 && host.indexOf(":") === colon ? host.slice(0, colon) : host;
}

/** The endpoint a registry name stands for when nothing is configured. */
function defaultServer(host: string, plainHttp: string[]): string {
  if (host === "docker.io") return "https://registry-1.docker.io";
  const insecure = isLoopbackHost(host) || plainHttp.includes(host) ||
    plainHttp.includes(hostname(host));
  return `${insecure ? "http" : "https"}://${host}`;
}

/**
 * containerd looks in `<host>_<port>_` (a Windows-safe spelling) before `<host>:<port>`, then
 * in `_default`.
 */
function candidateDirs(configPath: string, host: string): string[] {
  const dirs: string[] = [];
  const colon = host.lastIndexOf(":");
  if (colon > 0 && !host.endsWith("]")) {
    dirs.push(join(configPath, `${host.slice(0, colon)}_${host.slice(colon + 1)}_`));
  }
  dirs.push(join(configPath, host), join(configPath, DEFAULT_HOST_DIR));
  return dirs;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    throw e;
  }
}

/** The per-endpoint keys of hosts.toml, as found at the top level or under `[host."URL"]`. */
interface HostSettings {
  capabilities?: Capability[];
  skipVerify?: boolean;
  ca?: string[];
  client?: ClientCertPaths[];
  header?: Record<string, string>;
  overridePath?: boolean;
}

class HostsFileError extends InvalidArgumentError {
  constructor(file: string, key: string, problem: string) {
    super(`${file}: key "${key}": ${problem}`);
  }
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function stringList(file: string, key: string, v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new HostsFileError(file, key, "expected a string or an array of strings");
}

/** Reads the endpoint keys of one table, validating their types. */
function readSettings(file: string, prefix: string, t: Record<string, unknown>): HostSettings {
  const key = (k: string) => prefix ? `${prefix}.${k}` : k;
  const out: HostSettings = {};
  if (t.capabilities !== undefined) {
    const caps = stringList(file, key("capabilities"), t.capabilities);
    for (const c of caps) {
      if (!(ALL_CAPABILITIES as readonly string[]).includes(c)) {
        throw new HostsFileError(
          file,
          key("capabilities"),
          `unknown capability "${c}": expected "pull", "resolve" or "push"`,
        );
      }
    }
    out.capabilities = caps as Capability[];
  }
  if (t.skip_verify !== undefined) {
    if (typeof t.skip_verify !== "boolean") {
      throw new HostsFileError(file, key("skip_verify"), "expected true or false");
    }
    out.skipVerify = t.skip_verify;
  }
  if (t.override_path !== undefined) {
    if (typeof t.override_path !== "boolean") {
      throw new HostsFileError(file, key("override_path"), "expected true or false");
    }
    out.overridePath = t.override_path;
  }
  if (t.ca !== undefined) out.ca = stringList(file, key("ca"), t.ca);
  if (t.client !== undefined) out.client = clientList(file, key("client"), t.client);
  if (t.header !== undefined) {
    if (!isTable(t.header)) {
      throw new HostsFileError(file, key("header"), "expected a table of header = value(s)");
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(t.header)) {
      headers[name] = stringList(file, key(`header.${name}`), value).join(", ");
    }
    out.header = headers;
  }
  return out;
}

/** `client` is "cert.pem", ["cert.pem", "key.pem"], or a list of either (containerd's forms). */
function clientList(file: string, key: string, v: unknown): ClientCertPaths[] {
  if (typeof v === "string") return [{ cert: v }];
  if (!Array.isArray(v)) {
    throw new HostsFileError(file, key, "expected a path, a [cert, key] pair or a list of those");
  }
  if (v.length === 2 && v.every((x) => typeof x === "string")) return [{ cert: v[0], key: v[1] }];
  return v.map((item) => {
    if (typeof item === "string") return { cert: item };
    if (
      Array.isArray(item) && item.length === 2 && item.every((x) => typeof x === "string")
    ) return { cert: item[0] as string, key: item[1] as string };
    throw new HostsFileError(file, key, "expected a path, a [cert, key] pair or a list of those");
  });
}

/** Turns a URL and its settings into a host, resolving relative certificate paths. */
function makeHost(
  file: string,
  key: string,
  server: string,
  s: HostSettings,
  baseDir: string,
): RegistryHost {
  // containerd: an endpoint without a scheme is HTTPS.
  const withScheme = /^https?:\/\//.test(server) ? server : `https://${server}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new HostsFileError(file, key, `"${server}" is not a URL`);
  }
  if (u.search || u.hash) {
    throw new HostsFileError(file, key, `"${server}": query and fragment are not allowed`);
  }
  let path = u.pathname.replace(/\/+$/, "");
  const overridePath = s.overridePath ?? false;
  if (!overridePath && !path.endsWith("/v2")) path += "/v2";
  const abs = (p: string) => p.startsWith("/") ? p : join(baseDir, p);
  return {
    host: u.host,
    url: `${u.protocol}//${u.host}${path}`,
    capabilities: [...(s.capabilities ?? ALL_CAPABILITIES)],
    headers: { ...(s.header ?? {}) },
    skipVerify: s.skipVerify ?? false,
    caPath: s.ca?.map(abs),
    clientCerts: s.client?.map((c) => ({ cert: abs(c.cert), key: c.key && abs(c.key) })),
    overridePath,
  };
}

/**
 * Parses one hosts.toml text. `host` is the registry namespace it configures (for the default
 * server when the file has no `server`); `file` names the file in errors; relative `ca` and
 * `client` paths are taken relative to `baseDir`.
 *
 * @example
 * ```ts
 * const hosts = parseHostsToml(
 *   'server = "http://127.0.0.1:5000"\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n',
 *   "registry.k8s.io",
 *   "/etc/k8scontainerd/certs.d/registry.k8s.io/hosts.toml",
 * );
 * hosts.map((h) => h.url); // ["http://127.0.0.1:5000/v2", "http://127.0.0.1:5000/v2"]
 * ```
 */
export function parseHostsToml(
  text: string,
  host: string,
  file: string,
  opts: LoadHostsOptions & { baseDir?: string } = {},
): RegistryHost[] {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    const pos = e as { line?: number; column?: number };
    const where = typeof pos.line === "number" ? ` (line ${pos.line}, column ${pos.column})` : "";
    throw new InvalidArgumentError(`${file}: ${msg}${where}`, { cause: e });
  }
  const baseDir = opts.baseDir ?? file.replace(/\/[^/]*$/, "");
  const hosts: RegistryHost[] = [];
  if (doc.host !== undefined) {
    if (!isTable(doc.host)) {
      throw new HostsFileError(file, "host", 'expected tables [host."<URL>"]');
    }
    // JS objects keep string keys in insertion order, which is file order: mirrors are tried
    // in the order they are written, as containerd does.
    for (const [url, table] of Object.entries(doc.host)) {
      const key = `host."${url}"`;
      if (!isTable(table)) throw new HostsFileError(file, key, "expected a table");
      hosts.push(makeHost(file, key, url, readSettings(file, key, table), baseDir));
    }
  }
  if (doc.server !== undefined && typeof doc.server !== "string") {
    throw new HostsFileError(file, "server", "expected a URL string");
  }
  // The upstream always comes last; top-level settings apply to it.
  const server = (doc.server as string | undefined) ?? defaultServer(host, opts.plainHttp ?? []);
  hosts.push(makeHost(file, "server", server, readSettings(file, "", doc), baseDir));
  return hosts;
}

/** Docker's certs.d layout without hosts.toml: *.crt are CAs, *.cert + *.key client pairs. */
async function legacyCerts(dir: string): Promise<Pick<RegistryHost, "caPath" | "clientCerts">> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  names.sort();
  const ca = names.filter((n) => n.endsWith(".crt")).map((n) => join(dir, n));
  const clients = names.filter((n) => n.endsWith(".cert")).map((n) => {
    const key = n.replace(/\.cert$/, ".key");
    if (!names.includes(key)) {
      throw new InvalidArgumentError(`${join(dir, n)}: client certificate without ${key}`);
    }
    return { cert: join(dir, n), key: join(dir, key) };
  });
  return {
    caPath: ca.length ? ca : undefined,
    clientCerts: clients.length ? clients : undefined,
  };
}

/**
 * The endpoints to try, in order, for registry `host` (`name` or `name:port`, as in image
 * references). Looks for `<configPath>/<host>/hosts.toml` (also `<host>_<port>_`), then
 * `<configPath>/_default`; with no configuration the registry itself is the only endpoint,
 * over HTTPS, or plain HTTP for loopback hosts and those in `opts.plainHttp`; docker.io means
 * https://registry-1.docker.io.
 *
 * @example
 * ```ts
 * const hosts = await loadHosts("/etc/k8scontainerd/certs.d", "127.0.0.1:5000");
 * hosts[0].url; // "http://127.0.0.1:5000/v2" unless a hosts.toml says otherwise
 * ```
 */
export async function loadHosts(
  configPath: string | undefined,
  host: string,
  opts: LoadHostsOptions = {},
): Promise<RegistryHost[]> {
  const fallback = () => [
    makeHost("", "server", defaultServer(host, opts.plainHttp ?? []), {}, "/"),
  ];
  if (!configPath) return fallback();
  for (const dir of candidateDirs(configPath, host)) {
    if (!(await isDir(dir))) continue;
    const file = join(dir, "hosts.toml");
    let text: string | undefined;
    try {
      text = await Deno.readTextFile(file);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (text !== undefined) return parseHostsToml(text, host, file, { ...opts, baseDir: dir });
    const certs = await legacyCerts(dir);
    return fallback().map((h) => ({ ...h, ...certs }));
  }
  return fallback();
}
