/**
 * Buffered reading and whole writes on a raw connection, shared by the HTTP/1.1 front end,
 * the SPDY framer and the WebSocket framer: all three read "exactly n bytes" or "up to a
 * delimiter" and must hand bytes read past an HTTP head on to the protocol that follows.
 *
 * @example
 * ```ts
 * import { ByteReader, writeAll } from "./bytes.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8080 });
 * await writeAll(conn, new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
 * const head = await new ByteReader(conn).readHead(16 * 1024);
 * ```
 */

/** Anything with a Deno-style `read`: a `Deno.Conn`, or a test double. */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/** Anything with a Deno-style `write` that may write only part of the buffer. */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

/**
 * Writes every byte of `data`; `Deno.Conn.write` may return after a partial write.
 *
 * @example
 * ```ts
 * import { writeAll } from "./bytes.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8080 });
 * await writeAll(conn, new Uint8Array([1, 2, 3]));
 * ```
 */
export async function writeAll(sink: ByteSink, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await sink.write(data.subarray(off));
}

/** Concatenates byte arrays into one. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The peer closed the connection in the middle of a unit (frame, head) it had started. */
export class UnexpectedEofError extends Error {
  constructor(what: string) {
    super(`connection closed in the middle of ${what}`);
    this.name = "UnexpectedEofError";
  }
}

/**
 * A read buffer over a {@link ByteSource}. Reads are not concurrent-safe: one consumer at a
 * time, which is how every protocol here uses it (a single read loop per connection).
 *
 * @example
 * ```ts
 * import { ByteReader } from "./bytes.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8080 });
 * const r = new ByteReader(conn);
 * const frameHeader = await r.readExact(8); // null on a clean EOF
 * ```
 */
export class ByteReader {
  #buf: Uint8Array = new Uint8Array(0);
  #off = 0;
  #eof = false;

  constructor(private readonly source: ByteSource, initial?: Uint8Array) {
    if (initial && initial.length > 0) this.#buf = initial.slice();
  }

  /** Bytes buffered but not yet consumed. */
  get buffered(): number {
    return this.#buf.length - this.#off;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.source.read(chunk);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const rest = this.#buf.subarray(this.#off);
    const next = new Uint8Array(rest.length + n);
    next.set(rest, 0);
    next.set(chunk.subarray(0, n), rest.length);
    this.#buf = next;
    this.#off = 0;
    return true;
  }

  /**
   * Exactly `n` bytes; `null` when the source ended cleanly before the first byte, an
   * {@link UnexpectedEofError} when it ended part-way (a truncated frame).
   */
  async readExact(n: number, what = "a frame"): Promise<Uint8Array | null> {
    while (this.buffered < n) {
      if (!(await this.#fill())) {
        if (this.buffered === 0) return null;
        throw new UnexpectedEofError(what);
      }
    }
    const out = this.#buf.slice(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }

  /**
   * Everything up to and including the first CRLFCRLF (an HTTP/1.1 head). `null` on EOF
   * before any byte; throws when the head exceeds `max` bytes so a client cannot make us
   * buffer without bound.
   */
  async readHead(max: number): Promise<Uint8Array | null> {
    let scanFrom = 0;
    while (true) {
      const view = this.#buf.subarray(this.#off);
      for (let i = Math.max(0, scanFrom - 3); i + 3 < view.length; i++) {
        if (view[i] === 13 && view[i + 1] === 10 && view[i + 2] === 13 && view[i + 3] === 10) {
          const out = view.slice(0, i + 4);
          this.#off += i + 4;
          return out;
        }
      }
      scanFrom = view.length;
      if (view.length > max) throw new Error(`request head larger than ${max} bytes`);
      if (!(await this.#fill())) {
        if (this.buffered === 0) return null;
        throw new UnexpectedEofError("an HTTP head");
      }
    }
  }

  /** Whatever is buffered now, or the next chunk from the source; `null` at EOF. */
  async readSome(): Promise<Uint8Array | null> {
    if (this.buffered === 0 && !(await this.#fill())) return null;
    const out = this.#buf.slice(this.#off);
    this.#off = this.#buf.length;
    return out;
  }
}
