/**
 * The gRPC edge: the daemon accepts on its public unix socket itself and hands every connection
 * to grpc-js's HTTP/2 server in-process (`Server.createConnectionInjector`), the client→server
 * bytes passed through the authority rewriter on the way in. One socket, no proxy hop: each
 * connection is a Duplex over the accepted net.Socket, read side rewritten.
 *
 * Connections are accepted with node:net (not Deno.listen): node:http2 writes each outgoing
 * chunk with `socket.write`, and a net.Socket takes it at once, where awaiting `Deno.Conn.write`
 * per chunk cost an event-loop round trip per response (measured: ListContainers at 10
 * containers 1.39 ms p50 that way against 0.89 ms on a socket grpc-js bound itself).
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
import * as net from "node:net";
import type { Logger } from "../log/logger.ts";
import { ClientStreamRewriter, ProxyProtocolError } from "./authority_proxy.ts";

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

/**
 * One accepted connection as a node Duplex, the shape node:http2 serves: reads are the client's
 * bytes through a ClientStreamRewriter, writes go to the socket as they are.
 */
export class RewritingConnection extends Duplex {
  readonly #socket: net.Socket;
  readonly #rewriter: ClientStreamRewriter;
  readonly #log: EdgeOptions["log"];
  /** What node:http2 and grpc-js read off a socket. */
  readonly remoteAddress = "unix";
  readonly remotePort = undefined;

  constructor(socket: net.Socket, opts: Pick<EdgeOptions, "authority" | "log"> = {}) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.#rewriter = new ClientStreamRewriter(opts.authority ?? "localhost");
    this.#log = opts.log;
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("end", () => {
      if (!this.#rewriter.idle) this.#log?.debug("edge: client ended mid-frame");
      this.push(null);
    });
    socket.on("error", (e) => {
      this.#log?.debug("edge: connection error", { error: e.message });
      this.destroy();
    });
    socket.on("close", () => this.destroy());
  }

  /** Header blocks whose `:authority` was replaced so far. */
  get rewritten(): number {
    return this.#rewriter.rewritten;
  }

  #onData(chunk: Buffer): void {
    let segments: Uint8Array[];
    try {
      segments = this.#rewriter.push(chunk);
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      if (e instanceof ProxyProtocolError || (e instanceof Error && e.name === "HpackError")) {
        this.#log?.warn("edge: dropping connection: bad client frames", { error });
      } else {
        this.#log?.warn("edge: dropping connection", { error });
      }
      this.destroy();
      return;
    }
    if (segments.length === 0) return;
    // A socket's data chunk is ours to keep: passed-through segments are views of it.
    if (!this.push(join(segments))) this.#socket.pause();
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    cb: (error?: Error | null) => void,
  ): void {
    // node:http2 writes a response as several chunks (HEADERS, DATA, trailers), grpc-js from
    // separate ticks: corked until the event loop's check phase, they leave in one writev
    // instead of three writes (counted: 3 -> 1 per unary call).
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      setImmediate(this.#uncork);
    }
    if (this.#socket.write(chunk)) cb();
    else this.#socket.once("drain", () => cb());
  }

  #corked = false;
  readonly #uncork = () => {
    this.#corked = false;
    this.#socket.uncork();
  };

  override _writev(
    chunks: { chunk: Uint8Array }[],
    cb: (error?: Error | null) => void,
  ): void {
    this._write(join(chunks.map((c) => c.chunk)), "", cb);
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.#socket.end(() => cb());
  }

  override _destroy(error: Error | null, cb: (error?: Error | null) => void): void {
    this.#socket.destroy();
    cb(error);
  }

  /** What net.Socket offers and node:http2 may call. */
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
    this.#socket.ref();
    return this;
  }
  unref(): this {
    this.#socket.unref();
    return this;
  }
}

function join(parts: Uint8Array[]): Buffer {
  if (parts.length === 1) {
    const p = parts[0];
    return Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  }
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
export async function serveUnixSocket(opts: EdgeOptions): Promise<Edge> {
  const open = new Set<RewritingConnection>();
  let waiters: (() => void)[] = [];
  const server = net.createServer({ allowHalfOpen: false }, (socket) => {
    const duplex = new RewritingConnection(socket, opts);
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
  });
  server.on("error", (e) => opts.log?.warn("edge: accept failed", { error: e.message }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.path, () => {
      server.off("error", reject);
      resolve();
    });
  });

  let stopped: Promise<void> | undefined;
  return {
    stopAccepting() {
      stopped ??= (async () => {
        // Not awaiting close's callback: it waits for every open connection to end.
        server.close();
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
  };
}
