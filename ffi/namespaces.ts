/**
 * Linux namespaces: unshare(2), setns(2), and named network namespaces persisted the way
 * `ip netns add` does (a bind mount of the namespace file under /run/netns), so that CNI
 * plugins, `ip netns exec` and runc can all find a pod's network namespace by path.
 *
 * Everything here acts on the calling thread, which for FFI calls declared
 * `nonblocking: false` is the JS thread. A network namespace switch is per thread, so the
 * helpers always switch the thread back before returning — also when they fail.
 *
 * @module
 */

import { libc } from "./libc.ts";
import { isErrno, lastError } from "./errno.ts";
import { close, O_CLOEXEC, O_CREAT, O_EXCL, O_RDONLY, open } from "./fs.ts";
import { MNT_DETACH, mount, MS_BIND, MS_REC, MS_SHARED, umount2 } from "./mount.ts";

/** New time namespace (kernel >= 5.6). */
export const CLONE_NEWTIME = 0x00000080;
/** New mount namespace. */
export const CLONE_NEWNS = 0x00020000;
/** New cgroup namespace. */
export const CLONE_NEWCGROUP = 0x02000000;
/** New UTS (hostname) namespace. */
export const CLONE_NEWUTS = 0x04000000;
/** New IPC namespace. */
export const CLONE_NEWIPC = 0x08000000;
/** New user namespace. */
export const CLONE_NEWUSER = 0x10000000;
/** New PID namespace (applies to children). */
export const CLONE_NEWPID = 0x20000000;
/** New network namespace. */
export const CLONE_NEWNET = 0x40000000;

/** Where `ip netns` keeps named network namespaces. */
export const NETNS_RUN_DIR = "/run/netns";

/**
 * Calls unshare(2) with CLONE_* flags, for the calling (JS) thread.
 *
 * @example
 * ```ts
 * import { unshare, CLONE_NEWNET } from "./namespaces.ts";
 * unshare(CLONE_NEWNET); // the JS thread is now in a fresh network namespace
 * ```
 */
export function unshare(flags: number): void {
  if (libc().unshare(flags) < 0) throw lastError("unshare");
}

/**
 * Calls setns(2): moves the calling thread into the namespace `fd` refers to. `nstype` is a
 * CLONE_NEW* constant the namespace must match, or 0 for any.
 *
 * @example
 * ```ts
 * import { setns, CLONE_NEWNET } from "./namespaces.ts";
 * import { open, close, O_RDONLY, O_CLOEXEC } from "./fs.ts";
 * const fd = open("/run/netns/pod1", O_RDONLY | O_CLOEXEC);
 * try { setns(fd, CLONE_NEWNET); } finally { close(fd); }
 * ```
 */
export function setns(fd: number, nstype: number): void {
  if (libc().setns(fd, nstype) < 0) throw lastError("setns", undefined, `fd ${fd}`);
}

/** The calling thread's own network namespace file. */
const THREAD_NETNS = "/proc/thread-self/ns/net";

/**
 * Makes `dir` a shared mount, bind-mounting it onto itself first if it is not a mount point
 * yet — what iproute2 does, so that namespace files mounted below it are seen in mount
 * namespaces created later (containers, `ip netns exec`).
 */
function ensureSharedDir(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  try {
    mount("none", dir, "none", MS_SHARED | MS_REC);
  } catch (e) {
    // EINVAL: not a mount point. Make it one, then retry.
    if (!isErrno(e, "EINVAL")) throw e;
    mount(dir, dir, "none", MS_BIND | MS_REC);
    mount("none", dir, "none", MS_SHARED | MS_REC);
  }
}

function joinPath(dir: string, name: string): string {
  if (name === "" || name === "." || name === ".." || name.includes("/")) {
    throw new TypeError(`invalid network namespace name: ${JSON.stringify(name)}`);
  }
  return `${dir.replace(/\/+$/, "")}/${name}`;
}

/**
 * Creates a named, persistent network namespace, like `ip netns add NAME`: the namespace
 * lives as long as the bind mount at `dir/NAME`, not as long as any process. Returns that path
 * (what CNI's CNI_NETNS and the OCI spec's network namespace path want). Fails with EEXIST if
 * the name is taken. The calling thread is back in its own namespace when this returns or throws.
 * With `from` (a /proc/<pid>/ns/net file), that existing namespace is named instead of a new
 * one: a user-namespaced pod's, which must be owned by the pod's user namespace.
 *
 * @example
 * ```ts
 * import { createNetns, deleteNetns } from "./namespaces.ts";
 * const path = createNetns("cni-1234"); // "/run/netns/cni-1234"
 * deleteNetns("cni-1234");
 * ```
 */
