/**
 * CRI `ImageStatus`, after containerd's image_status.go: the image a tag, digest reference or
 * id (or unique id prefix) names. An image that is not present is NOT an error: the answer
 * simply has no `image`, which is how the kubelet learns it must pull. With `verbose`, `info`
 * holds one key, "info": JSON of `{chainID, imageSpec, manifestDigest, references}` where
 * imageSpec is the OCI image config (containerd's verboseImageInfo plus the two extra fields).
 *
 * @example
 * ```ts
 * server.add(ImageServiceService, { imageStatus: imageStatusHandler(view) });
 * ```
 */
import type { ImageStatusRequest, ImageStatusResponse } from "../gen/runtime/v1/api.ts";
import { type CriImageView, requireImage } from "./image_view.ts";

/** The `ImageStatus` handler. */
export function imageStatusHandler(
  view: CriImageView,
): (req: ImageStatusRequest) => Promise<ImageStatusResponse> {
  return async (req) => {
    const image = requireImage(req.image?.image, "ImageStatusRequest.image.image");
    const img = await view.resolve(image);
    if (!img) return { image: undefined, info: {} };
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        chainID: img.chainID,
        imageSpec: img.config,
        manifestDigest: img.manifestDigest,
        references: img.references,
      });
    }
    return { image: view.toCri(img), info };
  };
}
