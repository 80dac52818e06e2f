/**
 * A pod's own user namespace (CRI `userns_options` mode POD), made before anything else of the
 * pod, as its network namespace is: a short-lived helper (`unshare --user --net sleep`) enters
 * a fresh user namespace and, owned by it, a fresh network namespace; the daemon writes the
 * kubelet's uid/gid mappings into the helper's uid_map/gid_map and persists the user namespace
 * by a bind mount at `<pod dir>/userns`. The helper is kept only until the pod network has
 * named its netns (see `netnsFrom` of the pod network), then killed.
 *
 * Why this way: the pause container and every container of the pod join the one user namespace
 * by path; the daemon idmaps their rootfs through the same path before runc runs; and a
 * network namespace owned by the pod's user namespace is what lets runc mount /sys there
 * (sysfs refuses a netns owned by another user namespace). The daemon itself cannot enter a
 * user namespace: setns(CLONE_NEWUSER) is refused to a multi-threaded process.
 *
 * @example
 * ```ts
 * import { createPodUserns, releasePodUserns } from "./userns.ts";
 * const u = await createPodUserns(`${podDir}/userns`, { containerID: 0, hostID: 65536, size: 65536 }, same, true);
 * // … setUpNetwork(req, { netnsFrom: u.netnsFrom }), then:
 * await u.helperDone();
 * releasePodUserns(`${podDir}/userns`);
 * ```
 */
import { bindNamespace } from "../../../ffi/namespaces.ts";
import { unmountAll } from "../../snapshots/mount.ts";
import { FailedPreconditionError } from "../../errdefs/errors.ts";

/** One id mapping range (OCI's LinuxIDMapping shape). */
export interface IdRange {
  containerID: number;
  hostID: number;
  size: number;
}

/** A pod user namespace, persisted at `usernsPath`. */
export interface PodUserns {
  /** The bind-mounted user namespace: what runc joins and what rootfs idmaps go through. */
  usernsPath: string;
  /** The helper's network namespace (owned by the user namespace), while the helper lives. */
  netnsFrom?: string;
  /** Kills the helper and waits for it; call once the netns is named (or not wanted). */
  helperDone(): Promise<void>;
}

/**
 * Creates the user namespace (and with `withNet` a network namespace it owns) and persists the
 * user namespace at `path` (which must not exist). On failure nothing is left.
 */
export async function createPodUserns(
  path: string,
  uids: IdRange,
  gids: IdRange,
  withNet: boolean,
): Promise<PodUserns> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("unshare", {
      // The sleep bounds the helper's life should the daemon die before killing it.
      args: ["--user", ...(withNet ? ["--net"] : []), "sleep", "60"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    throw new FailedPreconditionError(
      `cannot create the pod's user namespace: unshare(1) (util-linux) did not start: ${
        (e as Error).message
      }`,
    );
  }
  const done = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone already */ }
    await child.status;
    await child.stderr.cancel().catch(() => {});
  };
  try {
    const self = await Deno.readLink("/proc/self/ns/user");
    let entered = false;
    // unshare(2) happens before the exec of sleep: wait until the helper is in its userns.
    for (let i = 0; i < 400 && !entered; i++) {
      const ns = await Deno.readLink(`/proc/${child.pid}/ns/user`).catch(() => self);
      entered = ns !== self;
      if (!entered) await new Promise((r) => setTimeout(r, 5));
    }
    if (!entered) throw new FailedPreconditionError("the user namespace helper did not unshare");
    const line = (m: IdRange) => `${m.containerID} ${m.hostID} ${m.size}\n`;
    await Deno.writeTextFile(`/proc/${child.pid}/uid_map`, line(uids));
    await Deno.writeTextFile(`/proc/${child.pid}/gid_map`, line(gids));
    bindNamespace(`/proc/${child.pid}/ns/user`, path);
  } catch (e) {
    await done();
    throw new FailedPreconditionError(
      `cannot create the pod's user namespace: ${(e as Error).message}`,
      { cause: e },
    );
  }
  return {
    usernsPath: path,
    netnsFrom: withNet ? `/proc/${child.pid}/ns/net` : undefined,
    helperDone: done,
  };
}

/** Unmounts and removes a pod's persisted user namespace; absent is fine. */
export function releasePodUserns(path: string): void {
  unmountAll(path);
  try {
    Deno.removeSync(path);
  } catch { /* absent */ }
}
