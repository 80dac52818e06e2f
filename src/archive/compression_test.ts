import { describe, expect, it } from "../testing/bdd.ts";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { compressionOf, decompress, sniffCompression } from "./compression.ts";

const data = new Uint8Array(3 << 20);
for (let i = 0; i < data.length; i += 65536) {
  data.set(crypto.getRandomValues(new Uint8Array(4096)), i);
}

/** The stream's bytes, as a sha256 hex (comparing megabytes with toEqual is slow). */
async function collect(s: ReadableStream<Uint8Array>): Promise<string> {
  return digest(new Uint8Array(await new Response(s).arrayBuffer()));
}

function digest(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** A stream of `bytes` in small chunks (so headers and magic bytes straddle chunk borders). */
function chunked(bytes: Uint8Array, size = 3): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= bytes.length) return c.close();
      const n = off < 16 ? size : 65536;
      c.enqueue(bytes.slice(off, off + n));
      off += n;
    },
  });
}

const gz = new Uint8Array(zlib.gzipSync(data));
const zst = new Uint8Array(zlib.zstdCompressSync(data));

describe("decompress", () => {
  for (const [kind, blob] of [["gzip", gz], ["zstd", zst]] as const) {
    it(`${kind}: explicit and auto-sniffed`, async () => {
      expect(await collect(decompress(chunked(blob), kind))).toBe(digest(data));
      expect(await collect(decompress(chunked(blob), "auto"))).toBe(digest(data));
    });

    it(`${kind}: a truncated stream fails with unexpected end of file`, async () => {
      for (const cut of [blob.length - 1, Math.floor(blob.length / 2), 10]) {
        await expect(collect(decompress(chunked(blob.subarray(0, cut)), "auto"))).rejects
          .toThrow(`${kind} layer: unexpected end of file`);
      }
    });

    it(`${kind}: corrupt data fails naming the format`, async () => {
      const bad = blob.slice();
      bad[0] ^= 0xff; // the magic
      await expect(collect(decompress(chunked(bad), kind))).rejects.toThrow(`${kind} layer:`);
      // A block header (zstd) / the deflate stream and its CRC (gzip) destroyed.
      bad[0] ^= 0xff;
      bad.fill(0xff, 10, 2000);
      await expect(collect(decompress(chunked(bad), kind))).rejects.toThrow(`${kind} layer:`);
    });
  }

  it("none and auto on an uncompressed stream pass the bytes through", async () => {
    expect(await collect(decompress(chunked(data), "none"))).toBe(digest(data));
    expect(await collect(decompress(chunked(data), "auto"))).toBe(digest(data));
    expect(await collect(decompress(chunked(new Uint8Array()), "auto"))).toBe(
      digest(new Uint8Array()),
    );
  });

  it("passes source errors through", async () => {
    const src = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(gz.subarray(0, 1000));
        c.error(new Error("connection reset"));
      },
    });
    await expect(collect(decompress(src, "gzip"))).rejects.toThrow("connection reset");
  });

  it("sniffs magic bytes and maps media types", () => {
    expect(sniffCompression(gz)).toBe("gzip");
    expect(sniffCompression(zst)).toBe("zstd");
    expect(sniffCompression(data.subarray(0, 2))).toBe("none");
    expect(compressionOf("application/vnd.oci.image.layer.v1.tar+gzip")).toBe("gzip");
    expect(compressionOf("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip");
    expect(compressionOf("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd");
    expect(compressionOf("application/vnd.oci.image.layer.v1.tar")).toBe("none");
  });
});
