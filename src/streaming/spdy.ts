/**
 * SPDY/3.1 framing and stream multiplexing over one TCP connection, as spoken after an HTTP
 * `Upgrade: SPDY/3.1` by the kubelet's streaming server and client-go (via moby/spdystream).
 * The same class serves both ends: the streaming server accepts streams, the test and e2e
 * clients open them.
 *
 * Flow control: spdystream neither sends WINDOW_UPDATE nor honours our window, so we do the
 * same — we never wait for send window, and we ignore incoming WINDOW_UPDATE. Receive-side
 * back-pressure is per connection instead: when one stream's unread bytes pass
 * `streamBufferBytes`, the read loop stops reading the socket until that stream is drained
 * (spdystream blocks its reader the same way).
 *
 * @example
 * ```ts
 * import { SpdyConnection } from "./spdy.ts";
 * const tcp = await Deno.connect({ hostname: "127.0.0.1", port: 10010 });
 * // ...after the HTTP upgrade handshake on `tcp`:
 * const conn = new SpdyConnection(tcp, { role: "client" });
 * const s = await conn.openStream({ streamtype: "stdout" });
 * for await (const chunk of s.readable) console.log(chunk.length);
 * ```
 */
import { ByteReader, concatBytes, writeAll } from "./bytes.ts";
import { HeaderCompressor, HeaderDecompressor } from "./spdy_zlib.ts";
import type { Logger } from "../log/logger.ts";

/** Control frame types of SPDY/3. */
export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** RST_STREAM status codes of SPDY/3. */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

const FLAG_FIN = 0x01;
const SPDY_VERSION = 3;
const MAX_FRAME_PAYLOAD = 0xffffff;
/** Data frames we send are cut at this size so one busy stream cannot starve the others. */
const DATA_CHUNK = 64 * 1024;

/**
 * Header names (lower case, as SPDY requires) to their values; several values of one name
 * travel NUL-separated in one entry.
 */
export type SpdyHeaders = Record<string, string[]>;

/** Input form of headers: a single value or several. */
export type SpdyHeadersInit = Record<string, string | readonly string[]>;

/**
 * The first value of a header, or undefined.
 *
 * @example
 * ```ts
 * import { firstHeader } from "./spdy.ts";
 * firstHeader({ streamtype: ["stdout"] }, "streamType"); // "stdout"
 * ```
 */
export function firstHeader(h: SpdyHeaders, name: string): string | undefined {
  return h[name.toLowerCase()]?.[0];
}

