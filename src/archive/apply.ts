/**
 * Applies one uncompressed OCI layer tar to a directory while hashing it (the diffID), the
 * way containerd's archive.Apply does.
 *
 * Two modes: "overlay" writes an overlayfs upper directory (`.wh.NAME` becomes a 0/0
 * character device, `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory);
 * "native" applies onto a full copy of the parent (whiteouts delete, opaque markers empty the
 * directory of what lower layers put there).
 *
 * Security rule (the one every path goes through, {@link resolveInRoot}): an entry's name is
 * cleaned lexically — absolute names are taken relative to the root, and a `..` that would
 * climb above the root is refused ("path escapes the root"). The parent directories are then
 * resolved one component at a time inside the root, like containerd's fs.RootPath /
 * securejoin: a symlink met in a parent component is followed, but interpreted with the
 * root as `/` (an absolute target restarts at the root, `..` stops at the root), so a
 * symlink `evil -> /etc` followed by `evil/passwd` writes `<root>/etc/passwd`, never the host's.
 * The last component is never followed: it is replaced. Hardlink targets are resolved the same
 * way, must already exist in the layer root, and may not be directories.
 *
 * @example
 * ```ts
 * import { applyLayer } from "./apply.ts";
 * import { decompress } from "./compression.ts";
 * const blob = (await Deno.open("layer.tar.gz")).readable;
 * const { diffID, size } = await applyLayer(decompress(blob, "auto"), "/snap/7/fs", {
 *   mode: "overlay",
 * });
 * ```
 *
 * @module
 */
import { extract, type Header } from "tar-stream";
import { createHash } from "node:crypto";
import {
  lchown,
  lsetxattr,
  lutimes,
  makedev,
  mknod,
  mkWhiteout,
  OVERLAY_OPAQUE_XATTR,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
} from "../../ffi/mod.ts";
import { InvalidArgumentError, RuntimeError } from "../errdefs/errors.ts";

/** How whiteouts are represented: see the module documentation. */
export type ApplyMode = "overlay" | "native";

/** What {@link applyLayer} reports per entry (for progress and logging). */
export interface ApplyEntry {
  /** The entry's name as in the tar. */
  name: string;
  /** tar-stream's entry type ("file", "directory", "symlink", "link", …). */
  type: string;
  /** Body size in bytes. */
  size: number;
}

/** Options of {@link applyLayer}. */
export interface ApplyOptions {
  mode: ApplyMode;
  /** Allow character and block device entries (default true). FIFOs are always allowed. */
  allowDevices?: boolean;
  /** Called before each entry is applied. */
  onEntry?: (entry: ApplyEntry) => void;
}

/** What {@link applyLayer} returns. */
export interface ApplyResult {
  /** `sha256:<hex>` of the uncompressed tar: compare with the config's rootfs.diff_ids. */
  diffID: string;
  /** Bytes of tar read (the whole stream, trailing padding included). */
  size: number;
  /** Number of tar entries seen (whiteouts included). */
  entries: number;
}

const WHITEOUT_PREFIX = ".wh.";
const OPAQUE_MARKER = ".wh..wh..opq";
const WRITE_BUFFER = 1 << 20;
const MAX_SYMLINK_FOLLOWS = 40;

/**
 * Streams `tar` into `targetDir` (which must exist), hashing every byte read.
 *
 * Errors: an entry that would escape the root, a hardlink outside it, a device when
 * `allowDevices` is false, or an unsupported entry type throws {@link InvalidArgumentError}
 * `layer entry "NAME": WHY`; a corrupt tar or a failing source stream throws too. The
 * directory is then partly written: callers apply into a scratch snapshot and remove it.
 *
 * @example
 * ```ts
 * import { applyLayer } from "./apply.ts";
 * const r = await applyLayer((await Deno.open("l.tar")).readable, "/tmp/root", { mode: "native" });
 * console.log(r.diffID, r.size, r.entries);
 * ```
 */
export async function applyLayer(
  tar: ReadableStream<Uint8Array>,
  targetDir: string,
  opts: ApplyOptions,
): Promise<ApplyResult> {
  const root = Deno.realPathSync(targetDir);
  const applier = new Applier(root, opts);
  const hash = createHash("sha256");
  let size = 0;
  const ex = extract();
  keepBinaryXattrs(ex);
  const reader = tar.getReader();

  const feed = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        size += value.length;
        if (!ex.write(value)) {
          await new Promise<void>((resolve) => {
            const go = () => {
              ex.off("drain", go);
              ex.off("close", go);
              resolve();
            };
            ex.on("drain", go);
            ex.on("close", go);
          });
          if (ex.destroyed) return;
        }
      }
      ex.end(null);
    } catch (e) {
      ex.destroy(e as Error);
      throw e;
    }
  })();
  feed.catch(() => {}); // reported through the extract stream (and awaited below)

  let entries = 0;
  try {
    for await (const entry of ex) {
      entries++;
      await applier.apply(entry.header, entry as AsyncIterable<unknown> as Body);
    }
    await feed;
    applier.finish();
  } catch (e) {
    ex.destroy();
    await reader.cancel(e).catch(() => {});
    throw e;
  }
  return { diffID: `sha256:${hash.digest("hex")}`, size, entries };
}

