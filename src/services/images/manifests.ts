/**
 * Reading an image's descriptor graph out of the content store: the manifests an index holds,
 * the one chosen for a platform, a manifest's config and layers. Shared by pull, check, export,
 * size and the CRI image view.
 *
 * @example
 * ```ts
 * const m = await resolveManifest(content, image.target, hostPlatform());
 * const config = await readJson<ImageConfig>(content, m.manifest.config);
 * ```
 */
import type { ContentStore } from "../../content/store.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../../errdefs/errors.ts";
import {
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  type Index,
  isIndex,
  isManifest,
  type Manifest,
  type Platform,
  platformMatches,
} from "../../images/oci.ts";

/** Manifests and configs are small; refuse anything bigger than this (containerd's limit). */
export const MAX_MANIFEST_SIZE = 4 << 20;

/** Parses a JSON blob, naming the descriptor when it is not valid JSON. */
export function parseJson<T>(bytes: Uint8Array, desc: Descriptor): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (e) {
    throw new InvalidArgumentError(
      `${desc.mediaType} ${desc.digest}: not valid JSON: ${(e as Error).message}`,
    );
  }
}

export async function readJson<T>(content: ContentStore, desc: Descriptor): Promise<T> {
  if (desc.size > MAX_MANIFEST_SIZE) {
    throw new InvalidArgumentError(
      `${desc.digest}: ${desc.size} bytes is over the ${MAX_MANIFEST_SIZE}-byte limit for manifests and configs`,
    );
  }
  return parseJson<T>(await content.readAll(desc.digest, { maxSize: MAX_MANIFEST_SIZE }), desc);
}

/** Checks the fields a manifest must have, naming what is missing. */
export function validateManifest(m: Manifest, desc: Descriptor): Manifest {
  if (m.schemaVersion !== 2 || !m.config || !Array.isArray(m.layers)) {
    throw new InvalidArgumentError(
      `manifest ${desc.digest}: not an OCI/Docker schema 2 image manifest (config or layers missing)`,
    );
  }
  for (const l of [m.config, ...m.layers]) {
    if (
      typeof l.digest !== "string" || typeof l.size !== "number" || typeof l.mediaType !== "string"
    ) {
      throw new InvalidArgumentError(
        `manifest ${desc.digest}: a descriptor lacks mediaType, digest or size`,
      );
    }
  }
  return m;
}

export function validateIndex(i: Index, desc: Descriptor): Index {
  if (i.schemaVersion !== 2 || !Array.isArray(i.manifests)) {
    throw new InvalidArgumentError(
      `index ${desc.digest}: not an OCI index or Docker manifest list`,
    );
  }
  return i;
}

/** Picks the manifests of an index that match a platform (the first match, as containerd). */
export function selectManifests(
  index: Index,
  opts: { platform?: Platform; all?: boolean },
  desc: Descriptor,
): Descriptor[] {
  const manifests = index.manifests.filter((m) => isManifest(m.mediaType) || isIndex(m.mediaType));
  if (opts.all) return manifests;
  const want = opts.platform ?? hostPlatform();
  const match = manifests.find((m) => m.platform && platformMatches(want, m.platform));
  if (!match) {
    const have = manifests.map((m) => (m.platform ? formatPlatform(m.platform) : "unknown")).join(
      ", ",
    );
    throw new NotFoundError(
      `no manifest for platform ${formatPlatform(want)} in ${desc.digest} (it has: ${
        have || "none"
      })`,
    );
  }
  return [match];
}

export interface ResolvedManifest {
  desc: Descriptor;
  manifest: Manifest;
}

/** Follows an image target (index or manifest) to the manifest for a platform. */
export async function resolveManifest(
  content: ContentStore,
  target: Descriptor,
  platform?: Platform,
): Promise<ResolvedManifest> {
  let desc = target;
  for (let depth = 0; depth < 4; depth++) {
    if (isManifest(desc.mediaType)) {
      return { desc, manifest: validateManifest(await readJson<Manifest>(content, desc), desc) };
    }
    if (!isIndex(desc.mediaType)) {
      throw new FailedPreconditionError(`${desc.digest}: unsupported media type ${desc.mediaType}`);
    }
    const index = validateIndex(await readJson<Index>(content, desc), desc);
    desc = selectManifests(index, { platform }, desc)[0];
  }
  throw new InvalidArgumentError(`${target.digest}: indexes nested too deep`);
}

/** Every descriptor an image needs for a platform: root, any index, manifest, config, layers. */
export async function imageDescriptors(
  content: ContentStore,
  target: Descriptor,
  platform?: Platform,
): Promise<Descriptor[]> {
  const out: Descriptor[] = [target];
  let desc = target;
  while (isIndex(desc.mediaType)) {
    const index = validateIndex(await readJson<Index>(content, desc), desc);
    desc = selectManifests(index, { platform }, desc)[0];
    out.push(desc);
  }
  const { manifest } = await resolveManifest(content, desc, platform);
  out.push(manifest.config, ...manifest.layers);
  return out;
}

/** The image config for a platform. */
export async function readConfig(
  content: ContentStore,
  target: Descriptor,
  platform?: Platform,
): Promise<{ manifest: ResolvedManifest; config: ImageConfig }> {
  const manifest = await resolveManifest(content, target, platform);
  const config = await readJson<ImageConfig>(content, manifest.manifest.config);
  if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
    throw new InvalidArgumentError(
      `image config ${manifest.manifest.config.digest}: rootfs.diff_ids missing`,
    );
  }
  if (config.rootfs.diff_ids.length !== manifest.manifest.layers.length) {
    throw new InvalidArgumentError(
      `image ${manifest.desc.digest}: ${manifest.manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids in the config`,
    );
  }
  return { manifest, config };
}
