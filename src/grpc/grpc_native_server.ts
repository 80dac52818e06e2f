/**
 * The native implementation behind GrpcServer (`[grpc] server = "native"`): gRPC over HTTP/2
 * written here (h2_connection.ts), on `Deno.listen({ transport: "unix" })`, with no node:http2
 * and no grpc-js server. It dispatches by the `:path` of the ts-proto service definitions,
 * frames messages (grpc_message.ts), turns `grpc-timeout` into a deadline, and ends every call
 * with trailers (or a trailers-only response for an error before any message).
 *
 * @example
 * ```ts
 * import { NativeGrpcServer } from "./grpc_native_server.ts";
 * const srv = new NativeGrpcServer({ log, metrics });
 * srv.add(VersionService, { version: async () => ({ version: "0.1.0" }) });
 * await srv.listen("/run/k8scontainerd/k8scontainerd.sock");
 * await srv.shutdown(5000);
 * ```
 */
import type { MethodTable } from "./rpc_service.ts";
import type { StatusError } from "./status.ts";
import type { Logger } from "../log/logger.ts";
import { RuntimeError } from "../errdefs/errors.ts";
import { CallRecorder, CODE } from "./call_recorder.ts";
import { HeaderMetadata } from "./call_metadata.ts";
import { H2Connection, type H2Stream } from "./h2_connection.ts";
import type { HeaderField } from "./hpack.ts";
import {
  MessageReader,
  MessageTooLarge,
  parseTimeout,
  percentEncode,
  writePrefix,
} from "./grpc_message.ts";
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

type Kind = "unary" | "server" | "client";

interface Method {
  path: string;
  kind: Kind;
  fn: UnaryFn | ServerStreamFn | ClientStreamFn;
  decode: (b: Uint8Array) => unknown;
  encode: (v: unknown) => Uint8Array;
}

const RESPONSE_HEADERS: readonly HeaderField[] = [
  { name: ":status", value: "200" },
  { name: "content-type", value: "application/grpc" },
];

/** The call's deadline passed (DEADLINE_EXCEEDED). */
class DeadlineExceeded extends RuntimeError {
  constructor() {
    super("deadline-exceeded", "Deadline exceeded");
  }
}
/** The client reset the stream or went away (CANCELLED). */
class ClientCancelled extends RuntimeError {
  constructor() {
    super("canceled", "client cancelled the call");
  }
}
/** The request did not carry exactly one message on a unary/server-streaming method. */
class BadRequestCount extends RuntimeError {
  constructor(n: number) {
    super("internal", n === 0 ? "no request message received" : "more than one request message");
  }
}

/** GrpcServer on HTTP/2 written here. */
export class NativeGrpcServer implements GrpcServerBackend {
  readonly #log: Logger;
  readonly #recorder: CallRecorder;
  readonly #methods = new Map<string, Method>();
  readonly #maxRecv: number;
  readonly #maxSend: number;
  readonly #maxStreams: number;
  readonly #listeners: { listener: Deno.Listener; path: string; done: Promise<void> }[] = [];
  readonly #connections = new Set<H2Connection>();
  /** Server-streaming calls in flight: ended at shutdown (a subscription never ends itself). */
  readonly #streams = new Set<AbortController>();
  #stopping = false;

  constructor(opts: GrpcServerOptions) {
    this.#log = opts.log.child({ component: "grpc" });
    this.#recorder = new CallRecorder(this.#log, opts.metrics);
    this.#maxRecv = opts.maxRecvMessageSize ?? 16 << 20;
    this.#maxSend = opts.maxSendMessageSize ?? 16 << 20;
    this.#maxStreams = opts.maxConcurrentStreams ?? 1000;
  }

