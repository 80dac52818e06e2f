/**
 * The content store: immutable blobs addressed by digest, after containerd's local store. It
 * plays three roles:
 *
 * - Provider: `info`, `exists`, `read`, `readAll` serve committed blobs.
 * - Ingester: `writer(ref)` opens a resumable ingest; bytes are hashed while written, and
 *   `commit` verifies size and digest before the blob becomes visible under `blobs/` by an
 *   atomic rename. A blob that fails verification is never visible.
 * - Manager: `status`, `listStatuses`, `abort`, `delete`, `walk`, `cleanupIngests`.
 *
 * Layout under the root (the daemon passes `<root>/content`):
 *
 * ```
 * blobs/<alg>/<hex>                 committed, read-only blobs
 * ingest/<sha256(ref)>/data         bytes written so far
 *                     /ref          the caller's ref, so a listing can name it
 *                     /total        expected total size, when known
 *                     /expected     expected digest, when known
 *                     /startedat    ISO time the ingest began
 *                     /updatedat    ISO time of the last close
 * ```
 *
 * This store knows nothing of namespaces: which namespaces hold a blob lives in the metadata
 * database (src/metadata/content.ts), and garbage collection (src/metadata/gc.ts) decides
 * when a blob's file goes.
 *
 * @example
 * ```ts
 * import { ContentStore } from "./store.ts";
 * const cs = new ContentStore("/var/lib/k8scontainerd/content");
 * const w = await cs.writer("pull-busybox-config", { expected: "sha256:…" });
 * await w.write(new TextEncoder().encode("{}"));
 * const digest = await w.commit({ size: 2 });
 * const text = new TextDecoder().decode(await cs.readAll(digest, { maxSize: 4 << 20 }));
 * ```
 */
import type { Hash } from "node:crypto";
import { type Algorithm, hasher, parseDigest } from "./digest.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from "../errdefs/errors.ts";

/** What the store knows about a committed blob. */
export interface ContentInfo {
  /** The blob's digest. */
  digest: string;
  /** The blob's size in bytes. */
  size: number;
  /** When the blob was written (the file's modification time). */
  committedAt: Date;
}

/** The state of an ingest: how far a write has come. */
export interface IngestStatus {
  /** The ref the writer was opened with. */
  ref: string;
  /** Bytes written so far (the size of the data a resumed writer continues from). */
  offset: number;
  /** Expected total size; 0 when unknown. */
  total: number;
  /** Expected digest; "" when unknown. */
  expected: string;
  /** When the ingest began. */
  startedAt: Date;
  /** When it was last written to. */
  updatedAt: Date;
}

/** Options for `ContentStore.writer`. */
export interface WriterOptions {
  /** The size the blob will have, when known (checked at commit if commit gets no size). */
  total?: number;
  /** The digest the blob must have, when known; it also picks the hash algorithm. */
  expected?: string;
}

/** Small writes are gathered into a buffer this big before they reach the file. */
const WRITE_BUFFER = 1 << 20;
/** Reads are served in chunks of at most this many bytes. */
const READ_CHUNK = 1 << 20;

/** Refs locked by a live writer, per store root: one daemon owns a root, so this is enough. */
const LOCKS = new Map<string, Set<string>>();

function ingestDirName(ref: string): string {
  return hasher("sha256").update(ref).digest("hex");
}

