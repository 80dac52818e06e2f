/**
 * Filesystem calls Deno does not offer: raw file descriptors (for flock and for namespace
 * files), device nodes (overlayfs whiteouts), ownership and times of symlinks themselves, and
 * statfs(2) for filesystem magic numbers.
 *
 * @module
 */

import { cstr, libc } from "./libc.ts";
import { lastError } from "./errno.ts";

const isArm64 = Deno.build.arch === "aarch64";

// open(2) flags. Most are the asm-generic values shared by x86_64 and aarch64; O_DIRECTORY,
// O_NOFOLLOW and O_DIRECT are not (aarch64 takes ARM's values: glibc
// sysdeps/unix/sysv/linux/aarch64/bits/fcntl.h, kernel arch/arm64/include/uapi/asm/fcntl.h).
/** Open for reading only. */
export const O_RDONLY = 0;
/** Open for writing only. */
export const O_WRONLY = 0o1;
/** Open for reading and writing. */
export const O_RDWR = 0o2;
/** Create the file if missing (uses `mode`). */
export const O_CREAT = 0o100;
/** With O_CREAT: fail with EEXIST if the file exists. */
export const O_EXCL = 0o200;
/** Do not make a terminal the controlling terminal. */
export const O_NOCTTY = 0o400;
/** Truncate to length 0. */
export const O_TRUNC = 0o1000;
/** Writes append. */
export const O_APPEND = 0o2000;
/** Non-blocking I/O. */
export const O_NONBLOCK = 0o4000;
/** Synchronized data integrity writes. */
export const O_DSYNC = 0o10000;
/** Synchronized file integrity writes. */
export const O_SYNC = 0o4010000;
/** Do not update the access time. */
export const O_NOATIME = 0o1000000;
/** Close on exec: keeps descriptors from leaking into runc, conmon and CNI plugins. */
export const O_CLOEXEC = 0o2000000;
/** A location-only descriptor (no read/write). */
export const O_PATH = 0o10000000;
/** Fail unless the path is a directory (x86_64 0o200000, aarch64 0o40000). */
export const O_DIRECTORY = isArm64 ? 0o40000 : 0o200000;
/** Fail with ELOOP if the last component is a symlink (x86_64 0o400000, aarch64 0o100000). */
export const O_NOFOLLOW = isArm64 ? 0o100000 : 0o400000;
/** Bypass the page cache (x86_64 0o40000, aarch64 0o200000). */
export const O_DIRECT = isArm64 ? 0o200000 : 0o40000;

/** flock: shared lock. */
export const LOCK_SH = 1;
/** flock: exclusive lock. */
export const LOCK_EX = 2;
/** flock: fail with EWOULDBLOCK (= EAGAIN) instead of waiting. */
export const LOCK_NB = 4;
/** flock: release the lock. */
export const LOCK_UN = 8;

/** File type bits of a mode: mask. */
export const S_IFMT = 0o170000;
/** File type: FIFO. */
export const S_IFIFO = 0o010000;
/** File type: character device. */
export const S_IFCHR = 0o020000;
/** File type: directory. */
export const S_IFDIR = 0o040000;
/** File type: block device. */
export const S_IFBLK = 0o060000;
/** File type: regular file. */
export const S_IFREG = 0o100000;
/** File type: symbolic link. */
export const S_IFLNK = 0o120000;
/** File type: socket. */
export const S_IFSOCK = 0o140000;

/** `dirfd` meaning "relative to the current directory". */
export const AT_FDCWD: number = -100;
/** Act on a symlink itself rather than its target. */
export const AT_SYMLINK_NOFOLLOW = 0x100;

/** statfs f_type: overlayfs. */
export const OVERLAYFS_SUPER_MAGIC = 0x794c7630;
/** statfs f_type: tmpfs. */
export const TMPFS_MAGIC = 0x01021994;
/** statfs f_type: the cgroup v2 (unified) hierarchy. */
export const CGROUP2_SUPER_MAGIC = 0x63677270;
/** statfs f_type: a cgroup v1 hierarchy. */
export const CGROUP_SUPER_MAGIC = 0x27e0eb;
/** statfs f_type: ext2/3/4. */
export const EXT4_SUPER_MAGIC = 0xef53;
/** statfs f_type: XFS ("XFSB"). */
export const XFS_SUPER_MAGIC = 0x58465342;
/** statfs f_type: btrfs. */
export const BTRFS_SUPER_MAGIC = 0x9123683e;
/** statfs f_type: procfs. */
export const PROC_SUPER_MAGIC = 0x9fa0;
/** statfs f_type: sysfs. */
export const SYSFS_MAGIC = 0x62656572;
/** statfs f_type: nsfs (namespace files such as /proc/self/ns/net and /run/netns/NAME). */
export const NSFS_MAGIC = 0x6e736673;