/** A tar entry body as tar-stream yields it. */
type Body = AsyncIterable<Uint8Array>;

/** Per-apply state: the root, the created paths (native opaque), deferred directory times. */
class Applier {
  /**
   * Parent paths as named in the tar → their real relative paths (no symlinks), for
   * directories known to exist. Cleared whenever something is removed or a symlink created.
   */
  #dirs = new Map<string, string>([["", ""]]);
  /** Relative paths this layer created or rewrote (what an opaque marker must keep). */
  #created = new Set<string>();
  #dirTimes: { path: string; atime: Time; mtime: Time }[] = [];
  #buf = new Uint8Array(WRITE_BUFFER);

  constructor(readonly root: string, readonly opts: ApplyOptions) {}

  async apply(h: Header, body: Body): Promise<void> {
    const name = h.name;
    try {
      this.opts.onEntry?.({ name, type: h.type, size: h.size });
      await this.#apply(h, body);
    } catch (e) {
      await drain(body).catch(() => {});
      if (e instanceof RuntimeError && e.message.startsWith("layer entry")) throw e;
      const why = e instanceof Error ? e.message : String(e);
      if (e instanceof RuntimeError) {
        throw new InvalidArgumentError(`layer entry ${JSON.stringify(name)}: ${why}`, { cause: e });
      }
      throw new Error(`layer entry ${JSON.stringify(name)}: ${why}`, { cause: e });
    }
  }

  /** Sets the deferred directory times (writing children changed them). */
  finish(): void {
    for (const d of this.#dirTimes.reverse()) lutimes(d.path, d.atime, d.mtime);
  }

  async #apply(h: Header, body: Body): Promise<void> {
    const comps = cleanPath(h.name);
    const base = comps.at(-1);
    if (base !== undefined && base.startsWith(WHITEOUT_PREFIX)) {
      await drain(body);
      const parent = this.#resolveParent(comps.slice(0, -1), this.opts.mode === "overlay");
      if (parent === undefined) return; // native: nothing below a missing parent to hide
      if (base === OPAQUE_MARKER) return this.#opaque(parent);
      if (base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) return; // aufs metadata: skip
      const hidden = base.slice(WHITEOUT_PREFIX.length);
      if (hidden === "" || hidden === "." || hidden === "..") {
        throw new InvalidArgumentError(`whiteout of ${JSON.stringify(hidden)}`);
      }
      const path = join(this.root, parent, hidden);
      this.#remove(path);
      if (this.opts.mode === "overlay") {
        mkWhiteout(path);
        this.#created.add(join(parent, hidden));
      }
      return;
    }
    if (base === undefined) {
      // The root itself ("./"): only a directory makes sense; take its metadata.
      await drain(body);
      if (h.type !== "directory") throw new InvalidArgumentError("the root must be a directory");
      return this.#metadata(this.root, h, true);
    }
    const parent = this.#resolveParent(comps.slice(0, -1), true)!;
    const rel = join(parent, base);
    const path = join(this.root, rel);
    switch (h.type) {
      case "file":
      case "contiguous-file": {
        this.#remove(path);
        await this.#writeFile(path, body);
        break;
      }
      case "directory": {
        await drain(body);
        const st = lstatOrNull(path);
        if (!st?.isDirectory) {
          this.#remove(path);
          Deno.mkdirSync(path, { mode: 0o700 });
        }
        this.#dirs.set(rel, rel);
        break;
      }
      case "symlink": {
        await drain(body);
        this.#remove(path);
        this.#forget();
        Deno.symlinkSync(h.linkname ?? "", path);
        break;
      }
      case "link": {
        await drain(body);
        const target = this.#resolveLinkTarget(h.linkname ?? "");
        if (target === path) return;
        this.#remove(path);
        Deno.linkSync(target, path);
        this.#created.add(rel);
        return; // the inode's metadata is the target's
      }
      case "character-device":
      case "block-device": {
        await drain(body);
        if (this.opts.allowDevices === false) {
          throw new InvalidArgumentError(
            `device nodes are not allowed here (${h.type} ${h.devmajor}:${h.devminor})`,
          );
        }
        this.#remove(path);
        const kind = h.type === "character-device" ? S_IFCHR : S_IFBLK;
        mknod(path, kind | 0o600, makedev(h.devmajor ?? 0, h.devminor ?? 0));
        break;
      }
      case "fifo": {
        await drain(body);
        this.#remove(path);
        mknod(path, S_IFIFO | 0o600, 0);
        break;
      }
      default:
        await drain(body);
        throw new InvalidArgumentError(`unsupported entry type ${JSON.stringify(h.type)}`);
    }
    this.#created.add(rel);
    this.#metadata(path, h, h.type === "directory");
  }

