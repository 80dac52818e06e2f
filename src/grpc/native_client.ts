/**
 * A small gRPC client over HTTP/2 (RFC 9113) on a unix socket, for the CLI: unary,
 * server-streaming and client-streaming calls with deadlines, cancellation and flow control
 * both ways — without @grpc/grpc-js, whose loading alone costs the CLI ~45 ms and ~10 MB, and
 * without node:http2. One connection, calls multiplexed on it; the method tables come from
 * services.ts.
 *
 * @example
 * ```ts
 * import { NativeChannel } from "./native_client.ts";
 * import { VersionService } from "./services.ts";
 * const ch = await NativeChannel.connect("/run/k8scontainerd/k8scontainerd.sock");
 * const v = await ch.unary(VersionService.version, {}, { timeoutMs: 5000 });
 * ch.close();
 * ```
 */
import { type HeaderField, HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  FLAG,
  FRAME,
  type Frame,
  FrameDecoder,
  FrameSizeError,
  H2_ERROR,
  MAX_WINDOW,
  PREFACE,
  readU32,
  SETTING,
  u32,
} from "./h2_frames.ts";
import { checkFrame, ConnectionError, readSettings, StreamError, unpad } from "./h2_frame_rules.ts";
import { HeaderBlock } from "./h2_header_block.ts";
import { encodeMessage, MessageReader, percentDecode } from "./grpc_message.ts";
import type { RpcMethod } from "./rpc_service.ts";

/** gRPC status codes this client names itself. */
export const STATUS = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A call that ended with a non-OK status: the code and the server's message. */
export class CallStatusError extends Error {
  constructor(readonly code: number, readonly details: string) {
    super(`${code} ${details}`);
    this.name = "CallStatusError";
  }
}

/** Options of one call. */
export interface CallOptions {
  /** Request metadata (lower-case names). */
  metadata?: Record<string, string>;
  /** Deadline from now; sent as grpc-timeout and enforced here too. */
  timeoutMs?: number;
  /** Ends the call with CANCELLED. */
  signal?: AbortSignal;
}

// Our receive windows: large, so that a pull's progress or an export streams without stalls.
const STREAM_WINDOW = 4 << 20;
const CONNECTION_WINDOW = 16 << 20;
const MAX_RECV_MESSAGE = 64 << 20;
const NOT_HTTP2 = "the server did not start with HTTP/2 SETTINGS (not a gRPC socket?)";

/**
 * `grpc-timeout` for a deadline `ms` from now: at most 8 digits, so long deadlines go in
 * seconds or hours (the year-long wait of the CLI's `run` is "31536000S").
 */
export function grpcTimeout(ms: number): string {
  const n = Math.max(1, Math.ceil(ms));
  if (n < 1e8) return `${n}m`;
  if (n / 1000 < 1e8) return `${Math.ceil(n / 1000)}S`;
  return `${Math.min(99_999_999, Math.ceil(n / 3_600_000))}H`;
}

/** One call's stream, as the connection sees it. */
class ClientStream {
  readonly headers: HeaderField[] = [];
  trailers: HeaderField[] | undefined;
  /** Bytes taken by the caller and not yet given back to the peer with a WINDOW_UPDATE. */
  unacked = 0;
  /** Bytes we may still send. */
  sendWindow: number;
  /** Bytes the server may still send before we give window back. */
  recvWindow = STREAM_WINDOW;
  /** Messages decoded and not yet taken. */
  readonly messages: Uint8Array[] = [];
  readonly reader = new MessageReader(MAX_RECV_MESSAGE);
  done = false;
  error: CallStatusError | undefined;
  // The reader and, for client streams, the sender may both be waiting.
  #waiters: (() => void)[] = [];

  constructor(readonly id: number, sendWindow: number) {
    this.sendWindow = sendWindow;
  }

  /** Resolves at the next event (a message, the end, an error, more send window). */
  next(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }

  wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  fail(e: CallStatusError): void {
    if (this.done) return;
    this.error = e;
    this.done = true;
    this.wake();
  }
}

/**
 * Calls `fire` after `ms` unless the returned function is called first. Not a setTimeout: in
 * Deno 2.9 the first setTimeout of a process loads the node:timers layer (~4 ms, measured), a
 * cost every CLI command paid on its first call. Atomics.waitAsync's timeout costs ~0.1 ms, and
 * like an unref'd timer it keeps nothing alive: the call's pending socket read does.
 */
