/**
 * mount(2), umount2(2) and the helpers the snapshotter and the sandbox code need: overlay and
 * bind mounts, propagation changes, and a parser for /proc/self/mountinfo.
 *
 * @module
 */

import { cstr, cstrOrNull, libc } from "./libc.ts";
import { lastError } from "./errno.ts";

// Mount flags from <sys/mount.h> (identical on x86_64 and aarch64).
/** Mount read-only. */
export const MS_RDONLY = 0x1;
/** Ignore set-user-ID and set-group-ID bits. */
export const MS_NOSUID = 0x2;
/** Disallow access to device special files. */
export const MS_NODEV = 0x4;
/** Disallow program execution. */
export const MS_NOEXEC = 0x8;
/** Writes are synced at once. */
export const MS_SYNCHRONOUS = 0x10;
/** Alter flags of a mounted filesystem. */
export const MS_REMOUNT = 0x20;
/** Allow mandatory locks (ignored by current kernels). */
export const MS_MANDLOCK = 0x40;
/** Directory modifications are synchronous. */
export const MS_DIRSYNC = 0x80;
/** Do not follow symlinks in the target (kernel >= 5.10). */
export const MS_NOSYMFOLLOW = 0x100;
/** Do not update access times. */
export const MS_NOATIME = 0x400;
/** Do not update directory access times. */
export const MS_NODIRATIME = 0x800;
/** Bind mount: make a file or tree visible at another place. */
export const MS_BIND = 0x1000;
/** Move a mount to another place. */
export const MS_MOVE = 0x2000;
/** Recursive: with MS_BIND, also bind submounts; with propagation flags, apply to the tree. */
export const MS_REC = 0x4000;
/** Suppress some kernel warnings. */
export const MS_SILENT = 0x8000;
/** Propagation: never receive nor send mount events. */
export const MS_UNBINDABLE = 1 << 17;
/** Propagation: no events in either direction. */
export const MS_PRIVATE = 1 << 18;
/** Propagation: receive events from the master, send none. */
export const MS_SLAVE = 1 << 19;
/** Propagation: share events with the peer group. */
export const MS_SHARED = 1 << 20;
/** Update access times relative to modify/change times (the kernel default). */
export const MS_RELATIME = 1 << 21;
/** Always update access times. */
export const MS_STRICTATIME = 1 << 24;
/** Update times lazily (in memory). */
export const MS_LAZYTIME = 1 << 25;

/** umount2: force unmount even if busy (mostly for NFS). */
export const MNT_FORCE = 0x1;
/** umount2: lazy unmount — detach now, clean up when no longer busy. */
export const MNT_DETACH = 0x2;
/** umount2: mark as expired. */
export const MNT_EXPIRE = 0x4;
/** umount2: do not dereference the target if it is a symlink. */
export const UMOUNT_NOFOLLOW = 0x8;

/**
 * The largest mount data (options string) the legacy mount(2) interface accepts: the kernel
 * copies at most one page of it (copy_mount_options). 4096 bytes including the terminating NUL
 * is the page size on x86_64 and the smallest on aarch64, so it is the portable limit.
 */
export const MOUNT_DATA_MAX = 4096;

/**
 * Calls mount(2). `flags` is an OR of the MS_* constants; `data` is the filesystem-specific
 * options string. Throws a {@link SyscallError} naming `target` on failure.
 *
 * @example
 * ```ts
 * import { mount, MS_NOSUID } from "./mount.ts";
 * mount("tmpfs", "/mnt/scratch", "tmpfs", MS_NOSUID, "size=16m,mode=0755");
 * ```
 */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data?: string,
): void {
  const d = cstrOrNull(data);
  if (d && d.length > MOUNT_DATA_MAX) throw new MountDataTooLongError(target, d.length);
  const rc = libc().mount(cstrOrNull(source), cstr(target), cstrOrNull(fstype), BigInt(flags), d);
  if (rc < 0) throw lastError("mount", target);
}