  /** Owner, then mode (chown clears setuid), xattrs, then times (deferred for directories). */
  #metadata(path: string, h: Header, isDir: boolean): void {
    const pax = (h.pax ?? {}) as Record<string, string>;
    const uid = pax.uid !== undefined ? Number(pax.uid) : h.uid;
    const gid = pax.gid !== undefined ? Number(pax.gid) : h.gid;
    lchown(path, uid, gid);
    const symlink = h.type === "symlink";
    if (!symlink) Deno.chmodSync(path, h.mode & 0o7777);
    for (const [key, value] of Object.entries(pax)) {
      if (!key.startsWith("SCHILY.xattr.")) continue;
      lsetxattr(path, key.slice("SCHILY.xattr.".length), binary(value));
    }
    const mtime = pax.mtime !== undefined ? paxTime(pax.mtime) : h.mtime;
    const atime = pax.atime !== undefined ? paxTime(pax.atime) : mtime;
    if (isDir) this.#dirTimes.push({ path, atime, mtime });
    else lutimes(path, atime, mtime);
  }

  async #writeFile(path: string, body: Body): Promise<void> {
    const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    try {
      const buf = this.#buf;
      let n = 0;
      for await (const chunk of body) {
        if (n + chunk.length > buf.length && n > 0) {
          await writeAll(file, buf.subarray(0, n));
          n = 0;
        }
        if (chunk.length >= buf.length) await writeAll(file, chunk);
        else {
          buf.set(chunk, n);
          n += chunk.length;
        }
      }
      if (n > 0) await writeAll(file, buf.subarray(0, n));
    } finally {
      file.close();
    }
  }

  /**
   * Resolves parent components inside the root (see the module docs) and returns the real
   * relative path of the parent directory. Missing directories are created (0755) when
   * `create`, else `undefined` is returned.
   */
  #resolveParent(comps: string[], create: boolean): string | undefined {
    const key = comps.join("/");
    const known = this.#dirs.get(key);
    if (known !== undefined) return known;
    const real = resolveInRoot(this.root, comps, create);
    if (real === undefined) return undefined;
    this.#dirs.set(key, real);
    return real;
  }

  #resolveLinkTarget(linkname: string): string {
    let comps: string[];
    try {
      comps = cleanPath(linkname);
    } catch {
      throw new InvalidArgumentError(
        `hardlink target ${JSON.stringify(linkname)} is outside the layer root`,
      );
    }
    if (comps.length === 0) throw new InvalidArgumentError("hardlink to the root directory");
    const parent = resolveInRoot(this.root, comps.slice(0, -1), false);
    const target = parent === undefined ? undefined : join(this.root, parent, comps.at(-1)!);
    const st = target === undefined ? null : lstatOrNull(target);
    if (!st) {
      throw new InvalidArgumentError(
        `hardlink target ${JSON.stringify(linkname)} does not exist in the layer`,
      );
    }
    if (st.isDirectory) {
      throw new InvalidArgumentError(`hardlink target ${JSON.stringify(linkname)} is a directory`);
    }
    return target!;
  }

  /** Removes whatever is at `path` (recursively), if anything. */
  #remove(path: string): void {
    const st = lstatOrNull(path);
    if (!st) return;
    Deno.removeSync(path, { recursive: st.isDirectory });
    if (st.isDirectory || st.isSymlink) this.#forget();
  }

  #forget(): void {
    this.#dirs.clear();
    this.#dirs.set("", "");
  }

  #opaque(dirRel: string): void {
    const dir = join(this.root, dirRel);
    if (this.opts.mode === "overlay") {
      lsetxattr(dir, OVERLAY_OPAQUE_XATTR, new TextEncoder().encode("y"));
      return;
    }
    this.#removeLower(dirRel);
  }

  /** Native opaque: deletes what lower layers put under `dirRel`, keeping this layer's. */
  #removeLower(dirRel: string): void {
    const dir = join(this.root, dirRel);
    for (const e of Deno.readDirSync(dir)) {
      const rel = join(dirRel, e.name);
      if (!this.#created.has(rel)) this.#remove(join(this.root, rel));
      else if (e.isDirectory) this.#removeLower(rel);
    }
  }
}

/** An exact time for lutimes. */
type Time = Date | { sec: bigint; nsec: number };

