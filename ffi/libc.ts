/**
 * The one and only `Deno.dlopen` of the project: glibc's `libc.so.6`, opened lazily on first
 * use so that importing `ffi/` costs nothing (and needs no `--allow-ffi`) until a syscall is
 * actually made.
 *
 * Why libc wrappers instead of raw `syscall(2)`: syscall numbers differ between x86_64 and
 * aarch64 (and `syscall` is variadic), while the named wrappers have the same C signature on
 * both. Every symbol is declared `nonblocking: false`: these calls return in microseconds, and a
 * blocking call runs on the JS thread itself, which matters twice over — the per-thread state
 * they touch (network namespace, errno) is the JS thread's, and `errno` can be read right after
 * the failing call on that same thread (see {@link errno}).
 *
 * Variadic functions (`open`, `prctl`) are declared with fixed integer parameters. That is sound
 * on both supported ABIs: on x86_64 SysV integer varargs travel in the same registers as fixed
 * ones, and on Linux AAPCS64 (unlike Apple's) varargs are passed exactly like named arguments.
 *
 * @module
 */

/** The symbol table handed to `Deno.dlopen`; the C prototypes are in the source comments. */
export const LIBC_SYMBOLS = {
  // int *__errno_location(void): address of the calling thread's errno.
  __errno_location: { parameters: [], result: "pointer", nonblocking: false },
  // char *strerror(int errnum)
  strerror: { parameters: ["i32"], result: "pointer", nonblocking: false },

  // int mount(const char *source, const char *target, const char *fstype,
  //           unsigned long flags, const void *data)
  mount: {
    parameters: ["buffer", "buffer", "buffer", "u64", "buffer"],
    result: "i32",
    nonblocking: false,
  },
  // int umount2(const char *target, int flags)
  umount2: { parameters: ["buffer", "i32"], result: "i32", nonblocking: false },

  // int unshare(int flags)
  unshare: { parameters: ["i32"], result: "i32", nonblocking: false },
  // int setns(int fd, int nstype)
  setns: { parameters: ["i32", "i32"], result: "i32", nonblocking: false },

  // int open(const char *path, int flags, ... /* mode_t mode */)
  open: { parameters: ["buffer", "i32", "u32"], result: "i32", nonblocking: false },
  // int close(int fd)
  close: { parameters: ["i32"], result: "i32", nonblocking: false },
  // int fsync(int fd)
  fsync: { parameters: ["i32"], result: "i32", nonblocking: false },
  // int flock(int fd, int operation)
  flock: { parameters: ["i32", "i32"], result: "i32", nonblocking: false },
  // fcntl is variadic; F_GETFD/F_SETFD take at most one int, safe as a fixed i32 on both arches.
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32", nonblocking: false },
  // int mknod(const char *path, mode_t mode, dev_t dev)   (a real symbol since glibc 2.33)
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32", nonblocking: false },
  // int lchown(const char *path, uid_t owner, gid_t group)
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32", nonblocking: false },
  // int statfs(const char *path, struct statfs *buf)
  statfs: { parameters: ["buffer", "buffer"], result: "i32", nonblocking: false },
  // int utimensat(int dirfd, const char *path, const struct timespec times[2], int flags)
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32", nonblocking: false },

  // int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)
  lsetxattr: {
    parameters: ["buffer", "buffer", "buffer", "usize", "i32"],
    result: "i32",
    nonblocking: false,
  },
  // ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
  lgetxattr: {
    parameters: ["buffer", "buffer", "buffer", "usize"],
    result: "isize",
    nonblocking: false,
  },
  // ssize_t llistxattr(const char *path, char *list, size_t size)
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize", nonblocking: false },
  // int lremovexattr(const char *path, const char *name)
  lremovexattr: { parameters: ["buffer", "buffer"], result: "i32", nonblocking: false },

  // pid_t getpid(void)
  getpid: { parameters: [], result: "i32", nonblocking: false },
  // pid_t gettid(void)   (glibc >= 2.30)
  gettid: { parameters: [], result: "i32", nonblocking: false },
  // int clock_gettime(clockid_t clockid, struct timespec *tp)
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32", nonblocking: false },
  // long syscall(long number, ...): only for syscalls numbered alike on every architecture
  // (those from 424 on, asm-generic's shared table: pidfd_open 434, pidfd_send_signal 424,
  // open_tree 428, move_mount 429, mount_setattr 442), whose glibc wrappers are too new (2.36)
  // to be in every distribution's libc. Five arguments after the number (mount_setattr's).
  syscall: {
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
    nonblocking: false,
  },
  // int eventfd(unsigned int initval, int flags)
  eventfd: { parameters: ["u32", "i32"], result: "i32", nonblocking: false },
  // int madvise(void *addr, size_t length, int advice): the address as an integer, page-aligned.
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32", nonblocking: false },
  // int prctl(int option, ... /* unsigned long arg2, arg3, arg4, arg5 */)
  prctl: {
    parameters: ["i32", "u64", "u64", "u64", "u64"],
    result: "i32",
    nonblocking: false,
  },

  // int socket(int domain, int type, int protocol)
  socket: { parameters: ["i32", "i32", "i32"], result: "i32", nonblocking: false },
  // int bind(int fd, const struct sockaddr *addr, socklen_t len)
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32", nonblocking: false },
  // int connect(int fd, const struct sockaddr *addr, socklen_t len)
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32", nonblocking: false },
  // int listen(int fd, int backlog)
  listen: { parameters: ["i32", "i32"], result: "i32", nonblocking: false },
  // int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32", nonblocking: false },
  // int shutdown(int fd, int how)
  shutdown: { parameters: ["i32", "i32"], result: "i32", nonblocking: false },
  // ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize", nonblocking: false },
  // ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize", nonblocking: false },
  // ssize_t read(int fd, void *buf, size_t count)
  read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: false },
  // ssize_t write(int fd, const void *buf, size_t count)
  write: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: false },
  // int ioctl(int fd, unsigned long request, ... /* void *argp */)
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32", nonblocking: false },
  // int posix_openpt(int flags)
  posix_openpt: { parameters: ["i32"], result: "i32", nonblocking: false },
  // int unlockpt(int fd)
  unlockpt: { parameters: ["i32"], result: "i32", nonblocking: false },
  // int ptsname_r(int fd, char *buf, size_t len)   (returns an errno value, not -1)
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32", nonblocking: false },
} as const satisfies Deno.ForeignLibraryInterface;

