import {
  afterEach,
  beforeEach,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../testing/bdd.ts";
import zlib from "node:zlib";
import { lgetxattr, majorMinor } from "../../ffi/mod.ts";
import { pseudoRandomBytes } from "../../scripts/fixtures/images.ts";
import { applyLayer, cleanPath } from "./apply.ts";
import { decompress } from "./compression.ts";
import { type RawEntry, rawTar, sha256 } from "../snapshots/test_helpers.ts";

/** A stream of `bytes` in `size`-byte chunks. */
function chunked(bytes: Uint8Array, size = 256 << 10): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= bytes.length) return c.close();
      c.enqueue(bytes.subarray(off, off + size));
      off += size;
    },
  });
}

describe("cleanPath", () => {
  it("drops leading slashes and dots, applies .. lexically, refuses escapes", () => {
    expect(cleanPath("/usr/./bin/../lib/")).toEqual(["usr", "lib"]);
    expect(cleanPath("./")).toEqual([]);
    expect(() => cleanPath("../x")).toThrow("path escapes the root");
    expect(() => cleanPath("a/../../x")).toThrow("path escapes the root");
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("applyLayer", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "apply-" });
  });
  afterEach(() => Deno.remove(dir, { recursive: true }));

  const apply = async (entries: RawEntry[], mode: "overlay" | "native" = "native") => {
    const tar = await rawTar(entries);
    const r = await applyLayer(chunked(tar, 700), dir, { mode });
    expect(r.diffID).toBe(sha256(tar));
    expect(r.size).toBe(tar.length);
    return r;
  };

  it("replaces a dir by a file and a file by a dir; merges dir onto dir updating metadata", async () => {
    Deno.mkdirSync(`${dir}/a/sub`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/a/sub/x`, "x");
    Deno.writeTextFileSync(`${dir}/b`, "b");
    Deno.mkdirSync(`${dir}/c`);
    Deno.writeTextFileSync(`${dir}/c/keep`, "keep");
    const r = await apply([
      { header: { name: "a", type: "file" }, body: "now a file" },
      { header: { name: "b", type: "directory" } },
      { header: { name: "b/in", type: "file" }, body: "in" },
      { header: { name: "c", type: "directory", mode: 0o1777, uid: 7, gid: 8 } },
    ]);
    expect(r.entries).toBe(4);
    expect(Deno.readTextFileSync(`${dir}/a`)).toBe("now a file");
    expect(Deno.readTextFileSync(`${dir}/b/in`)).toBe("in");
    expect(Deno.readTextFileSync(`${dir}/c/keep`)).toBe("keep");
    const c = Deno.statSync(`${dir}/c`);
    expect([c.mode! & 0o7777, c.uid, c.gid]).toEqual([0o1777, 7, 8]);
    expect(c.mtime?.toISOString()).toBe("2024-01-01T00:00:00.000Z");
  });

  it("setuid survives chown; PAX long names, uid/gid and sub-second mtimes; empty xattrs", async () => {
    const long = `${"d".repeat(120)}/${"f".repeat(150)}`;
    await apply([
      { header: { name: "suid", type: "file", mode: 0o6755, uid: 1000, gid: 1000 }, body: "#!" },
      {
        header: {
          name: long,
          type: "file",
          pax: { uid: "3000000", gid: "3000001", mtime: "1700000000.123456789" },
        },
        body: "long",
      },
      {
        header: { name: "bin", type: "file", pax: { "SCHILY.xattr.trusted.bin": "" } },
        body: "x",
      },
    ]);
    const s = Deno.statSync(`${dir}/suid`);
    expect([s.mode! & 0o7777, s.uid, s.gid]).toEqual([0o6755, 1000, 1000]);
    const l = Deno.statSync(`${dir}/${long}`);
    expect([l.uid, l.gid, l.mtime?.getTime()]).toEqual([3000000, 3000001, 1700000000123]);
    expect(lgetxattr(`${dir}/bin`, "trusted.bin")).toEqual(new Uint8Array());
  });

  it("keeps binary xattr values byte for byte", async () => {
    // tar-stream's pack writes PAX values as UTF-8 text: write an 8-byte placeholder and
    // swap in 8 binary bytes (same length, so sizes stay valid; the PAX body has no checksum).
    const value = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80, 0x9f]);
    const tar = await rawTar([
      { header: { name: "cap", type: "file", pax: { "SCHILY.xattr.trusted.cap": "PLACEHLD" } } },
    ]);
    const at = new TextDecoder("latin1").decode(tar).indexOf("=PLACEHLD\n") + 1;
    const patched = tar.slice();
    patched.set(value, at);
    await applyLayer(chunked(patched), dir, { mode: "native" });
    expect(lgetxattr(`${dir}/cap`, "trusted.cap")).toEqual(value);
  });

  it("native: whiteouts delete, an opaque marker keeps only this layer's entries", async () => {
    Deno.mkdirSync(`${dir}/o/lower-dir`, { recursive: true });
    Deno.mkdirSync(`${dir}/o/merged`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/o/lower.txt`, "lower");
    Deno.writeTextFileSync(`${dir}/o/merged/old.txt`, "old");
    Deno.mkdirSync(`${dir}/w/deep`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/gone.txt`, "g");
    await apply([
      { header: { name: "o/-first.txt", type: "file" }, body: "this layer, before the marker" },
      { header: { name: "o/merged", type: "directory" } },
      { header: { name: "o/merged/new.txt", type: "file" }, body: "new" },
      { header: { name: "o/.wh..wh..opq", type: "file" } },
      { header: { name: ".wh.gone.txt", type: "file" } },
      { header: { name: ".wh.w", type: "file" } },
      { header: { name: ".wh.never-existed", type: "file" } },
      { header: { name: "missing/.wh.x", type: "file" } },
    ]);
    const names = (p: string) => [...Deno.readDirSync(p)].map((e) => e.name).sort();
    expect(names(`${dir}/o`)).toEqual(["-first.txt", "merged"]);
    expect(names(`${dir}/o/merged`)).toEqual(["new.txt"]);
    expect(names(dir)).toEqual(["o"]);
  });

  it("overlay: whiteouts become 0/0 char devices, opaque dirs get trusted.overlay.opaque", async () => {
    await apply([
      { header: { name: "d", type: "directory" } },
      { header: { name: "d/.wh..wh..opq", type: "file" } },
      { header: { name: "d/.wh.x", type: "file" } },
    ], "overlay");
    const st = Deno.lstatSync(`${dir}/d/x`);
    expect(st.isCharDevice).toBe(true);
    expect(majorMinor(st.rdev!)).toEqual({ major: 0, minor: 0 });
    expect(lgetxattr(`${dir}/d`, "trusted.overlay.opaque")).toEqual(new TextEncoder().encode("y"));
    expect(() => Deno.lstatSync(`${dir}/d/.wh.x`)).toThrow();
  });

  it("hardlinks: to a symlink itself; refused to missing targets and directories", async () => {
    await apply([
      { header: { name: "s", type: "symlink", linkname: "/etc/passwd" } },
      { header: { name: "h", type: "link", linkname: "s" } },
    ]);
    expect(Deno.readLinkSync(`${dir}/h`)).toBe("/etc/passwd");
    await expect(apply([{ header: { name: "h2", type: "link", linkname: "nope" } }])).rejects
      .toThrow(`layer entry "h2": hardlink target "nope" does not exist in the layer`);
    Deno.mkdirSync(`${dir}/dd`);
    await expect(apply([{ header: { name: "h3", type: "link", linkname: "dd" } }])).rejects
      .toThrow(`layer entry "h3": hardlink target "dd" is a directory`);
    // A hardlink through a symlinked parent pointing out of the root stays inside the root.
    Deno.symlinkSync("/etc", `${dir}/etc-link`);
    await expect(
      apply([{ header: { name: "h4", type: "link", linkname: "etc-link/passwd" } }]),
    ).rejects.toThrow(`layer entry "h4": hardlink target "etc-link/passwd" does not exist`);
  });

  it("a corrupt tar fails; the source stream is canceled on an entry error", async () => {
    const tar = await rawTar([{ header: { name: "a", type: "file" }, body: "a" }]);
    const bad = tar.slice();
    bad[148] ^= 0x01; // checksum
    await expect(applyLayer(chunked(bad), dir, { mode: "native" })).rejects.toThrow(/tar header/);
    const cut = tar.subarray(0, 600);
    await expect(applyLayer(chunked(cut), dir, { mode: "native" })).rejects.toThrow(
      /Unexpected end of data/,
    );
    let canceled: unknown;
    const evil = await rawTar([{ header: { name: "../x", type: "file" }, body: "x" }]);
    const src = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(evil);
      },
      cancel(r) {
        canceled = r;
      },
    });
    await expect(applyLayer(src, dir, { mode: "native" })).rejects.toThrow(
      `layer entry "../x": path escapes the root`,
    );
    expect(String(canceled)).toContain("path escapes the root");
  });

  it("throughput: ~100 MB of random files (tar and tar.gz)", async () => {
    const big: RawEntry[] = [];
    for (let i = 0; i < 6; i++) {
      big.push({
        header: { name: `big/f${i}.bin`, type: "file" },
        body: pseudoRandomBytes(`big${i}`, 16 << 20),
      });
    }
    const small: RawEntry[] = [];
    for (let i = 0; i < 400; i++) {
      const size = 4096 + ((i * 7919) % 50_000);
      small.push({
        header: { name: `small/${i % 20}/f${i}`, type: "file" },
        body: pseudoRandomBytes(`s${i}`, size),
      });
    }
    const report = async (what: string, entries: RawEntry[], gz: boolean) => {
      const tar = await rawTar(entries);
      const blob = gz ? new Uint8Array(zlib.gzipSync(tar, { level: 1 })) : tar;
      const target = await Deno.makeTempDir({ dir });
      const t0 = performance.now();
      const r = await applyLayer(decompress(chunked(blob), gz ? "gzip" : "none"), target, {
        mode: "native",
      });
      const secs = (performance.now() - t0) / 1000;
      expect(r.entries).toBe(entries.length);
      expect(r.diffID).toBe(sha256(tar));
      console.log(
        `    apply ${what}${gz ? " (gzip)" : ""}: ${(tar.length / 1e6).toFixed(0)} MB tar in ` +
          `${secs.toFixed(2)} s = ${(tar.length / 1e6 / secs).toFixed(0)} MB/s, ` +
          `${(entries.length / secs).toFixed(0)} files/s`,
      );
    };
    await report("6 × 16 MB random files", big, false);
    await report("6 × 16 MB random files", big, true);
    await report("400 small files (4-54 KB)", small, false);
    expect(Deno.statSync(`${dir}`).isDirectory).toBe(true);
  });
});