/**
 * Cleans a tar entry name into components: leading `/` and `.` dropped, `..` applied
 * lexically; throws {@link InvalidArgumentError} when a `..` would climb above the root.
 *
 * @example
 * ```ts
 * import { cleanPath } from "./apply.ts";
 * cleanPath("/usr/./bin/../lib"); // ["usr", "lib"]
 * cleanPath("../etc/passwd");     // throws: path escapes the root
 * ```
 */
export function cleanPath(name: string): string[] {
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length === 0) throw new InvalidArgumentError("path escapes the root");
      out.pop();
      continue;
    }
    if (c.includes("\0")) throw new InvalidArgumentError("NUL byte in path");
    out.push(c);
  }
  return out;
}

/**
 * Resolves directory components inside `root` as if `root` were `/` (the securejoin rule):
 * symlinks are followed with absolute targets restarting at the root and `..` stopping at it.
 * Returns the real path relative to `root` (no symlinks in it). Missing components are
 * created as 0755 directories when `create`, otherwise the result is `undefined`. A
 * component that exists but is not a directory throws {@link InvalidArgumentError}.
 *
 * @example
 * ```ts
 * import { resolveInRoot } from "./apply.ts";
 * // with <root>/evil -> /etc:
 * resolveInRoot("/snap/3/fs", ["evil"], true); // "etc"
 * ```
 */
export function resolveInRoot(root: string, comps: string[], create: boolean): string | undefined {
  const cur: string[] = [];
  const queue = [...comps];
  let follows = 0;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      cur.pop();
      continue;
    }
    const rel = [...cur, c].join("/");
    const path = join(root, rel);
    const st = lstatOrNull(path);
    if (!st) {
      if (!create) return undefined;
      Deno.mkdirSync(path, { mode: 0o755 });
      Deno.chmodSync(path, 0o755);
      cur.push(c);
      continue;
    }
    if (st.isSymlink) {
      if (++follows > MAX_SYMLINK_FOLLOWS) {
        throw new InvalidArgumentError(`too many levels of symlinks resolving ${rel}`);
      }
      const target = Deno.readLinkSync(path);
      if (target.startsWith("/")) cur.length = 0;
      queue.unshift(...target.split("/"));
      continue;
    }
    if (!st.isDirectory) {
      throw new InvalidArgumentError(`parent ${JSON.stringify(rel)} is not a directory`);
    }
    cur.push(c);
  }
  return cur.join("/");
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

async function drain(body: Body): Promise<void> {
  for await (const _ of body) { /* discard */ }
}

/** A PAX time ("1704067200.5") as an exact timespec. */
function paxTime(s: string): Time {
  const m = /^(-?\d+)(?:\.(\d+))?$/.exec(s.trim());
  if (!m) throw new InvalidArgumentError(`bad PAX time ${JSON.stringify(s)}`);
  return { sec: BigInt(m[1]), nsec: Number((m[2] ?? "").slice(0, 9).padEnd(9, "0")) };
}

/** A string of byte values (as {@link keepBinaryXattrs} stores xattr values) back to bytes. */
function binary(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/**
 * tar-stream decodes every PAX value as UTF-8, which mangles binary xattrs (file
 * capabilities: `security.capability`). This replaces the PAX decoder of one extract instance
 * (tar-stream 3.2.2 internals, pinned) with one that keeps `SCHILY.xattr.*` values as
 * byte-per-char strings; every other record is decoded as UTF-8 as before.
 */
function keepBinaryXattrs(ex: ReturnType<typeof extract>): void {
  const inner = ex as unknown as {
    _header: { type: string } | null;
    _pax: Record<string, string> | null;
    _paxGlobal: Record<string, string> | null;
    _decodeLongHeader(buf: Uint8Array): void;
  };
  const original = inner._decodeLongHeader;
  if (typeof original !== "function") throw new Error("tar-stream internals changed");
  inner._decodeLongHeader = function (buf: Uint8Array) {
    if (inner._header?.type !== "pax-header") return original.call(ex, buf);
    const rec = decodePax(buf);
    inner._pax = inner._paxGlobal === null ? rec : { ...inner._paxGlobal, ...rec };
  };
}

const utf8 = new TextDecoder();

function decodePax(buf: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < buf.length) {
    let sp = off;
    while (sp < buf.length && buf[sp] !== 0x20) sp++;
    const len = parseInt(utf8.decode(buf.subarray(off, sp)), 10);
    if (!len) break;
    const rec = buf.subarray(sp + 1, off + len - 1); // without the trailing "\n"
    const eq = rec.indexOf(0x3d);
    if (eq < 0) break;
    const key = utf8.decode(rec.subarray(0, eq));
    const val = rec.subarray(eq + 1);
    out[key] = key.startsWith("SCHILY.xattr.") ? String.fromCharCode(...val) : utf8.decode(val);
    off += len;
  }
  return out;
}
