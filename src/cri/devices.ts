/**
 * CRI `ContainerConfig.devices`: the kubelet's host devices (device plugins, `--device`),
 * resolved on the host as containerd does (pkg/oci WithDevices): each `host_path` is stat'ed
 * (symlinks followed), a character or block device (or FIFO) is created in the container at
 * `container_path` with the host's type, major/minor, mode, uid and gid, and allowed in the
 * device cgroup with `permissions`. A directory `host_path` (`/dev/snd`, say) means every
 * device node below it, placed under `container_path` by the same relative path. A privileged
 * container gets every device of the host's /dev besides (containerd's WithHostDevices).
 *
 * @example
 * ```ts
 * import { criDevices } from "./devices.ts";
 * await criDevices([{ containerPath: "/dev/mynull", hostPath: "/dev/null", permissions: "rw" }], false);
 * // [{ path: "/dev/mynull", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0, permissions: "rw" }]
 * ```
 *
 * @module
 */
import type { Device } from "../gen/runtime/v1/api.ts";
import { InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import { cleanPath, type ResolvedDevice } from "../runtime/spec/builder.ts";
import { splitDevT } from "../runtime/devices.ts";

/**
 * A CRI device's `permissions` checked: a combination of r, w and m, each at most once, in
 * any order ("mrw" as the kubelet sends it); "" means "rwm", as the kubelet's default.
 *
 * @throws InvalidArgumentError naming `field`.
 * @example
 * ```ts
 * import { devicePermissions } from "./devices.ts";
 * devicePermissions("mrw", "devices[0].permissions"); // "mrw"
 * devicePermissions("rx", "devices[0].permissions"); // throws InvalidArgumentError
 * ```
 */
export function devicePermissions(p: string, field: string): string {
  if (p === "") return "rwm";
  if (!/^[rwm]{1,3}$/.test(p) || new Set(p).size !== p.length) {
    throw new InvalidArgumentError(
      `${field} must be a combination of r, w and m: got ${JSON.stringify(p)}`,
    );
  }
  return p;
}

/** Directories under a device directory that hold no host devices to pass (containerd's list). */
const SKIPPED_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

/** A device node's type from its stat; undefined for anything else. */
function nodeType(st: Deno.FileInfo): ResolvedDevice["type"] | undefined {
  return st.isCharDevice ? "c" : st.isBlockDevice ? "b" : st.isFifo ? "p" : undefined;
}

function nodeOf(
  st: Deno.FileInfo,
  path: string,
  permissions: string,
  hostPath: string,
): ResolvedDevice | undefined {
  const type = nodeType(st);
  if (!type) return undefined;
  const { major, minor } = type === "p" ? { major: 0, minor: 0 } : splitDevT(st.rdev ?? 0);
  return {
    path,
    hostPath,
    type,
    major,
    minor,
    fileMode: (st.mode ?? 0) & 0o7777,
    uid: st.uid ?? 0,
    gid: st.gid ?? 0,
    permissions,
  };
}

/**
 * Every device node below host directory `dir` (symlinks and the console skipped, and the
 * directories {@link SKIPPED_DIRS}), at `containerDir` + its path relative to `dir`.
 *
 * @example
 * ```ts
 * import { devicesUnder } from "./devices.ts";
 * await devicesUnder("/dev/snd", "/dev/snd", "rwm");
 * ```
 */
export async function devicesUnder(
  dir: string,
  containerDir: string,
  permissions: string,
): Promise<ResolvedDevice[]> {
  const out: ResolvedDevice[] = [];
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const host = `${dir}/${e.name}`;
    const inside = `${containerDir.replace(/\/+$/, "")}/${e.name}`;
    if (e.isDirectory) {
      if (!SKIPPED_DIRS.has(e.name)) out.push(...await devicesUnder(host, inside, permissions));
      continue;
    }
    if (e.isSymlink || e.name === "console") continue;
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(host);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue; // went away meanwhile
      throw err;
    }
    const d = nodeOf(st, inside, permissions, host);
    if (d) out.push(d);
  }
  return out;
}

/**
 * The devices a CRI container config asks for, resolved on the host, plus every host device
 * of /dev for a privileged container. A later device on the same container path replaces an
 * earlier one (the config's own beat the privileged host devices).
 *
 * @throws InvalidArgumentError naming `devices[i].permissions`, `.container_path` or
 * `.host_path` for a bad value or a host path that is no device; NotFoundError naming
 * `devices[i].host_path` and the path when it does not exist.
 * @example
 * ```ts
 * import { criDevices } from "./devices.ts";
 * await criDevices([{ containerPath: "/dev/mynull", hostPath: "/dev/null", permissions: "rw" }], false);
 * ```
 */
export async function criDevices(
  devices: Device[],
  privileged: boolean,
  hostDev = "/dev",
): Promise<ResolvedDevice[]> {
  const byPath = new Map<string, ResolvedDevice>();
  const add = (list: ResolvedDevice[]) => {
    for (const d of list) {
      const key = cleanPath(d.path);
      byPath.delete(key);
      byPath.set(key, d);
    }
  };
  if (privileged) add(await devicesUnder(hostDev, "/dev", "rwm"));
  for (const [i, d] of devices.entries()) {
    const f = `devices[${i}]`;
    const permissions = devicePermissions(d.permissions, `${f}.permissions`);
    if (!d.hostPath.startsWith("/")) {
      throw new InvalidArgumentError(
        `${f}.host_path must be an absolute path: got ${JSON.stringify(d.hostPath)}`,
      );
    }
    if (d.containerPath !== "" && !d.containerPath.startsWith("/")) {
      throw new InvalidArgumentError(
        `${f}.container_path must be an absolute path: got ${JSON.stringify(d.containerPath)}`,
      );
    }
    const inside = d.containerPath || d.hostPath;
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(d.hostPath);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new NotFoundError(`${f}.host_path: host device ${d.hostPath} does not exist`);
      }
      throw new InvalidArgumentError(
        `${f}.host_path: cannot stat host device ${d.hostPath}: ${(e as Error).message}`,
      );
    }
    if (st.isDirectory) {
      add(await devicesUnder(d.hostPath, inside, permissions));
      continue;
    }
    const node = nodeOf(st, inside, permissions, d.hostPath);
    if (!node) {
      throw new InvalidArgumentError(
        `${f}.host_path: ${d.hostPath} is not a device node (nor a directory of them)`,
      );
    }
    add([node]);
  }
  return [...byPath.values()];
}

/**
 * The config's devices with CDI's added: a CDI device on the same container path replaces
 * the config's (CDI edits go last, as containerd applies them).
 *
 * @example
 * ```ts
 * import { mergeDevices } from "./devices.ts";
 * mergeDevices([{ path: "/dev/a", type: "c", major: 1, minor: 3 }], []).length; // 1
 * ```
 */
export function mergeDevices(base: ResolvedDevice[], cdi: ResolvedDevice[]): ResolvedDevice[] {
  const taken = new Set(cdi.map((d) => cleanPath(d.path)));
  return [...base.filter((d) => !taken.has(cleanPath(d.path))), ...cdi];
}
