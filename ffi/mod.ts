/**
 * The Deno FFI syscall layer: the only code in k8scontainerd that calls `Deno.dlopen`. Every
 * failing call throws a {@link SyscallError} with the call, the path, and the errno name.
 *
 * @example
 * ```ts
 * import { isErrno, mount, MS_NOSUID, statfs, TMPFS_MAGIC } from "../ffi/mod.ts";
 * mount("tmpfs", "/mnt/x", "tmpfs", MS_NOSUID, "size=1m");
 * statfs("/mnt/x").type === TMPFS_MAGIC; // true
 * ```
 *
 * @module
 */

export * from "./errno.ts";
export * from "./file_pages.ts";
export * from "./fs.ts";
export * from "./idmap.ts";
export * from "./libc.ts";
export * from "./mount.ts";
export * from "./namespaces.ts";
export * from "./netdev.ts";
export * from "./process.ts";
export * from "./socket.ts";
export * from "./tty.ts";
export * from "./xattr.ts";