function deadline(ms: number, fire: () => void): () => void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const wait = Atomics.waitAsync(cell, 0, 0, ms);
  if (!wait.async) {
    fire(); // only for a cell that is not 0, which this one always is
    return () => {};
  }
  void wait.value.then((v) => v === "timed-out" && fire());
  return () => void Atomics.notify(cell, 0);
}

/**
 * One HTTP/2 connection to a gRPC server on a unix socket.
 */
export class NativeChannel {
  readonly #conn: Deno.Conn;
  readonly #frames = new FrameDecoder(DEFAULT_MAX_FRAME_SIZE);
  readonly #hpackIn = new HpackDecoder();
  readonly #hpackOut = new HpackEncoder();
  readonly #streams = new Map<number, ClientStream>();
  #nextId = 1;
  #peerInitialWindow = 65535;
  #peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  #connSendWindow = 65535;
  #connUnacked = 0;
  #connRecvWindow = CONNECTION_WINDOW;
  #sawSettings = false;
  #connWaiters = new Set<ClientStream>();
  // A header block in progress (HEADERS without END_HEADERS, then CONTINUATION).
  #block: HeaderBlock | undefined;
  #out: Uint8Array[] = [];
  #flushing = false;
  #closed: CallStatusError | undefined;
  #goaway: CallStatusError | undefined;
  #drainWaiters: (() => void)[] = [];

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#queue(PREFACE);
    this.#queue(encodeSettings([
      [SETTING.ENABLE_PUSH, 0],
      [SETTING.INITIAL_WINDOW_SIZE, STREAM_WINDOW],
    ]));
    this.#queue(encodeFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(CONNECTION_WINDOW - 65535)));
    this.#readLoop();
  }

  /** Dials the unix socket at `path`. */
  static async connect(path: string): Promise<NativeChannel> {
    return new NativeChannel(await Deno.connect({ transport: "unix", path }));
  }

  /** A unary call. */
  async unary<Req, Res>(m: RpcMethod<Req, Res>, req: Req, o: CallOptions = {}): Promise<Res> {
    let out: Res | undefined;
    for await (const r of this.#call(m, [req], o)) out = r;
    if (out === undefined) throw new CallStatusError(STATUS.INTERNAL, "no response message");
    return out;
  }

  /** A server-streaming call: the responses as they come; breaking out cancels the call. */
  serverStream<Req, Res>(
    m: RpcMethod<Req, Res>,
    req: Req,
    o: CallOptions = {},
  ): AsyncGenerator<Res> {
    return this.#call(m, [req], o);
  }

  /** A client-streaming call: sends every request, then waits for the one response. */
  async clientStream<Req, Res>(
    m: RpcMethod<Req, Res>,
    reqs: AsyncIterable<Req>,
    o: CallOptions = {},
  ): Promise<Res> {
    let out: Res | undefined;
    for await (const r of this.#call(m, reqs, o)) out = r;
    if (out === undefined) throw new CallStatusError(STATUS.INTERNAL, "no response message");
    return out;
  }

  /** Closes the connection; calls in flight end UNAVAILABLE. */
  close(): void {
    this.#shut(new CallStatusError(STATUS.UNAVAILABLE, "channel closed"));
  }

  async *#call<Req, Res>(
    m: RpcMethod<Req, Res>,
    reqs: Iterable<Req> | AsyncIterable<Req>,
    o: CallOptions,
  ): AsyncGenerator<Res> {
    if (this.#closed ?? this.#goaway) throw this.#closed ?? this.#goaway;
    const s = new ClientStream(this.#nextId, this.#peerInitialWindow);
    this.#nextId += 2;
    this.#streams.set(s.id, s);
    const fields: HeaderField[] = [
      { name: ":method", value: "POST" },
      { name: ":scheme", value: "http" },
      { name: ":path", value: m.path },
      { name: ":authority", value: "localhost" },
      { name: "content-type", value: "application/grpc" },
      { name: "te", value: "trailers" },
    ];
    if (o.timeoutMs !== undefined) {
      fields.push({ name: "grpc-timeout", value: grpcTimeout(o.timeoutMs) });
    }
    for (const [k, v] of Object.entries(o.metadata ?? {})) fields.push({ name: k, value: v });
    this.#queue(encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS, s.id, this.#hpackOut.encode(fields)));

    const cancel = (code: number, why: string) => {
      if (s.done) return;
      this.#queue(encodeFrame(FRAME.RST_STREAM, 0, s.id, u32(H2_ERROR.CANCEL)));
      s.fail(new CallStatusError(code, why));
    };
    // Past 2^31-1 ms (~24 days) the deadline is the server's alone, as with a timer.
    const clearDeadline = o.timeoutMs === undefined || o.timeoutMs > 0x7fffffff
      ? undefined
      : deadline(o.timeoutMs, () => cancel(STATUS.DEADLINE_EXCEEDED, "Deadline exceeded"));
    const onAbort = () => cancel(STATUS.CANCELLED, "Cancelled on client");
    o.signal?.addEventListener("abort", onAbort);
    const sending = this.#send(s, m, reqs).catch((e) =>
      cancel(STATUS.CANCELLED, `sending the request failed: ${e instanceof Error ? e.message : e}`)
    );
    try {
      for (;;) {
        while (s.messages.length) {
          const bytes = s.messages.shift()!;
          this.#consume(s, 5 + bytes.length);
          yield m.responseDeserialize(bytes as never);
        }
        if (s.done) break;
        await s.next();
      }
      await sending;
      if (s.error) throw s.error;
      const t = s.trailers ?? s.headers;
      const status = t.find((f) => f.name === "grpc-status")?.value;
      const message = percentDecode(t.find((f) => f.name === "grpc-message")?.value ?? "");
      if (status === undefined) {
        const http = s.headers.find((f) => f.name === ":status")?.value;
        throw new CallStatusError(
          STATUS.UNKNOWN,
          `no grpc-status in the response (HTTP status ${http ?? "none"})`,
        );
      }
      if (status !== "0") throw new CallStatusError(Number(status), message);
    } finally {
      clearDeadline?.();
      o.signal?.removeEventListener("abort", onAbort);
      if (!s.done) cancel(STATUS.CANCELLED, "Cancelled on client");
      this.#streams.delete(s.id);
      this.#connWaiters.delete(s);
    }
  }

  /** Sends the request messages, within the peer's windows, then END_STREAM. */
  async #send<Req, Res>(
    s: ClientStream,
    m: RpcMethod<Req, Res>,
    reqs: Iterable<Req> | AsyncIterable<Req>,
  ): Promise<void> {
    for await (const req of reqs) {
      const msg = encodeMessage(m.requestSerialize(req));
      let at = 0;
      while (at < msg.length) {
        if (s.done) return;
        const n = Math.min(msg.length - at, s.sendWindow, this.#connSendWindow, this.#peerMaxFrame);
        if (n <= 0) {
          this.#connWaiters.add(s);
          await s.next();
          continue;
        }
        this.#queue(encodeFrame(FRAME.DATA, 0, s.id, msg.subarray(at, at + n)));
        s.sendWindow -= n;
        this.#connSendWindow -= n;
        at += n;
      }
      // Let the socket take what was queued before producing more (a big import).
      if (this.#out.length > 64) await this.#drained();
    }
    if (!s.done) this.#queue(encodeFrame(FRAME.DATA, FLAG.END_STREAM, s.id));
  }

  /**
   * Gives back receive window for `n` bytes the caller took: a WINDOW_UPDATE once half a
   * window's worth has been taken (connection and stream alike), so a reader that stops
   * taking stops the sender after one window.
   */
  #consume(s: ClientStream, n: number): void {
    this.#consumeConnectionOnly(n);
    s.unacked += n;
    if (!s.done && s.unacked >= STREAM_WINDOW / 2) {
      this.#queue(encodeFrame(FRAME.WINDOW_UPDATE, 0, s.id, u32(s.unacked)));
      s.recvWindow += s.unacked;
      s.unacked = 0;
    }
  }

  #queue(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#out.push(bytes);
    if (!this.#flushing) {
      this.#flushing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #drained(): Promise<void> {
    if (!this.#flushing) return Promise.resolve();
    return new Promise((r) => this.#drainWaiters.push(r));
  }

  async #flush(): Promise<void> {
    try {
      while (this.#out.length && !this.#closed) {
        const parts = this.#out;
        this.#out = [];
        let size = 0;
        for (const p of parts) size += p.length;
        const buf = parts.length === 1 ? parts[0] : new Uint8Array(size);
        if (parts.length > 1) {
          let at = 0;
          for (const p of parts) {
            buf.set(p, at);
            at += p.length;
          }
        }
        let at = 0;
        while (at < buf.length) at += await this.#conn.write(buf.subarray(at));
      }
    } catch (e) {
      this.#shut(new CallStatusError(STATUS.UNAVAILABLE, `connection lost: ${String(e)}`));
    } finally {
      this.#flushing = false;
      for (const w of this.#drainWaiters.splice(0)) w();
    }
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 << 10);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#frames.push(buf.subarray(0, n), (f) => this.#onFrame(f));
        if (this.#closed) return;
      }
      this.#shut(new CallStatusError(STATUS.UNAVAILABLE, "the server closed the connection"));
    } catch (e) {
      const code = e instanceof ConnectionError
        ? e.code
        : e instanceof HpackError
        ? H2_ERROR.COMPRESSION_ERROR
        : e instanceof FrameSizeError
        ? H2_ERROR.FRAME_SIZE_ERROR
        : undefined;
      if (code === undefined) {
        this.#shut(new CallStatusError(STATUS.UNAVAILABLE, `connection lost: ${String(e)}`));
        return;
      }
      // The server broke the protocol: say why in a GOAWAY (best effort), then close.
      const why = this.#sawSettings ? (e as Error).message : NOT_HTTP2;
      try {
        await this.#conn.write(encodeGoaway(0, code, why));
      } catch { /* the server is gone too */ }
      this.#shut(
        new CallStatusError(STATUS.INTERNAL, `HTTP/2 protocol error from the server: ${why}`),
      );
    }
  }

  #onFrame(f: Frame): void {
    if (!this.#sawSettings) {
      // The server's preface is a SETTINGS frame; anything else is not an HTTP/2 server.
      if (f.type !== FRAME.SETTINGS || f.flags & FLAG.ACK) {
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, NOT_HTTP2);
      }
      this.#sawSettings = true;
    }
    if (this.#block && f.type !== FRAME.CONTINUATION) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "header block interrupted");
    }
    try {
      checkFrame(f);
    } catch (e) {
      if (!(e instanceof StreamError)) throw e;
      this.#resetStream(f.streamId, e.code, e.message);
      return;
    }
    switch (f.type) {
      case FRAME.SETTINGS:
        if (f.flags & FLAG.ACK) return;
        for (const [id, v] of readSettings(f.payload)) {
          if (id === SETTING.INITIAL_WINDOW_SIZE) {
            const delta = v - this.#peerInitialWindow;
            this.#peerInitialWindow = v;
            for (const s of this.#streams.values()) {
              s.sendWindow += delta;
              if (s.sendWindow > MAX_WINDOW) {
                throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "stream window overflow");
              }
              s.wake();
            }
          } else if (id === SETTING.MAX_FRAME_SIZE) this.#peerMaxFrame = v;
        }
        this.#queue(encodeFrame(FRAME.SETTINGS, FLAG.ACK, 0));
        return;
      case FRAME.PING:
        if (!(f.flags & FLAG.ACK)) {
          this.#queue(encodeFrame(FRAME.PING, FLAG.ACK, 0, f.payload.slice()));
        }
        return;
      case FRAME.WINDOW_UPDATE: {
        const inc = readU32(f.payload, 0) & 0x7fffffff;
        if (f.streamId === 0) {
          if (inc === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
          this.#connSendWindow += inc;
          if (this.#connSendWindow > MAX_WINDOW) {
            throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "connection window overflow");
          }
          for (const s of this.#connWaiters) s.wake();
          this.#connWaiters.clear();
        } else {
          this.#checkOpened(f, "WINDOW_UPDATE");
          const s = this.#streams.get(f.streamId);
          if (s) {
            s.sendWindow += inc;
            if (inc === 0 || s.sendWindow > MAX_WINDOW) {
              this.#resetStream(
                s.id,
                inc === 0 ? H2_ERROR.PROTOCOL_ERROR : H2_ERROR.FLOW_CONTROL_ERROR,
                inc === 0 ? "WINDOW_UPDATE of 0" : "stream window overflow",
              );
              return;
            }
            s.wake();
          }
        }
        return;
      }
      case FRAME.GOAWAY: {
        const last = readU32(f.payload, 0) & 0x7fffffff;
        const code = readU32(f.payload, 4);
        // Calls the server took finish; later ones, and new ones, cannot.
        for (const s of this.#streams.values()) {
          if (s.id > last) {
            s.fail(new CallStatusError(STATUS.UNAVAILABLE, `the server is going away (${code})`));
          }
        }
        this.#goaway = new CallStatusError(
          STATUS.UNAVAILABLE,
          `the server is going away (${code})`,
        );
        return;
      }
      case FRAME.RST_STREAM: {
        this.#checkOpened(f, "RST_STREAM");
        const code = readU32(f.payload, 0);
        this.#streams.get(f.streamId)?.fail(
          new CallStatusError(
            code === H2_ERROR.REFUSED_STREAM ? STATUS.UNAVAILABLE : STATUS.INTERNAL,
            `the server reset the stream (HTTP/2 error ${code})`,
          ),
        );
        return;
      }
      case FRAME.HEADERS: {
        this.#checkOpened(f, "HEADERS");
        let p = unpad(f);
        if (f.flags & FLAG.PRIORITY) {
          if (p.length < 5) {
            throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "short HEADERS priority");
          }
          p = p.subarray(5);
        }
        const end = (f.flags & FLAG.END_STREAM) !== 0;
        if (f.flags & FLAG.END_HEADERS) this.#onHeaderBlock(f.streamId, end, p);
        else this.#block = new HeaderBlock(f.streamId, end, p);
        return;
      }
      case FRAME.CONTINUATION: {
        const b = this.#block;
        if (!b) {
          throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "CONTINUATION without a header block");
        }
        const all = b.continue(f);
        if (all) {
          this.#block = undefined;
          this.#onHeaderBlock(b.streamId, b.endStream, all);
        }
        return;
      }
      case FRAME.DATA: {
        this.#checkOpened(f, "DATA");
        this.#connRecvWindow -= f.payload.length;
        if (this.#connRecvWindow < 0) {
          throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "DATA past the connection window");
        }
        const p = unpad(f);
        const s = this.#streams.get(f.streamId);
        if (!s || s.done) {
          // A stream we gave up on: its bytes still count against the connection window.
          this.#consumeConnectionOnly(f.payload.length);
          return;
        }
        s.recvWindow -= f.payload.length;
        if (s.recvWindow < 0) {
          this.#consumeConnectionOnly(f.payload.length);
          this.#resetStream(s.id, H2_ERROR.FLOW_CONTROL_ERROR, "DATA past the stream window");
          return;
        }
        // padding is not delivered: give it back at once
        if (f.payload.length > p.length) this.#consume(s, f.payload.length - p.length);
        try {
          s.reader.push(p, (msg) => s.messages.push(msg));
        } catch (e) {
          this.#queue(encodeFrame(FRAME.RST_STREAM, 0, s.id, u32(H2_ERROR.CANCEL)));
          s.fail(new CallStatusError(STATUS.RESOURCE_EXHAUSTED, (e as Error).message));
          return;
        }
        if (f.flags & FLAG.END_STREAM) s.done = true;
        s.wake();
        return;
      }
      case FRAME.PUSH_PROMISE:
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PUSH_PROMISE though push is off");
      default:
        return; // PRIORITY, and unknown frame types, are ignored (§4.1, §5.3.2)
    }
  }

  /** A frame on a stream we never opened (§5.1: idle) is a connection error. */
  #checkOpened(f: Frame, what: string): void {
    if ((f.streamId & 1) === 0 || f.streamId >= this.#nextId) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${what} on an idle stream`);
    }
  }

  /** Ends one call for a stream error of the server's; the connection goes on. */
  #resetStream(id: number, code: number, why: string): void {
    this.#queue(encodeFrame(FRAME.RST_STREAM, 0, id, u32(code)));
    this.#streams.get(id)?.fail(
      new CallStatusError(STATUS.INTERNAL, `HTTP/2 protocol error from the server: ${why}`),
    );
  }

  #consumeConnectionOnly(n: number): void {
    this.#connUnacked += n;
    if (this.#connUnacked >= CONNECTION_WINDOW / 2) {
      this.#queue(encodeFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(this.#connUnacked)));
      this.#connRecvWindow += this.#connUnacked;
      this.#connUnacked = 0;
    }
  }

  #onHeaderBlock(id: number, end: boolean, block: Uint8Array): void {
    // Decoded even for a stream we dropped: the HPACK table must stay in step.
    const fields = this.#hpackIn.decode(block);
    const s = this.#streams.get(id);
    if (!s || s.done) return;
    if (s.headers.length === 0) s.headers.push(...fields);
    else s.trailers = fields;
    if (end) s.done = true;
    s.wake();
  }

  #shut(e: CallStatusError): void {
    if (this.#closed) return;
    this.#closed = e;
    for (const s of this.#streams.values()) s.fail(e);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}
