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

/** An implementation: one async function per unary method, by its camelCase name. */
export type UnaryImpl = Record<
  string,
  (req: never, call: grpc.ServerUnaryCall<unknown, unknown>) => Promise<unknown>
>;

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
      if (method.requestStream || method.responseStream) {
        throw new Error(`${method.path}: streaming methods need their own handler`);
      }
      handlers[name] = this.#unary(method.path, fn);
    }
    this.#server.addService(definition, handlers);
  }

  #unary(path: string, fn: NonNullable<UnaryImpl[string]>): grpc.handleUnaryCall<unknown, unknown> {
    return (call, callback) => {
      const start = performance.now();
      const done = (code: grpc.status) => {
        const seconds = (performance.now() - start) / 1000;
        this.#requests.inc({ method: path, code: statusName(code) });
        this.#latency.observe({ method: path }, seconds);
        if (this.#log.enabled("debug")) {
          this.#log.debug("request", { method: path, code: statusName(code), ms: seconds * 1000 });
        }
      };
      fn(call.request as never, call).then(
        (res) => {
          done(grpc.status.OK);
          callback(null, res);
        },
        (e) => {
          const err = toServiceError(e);
          done(err.code);
          if (err.code === grpc.status.INTERNAL || err.code === grpc.status.UNKNOWN) {
            this.#log.error("request failed", { method: path, err: e });
          }
          callback(err);
        },
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
