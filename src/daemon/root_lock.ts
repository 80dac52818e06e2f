/**
 * One daemon per root: an exclusive, non-blocking flock on `<root>/k8scontainerd.lock`, held
 * for the daemon's life and released by the kernel when the process dies (also on kill -9),
 * so a stale lock file never blocks a restart. The holder's pid is written into the file so
 * the refusal can name it.
 *
 * @example
 * ```ts
 * import { acquireRootLock } from "./root_lock.ts";
 * const lock = await acquireRootLock("/var/lib/k8scontainerd");
 * // … serve …
 * lock.release();
 * ```
 */
import {
  close,
  flock,
  LOCK_EX,
  LOCK_NB,
  O_CLOEXEC,
  O_CREAT,
  O_RDWR,
  open,
  SyscallError,
} from "../../ffi/mod.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";

export interface RootLock {
  path: string;
  release(): void;
}

export const LOCK_FILE = "k8scontainerd.lock";

export async function acquireRootLock(root: string): Promise<RootLock> {
  const path = `${root}/${LOCK_FILE}`;
  const fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
  try {
    flock(fd, LOCK_EX | LOCK_NB);
  } catch (e) {
    close(fd);
    if (e instanceof SyscallError && (e.code === "EAGAIN" || e.code === "EWOULDBLOCK")) {
      const holder = (await Deno.readTextFile(path).catch(() => "")).trim();
      throw new FailedPreconditionError(
        `another k8scontainerd daemon is using root ${root} (lock ${path} held` +
          `${holder ? ` by pid ${holder}` : ""}); stop it or pass a different --root`,
      );
    }
    throw e;
  }
  await Deno.writeTextFile(path, `${Deno.pid}\n`);
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      close(fd);
    },
  };
}
