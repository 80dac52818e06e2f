/**
 * The gRPC server both APIs share, and the glue that turns plain async functions into
 * grpc-js handlers: every call is logged at debug, counted and timed for /v1/metrics, and its
 * errors mapped to status codes by status.ts.
 *
 * @example
 * ```ts
 * import { GrpcServer } from "./server.ts";
 * const srv = new GrpcServer({ log, metrics });
 * srv.add(VersionService, { version: async () => ({ version: "0.1.0" }) });
 * await srv.listen("/run/k8scontainerd/k8scontainerd.sock");
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import { statusName, toServiceError } from "./status.ts";

/** A unary method: request in, one response out. */
export type UnaryFn = (req: never, call: CallContext) => Promise<unknown>;
/** A server-streaming method: yields responses; `ctx.signal` aborts when the client goes away. */
export type ServerStreamFn = (req: never, call: CallContext) => AsyncIterable<unknown>;
/** A client-streaming method: reads requests, answers once. */
export type ClientStreamFn = (reqs: AsyncIterable<never>, call: CallContext) => Promise<unknown>;

/** What a handler knows about its call. */
export interface CallContext {
  metadata: grpc.Metadata;
  /** Aborted when the client cancels or disconnects. */
  signal: AbortSignal;
}

/** An implementation: one function per method, by its camelCase name. */
export type UnaryImpl = Record<string, UnaryFn | ServerStreamFn | ClientStreamFn>;

export interface GrpcServerOptions {
  log: Logger;
  metrics: MetricsRegistry;
  maxRecvMessageSize?: number;
  maxSendMessageSize?: number;
}

export class GrpcServer {
  readonly #server: grpc.Server;
  readonly #log: Logger;
  readonly #requests;
  readonly #latency;

  constructor(opts: GrpcServerOptions) {
    this.#server = new grpc.Server({
      "grpc.max_receive_message_length": opts.maxRecvMessageSize ?? 16 << 20,
      "grpc.max_send_message_length": opts.maxSendMessageSize ?? 16 << 20,
    });
    this.#log = opts.log.child({ component: "grpc" });
    this.#requests = opts.metrics.counter(
      "k8scontainerd_grpc_requests_total",
      "gRPC requests handled, by full method name and status code.",
      ["method", "code"],
    );
    this.#latency = opts.metrics.histogram(
      "k8scontainerd_grpc_request_duration_seconds",
      "gRPC request handling time, by full method name.",
      ["method"],
    );
  }

  /**
   * Registers a service. Methods missing from `impl` answer UNIMPLEMENTED (grpc-js's default),
   * which is what the CRI expects for RPCs a runtime does not offer.
   */
  add(definition: grpc.ServiceDefinition, impl: Partial<UnaryImpl>): void {
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(definition)) {
      const fn = impl[name];
      if (!fn) continue;
      if (method.requestStream && method.responseStream) {
        throw new Error(`${method.path}: bidirectional streaming is not supported by this glue`);
      }
      handlers[name] = method.responseStream
        ? this.#serverStream(method.path, fn as ServerStreamFn)
        : method.requestStream
        ? this.#clientStream(method.path, fn as ClientStreamFn)
        : this.#unary(method.path, fn as UnaryFn);
    }
    this.#server.addService(definition, handlers);
  }

  /** Starts the clock for one call; the returned function records its outcome. */
  #begin(path: string): (e: unknown) => grpc.ServiceError | null {
    const start = performance.now();
    return (e) => {
      const err = e === null ? null : toServiceError(e);
      const code = err ? err.code : grpc.status.OK;
      const seconds = (performance.now() - start) / 1000;
      this.#requests.inc({ method: path, code: statusName(code) });
      this.#latency.observe({ method: path }, seconds);
      if (err && (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN)) {
        this.#log.error("request failed", { method: path, err: e });
      } else if (this.#log.enabled("debug")) {
        this.#log.debug("request", {
          method: path,
          code: statusName(code),
          ms: seconds * 1000,
          ...(err ? { error: err.details } : {}),
        });
      }
      return err;
    };
  }

  #context(
    call: { metadata: grpc.Metadata; on(event: "cancelled", fn: () => void): unknown },
  ): CallContext {
    const ac = new AbortController();
    call.on("cancelled", () => ac.abort(new Error("client cancelled the call")));
    return { metadata: call.metadata, signal: ac.signal };
  }

  #unary(path: string, fn: UnaryFn): grpc.handleUnaryCall<unknown, unknown> {
    return (call, callback) => {
      const end = this.#begin(path);
      // A handler that throws before its first await still answers with a status.
      Promise.resolve().then(() => fn(call.request as never, this.#context(call))).then(
        (res) => {
          end(null);
          callback(null, res);
        },
        (e) => callback(end(e)),
      );
    };
  }

  #serverStream(
    path: string,
    fn: ServerStreamFn,
  ): grpc.handleServerStreamingCall<unknown, unknown> {
    return async (call) => {
      const end = this.#begin(path);
      const ctx = this.#context(call);
      try {
        for await (const msg of fn(call.request as never, ctx)) {
          if (ctx.signal.aborted) break;
          // Respect back-pressure: a slow client must not make the daemon buffer a whole blob.
          if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
        }
        end(null);
        call.end();
      } catch (e) {
        call.emit("error", end(e));
      }
    };
  }

  #clientStream(
    path: string,
    fn: ClientStreamFn,
  ): grpc.handleClientStreamingCall<unknown, unknown> {
    return (call, callback) => {
      const end = this.#begin(path);
      Promise.resolve().then(() => fn(call as unknown as AsyncIterable<never>, this.#context(call)))
        .then(
          (res) => {
            end(null);
            callback(null, res);
          },
          (e) => callback(end(e)),
        );
    };
  }

  /** Binds the unix socket; the caller sets its mode and owner. */
  listen(socketPath: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(
        `unix://${socketPath}`,
        grpc.ServerCredentials.createInsecure(),
        (err) => {
          if (err) reject(new Error(`cannot listen on ${socketPath}: ${err.message}`));
          else resolve();
        },
      );
    });
  }

  /** Lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  async shutdown(graceMs = 5000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
