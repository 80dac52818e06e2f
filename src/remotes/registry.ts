/**
 * The registry client (OCI distribution spec, pull side): resolve a reference to a root
 * descriptor, fetch manifests by digest, stream blobs with transparent resumption. Hosts come
 * from hosts.ts (mirrors first, then the upstream), authentication from auth.ts; retries and
 * backoff live here. Like containerd's docker resolver/fetcher, it knows nothing about images:
 * walking manifests, choosing platforms, verifying and storing blobs is the caller's job.
 *
 * @example
 * ```ts
 * import { RegistryClient } from "./registry.ts";
 * const client = new RegistryClient({ hostsDir: "/etc/k8scontainerd/certs.d" });
 * const { name, descriptor } = await client.resolve("127.0.0.1:5000/busybox:latest");
 * const manifest = JSON.parse(new TextDecoder().decode(await client.fetchManifest(name, descriptor)));
 * const layer = await client.fetchBlob(name, manifest.layers[0]);
 * for await (const chunk of layer) console.log(chunk.length);
 * ```
 * @module
 */
import { hostPort, networkFailure } from "./net_errors.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  RuntimeError,
  UnavailableError,
  UnimplementedError,
} from "../errdefs/errors.ts";
import { type Algorithm, digestOf, hasher, parseDigest } from "../content/digest.ts";
import { type Descriptor, isSchema1, MANIFEST_ACCEPT, MEDIA_TYPES } from "../images/oci.ts";
import type { Logger } from "../log/logger.ts";
import { VERSION } from "../version.ts";
import { Authorizer, type CredentialsProvider, registryErrorText } from "./auth.ts";
import { type Capability, loadHosts, type RegistryHost } from "./hosts.ts";
import { parseReference, type Reference, withDefaultTag } from "./reference.ts";

/** Options of {@linkcode RegistryClient}. */
export interface RegistryClientOptions {
  /** containerd-style certs.d directory holding `<host>/hosts.toml`; none: registries direct. */
  hostsDir?: string;
  /** Credentials per endpoint host (see auth.ts for providers over config and CRI AuthConfig). */
  credentials?: CredentialsProvider;
  /** Hosts reached over plain HTTP when no hosts.toml says otherwise (loopback always is). */
  plainHttp?: string[];
  /** User-Agent of every request (default k8scontainerd/<version>). */
  userAgent?: string;
  /** Largest manifest accepted, in bytes (default 4 MiB, as containerd). */
  maxManifestSize?: number;
  /** Retries per request for 5xx/429/connection errors, and resumes per broken blob body. */
  retries?: number;
  /** First backoff delay in ms (doubled per retry, ±50 % jitter); default 100. */
  retryDelayMs?: number;
  /**
   * How long one request may wait for a registry's answer (its status and headers; a body
   * then streams as long as it takes): default 30 s, then "timeout", and a retry.
   */
  responseTimeoutMs?: number;
  /** Where retries, host fallbacks and resumed downloads are logged. */
  log?: Logger;
}

/**
 * What {@linkcode RegistryClient.resolve} found: the normalised reference and the root
 * descriptor (an index or a manifest).
 *
 * @example
 * ```ts
 * const r: Resolved = await client.resolve("busybox");
 * r.name; // "docker.io/library/busybox:latest"
 * ```
 */
export interface Resolved {
  /** The normalised reference, e.g. "docker.io/library/busybox:latest". */
  name: string;
  /** The root descriptor: an index or a manifest, with digest and size. */
  descriptor: Descriptor;
}

/** Options of {@linkcode RegistryClient.fetchBlob}. */
export interface FetchBlobOptions {
  /** Start at this byte (resuming an earlier partial download). */
  offset?: number;
  /** Aborts the request and errors the stream with the signal's reason. */
  signal?: AbortSignal;
  /** Called as bytes arrive with the absolute position reached (offset included). */
  onProgress?: (bytes: number) => void;
}

/** containerd's limit: manifests are small, so a huge one is a broken or hostile registry. */
export const DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

const SUPPORTED_ROOTS = new Set<string>([
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
]);

