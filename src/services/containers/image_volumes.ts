/**
 * Image volumes (KEP 4639): an OCI image's filesystem mounted read-only into a container.
 *
 * Lifecycle, as containerd 2.2 does it: create() takes a read-only `view` snapshot of the
 * image's committed layer chain (key `<container>-imagevolume-<n>`, labelled
 * {@link IMAGE_VOLUME_SNAPSHOT_LABEL} with the container id in the row insert that creates it),
 * mounts it at `<bundle>/imagevolumes/<n>` and hands `<bundle>/imagevolumes/<n>/<sub path>` to
 * the runtime as a read-only, rprivate bind. A view of several layers is an overlay of lower
 * directories only, and a view of one layer a read-only bind, so the mount itself is
 * read-only: a stray recursive delete of the bundle gets EROFS and can never reach into an
 * image layer. The container's delete (and the daemon's start-up clean-up of bundles that
 * have no record) calls {@link unmountImageVolumes} before the bundle goes, and removes the
 * views.
 *
 * @example
 * ```ts
 * import { resolveSubPath, unmountImageVolumes } from "./image_volumes.ts";
 * resolveSubPath("/run/k8scontainerd/bundles/k8s.io/c1/imagevolumes/0", "links/dir-rel", "mounts[1].image_sub_path"); // "data"
 * unmountImageVolumes("/run/k8scontainerd/bundles/k8s.io/c1");
 * ```
 *
 * @module
 */
import { InvalidArgumentError, NotFoundError } from "../../errdefs/errors.ts";
import { unmountAll } from "../../snapshots/mount.ts";

/** Label on an image volume's view snapshot: the id of the container it belongs to. */
export const IMAGE_VOLUME_SNAPSHOT_LABEL = "io.k8scontainerd.image-volume";

/** What the container service needs to mount one image volume. */
export interface ImageVolumeRequest {
  /** An image name in the container's namespace (the CRI passes the image's first name). */
  image: string;
  /** Where it goes in the container (absolute). */
  destination: string;
  /** A directory (or file) of the image to mount instead of its root; "" for the root. */
  subPath: string;
  /** How the request names this volume in errors ("mounts[2]"). */
  field: string;
}

/**
 * What a container record keeps of each image volume (JSON in a label): the view snapshot to
 * remove on delete and remount after a reboot, and the image id (config digest) that an image
 * removal looks for.
 */
export interface ImageVolumeRecord {
  /** Index n: mounted at `<bundle>/imagevolumes/<n>`. */
  n: number;
  image: string;
  /** Image id: the config digest. */
  imageId: string;
  /** View snapshot key (in the container's snapshotter). */
  key: string;
}

/** The directory under a bundle where image volume n is mounted. */
export function imageVolumeDir(bundle: string, n: number): string {
  return `${bundle}/imagevolumes/${n}`;
}

/** The view snapshot key of a container's image volume n. */
export function imageVolumeKey(containerId: string, n: number): string {
  return `${containerId}-imagevolume-${n}`;
}

/**
 * The lexical rule for a sub path, before anything is looked at: relative, no `..` component,
 * no NUL. Returns its components ("" and "." dropped; none for the image root).
 *
 * @throws InvalidArgumentError naming `field`.
 * @example
 * ```ts
 * import { checkSubPath } from "./image_volumes.ts";
 * checkSubPath("data/./sub/", "mounts[0].image_sub_path"); // ["data", "sub"]
 * checkSubPath("../etc", "mounts[0].image_sub_path"); // throws InvalidArgumentError
 * ```
 */
export function checkSubPath(subPath: string, field: string): string[] {
  if (subPath.startsWith("/")) {
    throw new InvalidArgumentError(
      `${field} ${JSON.stringify(subPath)} must be relative to the image root`,
    );
  }
  if (subPath.includes("\0")) throw new InvalidArgumentError(`${field} contains a NUL byte`);
  const comps = subPath.split("/").filter((c) => c !== "" && c !== ".");
  if (comps.includes("..")) {
    throw new InvalidArgumentError(
      `${field} ${JSON.stringify(subPath)} escapes the image root: ".." is not allowed`,
    );
  }
  return comps;
}

