/**
 * One server-side HTTP/2 connection (RFC 9113) over a byte transport such as a `Deno.Conn`:
 * the preface check, the SETTINGS exchange, PING, GOAWAY, stream states, HPACK header blocks
 * (with CONTINUATION), flow control both ways, and the RFC's connection and stream errors. What
 * a request means is left to `onStream` (the gRPC layer, grpc_native_server.ts).
 *
 * Writes are coalesced: frames queued while a write is in flight (or during the same turn of
 * the event loop) leave in one `write` call.
 *
 * @example
 * ```ts
 * import { H2Connection } from "./h2_connection.ts";
 * const conn = await listener.accept();
 * const h2 = new H2Connection(conn, {
 *   onStream: (s) => {
 *     s.respond([{ name: ":status", value: "200" }]);
 *     s.end([]);
 *   },
 * });
 * await h2.closed;
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
  writeFrameHeader,
} from "./h2_frames.ts";
import { checkFrame, ConnectionError, readSettings, StreamError, unpad } from "./h2_frame_rules.ts";
import { HeaderBlock } from "./h2_header_block.ts";

/** The byte stream a connection runs on (a `Deno.Conn` is one). */
export interface H2Transport {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** What a connection logs (debug only: clients' protocol errors are not the daemon's). */
export interface H2Log {
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export interface H2ConnectionOptions {
  /** Called once per new request stream, after its header block is decoded. */
  onStream: (stream: H2Stream) => void;
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce. Default 1000. */
  maxConcurrentStreams?: number;
  /** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB. */
  initialWindowSize?: number;
  /** Our connection receive window. Default 16 MiB. */
  connectionWindowSize?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise; larger requests get 431. Default 64 KiB. */
  maxHeaderListSize?: number;
  /** Queued output beyond which stream writes wait for the socket. Default 1 MiB. */
  highWaterMark?: number;
  log?: H2Log;
}

/** Why a stream ended before both sides finished it. */
export type StreamAbort = "reset" | "connection";

const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);
const REQUEST_PSEUDO = new Set([":method", ":scheme", ":authority", ":path"]);
/** Hard cap on one raw header block (all its CONTINUATIONs): past it the connection ends. */

/**
 * One request stream as the application sees it: the request headers, body chunks through
 * `ondata`, and the response through `respond`, `write` and `end`.
 *
 * @example
 * ```ts
 * onStream: (s) => {
 *   s.ondata = (chunk, end) => { s.consume(chunk.length); if (end) reply(s); };
 *   s.onabort = (why) => controller.abort(why);
 * }
 * ```
 */
export class H2Stream {
  /** Body bytes; `chunk` is only valid during the call (copy what you keep). */
  ondata: ((chunk: Uint8Array, end: boolean) => void) | null = null;
  /** The stream was reset by the client, or the connection went away. */
  onabort: ((why: StreamAbort) => void) | null = null;
  /** The client finished sending (END_STREAM seen). */
  remoteClosed = false;
  /** We finished (trailers sent or stream reset). */
  localClosed = false;
  /** @internal */ sendWindow: number;
  /** @internal */ recvWindow: number;
  /** @internal */ unacked = 0;
  /** @internal */ pending: Uint8Array[] = [];
  /** @internal */ pendingOffset = 0;
  /** @internal */ trailers: HeaderField[] | null = null;
  /** @internal */ waiter: (() => void) | null = null;

