/**
 * The gRPC edge: the daemon accepts on its public unix socket itself and hands every connection
 * to grpc-js's HTTP/2 server in-process (`Server.createConnectionInjector`), the client→server
 * bytes passed through the authority rewriter on the way in. One socket, no proxy hop: each
 * connection is a Duplex over the accepted `Deno.Conn`, read side rewritten.
 *
 * Why the rewriter stays: grpc-go clients (kubelet, crictl) dialing `unix:///run/x.sock` send the
 * socket path as `:authority`, which Deno's HTTP/2 server answers with GOAWAY PROTOCOL_ERROR;
 * and a client's GOAWAY can abort Deno's HTTP/2 server (denoland/deno#36788), so the rewriter
 * drops those too (see ClientStreamRewriter in authority_proxy.ts).
 *
 * @example
 * ```ts
 * import { serveUnixSocket } from "./edge.ts";
 * const edge = await serveUnixSocket({
 *   path: "/run/k8scontainerd/k8scontainerd.sock",
 *   inject: (conn) => injector.injectConnection(conn),
 *   log,
 * });
 * // ...
 * await edge.close();
 * ```
 */
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import type { Logger } from "../log/logger.ts";
import { ClientStreamRewriter, ProxyProtocolError } from "./authority_proxy.ts";

/** Read buffer per connection. */
const READ_BUFFER = 64 * 1024;

export interface EdgeOptions {
  /** The public unix socket clients dial; the caller prepared the path (no live socket there). */
  path: string;
  /** Hands one accepted, rewritten connection to the HTTP/2 server. */
  inject: (conn: Duplex) => void;
  /** What an invalid `:authority` becomes. Default "localhost" (what grpc-js clients send). */
  authority?: string;
  log?: Pick<Logger, "debug" | "warn">;
}

export interface Edge {
  /** Stops accepting and removes the socket file; open connections stay (see `closeAll`). */
  stopAccepting(): Promise<void>;
  /** Cuts every connection still open. */
  closeAll(): void;
  /** Connections open now. */
  readonly connections: number;
  /** Resolves once no connection is open (at once when none is). */
  drained(): Promise<void>;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/**
 * One accepted connection as a node Duplex, the shape node:http2 serves: reads are the client's
 * bytes through a ClientStreamRewriter (copied out of the read buffer), writes go to the
 * connection as they are.
 */
export class RewritingConnection extends Duplex {
  readonly #conn: Deno.Conn;
  readonly #rewriter: ClientStreamRewriter;
  readonly #log: EdgeOptions["log"];
  #started = false;
  #wanted = true;
  #wake: (() => void) | undefined;
  #closed = false;
  /** What node:http2 and grpc-js read off a socket. */
  readonly remoteAddress = "unix";
  readonly remotePort = undefined;

  constructor(conn: Deno.Conn, opts: Pick<EdgeOptions, "authority" | "log"> = {}) {
    super({ allowHalfOpen: false });
    this.#conn = conn;
    this.#rewriter = new ClientStreamRewriter(opts.authority ?? "localhost");
    this.#log = opts.log;
  }

  /** Header blocks whose `:authority` was replaced so far. */
  get rewritten(): number {
    return this.#rewriter.rewritten;
  }

  override _read(): void {
    this.#wanted = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    if (!this.#started) {
      this.#started = true;
      void this.#readLoop();
    }
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER);
    try {
      for (;;) {
        if (!this.#wanted) await new Promise<void>((r) => (this.#wake = r));
        if (this.#closed) return;
        const n = await this.#conn.read(buf);
        if (n === null) {
          if (!this.#rewriter.idle) this.#log?.debug("edge: client ended mid-frame");
          this.push(null);
          return;
        }
        const segments = this.#rewriter.push(buf.subarray(0, n));
        if (segments.length === 0) continue;
        this.#wanted = this.push(join(segments));
      }
    } catch (e) {
      if (this.#closed) return;
      const error = e instanceof Error ? e.message : String(e);
      if (e instanceof ProxyProtocolError || (e instanceof Error && e.name === "HpackError")) {
        this.#log?.warn("edge: dropping connection: bad client frames", { error });
      } else {
        this.#log?.debug("edge: connection read failed", { error });
      }
      this.destroy();
    }
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    cb: (error?: Error | null) => void,
  ): void {
    writeAll(this.#conn, chunk).then(() => cb(), (e) => cb(e));
  }

  override _writev(
    chunks: { chunk: Uint8Array }[],
    cb: (error?: Error | null) => void,
  ): void {
    writeAll(this.#conn, join(chunks.map((c) => c.chunk))).then(() => cb(), (e) => cb(e));
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.#conn.closeWrite().then(() => cb(), () => cb());
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
    cb(error);
  }

  /** What net.Socket offers and node:http2 may call; meaningless on a unix socket. */
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

function join(parts: Uint8Array[]): Buffer {
  if (parts.length === 1) return Buffer.from(parts[0]); // a copy: the read buffer is reused
  let size = 0;
  for (const p of parts) size += p.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Listens on `opts.path` and injects every accepted connection, wrapped in a
 * RewritingConnection, through `opts.inject`. Resolves once the socket listens.
 */
export function serveUnixSocket(opts: EdgeOptions): Promise<Edge> {
  const listener = Deno.listen({ transport: "unix", path: opts.path });
  const open = new Set<RewritingConnection>();
  let waiters: (() => void)[] = [];
  let closing = false;

  const acceptLoop = (async () => {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (closing) return;
        opts.log?.warn("edge: accept failed", {
          error: e instanceof Error ? e.message : String(e),
        });
        return;
      }
      const duplex = new RewritingConnection(conn, opts);
      open.add(duplex);
      duplex.once("close", () => {
        open.delete(duplex);
        if (open.size === 0) {
          for (const w of waiters) w();
          waiters = [];
        }
        if (duplex.rewritten > 0) {
          opts.log?.debug("edge: connection done", { rewrittenHeaderBlocks: duplex.rewritten });
        }
      });
      duplex.on("error", () => {}); // node:http2 reports what matters; no unhandled errors
      try {
        opts.inject(duplex);
      } catch (e) {
        opts.log?.warn("edge: the HTTP/2 server refused a connection", {
          error: e instanceof Error ? e.message : String(e),
        });
        duplex.destroy();
      }
    }
  })();

  let stopped: Promise<void> | undefined;
  return Promise.resolve({
    stopAccepting() {
      stopped ??= (async () => {
        closing = true;
        try {
          listener.close();
        } catch { /* already closed */ }
        await acceptLoop;
        await Deno.remove(opts.path).catch(() => {});
      })();
      return stopped;
    },
    closeAll() {
      for (const c of open) c.destroy();
    },
    get connections() {
      return open.size;
    },
    drained() {
      return open.size === 0 ? Promise.resolve() : new Promise((r) => waiters.push(r));
    },
  });
}
