/**
 * The streaming server: the HTTP endpoint whose URLs the CRI's Exec, Attach and PortForward
 * RPCs (and the management Tasks StreamUrl) return. Like the kubelet's streaming server, each RPC stores its request under a
 * single-use random token (/exec/<token>, /attach/<token>, /portforward/<token>) that expires
 * after `tokenTtlMs`; the client (kubelet, crictl) then upgrades that URL to SPDY/3.1 or a
 * WebSocket and the server runs the request against the {@link StreamingBackend}.
 *
 * The HTTP/1.1 front end is our own on `Deno.listen`: `Deno.serve` cannot hand over the raw
 * socket after a SPDY 101, and these three upgrade-only endpoints need nothing else.
 *
 * @example
 * ```ts
 * import { StreamingServer } from "./server.ts";
 * const server = new StreamingServer({
 *   backend: {
 *     exec: async () => 0,
 *     attach: async () => {},
 *     portForward: (o) => o.stream.readable.pipeTo(o.stream.writable),
 *   },
 * });
 * const { url } = await server.start();
 * const execUrl = server.getExecUrl({
 *   containerId: "c1", cmd: ["sh"], tty: true, stdin: true, stdout: true, stderr: false,
 * });
 * await server.stop();
 * ```
 */
import { ByteReader } from "./bytes.ts";
import type { StreamingBackend } from "./backend.ts";
import { BadRequestError, type HttpRequestHead, parseRequestHead, writeResponse } from "./http1.ts";
import {
  type RemoteCommandSession,
  type SessionResult,
  SPDY_REMOTECOMMAND_PROTOCOLS,
  spdyRemoteCommand,
  StreamArrivals,
  WS_REMOTECOMMAND_PROTOCOLS,
  wsRemoteCommand,
} from "./remotecommand.ts";
import {
  parsePort,
  SPDY_PORTFORWARD_PROTOCOLS,
  SpdyPortForward,
  WS_PORTFORWARD_PROTOCOLS,
  wsPortForward,
} from "./portforward.ts";
import { SpdyConnection } from "./spdy.ts";
import { acceptWebSocket, isWebSocketRequest } from "./websocket.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import { FailedPreconditionError, InvalidArgumentError, RuntimeError } from "../errdefs/errors.ts";

/** An Exec request as the CRI ExecRequest carries it. */
export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** An Attach request as the CRI AttachRequest carries it. */
export interface AttachRequest {
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** A PortForward request (ports are chosen per stream by the client). */
export interface PortForwardRequest {
  podSandboxId: string;
}

/** Options of {@link StreamingServer}. */
export interface StreamingServerOptions {
  /** Listen address; default 127.0.0.1 (the kubelet proxies to it). */
  address?: string;
  /** Listen port; 0 (default) picks a free one. */
  port?: number;
  /** Runs the actual exec, attach and port-forward. */
  backend: StreamingBackend;
  log?: Logger;
  /** How long a URL stays valid before first use. Default 60 s. */
  tokenTtlMs?: number;
  /** How long the client has to open its SPDY streams after the upgrade. Default 30 s. */
  streamCreationTimeoutMs?: number;
  /** Most unused tokens held at once, as the kubelet's request cache. Default 1000. */
  maxInFlight?: number;
}

type Pending =
  | { kind: "exec"; req: ExecRequest; expires: number }
  | { kind: "attach"; req: AttachRequest; expires: number }
  | { kind: "portforward"; req: PortForwardRequest; expires: number };

const HEAD_LIMIT = 16 * 1024;
const HEAD_TIMEOUT_MS = 30_000;
const PATH_RE = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/;

function newToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let bin = "";
  for (const x of b) bin += String.fromCharCode(x);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function validateStdio(
  what: string,
  r: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean },
) {
  if (r.tty && r.stderr) {
    throw new InvalidArgumentError(`${what}: tty and stderr cannot both be true`);
  }
  if (!r.stdin && !r.stdout && !r.stderr) {
    throw new InvalidArgumentError(`${what}: one of stdin, stdout, or stderr must be set`);
  }
}