function isNotFound(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

async function syncDir(path: string): Promise<void> {
  // The rename is durable only once the directory entry is on disk.
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

/**
 * A content store rooted at a directory. Directories are created on first use, so
 * constructing one does no I/O.
 *
 * @example
 * ```ts
 * const cs = new ContentStore(`${root}/content`);
 * if (!(await cs.exists(desc.digest))) {
 *   const w = await cs.writer(`layer-${desc.digest}`, { total: desc.size, expected: desc.digest });
 *   await body.pipeTo(w.writable);
 *   await w.commit({ size: desc.size, digest: desc.digest });
 * }
 * ```
 */
export class ContentStore {
  /** Digests committed by this process, with when: GC spares very fresh unindexed blobs. */
  readonly #recentCommits = new Map<string, number>();

  /** A store rooted at `root`, e.g. `/var/lib/k8scontainerd/content` (created on first write). */
  constructor(
    /** The store's directory. */
    readonly root: string,
  ) {
    if (!LOCKS.has(root)) LOCKS.set(root, new Set());
  }

  get #locks(): Set<string> {
    return LOCKS.get(this.root)!;
  }

  /** The path of a committed blob (validating the digest). */
  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return `${this.root}/blobs/${algorithm}/${hex}`;
  }

  /** The directory an ingest for `ref` lives in. */
  ingestPath(ref: string): string {
    return `${this.root}/ingest/${ingestDirName(validateRef(ref))}`;
  }

  /**
   * Size and commit time of a blob; NotFoundError naming the digest when absent.
   *
   * @example
   * ```ts
   * const { size } = await cs.info("sha256:…");
   * ```
   */
  async info(digest: string): Promise<ContentInfo> {
    const path = this.blobPath(digest);
    try {
      const st = await Deno.stat(path);
      return { digest, size: st.size, committedAt: st.mtime ?? new Date(0) };
    } catch (e) {
      if (isNotFound(e)) throw new NotFoundError(`content ${digest}`);
      throw e;
    }
  }

  /**
   * True when the blob is committed.
   *
   * @example
   * ```ts
   * if (await cs.exists(desc.digest)) return; // nothing to fetch
   * ```
   */
  async exists(digest: string): Promise<boolean> {
    try {
      await this.info(digest);
      return true;
    } catch (e) {
      if (e instanceof NotFoundError) return false;
      throw e;
    }
  }

  /**
   * Streams a blob, or the `length` bytes from `offset`. A missing blob or an offset past
   * its end throws at once; the file is opened only when the stream is first read.
   *
   * @example
   * ```ts
   * await cs.read(layer.digest).pipeThrough(new DecompressionStream("gzip")).pipeTo(sink);
   * ```
   */
  read(
    digest: string,
    opts: { offset?: number; length?: number } = {},
  ): ReadableStream<Uint8Array> {
    const path = this.blobPath(digest);
    let size: number;
    try {
      size = Deno.statSync(path).size;
    } catch (e) {
      if (isNotFound(e)) throw new NotFoundError(`content ${digest}`);
      throw e;
    }
    const offset = opts.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
      throw new InvalidArgumentError(
        `content ${digest}: read offset ${offset} is outside the blob (${size} bytes)`,
      );
    }
    if (opts.length !== undefined && (!Number.isSafeInteger(opts.length) || opts.length < 0)) {
      throw new InvalidArgumentError(`content ${digest}: read length ${opts.length} is invalid`);
    }
    let remaining = Math.min(size - offset, opts.length ?? Infinity);
    let file: Deno.FsFile | undefined;
    const done = () => {
      file?.close();
      file = undefined;
    };
    // A byte stream: a BYOB reader fills its own buffer (no garbage per chunk); a default
    // reader gets chunks of up to READ_CHUNK bytes allocated for it.
    return new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: READ_CHUNK,
      async start() {
        file = await Deno.open(path, { read: true });
        if (offset > 0) await file.seek(offset, Deno.SeekMode.Start);
      },
      async pull(controller) {
        const req = controller.byobRequest;
        if (remaining <= 0 || !file || !req?.view) {
          done();
          controller.close();
          req?.respond(0);
          return;
        }
        const view = req.view;
        const into = new Uint8Array(
          view.buffer,
          view.byteOffset,
          Math.min(view.byteLength, remaining),
        );
        let n: number | null;
        try {
          n = await file.read(into);
        } catch (e) {
          done();
          throw e;
        }
        if (n === null) {
          done();
          controller.error(
            new FailedPreconditionError(`content ${digest}: blob ended early (truncated on disk?)`),
          );
          return;
        }
        remaining -= n;
        req.respond(n);
        if (remaining <= 0) {
          done();
          controller.close();
        }
      },
      cancel() {
        done();
      },
    });
  }

  /**
   * Reads a whole blob into memory, refusing blobs over `maxSize` (manifests and configs are
   * capped by callers, e.g. at 4 MiB) and checking the bytes still match the digest.
   *
   * @example
   * ```ts
   * const manifest = JSON.parse(new TextDecoder().decode(await cs.readAll(d, { maxSize: 4 << 20 })));
   * ```
   */
  async readAll(digest: string, opts: { maxSize: number }): Promise<Uint8Array> {
    const { size } = await this.info(digest);
    if (size > opts.maxSize) {
      throw new FailedPreconditionError(
        `content ${digest}: blob is ${size} bytes, over the ${opts.maxSize}-byte limit for reading it whole`,
      );
    }
    const data = await Deno.readFile(this.blobPath(digest));
    verifyBytes(digest, data);
    return data;
  }

  /**
   * The synchronous form of `readAll`, for code that must not yield (GC reads manifests
   * inside a database transaction). Same limits and checks.
   *
   * @example
   * ```ts
   * const bytes = cs.readAllSync(d, { maxSize: 4 << 20 });
   * ```
   */
  readAllSync(digest: string, opts: { maxSize: number }): Uint8Array {
    const path = this.blobPath(digest);
    let size: number;
    try {
      size = Deno.statSync(path).size;
    } catch (e) {
      if (isNotFound(e)) throw new NotFoundError(`content ${digest}`);
      throw e;
    }
    if (size > opts.maxSize) {
      throw new FailedPreconditionError(
        `content ${digest}: blob is ${size} bytes, over the ${opts.maxSize}-byte limit for reading it whole`,
      );
    }
    const data = Deno.readFileSync(path);
    verifyBytes(digest, data);
    return data;
  }

  /**
   * Opens a writer for `ref`. If an ingest for `ref` exists, the writer resumes at its
   * `offset` (the bytes already there are re-hashed, so the final digest covers them all).
   * A second live writer for the same ref fails with UnavailableError. Writing a blob that
   * is already committed is allowed (commit just drops the ingest): check `exists()` first
   * to skip the transfer.
   *
   * @example
   * ```ts
   * const w = await cs.writer("layer-sha256:…", { total: 1234, expected: "sha256:…" });
   * console.log(w.offset); // > 0 when resuming an interrupted pull
   * ```
   */
  async writer(ref: string, opts: WriterOptions = {}): Promise<ContentWriter> {
    validateRef(ref);
    if (opts.expected !== undefined) parseDigest(opts.expected);
    if (opts.total !== undefined && (!Number.isSafeInteger(opts.total) || opts.total < 0)) {
      throw new InvalidArgumentError(`ref ${ref}: total ${opts.total} is not a valid size`);
    }
    const locks = this.#locks;
    if (locks.has(ref)) throw new UnavailableError(`ref ${ref} is locked`);
    locks.add(ref);
    try {
      return await this.#openWriter(ref, opts);
    } catch (e) {
      locks.delete(ref);
      throw e;
    }
  }

  async #openWriter(ref: string, opts: WriterOptions): Promise<ContentWriter> {
    const dir = this.ingestPath(ref);
    await Deno.mkdir(dir, { recursive: true });
    const storedRef = await readText(`${dir}/ref`);
    let startedAt = new Date();
    let total = opts.total ?? 0;
    let expected = opts.expected ?? "";
    const fresh = storedRef === undefined;
    if (!fresh) {
      // Resuming: the ingest's own expectations win, and a caller asking for something else
      // would otherwise end with a blob built from two different sources.
      const storedTotal = Number((await readText(`${dir}/total`)) ?? "0") || 0;
      const storedExpected = ((await readText(`${dir}/expected`)) ?? "").trim();
      if (opts.total && storedTotal && opts.total !== storedTotal) {
        throw new FailedPreconditionError(
          `ref ${ref}: an ingest of ${storedTotal} bytes is under way, not ${opts.total}: abort it first`,
        );
      }
      if (opts.expected && storedExpected && opts.expected !== storedExpected) {
        throw new FailedPreconditionError(
          `ref ${ref}: an ingest of ${storedExpected} is under way, not ${opts.expected}: abort it first`,
        );
      }
      total = storedTotal || total;
      expected = storedExpected || expected;
      const started = await readText(`${dir}/startedat`);
      if (started && !Number.isNaN(Date.parse(started))) startedAt = new Date(started);
    }
    // Metadata files are (re)written when missing or newly known; `ref` last, since its
    // presence is what marks the ingest as set up.
    if (fresh) await Deno.writeTextFile(`${dir}/startedat`, startedAt.toISOString());
    if (total) await Deno.writeTextFile(`${dir}/total`, String(total));
    if (expected) await Deno.writeTextFile(`${dir}/expected`, expected);
    if (fresh) {
      await Deno.writeTextFile(`${dir}/updatedat`, startedAt.toISOString());
      await Deno.writeTextFile(`${dir}/ref`, ref);
    }
    const algorithm: Algorithm = expected ? parseDigest(expected).algorithm : "sha256";
    const file = await Deno.open(`${dir}/data`, { read: true, write: true, create: true });
    const hash = hasher(algorithm);
    let offset = 0;
    try {
      // Re-hash what is there: a digest cannot be resumed from a saved state.
      const buf = new Uint8Array(READ_CHUNK);
      for (;;) {
        const n = await file.read(buf);
        if (n === null) break;
        hash.update(buf.subarray(0, n));
        offset += n;
      }
      await file.seek(offset, Deno.SeekMode.Start);
    } catch (e) {
      file.close();
      throw e;
    }
    return new ContentWriter({
      store: this,
      ref,
      dir,
      file,
      hash,
      algorithm,
      offset,
      total,
      expected,
      startedAt,
      release: () => this.#locks.delete(ref),
      committed: (digest) => this.#recentCommits.set(digest, Date.now()),
    });
  }

  /**
   * Writes a whole blob in one call (containerd's content.WriteBlob): resumes an ingest when
   * `source` is a byte array, restarts it when `source` is a stream, and commits.
   *
   * @example
   * ```ts
   * const d = await cs.writeBlob("config-x", bytes, { expected: desc.digest, size: desc.size });
   * ```
   */
  async writeBlob(
    ref: string,
    source: Uint8Array | ReadableStream<Uint8Array>,
    opts: { expected?: string; size?: number } = {},
  ): Promise<string> {
    const w = await this.writer(ref, { expected: opts.expected, total: opts.size });
    try {
      if (source instanceof Uint8Array) {
        if (w.offset > source.length) await w.truncate(0);
        await w.write(source.subarray(w.offset));
      } else {
        if (w.offset > 0) await w.truncate(0);
        await source.pipeTo(w.writable);
      }
      return await w.commit({ size: opts.size, digest: opts.expected });
    } catch (e) {
      await w.close();
      throw e;
    }
  }

  /**
   * The status of the ingest for `ref`; NotFoundError when there is none.
   *
   * @example
   * ```ts
   * const { offset, total } = await cs.status("layer-sha256:…");
   * ```
   */
  async status(ref: string): Promise<IngestStatus> {
    const dir = this.ingestPath(ref);
    const s = await this.#readStatus(dir);
    if (!s) throw new NotFoundError(`ingest ${ref}`);
    return s;
  }

  async #readStatus(dir: string): Promise<IngestStatus | undefined> {
    const ref = await readText(`${dir}/ref`);
    if (ref === undefined) return undefined;
    const live = ACTIVE.get(`${this.root}\0${ref}`);
    if (live) return live.status();
    let offset = 0;
    try {
      offset = (await Deno.stat(`${dir}/data`)).size;
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const date = (s: string | undefined) => {
      const t = s ? Date.parse(s) : NaN;
      return new Date(Number.isNaN(t) ? 0 : t);
    };
    return {
      ref,
      offset,
      total: Number((await readText(`${dir}/total`)) ?? "0") || 0,
      expected: ((await readText(`${dir}/expected`)) ?? "").trim(),
      startedAt: date(await readText(`${dir}/startedat`)),
      updatedAt: date(await readText(`${dir}/updatedat`)),
    };
  }

  /**
   * All ingests, optionally only those `filter` accepts (e.g. by ref prefix).
   *
   * @example
   * ```ts
   * const pulls = await cs.listStatuses((s) => s.ref.startsWith("pull-"));
   * ```
   */
  async listStatuses(filter?: (s: IngestStatus) => boolean): Promise<IngestStatus[]> {
    const out: IngestStatus[] = [];
    for (const dir of await this.#ingestDirs()) {
      const s = await this.#readStatus(dir);
      if (s && (!filter || filter(s))) out.push(s);
    }
    return out.sort((a, b) => a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0);
  }

  async #ingestDirs(): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(`${this.root}/ingest`)) {
        if (e.isDirectory) out.push(`${this.root}/ingest/${e.name}`);
      }
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    return out;
  }

  /**
   * Deletes the ingest for `ref`. NotFoundError when there is none; UnavailableError while a
   * writer holds it (abort through that writer instead).
   *
   * @example
   * ```ts
   * await cs.abort("layer-sha256:…");
   * ```
   */
  async abort(ref: string): Promise<void> {
    const dir = this.ingestPath(ref);
    if (this.#locks.has(ref)) throw new UnavailableError(`ref ${ref} is locked`);
    try {
      await Deno.remove(dir, { recursive: true });
    } catch (e) {
      if (isNotFound(e)) throw new NotFoundError(`ingest ${ref}`);
      throw e;
    }
  }

  /**
   * Deletes a committed blob's file; NotFoundError when absent. Normally only GC calls this,
   * after no namespace references the blob any more.
   *
   * @example
   * ```ts
   * await cs.delete("sha256:…");
   * ```
   */
  async delete(digest: string): Promise<void> {
    try {
      await Deno.remove(this.blobPath(digest));
    } catch (e) {
      if (isNotFound(e)) throw new NotFoundError(`content ${digest}`);
      throw e;
    }
    this.#recentCommits.delete(digest);
  }

  /**
   * The synchronous form of `delete`, returning false when the blob was already gone: GC
   * checks "nothing references it" and removes in one step no other task can interleave with.
   *
   * @example
   * ```ts
   * if (!stillReferenced(d)) cs.deleteSync(d);
   * ```
   */
  deleteSync(digest: string): boolean {
    try {
      Deno.removeSync(this.blobPath(digest));
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
    this.#recentCommits.delete(digest);
    return true;
  }

  /**
   * When this process committed `digest` (ms since the epoch), if it did. GC uses it to spare a
   * blob committed moments ago whose metadata row is not written yet.
   *
   * @example
   * ```ts
   * const fresh = (cs.committedRecently(d) ?? 0) > Date.now() - 60_000;
   * ```
   */
  committedRecently(digest: string): number | undefined {
    return this.#recentCommits.get(digest);
  }

  /**
   * Calls `fn` for every committed blob (files with names that are not digests are skipped).
   *
   * @example
   * ```ts
   * let total = 0;
   * await cs.walk(({ size }) => { total += size; });
   * ```
   */
  async walk(fn: (info: ContentInfo) => void | Promise<void>): Promise<void> {
    for (const algorithm of ["sha256", "sha512"] as const) {
      const dir = `${this.root}/blobs/${algorithm}`;
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(dir));
      } catch (e) {
        if (isNotFound(e)) continue;
        throw e;
      }
      entries.sort((a, b) => a.name < b.name ? -1 : 1);
      for (const e of entries) {
        if (!e.isFile) continue;
        const digest = `${algorithm}:${e.name}`;
        try {
          parseDigest(digest);
        } catch {
          continue;
        }
        let st: Deno.FileInfo;
        try {
          st = await Deno.stat(`${dir}/${e.name}`);
        } catch (err) {
          if (isNotFound(err)) continue; // deleted while walking
          throw err;
        }
        await fn({ digest, size: st.size, committedAt: st.mtime ?? new Date(0) });
      }
    }
  }

  /**
   * Removes ingests last updated before `olderThan` (all of them when omitted), except
   * those a live writer holds; returns the refs (or directory names, for ingests too broken
   * to name) removed. The daemon calls it at start for ingests a crash left behind.
   *
   * @example
   * ```ts
   * await cs.cleanupIngests(new Date(Date.now() - 24 * 3600_000));
   * ```
   */
  async cleanupIngests(olderThan?: Date): Promise<string[]> {
    const removed: string[] = [];
    for (const dir of await this.#ingestDirs()) {
      const s = await this.#readStatus(dir);
      if (s && this.#locks.has(s.ref)) continue;
      let updated = s?.updatedAt;
      if (!s) {
        // No ref file: set-up never finished. Age it by the directory's own mtime.
        try {
          updated = (await Deno.stat(dir)).mtime ?? new Date(0);
        } catch (e) {
          if (isNotFound(e)) continue;
          throw e;
        }
      }
      if (olderThan && updated && updated >= olderThan) continue;
      try {
        await Deno.remove(dir, { recursive: true });
      } catch (e) {
        if (isNotFound(e)) continue;
        throw e;
      }
      removed.push(s?.ref ?? dir.slice(dir.lastIndexOf("/") + 1));
    }
    return removed;
  }
}

