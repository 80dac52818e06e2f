/**
 * SPDY/3 header-block compression: each direction of a connection is one zlib stream, seeded
 * with the dictionary from the SPDY/3 draft (section 2.6.10.1) and sync-flushed after every
 * header block so the peer can decode each block as soon as it arrives.
 *
 * Deno 2.9's `node:zlib` honours `dictionary` when inflating but silently ignores it when
 * deflating, so the blocks we send are plain zlib streams without the FDICT flag. That is
 * still valid SPDY on the wire: zlib inflaters (Go's compress/zlib in spdystream, C zlib) only
 * ask for the dictionary when the stream header says it was used. Blocks from Go peers do use
 * the dictionary and are inflated with it.
 *
 * @example
 * ```ts
 * import { HeaderCompressor, HeaderDecompressor } from "./spdy_zlib.ts";
 * const c = new HeaderCompressor(), d = new HeaderDecompressor();
 * const block = await c.compress(new TextEncoder().encode("hello"));
 * console.log(new TextDecoder().decode(await d.decompress(block)));
 * ```
 */
import zlib from "node:zlib";
import { Buffer } from "node:buffer";

const LENGTH_PREFIXED_WORDS = [
  "options",
  "head",
  "post",
  "put",
  "delete",
  "trace",
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
  "accept-ranges",
  "age",
  "allow",
  "authorization",
  "cache-control",
  "connection",
  "content-base",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expect",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "pragma",
  "proxy-authenticate",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "server",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "vary",
  "via",
  "warning",
  "www-authenticate",
  "method",
  "get",
  "status",
  "200 OK",
  "version",
  "HTTP/1.1",
  "url",
  "public",
  "set-cookie",
  "keep-alive",
  "origin",
];

const DICTIONARY_TAIL = "100101201202205206300302303304305306307402405406407408409410411412413" +
  "414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently" +
  "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not " +
  "Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 " +
  "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif," +
  "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=" +
  "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

function buildDictionary(): Uint8Array {
  // The draft lists the dictionary as 32-bit big-endian length-prefixed words followed by a
  // run of bare strings; building it from that description keeps the 1423 bytes reviewable.
  const enc = new TextEncoder();
  const parts: number[] = [];
  for (const w of LENGTH_PREFIXED_WORDS) {
    const b = enc.encode(w);
    parts.push(0, 0, 0, b.length, ...b);
  }
  parts.push(...enc.encode(DICTIONARY_TAIL));
  return new Uint8Array(parts);
}

/**
 * The SPDY/3 zlib dictionary (1423 bytes).
 *
 * @example
 * ```ts
 * import { SPDY3_DICTIONARY } from "./spdy_zlib.ts";
 * console.log(SPDY3_DICTIONARY.length); // 1423
 * ```
 */
export const SPDY3_DICTIONARY: Uint8Array = buildDictionary();

type ZStream = zlib.Deflate | zlib.Inflate;

/** Runs one chunk through a long-lived zlib stream and sync-flushes; calls are serialised. */
class SyncFlusher {
  #chain: Promise<unknown> = Promise.resolve();
  #failed: Error | undefined;

  constructor(private readonly z: ZStream, private readonly what: string) {
    z.on("error", (e: Error) => {
      this.#failed = new Error(`${what}: ${e.message}`, { cause: e });
    });
  }

  run(input: Uint8Array): Promise<Uint8Array> {
    const next = this.#chain.then(() => this.#once(input));
    // A failed block must not wedge later ones behind a rejected promise.
    this.#chain = next.catch(() => {});
    return next;
  }

  #once(input: Uint8Array): Promise<Uint8Array> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      const onData = (c: Uint8Array) => chunks.push(c);
      const onError = (e: Error) => {
        this.z.off("data", onData);
        reject(new Error(`${this.what}: ${e.message}`, { cause: e }));
      };
      this.z.on("data", onData);
      this.z.once("error", onError);
      this.z.write(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
      this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        // Deno reports a zlib error only after the flush callback; a macrotask later it has
        // arrived, so a corrupt block is not mistaken for an empty one.
        setTimeout(() => {
          this.z.off("data", onData);
          this.z.off("error", onError);
          if (this.#failed) return reject(this.#failed);
          const out = Buffer.concat(chunks);
          resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
        }, 0);
      });
    });
  }

  close(): void {
    this.z.destroy();
  }
}

/**
 * The sending half: one deflate stream for the life of a connection.
 *
 * @example
 * ```ts
 * import { HeaderCompressor } from "./spdy_zlib.ts";
 * const c = new HeaderCompressor();
 * const a = await c.compress(new Uint8Array([0, 0, 0, 0]));
 * c.close();
 * ```
 */
export class HeaderCompressor {
  #f = new SyncFlusher(
    zlib.createDeflate({ level: 9, dictionary: Buffer.from(SPDY3_DICTIONARY) }),
    "compressing SPDY header block",
  );
  /** Compresses one header block; the result ends on a sync-flush boundary. */
  compress(block: Uint8Array): Promise<Uint8Array> {
    return this.#f.run(block);
  }
  /** Frees the zlib state. */
  close(): void {
    this.#f.close();
  }
}

/**
 * The receiving half: one inflate stream for the life of a connection.
 *
 * @example
 * ```ts
 * import { HeaderDecompressor } from "./spdy_zlib.ts";
 * const d = new HeaderDecompressor();
 * // const block = await d.decompress(compressedBytesFromPeer);
 * d.close();
 * ```
 */
export class HeaderDecompressor {
  #f = new SyncFlusher(
    zlib.createInflate({ dictionary: Buffer.from(SPDY3_DICTIONARY) }),
    "decompressing SPDY header block",
  );
  /** Inflates the next compressed header block of the peer's zlib stream. */
  decompress(compressed: Uint8Array): Promise<Uint8Array> {
    return this.#f.run(compressed);
  }
  /** Frees the zlib state. */
  close(): void {
    this.#f.close();
  }
}
