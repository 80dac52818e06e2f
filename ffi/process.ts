/**
 * Process identity and prctl(2) settings the daemon needs: its pid and thread id, becoming a
 * child subreaper (so orphaned conmon processes are reparented to the daemon rather than to
 * init), and a parent-death signal.
 *
 * @module
 */

import { libc, libcAsync } from "./libc.ts";
import { lastError } from "./errno.ts";

/** prctl: set the parent-death signal of the calling thread's process. */
export const PR_SET_PDEATHSIG = 1;
/** prctl: read the parent-death signal. */
export const PR_GET_PDEATHSIG = 2;
/** prctl: set the calling thread's name (16 bytes with NUL). */
export const PR_SET_NAME = 15;
/** prctl: make the process a child subreaper. */
export const PR_SET_CHILD_SUBREAPER = 36;
/** prctl: read the child subreaper flag. */
export const PR_GET_CHILD_SUBREAPER = 37;
/** prctl: forbid gaining privileges through execve (setuid, file capabilities). */
export const PR_SET_NO_NEW_PRIVS = 38;

/**
 * The process ID (getpid(2)); same as `Deno.pid`.
 *
 * @example
 * ```ts
 * import { getpid } from "./process.ts";
 * getpid() === Deno.pid; // true
 * ```
 */
export function getpid(): number {
  return libc().getpid();
}

/**
 * The calling thread's ID (gettid(2), glibc >= 2.30). For FFI calls that is the JS thread; it
 * equals the pid only on the process's main thread.
 *
 * @example
 * ```ts
 * import { gettid } from "./process.ts";
 * Deno.readLinkSync("/proc/thread-self"); // `${Deno.pid}/task/${gettid()}`
 * ```
 */
export function gettid(): number {
  return libc().gettid();
}

/** CLOCK_THREAD_CPUTIME_ID: the same number on x86_64 and aarch64 (asm-generic). */
const CLOCK_THREAD_CPUTIME_ID = 3;
/** struct timespec: two 64-bit fields (tv_sec, tv_nsec) on both 64-bit ABIs. */
const timespec = new BigInt64Array(2);

/**
 * CPU time the calling thread has used, in milliseconds (clock_gettime(2) with
 * CLOCK_THREAD_CPUTIME_ID). Unlike `process.cpuUsage()`, which sums every thread of the process,
 * it leaves out V8's helper threads and, under `deno test --parallel`, the other test files'.
 *
 * @example
 * ```ts
 * import { threadCpuMs } from "./process.ts";
 * const t0 = threadCpuMs();
 * work();
 * console.log(threadCpuMs() - t0, "ms of this thread's CPU");
 * ```
 */
export function threadCpuMs(): number {
  if (libc().clock_gettime(CLOCK_THREAD_CPUTIME_ID, timespec) !== 0) {
    throw lastError("clock_gettime");
  }
  return Number(timespec[0]) * 1000 + Number(timespec[1]) / 1e6;
}

/**
 * Returns free memory of glibc's malloc heaps to the kernel (malloc_trim(3)): not only the
 * heap's top, but every whole free page inside it. Memory that Deno's runtime, V8's array
 * buffers and native libraries freed otherwise stays resident. Runs on a worker thread (it walks
 * every heap, which takes milliseconds); resolves true when any memory was released.
 *
 * @example
 * ```ts
 * import { mallocTrim } from "./process.ts";
 * await mallocTrim(); // true or false; never throws
 * ```
 */
export async function mallocTrim(pad = 0): Promise<boolean> {
  return (await libcAsync().malloc_trim(BigInt(pad))) === 1;
}

/**
 * Calls prctl(2) with integer arguments; returns its non-negative result.
 *
 * @example
 * ```ts
 * import { prctl, PR_SET_NO_NEW_PRIVS } from "./process.ts";
 * prctl(PR_SET_NO_NEW_PRIVS, 1);
 * ```
 */
export function prctl(
  option: number,
  arg2: number | bigint = 0,
  arg3: number | bigint = 0,
): number {
  const rc = libc().prctl(option, BigInt(arg2), BigInt(arg3), 0n, 0n);
  if (rc < 0) throw lastError("prctl", undefined, `option ${option}`);
  return rc;
}

/**
 * Makes this process a child subreaper (or stops it being one): orphaned descendants — conmon
 * after its parent exits — are reparented to it instead of to PID 1, so it can reap them.
 *
 * @example
 * ```ts
 * import { setChildSubreaper } from "./process.ts";
 * setChildSubreaper(true);
 * ```
 */
export function setChildSubreaper(on = true): void {
  prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0);
}

/**
 * Whether this process is a child subreaper.
 *
 * @example
 * ```ts
 * import { isChildSubreaper } from "./process.ts";
 * isChildSubreaper(); // false by default
 * ```
 */
export function isChildSubreaper(): boolean {
  const out = new Int32Array(1);
  prctl(PR_GET_CHILD_SUBREAPER, Deno.UnsafePointer.value(Deno.UnsafePointer.of(out)));
  return out[0] !== 0;
}

/**
 * Sets the signal this process gets when its parent dies (0 clears it). Note the kernel ties
 * it to the parent *thread*: it fires when the thread that forked us exits.
 *
 * @example
 * ```ts
 * import { setPdeathsig } from "./process.ts";
 * setPdeathsig(15); // SIGTERM when the parent goes away
 * ```
 */
export function setPdeathsig(signal: number): void {
  prctl(PR_SET_PDEATHSIG, signal);
}

/** pidfd_open(2)'s number: 434 on x86_64 and aarch64 alike (asm-generic's shared numbers). */
const SYS_PIDFD_OPEN = 434n;
/** pidfd_send_signal(2)'s number, 424 on every architecture. */
const SYS_PIDFD_SEND_SIGNAL = 424n;

/**
 * A pidfd for `pid` (pidfd_open(2), Linux 5.3+): a descriptor that stays bound to that very
 * process, whatever later takes its pid, and polls readable once the process has exited (not
 * only once it is reaped: a zombie counts). Close-on-exec. Throws ESRCH when there is no such
 * process, ENOSYS on kernels without pidfds.
 *
 * @example
 * ```ts
 * import { pidfdOpen } from "./process.ts";
 * import { close } from "./fs.ts";
 * const fd = pidfdOpen(Deno.pid);
 * close(fd);
 * ```
 */
export function pidfdOpen(pid: number): number {
  const rc = Number(libc().syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n, 0n, 0n, 0n));
  if (rc < 0) throw lastError("pidfd_open", undefined, `pid ${pid}`);
  return rc;
}

/**
 * Sends `signal` to the process a pidfd names (pidfd_send_signal(2)): never to a process that
 * took over its pid. Throws ESRCH once that process has exited.
 *
 * @example
 * ```ts
 * import { pidfdOpen, pidfdSendSignal } from "./process.ts";
 * pidfdSendSignal(pidfdOpen(4242), 9);
 * ```
 */
export function pidfdSendSignal(pidfd: number, signal: number): void {
  const rc = Number(
    libc().syscall(SYS_PIDFD_SEND_SIGNAL, BigInt(pidfd), BigInt(signal), 0n, 0n, 0n),
  );
  if (rc < 0) throw lastError("pidfd_send_signal", undefined, `signal ${signal}`);
}
