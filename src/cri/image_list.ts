/**
 * CRI `ListImages` and `StreamImages` (the same, in pages): every image of the `k8s.io`
 * namespace as a CRI Image — id (config digest), repo tags, repo digests, size (the compressed
 * bytes of the host platform's index, manifest, config and layers, what containerd reports),
 * the config's user as `uid` or `username`, and `pinned` for the sandbox image. containerd
 * ignores `filter`; we honour `filter.image.image` like CRI-O does: the one image it resolves
 * to (by tag, digest reference, id or id prefix), or nothing.
 *
 * @example
 * ```ts
 * server.add(ImageServiceService, { listImages: listImagesHandler(view) });
 * ```
 */
import type {
  Image,
  ListImagesRequest,
  ListImagesResponse,
  StreamImagesRequest,
  StreamImagesResponse,
} from "../gen/runtime/v1/api.ts";
import { DEFAULT_STREAM_BATCH_SIZE, streamOf } from "./chunked.ts";
import type { CriImageView, ResolvedImage } from "./image_view.ts";

/** The `ListImages` handler. */
export function listImagesHandler(
  view: CriImageView,
): (req: ListImagesRequest) => Promise<ListImagesResponse> {
  return async (req) => {
    const wanted = req.filter?.image?.image?.trim();
    let images: ResolvedImage[];
    if (wanted) {
      // A filter that names nothing (or is not even a reference) matches nothing.
      const one = await view.resolve(wanted).catch(() => undefined);
      images = one ? [one] : [];
    } else {
      images = await view.list();
    }
    return { images: images.map((i) => view.toCri(i)) };
  };
}

/** The `StreamImages` handler: what ListImages returns (same filter), `size()` images a message. */
export function streamImagesHandler(
  view: CriImageView,
  size: () => number = () => DEFAULT_STREAM_BATCH_SIZE,
) {
  return streamOf<StreamImagesRequest, ListImagesResponse, Image, StreamImagesResponse>(
    listImagesHandler(view),
    (r) => r.images,
    (images) => ({ images }),
    size,
  );
}
