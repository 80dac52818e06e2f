/**
 * The grpc-js implementation behind GrpcServer (`[grpc] server = "grpc-js"`): the glue that
 * turns plain async functions into grpc-js handlers, served on node:http2 through the edge
 * (edge.ts) that accepts on the unix socket and fixes up grpc-go's `:authority`.
 *
 * @example
 * ```ts
 * import { GrpcJsServer } from "./grpcjs_server.ts";
 * const srv = new GrpcJsServer({ log, metrics });
 * srv.add(VersionService, { version: async () => ({ version: "0.1.0" }) });
 * await srv.listen("/run/k8scontainerd/k8scontainerd.sock");
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log/logger.ts";
import { type Edge, serveUnixSocket } from "./edge.ts";
import { CallRecorder } from "./call_recorder.ts";
import { grpcJsDefinition } from "./grpcjs_definition.ts";
import type { MethodTable } from "./rpc_service.ts";
import {
  type CallContext,
  type ClientStreamFn,
  type GrpcServerBackend,
  type GrpcServerOptions,
  type ServerStreamFn,
  ShuttingDown,
  type UnaryFn,
  type UnaryImpl,
} from "./server.ts";

/** GrpcServer on grpc-js. */
export class GrpcJsServer implements GrpcServerBackend {
  readonly #server: grpc.Server;
  readonly #log: Logger;
  readonly #recorder: CallRecorder;
  readonly #authority: string;
  #edges: Edge[] = [];
  /** Server-streaming calls in flight: ended at shutdown (a subscription never ends itself). */
  readonly #streams = new Set<AbortController>();

  constructor(opts: GrpcServerOptions) {
    this.#authority = opts.authority ?? "localhost";
    this.#server = new grpc.Server({
      "grpc.max_receive_message_length": opts.maxRecvMessageSize ?? 16 << 20,
      "grpc.max_send_message_length": opts.maxSendMessageSize ?? 16 << 20,
      "grpc.max_concurrent_streams": opts.maxConcurrentStreams ?? 1000,
    });
    this.#log = opts.log.child({ component: "grpc" });
    this.#recorder = new CallRecorder(this.#log, opts.metrics);
  }

  /**
   * Registers a service. Methods missing from `impl` answer UNIMPLEMENTED (grpc-js's default),
   * which is what the CRI expects for RPCs a runtime does not offer.
   */
  add(definition: MethodTable, impl: Partial<UnaryImpl>): void {
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const [name, method] of Object.entries(definition)) {
      const fn = impl[name];
      if (!fn) continue;
      handlers[name] = method.responseStream
        ? this.#serverStream(method.path, fn as ServerStreamFn)
        : method.requestStream
        ? this.#clientStream(method.path, fn as ClientStreamFn)
        : this.#unary(method.path, fn as UnaryFn);
    }
    this.#server.addService(grpcJsDefinition(definition), handlers);
  }

  #begin(path: string): (e: unknown) => grpc.ServiceError | null {
    const end = this.#recorder.begin(path);
    return (e) => {
      const err = end(e);
      return err && Object.assign(err, { metadata: new grpc.Metadata() });
    };
  }

  #context(
    call: { metadata: grpc.Metadata; on(event: "cancelled", fn: () => void): unknown },
    ac = new AbortController(),
  ): CallContext {
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
      const ac = new AbortController();
      this.#streams.add(ac);
      const ctx = this.#context(call, ac);
      try {
        for await (const msg of fn(call.request as never, ctx)) {
          if (ctx.signal.aborted) break;
          // Respect back-pressure: a slow client must not make the daemon buffer a whole blob.
          if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
        }
        if (ctx.signal.reason instanceof ShuttingDown) throw ctx.signal.reason;
        end(null);
        call.end();
      } catch (e) {
        const err = end(
          e instanceof ShuttingDown || ctx.signal.reason instanceof ShuttingDown
            ? ctx.signal.reason
            : e,
        );
        call.emit("error", err);
      } finally {
        this.#streams.delete(ac);
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

  /**
   * Serves on the unix socket at `socketPath` (the caller has prepared the path and sets its
   * mode and owner): connections are accepted here, their client→server bytes passed through
   * the authority rewriter (see edge.ts), and injected into grpc-js's HTTP/2 server in-process.
   */
  async listen(socketPath: string): Promise<void> {
    const injector = this.#server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    try {
      this.#edges.push(
        await serveUnixSocket({
          path: socketPath,
          inject: (conn) => injector.injectConnection(conn),
          authority: this.#authority,
          log: this.#log,
        }),
      );
    } catch (e) {
      injector.destroy();
      throw new Error(`cannot listen on ${socketPath}: ${e instanceof Error ? e.message : e}`);
    }
  }

  /**
   * Stops accepting (the socket file is removed), ends server-streaming calls (UNAVAILABLE:
   * event subscriptions would otherwise hold the daemon for the whole grace period), sends every
   * connection GOAWAY and lets in-flight unary calls finish for up to `graceMs`, then cuts the
   * rest.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    await Promise.all(this.#edges.map((e) => e.stopAccepting()));
    for (const ac of this.#streams) ac.abort(new ShuttingDown());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"timeout">((
      r,
    ) => (timer = setTimeout(() => r("timeout"), graceMs)));
    // GOAWAY on every session; under Deno its callback does not wait for open streams, so the
    // connections closing (node:http2 closes each once its last stream is done) is the signal.
    const graceful = (async () => {
      await new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
      await Promise.all(this.#edges.map((e) => e.drained()));
    })();
    const how = await Promise.race([graceful, graceOver]);
    clearTimeout(timer);
    if (how === "timeout") {
      this.#log.warn("calls still in flight after the grace period: cutting them", {
        graceMs,
        connections: this.#edges.reduce((n, e) => n + e.connections, 0),
      });
      this.#server.forceShutdown();
    }
    for (const e of this.#edges) e.closeAll();
  }
}