/**
 * Calls umount2(2) with MNT_* / UMOUNT_* flags.
 *
 * @example
 * ```ts
 * import { umount2, MNT_DETACH } from "./mount.ts";
 * umount2("/mnt/scratch", MNT_DETACH);
 * ```
 */
export function umount2(target: string, flags = 0): void {
  if (libc().umount2(cstr(target), flags) < 0) throw lastError("umount2", target);
}

/**
 * Thrown when mount options exceed {@link MOUNT_DATA_MAX}: the kernel would silently truncate
 * them (or reject them with a confusing error). Overlays with many layers hit this; the caller
 * then mounts with paths relative to a chdir'd directory to shorten the lowerdir list.
 */
export class MountDataTooLongError extends Error {
  /** The mount point that was being mounted. */
  readonly target: string;
  /** Bytes the options needed, including the terminating NUL. */
  readonly length: number;
  /** The limit: {@link MOUNT_DATA_MAX}. */
  readonly limit: number = MOUNT_DATA_MAX;

  /** `length` counts the options' bytes plus the terminating NUL. */
  constructor(target: string, length: number) {
    super(
      `mount ${target}: options are ${length} bytes (with NUL), over the ${MOUNT_DATA_MAX}-byte ` +
        `page-size limit of mount(2) data; shorten them, e.g. with lowerdir paths relative to a ` +
        `chdir'd parent directory`,
    );
    this.name = "MountDataTooLongError";
    this.target = target;
    this.length = length;
  }
}

/** What {@link mountOverlay} mounts. */
export interface OverlayOptions {
  /** Lower directories, top-most first (overlayfs's lowerdir order). At least one. */
  lower: string[];
  /** Writable upper directory; omit (together with `work`) for a read-only overlay. */
  upper?: string;
  /** Work directory on the same filesystem as `upper`, empty. */
  work?: string;
  /** Where to mount. */
  target: string;
  /** Extra options appended verbatim, e.g. ["index=off", "redirect_dir=off"]. */
  extra?: string[];
  /** MS_* flags, e.g. MS_RDONLY. */
  flags?: number;
}

/**
 * Builds the overlayfs options string for {@link mountOverlay} without mounting; throws
 * {@link MountDataTooLongError} if it would not fit in {@link MOUNT_DATA_MAX}.
 *
 * @example
 * ```ts
 * import { overlayOptions } from "./mount.ts";
 * overlayOptions({ lower: ["/l2", "/l1"], upper: "/u", work: "/w", target: "/m" });
 * // "lowerdir=/l2:/l1,upperdir=/u,workdir=/w"
 * ```
 */
export function overlayOptions(o: OverlayOptions): string {
  if (o.lower.length === 0) throw new TypeError("mountOverlay: at least one lower directory");
  if ((o.upper === undefined) !== (o.work === undefined)) {
    throw new TypeError("mountOverlay: upper and work go together");
  }
  // ':' separates lowers and ',' separates options; overlayfs's backslash escapes differ across
  // kernel versions, so such paths are refused rather than guessed at.
  for (const p of [...o.lower, o.upper ?? "", o.work ?? ""]) {
    if (/[:,]/.test(p)) throw new TypeError(`mountOverlay: path contains ':' or ',': ${p}`);
  }
  const parts = [`lowerdir=${o.lower.join(":")}`];
  if (o.upper !== undefined) parts.push(`upperdir=${o.upper}`, `workdir=${o.work}`);
  parts.push(...(o.extra ?? []));
  const data = parts.join(",");
  const length = new TextEncoder().encode(data).length + 1;
  if (length > MOUNT_DATA_MAX) throw new MountDataTooLongError(o.target, length);
  return data;
}

/**
 * Mounts an overlay filesystem. Options longer than {@link MOUNT_DATA_MAX} fail with
 * {@link MountDataTooLongError} before any syscall (see there for the workaround).
 *
 * @example
 * ```ts
 * import { mountOverlay } from "./mount.ts";
 * mountOverlay({ lower: ["/s/2/fs", "/s/1/fs"], upper: "/s/3/fs", work: "/s/3/work", target: "/m" });
 * ```
 */