/** Live writers by `<root>\0<ref>`, so `status` reports the in-memory offset. */
const ACTIVE = new Map<string, ContentWriter>();

function validateRef(ref: string): string {
  if (typeof ref !== "string" || ref.length === 0) {
    throw new InvalidArgumentError("ingest ref must not be empty");
  }
  return ref;
}

function verifyBytes(digest: string, data: Uint8Array): void {
  const { algorithm } = parseDigest(digest);
  const got = `${algorithm}:${hasher(algorithm).update(data).digest("hex")}`;
  if (got !== digest) {
    throw new FailedPreconditionError(
      `content ${digest}: blob on disk is corrupt: it hashes to ${got}`,
    );
  }
}

interface WriterInit {
  store: ContentStore;
  ref: string;
  dir: string;
  file: Deno.FsFile;
  hash: Hash;
  algorithm: Algorithm;
  offset: number;
  total: number;
  expected: string;
  startedAt: Date;
  release: () => void;
  committed: (digest: string) => void;
}

/**
 * A writer for one ingest, from `ContentStore.writer`. Lifecycle: `write` (or pipe into
 * `writable`) any number of times, then exactly one of `commit` (verify and publish the blob),
 * `close` (keep the ingest to resume later) or `abort` (delete it). Each ends the writer and
 * releases the ref's lock. Calls are queued, so overlapping calls run in order.
 *
 * @example
 * ```ts
 * const w = await cs.writer("ref", { expected });
 * try {
 *   await res.body!.pipeTo(w.writable);
 *   await w.commit({ size, digest: expected });
 * } catch (e) {
 *   await w.close(); // keep what arrived; the next attempt resumes at w.offset
 *   throw e;
 * }
 * ```
 */
