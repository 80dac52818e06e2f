/**
 * Registry authentication after the distribution token spec and containerd's docker
 * authorizer: `WWW-Authenticate` challenges (Basic, Bearer), credentials per host, Bearer token
 * fetches with a per-(host, scope) cache, and a bounded retry rule so a registry that keeps
 * answering 401 ends in a clear error instead of a loop.
 *
 * @example
 * ```ts
 * import { Authorizer, credentialsFromConfig } from "./auth.ts";
 * const auth = new Authorizer({
 *   credentials: credentialsFromConfig({ "ghcr.io": { auth: { username: "u", password: "p" } } }),
 * });
 * // registry.ts: header = await auth.authorize(host, scope); on 401: auth.challenged(...)
 * ```
 * @module
 */
import { networkFailure } from "./net_errors.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import type { Logger } from "../log/logger.ts";

/**
 * What a registry accepts as proof of identity: a user and password (Basic, or exchanged for
 * a Bearer token), an identity (refresh) token exchanged via OAuth2, or a ready Bearer token.
 *
 * @example
 * ```ts
 * const c: Credentials = { username: "me", password: "secret" };
 * ```
 */
export type Credentials =
  | { username: string; password: string }
  | { identityToken: string; username?: string }
  | { registryToken: string };

/**
 * Looks up credentials for an endpoint host (`host[:port]`, the host actually contacted, so a
 * mirror can have its own). Undefined means anonymous.
 *
 * @example
 * ```ts
 * const anonymous: CredentialsProvider = () => undefined;
 * ```
 */
export type CredentialsProvider = (
  host: string,
) => Credentials | undefined | Promise<Credentials | undefined>;

/**
 * CRI's AuthConfig (runtime.v1), in either the proto field spelling or the camelCase one
 * generated code uses.
 *
 * @example
 * ```ts
 * const a: AuthConfigLike = { username: "me", password: "secret", server_address: "ghcr.io" };
 * ```
 */
export interface AuthConfigLike {
  /** User name (Basic, or for the token server). */
  username?: string;
  /** Password or personal access token. */
  password?: string;
  /** base64("user:password"), as in a docker config.json. */
  auth?: string;
  /** The registry these credentials are for; other hosts do not get them. */
  server_address?: string;
  /** camelCase spelling of `server_address`. */
  serverAddress?: string;
  /** An OAuth2 refresh token, exchanged at the token server. */
  identity_token?: string;
  /** camelCase spelling of `identity_token`. */
  identityToken?: string;
  /** A ready Bearer token sent as is. */
  registry_token?: string;
  /** camelCase spelling of `registry_token`. */
  registryToken?: string;
}

/**
 * One registry's entry in the daemon config (`[registry.configs."host".auth]`, containerd's
 * keys).
 *
 * @example
 * ```ts
 * const c: RegistryAuthConfig = { auth: { username: "u", password: "p" } };
 * ```
 */
export interface RegistryAuthConfig {
  /** `username`/`password`, or `auth` (base64 user:password), or `identitytoken`. */
  auth?: { username?: string; password?: string; auth?: string; identitytoken?: string };
}

/** One parsed `WWW-Authenticate` challenge; `scheme` is lower-case, parameter names too. */
export interface Challenge {
  /** The scheme, lower-case: "basic", "bearer". */
  scheme: string;
  /** Parameters by lower-case name: realm, service, scope, error … */
  params: Record<string, string>;
}

/**
 * The registry refused our credentials (or wants some we do not have). A failed-precondition
 * error, as containerd reports `unauthorized` to CRI callers; the message names host and
 * repository.
 *
 * @example
 * ```ts
 * throw new UnauthorizedError("127.0.0.1:5000", "busybox", "credentials rejected");
 * ```
 */
export class UnauthorizedError extends FailedPreconditionError {
  /** `host` and `repository` name where access was refused; `detail` says why. */
  constructor(
    readonly host: string,
    readonly repository: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`pull access denied for ${repository} on ${host}: unauthorized: ${detail}`, options);
  }
}

/**
 * Parses a `WWW-Authenticate` header value into its challenges (several may share one header,
 * separated by commas; quoted values may contain commas and escaped quotes).
 *
 * @example
 * ```ts
 * parseChallenges('Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"');
 * // [{ scheme: "bearer", params: { realm: "https://auth.example/token", service: "reg", scope: "repository:a:pull" } }]
 * ```
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !/[\s,=]/.test(header[i])) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipSpace();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const word = token();
    if (word === "") {
      i++;
      continue;
    }
    skipSpace();
    if (header[i] === "=" && current) {
      // name=value, a parameter of the current challenge.
      i++;
      skipSpace();
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i++];
        }
        i++; // closing quote
      } else {
        value = token();
      }
      current.params[word.toLowerCase()] = value;
    } else {
      // A bare word starts a new challenge (its scheme).
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/**
 * The `Authorization` value for HTTP Basic.
 *
 * @example
 * ```ts
 * basicAuthHeader("user", "pass"); // "Basic dXNlcjpwYXNz"
 * ```
 */