export function mountOverlay(o: OverlayOptions): void {
  mount("overlay", o.target, "overlay", o.flags ?? 0, overlayOptions(o));
}

/** Options of {@link bindMount}. */
export interface BindOptions {
  /** Also bind the mounts below `src` (MS_REC). */
  recursive?: boolean;
  /** Make the new mount read-only (needs a second, remount call). */
  readonly?: boolean;
}

/**
 * Bind-mounts `src` onto `dst` (a directory onto a directory, a file onto a file). A read-only
 * bind takes two calls because the kernel ignores MS_RDONLY on the initial MS_BIND; the remount
 * keeps nosuid/nodev/noexec of the new mount (they can be locked, and dropping them would fail
 * inside user namespaces). If the remount fails the bind is undone rather than left writable.
 *
 * @example
 * ```ts
 * import { bindMount } from "./mount.ts";
 * bindMount("/var/lib/app/etc-hosts", "/run/c1/rootfs/etc/hosts", { readonly: true });
 * ```
 */
export function bindMount(src: string, dst: string, opts: BindOptions = {}): void {
  mount(src, dst, null, MS_BIND | (opts.recursive ? MS_REC : 0));
  if (!opts.readonly) return;
  try {
    mount(null, dst, null, MS_REMOUNT | MS_BIND | MS_RDONLY | lockedFlags(dst));
  } catch (e) {
    try {
      umount2(dst, MNT_DETACH);
    } catch { /* report the remount error, not this one */ }
    throw e;
  }
}

/** The per-mount flags of the top-most mount at `path` that a bind remount must keep. */
function lockedFlags(path: string): number {
  const real = Deno.realPathSync(path);
  const entry = mountInfo().findLast((m) => m.mountPoint === real);
  if (!entry) return 0;
  let flags = 0;
  for (const opt of entry.options) {
    if (opt === "nosuid") flags |= MS_NOSUID;
    else if (opt === "nodev") flags |= MS_NODEV;
    else if (opt === "noexec") flags |= MS_NOEXEC;
    else if (opt === "noatime") flags |= MS_NOATIME;
    else if (opt === "nodiratime") flags |= MS_NODIRATIME;
    else if (opt === "relatime") flags |= MS_RELATIME;
    else if (opt === "strictatime") flags |= MS_STRICTATIME;
  }
  return flags;
}

function propagate(target: string, flag: number, recursive: boolean): void {
  mount(null, target, null, flag | (recursive ? MS_REC : 0));
}

/**
 * Makes a mount (and with `recursive`, its submounts) private: mount events no longer
 * propagate in or out.
 *
 * @example
 * ```ts
 * import { makePrivate } from "./mount.ts";
 * makePrivate("/mnt/scratch", true);
 * ```
 */
export function makePrivate(target: string, recursive = false): void {
  propagate(target, MS_PRIVATE, recursive);
}

/**
 * Makes a mount shared: mounts below it propagate to its peers (how /run/netns is set up so
 * namespace files stay visible in other mount namespaces).
 *
 * @example
 * ```ts
 * import { makeShared } from "./mount.ts";
 * makeShared("/run/netns", true);
 * ```
 */
export function makeShared(target: string, recursive = false): void {
  propagate(target, MS_SHARED, recursive);
}

/**
 * Makes a mount a slave: it receives events from its master but sends none back.
 *
 * @example
 * ```ts
 * import { makeSlave } from "./mount.ts";
 * makeSlave("/", true);
 * ```
 */
export function makeSlave(target: string, recursive = false): void {
  propagate(target, MS_SLAVE, recursive);
}

/**
 * Makes a mount unbindable (and private).
 *
 * @example
 * ```ts
 * import { makeUnbindable } from "./mount.ts";
 * makeUnbindable("/mnt/scratch");
 * ```
 */
