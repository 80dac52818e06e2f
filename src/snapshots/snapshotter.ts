/**
 * Snapshotter: the role that turns layers into mountable filesystems (containerd's
 * snapshots.Snapshotter). Lifecycle of a key:
 *   prepare(key, parent) → an "active" writable snapshot on top of a committed parent
 *   view(key, parent)    → a read-only "view" of a committed parent
 *   commit(name, key)    → the active snapshot becomes the committed, immutable `name`
 *   remove(key)          → gone (a committed one only when nothing has it as parent)
 * `mounts(key)` says what to mount to see the snapshot. Keys are per namespace; the bytes live
 * under the snapshotter's root in directories named by a numeric id.
 */

export type SnapshotKind = "view" | "active" | "committed";

export interface SnapshotInfo {
  key: string;
  kind: SnapshotKind;
  /** The committed parent's key, if any. */
  parent?: string;
  labels: Record<string, string>;
  created: Date;
  updated: Date;
}

/** One mount, in the OCI runtime spec's shape ({type, source, options}). */
export interface Mount {
  type: string;
  source: string;
  /** Where it goes, relative to the container rootfs; empty means the rootfs itself. */
  target?: string;
  options: string[];
  /**
   * Directory to chdir into while mounting, for relative paths in `options` (overlay lowerdir
   * lists too long for the 4096-byte mount data limit are written relative to the
   * snapshotter's `snapshots` directory). `mountAll` in mount.ts honours it.
   */
  cwd?: string;
}

export interface Usage {
  /** Bytes used by this snapshot's own layer (not its parents). */
  size: number;
  inodes: number;
}

export interface Snapshotter {
  /** "overlayfs" or "native". */
  readonly name: string;
  stat(namespace: string, key: string): SnapshotInfo;
  /** Updates labels (merging; an empty value deletes a label). */
  update(namespace: string, key: string, labels: Record<string, string>): SnapshotInfo;
  usage(namespace: string, key: string): Promise<Usage>;
  mounts(namespace: string, key: string): Mount[];
  prepare(
    namespace: string,
    key: string,
    parent?: string,
    labels?: Record<string, string>,
  ): Promise<Mount[]>;
  view(
    namespace: string,
    key: string,
    parent?: string,
    labels?: Record<string, string>,
  ): Promise<Mount[]>;
  commit(
    namespace: string,
    name: string,
    key: string,
    labels?: Record<string, string>,
  ): Promise<void>;
  remove(namespace: string, key: string): Promise<void>;
  walk(namespace: string, filter?: (info: SnapshotInfo) => boolean): SnapshotInfo[];
  /**
   * The directory an active snapshot's changes are written to — where a layer is applied
   * when unpacking (the overlay upper dir; for native, the whole copied tree).
   */
  upperDir(namespace: string, key: string): string;
  /** Removes directories no snapshot row refers to (after a crash mid-prepare/remove). */
  cleanup(): Promise<void>;
}