  /** Registers a service; methods missing from `impl` answer UNIMPLEMENTED. */
  add(definition: MethodTable, impl: Partial<UnaryImpl>): void {
    for (const [name, m] of Object.entries(definition)) {
      const fn = impl[name];
      if (!fn) continue;
      if (m.requestStream && m.responseStream) {
        throw new Error(`${m.path}: bidirectional streaming is not supported by this glue`);
      }
      this.#methods.set(m.path, {
        path: m.path,
        kind: m.responseStream ? "server" : m.requestStream ? "client" : "unary",
        fn,
        decode: m.requestDeserialize as (b: Uint8Array) => unknown,
        encode: m.responseSerialize as (v: unknown) => Uint8Array,
      });
    }
  }

  /** Serves on the unix socket at `socketPath` (the caller prepared the path). */
  listen(socketPath: string): Promise<void> {
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ transport: "unix", path: socketPath });
    } catch (e) {
      return Promise.reject(
        new Error(`cannot listen on ${socketPath}: ${e instanceof Error ? e.message : e}`),
      );
    }
    this.#listeners.push({ listener, path: socketPath, done: this.#accept(listener) });
    return Promise.resolve();
  }

  async #accept(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#stopping) {
          conn.close();
          continue;
        }
        const h2 = new H2Connection(conn, {
          maxConcurrentStreams: this.#maxStreams,
          log: this.#log,
          onStream: (s) => this.#onStream(s),
        });
        this.#connections.add(h2);
        h2.closed.then(() => this.#connections.delete(h2));
      }
    } catch (e) {
      if (!this.#stopping) this.#log.warn("accept failed", { error: (e as Error).message });
    }
  }

  #onStream(s: H2Stream): void {
    const path = s.header(":path") ?? "";
    if (s.header(":method") !== "POST") {
      s.respond([{ name: ":status", value: "405" }], true);
      return;
    }
    const ct = s.header("content-type") ?? "";
    if (!ct.startsWith("application/grpc")) {
      s.respond([{ name: ":status", value: "415" }, {
        name: "grpc-status",
        value: String(CODE.INTERNAL),
      }, {
        name: "grpc-message",
        value: percentEncode(`invalid gRPC request content-type "${ct}"`),
      }], true);
      return;
    }
    const m = this.#methods.get(path);
    if (!m) {
      trailersOnly(s, CODE.UNIMPLEMENTED, `The server does not implement the method ${path}`);
      return;
    }
    new Call(this, s, m).start();
  }

  /** @internal */ get maxRecv(): number {
    return this.#maxRecv;
  }
  /** @internal */ get maxSend(): number {
    return this.#maxSend;
  }
  /** @internal */ get recorder(): CallRecorder {
    return this.#recorder;
  }
  /** @internal */ get streamCalls(): Set<AbortController> {
    return this.#streams;
  }

  /**
   * Stops accepting and removes the socket files, ends server-streaming calls with
   * UNAVAILABLE, sends GOAWAY on every connection, lets in-flight calls finish for up to
   * `graceMs`, then cuts the rest.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    for (const l of this.#listeners.splice(0)) {
      try {
        l.listener.close();
      } catch {
        // closed already
      }
      await l.done;
      await Deno.remove(l.path).catch(() => {});
    }
    for (const ac of this.#streams) ac.abort(new ShuttingDown());
    for (const c of this.#connections) c.goaway();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceOver = new Promise<"timeout">((
      r,
    ) => (timer = setTimeout(() => r("timeout"), graceMs)));
    const drained = Promise.all([...this.#connections].map((c) => c.closed));
    const how = await Promise.race([drained, graceOver]);
    clearTimeout(timer);
    if (how === "timeout") {
      this.#log.warn("calls still in flight after the grace period: cutting them", {
        graceMs,
        connections: this.#connections.size,
      });
      for (const c of this.#connections) c.destroy();
      await Promise.all([...this.#connections].map((c) => c.closed));
    }
  }
}

/** A trailers-only response: the status in the one HEADERS frame, with END_STREAM. */
function trailersOnly(s: H2Stream, code: number, message: string): void {
  const fields: HeaderField[] = [...RESPONSE_HEADERS, { name: "grpc-status", value: String(code) }];
  if (message) fields.push({ name: "grpc-message", value: percentEncode(message) });
  s.respond(fields, true);
}

