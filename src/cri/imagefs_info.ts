/**
 * CRI `ImageFsInfo`, after containerd's imagefs_info.go: the disk the image filesystem uses,
 * i.e. the bytes and inodes of every snapshot of the `k8s.io` namespace in the default
 * snapshotter, with `fs_id.mountpoint` the snapshotter's root (containerd reports
 * `<root>/io.containerd.snapshotter.v1.<name>`; the kubelet asks cadvisor for the capacity of
 * the filesystem holding it). Like containerd, the content store is not counted.
 *
 * Committed snapshots report the usage recorded when they were committed; active ones are
 * walked, at most once per {@linkcode USAGE_TTL_MS} (containerd refreshes its snapshot usage
 * every 10 s in the background). `timestamp` is when the oldest number in the sum was taken,
 * in nanoseconds since the epoch, as containerd reports it.
 *
 * @example
 * ```ts
 * server.add(ImageServiceService, { imageFsInfo: imageFsInfoHandler({ snapshotters, snapshotter: "overlayfs" }) });
 * ```
 */
import type { ImageFsInfoResponse } from "../gen/runtime/v1/api.ts";
import type { Snapshotter, Usage } from "../snapshots/snapshotter.ts";
import { CRI_NAMESPACE } from "./image_view.ts";

/** How long an active snapshot's measured usage is reused. */
export const USAGE_TTL_MS = 10_000;

/** What ImageFsInfo needs. */
export interface ImageFsDeps {
  snapshotters: Map<string, Snapshotter>;
  /** The snapshotter the CRI unpacks into (the daemon's default). */
  snapshotter: string;
  /** Overrides the reported mountpoint (default: the snapshotter's root directory). */
  imageFsPath?: string;
}

interface Measured {
  usage: Usage;
  at: number;
  kind: string;
}

/** The `ImageFsInfo` handler; keeps its usage cache for the daemon's lifetime. */
export function imageFsInfoHandler(deps: ImageFsDeps): () => Promise<ImageFsInfoResponse> {
  const cache = new Map<string, Measured>();
  return async () => {
    const sn = deps.snapshotters.get(deps.snapshotter);
    if (!sn) throw new Error(`ImageFsInfo: snapshotter "${deps.snapshotter}" is not loaded`);
    const mountpoint = deps.imageFsPath ??
      ("root" in sn && typeof sn.root === "string" ? sn.root : "");
    const now = Date.now();
    let oldest = now, bytes = 0, inodes = 0;
    const seen = new Set<string>();
    for (const info of sn.walk(CRI_NAMESPACE)) {
      seen.add(info.key);
      let m = cache.get(info.key);
      const fresh = m && m.kind === info.kind &&
        (info.kind === "committed" || now - m.at < USAGE_TTL_MS);
      if (!fresh) {
        try {
          m = { usage: await sn.usage(CRI_NAMESPACE, info.key), at: Date.now(), kind: info.kind };
        } catch {
          continue; // removed while we walked
        }
        cache.set(info.key, m);
      }
      oldest = Math.min(oldest, m!.at);
      bytes += m!.usage.size;
      inodes += m!.usage.inodes;
    }
    for (const k of cache.keys()) if (!seen.has(k)) cache.delete(k);
    return {
      imageFilesystems: [{
        timestamp: BigInt(oldest) * 1_000_000n,
        fsId: { mountpoint },
        usedBytes: { value: BigInt(bytes) },
        inodesUsed: { value: BigInt(inodes) },
      }],
      containerFilesystems: [],
    };
  };
}