  constructor(
    readonly id: number,
    readonly headers: HeaderField[],
    readonly connection: H2Connection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** The first value of request header `name` (lower case). */
  header(name: string): string | undefined {
    for (const f of this.headers) if (f.name === name) return f.value;
    return undefined;
  }

  /** Sends the response headers (`:status` first). */
  respond(fields: HeaderField[], endStream = false): void {
    this.connection.sendHeaders(this, fields, endStream);
  }

  /**
   * Queues body bytes (the array is kept, not copied, until sent). Returns a promise when the
   * caller should wait before writing more (flow control or a full socket), else undefined.
   */
  write(data: Uint8Array): Promise<void> | undefined {
    return this.connection.writeData(this, data);
  }

  /** Sends the trailers with END_STREAM once all queued data has left. */
  end(trailers: HeaderField[]): void {
    this.connection.endStream(this, trailers);
  }

  /** Resets the stream (RST_STREAM). */
  reset(code: number = H2_ERROR.CANCEL): void {
    this.connection.resetStream(this, code);
  }

  /** Gives `n` received body bytes back to the client's send windows (WINDOW_UPDATE). */
  consume(n: number): void {
    this.connection.consume(this, n);
  }
}

/**
 * A server-side HTTP/2 connection. Starts reading at once; `closed` resolves when the
 * transport is closed.
 *
 * @example
 * ```ts
 * const h2 = new H2Connection(conn, { onStream, maxConcurrentStreams: 1000 });
 * h2.goaway(); // at shutdown: no new streams; closes once the open ones finish
 * await h2.closed;
 * ```
 */
export class H2Connection {
  readonly #t: H2Transport;
  readonly #opts: Required<Omit<H2ConnectionOptions, "log">> & { log?: H2Log };
  readonly #decoder = new FrameDecoder(DEFAULT_MAX_FRAME_SIZE);
  readonly #hpackIn = new HpackDecoder({ maxTableSize: 4096 });
  readonly #hpackOut = new HpackEncoder({ dynamicTable: true, tableSize: 4096 });
  readonly #streams = new Map<number, H2Stream>();
  /** Streams with data waiting for the connection window. */
  readonly #blocked = new Set<H2Stream>();
  /** Streams whose writer waits for the output queue to drain. */
  readonly #drainWaiters = new Set<H2Stream>();
  /** Recently reset streams: their late frames are ignored (§5.4.2). */
  readonly #recentlyReset = new Set<number>();
  #prefaceAt = 0;
  #sawSettings = false;
  #lastStreamId = 0;
  #peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  #peerInitialWindow = 65535;
  #sendWindow = 65535;
  #recvWindow: number;
  #recvUnacked = 0;
  #headerBlock: HeaderBlock | null = null;
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #writing = false;
  #goingAway = false;
  #peerGoaway = false;
  #closing = false;
  #closed = false;
  #resolveClosed!: () => void;
  /** Resolves once the transport is closed. */
  readonly closed: Promise<void> = new Promise((r) => (this.#resolveClosed = r));

  constructor(transport: H2Transport, opts: H2ConnectionOptions) {
    this.#t = transport;
    this.#opts = {
      maxConcurrentStreams: 1000,
      initialWindowSize: 1 << 20,
      connectionWindowSize: 16 << 20,
      maxHeaderListSize: 64 << 10,
      highWaterMark: 1 << 20,
      ...opts,
    };
    this.#recvWindow = this.#opts.connectionWindowSize;
    this.#queue(encodeSettings([
      [SETTING.MAX_CONCURRENT_STREAMS, this.#opts.maxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, this.#opts.initialWindowSize],
      [SETTING.MAX_HEADER_LIST_SIZE, this.#opts.maxHeaderListSize],
      [SETTING.ENABLE_PUSH, 0],
    ]));
    if (this.#recvWindow > 65535) {
      this.#queue(encodeFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(this.#recvWindow - 65535)));
    }
    this.#readLoop();
  }

  /** Streams open now. */
  get streams(): number {
    return this.#streams.size;
  }