/** Marks a host's answer as "not here": the next host is tried. */
const NEXT_HOST = Symbol("next host");

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function baseMediaType(contentType: string | null): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

function schema1Error(ref: string): UnimplementedError {
  return new UnimplementedError(
    `${ref}: schema 1 manifests are not supported: Docker Image manifest v2 schema 1 was ` +
      "deprecated and removed from registries; repush the image with a current docker, " +
      "buildah or skopeo to get a schema 2 or OCI manifest",
  );
}

/** Hashes `data` with the algorithm of `expected` and says whether they match. */
function matchesDigest(data: Uint8Array, expected: string): { ok: boolean; actual: string } {
  const { algorithm } = parseDigest(expected);
  const actual = `${algorithm}:${hasher(algorithm as Algorithm).update(data).digest("hex")}`;
  return { ok: actual === expected, actual };
}

/** Reads a response body, failing as soon as it exceeds `limit` bytes. */
async function readLimited(res: Response, limit: number, what: () => Error): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw what();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Checks a blob answer before its body is used: a 206 must start where we asked, the length
 * must fit the descriptor, and there must be a body.
 */
function checkBlobResponse(
  label: string,
  host: RegistryHost,
  desc: Descriptor,
  res: Response,
  from: number,
): void {
  if (res.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
    if (!range || Number(range[1]) !== from) {
      throw new FailedPreconditionError(
        `${label}: ${host.host} answered Range bytes=${from}- with Content-Range ` +
          `"${res.headers.get("content-range")}"`,
      );
    }
  }
  const length = res.headers.get("content-length");
  const expected = desc.size - (res.status === 206 ? from : 0);
  if (length !== null && Number(length) !== expected) {
    throw new FailedPreconditionError(
      `${label}: ${host.host} sent Content-Length ${length}, expected ${expected} ` +
        `(descriptor size ${desc.size})`,
    );
  }
  if (!res.body) throw new FailedPreconditionError(`${label}: ${host.host} sent no body`);
}

/** A failure that no other host or retry can fix (schema 1, a caller abort). */
function isFinal(e: unknown): boolean {
  return e instanceof UnimplementedError || e instanceof InvalidArgumentError ||
    (e instanceof DOMException && e.name === "AbortError");
}

interface SendOptions {
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Overrides the client's retries (0 when an outer loop retries already). */
  retries?: number;
  /** "manifest busybox:latest" — used in error messages. */
  what: string;
}

/**
 * Pulls from OCI distribution registries. One instance per daemon: it keeps the tokens the
 * registries issued and the TLS clients built for hosts.toml `ca`/`client` settings; every
 * call re-reads hosts.toml so configuration changes apply to the next pull, as in containerd.
 *
 * @example
 * ```ts
 * const client = new RegistryClient({ hostsDir: "/etc/k8scontainerd/certs.d", retries: 4 });
 * const { name, descriptor } = await client.resolve("registry.k8s.io/pause:3.9");
 * ```
 */
export class RegistryClient {
  readonly #opts:
    & Required<
      Pick<RegistryClientOptions, "maxManifestSize" | "retries" | "retryDelayMs" | "userAgent">
    >
    & RegistryClientOptions;
  readonly #auth: Authorizer;
  readonly #clients = new Map<string, Deno.HttpClient>();
  readonly #warned = new Set<string>();

