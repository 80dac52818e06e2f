/**
 * Mounting what a snapshotter returns: `mountAll(mounts, target)` turns each {@link Mount}'s
 * options into MS_* flags plus a data string and calls mount(2) through the FFI layer;
 * `unmountAll(target)` takes everything at `target` down again.
 *
 * A mount with `cwd` (an overlay whose lowerdir list only fits the 4096-byte data limit as
 * relative paths) is made after chdir(cwd), and the previous working directory is restored in
 * a `finally`. The chdir is process-wide, so the chdir → mount → chdir back sequence is kept
 * synchronous (no await in between): no other JavaScript runs meanwhile. Code elsewhere in
 * the daemon should use absolute paths anyway.
 *
 * @example
 * ```ts
 * import { mountAll, unmountAll } from "./mount.ts";
 * mountAll(await snapshotter.prepare("k8s.io", "c1", chainID), "/run/k8scontainerd/c1/rootfs");
 * unmountAll("/run/k8scontainerd/c1/rootfs");
 * ```
 *
 * @module
 */
import {
  isErrno,
  MNT_DETACH,
  mount,
  MOUNT_DATA_MAX,
  MountDataTooLongError,
  MS_BIND,
  MS_DIRSYNC,
  MS_LAZYTIME,
  MS_MANDLOCK,
  MS_NOATIME,
  MS_NODEV,
  MS_NODIRATIME,
  MS_NOEXEC,
  MS_NOSUID,
  MS_NOSYMFOLLOW,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_RELATIME,
  MS_REMOUNT,
  MS_SHARED,
  MS_SLAVE,
  MS_STRICTATIME,
  MS_SYNCHRONOUS,
  MS_UNBINDABLE,
  umount2,
} from "../../ffi/mod.ts";
import type { Mount } from "./snapshotter.ts";

/** Option word → [clear instead of set, flag] (as mount(8) and containerd read them). */
const FLAGS: Record<string, [boolean, number]> = {
  async: [true, MS_SYNCHRONOUS],
  atime: [true, MS_NOATIME],
  bind: [false, MS_BIND],
  defaults: [false, 0],
  dev: [true, MS_NODEV],
  diratime: [true, MS_NODIRATIME],
  dirsync: [false, MS_DIRSYNC],
  exec: [true, MS_NOEXEC],
  lazytime: [false, MS_LAZYTIME],
  mand: [false, MS_MANDLOCK],
  noatime: [false, MS_NOATIME],
  nodev: [false, MS_NODEV],
  nodiratime: [false, MS_NODIRATIME],
  noexec: [false, MS_NOEXEC],
  nolazytime: [true, MS_LAZYTIME],
  nomand: [true, MS_MANDLOCK],
  norelatime: [true, MS_RELATIME],
  nostrictatime: [true, MS_STRICTATIME],
  nosuid: [false, MS_NOSUID],
  nosymfollow: [false, MS_NOSYMFOLLOW],
  rbind: [false, MS_BIND | MS_REC],
  relatime: [false, MS_RELATIME],
  remount: [false, MS_REMOUNT],
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  strictatime: [false, MS_STRICTATIME],
  suid: [true, MS_NOSUID],
  sync: [false, MS_SYNCHRONOUS],
};

/** Propagation option words, applied with a second mount(2) call after the mount. */
const PROPAGATION: Record<string, number> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

/** A Mount's options split into mount(2) arguments. */
export interface ParsedOptions {
  flags: number;
  propagation: number[];
  /** Filesystem-specific options joined with "," ("" when none). */
  data: string;
}

/**
 * Splits mount options into MS_* flags, propagation changes and the data string.
 *
 * @example
 * ```ts
 * import { parseMountOptions } from "./mount.ts";
 * parseMountOptions(["ro", "nosuid", "lowerdir=/a:/b"]); // { flags: 3, propagation: [], data: "lowerdir=/a:/b" }
 * ```
 */