/**
 * Serves exec, attach and port-forward URLs. Lifecycle: construct, `start()`, hand out URLs
 * with the `get*Url` methods, `stop()` to close the listener and every live session.
 *
 * @example
 * ```ts
 * import { StreamingServer } from "./server.ts";
 * const server = new StreamingServer({
 *   backend: { exec: async () => 0, attach: async () => {}, portForward: async () => {} },
 * });
 * await server.start();
 * console.log(server.getPortForwardUrl({ podSandboxId: "p1" }));
 * await server.stop();
 * ```
 */
export class StreamingServer {
  readonly #opts: StreamingServerOptions;
  readonly #log: Logger;
  readonly #pending = new Map<string, Pending>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #handlers = new Set<Promise<void>>();
  #listener: Deno.TcpListener | undefined;
  #acceptLoop: Promise<void> | undefined;
  #base: string | undefined;

  constructor(opts: StreamingServerOptions) {
    this.#opts = opts;
    this.#log = (opts.log ?? createLogger()).child({ component: "streaming" });
  }

  /** Starts listening; returns the base URL (e.g. http://127.0.0.1:41235). */
  start(): Promise<{ url: string }> {
    if (this.#listener) throw new FailedPreconditionError("streaming server already started");
    const hostname = this.#opts.address ?? "127.0.0.1";
    const listener = Deno.listen({ hostname, port: this.#opts.port ?? 0, transport: "tcp" });
    this.#listener = listener;
    const addr = listener.addr;
    const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
    this.#base = `http://${host}:${addr.port}`;
    this.#acceptLoop = this.#accept(listener);
    this.#log.info("streaming server listening", { url: this.#base });
    return Promise.resolve({ url: this.#base });
  }

  /** The base URL; throws before start(). */
  get url(): string {
    if (!this.#base) throw new FailedPreconditionError("streaming server not started");
    return this.#base;
  }

  /** Closes the listener and every connection, and waits for their handlers to finish. */
  async stop(): Promise<void> {
    const l = this.#listener;
    if (!l) return;
    this.#listener = undefined;
    try {
      l.close();
    } catch { /* already closed */ }
    await this.#acceptLoop;
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    while (this.#handlers.size > 0) await Promise.allSettled([...this.#handlers]);
    this.#pending.clear();
    this.#base = undefined;
  }

  /** Stores an exec request and returns its single-use URL. */
  getExecUrl(req: ExecRequest): string {
    if (!req.containerId) throw new InvalidArgumentError("exec: container id is required");
    if (req.cmd.length === 0) throw new InvalidArgumentError("exec: cmd must not be empty");
    validateStdio("exec", req);
    return this.#store({ kind: "exec", req: { ...req, cmd: [...req.cmd] }, expires: 0 });
  }

  /** Stores an attach request and returns its single-use URL. */
  getAttachUrl(req: AttachRequest): string {
    if (!req.containerId) throw new InvalidArgumentError("attach: container id is required");
    validateStdio("attach", req);
    return this.#store({ kind: "attach", req: { ...req }, expires: 0 });
  }

  /** Stores a port-forward request and returns its single-use URL. */
  getPortForwardUrl(req: PortForwardRequest): string {
    if (!req.podSandboxId) {
      throw new InvalidArgumentError("port-forward: pod sandbox id is required");
    }
    return this.#store({ kind: "portforward", req: { ...req }, expires: 0 });
  }

  #store(p: Pending): string {
    const base = this.url;
    const now = Date.now();
    for (const [t, e] of this.#pending) if (e.expires <= now) this.#pending.delete(t);
    if (this.#pending.size >= (this.#opts.maxInFlight ?? 1000)) {
      throw new RuntimeError(
        "resource-exhausted",
        `streaming server: too many pending ${p.kind} requests (${this.#pending.size})`,
      );
    }
    const token = newToken();
    p.expires = now + (this.#opts.tokenTtlMs ?? 60_000);
    this.#pending.set(token, p);
    return `${base}/${p.kind}/${token}`;
  }

  #consume(kind: string, token: string): Pending | undefined {
    const p = this.#pending.get(token);
    if (!p) return undefined;
    // Single use: gone on first lookup, whatever happens next (as the kubelet's cache).
    this.#pending.delete(token);
    if (p.kind !== kind || p.expires <= Date.now()) return undefined;
    return p;
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    while (true) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      this.#conns.add(conn);
      const h: Promise<void> = this.#serve(conn)
        .catch((e) => this.#log.warn("streaming connection failed", { error: e }))
        .finally(() => {
          this.#conns.delete(conn);
          this.#handlers.delete(h);
          try {
            conn.close();
          } catch { /* already closed */ }
        });
      this.#handlers.add(h);
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const reader = new ByteReader(conn);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reading = reader.readHead(HEAD_LIMIT);
    reading.catch(() => {}); // after a timeout, the closed socket rejects it unobserved
    const head = await Promise.race([
      reading,
      new Promise<null>((r) => timer = setTimeout(() => r(null), HEAD_TIMEOUT_MS)),
    ]).finally(() => clearTimeout(timer));
    if (!head) return;
    let req: HttpRequestHead;
    try {
      req = parseRequestHead(head);
    } catch (e) {
      if (e instanceof BadRequestError) return await writeResponse(conn, 400, [], e.message + "\n");
      throw e;
    }
    const m = PATH_RE.exec(req.path);
    if (!m) return await writeResponse(conn, 404, [], "not found\n");
    if (req.method !== "GET" && req.method !== "POST") {
      return await writeResponse(conn, 405, [["Allow", "GET, POST"]], "method not allowed\n");
    }
    const [, kind, token] = m;
    const pending = this.#consume(kind, token);
    if (!pending) return await writeResponse(conn, 404, [], "token not found or expired\n");
    const log = this.#log.child({
      kind,
      ...("containerId" in pending.req
        ? { containerId: pending.req.containerId }
        : { podSandboxId: pending.req.podSandboxId }),
    });
    try {
      if (isWebSocketRequest(req)) {
        return await this.#serveWebSocket(conn, reader, req, pending, log);
      }
      const upgrade = req.headers.get("upgrade") ?? "";
      if (upgrade.toLowerCase() === "spdy/3.1" && req.headers.hasToken("connection", "upgrade")) {
        return await this.#serveSpdy(conn, reader, req, pending, log);
      }
      return await writeResponse(
        conn,
        400,
        [],
        "Upgrade request required (SPDY/3.1 or websocket)\n",
      );
    } catch (e) {
      if (e instanceof BadRequestError) return await writeResponse(conn, 400, [], e.message + "\n");
      throw e;
    }
  }

  async #serveSpdy(
    conn: Deno.TcpConn,
    reader: ByteReader,
    req: HttpRequestHead,
    pending: Pending,
    log: Logger,
  ): Promise<void> {
    const supported: readonly string[] = pending.kind === "portforward"
      ? SPDY_PORTFORWARD_PROTOCOLS
      : SPDY_REMOTECOMMAND_PROTOCOLS;
    const offered = req.headers.tokens("x-stream-protocol-version");
    if (offered.length === 0) {
      return await writeResponse(
        conn,
        400,
        [],
        "unable to upgrade: X-Stream-Protocol-Version is required\n",
      );
    }
    // The first protocol in the client's order that we support, as httpstream.Handshake.
    const protocol = offered.find((p) => supported.includes(p));
    if (!protocol) {
      return await writeResponse(
        conn,
        403,
        supported.map((p) => ["X-Accepted-Stream-Protocol-Versions", p] as [string, string]),
        `unable to upgrade: unable to negotiate protocol: client supports [${
          offered.join(", ")
        }], ` +
          `server supports [${supported.join(", ")}]\n`,
      );
    }
    await writeResponse(conn, 101, [
      ["Connection", "Upgrade"],
      ["Upgrade", "SPDY/3.1"],
      ["X-Stream-Protocol-Version", protocol],
    ]);
    log.debug("spdy upgrade", { protocol });

    if (pending.kind === "portforward") {
      const holder: { pf?: SpdyPortForward } = {};
      const spdy = new SpdyConnection(conn, {
        role: "server",
        reader,
        log,
        onStream: (s) => holder.pf ? holder.pf.onStream(s) : false,
      });
      holder.pf = new SpdyPortForward(
        spdy,
        pending.req.podSandboxId,
        this.#opts.backend,
        log,
        this.#opts.streamCreationTimeoutMs ?? 30_000,
      );
      await spdy.closed;
      await holder.pf.idle();
      return;
    }

    const arrivals = new StreamArrivals();
    const spdy = new SpdyConnection(conn, {
      role: "server",
      reader,
      log,
      onStream: (s) => arrivals.push(s),
    });
    spdy.closed.then(() => arrivals.end());
    let session: RemoteCommandSession;
    try {
      session = await spdyRemoteCommand(
        spdy,
        arrivals,
        protocol,
        pending.req,
        this.#opts.streamCreationTimeoutMs ?? 30_000,
      );
    } catch (e) {
      log.warn("remotecommand streams not established", { error: e });
      spdy.close();
      return;
    }
    await this.#run(pending, session, log);
  }

  async #serveWebSocket(
    conn: Deno.TcpConn,
    reader: ByteReader,
    req: HttpRequestHead,
    pending: Pending,
    log: Logger,
  ): Promise<void> {
    if (pending.kind === "portforward") {
      const ports: number[] = [];
      for (const v of [...req.query.getAll("port"), ...req.query.getAll("ports")]) {
        for (const p of v.split(",")) {
          const n = parsePort(p.trim());
          if (n === undefined) {
            return await writeResponse(conn, 400, [], `invalid port ${JSON.stringify(p)}\n`);
          }
          ports.push(n);
        }
      }
      if (ports.length === 0) {
        return await writeResponse(conn, 400, [], 'query parameter "port" is required\n');
      }
      const ws = await acceptWebSocket(conn, reader, req, WS_PORTFORWARD_PROTOCOLS);
      if (!ws) return;
      log.debug("websocket port-forward", { protocol: ws.protocol, ports });
      await wsPortForward(ws, ports, pending.req.podSandboxId, this.#opts.backend, log);
      return;
    }
    const ws = await acceptWebSocket(conn, reader, req, WS_REMOTECOMMAND_PROTOCOLS);
    if (!ws) return;
    log.debug("websocket remotecommand", { protocol: ws.protocol });
    const session = await wsRemoteCommand(ws, pending.req);
    await this.#run(pending, session, log);
  }

  async #run(pending: Pending, s: RemoteCommandSession, log: Logger): Promise<void> {
    const io = {
      stdin: s.stdin,
      stdout: s.stdout,
      stderr: s.stderr,
      resize: s.resize,
      signal: s.signal,
    };
    let result: SessionResult;
    try {
      if (pending.kind === "exec") {
        const r = pending.req;
        result = {
          exitCode: await this.#opts.backend.exec({
            containerId: r.containerId,
            cmd: r.cmd,
            tty: r.tty,
            ...io,
          }),
        };
      } else if (pending.kind === "attach") {
        await this.#opts.backend.attach({
          containerId: pending.req.containerId,
          tty: pending.req.tty,
          ...io,
        });
        result = { exitCode: 0 };
      } else {
        throw new Error("unreachable: port-forward is not a remotecommand session");
      }
    } catch (e) {
      log.info("streaming session failed", { error: e });
      result = { error: (e as Error)?.message ?? String(e) };
    }
    await s.finish(result);
  }
}
