/**
 * CRI `RemoveImage`. Removing an image that is not present succeeds (the kubelet retries
 * removals and expects idempotence, as containerd answers). What goes depends on what names it:
 *
 * - an id (`sha256:…`, bare hex, or a unique prefix): every reference of that image — tags,
 *   repo digests and the id record (containerd semantics);
 * - a tag or digest reference: only that name, unless the image then has no tag left, in which
 *   case its remaining references (repo digests, id record) go too, so `crictl rmi busybox`
 *   removes an image with a single tag entirely. An image with several tags keeps the others.
 *   (containerd removes every reference even when given a tag; docker and CRI-O untag.)
 *
 * An image a container's image volume mounts is refused with FailedPrecondition naming the
 * container (as containerd does) until the container is removed.
 *
 * The last removal waits for garbage collection, so content and snapshots are reclaimed when
 * the call returns.
 *
 * @example
 * ```ts
 * server.add(ImageServiceService, { removeImage: removeImageHandler(view) });
 * ```
 */
import type { RemoveImageRequest, RemoveImageResponse } from "../gen/runtime/v1/api.ts";
import type { Logger } from "../log/logger.ts";
import { type CriImageView, normalizeRef, requireImage, splitReferences } from "./image_view.ts";
import { refuseIfImageVolume } from "./image_volumes.ts";

/** The `RemoveImage` handler. */
export function removeImageHandler(
  view: CriImageView,
  log?: Logger,
  imageVolumeUsers: (imageId: string) => string[] = () => [],
): (req: RemoveImageRequest) => Promise<RemoveImageResponse> {
  return async (req) => {
    const image = requireImage(req.image?.image, "RemoveImageRequest.image.image");
    const img = await view.resolve(image);
    if (!img) return {};
    refuseIfImageVolume(image, img.id, imageVolumeUsers);
    let name: string | undefined;
    try {
      name = normalizeRef(image);
    } catch { /* an id */ }
    let doomed: string[];
    if (name !== undefined && img.references.includes(name)) {
      const rest = img.references.filter((r) => r !== name);
      doomed = splitReferences(rest).tags.length > 0 ? [name] : [name, ...rest];
    } else {
      doomed = img.references;
    }
    let removed = 0;
    for (const n of doomed) if (view.removeName(n)) removed++;
    log?.info("RemoveImage", { image, id: img.id, removed: doomed });
    if (removed > 0) await view.images.gc();
    return {};
  };
}
