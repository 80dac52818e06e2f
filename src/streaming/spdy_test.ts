import { describe, expect, it } from "../testing/bdd.ts";
import { ByteReader } from "./bytes.ts";
import { HeaderCompressor, HeaderDecompressor, SPDY3_DICTIONARY } from "./spdy_zlib.ts";
import {
  decodeHeaderBlock,
  encodeControlFrame,
  encodeDataFrame,
  encodeHeaderBlock,
  FrameType,
  readFrame,
  SpdyConnection,
  type SpdyHeaders,
} from "./spdy.ts";

function adler32(b: Uint8Array): number {
  let a = 1, s = 0;
  for (const x of b) {
    a = (a + x) % 65521;
    s = (s + a) % 65521;
  }
  return ((s << 16) | a) >>> 0;
}

const hex = (s: string) => new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));

/** A pair of connected TCP sockets on 127.0.0.1. */
async function socketPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }),
    l.accept(),
  ]);
  l.close();
  return [a, b];
}

describe("SPDY/3 header compression", () => {
  it("uses the 1423-byte draft-3 dictionary (zlib dictionary id e3c6a7c2)", () => {
    expect(SPDY3_DICTIONARY.length).toBe(1423);
    expect(adler32(SPDY3_DICTIONARY).toString(16)).toBe("e3c6a7c2");
  });

  it("round-trips several header blocks through one deflate and one inflate stream", async () => {
    const c = new HeaderCompressor(), d = new HeaderDecompressor();
    const blocks: SpdyHeaders[] = [
      { streamtype: ["error"] },
      { streamtype: ["stdout"] },
      { port: ["8080"], requestid: ["0"], streamtype: ["data"] },
      {},
      { "x-multi": ["a", "b", "c"], streamtype: ["resize"] },
    ];
    const sizes: number[] = [];
    for (const h of blocks) {
      const compressed = await c.compress(encodeHeaderBlock(h));
      sizes.push(compressed.length);
      expect(decodeHeaderBlock(await d.decompress(compressed))).toEqual(h);
    }
    // Later blocks reuse the shared window: a repeated header costs a few bytes only.
    expect(sizes[1]).toBeLessThan(encodeHeaderBlock(blocks[1]).length);
    c.close();
    d.close();
  });

  it("inflates blocks compressed with the SPDY dictionary, as Go's spdystream sends them", async () => {
    // Produced by CPython's zlib with level 9 and SPDY3_DICTIONARY, sync-flushed per block:
    // the same zlib stream Go's compress/zlib NewWriterLevelDict writes.
    const d = new HeaderDecompressor();
    const fixtures = [
      "78f9e3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff",
      "c22a054ccc29f9a52500000000ffff",
      "02a55548b15d04ce2116061606409ab30812cd99a0e4cf6880a11b54462502000000ffff",
    ];
    const out = [];
    for (const f of fixtures) out.push(decodeHeaderBlock(await d.decompress(hex(f))));
    expect(out).toEqual([
      { streamtype: ["error"] },
      { streamtype: ["stdout"] },
      { port: ["8080"], requestid: ["0"], streamtype: ["data"] },
    ]);
    d.close();
  });

  it("rejects a corrupt block", async () => {
    const d = new HeaderDecompressor();
    await expect(d.decompress(hex("78f9deadbeef00112233"))).rejects.toThrow(/decompressing/);
    d.close();
  });
});

describe("SPDY/3 framing", () => {
  it("encodes and reads control and data frames", async () => {
    const frames = new Uint8Array([
      ...encodeControlFrame(FrameType.PING, 0, new Uint8Array([0, 0, 0, 7])),
      ...encodeDataFrame(5, new TextEncoder().encode("abc"), true),
    ]);
    let given = false;
    const r = new ByteReader({
      read: (p) => {
        if (given) return Promise.resolve(null);
        given = true;
        p.set(frames);
        return Promise.resolve(frames.length);
      },
    });
    const ping = await readFrame(r);
    expect(ping).toMatchObject({ control: true, version: 3, type: FrameType.PING, flags: 0 });
    const data = await readFrame(r);
    expect(data).toMatchObject({ control: false, streamId: 5, flags: 1 });
    expect(new TextDecoder().decode(data!.data)).toBe("abc");
    expect(await readFrame(r)).toBeNull();
  });

  it("multiplexes streams between a client and a server connection", async () => {
    const [a, b] = await socketPair();
    const server = new SpdyConnection(b, {
      role: "server",
      onStream: (s) => {
        s.replyHeaders = { echoed: [s.headers["name"]?.[0] ?? ""] };
        // Echo, then half-close.
        (async () => {
          for await (const c of s.readable) await s.write(c);
          await s.closeWrite();
        })();
      },
    });
    const client = new SpdyConnection(a, { role: "client" });
    const streams = await Promise.all(
      ["one", "two", "three"].map((name) => client.openStream({ name })),
    );
    expect(streams.map((s) => s.id)).toEqual([1, 3, 5]);
    expect(streams.map((s) => s.replyHeaders.echoed[0])).toEqual(["one", "two", "three"]);
    const results = await Promise.all(streams.map(async (s, i) => {
      const big = new Uint8Array(200_000 + i).fill(65 + i);
      const reading = new Response(s.readable).arrayBuffer();
      await s.write(big);
      await s.closeWrite();
      return new Uint8Array(await reading);
    }));
    results.forEach((r, i) => {
      expect(r.length).toBe(200_000 + i);
      expect(r.every((x) => x === 65 + i)).toBe(true);
    });
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    client.close();
    await server.closed;
  });

  it("refused streams reject openStream; a reset reaches the peer's reader", async () => {
    const [a, b] = await socketPair();
    let seen = 0;
    const server = new SpdyConnection(b, {
      role: "server",
      onStream: (s) => {
        seen++;
        if (s.headers["refuse"]) return false;
        s.reset();
        return true;
      },
    });
    const client = new SpdyConnection(a, { role: "client" });
    await expect(client.openStream({ refuse: "1" })).rejects.toThrow(/refused/);
    const s = await client.openStream({ x: "1" }).catch(() => undefined);
    if (s) await expect(new Response(s.readable).arrayBuffer()).rejects.toThrow(/reset/);
    expect(seen).toBe(2);
    client.close();
    await server.closed;
  });
});
