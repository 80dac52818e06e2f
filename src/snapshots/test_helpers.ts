/**
 * Shared helpers of the snapshot and archive tests: a scratch metadata DB, tar building with
 * raw tar-stream headers (so hostile names survive), and a checker of a rootfs against the
 * `layers` fixture's expected description.
 *
 * @example
 * ```ts
 * import { scratch, assertRootfs } from "./test_helpers.ts";
 * const s = await scratch();
 * assertRootfs("/mnt/rootfs");
 * await s.dispose();
 * ```
 *
 * @module
 */
import { type Header, pack } from "tar-stream";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import { expect } from "../testing/bdd.ts";
import { MetadataDB } from "../metadata/db.ts";
import { lgetxattr, majorMinor } from "../../ffi/mod.ts";
import { type ExpectedPath, LAYERS_EXPECTED } from "../../scripts/fixtures/images.ts";
import { unmountAll } from "./mount.ts";

/** A scratch directory with a metadata DB whose `default` namespace exists. */
export interface Scratch {
  dir: string;
  db: MetadataDB;
  /** Unmounts anything under dir, closes the DB, deletes dir. */
  dispose(): Promise<void>;
}

/**
 * Makes a {@link Scratch} (namespaces `default` and `other`).
 *
 * @example
 * ```ts
 * const s = await scratch("overlay-");
 * ```
 */
export async function scratch(prefix = "k8scontainerd-snap-"): Promise<Scratch> {
  const dir = await Deno.makeTempDir({ prefix });
  const db = MetadataDB.open(`${dir}/metadata.db`);
  for (const ns of ["default", "other"]) {
    db.prepare("INSERT INTO namespaces (name, created_at) VALUES (?, ?)").run(ns, Date.now());
  }
  return {
    dir,
    db,
    async dispose() {
      const mounts = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
        .map((l) => l.split(" ")[4])
        .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)))
        .reverse();
      for (const m of mounts) unmountAll(m);
      db.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** One raw tar entry: a tar-stream header and an optional body. */
export interface RawEntry {
  header: Partial<Header> & { name: string };
  body?: Uint8Array | string;
}

/**
 * Builds an uncompressed tar from raw headers (no normalisation: `../x` stays `../x`).
 *
 * @example
 * ```ts
 * const tar = await rawTar([{ header: { name: "../escape", type: "file" }, body: "x" }]);
 * ```
 */
export async function rawTar(entries: RawEntry[]): Promise<Uint8Array> {
  const p = pack();
  const chunks: Uint8Array[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Uint8Array);
  })();
  for (const e of entries) {
    const body = typeof e.body === "string" ? new TextEncoder().encode(e.body) : e.body;
    const header = {
      mode: e.header.type === "directory" ? 0o755 : 0o644,
      mtime: new Date("2024-01-01T00:00:00Z"),
      ...e.header,
      ...(body ? { size: body.length } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body && body.length) p.entry(header, body, cb);
      else p.entry(header, cb).end(null);
    });
  }
  p.finalize();
  await done;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * gzip of `data`.
 *
 * @example
 * ```ts
 * const gz = gzip(await rawTar([]));
 * ```
 */
export function gzip(data: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.gzipSync(data));
}

/**
 * `sha256:<hex>` of `data`.
 *
 * @example
 * ```ts
 * sha256(new Uint8Array()); // "sha256:e3b0…"
 * ```
 */
export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/**
 * A one-chunk web stream of `data`.
 *
 * @example
 * ```ts
 * const s = streamOf(new Uint8Array([1, 2]));
 * ```
 */
export function streamOf(data: Uint8Array): ReadableStream<Uint8Array> {
  return ReadableStream.from([data]);
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** What a path looks like, in the shape of the ExpectedPath `want` (only the keys it has). */
function describePath(path: string, want: ExpectedPath, inodes: Map<string, number>): unknown {
  const st = lstatOrNull(path);
  if (!st) return { type: "absent" };
  const type = st.isFile
    ? "file"
    : st.isDirectory
    ? "dir"
    : st.isSymlink
    ? "symlink"
    : st.isFifo
    ? "fifo"
    : st.isCharDevice
    ? "char"
    : st.isBlockDevice
    ? "block"
    : "other";
  const out: Record<string, unknown> = { type };
  const w = want as Record<string, unknown>;
  if ("mode" in w) out.mode = (st.mode ?? 0) & 0o7777;
  if ("uid" in w) out.uid = st.uid;
  if ("gid" in w) out.gid = st.gid;
  if ("content" in w && st.isFile) out.content = Deno.readTextFileSync(path);
  if ("target" in w && st.isSymlink) out.target = Deno.readLinkSync(path);
  if ("major" in w || "minor" in w) Object.assign(out, majorMinor(st.rdev ?? 0));
  if ("xattrs" in w) {
    const x: Record<string, string> = {};
    for (const k of Object.keys(w.xattrs as Record<string, string>)) {
      const v = lgetxattr(path, k);
      if (v) x[k] = new TextDecoder().decode(v);
    }
    out.xattrs = x;
  }
  if ("hardlinkGroup" in w) {
    const g = w.hardlinkGroup as string;
    const ino = st.ino ?? -1;
    if (!inodes.has(g)) inodes.set(g, ino);
    out.hardlinkGroup = inodes.get(g) === ino ? g : `${g} (different inode ${ino})`;
  }
  return out;
}

/**
 * Asserts that the tree at `root` matches the `layers` fixture's expected description.
 *
 * @example
 * ```ts
 * assertRootfs("/mnt/view");
 * ```
 */
export function assertRootfs(root: string, expected = LAYERS_EXPECTED): void {
  const inodes = new Map<string, number>();
  const actual: Record<string, unknown> = {};
  for (const [p, want] of Object.entries(expected)) {
    actual[p] = describePath(`${root}${p}`, want, inodes);
  }
  expect(actual).toEqual(expected);
}