export function createNetns(name: string, dir = NETNS_RUN_DIR, from?: string): string {
  const path = joinPath(dir, name);
  ensureSharedDir(dir);
  if (from !== undefined) return bindNamespace(from, path);
  // The mount point: an empty file, created exclusively so two callers cannot share a name.
  close(open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0));
  let ok = false;
  try {
    const original = open(THREAD_NETNS, O_RDONLY | O_CLOEXEC);
    try {
      unshare(CLONE_NEWNET);
      mount(THREAD_NETNS, path, "none", MS_BIND);
      ok = true;
    } finally {
      try {
        setns(original, CLONE_NEWNET);
      } finally {
        close(original);
      }
    }
  } finally {
    if (!ok) {
      try {
        Deno.removeSync(path);
      } catch { /* keep the original error */ }
    }
  }
  return path;
}

/**
 * Persists an existing namespace (`from`, a /proc/<pid>/ns/<kind> file) at `path` by a bind
 * mount, as `createNetns` does for a fresh one: the namespace then outlives the process. The
 * file is created exclusively (EEXIST if taken) and removed again if the bind fails.
 *
 * @example
 * ```ts
 * import { bindNamespace } from "./namespaces.ts";
 * bindNamespace("/proc/4242/ns/user", "/run/k8scontainerd/cri/sandboxes/ab12/userns");
 * ```
 */
export function bindNamespace(from: string, path: string): string {
  close(open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0));
  try {
    mount(from, path, "none", MS_BIND);
  } catch (e) {
    try {
      Deno.removeSync(path);
    } catch { /* keep the original error */ }
    throw e;
  }
  return path;
}

/**
 * Deletes a named network namespace, like `ip netns delete NAME`: detaches the bind mount and
 * removes the file. The namespace itself goes away once no process or mount holds it. Deleting
 * a namespace that does not exist is not an error.
 *
 * @example
 * ```ts
 * import { deleteNetns } from "./namespaces.ts";
 * deleteNetns("cni-1234");
 * deleteNetns("cni-1234"); // fine: already gone
 * ```
 */
export function deleteNetns(name: string, dir = NETNS_RUN_DIR): void {
  const path = joinPath(dir, name);
  try {
    umount2(path, MNT_DETACH);
  } catch (e) {
    // ENOENT: no such file; EINVAL: a file but not a mount point (a half-created namespace).
    if (!isErrno(e, "ENOENT") && !isErrno(e, "EINVAL")) throw e;
  }
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Names of the network namespaces in `dir`, sorted; empty if `dir` does not exist.
 *
 * @example
 * ```ts
 * import { listNetns } from "./namespaces.ts";
 * listNetns(); // ["cni-1234", ...]
 * ```
 */
export function listNetns(dir = NETNS_RUN_DIR): string[] {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/**
 * Runs `fn` with the calling thread inside the network namespace at `path` (e.g.
 * "/run/netns/NAME" or "/proc/PID/ns/net") and returns its result; the thread is always back in
 * its own namespace afterwards, also when `fn` throws.
 *
 * `fn` must be synchronous. Only the JS thread is switched, and an `await` would hand that
 * thread to the event loop: timers, gRPC handlers and everything else would run inside the
 * wrong namespace until `fn` resumed. A function that returns a promise is rejected (after the
 * thread has been switched back). Async Deno ops run on other threads and would not see the
 * namespace anyway; sync ops (`Deno.readLinkSync`, …) and FFI calls do.
 *
 * @example
 * ```ts
 * import { withNetns } from "./namespaces.ts";
 * const inode = withNetns("/run/netns/pod1", () => Deno.readLinkSync("/proc/thread-self/ns/net"));
 * ```
 */
export function withNetns<T>(path: string, fn: () => T): T {
  const target = open(path, O_RDONLY | O_CLOEXEC);
  try {
    const original = open(THREAD_NETNS, O_RDONLY | O_CLOEXEC);
    let result: T;
    try {
      setns(target, CLONE_NEWNET);
      result = fn();
    } finally {
      try {
        setns(original, CLONE_NEWNET);
      } finally {
        close(original);
      }
    }
    if (isThenable(result)) {
      // Swallow its eventual rejection: the TypeError below is the error to report.
      Promise.resolve(result).catch(() => {});
      throw new TypeError("withNetns: fn must be synchronous (it returned a promise)");
    }
    return result;
  } finally {
    close(target);
  }
}

function isThenable(v: unknown): boolean {
  return typeof v === "object" && v !== null &&
    typeof (v as { then?: unknown }).then === "function";
}

/**
 * Calls setns on the calling thread to the namespace at `path`, without switching back; for
 * code that owns its thread (a worker dedicated to one namespace). Prefer {@link withNetns}.
 *
 * @example
 * ```ts
 * import { enterNamespace, CLONE_NEWNET } from "./namespaces.ts";
 * enterNamespace("/run/netns/pod1", CLONE_NEWNET);
 * ```
 */
export function enterNamespace(path: string, nstype: number): void {
  const fd = open(path, O_RDONLY | O_CLOEXEC);
  try {
    if (libc().setns(fd, nstype) < 0) throw lastError("setns", path);
  } finally {
    close(fd);
  }
}
