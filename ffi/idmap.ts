/**
 * The new mount API (open_tree, mount_setattr, move_mount) for what mount(2) cannot do:
 * idmapped mounts (a tree seen through a user namespace's uid/gid mapping, so a container root
 * mapped to host uid 100000 owns the image's root-owned files) and recursive mount attributes.
 *
 * The three calls are numbered alike on x86_64 and aarch64 (asm-generic's shared table from
 * 424 on) and glibc 2.36 is the first with wrappers, so they go through `syscall(2)`.
 *
 * @module
 */

import { cstr, libc } from "./libc.ts";
import { lastError } from "./errno.ts";
import { close, O_CLOEXEC, O_RDONLY, open } from "./fs.ts";

const SYS_OPEN_TREE = 428n;
const SYS_MOVE_MOUNT = 429n;
const SYS_MOUNT_SETATTR = 442n;
const AT_FDCWD = -100n;
const AT_EMPTY_PATH = 0x1000n;
/** open_tree / mount_setattr: the whole tree below, not only the top mount. */
const AT_RECURSIVE = 0x8000n;
const OPEN_TREE_CLONE = 1n;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4n;

/** mount_setattr: read-only. */
export const MOUNT_ATTR_RDONLY = 0x1;
/** mount_setattr: idmap the mount through `usernsFd`'s mappings. */
export const MOUNT_ATTR_IDMAP = 0x100000;

function ptr(b: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>)));
}

/** struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; } */
function mountAttr(set: number, usernsFd = 0): Uint8Array {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(set), true);
  v.setBigUint64(24, BigInt(usernsFd), true);
  return b;
}

function openTreeClone(path: string, recursive: boolean): number {
  const p = cstr(path);
  const flags = OPEN_TREE_CLONE | BigInt(O_CLOEXEC) | (recursive ? AT_RECURSIVE : 0n);
  const fd = Number(libc().syscall(SYS_OPEN_TREE, AT_FDCWD, ptr(p), flags, 0n, 0n));
  if (fd < 0) throw lastError("open_tree", path);
  return fd;
}

function setAttr(fd: number, attr: Uint8Array, recursive: boolean, path: string): void {
  const empty = cstr("");
  const flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0n);
  const rc = Number(
    libc().syscall(SYS_MOUNT_SETATTR, BigInt(fd), ptr(empty), flags, ptr(attr), 32n),
  );
  if (rc < 0) throw lastError("mount_setattr", path);
}

function moveMount(fd: number, target: string): void {
  const empty = cstr("");
  const t = cstr(target);
  const rc = Number(
    libc().syscall(
      SYS_MOVE_MOUNT,
      BigInt(fd),
      ptr(empty),
      AT_FDCWD,
      ptr(t),
      MOVE_MOUNT_F_EMPTY_PATH,
    ),
  );
  if (rc < 0) throw lastError("move_mount", target);
}

/**
 * Mounts `source` at `target` idmapped through the user namespace `usernsPath` names
 * (/proc/<pid>/ns/user): files owned by host uid N appear owned by the mapped id. `readonly`
 * makes the new mount read-only as well (an image layer: nothing may write through it, and a
 * stray recursive delete of the target fails instead of emptying the layer). Not recursive:
 * submounts of `source` are not carried along.
 *
 * @example
 * ```ts
 * import { idmappedBind } from "./idmap.ts";
 * idmappedBind("/var/lib/k8scontainerd/snapshots/overlayfs/3/fs", "/run/c1/lower/0", "/proc/4242/ns/user", true);
 * ```
 */
export function idmappedBind(
  source: string,
  target: string,
  usernsPath: string,
  readonly: boolean,
): void {
  const ns = open(usernsPath, O_RDONLY | O_CLOEXEC);
  try {
    const fd = openTreeClone(source, false);
    try {
      setAttr(
        fd,
        mountAttr(MOUNT_ATTR_IDMAP | (readonly ? MOUNT_ATTR_RDONLY : 0), ns),
        false,
        source,
      );
      moveMount(fd, target);
    } finally {
      close(fd);
    }
  } finally {
    close(ns);
  }
}

/**
 * Whether the filesystem holding `path` can be idmapped through `usernsPath` (kernel ≥ 5.12 and
 * a filesystem that allows it: ext4, xfs, btrfs, tmpfs since 6.3 …): clones the mount and sets
 * the attribute on the detached copy, which is never attached anywhere.
 *
 * @example
 * ```ts
 * import { idmapSupported } from "./idmap.ts";
 * idmapSupported("/var/lib", "/proc/4242/ns/user"); // true on ext4 with a recent kernel
 * ```
 */
export function idmapSupported(path: string, usernsPath: string): boolean {
  try {
    const ns = open(usernsPath, O_RDONLY | O_CLOEXEC);
    try {
      const fd = openTreeClone(path, false);
      try {
        setAttr(fd, mountAttr(MOUNT_ATTR_IDMAP, ns), false, path);
        return true;
      } finally {
        close(fd);
      }
    } finally {
      close(ns);
    }
  } catch {
    return false;
  }
}

/**
 * Whether this kernel has mount_setattr(2) (5.12+), which recursive read-only mounts need:
 * called with an invalid fd it answers EBADF when present, ENOSYS when not.
 *
 * @example
 * ```ts
 * import { mountSetattrSupported } from "./idmap.ts";
 * mountSetattrSupported(); // true on 5.12+
 * ```
 */
export function mountSetattrSupported(): boolean {
  const empty = cstr("");
  const attr = mountAttr(0);
  const rc = Number(
    libc().syscall(SYS_MOUNT_SETATTR, -1n, ptr(empty), AT_EMPTY_PATH, ptr(attr), 32n),
  );
  if (rc >= 0) return true;
  return lastError("mount_setattr").errno !== 38; // ENOSYS
}