/** Symlinks followed while resolving one sub path, as the kernel's ELOOP limit. */
const MAX_SYMLINKS = 40;

/** The file system calls {@link resolveSubPath} makes (injectable for tests). */
export interface SubPathFs {
  lstat(path: string): Deno.FileInfo | undefined;
  readLink(path: string): string;
}

const hostFs: SubPathFs = {
  lstat: (p) => {
    try {
      return Deno.lstatSync(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw e;
    }
  },
  readLink: (p) => Deno.readLinkSync(p),
};

/**
 * Resolves `subPath` inside the mounted image at `root` without ever following a symlink on
 * the host: each component is looked at with lstat, a symlink's target is read and resolved
 * again inside the image (an absolute target starts over at the image root, as it would
 * inside the container), and a `..` that would climb above the image root — in the request or
 * in a link target — is refused. Returns the real path relative to `root` ("" for the root),
 * which has no symlink left in it; what it names exists and is a directory or regular file.
 *
 * @throws InvalidArgumentError naming `field` for an escape, too many symlinks, or a component
 * that is not a directory; NotFoundError naming `field` when the path does not exist.
 * @example
 * ```ts
 * import { resolveSubPath } from "./image_volumes.ts";
 * // in the image: links/dir-rel -> ../data
 * resolveSubPath("/mnt/image", "links/dir-rel", "mounts[0].image_sub_path"); // "data"
 * ```
 */
export function resolveSubPath(
  root: string,
  subPath: string,
  field: string,
  fs: SubPathFs = hostFs,
): string {
  const queue = checkSubPath(subPath, field);
  const cur: string[] = [];
  let follows = 0;
  const what = `${field} ${JSON.stringify(subPath)}`;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (cur.length === 0) {
        throw new InvalidArgumentError(`${what} escapes the image root through a symlink`);
      }
      cur.pop();
      continue;
    }
    const rel = [...cur, c].join("/");
    const st = fs.lstat(`${root}/${rel}`);
    if (!st) throw new NotFoundError(`${what}: /${rel} does not exist in the image`);
    if (st.isSymlink) {
      if (++follows > MAX_SYMLINKS) {
        throw new InvalidArgumentError(`${what}: too many levels of symlinks at /${rel}`);
      }
      const target = fs.readLink(`${root}/${rel}`);
      if (target.startsWith("/")) cur.length = 0;
      queue.unshift(...target.split("/"));
      continue;
    }
    if (queue.some((x) => x !== "" && x !== ".") && !st.isDirectory) {
      throw new InvalidArgumentError(`${what}: /${rel} is not a directory`);
    }
    if (!st.isDirectory && !st.isFile) {
      throw new InvalidArgumentError(`${what}: /${rel} is neither a directory nor a regular file`);
    }
    cur.push(c);
  }
  return cur.join("/");
}

/**
 * Unmounts every image volume under `bundle` and removes their (then empty) mount points.
 * Harmless for a bundle that has none (every container's delete calls it). A mount point that
 * cannot be unmounted stays, read-only: the directory removal of each entry is not
 * recursive, so this never deletes through a mount.
 *
 * @example
 * ```ts
 * import { unmountImageVolumes } from "./image_volumes.ts";
 * unmountImageVolumes("/run/k8scontainerd/bundles/k8s.io/c1");
 * ```
 */
export function unmountImageVolumes(bundle: string): void {
  const dir = `${bundle}/imagevolumes`;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return;
  }
  for (const e of entries) {
    unmountAll(`${dir}/${e.name}`);
    Deno.removeSync(`${dir}/${e.name}`);
  }
  Deno.removeSync(dir);
}

/**
 * Reads the {@link ImageVolumeRecord}s a container's label holds (none when unset or broken).
 *
 * @example
 * ```ts
 * import { parseImageVolumes } from "./image_volumes.ts";
 * parseImageVolumes('[{"n":0,"image":"a","imageId":"sha256:…","key":"c1-imagevolume-0"}]').length; // 1
 * ```
 */
export function parseImageVolumes(label: string | undefined): ImageVolumeRecord[] {
  if (!label) return [];
  try {
    const v = JSON.parse(label);
    return Array.isArray(v) ? v as ImageVolumeRecord[] : [];
  } catch {
    return [];
  }
}
