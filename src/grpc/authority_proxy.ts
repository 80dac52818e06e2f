/**
 * The authority fix at the gRPC edge (see edge.ts): a byte transformer for the client→server
 * half of an HTTP/2 connection that rewrites a client's `:authority` when it is not a valid
 * host[:port].
 *
 * Why: grpc-go clients (kubelet, crictl) dialing `unix:///run/x.sock` send the socket path as
 * `:authority`; Deno's HTTP/2 server (hyperium/h2-like, see h2 PR 487) answers that with GOAWAY
 * PROTOCOL_ERROR, so those clients cannot talk to grpc-js under Deno. The edge passes what the
 * client sends through a ClientStreamRewriter before node:http2 sees it: the connection preface
 * and every frame but HEADERS/CONTINUATION byte-for-byte (DATA as slices of the read buffer),
 * and each header block HPACK-decoded with the client's dynamic table, `:authority` fixed, and
 * re-encoded without the dynamic table (so the server's decoder state never depends on the
 * client's). The client's GOAWAY and PRIORITY frames are not forwarded: processing a client's
 * GOAWAY can abort Deno's HTTP/2 server (see `#startFrame`). Server→client bytes are untouched.
 *
 * @example
 * ```ts
 * import { ClientStreamRewriter } from "./authority_proxy.ts";
 * const rw = new ClientStreamRewriter("localhost");
 * for (const segment of rw.push(bytesFromClient)) await server.write(segment);
 * ```
 */
import { type HeaderField, HpackDecoder, HpackEncoder } from "./hpack.ts";

/** The client connection preface (RFC 9113 §3.4). */
const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const FRAME_HEADERS = 0x1;
const FRAME_PRIORITY = 0x2;
const FRAME_GOAWAY = 0x7;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

/** SETTINGS_MAX_FRAME_SIZE's initial value: every frame we emit fits it. */
export const MAX_FRAME_SIZE = 16384;
/** Largest header block (sum of fragments) the proxy buffers. */
const MAX_HEADER_BLOCK = 1 << 20;
/** Largest dynamic table a client may switch to (we do not parse the server's SETTINGS). */
const MAX_CLIENT_TABLE = 1 << 16;

/** A protocol violation by the client: the connection is dropped. */
export class ProxyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProxyProtocolError";
  }
}

const AUTHORITY_RE =
  /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::[0-9]{1,5})?$/;

/**
 * Whether `value` is a host[:port] an HTTP/2 server accepts as `:authority`: a reg-name, IPv4
 * address or bracketed IPv6 address, optionally with a numeric port; no userinfo, no path.
 */
export function isValidAuthority(value: string): boolean {
  return AUTHORITY_RE.test(value);
}

/** A header block being collected: HEADERS seen, waiting for END_HEADERS. */
interface PendingBlock {
  streamId: number;
  flags: number;
  fragments: Uint8Array[];
  size: number;
}

/**
 * The client→server half of a connection as a pure byte transformer: feed it what the client
 * sent, in order, and write what it returns (slices of the input for passed-through bytes, so
 * write them before reusing the input buffer). Throws ProxyProtocolError or HpackError.
 */
export class ClientStreamRewriter {
  /** Header blocks whose `:authority` was replaced. */
  rewritten = 0;
  readonly #authority: string;
  readonly #decoder = new HpackDecoder({ maxTableSize: MAX_CLIENT_TABLE });
  readonly #encoder = new HpackEncoder();
  #prefaceLeft = PREFACE.length;
  readonly #header = new Uint8Array(9);
  #headerLen = 0;
  /** Payload bytes of a passed-through frame still to come. */
  #passLeft = 0;
  /** Payload bytes of a dropped frame still to come. */
  #dropLeft = 0;
  /** GOAWAY and PRIORITY frames not forwarded (see #startFrame). */
  dropped = 0;
  /** A HEADERS/CONTINUATION frame being read: its type, flags, stream and payload. */
  #frame:
    | { type: number; flags: number; streamId: number; payload: Uint8Array; filled: number }
    | undefined;
  #pending: PendingBlock | undefined;

