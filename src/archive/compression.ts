/**
 * Layer decompression as web streams: gzip and zstd through `node:zlib`, or "auto" to sniff the
 * magic bytes. A truncated or corrupt stream ends in an error that names the format and the
 * problem (e.g. `gzip layer: unexpected end of file`), never in a short, silently accepted tar.
 *
 * @example
 * ```ts
 * import { decompress } from "./compression.ts";
 * const blob = (await Deno.open("layer.tar.gz")).readable;
 * const tar = decompress(blob, "auto"); // ReadableStream<Uint8Array> of the tar bytes
 * ```
 *
 * @module
 */
import zlib from "node:zlib";
import { InvalidArgumentError } from "../errdefs/errors.ts";

/** How a layer blob is compressed; "auto" sniffs gzip (1f 8b) and zstd (28 b5 2f fd). */
export type CompressionKind = "gzip" | "zstd" | "none" | "auto";

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * Which compression the first bytes of a blob announce ("none" when neither magic matches).
 *
 * @example
 * ```ts
 * import { sniffCompression } from "./compression.ts";
 * sniffCompression(new Uint8Array([0x1f, 0x8b, 8, 0])); // "gzip"
 * ```
 */
export function sniffCompression(head: Uint8Array): "gzip" | "zstd" | "none" {
  const starts = (m: number[]) => head.length >= m.length && m.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return "gzip";
  if (starts(ZSTD_MAGIC)) return "zstd";
  return "none";
}

/**
 * Maps a layer media type to its compression (`…tar+gzip`, Docker's `…tar.gzip`, `…+zstd`,
 * plain `…tar`); anything else is "auto".
 *
 * @example
 * ```ts
 * import { compressionOf } from "./compression.ts";
 * compressionOf("application/vnd.oci.image.layer.v1.tar+zstd"); // "zstd"
 * ```
 */
export function compressionOf(mediaType: string): CompressionKind {
  if (/[+.]gzip$/.test(mediaType)) return "gzip";
  if (/[+.]zstd$/.test(mediaType)) return "zstd";
  if (/\.tar$/.test(mediaType)) return "none";
  return "auto";
}

/**
 * Decompresses a layer blob stream into the tar byte stream. Errors of the source stream pass
 * through unchanged; decoder errors become {@link InvalidArgumentError}s naming the format.
 *
 * @example
 * ```ts
 * import { decompress } from "./compression.ts";
 * const res = await fetch(blobURL);
 * for await (const chunk of decompress(res.body!, "gzip")) console.log(chunk.length);
 * ```
 */
export function decompress(
  stream: ReadableStream<Uint8Array>,
  kind: CompressionKind,
): ReadableStream<Uint8Array> {
  if (kind === "none") return stream;
  if (kind !== "gzip" && kind !== "zstd" && kind !== "auto") {
    throw new InvalidArgumentError(`decompress: unknown compression ${kind}`);
  }
  const reader = stream.getReader();
  let inner: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!inner) {
        // Read until the magic bytes are known (auto), then replay them ahead of the rest.
        const head: Uint8Array[] = [];
        let len = 0;
        while (kind === "auto" && len < ZSTD_MAGIC.length) {
          const { done, value } = await reader.read();
          if (done) break;
          head.push(value);
          len += value.length;
        }
        const k = kind === "auto" ? sniffCompression(concat(head)) : kind;
        inner = k === "none" ? replay(head, reader) : inflate(replay(head, reader), k);
      }
      const { done, value } = await inner.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => inner ? inner.cancel(reason) : reader.cancel(reason),
  });
}

/** A reader yielding `head`, then what `rest` yields. */
function replay(
  head: Uint8Array[],
  rest: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStreamDefaultReader<Uint8Array> {
  const queue = [...head];
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const first = queue.shift();
      if (first) return c.enqueue(first);
      const { done, value } = await rest.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel: (reason) => rest.cancel(reason),
  }).getReader();
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * Runs a node:zlib decoder over `src`, pulled by the consumer: input is fed only when no
 * decoded output is waiting, and the decoder pauses while more than a few chunks are queued, so
 * memory stays bounded even for highly compressible input.
 */
