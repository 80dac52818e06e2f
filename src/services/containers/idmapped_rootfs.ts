/**
 * A container rootfs for a user-namespaced pod: the image's layers seen through the pod's
 * uid/gid mapping, so the container's root (host uid 100000, say) owns what the image's root
 * owns, without copying or chowning a single layer file.
 *
 * How (as containerd 2.x does for overlay): every lower directory of the snapshot's overlay is
 * bound idmapped and read-only under `<bundle>/lower/<n>` through the pod's user namespace,
 * the writable upper directory's root is chowned to the mapped root, and the overlay is
 * mounted over those idmapped lowers. Files the container creates land in the upper directory
 * with their host ids (100000 …), which is what the same mapping shows as root again. A bind
 * snapshot (native snapshotter, or an image with no layers) is itself bound idmapped.
 *
 * Works with any OCI runtime (runc 1.1 has no `idmap` mount option): the runtime gets a
 * finished rootfs. Needs a kernel and filesystem with idmapped mounts (5.12+; ext4, xfs, btrfs).
 *
 * @example
 * ```ts
 * import { mountIdmappedRootfs, unmountIdmappedRootfs } from "./idmapped_rootfs.ts";
 * mountIdmappedRootfs(mounts, bundle, { usernsPath: "/proc/4242/ns/user", uid: 100000, gid: 100000 });
 * unmountIdmappedRootfs(bundle);
 * ```
 */
import { idmappedBind } from "../../../ffi/idmap.ts";
import { lchown } from "../../../ffi/fs.ts";
import { type Mount } from "../../snapshots/snapshotter.ts";
import { mountAll, unmountAll } from "../../snapshots/mount.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../../errdefs/errors.ts";

/** The user namespace to map through and the host ids its root maps to. */
export interface RootfsIdmap {
  /** /proc/<pid>/ns/user of a process in the pod's user namespace (the pause process). */
  usernsPath: string;
  uid: number;
  gid: number;
}

function resolve(dir: string, cwd: string | undefined): string {
  return dir.startsWith("/") || cwd === undefined ? dir : `${cwd}/${dir}`;
}

/**
 * Checks that the pod's root (host uid `uid`, no member of any host group) can reach `path`:
 * runc's init mounts the rootfs from inside the user namespace, so every directory above the
 * bundle needs its search bit for others (the daemon makes its own 0711; a state dir under a
 * 0700 directory — a `mktemp -d` — would fail with a bare EACCES from runc).
 */
export function checkTraversable(path: string, uid: number): void {
  for (let dir = path; dir !== "/" && dir !== ""; dir = dir.slice(0, dir.lastIndexOf("/")) || "/") {
    const st = Deno.statSync(dir);
    const mode = st.mode ?? 0;
    if (st.uid !== uid && (mode & 0o001) === 0) {
      throw new FailedPreconditionError(
        `user namespaces: ${dir} (mode ${
          (mode & 0o777).toString(8)
        }) cannot be searched by the pod's root (host uid ${uid}): give it o+x (the daemon's state and root dirs need a searchable path)`,
      );
    }
  }
}

/**
 * Mounts `mounts` (a snapshot's) at `<bundle>/rootfs`, idmapped through `idmap`. On failure
 * nothing stays mounted.
 */
export function mountIdmappedRootfs(mounts: Mount[], bundle: string, idmap: RootfsIdmap): void {
  checkTraversable(bundle, idmap.uid);
  try {
    mountIdmappedSnapshot(mounts, `${bundle}/rootfs`, bundle, "", idmap);
  } catch (e) {
    unmountIdmappedRootfs(bundle);
    throw e;
  }
}

/**
 * Mounts a snapshot's `mounts` at `target` idmapped through `idmap`, its idmapped lowers under
 * `<bundle>/lower/<prefix><n>` (so {@link unmountIdmappedRootfs} finds them): the rootfs
 * (prefix "") and image volumes (a read-only view: lowers only, or one read-only bind).
 */
export function mountIdmappedSnapshot(
  mounts: Mount[],
  target: string,
  bundle: string,
  prefix: string,
  idmap: RootfsIdmap,
): void {
  if (mounts.length !== 1 || mounts[0].target) {
    throw new InvalidArgumentError(
      `a user-namespaced container needs a single overlay or bind snapshot mount (got ${mounts.length})`,
    );
  }
  const m = mounts[0];
  if (m.type === "bind") {
    idmappedBind(m.source, target, idmap.usernsPath, m.options.includes("ro"));
    return;
  }
  if (m.type !== "overlay") {
    throw new InvalidArgumentError(`cannot idmap a ${m.type} snapshot mount`);
  }
  const options: string[] = [];
  let n = 0;
  for (const opt of m.options) {
    if (opt.startsWith("lowerdir=")) {
      const lowers = opt.slice("lowerdir=".length).split(":");
      const mapped: string[] = [];
      for (const dir of lowers) {
        const name = `lower/${prefix}${n++}`;
        Deno.mkdirSync(`${bundle}/${name}`, { recursive: true });
        idmappedBind(resolve(dir, m.cwd), `${bundle}/${name}`, idmap.usernsPath, true);
        mapped.push(name);
      }
      options.push(`lowerdir=${mapped.join(":")}`);
    } else if (opt.startsWith("upperdir=") || opt.startsWith("workdir=")) {
      const [k, v] = [opt.slice(0, opt.indexOf("=")), opt.slice(opt.indexOf("=") + 1)];
      const dir = resolve(v, m.cwd);
      // The upper root is the container's "/": owned by the mapped root, as the image's is.
      if (k === "upperdir") lchown(dir, idmap.uid, idmap.gid);
      options.push(`${k}=${dir}`);
    } else {
      options.push(opt);
    }
  }
  // Short relative lowerdirs (lower/<n>) keep many layers under the mount data limit.
  mountAll([{ type: "overlay", source: "overlay", options, cwd: bundle }], target);
}

/**
 * Binds a volume's host path idmapped through the pod's user namespace at
 * `<bundle>/volumes/<n>` and returns that path, for the runtime to bind into the container
 * (a bind of an idmapped mount stays idmapped; runc 1.1 has no `idmap` option of its own).
 */
export function idmappedVolume(
  source: string,
  bundle: string,
  n: number,
  idmap: RootfsIdmap,
  readonly: boolean,
): string {
  const at = `${bundle}/volumes/${n}`;
  const isDir = Deno.statSync(source).isDirectory;
  Deno.mkdirSync(`${bundle}/volumes`, { recursive: true });
  if (isDir) Deno.mkdirSync(at);
  else Deno.writeFileSync(at, new Uint8Array());
  idmappedBind(source, at, idmap.usernsPath, readonly);
  return at;
}

/**
 * Unmounts what {@link mountIdmappedRootfs} and {@link idmappedVolume} mounted: the rootfs
 * first, then every idmapped lower and volume. Harmless for a bundle that has none (every
 * container's delete calls it).
 */
export function unmountIdmappedRootfs(bundle: string): void {
  unmountAll(`${bundle}/rootfs`);
  for (const sub of ["lower", "volumes"]) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${bundle}/${sub}`)];
    } catch {
      continue;
    }
    for (const e of entries) unmountAll(`${bundle}/${sub}/${e.name}`);
    // Only now empty mount points: an idmapped lower still mounted is read-only, so even a
    // failed unmount cannot let this delete reach into an image layer.
    Deno.removeSync(`${bundle}/${sub}`, { recursive: true });
  }
}