  constructor(authority = "localhost") {
    this.#authority = authority;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let pos = 0;
    let passFrom = -1; // start of a run of input bytes forwarded as they are
    const flush = () => {
      if (passFrom >= 0 && pos > passFrom) out.push(chunk.subarray(passFrom, pos));
      passFrom = -1;
    };
    const pass = () => {
      if (passFrom < 0) passFrom = pos;
    };
    while (pos < chunk.length) {
      const avail = chunk.length - pos;
      if (this.#prefaceLeft > 0) {
        const n = Math.min(this.#prefaceLeft, avail);
        const at = PREFACE.length - this.#prefaceLeft;
        for (let i = 0; i < n; i++) {
          if (chunk[pos + i] !== PREFACE[at + i]) {
            throw new ProxyProtocolError("bad HTTP/2 connection preface");
          }
        }
        pass();
        pos += n;
        this.#prefaceLeft -= n;
      } else if (this.#passLeft > 0) {
        const n = Math.min(this.#passLeft, avail);
        pass();
        pos += n;
        this.#passLeft -= n;
      } else if (this.#dropLeft > 0) {
        const n = Math.min(this.#dropLeft, avail);
        flush();
        pos += n;
        this.#dropLeft -= n;
      } else if (this.#frame) {
        const f = this.#frame;
        const n = Math.min(f.payload.length - f.filled, avail);
        f.payload.set(chunk.subarray(pos, pos + n), f.filled);
        f.filled += n;
        pos += n;
        if (f.filled === f.payload.length) {
          this.#frame = undefined;
          out.push(...this.#headerFrame(f.type, f.flags, f.streamId, f.payload));
        }
      } else if (this.#headerLen === 0 && avail >= 9) {
        const header = chunk.subarray(pos, pos + 9);
        const what = this.#startFrame(header);
        if (what === "pass") {
          pass();
          pos += 9;
        } else {
          flush();
          pos += 9;
          if (what === "collect") out.push(...this.#maybeEmptyFrame());
        }
      } else {
        flush();
        const n = Math.min(9 - this.#headerLen, avail);
        this.#header.set(chunk.subarray(pos, pos + n), this.#headerLen);
        this.#headerLen += n;
        pos += n;
        if (this.#headerLen === 9) {
          this.#headerLen = 0;
          const what = this.#startFrame(this.#header);
          if (what === "pass") out.push(this.#header.slice());
          else if (what === "collect") out.push(...this.#maybeEmptyFrame());
        }
      }
    }
    flush();
    return out;
  }

  /** True when the client's stream ended on a frame boundary with no header block open. */
  get idle(): boolean {
    return this.#prefaceLeft === 0 && this.#passLeft === 0 && this.#dropLeft === 0 &&
      !this.#frame && this.#headerLen === 0 && !this.#pending;
  }

  /**
   * Reads a frame header: a frame to pass through or to drop (payload length noted), or a
   * HEADERS/CONTINUATION frame to collect.
   *
   * GOAWAY and PRIORITY frames are dropped. Deno's HTTP/2 server (nghttp2 underneath) can abort
   * the whole process on an assertion while it processes a client's GOAWAY
   * (`find_stream_on_goaway_func`, denoland/deno#36788): seen here when CRI clients close
   * their connections. Neither frame means anything to a gRPC server: a client's GOAWAY only
   * refuses server-initiated streams (gRPC has none) before the client closes the connection,
   * which the server sees anyway; priorities are deprecated (RFC 9113 §5.3.2), and a PRIORITY
   * naming an unknown stream makes nghttp2 keep an idle stream for it. The PRIORITY flag of
   * HEADERS is dropped for the same reason.
   */
  #startFrame(h: Uint8Array): "pass" | "drop" | "collect" {
    const length = (h[0] << 16) | (h[1] << 8) | h[2];
    const type = h[3];
    const flags = h[4];
    const streamId = ((h[5] & 0x7f) << 24 | h[6] << 16 | h[7] << 8 | h[8]) >>> 0;
    if (type !== FRAME_HEADERS && type !== FRAME_CONTINUATION) {
      if (this.#pending) {
        throw new ProxyProtocolError(
          `frame type ${type} inside a header block (CONTINUATION expected)`,
        );
      }
      if (type === FRAME_GOAWAY || type === FRAME_PRIORITY) {
        this.dropped++;
        this.#dropLeft = length;
        return "drop";
      }
      this.#passLeft = length;
      return "pass";
    }
    if (streamId === 0) throw new ProxyProtocolError("header frame on stream 0");
    if (type === FRAME_HEADERS && this.#pending) {
      throw new ProxyProtocolError("HEADERS inside a header block (CONTINUATION expected)");
    }
    if (type === FRAME_CONTINUATION && this.#pending?.streamId !== streamId) {
      throw new ProxyProtocolError(`unexpected CONTINUATION on stream ${streamId}`);
    }
    if (length > MAX_HEADER_BLOCK || (this.#pending?.size ?? 0) + length > MAX_HEADER_BLOCK) {
      throw new ProxyProtocolError(`header block larger than ${MAX_HEADER_BLOCK} octets`);
    }
    this.#frame = { type, flags, streamId, payload: new Uint8Array(length), filled: 0 };
    return "collect";
  }

  /** A header frame with an empty payload is complete as soon as its header is read. */
  #maybeEmptyFrame(): Uint8Array[] {
    const f = this.#frame!;
    if (f.payload.length > 0) return [];
    this.#frame = undefined;
    return this.#headerFrame(f.type, f.flags, f.streamId, f.payload);
  }

  /** One complete HEADERS or CONTINUATION frame: collect; at END_HEADERS, rewrite the block. */
  #headerFrame(type: number, flags: number, streamId: number, payload: Uint8Array): Uint8Array[] {
    if (type === FRAME_HEADERS) {
      let off = 0;
      let pad = 0;
      if (flags & FLAG_PADDED) {
        if (payload.length < 1) throw new ProxyProtocolError("PADDED HEADERS without pad length");
        pad = payload[0];
        off = 1;
      }
      if (flags & FLAG_PRIORITY) {
        if (payload.length < off + 5) {
          throw new ProxyProtocolError("HEADERS too short for PRIORITY");
        }
        off += 5; // not forwarded (see #startFrame)
      }
      if (pad > payload.length - off) throw new ProxyProtocolError("HEADERS padding too long");
      const fragment = payload.subarray(off, payload.length - pad);
      this.#pending = { streamId, flags, fragments: [fragment], size: fragment.length };
    } else {
      const p = this.#pending!;
      p.fragments.push(payload);
      p.size += payload.length;
    }
    if (!(flags & FLAG_END_HEADERS)) return [];
    const p = this.#pending!;
    this.#pending = undefined;
    return this.#rewrite(p);
  }

  #rewrite(p: PendingBlock): Uint8Array[] {
    const block = p.fragments.length === 1 ? p.fragments[0] : concat(p.fragments, p.size);
    let changed = false;
    const fields = this.#decoder.decode(block).map((f): HeaderField => {
      if (f.name !== ":authority" || isValidAuthority(f.value)) return f;
      changed = true;
      return { name: f.name, value: this.#authority };
    });
    if (changed) this.rewritten++;
    return headerFrames(
      p.streamId,
      p.flags & FLAG_END_STREAM,
      undefined,
      this.#encoder.encode(fields),
    );
  }
}

/**
 * Frames a header block as HEADERS (+ CONTINUATION…), each at most MAX_FRAME_SIZE long, the
 * HEADERS carrying `endStream` and the 5 priority octets when given.
 */
export function headerFrames(
  streamId: number,
  endStream: number,
  priority: Uint8Array | undefined,
  block: Uint8Array,
): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const prio = priority?.length ?? 0;
  let off = 0;
  let first = true;
  do {
    const room = MAX_FRAME_SIZE - (first ? prio : 0);
    const n = Math.min(room, block.length - off);
    const last = off + n === block.length;
    let flags = last ? FLAG_END_HEADERS : 0;
    if (first) flags |= endStream & FLAG_END_STREAM | (priority ? FLAG_PRIORITY : 0);
    const payloadLen = n + (first ? prio : 0);
    const frame = new Uint8Array(9 + payloadLen);
    frame[0] = payloadLen >> 16;
    frame[1] = (payloadLen >> 8) & 0xff;
    frame[2] = payloadLen & 0xff;
    frame[3] = first ? FRAME_HEADERS : FRAME_CONTINUATION;
    frame[4] = flags;
    new DataView(frame.buffer).setUint32(5, streamId & 0x7fffffff);
    let at = 9;
    if (first && priority) {
      frame.set(priority, at);
      at += prio;
    }
    frame.set(block.subarray(off, off + n), at);
    frames.push(frame);
    off += n;
    first = false;
  } while (off < block.length);
  return frames;
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
