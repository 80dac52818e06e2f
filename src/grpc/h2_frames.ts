/**
 * HTTP/2 frames (RFC 9113 §4, §6): the frame and error-code numbers, a decoder that cuts a
 * connection's byte stream into frames, and encoders for the frames a server sends. The decoder
 * checks only what a frame header alone can say (its length against the receiver's
 * SETTINGS_MAX_FRAME_SIZE); what a frame means is the connection's business (h2_connection.ts).
 *
 * @example
 * ```ts
 * import { FrameDecoder, encodeFrame, FRAME, FLAG } from "./h2_frames.ts";
 * const dec = new FrameDecoder(16384);
 * dec.push(encodeFrame(FRAME.PING, 0, 0, new Uint8Array(8)), (f) => console.log(f.type)); // 6
 * ```
 */

/** Frame type numbers (RFC 9113 §6). */
export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (RFC 9113 §6); ACK and END_STREAM share a bit, on different frame types. */
export const FLAG = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** Error codes for RST_STREAM and GOAWAY (RFC 9113 §7). */
export const H2_ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** The protocol's default and smallest SETTINGS_MAX_FRAME_SIZE. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
/** The largest flow-control window (2^31 - 1). */
export const MAX_WINDOW = 0x7fffffff;

/**
 * One decoded frame. `payload` is a view into the decoder's input, valid only during the
 * callback that receives it: copy what must outlive it.
 */
export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

/** A frame longer than the receiver allows: a connection error FRAME_SIZE_ERROR (§4.2). */
export class FrameSizeError extends Error {
  constructor(readonly length: number, readonly max: number) {
    super(`frame of ${length} octets exceeds SETTINGS_MAX_FRAME_SIZE ${max}`);
    this.name = "FrameSizeError";
  }
}

/**
 * Cuts a byte stream into frames. Chunks may split frames anywhere; only the bytes of an
 * unfinished frame are kept (copied) between pushes.
 *
 * @example
 * ```ts
 * const dec = new FrameDecoder(16384);
 * dec.push(chunk, (frame) => connection.onFrame(frame));
 * ```
 */
export class FrameDecoder {
  #pending: Uint8Array | null = null;
  /** The largest payload accepted: our SETTINGS_MAX_FRAME_SIZE. */
  maxFrameSize: number;

  constructor(maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.maxFrameSize = maxFrameSize;
  }

  /** True when no partial frame is held. */
  get idle(): boolean {
    return this.#pending === null;
  }

  /**
   * Decodes the frames `chunk` completes, calling `onFrame` for each in order. Throws
   * FrameSizeError on an oversize frame (the stream is unusable after that). `onFrame` may
   * return false to stop decoding (the rest of the input is dropped).
   */
  push(chunk: Uint8Array, onFrame: (f: Frame) => boolean | void): void {
    let buf = chunk;
    if (this.#pending) {
      const joined = new Uint8Array(this.#pending.length + chunk.length);
      joined.set(this.#pending);
      joined.set(chunk, this.#pending.length);
      buf = joined;
      this.#pending = null;
    }
    let pos = 0;
    const end = buf.length;
    while (end - pos >= 9) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (length > this.maxFrameSize) throw new FrameSizeError(length, this.maxFrameSize);
      if (end - pos < 9 + length) break;
      const frame: Frame = {
        type: buf[pos + 3],
        flags: buf[pos + 4],
        streamId: ((buf[pos + 5] & 0x7f) << 24 | (buf[pos + 6] << 16) | (buf[pos + 7] << 8) |
          buf[pos + 8]) >>> 0,
        payload: buf.subarray(pos + 9, pos + 9 + length),
      };
      pos += 9 + length;
      if (onFrame(frame) === false) return;
    }
    if (pos < end) this.#pending = buf.slice(pos);
  }
}

/**
 * Writes a frame header at `at` in `out` (9 octets).
 *
 * @example
 * ```ts
 * const out = new Uint8Array(9 + 8);
 * writeFrameHeader(out, 0, 8, FRAME.PING, FLAG.ACK, 0);
 * ```
 */
export function writeFrameHeader(
  out: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[at] = length >>> 16;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out[at + 5] = (streamId >>> 24) & 0x7f;
  out[at + 6] = (streamId >>> 16) & 0xff;
  out[at + 7] = (streamId >>> 8) & 0xff;
  out[at + 8] = streamId & 0xff;
}

/**
 * One whole frame as bytes.
 *
 * @example
 * ```ts
 * const ping = encodeFrame(FRAME.PING, 0, 0, new Uint8Array(8));
 * ```
 */
export function encodeFrame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(9 + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, 9);
  return out;
}

/**
 * A SETTINGS frame with the given [identifier, value] pairs.
 *
 * @example
 * ```ts
 * encodeSettings([[SETTING.MAX_CONCURRENT_STREAMS, 1000]]);
 * ```
 */
export function encodeSettings(pairs: readonly (readonly [number, number])[]): Uint8Array {
  const p = new Uint8Array(pairs.length * 6);
  const v = new DataView(p.buffer);
  pairs.forEach(([id, value], i) => {
    v.setUint16(i * 6, id);
    v.setUint32(i * 6 + 2, value);
  });
  return encodeFrame(FRAME.SETTINGS, 0, 0, p);
}

/**
 * Parses a SETTINGS payload into [identifier, value] pairs (the caller has checked that its
 * length is a multiple of 6).
 *
 * @example
 * ```ts
 * decodeSettings(payload); // [[4, 1048576], ...]
 * ```
 */
export function decodeSettings(payload: Uint8Array): [number, number][] {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out: [number, number][] = [];
  for (let i = 0; i + 6 <= payload.length; i += 6) out.push([v.getUint16(i), v.getUint32(i + 2)]);
  return out;
}

/**
 * A 4-octet big-endian payload (RST_STREAM's error code, WINDOW_UPDATE's increment).
 *
 * @example
 * ```ts
 * encodeFrame(FRAME.RST_STREAM, 0, 1, u32(H2_ERROR.CANCEL));
 * ```
 */
export function u32(n: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, n >>> 0);
  return p;
}

/**
 * Reads a 4-octet big-endian integer at `at`.
 *
 * @example
 * ```ts
 * readU32(frame.payload, 0) & 0x7fffffff; // a WINDOW_UPDATE's increment
 * ```
 */
export function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/**
 * A GOAWAY frame: the last stream id this side processed, the error code, debug text.
 *
 * @example
 * ```ts
 * encodeGoaway(7, H2_ERROR.NO_ERROR);
 * ```
 */
export function encodeGoaway(lastStreamId: number, code: number, debug = ""): Uint8Array {
  const text = new TextEncoder().encode(debug);
  const p = new Uint8Array(8 + text.length);
  const v = new DataView(p.buffer);
  v.setUint32(0, lastStreamId & 0x7fffffff);
  v.setUint32(4, code);
  p.set(text, 8);
  return encodeFrame(FRAME.GOAWAY, 0, 0, p);
}
