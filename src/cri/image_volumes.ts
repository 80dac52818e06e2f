/**
 * CRI image volumes (KEP 4639, `Mount.image` and `Mount.image_sub_path`): the kubelet pulls
 * the image first and sends its image_ref in `Mount.image.image`; the runtime mounts that
 * image's filesystem read-only at `container_path` instead of `host_path`. This file turns
 * such mounts into the container service's {@link ImageVolumeRequest}s (the mounting itself,
 * the sub path resolution and the clean-up live in services/containers/image_volumes.ts), and
 * answers RemoveImage's question whether an image is held by a container's image volume.
 *
 * @example
 * ```ts
 * import { imageVolumes } from "./image_volumes.ts";
 * const volumes = await imageVolumes(ctx, config.mounts); // [{ image, destination, subPath, field }]
 * ```
 */
import type { Mount } from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import { checkSubPath, type ImageVolumeRequest } from "../services/containers/image_volumes.ts";
import type { CriImageView } from "./image_view.ts";

/**
 * Whether a CRI mount is an image volume (its `image.image` is set).
 *
 * @example
 * ```ts
 * import { isImageVolume } from "./image_volumes.ts";
 * isImageVolume({ image: { image: "sha256:…" } } as Mount); // true
 * ```
 */
export function isImageVolume(m: Pick<Mount, "image">): boolean {
  return !!m.image?.image;
}

/**
 * Checks what can be checked of an image mount without looking anything up: an absolute
 * container path, no host path beside the image, a sub path that stays inside the image
 * (relative, no `..`).
 *
 * @throws InvalidArgumentError naming the field (`mounts[i].image_sub_path`, …).
 * @example
 * ```ts
 * import { checkImageMount } from "./image_volumes.ts";
 * checkImageMount({ containerPath: "/data", hostPath: "", imageSubPath: "../x" }, 0); // throws
 * ```
 */
export function checkImageMount(
  m: Pick<Mount, "containerPath" | "hostPath" | "imageSubPath">,
  i: number,
): void {
  if (!m.containerPath.startsWith("/")) {
    throw new InvalidArgumentError(`mounts[${i}].container_path must be absolute`);
  }
  if (m.hostPath) {
    throw new InvalidArgumentError(
      `mounts[${i}]: host_path and image are mutually exclusive (an image volume has no host path)`,
    );
  }
  checkSubPath(m.imageSubPath ?? "", `mounts[${i}].image_sub_path`);
}

/**
 * The image volumes among a container's CRI mounts, each image resolved to a name the
 * container service finds it by.
 *
 * @throws InvalidArgumentError as {@link checkImageMount}; NotFoundError naming
 * `mounts[i].image` and the image when it is not present.
 * @example
 * ```ts
 * import { imageVolumes } from "./image_volumes.ts";
 * await imageVolumes(view, [{ containerPath: "/data", image: { image: "sha256:…" } } as Mount]);
 * ```
 */
export async function imageVolumes(
  view: Pick<CriImageView, "resolve">,
  mounts: Mount[],
): Promise<ImageVolumeRequest[]> {
  const out: ImageVolumeRequest[] = [];
  for (const [i, m] of mounts.entries()) {
    if (!isImageVolume(m)) continue;
    checkImageMount(m, i);
    const ref = m.image!.image;
    const img = await view.resolve(ref);
    if (!img) {
      throw new NotFoundError(`mounts[${i}].image: image "${ref}" (pull it first)`);
    }
    out.push({
      image: img.references[0] ?? ref,
      destination: m.containerPath,
      subPath: m.imageSubPath ?? "",
      field: `mounts[${i}]`,
    });
  }
  return out;
}

/**
 * Refuses to remove an image that a container's image volume mounts.
 *
 * @throws FailedPreconditionError naming the image and the container(s).
 * @example
 * ```ts
 * import { refuseIfImageVolume } from "./image_volumes.ts";
 * refuseIfImageVolume("busybox", "sha256:…", () => []); // fine
 * ```
 */
export function refuseIfImageVolume(
  image: string,
  imageId: string,
  users: (imageId: string) => string[],
): void {
  const ids = users(imageId);
  if (ids.length === 0) return;
  throw new FailedPreconditionError(
    `image "${image}" (${imageId}) is in use as an image volume by container${
      ids.length > 1 ? "s" : ""
    } ${ids.join(", ")}: remove ${ids.length > 1 ? "them" : "it"} first`,
  );
}
