/**
 * Where a container's cgroup goes, in the form runc expects for each cgroup driver:
 *
 * - cgroupfs: a path under the cgroup roots, `<parent>/<name>`
 *   (the kubelet's parent looks like `/kubepods/burstable/pod<uid>`);
 * - systemd: `<slice>:<prefix>:<name>`, from which runc asks systemd (over D-Bus) for a
 *   transient scope `<prefix>-<name>.scope` inside `<slice>`; the kubelet's parent is then a
 *   slice name such as `kubepods-burstable-pod<uid>.slice`, which systemd expands into the
 *   nested `kubepods.slice/kubepods-burstable.slice/…` hierarchy itself.
 *
 * Choosing the driver that matches the kubelet's `cgroupDriver` matters: two managers writing
 * one hierarchy is what the kubelet documentation warns against.
 */
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { cgroupMode } from "../../ffi/fs.ts";

/** Whether this host mounts the unified cgroup v2 hierarchy at /sys/fs/cgroup. */
export function hostCgroupV2(): boolean {
  return cgroupMode() === "v2";
}

let hugetlb: boolean | undefined;

/**
 * Whether containers can get hugetlb limits here: the hugetlb controller is in a cgroup v1
 * hierarchy of this process (`N:hugetlb:/…` in /proc/self/cgroup) or, on a v2 host, in the root's
 * cgroup.controllers. Read once. The kubelet asks for a limit per huge page size the machine
 * has (0 bytes by default) whether or not the controller is there; runc fails the container
 * when it is not ("cannot set hugetlb limit"), so the CRI drops them, as containerd does with
 * its default `tolerate_missing_hugetlb_controller = true`.
 *
 * @example
 * ```ts
 * import { hugetlbControllerPresent } from "./cgroups_path.ts";
 * if (!hugetlbControllerPresent()) console.log("no hugetlb limits on this host");
 * ```
 */
export function hugetlbControllerPresent(): boolean {
  if (hugetlb !== undefined) return hugetlb;
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  };
  hugetlb = hostCgroupV2()
    ? read("/sys/fs/cgroup/cgroup.controllers").split(/\s+/).includes("hugetlb")
    : read("/proc/self/cgroup").split("\n").some((l) =>
      (l.split(":")[1] ?? "").split(",").includes("hugetlb")
    );
  return hugetlb;
}

/** The two ways of managing cgroups the kubelet knows. */
export type CgroupDriver = "cgroupfs" | "systemd";

/** The scope prefix under systemd (`k8scontainerd-<id>.scope`), as containerd uses `cri-containerd`. */
export const SYSTEMD_SCOPE_PREFIX = "k8scontainerd";

/**
 * The `linux.cgroupsPath` for a container `name` under `parent` (empty: the driver's default,
 * `defaultParent` for cgroupfs and `system.slice` for systemd).
 *
 * @example
 * ```ts
 * import { cgroupsPath } from "./cgroups_path.ts";
 * cgroupsPath("cgroupfs", "/kubepods/pod1", "abc", "/k8scontainerd/pods"); // "/kubepods/pod1/abc"
 * cgroupsPath("systemd", "kubepods-pod1.slice", "abc", "/k8scontainerd/pods");
 * // "kubepods-pod1.slice:k8scontainerd:abc"
 * ```
 */
export function cgroupsPath(
  driver: CgroupDriver,
  parent: string | undefined,
  name: string,
  defaultParent: string,
): string {
  if (driver === "cgroupfs") {
    const p = parent || defaultParent;
    if (!p.startsWith("/") || p.endsWith(".slice")) {
      throw new InvalidArgumentError(
        `cgroup parent ${JSON.stringify(p)} is not a cgroupfs path (/a/b): the kubelet and ` +
          `k8scontainerd must use the same cgroup driver (cri.cgroup_driver = "cgroupfs" here)`,
      );
    }
    return `${p.replace(/\/+$/, "")}/${name}`;
  }
  // containerd takes the last element, so "/kubepods.slice/x.slice" works as well as "x.slice".
  const slice = (parent || "system.slice").replace(/\/+$/, "").split("/").pop()!;
  if (!slice.endsWith(".slice")) {
    throw new InvalidArgumentError(
      `cgroup parent ${JSON.stringify(parent)} is not a systemd slice (name.slice): the kubelet ` +
        `and k8scontainerd must use the same cgroup driver (cri.cgroup_driver = "systemd" here)`,
    );
  }
  return `${slice}:${SYSTEMD_SCOPE_PREFIX}:${name}`;
}

/**
 * Whether systemd is the init system (sd_booted(3): `/run/systemd/system` exists), which the
 * systemd driver needs: runc creates each scope through systemd's D-Bus API.
 */
export async function systemdBooted(): Promise<boolean> {
  try {
    return (await Deno.lstat("/run/systemd/system")).isDirectory;
  } catch {
    return false;
  }
}