/**
 * Calls open(2) and returns the raw file descriptor. Deno's own files hide their descriptor,
 * so this is how the daemon gets one for flock(2) or setns(2). Pass O_CLOEXEC unless the
 * descriptor is meant for a child process. Close it with {@link close}.
 *
 * @example
 * ```ts
 * import { open, close, O_RDONLY, O_CLOEXEC, O_DIRECTORY } from "./fs.ts";
 * const fd = open("/var/lib/k8scontainerd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
 * close(fd);
 * ```
 */
export function open(path: string, flags: number, mode = 0): number {
  const fd = libc().open(cstr(path), flags, mode);
  if (fd < 0) throw lastError("open", path);
  return fd;
}

/**
 * Calls close(2). Closing an fd also drops flock(2) locks taken through it (once no other
 * descriptor shares its open file description).
 *
 * @example
 * ```ts
 * import { open, close, O_RDONLY } from "./fs.ts";
 * close(open("/etc/hostname", O_RDONLY));
 * ```
 */
export function close(fd: number): void {
  if (libc().close(fd) < 0) throw lastError("close", undefined, `fd ${fd}`);
}

/**
 * Calls fsync(2): flushes the file (or directory, to persist renames) to stable storage.
 *
 * @example
 * ```ts
 * import { open, fsync, close, O_RDONLY, O_DIRECTORY } from "./fs.ts";
 * const fd = open("/var/lib/k8scontainerd", O_RDONLY | O_DIRECTORY);
 * try { fsync(fd); } finally { close(fd); }
 * ```
 */
export function fsync(fd: number): void {
  if (libc().fsync(fd) < 0) throw lastError("fsync", undefined, `fd ${fd}`);
}

/**
 * Calls flock(2) with LOCK_SH / LOCK_EX / LOCK_UN, optionally | LOCK_NB. A non-blocking
 * attempt on a held lock throws a SyscallError with code "EAGAIN" (EWOULDBLOCK is the same
 * number). Without LOCK_NB this blocks the JS thread, so use LOCK_NB in the daemon.
 *
 * @example
 * ```ts
 * import { open, flock, O_RDONLY, O_DIRECTORY, O_CLOEXEC, LOCK_EX, LOCK_NB } from "./fs.ts";
 * const fd = open("/var/lib/k8scontainerd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
 * flock(fd, LOCK_EX | LOCK_NB); // throws EAGAIN if another daemon owns the root
 * ```
 */
export function flock(fd: number, operation: number): void {
  if (libc().flock(fd, operation) < 0) throw lastError("flock", undefined, `fd ${fd}`);
}

export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;

/**
 * Sets close-on-exec on a descriptor, so processes the daemon starts do not inherit it.
 *
 * @example
 * ```ts
 * import { setCloexec } from "./fs.ts";
 * setCloexec(5);
 * ```
 */
export function setCloexec(fd: number): void {
  const flags = libc().fcntl(fd, F_GETFD, 0);
  if (flags < 0) throw lastError("fcntl", undefined, `fd ${fd} F_GETFD`);
  if (flags & FD_CLOEXEC) return;
  if (libc().fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
    throw lastError("fcntl", undefined, `fd ${fd} F_SETFD`);
  }
}

/** close_range(2), Linux 5.11+ (asm-generic number, the same on x86_64 and arm64). */
const SYS_CLOSE_RANGE = 436n;
const CLOSE_RANGE_CLOEXEC = 4n;

/**
 * Marks every open descriptor above stderr close-on-exec. Libraries inside the daemon (the
 * Node-compatible sockets under gRPC among them) may open descriptors without it, and a
 * long-lived child such as conmon would then hold the daemon's listening socket after the
 * daemon died. Call before starting such a child. One close_range(2) call where the kernel
 * has it (a pod start made four of these: the walk of /proc/self/fd, one fcntl per descriptor,
 * grew with every pod's pipes); otherwise (or with `walk`) that walk.
 *
 * @example
 * ```ts
 * import { closeOnExecAll } from "./fs.ts";
 * closeOnExecAll();
 * ```
 */