function inflate(
  src: ReadableStreamDefaultReader<Uint8Array>,
  kind: "gzip" | "zstd",
): ReadableStreamDefaultReader<Uint8Array> {
  const z = kind === "gzip"
    ? zlib.createGunzip({ chunkSize: 256 << 10 })
    : zlib.createZstdDecompress({ chunkSize: 256 << 10 });
  // Deno's zstd decoder ends quietly on a truncated frame; walk the frame structure to notice.
  const frames = kind === "zstd" ? new ZstdFrameChecker() : undefined;
  const queue: Uint8Array[] = [];
  let ended = false;
  let error: Error | undefined;
  let srcDone = false;
  let inFlight = false;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  z.on("data", (c: Uint8Array) => {
    queue.push(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
    if (queue.length >= 8) z.pause();
    poke();
  });
  z.on("end", () => {
    try {
      frames?.finish();
    } catch (e) {
      error ??= e as Error;
    }
    ended = true;
    poke();
  });
  z.on("error", (e: Error) => {
    error ??= new InvalidArgumentError(`${kind} layer: ${e.message}`, { cause: e });
    poke();
  });
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const next = queue.shift();
        if (next) return controller.enqueue(next);
        if (error) {
          await src.cancel(error).catch(() => {});
          throw error;
        }
        if (ended) return controller.close();
        if (z.isPaused()) z.resume();
        const waiting = new Promise<void>((resolve) => (wake = resolve));
        if (!inFlight && !srcDone) {
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await src.read();
          } catch (e) {
            z.destroy();
            throw e;
          }
          if (r.done) {
            srcDone = true;
            z.end();
          } else {
            try {
              frames?.push(r.value);
            } catch (e) {
              error ??= e as Error;
              continue;
            }
            inFlight = true;
            z.write(r.value, () => {
              inFlight = false;
              poke();
            });
          }
        }
        if (queue.length === 0 && !error && !ended) await waiting;
      }
    },
    cancel(reason) {
      z.destroy();
      return src.cancel(reason);
    },
  }).getReader();
}

/**
 * Follows the zstd frame format (RFC 8878) over the compressed bytes — headers and block
 * sizes only, skipping block contents — so that a stream cut off mid-frame is reported as
 * `zstd layer: unexpected end of file` even where the decoder itself stays silent.
 */
export class ZstdFrameChecker {
  /** Bytes still to skip (block contents, checksums, skippable frame bodies). */
  #skip = 0;
  /** Header bytes being collected, and how many the current header needs. */
  #hdr: number[] = [];
  #need = 4;
  #state: "magic" | "fhd" | "frameHeader" | "block" | "skipSize" = "magic";
  #checksum = false;
  #frames = 0;

  /** Feeds compressed bytes; throws on a malformed frame. */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      this.#hdr.push(chunk[i++]);
      if (this.#hdr.length === this.#need) this.#header();
    }
  }

  /** Throws unless the bytes so far end exactly at a frame boundary (after at least one). */
  finish(): void {
    if (this.#frames === 0 || this.#state !== "magic" || this.#hdr.length || this.#skip) {
      throw new InvalidArgumentError("zstd layer: unexpected end of file");
    }
  }

  #header(): void {
    const h = this.#hdr;
    this.#hdr = [];
    switch (this.#state) {
      case "magic": {
        const magic = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        if (magic === 0xfd2fb528) {
          this.#state = "fhd";
          this.#need = 1;
        } else if ((magic & 0xfffffff0) === 0x184d2a50) {
          this.#state = "skipSize";
          this.#need = 4;
        } else {
          throw new InvalidArgumentError("zstd layer: corrupt data (bad frame magic)");
        }
        return;
      }
      case "skipSize":
        this.#skip = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        this.#frames++;
        this.#state = "magic";
        this.#need = 4;
        return;
      case "fhd": {
        const d = h[0];
        const fcsFlag = d >> 6;
        const single = (d >> 5) & 1;
        this.#checksum = ((d >> 2) & 1) === 1;
        const did = [0, 1, 2, 4][d & 3];
        const fcs = [single ? 1 : 0, 2, 4, 8][fcsFlag];
        const rest = (single ? 0 : 1) + did + fcs;
        if (rest === 0) {
          this.#state = "block";
          this.#need = 3;
        } else {
          this.#state = "frameHeader";
          this.#need = rest;
        }
        return;
      }
      case "frameHeader":
        this.#state = "block";
        this.#need = 3;
        return;
      case "block": {
        const v = h[0] | (h[1] << 8) | (h[2] << 16);
        const last = (v & 1) === 1;
        const type = (v >> 1) & 3;
        const size = v >>> 3;
        if (type === 3) {
          throw new InvalidArgumentError("zstd layer: corrupt data (reserved block type)");
        }
        this.#skip = type === 1 ? 1 : size;
        if (last) {
          this.#skip += this.#checksum ? 4 : 0;
          this.#frames++;
          this.#state = "magic";
          this.#need = 4;
        } else {
          this.#need = 3;
        }
        return;
      }
    }
  }
}
