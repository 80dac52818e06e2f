/**
 * The overlayfs snapshotter (containerd's "overlayfs"): each snapshot is a directory
 * `<root>/snapshots/<id>/fs` holding one layer's changes (whiteouts as 0/0 character devices,
 * opaque directories marked with `trusted.overlay.opaque=y`), plus `work` for active ones.
 * A snapshot is seen by stacking its parents' `fs` directories as overlay lower dirs.
 *
 * Mounts:
 * - active without parent: a read-write bind of its `fs`;
 * - active with parents: `overlay` with `index=off`, `lowerdir=<parent fs>:<grandparent fs>…`,
 *   `upperdir`, `workdir`;
 * - view (and committed): one layer → a read-only bind of that `fs`; several → `overlay` with
 *   only `lowerdir`.
 * When the options would exceed the 4096-byte mount data limit, the directories are written
 * relative to `<root>/snapshots` (`<id>/fs`) and the mount carries `cwd` = that directory.
 *
 * @example
 * ```ts
 * import { OverlaySnapshotter } from "./overlay.ts";
 * import { MetadataDB } from "../metadata/db.ts";
 * const sn = new OverlaySnapshotter("/var/lib/k8scontainerd/io.containerd.snapshotter.v1.overlayfs",
 *   MetadataDB.open("/var/lib/k8scontainerd/metadata.db"));
 * const mounts = await sn.prepare("k8s.io", "ctr-1-rootfs", "sha256:…chain");
 * ```
 *
 * @module
 */
import { MOUNT_DATA_MAX } from "../../ffi/mod.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import { DirSnapshotter, type SnapshotRow } from "./base.ts";
import type { Mount, SnapshotKind } from "./snapshotter.ts";

/** overlayfs-backed {@link Snapshotter}. */
export class OverlaySnapshotter extends DirSnapshotter {
  readonly name = "overlayfs";

  protected override populate(
    dir: string,
    kind: SnapshotKind,
    _parents: SnapshotRow[],
  ): Promise<void> {
    Deno.mkdirSync(`${dir}/fs`, { mode: 0o755 });
    Deno.chmodSync(`${dir}/fs`, 0o755);
    if (kind === "active") Deno.mkdirSync(`${dir}/work`, { mode: 0o700 });
    return Promise.resolve();
  }

  protected override async afterCommit(dir: string): Promise<void> {
    await Deno.remove(`${dir}/work`, { recursive: true }).catch(() => {});
  }

  protected override mountsOf(row: SnapshotRow, parents: SnapshotRow[]): Mount[] {
    if (row.kind === "active") {
      if (parents.length === 0) {
        return [{ type: "bind", source: this.fsOf(row.id), options: ["rw", "rbind"] }];
      }
      return [this.#overlay(parents.map((p) => p.id), row.id)];
    }
    // A view shows its parents; a committed snapshot shows itself on top of its parents.
    const layers = row.kind === "committed" ? [row, ...parents] : parents;
    if (layers.length === 0) {
      return [{ type: "bind", source: this.fsOf(row.id), options: ["ro", "rbind"] }];
    }
    if (layers.length === 1) {
      return [{ type: "bind", source: this.fsOf(layers[0].id), options: ["ro", "rbind"] }];
    }
    return [this.#overlay(layers.map((p) => p.id))];
  }

  /** An overlay mount over `lower` ids (top first), with `upper` id's fs/work if given. */
  #overlay(lower: number[], upper?: number): Mount {
    const build = (dir: (id: number) => string) => {
      const options = ["index=off", `lowerdir=${lower.map((id) => `${dir(id)}/fs`).join(":")}`];
      if (upper !== undefined) {
        options.push(`upperdir=${dir(upper)}/fs`, `workdir=${dir(upper)}/work`);
      }
      return options;
    };
    const fits = (o: string[]) =>
      new TextEncoder().encode(o.join(",")).length + 1 <= MOUNT_DATA_MAX;
    const absolute = build((id) => this.dirOf(id));
    if (fits(absolute)) return { type: "overlay", source: "overlay", options: absolute };
    const relative = build((id) => String(id));
    if (!fits(relative)) {
      throw new FailedPreconditionError(
        `overlay of ${lower.length} layers: mount options exceed ${MOUNT_DATA_MAX} bytes even with relative paths`,
      );
    }
    return { type: "overlay", source: "overlay", options: relative, cwd: this.snapshotsDir };
  }
}
