/**
 * What a runtime handler can really do on this host, as the CRI's Status advertises it per
 * handler (the kubelet admits user-namespaced pods and recursive read-only mounts only on a
 * handler that says yes):
 *
 * - recursive read-only mounts: the OCI runtime lists `rro` among the mount options of its
 *   `features` output (runc ≥ 1.1) and the kernel has mount_setattr(2) (5.12+);
 * - user namespaces: the runtime supports the user namespace (`features`, or — for runtimes
 *   too old to have `features`, crun 1.8 — assumed, every OCI runtime does) and the snapshot
 *   filesystem accepts idmapped mounts through a user namespace, since the daemon idmaps the
 *   rootfs itself (idmapped_rootfs.ts), so no runtime `idmap` mount option is needed.
 *
 * Probed once at daemon start: a `features` run per handler and one short-lived process in a
 * fresh user namespace (`unshare --user sleep`, mapped by writing its uid_map as root).
 *
 * @example
 * ```ts
 * import { probeHostIdmap, probeHandlerFeatures } from "./features.ts";
 * const idmap = await probeHostIdmap("/var/lib/k8scontainerd");
 * const f = await probeHandlerFeatures("/usr/sbin/runc", idmap); // { recursiveReadOnlyMounts: true, userNamespaces: true }
 * ```
 */
import { idmapSupported, mountSetattrSupported } from "../../ffi/idmap.ts";
import { type CgroupMode, cgroupMode } from "../../ffi/fs.ts";

/** The CRI RuntimeHandlerFeatures, by name. */
export interface HandlerFeatures {
  recursiveReadOnlyMounts: boolean;
  userNamespaces: boolean;
}

/** What the runtime's own `features` command says (undefined when it has none). */
interface OciFeatures {
  mountOptions?: string[];
  linux?: { namespaces?: string[] };
}

async function ociFeatures(runtimePath: string): Promise<OciFeatures | undefined> {
  try {
    const out = await new Deno.Command(runtimePath, {
      args: ["features"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    return JSON.parse(new TextDecoder().decode(out.stdout)) as OciFeatures;
  } catch {
    return undefined;
  }
}

/**
 * Whether `path`'s filesystem can be idmapped through a user namespace: starts `sleep` in a new
 * user namespace, maps it (0 → 65536, 65536 ids) and asks the kernel for an idmapped clone of
 * the mount (critest's own check). False, never an error, when anything is missing.
 */
export async function probeHostIdmap(path: string): Promise<boolean> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("unshare", {
      args: ["--user", "sleep", "5"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch {
    return false;
  }
  try {
    const self = await Deno.readLink("/proc/self/ns/user");
    // unshare(2) happens before the exec of sleep: wait until the process is in a new userns.
    for (let i = 0; i < 100; i++) {
      const ns = await Deno.readLink(`/proc/${child.pid}/ns/user`).catch(() => self);
      if (ns !== self) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await Deno.writeTextFile(`/proc/${child.pid}/uid_map`, "0 65536 65536\n");
    await Deno.writeTextFile(`/proc/${child.pid}/gid_map`, "0 65536 65536\n");
    return idmapSupported(path, `/proc/${child.pid}/ns/user`);
  } catch {
    return false;
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
  }
}

/**
 * The features of the OCI runtime at `runtimePath`, given whether the snapshot filesystem takes
 * idmapped mounts ({@link probeHostIdmap}).
 */
export async function probeHandlerFeatures(
  runtimePath: string,
  hostIdmap: boolean,
  cgroups: CgroupMode = cgroupMode(),
): Promise<HandlerFeatures> {
  // crun refuses hybrid cgroup hierarchies outright ("cgroups in hybrid mode not supported"):
  // it runs nothing there, so it can claim nothing.
  if (cgroups === "hybrid" && runtimePath.split("/").at(-1) === "crun") {
    return { recursiveReadOnlyMounts: false, userNamespaces: false };
  }
  const f = await ociFeatures(runtimePath);
  const rro = (f?.mountOptions ?? []).includes("rro") && mountSetattrSupported();
  const userns = f?.linux?.namespaces ? f.linux.namespaces.includes("user") : true;
  return { recursiveReadOnlyMounts: rro, userNamespaces: userns && hostIdmap };
}