/** One call on one stream: request in, handler run, response and status out. */
class Call {
  readonly #srv: NativeGrpcServer;
  readonly #s: H2Stream;
  readonly #m: Method;
  readonly #ac = new AbortController();
  readonly #end: (e: unknown) => StatusError | null;
  readonly #reader: MessageReader;
  #requests: Uint8Array[] = [];
  /** Client streaming: messages not yet pulled, and who waits for the next. */
  #queue: { msg: Uint8Array; wire: number }[] = [];
  #wake: (() => void) | null = null;
  #remoteDone = false;
  #readError: unknown = null;
  #headersSent = false;
  #done = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(srv: NativeGrpcServer, s: H2Stream, m: Method) {
    this.#srv = srv;
    this.#s = s;
    this.#m = m;
    this.#end = srv.recorder.begin(m.path);
    this.#reader = new MessageReader(srv.maxRecv);
  }

  start(): void {
    const s = this.#s;
    s.onabort = () => {
      if (this.#done) return;
      this.#finish(new ClientCancelled());
    };
    const timeout = parseTimeout(s.header("grpc-timeout"));
    // A timer holds at most 2^31-1 ms (~24 days; a longer one fires at once): past that the
    // deadline is as good as none (the CLI's `run` waits a year for its task).
    if (timeout !== undefined && timeout <= 0x7fffffff) {
      this.#timer = setTimeout(() => this.#finish(new DeadlineExceeded()), Math.max(0, timeout));
    }
    if (this.#m.kind === "client") {
      s.ondata = (chunk, end) => this.#onStreamData(chunk, end);
      this.#run();
      return;
    }
    s.ondata = (chunk, end) => {
      try {
        this.#reader.push(chunk, (msg) => this.#requests.push(msg));
        s.consume(chunk.length);
      } catch (e) {
        this.#finish(e);
        return;
      }
      if (!end) return;
      if (this.#requests.length !== 1 || !this.#reader.idle) {
        this.#finish(new BadRequestCount(this.#requests.length));
        return;
      }
      this.#run();
    };
  }

  get #ctx(): CallContext {
    return { metadata: new HeaderMetadata(this.#s.headers), signal: this.#ac.signal };
  }

  #run(): void {
    const m = this.#m;
    if (this.#done) return;
    if (m.kind === "server") {
      this.#serverStream();
      return;
    }
    Promise.resolve().then(() => {
      if (m.kind === "unary") {
        const req = m.decode(this.#requests[0]);
        this.#requests = [];
        return (m.fn as UnaryFn)(req as never, this.#ctx);
      }
      return (m.fn as ClientStreamFn)(this.#incoming() as AsyncIterable<never>, this.#ctx);
    }).then((res) => {
      if (this.#done) return;
      try {
        this.#send(res);
      } catch (e) {
        return this.#finish(e);
      }
      this.#finish(null);
    }, (e) => this.#finish(e));
  }

  async #serverStream(): Promise<void> {
    const m = this.#m;
    const ac = this.#ac;
    const srv = this.#srv;
    srv.streamCalls.add(ac);
    // Shutdown ends the stream at once: a generator stuck on a subscription need not notice.
    const onAbort = () => {
      if (ac.signal.reason instanceof ShuttingDown) this.#finish(ac.signal.reason);
    };
    ac.signal.addEventListener("abort", onAbort);
    try {
      const req = m.decode(this.#requests[0]);
      this.#requests = [];
      for await (const msg of (m.fn as ServerStreamFn)(req as never, this.#ctx)) {
        if (this.#done) break;
        const wait = this.#send(msg);
        // Respect back-pressure: a slow client must not make the daemon buffer a whole blob.
        if (wait) await wait;
        if (this.#done) break;
      }
      this.#finish(null);
    } catch (e) {
      this.#finish(e);
    } finally {
      ac.signal.removeEventListener("abort", onAbort);
      srv.streamCalls.delete(ac);
    }
  }

  /** Sends one response message; a promise when the caller should wait (back-pressure). */
  #send(res: unknown): Promise<void> | undefined {
    const bytes = this.#m.encode(res);
    const max = this.#srv.maxSend;
    if (bytes.length > max) throw new MessageTooLarge(bytes.length, max, "Sent");
    const s = this.#s;
    if (!this.#headersSent) {
      this.#headersSent = true;
      s.respond(RESPONSE_HEADERS as HeaderField[]);
    }
    if (bytes.length <= 16 << 10) {
      const out = new Uint8Array(5 + bytes.length);
      writePrefix(out, bytes.length);
      out.set(bytes, 5);
      return s.write(out);
    }
    const prefix = new Uint8Array(5);
    writePrefix(prefix, bytes.length);
    s.write(prefix);
    return s.write(bytes);
  }

  /** Ends the call once: the status to the client (unless it is gone) and to the metrics. */
  #finish(e: unknown): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    if (e !== null && !this.#ac.signal.aborted) this.#ac.abort(e);
    this.#wake?.();
    let err: StatusError | null;
    try {
      err = this.#end(e);
    } catch (x) {
      err = this.#end(x);
    }
    const s = this.#s;
    if (s.localClosed) return;
    if (!err) {
      if (!this.#headersSent) s.respond(RESPONSE_HEADERS as HeaderField[]);
      s.end([{ name: "grpc-status", value: "0" }]);
      return;
    }
    const message = err.details ?? "";
    if (!this.#headersSent) trailersOnly(s, err.code, message);
    else {
      s.end([
        { name: "grpc-status", value: String(err.code) },
        { name: "grpc-message", value: percentEncode(message) },
      ]);
    }
  }

  // --- client streaming ---

  #onStreamData(chunk: Uint8Array, end: boolean): void {
    try {
      this.#reader.push(chunk, (msg, wire) => this.#queue.push({ msg, wire }));
    } catch (e) {
      this.#readError = e;
      this.#finish(e);
      return;
    }
    if (end) {
      this.#remoteDone = true;
      if (!this.#reader.idle) {
        this.#readError = new RuntimeError("internal", "stream ended mid-message");
      }
    }
    this.#wake?.();
  }

  async *#incoming(): AsyncGenerator<unknown> {
    while (true) {
      const next = this.#queue.shift();
      if (next) {
        // Give the bytes back to the client's window only as the handler takes them.
        this.#s.consume(next.wire);
        yield this.#m.decode(next.msg);
        continue;
      }
      if (this.#readError) throw this.#readError;
      if (this.#done) throw this.#ac.signal.reason ?? new ClientCancelled();
      if (this.#remoteDone) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }
}
