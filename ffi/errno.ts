/**
 * errno values as names, and the typed error every `ffi/` call throws when libc fails.
 *
 * The numbers are Linux's asm-generic set, which both x86_64 and aarch64 use unchanged (only
 * alpha, mips, parisc and sparc have their own), so one table serves both supported machines.
 *
 * @module
 */

import { errno as readErrno, strerror } from "./libc.ts";

/**
 * errno names to numbers (Linux asm-generic/errno-base.h and errno.h), plus the aliases
 * EWOULDBLOCK (= EAGAIN), ENOTSUP (= EOPNOTSUPP) and EDEADLOCK (= EDEADLK).
 *
 * @example
 * ```ts
 * import { ERRNO } from "./errno.ts";
 * ERRNO.ENOENT; // 2
 * ```
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  ENOTBLK: 15,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  EPIPE: 32,
  EDOM: 33,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENOMSG: 42,
  EIDRM: 43,
  ECHRNG: 44,
  EL2NSYNC: 45,
  EL3HLT: 46,
  EL3RST: 47,
  ELNRNG: 48,
  EUNATCH: 49,
  ENOCSI: 50,
  EL2HLT: 51,
  EBADE: 52,
  EBADR: 53,
  EXFULL: 54,
  ENOANO: 55,
  EBADRQC: 56,
  EBADSLT: 57,
  EBFONT: 59,
  ENOSTR: 60,
  ENODATA: 61,
  ETIME: 62,
  ENOSR: 63,
  ENONET: 64,
  ENOPKG: 65,
  EREMOTE: 66,
  ENOLINK: 67,
  EADV: 68,
  ESRMNT: 69,
  ECOMM: 70,
  EPROTO: 71,
  EMULTIHOP: 72,
  EDOTDOT: 73,
  EBADMSG: 74,
  EOVERFLOW: 75,
  ENOTUNIQ: 76,
  EBADFD: 77,
  EREMCHG: 78,
  ELIBACC: 79,
  ELIBBAD: 80,
  ELIBSCN: 81,
  ELIBMAX: 82,
  ELIBEXEC: 83,
  EILSEQ: 84,
  ERESTART: 85,
  ESTRPIPE: 86,
  EUSERS: 87,
  ENOTSOCK: 88,
  EDESTADDRREQ: 89,
  EMSGSIZE: 90,
  EPROTOTYPE: 91,
  ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93,
  ESOCKTNOSUPPORT: 94,
  EOPNOTSUPP: 95,
  EPFNOSUPPORT: 96,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ENETRESET: 102,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  EISCONN: 106,
  ENOTCONN: 107,
  ESHUTDOWN: 108,
  ETOOMANYREFS: 109,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTDOWN: 112,
  EHOSTUNREACH: 113,
  EALREADY: 114,
  EINPROGRESS: 115,
  ESTALE: 116,
  EUCLEAN: 117,
  ENOTNAM: 118,
  ENAVAIL: 119,
  EISNAM: 120,
  EREMOTEIO: 121,
  EDQUOT: 122,
  ENOMEDIUM: 123,
  EMEDIUMTYPE: 124,
  ECANCELED: 125,
  ENOKEY: 126,
  EKEYEXPIRED: 127,
  EKEYREVOKED: 128,
  EKEYREJECTED: 129,
  EOWNERDEAD: 130,
  ENOTRECOVERABLE: 131,
  ERFKILL: 132,
  EHWPOISON: 133,
  EWOULDBLOCK: 11,
  ENOTSUP: 95,
  EDEADLOCK: 35,
} as const;

/** The name of an errno value, e.g. "ENOENT". */
export type ErrnoName = keyof typeof ERRNO;

const ALIASES: ReadonlySet<string> = new Set(["EWOULDBLOCK", "ENOTSUP", "EDEADLOCK"]);

/**
 * errno numbers to their canonical names (aliases map to their primary name: 11 is "EAGAIN").
 *
 * @example
 * ```ts
 * import { ERRNO_NAMES } from "./errno.ts";
 * ERRNO_NAMES[13]; // "EACCES"
 * ```
 */
export const ERRNO_NAMES: Readonly<Record<number, ErrnoName>> = Object.freeze(
  Object.fromEntries(
    (Object.entries(ERRNO) as [ErrnoName, number][])
      .filter(([name]) => !ALIASES.has(name))
      .map(([name, num]) => [num, name]),
  ),
);

/**
 * The name of an errno number, or `"E<number>"` for one missing from the table.
 *
 * @example
 * ```ts
 * import { errnoName } from "./errno.ts";
 * errnoName(1); // "EPERM"
 * ```
 */
export function errnoName(num: number): string {
  return ERRNO_NAMES[num] ?? `E${num}`;
}

/**
 * A failed system call: which call, on which path (when there is one), and why, both as the
 * errno number and its name. The message reads like `mount /x: EPERM (Operation not permitted)`.
 *
 * @example
 * ```ts
 * import { SyscallError } from "./errno.ts";
 * const e = new SyscallError("mount", 1, "/x");
 * e.code;    // "EPERM"
 * e.message; // "mount /x: EPERM (Operation not permitted)"
 * ```
 */
export class SyscallError extends Error {
  /** The libc function that failed, e.g. "mount". */
  readonly syscall: string;
  /** The path it acted on, when it acted on one. */
  readonly path?: string;
  /** The errno value. */
  readonly errno: number;
  /** The errno name, e.g. "EPERM" (the canonical one: EAGAIN, never EWOULDBLOCK). */
  readonly code: string;

  /** `detail` is appended in brackets, e.g. the xattr name or the fd. */
  constructor(syscall: string, errnum: number, path?: string, detail?: string) {
    const code = errnoName(errnum);
    const what = path === undefined ? syscall : `${syscall} ${path}`;
    const extra = detail ? ` [${detail}]` : "";
    super(`${what}: ${code} (${strerror(errnum)})${extra}`);
    this.name = "SyscallError";
    this.syscall = syscall;
    this.errno = errnum;
    this.code = code;
    if (path !== undefined) this.path = path;
  }
}

/**
 * Builds a {@link SyscallError} from the current thread's errno. Call it right after the libc
 * call returned its failure value, before any other FFI call.
 *
 * @example
 * ```ts
 * import { libc, cstr } from "./libc.ts";
 * import { lastError } from "./errno.ts";
 * if (libc().umount2(cstr("/nope"), 0) < 0) throw lastError("umount2", "/nope");
 * ```
 */
export function lastError(syscall: string, path?: string, detail?: string): SyscallError {
  return new SyscallError(syscall, readErrno(), path, detail);
}

/**
 * True when `e` is a {@link SyscallError} with the given errno (by name or number). Aliases
 * match: `isErrno(e, "EWOULDBLOCK")` holds for an EAGAIN error.
 *
 * @example
 * ```ts
 * import { isErrno } from "./errno.ts";
 * import { umount2 } from "./mount.ts";
 * try {
 *   umount2("/mnt/maybe-mounted");
 * } catch (e) {
 *   if (!isErrno(e, "EINVAL") && !isErrno(e, "ENOENT")) throw e; // not mounted / not there
 * }
 * ```
 */
export function isErrno(e: unknown, code: ErrnoName | number): e is SyscallError {
  if (!(e instanceof SyscallError)) return false;
  return e.errno === (typeof code === "number" ? code : ERRNO[code]);
}
