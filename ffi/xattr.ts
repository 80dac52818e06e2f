/**
 * Extended attributes of a path itself (the l* variants never follow a final symlink): image
 * layers carry xattrs (file capabilities, SELinux labels), and overlayfs marks opaque
 * directories with `trusted.overlay.opaque` = "y".
 *
 * @module
 */

import { cstr, libc, toNumber } from "./libc.ts";
import { isErrno, lastError } from "./errno.ts";

/** lsetxattr: fail with EEXIST if the attribute exists. */
export const XATTR_CREATE = 1;
/** lsetxattr: fail with ENODATA if the attribute does not exist. */
export const XATTR_REPLACE = 2;

/** The xattr overlayfs uses to mark an upper directory opaque (set it to "y"). */
export const OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque";

/**
 * Calls lsetxattr(2): sets attribute `name` (with its namespace: "user.", "trusted.",
 * "security.") of `path` to `value`. `flags` is 0, XATTR_CREATE or XATTR_REPLACE.
 *
 * @example
 * ```ts
 * import { lsetxattr, OVERLAY_OPAQUE_XATTR } from "./xattr.ts";
 * lsetxattr("/snap/3/fs/etc", OVERLAY_OPAQUE_XATTR, new TextEncoder().encode("y"));
 * ```
 */
export function lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
  // A zero-length Uint8Array may arrive as a NULL pointer, which the kernel accepts with size 0.
  const v = new Uint8Array(value);
  if (libc().lsetxattr(cstr(path), cstr(name), v, BigInt(v.length), flags) < 0) {
    throw lastError("lsetxattr", path, name);
  }
}

/**
 * Calls lgetxattr(2): the value of attribute `name` of `path`, or `null` if it is not set
 * (ENODATA). Probes the size first, then reads; retries if the value grew in between (ERANGE).
 *
 * @example
 * ```ts
 * import { lgetxattr } from "./xattr.ts";
 * const opaque = lgetxattr("/snap/3/fs/etc", "trusted.overlay.opaque"); // Uint8Array [121] or null
 * ```
 */
export function lgetxattr(path: string, name: string): Uint8Array | null {
  const p = cstr(path);
  const n = cstr(name);
  for (;;) {
    const size = toNumber(libc().lgetxattr(p, n, null, 0n));
    if (size < 0) {
      const e = lastError("lgetxattr", path, name);
      if (isErrno(e, "ENODATA")) return null;
      throw e;
    }
    if (size === 0) return new Uint8Array(0);
    const buf = new Uint8Array(size);
    const got = toNumber(libc().lgetxattr(p, n, buf, BigInt(size)));
    if (got >= 0) return buf.subarray(0, got);
    const e = lastError("lgetxattr", path, name);
    if (isErrno(e, "ENODATA")) return null; // removed in between
    if (!isErrno(e, "ERANGE")) throw e; // ERANGE: grew in between, probe again
  }
}

/**
 * Calls llistxattr(2): the names of all extended attributes of `path` that the caller may see
 * (trusted.* only as root).
 *
 * @example
 * ```ts
 * import { llistxattr } from "./xattr.ts";
 * llistxattr("/snap/3/fs/etc"); // ["trusted.overlay.opaque"]
 * ```
 */
export function llistxattr(path: string): string[] {
  const p = cstr(path);
  for (;;) {
    const size = toNumber(libc().llistxattr(p, null, 0n));
    if (size < 0) throw lastError("llistxattr", path);
    if (size === 0) return [];
    const buf = new Uint8Array(size);
    const got = toNumber(libc().llistxattr(p, buf, BigInt(size)));
    if (got < 0) {
      const e = lastError("llistxattr", path);
      if (isErrno(e, "ERANGE")) continue; // the list grew in between
      throw e;
    }
    // The list is NUL-terminated names back to back.
    return new TextDecoder().decode(buf.subarray(0, got)).split("\0").filter((s) => s !== "");
  }
}

/**
 * Calls lremovexattr(2). Throws ENODATA if the attribute is not set.
 *
 * @example
 * ```ts
 * import { lremovexattr } from "./xattr.ts";
 * lremovexattr("/snap/3/fs/etc", "trusted.overlay.opaque");
 * ```
 */
export function lremovexattr(path: string, name: string): void {
  if (libc().lremovexattr(cstr(path), cstr(name)) < 0) throw lastError("lremovexattr", path, name);
}