/** The typed symbols of libc this layer uses. */
export type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let lib: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | undefined;

/**
 * Returns libc's symbols, opening `libc.so.6` on the first call (needs `--allow-ffi`).
 *
 * @example
 * ```ts
 * import { libc } from "./libc.ts";
 * const pid = libc().getpid();
 * ```
 */
export function libc(): LibcSymbols {
  lib ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  return lib.symbols;
}

/**
 * The exceptions to "every symbol blocks the JS thread", declared `nonblocking: true` (a symbol
 * cannot be both, so they live in a second handle of the same library). They run on a worker
 * thread and return a promise. `poll(2)` lets the daemon wait for a descriptor to become
 * readable or writable without stalling the event loop; the read or write itself then runs
 * synchronously on the JS thread, where `errno` is readable. Its own errno is the worker's and
 * is never read: a -1 (EINTR) is simply retried. `malloc_trim(3)` walks every malloc heap,
 * which takes milliseconds, and sets no errno worth reading.
 */
export const LIBC_ASYNC_SYMBOLS = {
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout)
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  // int malloc_trim(size_t pad): hands free heap memory back to the kernel; 1 if any was released.
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

let asyncLib: Deno.DynamicLibrary<typeof LIBC_ASYNC_SYMBOLS> | undefined;

/**
 * Returns the nonblocking libc symbols (see {@link LIBC_ASYNC_SYMBOLS}), opening the second
 * handle on first use.
 *
 * @example
 * ```ts
 * import { libcAsync } from "./libc.ts";
 * const pfd = new Uint8Array(8); // struct pollfd { int fd; short events; short revents; }
 * await libcAsync().poll(pfd, 1n, 100);
 * ```
 */
export function libcAsync(): Deno.DynamicLibrary<typeof LIBC_ASYNC_SYMBOLS>["symbols"] {
  asyncLib ??= Deno.dlopen("libc.so.6", LIBC_ASYNC_SYMBOLS);
  return asyncLib.symbols;
}

/**
 * Reads the calling thread's `errno`. Call it immediately after a libc call returned its error
 * value: both run synchronously on the JS thread with nothing in between, so the value is the
 * one that call set.
 *
 * @example
 * ```ts
 * import { errno, libc } from "./libc.ts";
 * if (libc().close(-1) < 0) console.log(errno()); // 9 (EBADF)
 * ```
 */
export function errno(): number {
  const p = libc().__errno_location();
  if (p === null) throw new Error("__errno_location returned NULL");
  return new Deno.UnsafePointerView(p).getInt32();
}

/**
 * The C library's message for an errno value (`strerror(3)`), e.g. "Operation not permitted".
 *
 * @example
 * ```ts
 * import { strerror } from "./libc.ts";
 * strerror(1); // "Operation not permitted"
 * ```
 */
export function strerror(code: number): string {
  const p = libc().strerror(code);
  return p === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(p);
}

const encoder = new TextEncoder();

/**
 * Encodes a string as a NUL-terminated C string for a `buffer` parameter. Rejects strings with
 * an embedded NUL, which C would silently truncate (a path "a\0b" would act on "a").
 *
 * @example
 * ```ts
 * import { cstr, libc } from "./libc.ts";
 * libc().umount2(cstr("/mnt/x"), 0);
 * ```
 */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new TypeError(`string contains a NUL byte: ${JSON.stringify(s)}`);
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * {@link cstr} that passes `null`/`undefined` through as a NULL pointer.
 *
 * @example
 * ```ts
 * import { cstrOrNull } from "./libc.ts";
 * cstrOrNull(undefined); // null: mount(2) gets a NULL data pointer
 * ```
 */
export function cstrOrNull(s: string | null | undefined): Uint8Array<ArrayBuffer> | null {
  return s === null || s === undefined ? null : cstr(s);
}

/**
 * Converts an FFI `isize`/`usize` result (number or bigint) to a number.
 *
 * @example
 * ```ts
 * import { toNumber } from "./libc.ts";
 * toNumber(5n); // 5
 * ```
 */
export function toNumber(v: number | bigint): number {
  return typeof v === "bigint" ? Number(v) : v;
}
