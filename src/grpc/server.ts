/**
 * The gRPC server both APIs share: plain async functions registered per service, served on
 * the daemon's unix socket by one of two implementations, chosen by `[grpc] server`:
 * "native" (grpc_native_server.ts: HTTP/2 written here, on `Deno.listen`) or "grpc-js"
 * (grpcjs_server.ts: @grpc/grpc-js on node:http2). Either way every call is logged at debug,
 * counted and timed for /v1/metrics (call_recorder.ts), and its errors mapped to status codes
 * by status.ts. The implementation's module is loaded at `listen`, so the one not chosen is
 * never loaded.
 *
 * @example
 * ```ts
 * import { GrpcServer } from "./server.ts";
 * const srv = new GrpcServer({ log, metrics, implementation: "native" });
 * srv.add(VersionService, { version: async () => ({ version: "0.1.0" }) });
 * await srv.listen("/run/k8scontainerd/k8scontainerd.sock");
 * ```
 */
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import { UnavailableError } from "../errdefs/errors.ts";
import type { CallMetadata } from "./call_metadata.ts";
import type { MethodTable } from "./rpc_service.ts";

/** A unary method: request in, one response out. */
export type UnaryFn = (req: never, call: CallContext) => Promise<unknown>;
/** A server-streaming method: yields responses; `ctx.signal` aborts when the client goes away. */
export type ServerStreamFn = (req: never, call: CallContext) => AsyncIterable<unknown>;
/** A client-streaming method: reads requests, answers once. */
export type ClientStreamFn = (reqs: AsyncIterable<never>, call: CallContext) => Promise<unknown>;

/** Why a server stream ended: the daemon is stopping (UNAVAILABLE, so clients retry). */
export class ShuttingDown extends UnavailableError {
  constructor() {
    super("the daemon is shutting down");
  }
}

/** What a handler knows about its call. */
export interface CallContext {
  /** The request metadata (grpc-js `Metadata`, or the native server's HeaderMetadata). */
  metadata: CallMetadata;
  /** Aborted when the client cancels or disconnects, or the deadline passes. */
  signal: AbortSignal;
}

/** An implementation: one function per method, by its camelCase name. */
export type UnaryImpl = Record<string, UnaryFn | ServerStreamFn | ClientStreamFn>;

/** Which implementation serves the socket (`[grpc] server` in the config). */
export type GrpcImplementation = "native" | "grpc-js";

export interface GrpcServerOptions {
  log: Logger;
  metrics: MetricsRegistry;
  maxRecvMessageSize?: number;
  maxSendMessageSize?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS per connection (default 1000). */
  maxConcurrentStreams?: number;
  /** grpc-js only: what an invalid `:authority` becomes at the edge. Default "localhost". */
  authority?: string;
  /** Default "native". */
  implementation?: GrpcImplementation;
}

/** What each implementation provides (GrpcServer's own API). */
export interface GrpcServerBackend {
  add(definition: MethodTable, impl: Partial<UnaryImpl>): void;
  listen(socketPath: string): Promise<void>;
  shutdown(graceMs?: number): Promise<void>;
}

/**
 * The daemon's gRPC server.
 *
 * @example
 * ```ts
 * const srv = new GrpcServer({ log, metrics });
 * srv.add(RuntimeServiceService, runtimeImpl);
 * await srv.listen(socket);
 * await srv.shutdown(5000);
 * ```
 */
export class GrpcServer implements GrpcServerBackend {
  readonly #opts: GrpcServerOptions;
  readonly #services: [MethodTable, Partial<UnaryImpl>][] = [];
  #backend: GrpcServerBackend | undefined;

  constructor(opts: GrpcServerOptions) {
    this.#opts = opts;
  }

  /** The implementation in use. */
  get implementation(): GrpcImplementation {
    return this.#opts.implementation ?? "native";
  }

  /**
   * Registers a service. Methods missing from `impl` answer UNIMPLEMENTED, which is what the
   * CRI expects for RPCs a runtime does not offer.
   */
  add(definition: MethodTable, impl: Partial<UnaryImpl>): void {
    for (const [name, method] of Object.entries(definition)) {
      if (impl[name] && method.requestStream && method.responseStream) {
        throw new Error(`${method.path}: bidirectional streaming is not supported by this glue`);
      }
    }
    if (this.#backend) this.#backend.add(definition, impl);
    else this.#services.push([definition, impl]);
  }

  /**
   * Serves on the unix socket at `socketPath` (the caller has prepared the path and sets its
   * mode and owner). May be called more than once, for more sockets.
   */
  async listen(socketPath: string): Promise<void> {
    if (!this.#backend) {
      this.#backend = this.implementation === "native"
        ? new (await import("./grpc_native_server.ts")).NativeGrpcServer(this.#opts)
        : new (await import("./grpcjs_server.ts")).GrpcJsServer(this.#opts);
      for (const [d, i] of this.#services.splice(0)) this.#backend.add(d, i);
    }
    await this.#backend.listen(socketPath);
  }

  /**
   * Stops accepting (the socket file is removed), ends server-streaming calls (UNAVAILABLE:
   * event subscriptions would otherwise hold the daemon for the whole grace period), sends every
   * connection GOAWAY and lets in-flight unary calls finish for up to `graceMs`, then cuts the
   * rest.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    await this.#backend?.shutdown(graceMs);
  }
}