  /** Graceful close: GOAWAY NO_ERROR, no new streams, close once the open ones are done. */
  goaway(): void {
    if (this.#goingAway || this.#closing) return;
    this.#goingAway = true;
    this.#queue(encodeGoaway(this.#lastStreamId, H2_ERROR.NO_ERROR, "server shutting down"));
    this.#maybeFinish();
  }

  /** Cuts the connection now: open streams are aborted. */
  destroy(): void {
    this.#shut();
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (!this.#closing) {
        const n = await this.#t.read(buf);
        if (n === null) break;
        this.#onBytes(buf.subarray(0, n));
      }
    } catch (e) {
      if (!this.#closing) {
        this.#opts.log?.debug("h2: read failed", { error: (e as Error).message });
      }
    }
    this.#shut();
  }

  #onBytes(chunk: Uint8Array): void {
    if (this.#prefaceAt < PREFACE.length) {
      const n = Math.min(PREFACE.length - this.#prefaceAt, chunk.length);
      for (let i = 0; i < n; i++) {
        if (chunk[i] !== PREFACE[this.#prefaceAt + i]) {
          this.#opts.log?.debug("h2: not an HTTP/2 client (bad connection preface)");
          this.#shut();
          return;
        }
      }
      this.#prefaceAt += n;
      chunk = chunk.subarray(n);
      if (chunk.length === 0) return;
    }
    try {
      this.#decoder.push(chunk, (f) => {
        this.#onFrame(f);
        return !this.#closing;
      });
    } catch (e) {
      if (e instanceof FrameSizeError) this.#fail(H2_ERROR.FRAME_SIZE_ERROR, e.message);
      else if (e instanceof ConnectionError) this.#fail(e.code, e.message);
      else if (e instanceof HpackError) this.#fail(H2_ERROR.COMPRESSION_ERROR, e.message);
      else this.#fail(H2_ERROR.INTERNAL_ERROR, (e as Error).message);
    }
  }

  #onFrame(f: Frame): void {
    if (!this.#sawSettings) {
      if (f.type !== FRAME.SETTINGS || f.flags & FLAG.ACK) {
        throw new ConnectionError(
          H2_ERROR.PROTOCOL_ERROR,
          "the preface must be followed by SETTINGS",
        );
      }
      this.#sawSettings = true;
    }
    if (this.#headerBlock && f.type !== FRAME.CONTINUATION) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "header block interrupted");
    }
    try {
      checkFrame(f);
      switch (f.type) {
        case FRAME.DATA:
          return this.#onData(f);
        case FRAME.HEADERS:
          return this.#onHeaders(f);
        case FRAME.CONTINUATION:
          return this.#onContinuation(f);
        case FRAME.PRIORITY:
          return;
        case FRAME.RST_STREAM:
          return this.#onRst(f);
        case FRAME.SETTINGS:
          return this.#onSettings(f);
        case FRAME.PUSH_PROMISE:
          throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PUSH_PROMISE from a client");
        case FRAME.PING:
          if (!(f.flags & FLAG.ACK)) this.#queue(encodeFrame(FRAME.PING, FLAG.ACK, 0, f.payload));
          return;
        case FRAME.GOAWAY:
          this.#peerGoaway = true;
          this.#maybeFinish();
          return;
        case FRAME.WINDOW_UPDATE:
          return this.#onWindowUpdate(f);
        default:
          return; // unknown frame types are ignored (§4.1)
      }
    } catch (e) {
      if (!(e instanceof StreamError)) throw e;
      this.#opts.log?.debug("h2: stream error", { stream: f.streamId, error: e.message });
      const s = this.#streams.get(f.streamId);
      if (s) this.resetStream(s, e.code);
      else this.#sendRst(f.streamId, e.code);
    }
  }