export function parseMountOptions(options: string[]): ParsedOptions {
  let flags = 0;
  const propagation: number[] = [];
  const data: string[] = [];
  for (const o of options) {
    const f = FLAGS[o];
    if (f) {
      flags = f[0] ? flags & ~f[1] : flags | f[1];
    } else if (o in PROPAGATION) {
      propagation.push(PROPAGATION[o]);
    } else if (o !== "") {
      data.push(o);
    }
  }
  return { flags, propagation, data: data.join(",") };
}

/**
 * Mounts `mounts` in order at `target` (each at `target` + its own `target`, if any). Binds
 * get a second remount call for ro/nosuid/nodev/noexec (the kernel ignores them on the first);
 * other types (overlay, tmpfs, …) are mounted with the data string. On failure the mounts made
 * so far are undone and the error is thrown.
 *
 * @example
 * ```ts
 * import { mountAll } from "./mount.ts";
 * mountAll([{ type: "tmpfs", source: "tmpfs", options: ["nosuid", "size=1m"] }], "/mnt/x");
 * ```
 */
export function mountAll(mounts: Mount[], target: string): void {
  const done: string[] = [];
  try {
    for (const m of mounts) {
      const dest = m.target
        ? `${target.replace(/\/+$/, "")}/${m.target.replace(/^\/+/, "")}`
        : target;
      mountOne(m, dest);
      done.push(dest);
    }
  } catch (e) {
    for (const d of done.reverse()) {
      try {
        umount2(d, MNT_DETACH);
      } catch { /* report the mount error */ }
    }
    throw e;
  }
}

function mountOne(m: Mount, dest: string): void {
  const { flags, propagation, data } = parseMountOptions(m.options);
  if (m.type === "bind" || (flags & MS_BIND) !== 0) {
    mount(m.source, dest, null, MS_BIND | (flags & MS_REC));
    const extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    try {
      if (extra !== 0) mount(null, dest, null, MS_REMOUNT | MS_BIND | extra);
      for (const p of propagation) mount(null, dest, null, p);
    } catch (e) {
      try {
        umount2(dest, MNT_DETACH);
      } catch { /* report the first error */ }
      throw e;
    }
    return;
  }
  const length = new TextEncoder().encode(data).length + 1;
  if (length > MOUNT_DATA_MAX) throw new MountDataTooLongError(dest, length);
  if (m.cwd !== undefined) {
    // Relative paths in `data` resolve against the cwd at mount(2) time; keep it synchronous.
    const absDest = dest.startsWith("/") ? dest : `${Deno.cwd()}/${dest}`;
    const previous = Deno.cwd();
    Deno.chdir(m.cwd);
    try {
      mount(m.source, absDest, m.type, flags, data || undefined);
    } finally {
      Deno.chdir(previous);
    }
  } else {
    mount(m.source, dest, m.type, flags, data || undefined);
  }
  try {
    for (const p of propagation) mount(null, dest, null, p);
  } catch (e) {
    try {
      umount2(dest, MNT_DETACH);
    } catch { /* report the first error */ }
    throw e;
  }
}

/**
 * Unmounts everything stacked at `target` (top first). A busy mount is detached (MNT_DETACH)
 * instead. A path that is not a mount point is left alone.
 *
 * @example
 * ```ts
 * import { unmountAll } from "./mount.ts";
 * unmountAll("/run/k8scontainerd/c1/rootfs");
 * ```
 */
export function unmountAll(target: string): void {
  // umount2 answers EINVAL once nothing is mounted at target: that ends the loop without
  // reading /proc/self/mountinfo, which grows with every pod on the node (two reads per
  // container removal were 1.6 ms of daemon CPU per pod with one pod running).
  for (let i = 0; i < 64; i++) {
    try {
      umount2(target);
    } catch (e) {
      if (isErrno(e, "EINVAL") || isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return;
      if (!isErrno(e, "EBUSY")) throw e;
      umount2(target, MNT_DETACH);
    }
  }
}