export function makeUnbindable(target: string, recursive = false): void {
  propagate(target, MS_UNBINDABLE, recursive);
}

/** One line of /proc/self/mountinfo (see proc(5)), with octal escapes decoded. */
export interface MountInfo {
  /** Unique mount ID. */
  id: number;
  /** ID of the parent mount. */
  parent: number;
  /** Device major number of the filesystem. */
  major: number;
  /** Device minor number of the filesystem. */
  minor: number;
  /** Path within the filesystem that forms the root of this mount (not "/" for binds). */
  root: string;
  /** Where it is mounted, relative to the process's root. */
  mountPoint: string;
  /** Per-mount options, e.g. ["rw", "nosuid", "relatime"]. */
  options: string[];
  /** Optional fields, e.g. ["shared:1"], ["master:3"], ["unbindable"]; often empty. */
  optional: string[];
  /** The peer group ID from "shared:N", if shared. */
  shared?: number;
  /** The master peer group ID from "master:N", if a slave. */
  master?: number;
  /** Filesystem type, e.g. "overlay" (with subtype as "fuse.sshfs"). */
  fsType: string;
  /** Mount source, e.g. "/dev/sda1", "tmpfs", "overlay". */
  source: string;
  /** Per-superblock options, e.g. ["rw", "lowerdir=/a:/b", ...]. */
  superOptions: string[];
}

/**
 * Decodes the octal escapes mountinfo uses for space, tab, newline and backslash (`\040`…).
 *
 * @example
 * ```ts
 * import { unescapeMountField } from "./mount.ts";
 * unescapeMountField("/mnt/a\\040b"); // "/mnt/a b"
 * ```
 */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parses the text of a mountinfo file.
 *
 * @example
 * ```ts
 * import { parseMountInfo } from "./mount.ts";
 * parseMountInfo("22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw\n")[0].shared; // 5
 * ```
 */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0 || f.length < sep + 4) throw new Error(`mountinfo: malformed line: ${line}`);
    const [major, minor] = f[2].split(":").map(Number);
    const optional = f.slice(6, sep);
    const tag = (name: string) => {
      const v = optional.find((o) => o.startsWith(`${name}:`));
      return v === undefined ? undefined : Number(v.slice(name.length + 1));
    };
    const m: MountInfo = {
      id: Number(f[0]),
      parent: Number(f[1]),
      major,
      minor,
      root: unescapeMountField(f[3]),
      mountPoint: unescapeMountField(f[4]),
      options: f[5].split(","),
      optional,
      fsType: unescapeMountField(f[sep + 1]),
      source: unescapeMountField(f[sep + 2]),
      superOptions: unescapeMountField(f.slice(sep + 3).join(" ")).split(","),
    };
    const shared = tag("shared");
    const master = tag("master");
    if (shared !== undefined) m.shared = shared;
    if (master !== undefined) m.master = master;
    out.push(m);
  }
  return out;
}

/**
 * The mounts of the calling process's mount namespace, in mount order (parents before
 * children; the last entry for a mount point is the visible one).
 *
 * @example
 * ```ts
 * import { mountInfo } from "./mount.ts";
 * const overlays = mountInfo().filter((m) => m.fsType === "overlay");
 * ```
 */
export function mountInfo(file = "/proc/self/mountinfo"): MountInfo[] {
  return parseMountInfo(Deno.readTextFileSync(file));
}

/**
 * True when `path` (symlinks resolved) is a mount point, bind mounts of directories on the
 * same filesystem included (a device-number comparison with the parent would miss those).
 * A missing path is not a mount point.
 *
 * @example
 * ```ts
 * import { isMountPoint } from "./mount.ts";
 * isMountPoint("/proc"); // true
 * ```
 */
export function isMountPoint(path: string): boolean {
  let real: string;
  try {
    real = Deno.realPathSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  return mountInfo().some((m) => m.mountPoint === real);
}