  #isIdle(id: number): boolean {
    return id > this.#lastStreamId && !this.#streams.has(id);
  }

  #onData(f: Frame): void {
    const id = f.streamId;
    if (this.#isIdle(id)) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on an idle stream");
    }
    const len = f.payload.length;
    this.#recvWindow -= len;
    if (this.#recvWindow < 0) {
      throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "DATA past the connection window");
    }
    const body = unpad(f);
    const s = this.#streams.get(id);
    if (!s || s.remoteClosed) {
      this.#consumeConnection(len);
      if (this.#recentlyReset.has(id)) return;
      throw new StreamError(H2_ERROR.STREAM_CLOSED, `DATA on closed stream ${id}`);
    }
    s.recvWindow -= len;
    if (s.recvWindow < 0) {
      throw new StreamError(H2_ERROR.FLOW_CONTROL_ERROR, "DATA past the stream window");
    }
    // Padding counts against the windows but is nobody's to consume: give it back now.
    if (len > body.length) this.consume(s, len - body.length);
    const end = (f.flags & FLAG.END_STREAM) !== 0;
    if (end) s.remoteClosed = true;
    if (s.localClosed) this.consume(s, body.length); // answered already: drained and dropped
    else s.ondata?.(body, end);
    if (end) this.#maybeClose(s);
  }

  #onHeaders(f: Frame): void {
    const id = f.streamId;
    let block = unpad(f);
    if (f.flags & FLAG.PRIORITY) {
      if (block.length < 5) {
        throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "short HEADERS priority");
      }
      if ((readU32(block, 0) & 0x7fffffff) === id) {
        // Decode the block anyway so the HPACK state stays in step.
        this.#startBlock(id, f, block.subarray(5), true);
        return;
      }
      block = block.subarray(5);
    }
    this.#startBlock(id, f, block, false);
  }

  #selfDependent = false;

  #startBlock(id: number, f: Frame, block: Uint8Array, selfDependent: boolean): void {
    this.#selfDependent = selfDependent;
    const endStream = (f.flags & FLAG.END_STREAM) !== 0;
    if (f.flags & FLAG.END_HEADERS) return this.#onHeaderBlock(id, endStream, block);
    this.#headerBlock = new HeaderBlock(id, endStream, block);
  }

  #onContinuation(f: Frame): void {
    const hb = this.#headerBlock;
    if (!hb) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "CONTINUATION without a header block");
    }
    const block = hb.continue(f);
    if (!block) return;
    this.#headerBlock = null;
    this.#onHeaderBlock(hb.streamId, hb.endStream, block);
  }

  #onHeaderBlock(id: number, endStream: boolean, block: Uint8Array): void {
    // Always decode: the dynamic table must follow every block, even one we refuse.
    const fields = this.#hpackIn.decode(block);
    if (this.#selfDependent) {
      this.#selfDependent = false;
      if (id > this.#lastStreamId) this.#lastStreamId = id;
      throw new StreamError(H2_ERROR.PROTOCOL_ERROR, "stream depends on itself");
    }
    const existing = this.#streams.get(id);
    if (existing) {
      // Trailers: must end the stream and carry no pseudo-headers.
      if (existing.remoteClosed) {
        throw new StreamError(H2_ERROR.STREAM_CLOSED, "HEADERS on a half-closed stream");
      }
      if (!endStream || fields.some((h) => h.name.startsWith(":"))) {
        throw new StreamError(H2_ERROR.PROTOCOL_ERROR, "malformed trailers");
      }
      existing.remoteClosed = true;
      existing.ondata?.(new Uint8Array(0), true);
      this.#maybeClose(existing);
      return;
    }
    if (id <= this.#lastStreamId) {
      if (this.#recentlyReset.has(id)) return;
      throw new ConnectionError(H2_ERROR.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    }
    if ((id & 1) === 0) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "even stream id from a client");
    }
    this.#lastStreamId = id;
    if (this.#goingAway) return; // past our GOAWAY: ignored, the client retries elsewhere
    if (this.#streams.size >= this.#opts.maxConcurrentStreams) {
      this.#forgetLater(id);
      throw new StreamError(H2_ERROR.REFUSED_STREAM, "past SETTINGS_MAX_CONCURRENT_STREAMS");
    }
    const problem = checkRequestHeaders(fields);
    if (problem) {
      this.#forgetLater(id);
      throw new StreamError(H2_ERROR.PROTOCOL_ERROR, `malformed request: ${problem}`);
    }
    const s = new H2Stream(id, fields, this, this.#peerInitialWindow, this.#opts.initialWindowSize);
    s.remoteClosed = endStream;
    this.#streams.set(id, s);
    let listSize = 0;
    for (const h of fields) listSize += h.name.length + h.value.length + 32;
    if (listSize > this.#opts.maxHeaderListSize) {
      s.respond([{ name: ":status", value: "431" }], true);
      return;
    }
    this.#opts.onStream(s);
    if (endStream && !s.localClosed) s.ondata?.(new Uint8Array(0), true);
  }

  #onRst(f: Frame): void {
    if (this.#isIdle(f.streamId)) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
    }
    const s = this.#streams.get(f.streamId);
    if (!s) return;
    s.localClosed = s.remoteClosed = true;
    this.#drop(s, "reset");
  }

  #onSettings(f: Frame): void {
    if (f.flags & FLAG.ACK) return;
    for (const [id, value] of readSettings(f.payload)) {
      switch (id) {
        case SETTING.HEADER_TABLE_SIZE:
          // Our encoder's table never grows past 4096; shrink it when the peer wants less.
          if (value < (this.#hpackOut.table?.maxSize ?? 0)) this.#hpackOut.setTableSize(value);
          break;
        case SETTING.INITIAL_WINDOW_SIZE: {
          const delta = value - this.#peerInitialWindow;
          this.#peerInitialWindow = value;
          for (const s of this.#streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) {
              throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "stream window overflow");
            }
          }
          if (delta > 0) { for (const s of [...this.#streams.values()]) this.#pump(s); }
          break;
        }
        case SETTING.MAX_FRAME_SIZE:
          this.#peerMaxFrame = value;
          break;
        default:
          break; // ENABLE_PUSH, MAX_CONCURRENT_STREAMS (we push none), MAX_HEADER_LIST_SIZE, unknown
      }
    }
    this.#queue(encodeFrame(FRAME.SETTINGS, FLAG.ACK, 0));
  }

  #onWindowUpdate(f: Frame): void {
    const inc = readU32(f.payload, 0) & 0x7fffffff;
    if (f.streamId === 0) {
      if (inc === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.#sendWindow += inc;
      if (this.#sendWindow > MAX_WINDOW) {
        throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "connection window overflow");
      }
      for (const s of [...this.#blocked]) {
        this.#blocked.delete(s);
        this.#pump(s);
        if (this.#sendWindow <= 0) break;
      }
      return;
    }
    if (this.#isIdle(f.streamId)) {
      throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
    }
    const s = this.#streams.get(f.streamId);
    if (!s) return;
    if (inc === 0) throw new StreamError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW) {
      throw new StreamError(H2_ERROR.FLOW_CONTROL_ERROR, "stream window overflow");
    }
    this.#pump(s);
  }

  // --- the stream API (called through H2Stream) ---

  /** @internal */
  sendHeaders(s: H2Stream, fields: HeaderField[], endStream: boolean): void {
    if (s.localClosed || this.#closing) return;
    this.#queueHeaders(s.id, fields, endStream);
    if (endStream) this.#finishLocal(s);
  }

  /** @internal */
  writeData(s: H2Stream, data: Uint8Array): Promise<void> | undefined {
    if (s.localClosed || this.#closing) return undefined;
    s.pending.push(data);
    this.#pump(s);
    if (s.pending.length === 0 && this.#outBytes <= this.#opts.highWaterMark) return undefined;
    return new Promise<void>((resolve) => {
      s.waiter = resolve;
      if (s.pending.length === 0) this.#drainWaiters.add(s);
    });
  }

  /** @internal */
  endStream(s: H2Stream, trailers: HeaderField[]): void {
    if (s.localClosed || this.#closing) return;
    s.trailers = trailers;
    this.#pump(s);
  }

  /** @internal */
  resetStream(s: H2Stream, code: number): void {
    if (!this.#streams.has(s.id)) return;
    this.#sendRst(s.id, code);
    s.localClosed = s.remoteClosed = true;
    this.#drop(s, "reset");
  }

  /** @internal */
  consume(s: H2Stream, n: number): void {
    if (n <= 0 || this.#closing) return;
    this.#consumeConnection(n);
    if (s.remoteClosed || !this.#streams.has(s.id)) return;
    s.unacked += n;
    if (s.unacked >= this.#opts.initialWindowSize / 2) {
      this.#queue(encodeFrame(FRAME.WINDOW_UPDATE, 0, s.id, u32(s.unacked)));
      s.recvWindow += s.unacked;
      s.unacked = 0;
    }
  }

  #consumeConnection(n: number): void {
    this.#recvUnacked += n;
    if (this.#recvUnacked >= this.#opts.connectionWindowSize / 2) {
      this.#queue(encodeFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(this.#recvUnacked)));
      this.#recvWindow += this.#recvUnacked;
      this.#recvUnacked = 0;
    }
  }

  /** Frames what the windows allow of a stream's queued data, then its trailers. */
  #pump(s: H2Stream): void {
    if (s.localClosed) return;
    while (s.pending.length > 0) {
      const win = Math.min(this.#sendWindow, s.sendWindow);
      if (win <= 0) {
        if (this.#sendWindow <= 0) this.#blocked.add(s);
        return;
      }
      const chunk = s.pending[0];
      const left = chunk.length - s.pendingOffset;
      const n = Math.min(left, win, this.#peerMaxFrame);
      const header = new Uint8Array(9);
      writeFrameHeader(header, 0, n, FRAME.DATA, 0, s.id);
      this.#queue(header);
      if (n > 0) {
        this.#queue(
          s.pendingOffset === 0 && n === chunk.length
            ? chunk
            : chunk.subarray(s.pendingOffset, s.pendingOffset + n),
        );
      }
      this.#sendWindow -= n;
      s.sendWindow -= n;
      if (n === left) {
        s.pending.shift();
        s.pendingOffset = 0;
      } else s.pendingOffset += n;
    }
    if (s.waiter) {
      if (this.#outBytes <= this.#opts.highWaterMark) this.#wake(s);
      else this.#drainWaiters.add(s);
    }
    if (s.trailers) {
      const t = s.trailers;
      s.trailers = null;
      this.#queueHeaders(s.id, t, true);
      this.#finishLocal(s);
    }
  }

  #wake(s: H2Stream): void {
    const w = s.waiter;
    s.waiter = null;
    this.#drainWaiters.delete(s);
    w?.();
  }

  /**
   * Our side is done. A client still sending is let finish, its DATA consumed and dropped,
   * rather than sent RST_STREAM NO_ERROR (§8.1 allows either): Deno's node:http2 client never
   * closes a stream reset while its body is blocked on flow control.
   */
  #finishLocal(s: H2Stream): void {
    s.localClosed = true;
    this.#maybeClose(s);
  }

  #maybeClose(s: H2Stream): void {
    if (s.localClosed && s.remoteClosed) this.#drop(s, null);
  }

  #drop(s: H2Stream, why: StreamAbort | null): void {
    if (!this.#streams.delete(s.id)) return;
    this.#blocked.delete(s);
    s.pending = [];
    s.trailers = null;
    this.#wake(s);
    if (why) s.onabort?.(why);
    this.#maybeFinish();
  }

  #sendRst(id: number, code: number): void {
    this.#queue(encodeFrame(FRAME.RST_STREAM, 0, id, u32(code)));
    this.#forgetLater(id);
  }

  #forgetLater(id: number): void {
    this.#recentlyReset.add(id);
    if (this.#recentlyReset.size > 128) {
      this.#recentlyReset.delete(this.#recentlyReset.values().next().value!);
    }
  }

  #queueHeaders(id: number, fields: HeaderField[], endStream: boolean): void {
    const block = this.#hpackOut.encode(fields);
    const max = this.#peerMaxFrame;
    let at = 0;
    let first = true;
    do {
      const n = Math.min(block.length - at, max);
      const last = at + n === block.length;
      const type = first ? FRAME.HEADERS : FRAME.CONTINUATION;
      const flags = (first && endStream ? FLAG.END_STREAM : 0) | (last ? FLAG.END_HEADERS : 0);
      const f = new Uint8Array(9 + n);
      writeFrameHeader(f, 0, n, type, flags, id);
      f.set(block.subarray(at, at + n), 9);
      this.#queue(f);
      at += n;
      first = false;
    } while (at < block.length);
  }

  // --- output ---

  #queue(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
    if (!this.#writing) {
      this.#writing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  async #flush(): Promise<void> {
    try {
      while (this.#out.length > 0 && !this.#closed) {
        const parts = this.#out;
        this.#out = [];
        let buf: Uint8Array;
        if (parts.length === 1) buf = parts[0];
        else {
          buf = new Uint8Array(this.#outBytes);
          let at = 0;
          for (const p of parts) {
            buf.set(p, at);
            at += p.length;
          }
        }
        this.#outBytes = 0;
        let off = 0;
        while (off < buf.length) off += await this.#t.write(off === 0 ? buf : buf.subarray(off));
        if (this.#drainWaiters.size > 0 && this.#outBytes <= this.#opts.highWaterMark) {
          for (const s of [...this.#drainWaiters]) if (s.pending.length === 0) this.#wake(s);
        }
      }
    } catch (e) {
      this.#opts.log?.debug("h2: write failed", { error: (e as Error).message });
      this.#out = [];
      this.#outBytes = 0;
      this.#writing = false;
      this.#shut();
      this.#closeTransport();
      return;
    }
    this.#writing = false;
    if (this.#closing) this.#closeTransport();
  }

  // --- ending ---

  /** Connection error: GOAWAY with the code, then close (§5.4.1). */
  #fail(code: number, message: string): void {
    this.#opts.log?.debug("h2: connection error", { code, error: message });
    if (this.#closing) return;
    this.#queue(encodeGoaway(this.#lastStreamId, code, message));
    this.#shut();
  }

  #maybeFinish(): void {
    if ((this.#goingAway || this.#peerGoaway) && this.#streams.size === 0) this.#shut();
  }

  /** Aborts every stream, lets queued output leave, closes the transport. */
  #shut(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const s of [...this.#streams.values()]) {
      s.localClosed = s.remoteClosed = true;
      this.#drop(s, "connection");
    }
    if (!this.#writing) this.#closeTransport();
  }

  #closeTransport(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of [...this.#drainWaiters]) this.#wake(s);
    try {
      this.#t.close();
    } catch {
      // already closed
    }
    this.#resolveClosed();
  }
}

/** Why a request header list is malformed (RFC 9113 §8.2, §8.3.1), or null. */
export function checkRequestHeaders(fields: readonly HeaderField[]): string | null {
  let regular = false;
  const seen = new Set<string>();
  for (const { name, value } of fields) {
    if (name.startsWith(":")) {
      if (regular) return `pseudo-header ${name} after a regular header`;
      if (!REQUEST_PSEUDO.has(name)) return `unknown pseudo-header ${name}`;
      if (seen.has(name)) return `duplicate ${name}`;
      seen.add(name);
      continue;
    }
    regular = true;
    if (name !== name.toLowerCase()) return `upper-case header name ${name}`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific header ${name}`;
    if (name === "te" && value !== "trailers") return `te: ${value}`;
  }
  if (!seen.has(":method")) return "no :method";
  if (!seen.has(":path") || !seen.has(":scheme")) return "no :path or :scheme";
  return null;
}