function normaliseHeaders(init: SpdyHeadersInit): SpdyHeaders {
  const out: SpdyHeaders = {};
  for (const [k, v] of Object.entries(init)) {
    const name = k.toLowerCase();
    const values = typeof v === "string" ? [v] : [...v];
    (out[name] ??= []).push(...values);
  }
  return out;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Serialises a SPDY/3 name/value header block (uncompressed): 32-bit pair count, then
 * 32-bit-length-prefixed names and NUL-joined values.
 *
 * @example
 * ```ts
 * import { encodeHeaderBlock, decodeHeaderBlock } from "./spdy.ts";
 * decodeHeaderBlock(encodeHeaderBlock({ port: ["80"] })); // { port: ["80"] }
 * ```
 */
export function encodeHeaderBlock(h: SpdyHeaders): Uint8Array {
  const parts: Uint8Array[] = [];
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  const entries = Object.entries(h);
  parts.push(u32(entries.length));
  for (const [name, values] of entries) {
    const n = enc.encode(name.toLowerCase());
    const v = enc.encode(values.join("\0"));
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return concatBytes(parts);
}

/**
 * Parses an uncompressed SPDY/3 header block; throws on truncation.
 *
 * @example
 * ```ts
 * import { encodeHeaderBlock, decodeHeaderBlock } from "./spdy.ts";
 * decodeHeaderBlock(encodeHeaderBlock({ streamtype: ["error"] })).streamtype; // ["error"]
 * ```
 */
export function decodeHeaderBlock(b: Uint8Array): SpdyHeaders {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  const need = (n: number) => {
    if (off + n > b.length) throw new Error("truncated SPDY header block");
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(off);
    off += 4;
    return v;
  };
  const str = () => {
    const len = u32();
    need(len);
    const s = dec.decode(b.subarray(off, off + len));
    off += len;
    return s;
  };
  const out: SpdyHeaders = {};
  const count = u32();
  for (let i = 0; i < count; i++) {
    // Go's spdystream canonicalises names it reads; we lower-case so lookups are uniform.
    const name = str().toLowerCase();
    const values = str().split("\0");
    (out[name] ??= []).push(...values);
  }
  return out;
}

/** A parsed frame as read off the wire (header blocks still compressed). */
export type RawFrame =
  | { control: false; streamId: number; flags: number; data: Uint8Array }
  | { control: true; version: number; type: number; flags: number; data: Uint8Array };

/**
 * Encodes a control frame around `payload`.
 *
 * @example
 * ```ts
 * import { encodeControlFrame, FrameType } from "./spdy.ts";
 * const ping = encodeControlFrame(FrameType.PING, 0, new Uint8Array([0, 0, 0, 1]));
 * ```
 */
export function encodeControlFrame(type: number, flags: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new Error("SPDY control frame too large");
  const out = new Uint8Array(8 + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, 0x8000 | SPDY_VERSION);
  dv.setUint16(2, type);
  dv.setUint32(4, ((flags & 0xff) << 24 | payload.length) >>> 0);
  out.set(payload, 8);
  return out;
}

/**
 * Encodes a data frame.
 *
 * @example
 * ```ts
 * import { encodeDataFrame } from "./spdy.ts";
 * const fin = encodeDataFrame(1, new Uint8Array(0), true); // half-closes stream 1
 * ```
 */
export function encodeDataFrame(streamId: number, data: Uint8Array, fin = false): Uint8Array {
  if (data.length > MAX_FRAME_PAYLOAD) throw new Error("SPDY data frame too large");
  const out = new Uint8Array(8 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, streamId & 0x7fffffff);
  dv.setUint32(4, ((fin ? FLAG_FIN : 0) << 24 | data.length) >>> 0);
  out.set(data, 8);
  return out;
}

/**
 * Reads the next frame; `null` on a clean EOF between frames.
 *
 * @example
 * ```ts
 * import { ByteReader } from "./bytes.ts";
 * import { readFrame } from "./spdy.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 10010 });
 * const frame = await readFrame(new ByteReader(conn));
 * ```
 */
export async function readFrame(r: ByteReader): Promise<RawFrame | null> {
  const head = await r.readExact(8, "a SPDY frame header");
  if (!head) return null;
  const dv = new DataView(head.buffer, head.byteOffset, 8);
  const first = dv.getUint32(0);
  const flags = head[4];
  const len = dv.getUint32(4) & 0xffffff;
  const data = len === 0 ? new Uint8Array(0) : await r.readExact(len, "a SPDY frame");
  if (!data) throw new Error("connection closed in the middle of a SPDY frame");
  if (first & 0x80000000) {
    return {
      control: true,
      version: (first >>> 16) & 0x7fff,
      type: first & 0xffff,
      flags,
      data,
    };
  }
  return { control: false, streamId: first & 0x7fffffff, flags, data };
}

function u32s(...values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setUint32(i * 4, v >>> 0));
  return b;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The stream was reset (RST_STREAM) or its connection went away before it finished. */
export class SpdyStreamResetError extends Error {
  constructor(readonly streamId: number, readonly status: number, why: string) {
    super(`SPDY stream ${streamId} ${why}`);
    this.name = "SpdyStreamResetError";
  }
}

/**
 * One bidirectional SPDY stream. Each half closes on its own: `closeWrite()` sends FIN, the
 * peer's FIN ends `readable`. `reset()` aborts both halves.
 *
 * @example
 * ```ts
 * import type { SpdyStream } from "./spdy.ts";
 * async function echo(s: SpdyStream) {
 *   for await (const chunk of s.readable) await s.write(chunk);
 *   await s.closeWrite();
 * }
 * ```
 */
export class SpdyStream {
  /** Request headers (from SYN_STREAM) of this stream. */
  readonly headers: SpdyHeaders;
  /** Headers of the peer's SYN_REPLY, for streams we opened. */
  replyHeaders: SpdyHeaders = {};
  /** Bytes from the peer; ends at the peer's FIN, errors on reset. */
  readonly readable: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #readDone = false;
  #readCancelled = false;
  #writeDone = false;
  #reset = false;
  #drain: ReturnType<typeof deferred<void>> | undefined;
  #closed = deferred<void>();
  #writable: WritableStream<Uint8Array> | undefined;

  /** @internal created by {@link SpdyConnection} only. */
  constructor(
    private readonly conn: SpdyConnection,
    readonly id: number,
    headers: SpdyHeaders,
    highWaterMark: number,
  ) {
    this.headers = headers;
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      pull: () => {
        this.#drain?.resolve();
        this.#drain = undefined;
      },
      cancel: () => {
        // Nobody will read: drop further data rather than stall the connection on it.
        this.#readCancelled = true;
        this.#drain?.resolve();
        this.#drain = undefined;
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark }));
    this.#closed.promise.catch(() => {});
  }

  /** Resolves once both halves are closed or the stream was reset. */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** True once we sent FIN or the stream was reset. */
  get writeClosed(): boolean {
    return this.#writeDone || this.#reset;
  }

  /** True once the peer sent FIN or the stream was reset. */
  get readClosed(): boolean {
    return this.#readDone || this.#reset;
  }

  /** A writable view: each chunk becomes data frames; closing it sends FIN. */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.closeWrite(),
      abort: () => this.reset(RstStatus.CANCEL),
    });
  }

  /** Sends `data` as one or more data frames; rejects after FIN, reset or connection loss. */
  async write(data: Uint8Array): Promise<void> {
    if (this.#reset) throw new SpdyStreamResetError(this.id, RstStatus.CANCEL, "was reset");
    if (this.#writeDone) throw new Error(`SPDY stream ${this.id}: write after close`);
    for (let off = 0; off < data.length; off += DATA_CHUNK) {
      await this.conn._send(encodeDataFrame(this.id, data.subarray(off, off + DATA_CHUNK)));
    }
  }

  /** Half-closes our side with an empty FIN data frame; a no-op when already closed. */
  async closeWrite(): Promise<void> {
    if (this.#writeDone || this.#reset) return;
    this.#writeDone = true;
    try {
      await this.conn._send(encodeDataFrame(this.id, new Uint8Array(0), true));
    } finally {
      this.#maybeDone();
    }
  }

  /** Aborts the stream in both directions (RST_STREAM). */
  reset(status: number = RstStatus.CANCEL): void {
    if (this.#reset) return;
    const wasOpen = !(this.#readDone && this.#writeDone);
    this.#abort(new SpdyStreamResetError(this.id, status, "was reset locally"));
    if (wasOpen) {
      this.conn._send(encodeControlFrame(FrameType.RST_STREAM, 0, u32s(this.id, status))).catch(
        () => {},
      );
    }
  }

  /** @internal data from the peer; resolves when the connection may read on. */
  _onData(data: Uint8Array, fin: boolean): Promise<void> | undefined {
    if (this.#readDone || this.#reset) return undefined;
    if (data.length > 0 && !this.#readCancelled) {
      this.#controller.enqueue(data);
    }
    if (fin) {
      this.#readDone = true;
      if (!this.#readCancelled) this.#controller.close();
      this.#maybeDone();
      return undefined;
    }
    if (!this.#readCancelled && (this.#controller.desiredSize ?? 1) <= 0) {
      this.#drain ??= deferred<void>();
      return this.#drain.promise;
    }
    return undefined;
  }

  /** @internal the peer reset the stream. */
  _onReset(status: number): void {
    this.#abort(
      new SpdyStreamResetError(this.id, status, `was reset by the peer (status ${status})`),
    );
  }

  /** @internal the connection ended: pending reads end cleanly, writes fail from now on. */
  _onConnectionClosed(): void {
    if (!this.#readDone && !this.#readCancelled && !this.#reset) {
      try {
        this.#controller.close();
      } catch { /* already closed */ }
    }
    this.#readDone = true;
    this.#writeDone = true;
    this.#drain?.resolve();
    this.#maybeDone();
  }

  #abort(err: Error): void {
    this.#reset = true;
    if (!this.#readDone && !this.#readCancelled) {
      try {
        this.#controller.error(err);
      } catch { /* already closed */ }
    }
    this.#readDone = true;
    this.#drain?.resolve();
    this.#drain = undefined;
    this.#closed.resolve();
    this.conn._forget(this.id);
  }

  #maybeDone(): void {
    if (this.#readDone && this.#writeDone) {
      this.#closed.resolve();
      this.conn._forget(this.id);
    }
  }
}

/** Options of a {@link SpdyConnection}. */
export interface SpdyConnectionOptions {
  /** "server" accepts streams and uses even ids; "client" opens odd ones. */
  role: "server" | "client";
  /** Bytes already read past the HTTP upgrade head (they belong to SPDY). */
  reader?: ByteReader;
  /**
   * Called for every SYN_STREAM from the peer. Return false to refuse it (RST_STREAM
   * REFUSED_STREAM); otherwise a SYN_REPLY with `replyHeaders` is sent.
   */
  onStream?: (stream: SpdyStream) => boolean | void;
  /** Unread bytes one stream may hold before the connection stops reading. Default 1 MiB. */
  streamBufferBytes?: number;
  /** Debug logging of protocol events. */
  log?: Logger;
}

/** The byte channel a SPDY connection runs over: a `Deno.Conn` or alike. */
export interface SpdyTransport {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  closeWrite?(): Promise<void>;
}

/**
 * A SPDY/3.1 session over an already-upgraded connection. The read loop starts at
 * construction; `closed` settles when the peer goes away or `close()` is called.
 *
 * @example
 * ```ts
 * import { SpdyConnection } from "./spdy.ts";
 * const tcp = await Deno.connect({ hostname: "127.0.0.1", port: 10010 });
 * const spdy = new SpdyConnection(tcp, {
 *   role: "server",
 *   onStream: (s) => void s.readable.pipeTo(s.writable), // echo every stream
 * });
 * await spdy.closed;
 * ```
 */
export class SpdyConnection {
  readonly #transport: SpdyTransport;
  readonly #reader: ByteReader;
  readonly #opts: SpdyConnectionOptions;
  readonly #compressor = new HeaderCompressor();
  readonly #decompressor = new HeaderDecompressor();
  readonly #streams = new Map<number, SpdyStream>();
  readonly #pendingReplies = new Map<number, ReturnType<typeof deferred<SpdyStream>>>();
  readonly #pings = new Map<number, { start: number; done: (ms: number) => void }>();
  #nextStreamId: number;
  #nextPingId: number;
  #writeChain: Promise<void> = Promise.resolve();
  #writeError: Error | undefined;
  #closed = deferred<void>();
  #isClosed = false;
  #goAwayReceived = false;
  readonly #bufferBytes: number;

  constructor(transport: SpdyTransport, opts: SpdyConnectionOptions) {
    this.#transport = transport;
    this.#opts = opts;
    this.#reader = opts.reader ?? new ByteReader(transport);
    this.#nextStreamId = opts.role === "client" ? 1 : 2;
    this.#nextPingId = opts.role === "client" ? 1 : 2;
    this.#bufferBytes = opts.streamBufferBytes ?? 1024 * 1024;
    this.#readLoop().then(
      () => this.#shutdown(),
      (e) => {
        opts.log?.debug("spdy connection read loop ended", { error: e });
        this.#shutdown();
      },
    );
  }

  /** Settles when the connection is gone (peer EOF, GOAWAY then EOF, error or close()). */
  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  /** True after the connection has shut down. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Number of streams that are not yet fully closed. */
  get activeStreams(): number {
    return this.#streams.size;
  }

  /**
   * Opens a stream with SYN_STREAM and waits for the peer's SYN_REPLY (as client-go does
   * before using a stream). `fin` opens it half-closed for writing.
   */
  async openStream(headers: SpdyHeadersInit, opts: { fin?: boolean } = {}): Promise<SpdyStream> {
    if (this.#isClosed) throw new Error("SPDY connection is closed");
    if (this.#goAwayReceived) throw new Error("SPDY peer sent GOAWAY; no new streams");
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const h = normaliseHeaders(headers);
    const stream = new SpdyStream(this, id, h, this.#bufferBytes);
    this.#streams.set(id, stream);
    const reply = deferred<SpdyStream>();
    // Observed here so a reply that fails while nobody awaits it is not an unhandled rejection.
    reply.promise.catch(() => {});
    this.#pendingReplies.set(id, reply);
    await this.#enqueue(async () => {
      const block = await this.#compressor.compress(encodeHeaderBlock(h));
      const payload = new Uint8Array(10 + block.length);
      const dv = new DataView(payload.buffer);
      dv.setUint32(0, id);
      dv.setUint32(4, 0);
      payload[8] = 0; // priority 0 (highest), slot 0
      payload.set(block, 10);
      return encodeControlFrame(FrameType.SYN_STREAM, opts.fin ? FLAG_FIN : 0, payload);
    });
    if (opts.fin) await stream.closeWrite().catch(() => {});
    return await reply.promise;
  }

  /** Sends a PING and resolves with the round-trip time in milliseconds. */
  ping(): Promise<number> {
    const id = this.#nextPingId;
    this.#nextPingId += 2;
    return new Promise((resolve, reject) => {
      this.#pings.set(id, { start: performance.now(), done: resolve });
      this._send(encodeControlFrame(FrameType.PING, 0, u32s(id))).catch((e) => {
        this.#pings.delete(id);
        reject(e);
      });
    });
  }

  /** Sends GOAWAY (status 0 = OK): the peer should open no more streams. */
  async goAway(status = 0): Promise<void> {
    const lastGood = this.#opts.role === "server" ? this.#lastPeerStreamId : 0;
    await this._send(encodeControlFrame(FrameType.GOAWAY, 0, u32s(lastGood, status)));
  }

  #lastPeerStreamId = 0;

  /**
   * Waits for queued frames to be written, then half-closes the socket and gives the peer
   * `graceMs` to close its side before closing it ourselves. Closing with unread data in our
   * receive buffer would make the kernel send RST, which can destroy data still in flight to
   * the peer (such as a final exit status).
   */
  async closeGracefully(graceMs = 2000): Promise<void> {
    if (this.#isClosed) return;
    await this.#writeChain.catch(() => {});
    try {
      await this.#transport.closeWrite?.();
    } catch { /* already gone */ }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.closed,
      new Promise<void>((r) => timer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(timer);
    this.close();
  }

  /** Closes the transport at once; open streams end (reads EOF, writes fail). */
  close(): void {
    if (!this.#isClosed) {
      try {
        this.#transport.close();
      } catch { /* already closed */ }
    }
    this.#shutdown();
  }

  /** @internal queues a frame; resolves when written. */
  _send(frame: Uint8Array): Promise<void> {
    return this.#enqueue(() => frame);
  }

  /** @internal a fully closed stream leaves the table. */
  _forget(id: number): void {
    this.#streams.delete(id);
  }

  #enqueue(build: () => Uint8Array | Promise<Uint8Array>): Promise<void> {
    const run = async () => {
      if (this.#writeError) throw this.#writeError;
      if (this.#isClosed) throw new Error("SPDY connection is closed");
      const bytes = await build();
      try {
        await writeAll(this.#transport, bytes);
      } catch (e) {
        this.#writeError = new Error(`writing to SPDY connection: ${(e as Error).message}`, {
          cause: e,
        });
        throw this.#writeError;
      }
    };
    const p = this.#writeChain.then(run);
    this.#writeChain = p.catch(() => {});
    return p;
  }

  async #readLoop(): Promise<void> {
    while (!this.#isClosed) {
      const frame = await readFrame(this.#reader);
      if (!frame) return;
      if (!frame.control) {
        const stream = this.#streams.get(frame.streamId);
        if (!stream) {
          // Data for a stream we do not know (already reset, or never opened).
          if (frame.streamId !== 0) {
            this._send(
              encodeControlFrame(
                FrameType.RST_STREAM,
                0,
                u32s(frame.streamId, RstStatus.INVALID_STREAM),
              ),
            ).catch(() => {});
          }
          continue;
        }
        const wait = stream._onData(frame.data, (frame.flags & FLAG_FIN) !== 0);
        if (wait) await wait;
        continue;
      }
      await this.#onControl(frame);
    }
  }

  async #onControl(f: Extract<RawFrame, { control: true }>): Promise<void> {
    const dv = new DataView(f.data.buffer, f.data.byteOffset, f.data.byteLength);
    const need = (n: number) => {
      if (f.data.length < n) throw new Error(`short SPDY control frame type ${f.type}`);
    };
    switch (f.type) {
      case FrameType.SYN_STREAM: {
        need(10);
        const id = dv.getUint32(0) & 0x7fffffff;
        // Decompress before any check: the zlib context must see every block in order.
        const headers = decodeHeaderBlock(await this.#decompressor.decompress(f.data.subarray(10)));
        this.#lastPeerStreamId = Math.max(this.#lastPeerStreamId, id);
        if (id === 0 || this.#streams.has(id)) {
          await this._send(encodeControlFrame(
            FrameType.RST_STREAM,
            0,
            u32s(id, id === 0 ? RstStatus.PROTOCOL_ERROR : RstStatus.STREAM_IN_USE),
          )).catch(() => {});
          return;
        }
        const stream = new SpdyStream(this, id, headers, this.#bufferBytes);
        this.#streams.set(id, stream);
        let accepted = true;
        try {
          accepted = this.#opts.onStream?.(stream) !== false;
        } catch (e) {
          this.#opts.log?.warn("spdy stream handler failed", { stream: id, error: e });
          accepted = false;
        }
        if (!accepted) {
          stream.reset(RstStatus.REFUSED_STREAM);
          return;
        }
        await this.#enqueue(async () => {
          const block = await this.#compressor.compress(encodeHeaderBlock(stream.replyHeaders));
          const payload = new Uint8Array(4 + block.length);
          new DataView(payload.buffer).setUint32(0, id);
          payload.set(block, 4);
          return encodeControlFrame(FrameType.SYN_REPLY, 0, payload);
        }).catch(() => {});
        if (f.flags & FLAG_FIN) stream._onData(new Uint8Array(0), true);
        return;
      }
      case FrameType.SYN_REPLY:
      case FrameType.HEADERS: {
        need(4);
        const id = dv.getUint32(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.#decompressor.decompress(f.data.subarray(4)));
        const stream = this.#streams.get(id);
        if (!stream) return;
        for (const [k, v] of Object.entries(headers)) {
          (stream.replyHeaders[k] ??= []).push(...v);
        }
        if (f.type === FrameType.SYN_REPLY) {
          this.#pendingReplies.get(id)?.resolve(stream);
          this.#pendingReplies.delete(id);
        }
        if (f.flags & FLAG_FIN) stream._onData(new Uint8Array(0), true);
        return;
      }
      case FrameType.RST_STREAM: {
        need(8);
        const id = dv.getUint32(0) & 0x7fffffff;
        const status = dv.getUint32(4);
        const stream = this.#streams.get(id);
        this.#pendingReplies.get(id)?.reject(
          new SpdyStreamResetError(id, status, `was refused by the peer (status ${status})`),
        );
        this.#pendingReplies.delete(id);
        stream?._onReset(status);
        return;
      }
      case FrameType.PING: {
        need(4);
        const id = dv.getUint32(0);
        const ours = (id % 2 === 1) === (this.#opts.role === "client");
        if (ours) {
          const p = this.#pings.get(id);
          this.#pings.delete(id);
          p?.done(performance.now() - p.start);
        } else {
          await this._send(encodeControlFrame(FrameType.PING, 0, u32s(id))).catch(() => {});
        }
        return;
      }
      case FrameType.GOAWAY:
        this.#goAwayReceived = true;
        return;
      case FrameType.SETTINGS:
      case FrameType.WINDOW_UPDATE:
        // See the module comment: peers speaking spdystream do no flow control.
        return;
      default:
        // SPDY says unknown control frames are ignored.
        this.#opts.log?.debug("ignoring unknown spdy control frame", { type: f.type });
    }
  }

  #shutdown(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    try {
      this.#transport.close();
    } catch { /* already closed */ }
    for (const p of this.#pendingReplies.values()) {
      p.reject(new Error("SPDY connection closed before the stream was accepted"));
    }
    this.#pendingReplies.clear();
    for (const s of [...this.#streams.values()]) s._onConnectionClosed();
    this.#streams.clear();
    this.#compressor.close();
    this.#decompressor.close();
    this.#closed.resolve();
  }
}
