/**
 * The native snapshotter, for hosts without overlayfs: every snapshot is a full copy of its
 * parent's tree (`cp -a --reflink=auto`, which keeps owners, modes, xattrs, hardlinks, device
 * nodes, symlinks and times, and shares blocks on reflink-capable filesystems) in
 * `<root>/snapshots/<id>/fs`. Layers are applied onto that copy in "native" mode (whiteouts
 * delete). Mounts are binds of that directory (read-only for views and committed snapshots).
 *
 * @example
 * ```ts
 * import { NativeSnapshotter } from "./native.ts";
 * import { MetadataDB } from "../metadata/db.ts";
 * const sn = new NativeSnapshotter("/var/lib/k8scontainerd/native", MetadataDB.open("/tmp/m.db"));
 * await sn.prepare("default", "work", undefined);
 * ```
 *
 * @module
 */
import { DirSnapshotter, type SnapshotRow } from "./base.ts";
import type { Mount, SnapshotKind } from "./snapshotter.ts";

/** Copy-based {@link Snapshotter}. */
export class NativeSnapshotter extends DirSnapshotter {
  readonly name = "native";

  protected override async populate(
    dir: string,
    _kind: SnapshotKind,
    parents: SnapshotRow[],
  ): Promise<void> {
    const fs = `${dir}/fs`;
    Deno.mkdirSync(fs, { mode: 0o755 });
    Deno.chmodSync(fs, 0o755);
    if (parents.length === 0) return;
    const src = this.fsOf(parents[0].id);
    const out = await new Deno.Command("cp", {
      args: ["-a", "--reflink=auto", "--", `${src}/.`, `${fs}/`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `copying snapshot ${parents[0].key} (${src}): cp exit ${out.code}: ${
          new TextDecoder().decode(out.stderr).trim()
        }`,
      );
    }
  }

  protected override mountsOf(row: SnapshotRow, _parents: SnapshotRow[]): Mount[] {
    const rw = row.kind === "active" ? "rw" : "ro";
    return [{ type: "bind", source: this.fsOf(row.id), options: [rw, "rbind"] }];
  }
}