export function closeOnExecAll(opts: { walk?: boolean } = {}): void {
  if (!opts.walk) {
    const r = libc().syscall(SYS_CLOSE_RANGE, 3n, 0xffffffffn, CLOSE_RANGE_CLOEXEC, 0n, 0n);
    if (r === 0n) return;
  }
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(e.name);
    if (!(fd > 2)) continue;
    const flags = libc().fcntl(fd, F_GETFD, 0);
    if (flags < 0 || flags & FD_CLOEXEC) continue; // closed meanwhile (the dir fd itself), or set
    libc().fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

/**
 * Encodes a device number the way glibc's makedev(3) does (12-bit major and 20-bit minor split
 * across a 64-bit dev_t).
 *
 * @example
 * ```ts
 * import { makedev } from "./fs.ts";
 * makedev(1, 3); // 259n (/dev/null)
 * ```
 */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/**
 * Decodes a dev_t (as in `Deno.FileInfo.rdev`) into major and minor numbers.
 *
 * @example
 * ```ts
 * import { majorMinor } from "./fs.ts";
 * majorMinor(259); // { major: 1, minor: 3 }
 * ```
 */
export function majorMinor(dev: number | bigint): { major: number; minor: number } {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/**
 * Calls mknod(2). `mode` is a file type (S_IFCHR, S_IFBLK, S_IFIFO, S_IFREG, S_IFSOCK) OR'd with
 * permission bits (the umask applies); `dev` comes from {@link makedev}.
 *
 * @example
 * ```ts
 * import { mknod, makedev, S_IFCHR } from "./fs.ts";
 * mknod("/run/c1/rootfs/dev/null", S_IFCHR | 0o666, makedev(1, 3));
 * ```
 */
export function mknod(path: string, mode: number, dev: number | bigint = 0): void {
  if (libc().mknod(cstr(path), mode, BigInt(dev)) < 0) throw lastError("mknod", path);
}

/**
 * Creates an overlayfs whiteout at `path`: a character device 0/0, which hides the same name in
 * the lower layers (what an OCI layer's `.wh.NAME` entry becomes when unpacked).
 *
 * @example
 * ```ts
 * import { mkWhiteout } from "./fs.ts";
 * mkWhiteout("/var/lib/k8scontainerd/snapshots/7/fs/etc/motd");
 * ```
 */
export function mkWhiteout(path: string): void {
  mknod(path, S_IFCHR | 0o000, 0);
}

/**
 * Calls lchown(2): changes the owner of `path` itself, not of a symlink's target. Pass -1 to
 * leave the uid or gid unchanged.
 *
 * @example
 * ```ts
 * import { lchown } from "./fs.ts";
 * lchown("/rootfs/usr/bin/sh", 0, 0);
 * ```
 */
export function lchown(path: string, uid: number, gid: number): void {
  // uid_t/gid_t are unsigned 32-bit: -1 becomes 0xffffffff, which means "unchanged".
  if (libc().lchown(cstr(path), uid >>> 0, gid >>> 0) < 0) throw lastError("lchown", path);
}

/** Result of {@link statfs} (struct statfs). */
export interface StatFs {
  /** Filesystem magic number; compare with the *_MAGIC constants. */
  type: number;
  /** Optimal transfer block size. */
  bsize: number;
  /** Total data blocks (in `frsize` units). */
  blocks: number;
  /** Free blocks. */
  bfree: number;
  /** Free blocks available to unprivileged users. */
  bavail: number;
  /** Total inodes. */
  files: number;
  /** Free inodes. */
  ffree: number;
  /** Filesystem ID. */
  fsid: [number, number];
  /** Maximum length of a file name. */
  namelen: number;
  /** Fragment size. */
  frsize: number;
  /** Mount flags (ST_RDONLY = 1, ST_NOSUID = 2, ...). */
  flags: number;
}

/**
 * The size of glibc's struct statfs on 64-bit Linux, the same on x86_64 and aarch64:
 * - glibc: both use the generic sysdeps/unix/sysv/linux/bits/statfs.h (here
 *   /usr/include/x86_64-linux-gnu/bits/statfs.h), whose __fsword_t, __fsblkcnt_t and
 *   __fsfilcnt_t are all 64-bit on LP64;
 * - kernel: both use asm-generic/statfs.h, where __statfs_word is __kernel_long_t on 64-bit;
 *   arm64's asm/statfs.h only adds ARCH_PACK_COMPAT_STATFS64, which packs the 32-bit compat
 *   struct, not the native one.
 * Layout: f_type@0 f_bsize@8 f_blocks@16 f_bfree@24 f_bavail@32 f_files@40 f_ffree@48
 * f_fsid@56 (two ints) f_namelen@64 f_frsize@72 f_flags@80 f_spare[4]@88, 120 bytes, all
 * little-endian. fs_test.ts cross-checks the fields against `stat -f`.
 */
const STATFS_SIZE = 120;

/**
 * Calls statfs(2): filesystem type and usage of the filesystem holding `path`.
 *
 * @example
 * ```ts
 * import { statfs, CGROUP2_SUPER_MAGIC } from "./fs.ts";
 * const unified = statfs("/sys/fs/cgroup").type === CGROUP2_SUPER_MAGIC;
 * ```
 */
export function statfs(path: string): StatFs {
  const buf = new Uint8Array(STATFS_SIZE);
  if (libc().statfs(cstr(path), buf) < 0) throw lastError("statfs", path);
  const v = new DataView(buf.buffer);
  const u64 = (off: number) => Number(v.getBigUint64(off, true));
  return {
    type: u64(0),
    bsize: u64(8),
    blocks: u64(16),
    bfree: u64(24),
    bavail: u64(32),
    files: u64(40),
    ffree: u64(48),
    fsid: [v.getInt32(56, true), v.getInt32(60, true)],
    namelen: u64(64),
    frsize: u64(72),
    flags: u64(80),
  };
}

/** How the cgroup filesystem is mounted, as `k8scontainerd doctor` reports it. */
export type CgroupMode = "v2" | "hybrid" | "v1" | "none";

/**
 * Detects the cgroup mode from filesystem magic numbers, the way runc and systemd do:
 * cgroup2 at the root means unified (v2); a tmpfs root with a cgroup2 mount at `unified/` is
 * hybrid; a tmpfs root otherwise is legacy v1.
 *
 * @example
 * ```ts
 * import { cgroupMode } from "./fs.ts";
 * if (cgroupMode() !== "v2") console.warn("cgroup v1: some limits are unavailable");
 * ```
 */
export function cgroupMode(root = "/sys/fs/cgroup"): CgroupMode {
  let type: number;
  try {
    type = statfs(root).type;
  } catch {
    return "none";
  }
  if (type === CGROUP2_SUPER_MAGIC) return "v2";
  if (type !== TMPFS_MAGIC) return "none";
  try {
    if (statfs(`${root}/unified`).type === CGROUP2_SUPER_MAGIC) return "hybrid";
  } catch { /* no unified hierarchy */ }
  return "v1";
}

/** utimensat: set this time to the current time. */
export const UTIME_NOW = (1 << 30) - 1;
/** utimensat: leave this time unchanged. */
export const UTIME_OMIT = (1 << 30) - 2;

/**
 * A file time: a Date, seconds since the epoch (fractions allowed, as `Deno.utime` takes),
 * an exact { sec, nsec } pair, or "now" / "omit".
 */
export type FileTime = Date | number | { sec: number | bigint; nsec: number } | "now" | "omit";

function writeTimespec(v: DataView, off: number, t: FileTime): void {
  let sec: bigint;
  let nsec: number;
  if (t === "now" || t === "omit") {
    sec = 0n;
    nsec = t === "now" ? UTIME_NOW : UTIME_OMIT;
  } else if (t instanceof Date) {
    const ms = t.getTime();
    sec = BigInt(Math.floor(ms / 1000));
    nsec = (ms - Math.floor(ms / 1000) * 1000) * 1_000_000;
  } else if (typeof t === "number") {
    const s = Math.floor(t);
    sec = BigInt(s);
    nsec = Math.min(999_999_999, Math.round((t - s) * 1e9));
  } else {
    sec = BigInt(t.sec);
    nsec = t.nsec;
  }
  // struct timespec { time_t tv_sec; long tv_nsec; }: two 64-bit fields on both machines.
  v.setBigInt64(off, sec, true);
  v.setBigInt64(off + 8, BigInt(nsec), true);
}

/**
 * Calls utimensat(2) relative to the current directory: sets access and modification times of
 * `path`. With `flags` = AT_SYMLINK_NOFOLLOW it sets a symlink's own times, which Deno's
 * `utime` cannot (it follows links) — needed to unpack image layers faithfully.
 *
 * @example
 * ```ts
 * import { utimensat, AT_SYMLINK_NOFOLLOW } from "./fs.ts";
 * utimensat("/rootfs/bin/sh", "omit", new Date(0), AT_SYMLINK_NOFOLLOW);
 * ```
 */
export function utimensat(path: string, atime: FileTime, mtime: FileTime, flags = 0): void {
  const buf = new Uint8Array(32);
  const v = new DataView(buf.buffer);
  writeTimespec(v, 0, atime);
  writeTimespec(v, 16, mtime);
  if (libc().utimensat(AT_FDCWD, cstr(path), buf, flags) < 0) throw lastError("utimensat", path);
}

/**
 * Sets the access and modification times of `path` without following a final symlink
 * (lutimes(3)).
 *
 * @example
 * ```ts
 * import { lutimes } from "./fs.ts";
 * lutimes("/rootfs/lib64", new Date("2020-01-01"), new Date("2020-01-01"));
 * ```
 */
export function lutimes(path: string, atime: FileTime, mtime: FileTime): void {
  utimensat(path, atime, mtime, AT_SYMLINK_NOFOLLOW);
}
