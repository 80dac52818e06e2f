import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { InvalidArgumentError, NotFoundError, UnavailableError } from "../errdefs/errors.ts";
import { digestOf } from "./digest.ts";
import { ContentStore } from "./store.ts";

const te = new TextEncoder();

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe("content store", () => {
  let dir: string;
  let cs: ContentStore;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "content-test-" });
    cs = new ContentStore(`${dir}/content`);
  });
  afterEach(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("writes, commits and reads back a blob, whole and by range", async () => {
    const data = te.encode("hello, content store");
    const expected = digestOf(data);
    const w = await cs.writer("ref-1", { total: data.length, expected });
    expect(w.offset).toBe(0);
    await w.write(data.subarray(0, 5));
    await w.write(data.subarray(5));
    expect(w.offset).toBe(data.length);
    expect(await w.commit({ size: data.length, digest: expected })).toBe(expected);

    const info = await cs.info(expected);
    expect(info.size).toBe(data.length);
    expect(info.committedAt).toBeInstanceOf(Date);
    expect(await cs.exists(expected)).toBe(true);
    expect(await collect(cs.read(expected))).toEqual(data);
    expect(new TextDecoder().decode(await collect(cs.read(expected, { offset: 7, length: 7 }))))
      .toBe("content");
    expect(await cs.readAll(expected, { maxSize: 100 })).toEqual(data);
    const hex = expected.slice("sha256:".length);
    expect(await exists(`${dir}/content/blobs/sha256/${hex}`)).toBe(true);
    expect(await cs.listStatuses()).toEqual([]);
    const walked: string[] = [];
    await cs.walk((i) => {
      walked.push(`${i.digest}:${i.size}`);
    });
    expect(walked).toEqual([`${expected}:${data.length}`]);
  });

  it("says NotFound naming the digest for a missing blob", async () => {
    const d = digestOf("nope");
    await expect(cs.info(d)).rejects.toThrow(NotFoundError);
    await expect(cs.info(d)).rejects.toThrow(`content ${d}: not found`);
    expect(await cs.exists(d)).toBe(false);
    expect(() => cs.read(d)).toThrow(NotFoundError);
    await expect(cs.delete(d)).rejects.toThrow(NotFoundError);
  });

  it("refuses to readAll a blob over maxSize", async () => {
    const d = await cs.writeBlob("big", new Uint8Array(5000));
    await expect(cs.readAll(d, { maxSize: 4096 })).rejects.toThrow(
      /5000 bytes, over the 4096-byte limit/,
    );
  });

  it("rejects a digest mismatch, naming both, and leaves nothing behind", async () => {
    const data = te.encode("actual bytes");
    const wrong = digestOf("other bytes");
    const w = await cs.writer("bad", { expected: wrong });
    await w.write(data);
    const err = await w.commit().catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe(
      `content bad: digest mismatch: expected ${wrong}, got ${digestOf(data)}`,
    );
    await expect(cs.info(wrong)).rejects.toThrow(NotFoundError);
    await expect(cs.info(digestOf(data))).rejects.toThrow(NotFoundError);
    expect(await exists(cs.ingestPath("bad"))).toBe(false);
    expect(await cs.listStatuses()).toEqual([]);
    // The lock is released: the ref can be written again.
    const again = await cs.writer("bad");
    await again.abort();
  });

  it("rejects a size mismatch, naming both sizes, and leaves nothing behind", async () => {
    const data = te.encode("12345");
    const w = await cs.writer("short", { total: 10 });
    await w.write(data);
    await expect(w.commit()).rejects.toThrow(
      "content short: size mismatch: expected 10 bytes, got 5 bytes",
    );
    const w2 = await cs.writer("short2");
    await w2.write(data);
    await expect(w2.commit({ size: 4, digest: digestOf(data) })).rejects.toThrow(
      "size mismatch: expected 4 bytes, got 5 bytes",
    );
    await expect(cs.info(digestOf(data))).rejects.toThrow(NotFoundError);
    expect(await cs.listStatuses()).toEqual([]);
    expect(await exists(`${dir}/content/blobs/sha256/${digestOf(data).slice(7)}`)).toBe(false);
  });

  it("resumes an interrupted write at its offset and commits the right digest", async () => {
    const data = new Uint8Array(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const expected = digestOf(data);
    const half = data.length >> 1;
    const w = await cs.writer("resume", { total: data.length, expected });
    await w.write(data.subarray(0, half));
    await w.close();

    const s = await cs.status("resume");
    expect(s).toMatchObject({ ref: "resume", offset: half, total: data.length, expected });
    expect(s.startedAt).toBeInstanceOf(Date);

    const w2 = await cs.writer("resume", { expected });
    expect(w2.offset).toBe(half);
    await w2.write(data.subarray(half));
    expect(await w2.commit({ size: data.length })).toBe(expected);
    expect(digestOf(await collect(cs.read(expected)))).toBe(expected);
  });

  it("restarts an ingest with truncate(0)", async () => {
    const w = await cs.writer("trunc");
    await w.write(te.encode("garbage that will go"));
    await w.truncate(0);
    expect(w.offset).toBe(0);
    await w.write(te.encode("good"));
    expect(await w.commit()).toBe(digestOf("good"));
    expect(new TextDecoder().decode(await cs.readAll(digestOf("good"), { maxSize: 10 }))).toBe(
      "good",
    );
  });

  it("locks a ref against a second concurrent writer", async () => {
    const w = await cs.writer("locked");
    const err = await cs.writer("locked").catch((e) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toBe("ref locked is locked");
    await expect(cs.abort("locked")).rejects.toThrow(UnavailableError);
    expect((await cs.status("locked")).offset).toBe(0);
    await w.write(te.encode("abc"));
    expect((await cs.status("locked")).offset).toBe(3); // live offset, buffered bytes included
    await w.close();
    const w2 = await cs.writer("locked");
    expect(w2.offset).toBe(3);
    await w2.abort();
    await expect(cs.status("locked")).rejects.toThrow(NotFoundError);
  });

  it("treats committing an already-present blob as success", async () => {
    const data = te.encode("twice");
    const d = await cs.writeBlob("one", data, { expected: digestOf(data) });
    const w = await cs.writer("two", { expected: d });
    await w.write(data);
    expect(await w.commit()).toBe(d);
    expect(await cs.listStatuses()).toEqual([]);
    expect(await cs.readAll(d, { maxSize: 10 })).toEqual(data);
  });

  it("supports sha512", async () => {
    const data = te.encode("sha512 content");
    const d = digestOf(data, "sha512");
    const w = await cs.writer("s512", { expected: d });
    await w.write(data);
    expect(await w.commit()).toBe(d);
    expect(await exists(`${dir}/content/blobs/sha512/${d.slice(7)}`)).toBe(true);
    expect(await cs.readAll(d, { maxSize: 100 })).toEqual(data);
    // A sha512 digest given only at commit is checked too (the bytes are re-hashed).
    const w2 = await cs.writer("s512-late");
    await w2.write(te.encode("late"));
    expect(await w2.commit({ digest: digestOf("late", "sha512") })).toBe(
      digestOf("late", "sha512"),
    );
  });

  it("lists statuses and aborts by ref", async () => {
    for (const ref of ["b", "a"]) {
      const w = await cs.writer(ref, { total: 9 });
      await w.write(te.encode(ref));
      await w.close();
    }
    expect((await cs.listStatuses()).map((s) => [s.ref, s.offset, s.total])).toEqual([
      ["a", 1, 9],
      ["b", 1, 9],
    ]);
    expect((await cs.listStatuses((s) => s.ref === "b")).length).toBe(1);
    await cs.abort("a");
    expect((await cs.listStatuses()).map((s) => s.ref)).toEqual(["b"]);
    await expect(cs.abort("a")).rejects.toThrow(NotFoundError);
  });

  it("cleans up ingests older than a date, sparing live writers", async () => {
    const old = await cs.writer("old");
    await old.write(te.encode("x"));
    await old.close();
    const live = await cs.writer("live");
    expect(await cs.cleanupIngests(new Date(Date.now() - 60_000))).toEqual([]);
    expect((await cs.cleanupIngests()).sort()).toEqual(["old"]);
    expect((await cs.listStatuses()).map((s) => s.ref)).toEqual(["live"]);
    await live.abort();
  });

  it("deletes blobs", async () => {
    const d = await cs.writeBlob("del", te.encode("bye"));
    await cs.delete(d);
    expect(await cs.exists(d)).toBe(false);
  });

  it("streams a 50 MB blob in and out without buffering it", async () => {
    const size = 50 << 20;
    const chunk = new Uint8Array(64 << 10);
    crypto.getRandomValues(chunk);
    const ref = "big-blob";
    (globalThis as { gc?: () => void }).gc?.();
    // Heap plus ArrayBuffers of this isolate: RSS is process-wide, and `deno test --parallel`
    // runs other test files in the same process.
    const mem = () => {
      const m = Deno.memoryUsage();
      return m.heapUsed + m.external;
    };
    const rss0 = mem();
    let peak = rss0;
    const t0 = performance.now();
    const w = await cs.writer(ref, { total: size });
    for (let off = 0; off < size; off += chunk.length) {
      chunk[0] = off & 0xff; // vary the data a little
      chunk[1] = (off >> 8) & 0xff;
      await w.write(chunk);
      if ((off & ((8 << 20) - 1)) === 0) peak = Math.max(peak, mem());
    }
    const d = await w.commit({ size });
    const writeMs = performance.now() - t0;

    const t1 = performance.now();
    let n = 0;
    // A BYOB reader recycles one buffer, so RSS shows what the store itself holds.
    const reader = cs.read(d).getReader({ mode: "byob" });
    let buf = new Uint8Array(1 << 20);
    for (;;) {
      const { done, value } = await reader.read(buf);
      if (done) break;
      n += value.length;
      buf = new Uint8Array(value.buffer);
      if ((n & ((8 << 20) - 1)) < value.length) peak = Math.max(peak, mem());
    }
    const readMs = performance.now() - t1;
    expect(n).toBe(size);
    const mbps = (ms: number) => (size / (1 << 20) / (ms / 1000)).toFixed(0);
    const growth = (peak - rss0) / (1 << 20);
    console.log(
      `content store 50 MiB: write+hash+commit ${mbps(writeMs)} MB/s, read ${
        mbps(readMs)
      } MB/s, peak memory growth ${growth.toFixed(1)} MiB`,
    );
    expect(peak - rss0).toBeLessThan(size / 4);
  });
});
