/**
 * A pod's /dev/shm: one tmpfs per pod (the IPC namespace's shared memory as files), mounted on
 * the host under the pod's directory and bind-mounted into each of its containers, as
 * containerd and CRI-O do. It lives as long as the pod: mounted by RunPodSandbox, unmounted by
 * StopPodSandbox (and by the recovery of a pod a killed daemon left half built).
 *
 * @example
 * ```ts
 * import { mountPodShm, unmountPodShm } from "./shm.ts";
 * await mountPodShm("/run/k8scontainerd/cri/sandboxes/ab12/shm");
 * unmountPodShm("/run/k8scontainerd/cri/sandboxes/ab12/shm");
 * ```
 *
 * @module
 */
import { mountAll, unmountAll } from "../../snapshots/mount.ts";

/** What the kubelet's pods get by default (containerd's and docker's 64 MiB). */
export const POD_SHM_SIZE = "65536k";

/**
 * Creates `path` (mode 0700; it must not exist) and mounts a fresh tmpfs there: nosuid, nodev,
 * noexec, world-writable with the sticky bit, 64 MiB.
 *
 * @example
 * ```ts
 * await mountPodShm(`${podDir}/shm`);
 * ```
 */
export async function mountPodShm(path: string): Promise<void> {
  await Deno.mkdir(path, { mode: 0o700 });
  mountAll([{
    type: "tmpfs",
    source: "shm",
    options: ["nosuid", "nodev", "noexec", "mode=1777", `size=${POD_SHM_SIZE}`],
  }], path);
}

/**
 * Unmounts the pod's /dev/shm (lazily if still busy); nothing mounted or no such path is fine,
 * so stop paths may call it repeatedly. The directory itself stays (it goes with the pod's).
 *
 * @example
 * ```ts
 * unmountPodShm(`${podDir}/shm`);
 * ```
 */
export function unmountPodShm(path: string): void {
  unmountAll(path);
}
