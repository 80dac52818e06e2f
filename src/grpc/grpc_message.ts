/**
 * gRPC's message framing on an HTTP/2 stream body: each message is a 1-octet compressed flag,
 * a 4-octet big-endian length and the serialized bytes. The reader reassembles messages from
 * DATA chunks of any size and refuses, before buffering it, one longer than the receive limit.
 *
 * @example
 * ```ts
 * import { encodeMessage, MessageReader } from "./grpc_message.ts";
 * const r = new MessageReader(4 << 20);
 * r.push(encodeMessage(new Uint8Array([8, 1])), (m) => console.log(m)); // Uint8Array [8, 1]
 * ```
 */
import { RuntimeError } from "../errdefs/errors.ts";

/** A message past the size limit (RESOURCE_EXHAUSTED). */
export class MessageTooLarge extends RuntimeError {
  constructor(readonly size: number, readonly max: number, direction: "Received" | "Sent") {
    super("resource-exhausted", `${direction} message larger than max (${size} vs. ${max})`);
  }
}

/** A message with the compressed flag set: this server speaks only identity (UNIMPLEMENTED). */
export class CompressedMessage extends RuntimeError {
  constructor() {
    super("unimplemented", "grpc-encoding not supported: compressed messages are refused");
  }
}

/**
 * Reassembles length-prefixed messages.
 *
 * @example
 * ```ts
 * const r = new MessageReader(16 << 20);
 * stream.ondata = (chunk) => r.push(chunk, (msg, wireBytes) => queue.push(msg));
 * ```
 */
export class MessageReader {
  readonly #max: number;
  #prefix = new Uint8Array(5);
  #prefixAt = 0;
  #msg: Uint8Array | null = null;
  #msgAt = 0;

  constructor(maxMessageSize: number) {
    this.#max = maxMessageSize;
  }

  /** True between messages (nothing partial held). */
  get idle(): boolean {
    return this.#prefixAt === 0 && this.#msg === null;
  }

  /**
   * Takes one body chunk (not kept), calling `onMessage` with each message it completes (a
   * fresh array) and the octets it took on the wire (5 + length). Throws MessageTooLarge or
   * CompressedMessage.
   */
  push(chunk: Uint8Array, onMessage: (msg: Uint8Array, wireBytes: number) => void): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#msg === null) {
        const n = Math.min(5 - this.#prefixAt, chunk.length - pos);
        this.#prefix.set(chunk.subarray(pos, pos + n), this.#prefixAt);
        this.#prefixAt += n;
        pos += n;
        if (this.#prefixAt < 5) return;
        const p = this.#prefix;
        if (p[0] !== 0) throw new CompressedMessage();
        const len = ((p[1] << 24) | (p[2] << 16) | (p[3] << 8) | p[4]) >>> 0;
        if (len > this.#max) throw new MessageTooLarge(len, this.#max, "Received");
        this.#prefixAt = 0;
        this.#msg = new Uint8Array(len);
        this.#msgAt = 0;
      }
      const m = this.#msg;
      const n = Math.min(m.length - this.#msgAt, chunk.length - pos);
      m.set(chunk.subarray(pos, pos + n), this.#msgAt);
      this.#msgAt += n;
      pos += n;
      if (this.#msgAt === m.length) {
        this.#msg = null;
        onMessage(m, 5 + m.length);
      }
    }
  }
}

/**
 * One message with its 5-octet prefix (uncompressed).
 *
 * @example
 * ```ts
 * stream.write(encodeMessage(VersionResponse.encode(res).finish()));
 * ```
 */
export function encodeMessage(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  writePrefix(out, payload.length);
  out.set(payload, 5);
  return out;
}

/**
 * Writes the uncompressed prefix for a message of `length` octets at the start of `out`.
 *
 * @example
 * ```ts
 * const prefix = new Uint8Array(5);
 * writePrefix(prefix, big.length);
 * ```
 */
export function writePrefix(out: Uint8Array, length: number): void {
  out[0] = 0;
  out[1] = length >>> 24;
  out[2] = (length >>> 16) & 0xff;
  out[3] = (length >>> 8) & 0xff;
  out[4] = length & 0xff;
}

/**
 * grpc-message's percent-encoding (gRPC HTTP/2 protocol spec): octets outside printable ASCII,
 * and `%` itself, as %XX of the UTF-8 bytes.
 *
 * @example
 * ```ts
 * percentEncode("naïve 100%"); // "na%C3%AFve 100%25"
 * ```
 */
export function percentEncode(s: string): string {
  let plain = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return s;
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    out += b < 0x20 || b > 0x7e || b === 0x25
      ? "%" + b.toString(16).toUpperCase().padStart(2, "0")
      : String.fromCharCode(b);
  }
  return out;
}

/**
 * The reverse of {@link percentEncode}, for a received grpc-message; text that is not valid
 * percent-encoding is kept as it came.
 *
 * @example
 * ```ts
 * percentDecode("na%C3%AFve 100%25"); // "naïve 100%"
 * ```
 */
export function percentDecode(s: string): string {
  if (!s.includes("%")) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The `grpc-timeout` header as milliseconds, or undefined when absent or malformed.
 *
 * @example
 * ```ts
 * parseTimeout("1500m"); // 1500
 * ```
 */
export function parseTimeout(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2]]!;
  return n * unit;
}