export class ContentWriter {
  /** The ref this writer ingests under. */
  readonly ref: string;
  readonly #init: WriterInit;
  #file: Deno.FsFile | undefined;
  #hash: Hash;
  #offset: number;
  #total: number;
  #updatedAt = new Date();
  #buf = new Uint8Array(WRITE_BUFFER);
  #pending = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #done = false;

  /** Not for direct use: see `ContentStore.writer`. */
  constructor(init: WriterInit) {
    this.#init = init;
    this.ref = init.ref;
    this.#file = init.file;
    this.#hash = init.hash;
    this.#offset = init.offset;
    this.#total = init.total;
    ACTIVE.set(`${init.store.root}\0${init.ref}`, this);
  }

  /** Bytes accepted so far, including those resumed from an earlier writer. */
  get offset(): number {
    return this.#offset;
  }

  /** Where this ingest stands (offset counts bytes still in the write buffer). */
  status(): IngestStatus {
    return {
      ref: this.ref,
      offset: this.#offset,
      total: this.#total,
      expected: this.#init.expected,
      startedAt: this.#init.startedAt,
      updatedAt: this.#updatedAt,
    };
  }

  /**
   * A WritableStream into this writer; closing it flushes but does not commit.
   *
   * @example
   * ```ts
   * await response.body!.pipeTo(w.writable);
   * ```
   */
  get writable(): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.#enqueue(() => this.#flush()),
    });
  }

  #enqueue<T>(fn: () => Promise<T>, whenDone?: () => T): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#done) {
        if (whenDone) return whenDone();
        throw new FailedPreconditionError(`ref ${this.ref}: writer is closed`);
      }
      return fn();
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Appends bytes. Small chunks are gathered into a 1 MiB buffer, large ones go straight to
   * the file; either way the caller may reuse `chunk` once the promise settles.
   */
  write(chunk: Uint8Array): Promise<void> {
    return this.#enqueue(async () => {
      if (chunk.length === 0) return;
      this.#hash.update(chunk);
      this.#offset += chunk.length;
      this.#updatedAt = new Date();
      const buf = this.#buf;
      if (this.#pending + chunk.length <= buf.length) {
        buf.set(chunk, this.#pending);
        this.#pending += chunk.length;
        if (this.#pending === buf.length) await this.#flush();
        return;
      }
      await this.#flush();
      if (chunk.length >= buf.length) {
        await writeAll(this.#file!, chunk);
      } else {
        buf.set(chunk, 0);
        this.#pending = chunk.length;
      }
    });
  }

  async #flush(): Promise<void> {
    if (this.#pending === 0) return;
    const n = this.#pending;
    this.#pending = 0;
    await writeAll(this.#file!, this.#buf.subarray(0, n));
  }

  /** Discards everything written (only size 0 is supported, as in containerd) to restart. */
  truncate(size: 0): Promise<void> {
    return this.#enqueue(async () => {
      if (size !== 0) {
        throw new InvalidArgumentError(
          `ref ${this.ref}: truncate supports only size 0, not ${size}`,
        );
      }
      this.#pending = 0;
      await this.#file!.truncate(0);
      await this.#file!.seek(0, Deno.SeekMode.Start);
      this.#hash = hasher(this.#init.algorithm);
      this.#offset = 0;
      this.#updatedAt = new Date();
    });
  }

  /**
   * The digest of the bytes written so far, in the writer's algorithm.
   *
   * @example
   * ```ts
   * w.digest(); // "sha256:…"
   * ```
   */
  digest(): string {
    return `${this.#init.algorithm}:${this.#hash.copy().digest("hex")}`;
  }

  /**
   * Verifies and publishes the blob: the size must be `size` (or the writer's `total`), the
   * digest must be `digest` (or the writer's `expected`). On mismatch the ingest is removed
   * and an InvalidArgumentError names both values. On success the data is fsynced, renamed
   * into `blobs/` and the directory fsynced; if the blob was already there the ingest is just
   * dropped. Returns the digest.
   */
  commit(opts: { size?: number; digest?: string } = {}): Promise<string> {
    return this.#enqueue(async () => {
      const { ref, dir } = this.#init;
      const file = this.#file!;
      try {
        await this.#flush();
        const wantSize = opts.size ?? (this.#total || undefined);
        if (wantSize !== undefined && wantSize !== this.#offset) {
          throw new InvalidArgumentError(
            `content ${ref}: size mismatch: expected ${wantSize} bytes, got ${this.#offset} bytes`,
          );
        }
        const want = opts.digest ?? (this.#init.expected || undefined);
        let got = this.digest();
        if (want !== undefined) {
          const { algorithm } = parseDigest(want);
          if (algorithm !== this.#init.algorithm) got = await rehash(file, algorithm);
          if (got !== want) {
            throw new InvalidArgumentError(
              `content ${ref}: digest mismatch: expected ${want}, got ${got}`,
            );
          }
        }
        const target = this.#init.store.blobPath(got);
        const targetDir = target.slice(0, target.lastIndexOf("/"));
        await file.syncData();
        await Deno.chmod(`${dir}/data`, 0o444); // committed blobs are immutable
        this.#closeFile();
        await Deno.mkdir(targetDir, { recursive: true });
        let present = false;
        try {
          await Deno.lstat(target);
          present = true;
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
        if (!present) {
          await Deno.rename(`${dir}/data`, target);
          await syncDir(targetDir);
        }
        this.#init.committed(got);
        await this.#removeIngest();
        return got;
      } catch (e) {
        // A blob that fails verification is never visible, and a broken ingest is not kept
        // for a resume that would fail the same way.
        if (e instanceof InvalidArgumentError) await this.#removeIngest();
        else this.#finish();
        throw e;
      }
    });
  }

  /** Flushes and closes, keeping the ingest so a later `writer(ref)` resumes at `offset`. */
  close(): Promise<void> {
    return this.#enqueue(async () => {
      try {
        await this.#flush();
        await Deno.writeTextFile(`${this.#init.dir}/updatedat`, this.#updatedAt.toISOString());
      } finally {
        this.#finish();
      }
    }, () => {});
  }

  /** Deletes the ingest and ends the writer (a no-op once the writer has ended). */
  abort(): Promise<void> {
    return this.#enqueue(() => this.#removeIngest(), () => {});
  }

  #closeFile(): void {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = undefined;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#closeFile();
    ACTIVE.delete(`${this.#init.store.root}\0${this.ref}`);
    this.#init.release();
  }

  async #removeIngest(): Promise<void> {
    this.#closeFile();
    try {
      await Deno.remove(this.#init.dir, { recursive: true });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    } finally {
      this.#finish();
    }
  }
}

async function rehash(file: Deno.FsFile, algorithm: Algorithm): Promise<string> {
  const h = hasher(algorithm);
  const buf = new Uint8Array(READ_CHUNK);
  await file.seek(0, Deno.SeekMode.Start);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
  }
  return `${algorithm}:${h.digest("hex")}`;
}