  /** See {@linkcode RegistryClientOptions} for the defaults. */
  constructor(opts: RegistryClientOptions = {}) {
    this.#opts = {
      ...opts,
      maxManifestSize: opts.maxManifestSize ?? DEFAULT_MAX_MANIFEST_SIZE,
      retries: opts.retries ?? 4,
      retryDelayMs: opts.retryDelayMs ?? 100,
      userAgent: opts.userAgent ?? `k8scontainerd/${VERSION}`,
    };
    this.#auth = new Authorizer({
      credentials: opts.credentials,
      userAgent: this.#opts.userAgent,
      log: opts.log,
    });
  }

  /** Closes the TLS clients built for custom CAs or client certificates. */
  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  /**
   * Resolves a reference (tag and/or digest) to its root descriptor: HEAD on the manifest,
   * then GET when HEAD leaves the digest, type or size unknown. Hosts with the "resolve"
   * capability are tried in order; a 404 moves to the next. With a digest in the reference the
   * registry's answer must match it. Schema 1 and unknown media types are refused.
   *
   * @example
   * ```ts
   * const { name, descriptor } = await client.resolve("127.0.0.1:5000/multiarch:latest");
   * descriptor.mediaType; // "application/vnd.oci.image.index.v1+json"
   * ```
   */
  async resolve(reference: string): Promise<Resolved> {
    const ref = withDefaultTag(parseReference(reference));
    const name = ref.toString();
    const target = ref.digest ?? ref.tag!;
    const descriptor = await this.#eachHost(ref, "resolve", name, async (host) => {
      const path = `manifests/${target}`;
      const headers = { accept: MANIFEST_ACCEPT.join(", ") };
      const head = await this.#send(host, ref, path, { method: "HEAD", headers, what: name });
      await head.body?.cancel();
      if (head.status === 404) return NEXT_HOST;
      if (head.status === 200) {
        const d = this.#fromHead(name, ref, host, head);
        if (d) return d;
      }
      // HEAD refused (some registries answer 405) or incomplete: GET and look at the body.
      const res = await this.#send(host, ref, path, { headers, what: name });
      if (res.status === 404) {
        await res.body?.cancel();
        return NEXT_HOST;
      }
      if (res.status !== 200) throw await this.#statusError(`resolving ${name}`, host, res);
      return await this.#fromGet(name, ref, host, res);
    });
    return { name, descriptor };
  }

  /** The descriptor from a HEAD answer, or undefined when the body is needed. */
  #fromHead(
    name: string,
    ref: Reference,
    host: RegistryHost,
    res: Response,
  ): Descriptor | undefined {
    const mediaType = baseMediaType(res.headers.get("content-type"));
    if (isSchema1(mediaType)) throw schema1Error(name);
    const header = res.headers.get("docker-content-digest") ?? undefined;
    const lengthText = res.headers.get("content-length");
    const size = lengthText === null ? NaN : Number(lengthText);
    if (header && ref.digest && header !== ref.digest) {
      throw new FailedPreconditionError(
        `${name}: ${host.host} answered with manifest ${header}, not the requested digest`,
      );
    }
    const digest = header ?? ref.digest;
    if (!SUPPORTED_ROOTS.has(mediaType) || !digest || !Number.isSafeInteger(size) || size <= 0) {
      return undefined;
    }
    this.#checkManifestSize(name, size);
    return { mediaType, digest, size };
  }

  async #fromGet(
    name: string,
    ref: Reference,
    host: RegistryHost,
    res: Response,
  ): Promise<Descriptor> {
    const declared = Number(res.headers.get("content-length") ?? NaN);
    if (Number.isSafeInteger(declared)) this.#checkManifestSize(name, declared);
    const data = await readLimited(
      res,
      this.#opts.maxManifestSize,
      () => this.#sizeError(name, `more than ${this.#opts.maxManifestSize}`),
    );
    const header = res.headers.get("docker-content-digest") ?? undefined;
    for (const expected of [ref.digest, header]) {
      if (!expected) continue;
      const { ok, actual } = matchesDigest(data, expected);
      if (!ok) {
        throw new FailedPreconditionError(
          `${name}: manifest from ${host.host} has digest ${actual}, expected ${expected}` +
            (expected === header ? " (its Docker-Content-Digest header)" : ""),
        );
      }
    }
    const digest = ref.digest ?? header ?? digestOf(data);
    const mediaType = this.#mediaTypeOf(name, host, res.headers.get("content-type"), data);
    return { mediaType, digest, size: data.length };
  }

  /** The manifest's media type from Content-Type, else from its own mediaType/shape. */
  #mediaTypeOf(name: string, host: RegistryHost, contentType: string | null, data: Uint8Array) {
    const declared = baseMediaType(contentType);
    if (isSchema1(declared)) throw schema1Error(name);
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
    } catch (e) {
      throw new FailedPreconditionError(
        `${name}: manifest from ${host.host} is not valid JSON (${message(e)}): ${
          JSON.stringify(new TextDecoder().decode(data.subarray(0, 80)))
        }`,
      );
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new FailedPreconditionError(`${name}: manifest from ${host.host} is not a JSON object`);
    }
    const m = doc as { schemaVersion?: unknown; mediaType?: unknown; [k: string]: unknown };
    if (m.schemaVersion === 1) throw schema1Error(name);
    if (SUPPORTED_ROOTS.has(declared)) return declared;
    const inner = typeof m.mediaType === "string" ? m.mediaType : "";
    if (isSchema1(inner)) throw schema1Error(name);
    if (SUPPORTED_ROOTS.has(inner)) return inner;
    if (!inner && m.schemaVersion === 2) {
      // OCI allows omitting mediaType; the shape tells index from manifest.
      if (Array.isArray(m.manifests)) return MEDIA_TYPES.ociIndex;
      if (typeof m.config === "object" && Array.isArray(m.layers)) return MEDIA_TYPES.ociManifest;
    }
    throw new UnimplementedError(
      `${name}: unsupported manifest media type "${
        inner || declared || "(none)"
      }" from ${host.host}: ` +
        "expected an OCI or Docker schema 2 image manifest or index",
    );
  }

  #sizeError(name: string, size: string): FailedPreconditionError {
    return new FailedPreconditionError(
      `${name}: manifest is ${size} bytes, over the ${this.#opts.maxManifestSize}-byte limit`,
    );
  }

  #checkManifestSize(name: string, size: number): void {
    if (size > this.#opts.maxManifestSize) throw this.#sizeError(name, String(size));
  }

  /**
   * Fetches a manifest or index by digest (hosts with "pull"), verified against the
   * descriptor's digest and size. `name` is the repository or any reference in it.
   *
   * @example
   * ```ts
   * const bytes = await client.fetchManifest("127.0.0.1:5000/busybox", descriptor);
   * const manifest = JSON.parse(new TextDecoder().decode(bytes));
   * ```
   */
  async fetchManifest(name: string, desc: Descriptor): Promise<Uint8Array> {
    const ref = parseReference(name);
    const label = `${ref.name}@${desc.digest}`;
    parseDigest(desc.digest);
    if (isSchema1(desc.mediaType)) throw schema1Error(label);
    this.#checkManifestSize(label, desc.size);
    const accept = [...new Set([desc.mediaType, ...MANIFEST_ACCEPT])].join(", ");
    return await this.#eachHost(ref, "pull", label, async (host) => {
      const res = await this.#send(host, ref, `manifests/${desc.digest}`, {
        headers: { accept },
        what: label,
      });
      if (res.status === 404) {
        await res.body?.cancel();
        return NEXT_HOST;
      }
      if (res.status !== 200) throw await this.#statusError(`fetching ${label}`, host, res);
      const data = await readLimited(
        res,
        desc.size,
        () =>
          new FailedPreconditionError(
            `${label}: ${host.host} sent more than the descriptor's ${desc.size} bytes`,
          ),
      );
      if (data.length !== desc.size) {
        throw new FailedPreconditionError(
          `${label}: ${host.host} sent ${data.length} bytes, the descriptor says ${desc.size}`,
        );
      }
      const { ok, actual } = matchesDigest(data, desc.digest);
      if (!ok) {
        throw new FailedPreconditionError(
          `${label}: ${host.host} sent content with digest ${actual}`,
        );
      }
      if (isSchema1(baseMediaType(res.headers.get("content-type")))) throw schema1Error(label);
      return data;
    });
  }

  /**
   * Streams a blob (hosts with "pull"), following redirects. If the connection breaks, the
   * stream reconnects with `Range: bytes=<delivered>-` (up to `retries` times, with backoff) so
   * the consumer sees every byte exactly once. The digest is not verified here (the content
   * store does that on commit); Content-Length is checked against the descriptor.
   *
   * @example
   * ```ts
   * const stream = await client.fetchBlob("127.0.0.1:5000/busybox", layerDesc, {
   *   onProgress: (n) => console.log(`${n}/${layerDesc.size}`),
   * });
   * await stream.pipeTo(file.writable);
   * ```
   */
  async fetchBlob(
    name: string,
    desc: Descriptor,
    opts: FetchBlobOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const ref = parseReference(name);
    parseDigest(desc.digest);
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > desc.size) {
      throw new InvalidArgumentError(
        `blob ${desc.digest}: offset ${offset} is outside 0..${desc.size}`,
      );
    }
    const label = `blob ${desc.digest} of ${ref.name}`;
    // One controller for every request of this stream: cancel() and the caller's signal both
    // tear down whichever connection is open.
    const abort = new AbortController();
    const onAbort = () => abort.abort(opts.signal!.reason);
    if (opts.signal?.aborted) throw opts.signal.reason;
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const open = async (host: RegistryHost, from: number, retries?: number) => {
      const headers: Record<string, string> = { "accept-encoding": "identity" };
      if (from > 0) headers.range = `bytes=${from}-`;
      const res = await this.#send(host, ref, `blobs/${desc.digest}`, {
        headers,
        signal: abort.signal,
        retries,
        what: label,
      });
      if (res.status === 404) return res;
      if (res.status !== 200 && res.status !== 206) {
        throw await this.#statusError(`fetching ${label}`, host, res);
      }
      try {
        checkBlobResponse(label, host, desc, res, from);
      } catch (e) {
        await res.body?.cancel();
        throw e;
      }
      return res;
    };
    let first: { host: RegistryHost; res: Response };
    try {
      first = await this.#eachHost(ref, "pull", label, async (host) => {
        const res = await open(host, offset);
        if (res.status === 404) {
          await res.body?.cancel();
          return NEXT_HOST;
        }
        return { host, res };
      });
    } catch (e) {
      opts.signal?.removeEventListener("abort", onAbort);
      throw e;
    }
    return this.#blobStream(label, desc, offset, first.host, first.res, {
      ...opts,
      abort,
      cleanup: () => opts.signal?.removeEventListener("abort", onAbort),
      reopen: (from) => open(first.host, from, 0),
    });
  }

  #blobStream(
    label: string,
    desc: Descriptor,
    offset: number,
    host: RegistryHost,
    firstRes: Response,
    ctx: FetchBlobOptions & {
      abort: AbortController;
      cleanup: () => void;
      reopen: (from: number) => Promise<Response>;
    },
  ): ReadableStream<Uint8Array> {
    let position = offset; // absolute bytes delivered to the consumer
    let skip = 0; // bytes to drop from the current body (a server that ignored Range)
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    // Per stream, not per read: a server that drops every connection after a few bytes must
    // not turn one blob into thousands of range requests.
    let resumes = 0;
    const log = this.#opts.log;
    const retries = this.#opts.retries;

    /** Takes over a checked (re)opened response (see checkBlobResponse). */
    const adopt = (res: Response, from: number) => {
      // 200 to a ranged request: the whole blob again; drop what the consumer already has.
      skip = res.status === 206 ? 0 : from;
      reader = res.body!.getReader();
    };

    const finish = () => {
      ctx.cleanup();
    };

    return new ReadableStream<Uint8Array>({
      start: () => adopt(firstRes, offset),
      pull: async (controller) => {
        let lastError: unknown;
        for (;;) {
          try {
            if (!reader) {
              // Reconnect after a break (the first body is adopted in start).
              const res = await ctx.reopen(position);
              if (res.status === 404) {
                await res.body?.cancel();
                throw new NotFoundError(`${label} on ${host.host}`);
              }
              adopt(res, position);
            }
            const { done, value } = await reader!.read();
            if (done) {
              if (position < desc.size) {
                throw new Error(`connection closed after ${position} of ${desc.size} bytes`);
              }
              finish();
              controller.close();
              return;
            }
            let chunk = value;
            if (skip > 0) {
              const drop = Math.min(skip, chunk.length);
              skip -= drop;
              chunk = chunk.subarray(drop);
              if (chunk.length === 0) continue;
            }
            if (position + chunk.length > desc.size) {
              throw new FailedPreconditionError(
                `${label}: ${host.host} sent more than the descriptor's ${desc.size} bytes`,
              );
            }
            position += chunk.length;
            ctx.onProgress?.(position);
            controller.enqueue(chunk);
            return;
          } catch (e) {
            reader?.cancel().catch(() => {});
            reader = undefined;
            if (ctx.abort.signal.aborted) {
              finish();
              controller.error(ctx.abort.signal.reason);
              return;
            }
            if (
              e instanceof FailedPreconditionError || e instanceof NotFoundError || isFinal(e)
            ) {
              finish();
              controller.error(e);
              return;
            }
            lastError = e;
            if (resumes >= retries) {
              finish();
              controller.error(
                new UnavailableError(
                  `${label}: download from ${host.host} broke at byte ${position} of ${desc.size} ` +
                    `and ${retries} attempts to resume failed: ${message(lastError)}`,
                  { cause: lastError },
                ),
              );
              return;
            }
            log?.info("blob download broke; resuming", {
              blob: desc.digest,
              host: host.host,
              at: position,
              error: message(e),
            });
            try {
              await sleep(this.#backoff(resumes), ctx.abort.signal);
            } catch (abortReason) {
              finish();
              controller.error(abortReason);
              return;
            }
            resumes++;
          }
        }
      },
      cancel: (reason) => {
        finish();
        ctx.abort.abort(reason);
        return reader?.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  #backoff(attempt: number): number {
    return this.#opts.retryDelayMs * 2 ** attempt * (0.5 + Math.random());
  }

  /** Tries `fn` on each host that has `cap`, in order; 404 (NEXT_HOST) and failures move on. */
  async #eachHost<T>(
    ref: Reference,
    cap: Capability,
    what: string,
    fn: (host: RegistryHost) => Promise<T | typeof NEXT_HOST>,
  ): Promise<T> {
    const all = await loadHosts(this.#opts.hostsDir, ref.domain, {
      plainHttp: this.#opts.plainHttp,
    });
    const hosts = all.filter((h) => h.capabilities.includes(cap));
    if (hosts.length === 0) {
      throw new FailedPreconditionError(
        `${what}: no host configured for ${ref.domain} has the "${cap}" capability ` +
          `(configured: ${all.map((h) => `${h.url} [${h.capabilities.join(", ")}]`).join("; ")})`,
      );
    }
    let firstError: unknown;
    for (const host of hosts) {
      try {
        const out = await fn(host);
        if (out !== NEXT_HOST) return out as T;
        this.#opts.log?.debug("not found on host; trying next", { what, host: host.url });
      } catch (e) {
        if (isFinal(e)) throw e;
        firstError ??= e;
        this.#opts.log?.info("host failed; trying next", {
          what,
          host: host.url,
          error: message(e),
        });
      }
    }
    if (firstError) throw firstError;
    throw new NotFoundError(what);
  }

  /** The HTTP client for a host's TLS settings (undefined: Deno's default). */
  async #client(host: RegistryHost): Promise<Deno.HttpClient | undefined> {
    if (host.skipVerify && !this.#warned.has(host.url)) {
      this.#warned.add(host.url);
      this.#opts.log?.warn(
        "skip_verify is not supported: Deno cannot disable TLS verification per client; " +
          "add the registry's CA certificate with `ca` in hosts.toml instead",
        { host: host.url },
      );
    }
    if (!host.caPath?.length && !host.clientCerts?.length) return undefined;
    const key = JSON.stringify([host.caPath, host.clientCerts]);
    let client = this.#clients.get(key);
    if (client) return client;
    const read = async (path: string, what: string) => {
      try {
        return await Deno.readTextFile(path);
      } catch (e) {
        throw new FailedPreconditionError(`${host.url}: reading ${what} ${path}: ${message(e)}`);
      }
    };
    const caCerts = await Promise.all((host.caPath ?? []).map((p) => read(p, "CA certificate")));
    const pair = host.clientCerts?.[0];
    if ((host.clientCerts?.length ?? 0) > 1) {
      this.#opts.log?.warn("only the first client certificate is used", { host: host.url });
    }
    const tls = pair
      ? {
        cert: await read(pair.cert, "client certificate"),
        key: await read(pair.key ?? pair.cert, "client key"),
      }
      : {};
    client = Deno.createHttpClient({ caCerts, ...tls });
    this.#clients.set(key, client);
    return client;
  }

  /**
   * One request to one host: headers from hosts.toml, authorization (at most one retry per
   * 401 challenge), and retries with backoff for 5xx, 429 and connection errors. Returns any
   * other answer for the caller to interpret.
   */
  async #send(
    host: RegistryHost,
    ref: Reference,
    path: string,
    o: SendOptions,
  ): Promise<Response> {
    const url = `${host.url}/${ref.path}/${path}`;
    const client = await this.#client(host);
    const scope = `repository:${ref.path}:pull`;
    const doFetch = (u: string, init: RequestInit) => fetch(u, client ? { ...init, client } : init);
    for (let authAttempt = 0;; authAttempt++) {
      const authorization = await this.#auth.authorize(host.host, scope, ref.path, doFetch);
      const headers: Record<string, string> = {
        "user-agent": this.#opts.userAgent,
        ...host.headers,
        ...o.headers,
      };
      if (authorization) headers.authorization = authorization;
      const res = await this.#withRetries(
        host,
        url,
        {
          method: o.method ?? "GET",
          headers,
          redirect: "follow",
          signal: o.signal,
        },
        doFetch,
        o,
      );
      if (res.status !== 401) return res;
      // Throws when another attempt cannot help; so this loop runs at most twice.
      await this.#auth.challenged(host.host, ref.path, res, authorization, authAttempt > 0);
      if (authAttempt >= 1) {
        throw new FailedPreconditionError(
          `${o.what}: ${host.host} still answers 401 unauthorized after re-authenticating`,
        );
      }
    }
  }

  async #withRetries(
    host: RegistryHost,
    url: string,
    init: RequestInit,
    doFetch: (u: string, init: RequestInit) => Promise<Response>,
    o: SendOptions,
  ): Promise<Response> {
    const retries = o.retries ?? this.#opts.retries;
    for (let attempt = 0;; attempt++) {
      let failure: string;
      let wait: number | undefined;
      // A deadline for the answer only: cleared once headers are in, so a long body is fine.
      const deadline = new AbortController();
      const timeoutMs = this.#opts.responseTimeoutMs ?? 30_000;
      const timer = setTimeout(() => deadline.abort(), timeoutMs);
      try {
        const res = await doFetch(url, {
          ...init,
          signal: init.signal ? AbortSignal.any([init.signal, deadline.signal]) : deadline.signal,
        });
        clearTimeout(timer);
        if (res.status < 500 && res.status !== 429) return res;
        const body = await res.text().catch(() => "");
        failure = `HTTP ${res.status} ${res.statusText}${
          body ? `: ${registryErrorText(body)}` : ""
        }`;
        const retryAfter = Number(res.headers.get("retry-after"));
        if (res.status === 429 && retryAfter > 0) wait = Math.min(retryAfter * 1000, 10_000);
      } catch (e) {
        if (o.signal?.aborted) throw o.signal.reason;
        failure = deadline.signal.aborted
          ? `timeout: no answer from ${hostPort(url)} within ${timeoutMs / 1000} s`
          : networkFailure(e, url);
      } finally {
        clearTimeout(timer);
      }
      if (attempt >= retries) {
        throw new UnavailableError(
          `${init.method} ${o.what} on ${host.host}: ${failure} (gave up after ${
            attempt + 1
          } attempts)`,
        );
      }
      this.#opts.log?.debug("registry request failed; retrying", {
        url,
        attempt: attempt + 1,
        error: failure,
      });
      await sleep(wait ?? this.#backoff(attempt), o.signal ?? undefined);
    }
  }

  async #statusError(what: string, host: RegistryHost, res: Response): Promise<RuntimeError> {
    const body = await res.text().catch(() => "");
    const detail = registryErrorText(body);
    return new FailedPreconditionError(
      `${what}: ${host.host} answered HTTP ${res.status} ${res.statusText}${
        detail ? `: ${detail}` : ""
      }`,
    );
  }
}
