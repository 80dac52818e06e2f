/**
 * Unpacking an image's layers, bottom to top, into committed snapshots keyed by chain ID
 * (shared by every image with the same layers). Pull calls it with a hook that waits for each
 * layer's download, so layer N unpacks while later layers still download; import calls it with
 * everything present.
 *
 * @example
 * ```ts
 * const top = await unpackImage({ snapshotter, namespace: "default", manifest, config, content });
 * ```
 */
import type { ContentStore } from "../../content/store.ts";
import type { Descriptor, ImageConfig, Manifest } from "../../images/oci.ts";
import { layerCompression } from "../../images/oci.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";
import { chainIDs, unpackLayer } from "../../snapshots/unpack.ts";

export interface UnpackImageOptions {
  snapshotter: Snapshotter;
  namespace: string;
  manifest: Manifest;
  config: ImageConfig;
  content: ContentStore;
  /** Runs before layer i is unpacked (e.g. waits for its download). */
  beforeLayer?: (layer: Descriptor, chainID: string) => Promise<void>;
  afterLayer?: (layer: Descriptor, chainID: string) => void;
}

/** Returns the top layer's chain ID (the image's rootfs snapshot); undefined for no layers. */
export async function unpackImage(o: UnpackImageOptions): Promise<string | undefined> {
  const ids = chainIDs(o.config.rootfs.diff_ids);
  for (let i = 0; i < o.manifest.layers.length; i++) {
    const layer = o.manifest.layers[i];
    await o.beforeLayer?.(layer, ids[i]);
    await unpackLayer({
      snapshotter: o.snapshotter,
      namespace: o.namespace,
      parentChainID: i > 0 ? ids[i - 1] : undefined,
      chainID: ids[i],
      diffID: o.config.rootfs.diff_ids[i],
      stream: o.content.read(layer.digest),
      compression: layerCompression(layer.mediaType) ?? "auto",
    });
    o.afterLayer?.(layer, ids[i]);
  }
  return ids.at(-1);
}
