/**
 * What the overlayfs and native snapshotters share: the `snapshots` table bookkeeping, the
 * `<root>/snapshots/<id>` directories and their crash-safe lifecycle.
 *
 * Crash safety: an id is allocated in one transaction, the directory is made and filled,
 * then the row is inserted in a second transaction; a crash in between leaves a directory
 * without a row, which {@link DirSnapshotter.cleanup} deletes. Removal deletes the row first,
 * then renames the directory to `.removed-<id>` and deletes it; a crash leaves a
 * `.removed-*` directory (or an id directory without a row) for cleanup to delete.
 *
 * @module
 */
import type { MetadataDB } from "../metadata/db.ts";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../errdefs/errors.ts";
import type { Mount, SnapshotInfo, SnapshotKind, Snapshotter, Usage } from "./snapshotter.ts";

/** A row of the `snapshots` table. */
export interface SnapshotRow {
  key: string;
  id: number;
  kind: SnapshotKind;
  parent: string | null;
  labels: string;
  size: number | null;
  inodes: number | null;
  created_at: number;
  updated_at: number;
}

/**
 * Base class of the directory-backed snapshotters. Subclasses say how a new snapshot's
 * directory is filled ({@link DirSnapshotter.populate}) and what to mount
 * ({@link DirSnapshotter.mountsOf}).
 */
export abstract class DirSnapshotter implements Snapshotter {
  abstract readonly name: string;
  /** `<root>/snapshots`: one directory per snapshot id. */
  readonly snapshotsDir: string;
  /** Ids whose directory is being made right now (cleanup leaves them alone). */
  readonly #pending = new Set<number>();

  /** Creates `<root>/snapshots` if needed. */
  constructor(readonly root: string, readonly db: MetadataDB) {
    this.snapshotsDir = `${root}/snapshots`;
    Deno.mkdirSync(this.snapshotsDir, { recursive: true, mode: 0o700 });
  }

  /** Fills a new snapshot directory `dir` (which exists) given its parent chain (nearest first). */
  protected abstract populate(
    dir: string,
    kind: SnapshotKind,
    parents: SnapshotRow[],
  ): Promise<void>;

  /** The mounts of `row` whose parent chain (nearest first) is `parents`. */
  protected abstract mountsOf(row: SnapshotRow, parents: SnapshotRow[]): Mount[];

  /** `<root>/snapshots/<id>`. */
  protected dirOf(id: number): string {
    return `${this.snapshotsDir}/${id}`;
  }

  /** `<root>/snapshots/<id>/fs`: the snapshot's files. */
  protected fsOf(id: number): string {
    return `${this.dirOf(id)}/fs`;
  }

  protected row(namespace: string, key: string): SnapshotRow | undefined {
    return this.db.prepare(
      "SELECT key, id, kind, parent, labels, size, inodes, created_at, updated_at FROM snapshots " +
        "WHERE snapshotter = ? AND namespace = ? AND key = ?",
    ).get(this.name, namespace, key) as SnapshotRow | undefined;
  }

  protected need(namespace: string, key: string): SnapshotRow {
    const r = this.row(namespace, key);
    if (!r) throw new NotFoundError(`snapshot ${JSON.stringify(key)} in namespace ${namespace}`);
    return r;
  }

  /** The committed ancestors of `parent` (itself first). */
  protected chain(namespace: string, parent: string | null): SnapshotRow[] {
    const out: SnapshotRow[] = [];
    for (let p = parent; p !== null;) {
      const r = this.need(namespace, p);
      out.push(r);
      p = r.parent;
      if (out.length > 10_000) throw new Error(`snapshot parent chain of ${parent} loops`);
    }
    return out;
  }