export function basicAuthHeader(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...bytes))}`;
}

function decodeAuth(auth: string, where: string): { username: string; password: string } {
  let text: string;
  try {
    text = new TextDecoder().decode(Uint8Array.from(atob(auth.trim()), (c) => c.charCodeAt(0)));
  } catch {
    throw new InvalidArgumentError(`${where}: "auth" is not valid base64`);
  }
  const colon = text.indexOf(":");
  if (colon < 0) {
    throw new InvalidArgumentError(`${where}: "auth" must encode "username:password"`);
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Credentials from a CRI AuthConfig (containerd's ParseAuth order: identity token, then
 * username/password, then `auth`), or undefined when it carries none. A registry token is a
 * ready Bearer token.
 *
 * @example
 * ```ts
 * credentialsFromAuthConfig({ auth: btoa("u:p") }); // { username: "u", password: "p" }
 * ```
 */
export function credentialsFromAuthConfig(a: AuthConfigLike | undefined): Credentials | undefined {
  if (!a) return undefined;
  const identityToken = a.identity_token || a.identityToken;
  const registryToken = a.registry_token || a.registryToken;
  if (identityToken) return { identityToken, username: a.username || undefined };
  if (a.username) return { username: a.username, password: a.password ?? "" };
  if (a.auth) return decodeAuth(a.auth, "auth config");
  if (registryToken) return { registryToken };
  return undefined;
}

/** Strips a scheme and trailing path from a server address ("https://ghcr.io/v2/" → "ghcr.io"). */
function addressHost(address: string): string {
  return address.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
}

/**
 * A provider over the daemon config's `registry.configs` table, keyed by host.
 *
 * @example
 * ```ts
 * const creds = credentialsFromConfig({ "127.0.0.1:5000": { auth: { username: "u", password: "p" } } });
 * await creds("127.0.0.1:5000"); // { username: "u", password: "p" }
 * ```
 */
export function credentialsFromConfig(
  configs: Record<string, RegistryAuthConfig | undefined>,
): CredentialsProvider {
  return (host) => {
    const entry = configs[host] ??
      Object.entries(configs).find(([k]) => addressHost(k) === host)?.[1];
    const a = entry?.auth;
    if (!a) return undefined;
    if (a.identitytoken) return { identityToken: a.identitytoken, username: a.username };
    if (a.username) return { username: a.username, password: a.password ?? "" };
    if (a.auth) return decodeAuth(a.auth, `registry config for ${host}`);
    return undefined;
  };
}

/**
 * Per-request credentials (CRI PullImage's AuthConfig) ahead of a fallback provider, as
 * containerd's CRI plugin does: the request's credentials apply to every host of the pull
 * unless they name a `server_address` that is a different host.
 *
 * @example
 * ```ts
 * const creds = requestCredentials({ username: "u", password: "p" }, credentialsFromConfig({}));
 * ```
 */
export function requestCredentials(
  authConfig: AuthConfigLike | undefined,
  fallback?: CredentialsProvider,
): CredentialsProvider {
  const own = credentialsFromAuthConfig(authConfig);
  const server = authConfig?.server_address || authConfig?.serverAddress;
  return (host) => {
    if (own && (!server || addressHost(server) === host)) return own;
    return fallback?.(host);
  };
}

/** A cached Bearer token. */
interface Token {
  token: string;
  expiresAt: number;
}

/** What a host asked for the last time it answered 401. */
type HostAuth =
  | { scheme: "basic"; realm?: string }
  | { scheme: "bearer"; realm: string; service?: string; scopes: string[] };

/** Options of {@linkcode Authorizer}. */
export interface AuthorizerOptions {
  /** Credentials per endpoint host; without it every request is anonymous. */
  credentials?: CredentialsProvider;
  /** Sent to token servers as User-Agent. */
  userAgent?: string;
  /** Debug lines about issued tokens. */
  log?: Logger;
  /** Injected clock for tests (ms since epoch). */
  now?: () => number;
  /** How token requests are made (registry.ts passes one honouring the host's TLS settings). */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

/** Token lifetime when the token server does not say (the distribution spec's default). */
export const DEFAULT_TOKEN_TTL_S = 60;

/**
 * Holds what each registry host asked for and the tokens it issued. One per client: the
 * first 401 from a host teaches it the scheme, later requests to that host are authorised up
 * front (no wasted round trip); tokens are cached per (host, service, scope) until they expire.
 *
 * @example
 * ```ts
 * const auth = new Authorizer({ credentials: () => ({ username: "u", password: "p" }) });
 * const header = await auth.authorize("127.0.0.1:5000", "repository:busybox:pull", "busybox");
 * ```
 */
export class Authorizer {
  #hosts = new Map<string, HostAuth>();
  #tokens = new Map<string, Promise<Token>>();
  #opts: AuthorizerOptions;

  /** `opts.credentials` is asked per host; without it every request is anonymous. */
  constructor(opts: AuthorizerOptions = {}) {
    this.#opts = opts;
  }

  #now(): number {
    return this.#opts.now?.() ?? Date.now();
  }

  async #credentials(host: string): Promise<Credentials | undefined> {
    return await this.#opts.credentials?.(host);
  }

  /**
   * The Authorization value for a request to `host` needing `scope`
   * ("repository:<path>:pull"), or undefined when the host has not asked for any. `fetchFn`
   * makes the token request (the registry's TLS client), default `fetch`.
   */
  async authorize(
    host: string,
    scope: string,
    repository: string,
    fetchFn?: (url: string, init: RequestInit) => Promise<Response>,
  ): Promise<string | undefined> {
    const creds = await this.#credentials(host);
    if (creds && "registryToken" in creds) return `Bearer ${creds.registryToken}`;
    const state = this.#hosts.get(host);
    if (!state) return undefined;
    if (state.scheme === "basic") {
      if (!creds) return undefined;
      if ("identityToken" in creds) {
        throw new UnauthorizedError(
          host,
          repository,
          "the registry wants Basic auth, but only an identity token is configured",
        );
      }
      return basicAuthHeader(creds.username, creds.password);
    }
    const scopes = [...new Set([...state.scopes, scope])].sort();
    const key = `${host}\n${state.service ?? ""}\n${scopes.join(" ")}`;
    let entry = this.#tokens.get(key);
    if (entry) {
      // An in-flight fetch is shared, failure included (a failed entry leaves the map once
      // settled, so the next request tries afresh).
      const t = await entry;
      if (t.expiresAt > this.#now()) return `Bearer ${t.token}`;
      if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
    }
    entry = this.#fetchToken(host, repository, state, scopes, creds, fetchFn);
    this.#tokens.set(key, entry);
    // A failed fetch must not poison the cache for the next attempt.
    entry.catch(() => {
      if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
    });
    return `Bearer ${(await entry).token}`;
  }

  /**
   * Learns from a 401 answer. `sent` is the Authorization value the refused request carried.
   * Returns normally when one more attempt makes sense (the host's scheme was new, or a cached
   * token went stale); throws UnauthorizedError when the credentials themselves were refused,
   * so a caller retries at most once per challenge.
   */
  async challenged(
    host: string,
    repository: string,
    res: Response,
    sent: string | undefined,
    freshToken: boolean,
  ): Promise<void> {
    const header = res.headers.get("www-authenticate");
    const body = await res.text().catch(() => "");
    const detail = registryErrorText(body);
    const challenges = header ? parseChallenges(header) : [];
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const creds = await this.#credentials(host);
    if (sent && freshToken) {
      throw new UnauthorizedError(
        host,
        repository,
        `credentials were rejected${detail ? `: ${detail}` : ""}`,
      );
    }
    if (creds && "registryToken" in creds) {
      throw new UnauthorizedError(
        host,
        repository,
        `the registry token was rejected${detail ? `: ${detail}` : ""}`,
      );
    }
    if (bearer) {
      if (!bearer.params.realm) {
        throw new UnauthorizedError(host, repository, "Bearer challenge without a realm");
      }
      const scopes = bearer.params.scope ? bearer.params.scope.split(" ").filter(Boolean) : [];
      this.#hosts.set(host, {
        scheme: "bearer",
        realm: bearer.params.realm,
        service: bearer.params.service,
        scopes,
      });
      // The refused token (if it came from the cache) is stale: drop every token of the host.
      for (const k of this.#tokens.keys()) if (k.startsWith(`${host}\n`)) this.#tokens.delete(k);
      return;
    }
    if (basic) {
      if (!creds || "identityToken" in creds) {
        throw new UnauthorizedError(
          host,
          repository,
          `the registry wants a user name and password and none are configured for ${host}` +
            (detail ? ` (${detail})` : ""),
        );
      }
      if (sent?.startsWith("Basic ")) {
        throw new UnauthorizedError(host, repository, "user name or password rejected");
      }
      this.#hosts.set(host, { scheme: "basic", realm: basic.params.realm });
      return;
    }
    throw new UnauthorizedError(
      host,
      repository,
      header
        ? `unsupported authentication challenge "${header}"`
        : `401 without a WWW-Authenticate challenge${detail ? `: ${detail}` : ""}`,
    );
  }

  /** True when the host is known to use Bearer tokens (so a 401 after one means "rejected"). */
  usesTokens(host: string): boolean {
    return this.#hosts.get(host)?.scheme === "bearer";
  }

  async #fetchToken(
    host: string,
    repository: string,
    state: Extract<HostAuth, { scheme: "bearer" }>,
    scopes: string[],
    creds: Credentials | undefined,
    fetchFn?: (url: string, init: RequestInit) => Promise<Response>,
  ): Promise<Token> {
    const doFetch = fetchFn ?? this.#opts.fetch ??
      ((url: string, init: RequestInit) => fetch(url, init));
    const ua: Record<string, string> = this.#opts.userAgent
      ? { "user-agent": this.#opts.userAgent }
      : {};
    let res: Response;
    const realm = state.realm;
    const get = (authorization?: string) => {
      const u = new URL(realm);
      if (state.service) u.searchParams.set("service", state.service);
      for (const s of scopes) u.searchParams.append("scope", s);
      return doFetch(u.toString(), {
        headers: { ...ua, ...(authorization ? { authorization } : {}) },
      });
    };
    try {
      if (creds && "identityToken" in creds) {
        // containerd: identity tokens are OAuth2 refresh tokens, exchanged by POST.
        const form = new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: creds.identityToken,
          client_id: "k8scontainerd",
          scope: scopes.join(" "),
        });
        if (state.service) form.set("service", state.service);
        res = await doFetch(realm, {
          method: "POST",
          headers: { ...ua, "content-type": "application/x-www-form-urlencoded" },
          body: form.toString(),
        });
        if (res.status === 404 || res.status === 405) {
          // A token server without the OAuth2 endpoint: fall back to the plain GET.
          await res.body?.cancel();
          res = await get();
        }
      } else if (creds && "username" in creds) {
        res = await get(basicAuthHeader(creds.username, creds.password));
      } else {
        res = await get();
      }
    } catch (e) {
      throw new FailedPreconditionError(
        `fetching a token for ${repository} on ${host} from ${realm}: ${networkFailure(e, realm)}`,
        { cause: e },
      );
    }
    const text = await res.text().catch(() => "");
    if (res.status === 401 || res.status === 403) {
      throw new UnauthorizedError(
        host,
        repository,
        `token server ${realm} answered ${res.status}${
          creds ? "" : " (no credentials configured)"
        }${registryErrorText(text) ? `: ${registryErrorText(text)}` : ""}`,
      );
    }
    if (!res.ok) {
      throw new FailedPreconditionError(
        `fetching a token for ${repository} on ${host} from ${realm}: HTTP ${res.status}: ${
          text.slice(0, 200)
        }`,
      );
    }
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(text);
    } catch {
      throw new FailedPreconditionError(
        `token server ${realm} for ${host}: response is not JSON: ${text.slice(0, 200)}`,
      );
    }
    const token = typeof doc.token === "string" && doc.token
      ? doc.token
      : typeof doc.access_token === "string" && doc.access_token
      ? doc.access_token
      : undefined;
    if (!token) {
      throw new FailedPreconditionError(
        `token server ${realm} for ${host}: response has neither "token" nor "access_token"`,
      );
    }
    const ttl = typeof doc.expires_in === "number" && doc.expires_in > 0
      ? doc.expires_in
      : DEFAULT_TOKEN_TTL_S;
    this.#opts.log?.debug("registry token issued", { host, scopes, ttl });
    return { token, expiresAt: this.#now() + ttl * 1000 };
  }
}

/** The message of a distribution-spec error body (`{"errors":[{"code","message"}]}`), if any. */
export function registryErrorText(body: string): string {
  try {
    const doc = JSON.parse(body) as { errors?: { code?: string; message?: string }[] };
    if (Array.isArray(doc.errors) && doc.errors.length) {
      return doc.errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
    }
  } catch {
    // Not JSON: quote the start of it.
  }
  return body.trim().slice(0, 200);
}