  #info(r: SnapshotRow): SnapshotInfo {
    return {
      key: r.key,
      kind: r.kind,
      ...(r.parent !== null ? { parent: r.parent } : {}),
      labels: JSON.parse(r.labels),
      created: new Date(r.created_at),
      updated: new Date(r.updated_at),
    };
  }

  stat(namespace: string, key: string): SnapshotInfo {
    return this.#info(this.need(namespace, key));
  }

  update(namespace: string, key: string, labels: Record<string, string>): SnapshotInfo {
    return this.db.transaction(() => {
      const r = this.need(namespace, key);
      const merged = mergeLabels(JSON.parse(r.labels), labels);
      this.db.prepare(
        "UPDATE snapshots SET labels = ?, updated_at = ? " +
          "WHERE snapshotter = ? AND namespace = ? AND key = ?",
      ).run(JSON.stringify(merged), Date.now(), this.name, namespace, key);
      return this.#info(this.need(namespace, key));
    });
  }

  async usage(namespace: string, key: string): Promise<Usage> {
    const r = this.need(namespace, key);
    if (r.kind === "committed" && r.size !== null && r.inodes !== null) {
      return { size: r.size, inodes: r.inodes };
    }
    return await diskUsage(this.fsOf(r.id));
  }

  mounts(namespace: string, key: string): Mount[] {
    const r = this.need(namespace, key);
    return this.mountsOf(r, this.chain(namespace, r.parent));
  }

  prepare(
    namespace: string,
    key: string,
    parent?: string,
    labels?: Record<string, string>,
  ): Promise<Mount[]> {
    return this.#create("active", namespace, key, parent, labels);
  }

  view(
    namespace: string,
    key: string,
    parent?: string,
    labels?: Record<string, string>,
  ): Promise<Mount[]> {
    return this.#create("view", namespace, key, parent, labels);
  }

  async #create(
    kind: SnapshotKind,
    namespace: string,
    key: string,
    parent: string | undefined,
    labels: Record<string, string> = {},
  ): Promise<Mount[]> {
    if (key === "") throw new InvalidArgumentError("snapshot key must not be empty");
    if (this.row(namespace, key)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}`);
    const parents = parent === undefined || parent === "" ? [] : this.chain(namespace, parent);
    if (parents.length && parents[0].kind !== "committed") {
      throw new FailedPreconditionError(
        `parent snapshot ${JSON.stringify(parent)} is ${parents[0].kind}, not committed`,
      );
    }
    const id = this.db.transaction(() => {
      const { next } = this.db.prepare("SELECT next FROM snapshot_ids").get() as { next: number };
      this.db.prepare("UPDATE snapshot_ids SET next = ?").run(next + 1);
      return Number(next);
    });
    this.#pending.add(id);
    const dir = this.dirOf(id);
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
      await this.populate(dir, kind, parents);
      const now = Date.now();
      this.db.transaction(() => {
        if (this.row(namespace, key)) {
          throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}`);
        }
        if (parents.length && this.row(namespace, parents[0].key)?.kind !== "committed") {
          throw new NotFoundError(`parent snapshot ${JSON.stringify(parent)}`);
        }
        try {
          this.db.prepare(
            "INSERT INTO snapshots (snapshotter, namespace, key, id, kind, parent, labels, " +
              "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          ).run(
            this.name,
            namespace,
            key,
            id,
            kind,
            parents[0]?.key ?? null,
            JSON.stringify(mergeLabels({}, labels)),
            now,
            now,
          );
        } catch (e) {
          if (/FOREIGN KEY/.test(String(e))) throw new NotFoundError(`namespace ${namespace}`);
          throw e;
        }
      });
    } catch (e) {
      await removeTree(dir);
      throw e;
    } finally {
      this.#pending.delete(id);
    }
    return this.mounts(namespace, key);
  }

  async commit(
    namespace: string,
    name: string,
    key: string,
    labels: Record<string, string> = {},
  ): Promise<void> {
    if (name === "") throw new InvalidArgumentError("snapshot name must not be empty");
    const r = this.need(namespace, key);
    if (r.kind !== "active") {
      throw new FailedPreconditionError(
        `snapshot ${JSON.stringify(key)} is ${r.kind}, only an active snapshot can be committed`,
      );
    }
    if (this.row(namespace, name)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(name)}`);
    const use = await diskUsage(this.fsOf(r.id));
    this.db.transaction(() => {
      const again = this.row(namespace, key);
      if (again?.kind !== "active" || again.id !== r.id) {
        throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is no longer active`);
      }
      if (this.row(namespace, name)) {
        throw new AlreadyExistsError(`snapshot ${JSON.stringify(name)}`);
      }
      const merged = mergeLabels(JSON.parse(r.labels), labels);
      this.db.prepare(
        "UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, size = ?, inodes = ?, " +
          "updated_at = ? WHERE snapshotter = ? AND namespace = ? AND key = ?",
      ).run(
        name,
        JSON.stringify(merged),
        use.size,
        use.inodes,
        Date.now(),
        this.name,
        namespace,
        key,
      );
    });
    await this.afterCommit(this.dirOf(r.id));
  }

  /** Hook after a commit (overlay drops the now useless work dir). */
  protected async afterCommit(_dir: string): Promise<void> {}

  async remove(namespace: string, key: string): Promise<void> {
    const id = this.db.transaction(() => {
      const r = this.need(namespace, key);
      const children = (this.db.prepare(
        "SELECT key FROM snapshots WHERE snapshotter = ? AND namespace = ? AND parent = ? ORDER BY key",
      ).all(this.name, namespace, key) as { key: string }[]).map((c) => c.key);
      if (children.length) {
        throw new FailedPreconditionError(
          `snapshot ${JSON.stringify(key)} has children: ${children.join(", ")}`,
        );
      }
      this.db.prepare(
        "DELETE FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
      ).run(this.name, namespace, key);
      return r.id;
    });
    const doomed = `${this.snapshotsDir}/.removed-${id}`;
    try {
      await Deno.rename(this.dirOf(id), doomed);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    await removeTree(doomed);
  }

  walk(namespace: string, filter?: (info: SnapshotInfo) => boolean): SnapshotInfo[] {
    const rows = this.db.prepare(
      "SELECT key, id, kind, parent, labels, size, inodes, created_at, updated_at FROM snapshots " +
        "WHERE snapshotter = ? AND namespace = ? ORDER BY key",
    ).all(this.name, namespace) as unknown as SnapshotRow[];
    const infos = rows.map((r) => this.#info(r));
    return filter ? infos.filter(filter) : infos;
  }

  upperDir(namespace: string, key: string): string {
    const r = this.need(namespace, key);
    if (r.kind !== "active") {
      throw new FailedPreconditionError(`snapshot ${JSON.stringify(key)} is ${r.kind}, not active`);
    }
    return this.fsOf(r.id);
  }

  async cleanup(): Promise<void> {
    const ids = new Set(
      (this.db.prepare("SELECT id FROM snapshots WHERE snapshotter = ?").all(this.name) as {
        id: number;
      }[]).map((r) => Number(r.id)),
    );
    for (const e of [...Deno.readDirSync(this.snapshotsDir)]) {
      const path = `${this.snapshotsDir}/${e.name}`;
      if (e.name.startsWith(".removed-")) {
        await removeTree(path);
        continue;
      }
      if (!/^\d+$/.test(e.name)) continue;
      const id = Number(e.name);
      if (ids.has(id) || this.#pending.has(id)) continue;
      const doomed = `${this.snapshotsDir}/.removed-${id}`;
      await Deno.rename(path, doomed);
      await removeTree(doomed);
    }
  }
}

/** Merges labels: an empty value deletes the label. */
function mergeLabels(
  base: Record<string, string>,
  add: Record<string, string>,
): Record<string, string> {
  const out = { ...base };
  for (const [k, v] of Object.entries(add)) {
    if (v === "") delete out[k];
    else out[k] = v;
  }
  return out;
}

async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Entries a usage walk reads between two turns of the event loop (a few ms of lstat here). */
export const USAGE_YIELD_EVERY = 1000;

/**
 * Disk usage of a tree, like containerd's fs.DiskUsage: allocated bytes (st_blocks × 512) and
 * inodes, each hardlinked inode counted once; symlinks are not followed. A missing root is
 * zero; an entry that goes away during the walk (a live container's files) is skipped.
 *
 * Synchronous lstat and readDir, yielding to the event loop every {@link USAGE_YIELD_EVERY}
 * entries: one async op per entry made the walk of a busybox layer (286 entries) 17–22 ms
 * against 1.2–1.8 ms, at every layer commit of a pull, while the yields keep a large tree from
 * stalling other calls.
 *
 * @example
 * ```ts
 * import { diskUsage } from "./base.ts";
 * const { size, inodes } = await diskUsage("/var/lib/k8scontainerd/snapshots/3/fs");
 * ```
 */
export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<number>();
  let size = 0;
  const stack = [root];
  for (let n = 1; stack.length > 0; n++) {
    const path = stack.pop()!;
    try {
      const st = Deno.lstatSync(path);
      const ino = st.ino ?? 0;
      if (!seen.has(ino)) {
        seen.add(ino);
        size += (st.blocks ?? 0) * 512;
      }
      if (st.isDirectory) {
        for (const e of Deno.readDirSync(path)) stack.push(`${path}/${e.name}`);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      if (path === root) return { size: 0, inodes: 0 };
    }
    if (n % USAGE_YIELD_EVERY === 0) await new Promise((r) => setTimeout(r, 0));
  }
  return { size, inodes: seen.size };
}
