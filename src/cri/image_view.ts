/**
 * The CRI's view of the image store, after containerd's CRI image store: an image is identified
 * by its CONFIG digest (`id`), and every image record in the `k8s.io` namespace whose target
 * resolves (for the host platform) to that config is one of its references. References that
 * parse as tagged names are its `repo_tags`, canonical ones (`repo@sha256:…`) its
 * `repo_digests`; the record named by the id itself (`sha256:…`, which containerd 1.6+ also
 * stores so that lookups by id survive a restart) is neither.
 *
 * Nothing is kept in memory but a cache of what each target digest resolves to (content is
 * immutable, so the cache never goes stale; entries of targets no record uses are dropped on
 * the next full listing). Records written with `ctr -n k8s.io` appear too, as in containerd.
 *
 * Names are written through the metadata ImageStore directly, not ImageService.create/delete:
 * those normalise every name as a docker reference, which turns the id name `sha256:<hex>`
 * into `docker.io/library/sha256:<hex>`. Content is reclaimed with ImageService.gc().
 *
 * @example
 * ```ts
 * const view = new CriImageView({ images, imageStore, content, log });
 * const img = await view.resolve("busybox"); // by tag, digest reference or id
 * if (img) console.log(view.toCri(img).repoTags);
 * ```
 */
import type { ContentStore } from "../content/store.ts";
import { AlreadyExistsError, InvalidArgumentError, isKind } from "../errdefs/errors.ts";
import type { Descriptor, ImageConfig } from "../images/oci.ts";
import type { Logger } from "../log/logger.ts";
import type { Image as ImageRecord, ImageStore } from "../metadata/images.ts";
import { parseReference, withDefaultTag } from "../remotes/reference.ts";
import type { ImageService } from "../services/images/service.ts";
import { imageDescriptors, readConfig } from "../services/images/manifests.ts";
import { chainIDs } from "../snapshots/unpack.ts";
import type { Image as CriImage } from "../gen/runtime/v1/api.ts";

/** Every CRI object lives in this namespace, as in containerd. */
export const CRI_NAMESPACE = "k8s.io";
/** Label containerd's CRI puts on the image records it creates. */
export const MANAGED_LABEL = "io.cri-containerd.image";
/** Label marking a pinned image (never removed by the kubelet's image GC), containerd 1.7+. */
export const PINNED_LABEL = "io.cri-containerd.pinned";
/** The sandbox (pause) image when none is configured: containerd 2.0's default. */
export const DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.9";

/** What the CRI image RPCs need from the daemon. */
export interface CriImageDeps {
  /** Pulls and garbage collection. */
  images: ImageService;
  /** Image records (see the module comment for why not through ImageService). */
  imageStore: ImageStore;
  /** Manifests and configs are read from here. */
  content: ContentStore;
  /** Names of pinned images (normalised or familiar); default: the sandbox image. */
  pinned?: Iterable<string>;
  log?: Logger;
}

/** One CRI image: a config digest and every record that points at it. */
export interface ResolvedImage {
  /** The config digest, `sha256:…`. */
  id: string;
  /** Names of every record that resolves to this config, sorted. */
  references: string[];
  /** The root descriptor (manifest or index) of the most recently updated record. */
  target: Descriptor;
  /** The platform manifest's digest. */
  manifestDigest: string;
  config: ImageConfig;
  /** The chain id of the top layer (the unpacked snapshot's name). */
  chainID: string;
  /** Bytes of root, index, manifest, config and layers for the host platform (ctr's size). */
  size: number;
  pinned: boolean;
}

interface Resolution {
  configDigest: string;
  manifestDigest: string;
  config: ImageConfig;
  chainID: string;
  size: number;
}

/** `sha256:<64 hex>`. */
const FULL_ID_RE = /^sha256:[0-9a-f]{64}$/;
/** A bare hex id or prefix of one (as `crictl images` truncates them). */
const HEX_PREFIX_RE = /^(?:sha256:)?([0-9a-f]{4,64})$/;

/**
 * Throws InvalidArgumentError naming the field unless the request carries an image string.
 *
 * @example
 * ```ts
 * const image = requireImage(req.image?.image, "PullImageRequest.image.image");
 * ```
 */
export function requireImage(image: string | undefined, field: string): string {
  if (typeof image !== "string" || image.trim() === "") {
    throw new InvalidArgumentError(`${field}: an image reference or id is required`);
  }
  return image.trim();
}

/**
 * Normalises a user's reference the way containerd's ParseDockerRef does: registry and
 * `library/` filled in, `:latest` when neither tag nor digest is given, and the tag dropped
 * when a digest is given too. Throws InvalidArgumentError for a malformed reference.
 *
 * @example
 * ```ts
 * normalizeRef("busybox"); // "docker.io/library/busybox:latest"
 * normalizeRef("busybox:1@sha256:" + "a".repeat(64)); // "docker.io/library/busybox@sha256:aaaa…"
 * ```
 */
export function normalizeRef(ref: string): string {
  const r = parseReference(ref);
  if (r.digest !== undefined) return `${r.name}@${r.digest}`;
  return withDefaultTag(r).toString();
}

/**
 * Splits references into CRI repo tags and repo digests (ids and malformed names are neither),
 * as containerd's parseImageReferences.
 *
 * @example
 * ```ts
 * splitReferences(["docker.io/library/busybox:latest", "docker.io/library/busybox@sha256:…", "sha256:…"]);
 * // { tags: ["docker.io/library/busybox:latest"], digests: ["docker.io/library/busybox@sha256:…"] }
 * ```
 */
export function splitReferences(refs: string[]): { tags: string[]; digests: string[] } {
  const tags: string[] = [], digests: string[] = [];
  for (const ref of refs) {
    if (FULL_ID_RE.test(ref)) continue;
    try {
      const r = parseReference(ref);
      if (r.digest !== undefined) digests.push(`${r.name}@${r.digest}`);
      else if (r.tag !== undefined) tags.push(r.toString());
    } catch { /* not a reference: skip, as containerd does */ }
  }
  return { tags, digests };
}

/**
 * The image user as CRI wants it: `uid` when the config's User (before any `:group`) is
 * numeric, `username` otherwise; both empty when the image names no user.
 *
 * @example
 * ```ts
 * imageUser("1000:2000"); // { uid: 1000n, username: "" }
 * imageUser("app"); // { uid: undefined, username: "app" }
 * ```
 */
export function imageUser(user: string | undefined): { uid?: bigint; username: string } {
  if (!user) return { username: "" };
  const name = user.split(":")[0];
  if (/^[0-9]+$/.test(name)) return { uid: BigInt(name), username: "" };
  return { username: name };
}

/** The CRI image view over the `k8s.io` image records; see the module comment. */
export class CriImageView {
  readonly #d: CriImageDeps;
  readonly #pinned: Set<string>;
  readonly #cache = new Map<string, Resolution>();
  /**
   * The last list, while no image record has changed since (ImageStore.generation): the
   * kubelet's ImageStatus before every container start and its ListImages relist then skip
   * the records' rows and their grouping. Kept only when every record resolved (a record
   * whose content is not there yet is looked at again next time).
   */
  #listed: { generation: number; images: readonly ResolvedImage[] } | undefined;
  /** toCri's answers per listed image (the same objects while the list is kept). */
  readonly #asCri = new WeakMap<ResolvedImage, CriImage>();

  constructor(deps: CriImageDeps) {
    this.#d = deps;
    this.#pinned = new Set<string>();
    for (const name of deps.pinned ?? [DEFAULT_SANDBOX_IMAGE]) {
      try {
        this.#pinned.add(normalizeRef(name));
      } catch {
        this.#pinned.add(name);
      }
    }
  }

  /** The images service underneath (pull, gc). */
  get images(): ImageService {
    return this.#d.images;
  }

  /** True when `name` (normalised) is one of the pinned names. */
  isPinnedName(name: string): boolean {
    return this.#pinned.has(name);
  }

  /** What a target resolves to for the host platform; cached by target digest. */
  async #resolution(target: Descriptor): Promise<Resolution> {
    const hit = this.#cache.get(target.digest);
    if (hit) return hit;
    const { manifest, config } = await readConfig(this.#d.content, target);
    const descs = await imageDescriptors(this.#d.content, target);
    const res: Resolution = {
      configDigest: manifest.manifest.config.digest,
      manifestDigest: manifest.desc.digest,
      config,
      chainID: chainIDs(config.rootfs.diff_ids).at(-1) ?? "",
      size: descs.reduce((n, d) => n + d.size, 0),
    };
    this.#cache.set(target.digest, res);
    return res;
  }

  /** Resolves one record, or undefined when its content is missing or unusable here. */
  async #tryResolution(rec: ImageRecord): Promise<Resolution | undefined> {
    try {
      return await this.#resolution(rec.target);
    } catch (e) {
      this.#d.log?.debug("image record is not usable by the CRI", {
        image: rec.name,
        digest: rec.target.digest,
        err: e,
      });
      return undefined;
    }
  }

  /** Every CRI image, grouped by config digest, ordered by id. */
  async list(): Promise<ResolvedImage[]> {
    const generation = this.#d.imageStore.generation;
    if (this.#listed?.generation === generation) return [...this.#listed.images];
    const records = this.#d.imageStore.list(CRI_NAMESPACE);
    let complete = true;
    const groups = new Map<string, { res: Resolution; records: ImageRecord[] }>();
    const used = new Set<string>();
    for (const rec of records) {
      const res = await this.#tryResolution(rec);
      if (!res) {
        complete = false;
        continue;
      }
      used.add(rec.target.digest);
      const g = groups.get(res.configDigest);
      if (g) g.records.push(rec);
      else groups.set(res.configDigest, { res, records: [rec] });
    }
    for (const k of this.#cache.keys()) if (!used.has(k)) this.#cache.delete(k);
    const images = [...groups.values()]
      .map((g) => Object.freeze(this.#assemble(g.res, g.records)))
      .sort((a, b) => a.id.localeCompare(b.id));
    // Only if nothing was written meanwhile (the reads above await content).
    const unchanged = this.#d.imageStore.generation === generation;
    this.#listed = complete && unchanged ? { generation, images } : undefined;
    return [...images];
  }

  #assemble(res: Resolution, records: ImageRecord[]): ResolvedImage {
    const newest = records.reduce((a, b) => (b.updatedAt > a.updatedAt ? b : a));
    const references = records.map((r) => r.name).sort();
    return {
      id: res.configDigest,
      references,
      target: newest.target,
      manifestDigest: res.manifestDigest,
      config: res.config,
      chainID: res.chainID,
      size: res.size,
      pinned: records.some((r) => r.labels[PINNED_LABEL] === "pinned") ||
        references.some((r) => this.#pinned.has(r)),
    };
  }

  /** The image with this id (full, or a unique hex prefix as `crictl images` shows it). */
  async #byId(id: string): Promise<ResolvedImage | undefined> {
    const all = await this.list();
    if (FULL_ID_RE.test(id)) return all.find((i) => i.id === id);
    const m = HEX_PREFIX_RE.exec(id);
    if (!m) return undefined;
    const found = all.filter((i) => i.id.startsWith(`sha256:${m[1]}`));
    if (found.length > 1) {
      throw new InvalidArgumentError(
        `image id prefix "${id}" is ambiguous: it matches ${found.map((i) => i.id).join(", ")}`,
      );
    }
    return found[0];
  }

  /**
   * containerd's localResolve: a full `sha256:` id is looked up as an id; anything else first
   * as a reference (normalised), then as an id or id prefix. Undefined when nothing matches.
   */
  async resolve(refOrId: string): Promise<ResolvedImage | undefined> {
    if (FULL_ID_RE.test(refOrId)) return await this.#byId(refOrId);
    let name: string | undefined;
    try {
      name = normalizeRef(refOrId);
    } catch { /* not a reference: maybe an id */ }
    if (name !== undefined) {
      const rec = this.#record(name);
      const res = rec && await this.#tryResolution(rec);
      if (res) return (await this.list()).find((i) => i.id === res.configDigest);
    }
    return await this.#byId(refOrId);
  }

  #record(name: string): ImageRecord | undefined {
    try {
      return this.#d.imageStore.get(CRI_NAMESPACE, name);
    } catch (e) {
      if (isKind(e, "not-found")) return undefined;
      throw e;
    }
  }

  /** The record `name`, if it exists in the CRI namespace. */
  record(name: string): ImageRecord | undefined {
    return this.#record(name);
  }

  /**
   * Points `name` at `target` with `labels` merged into its own, creating it if needed
   * (containerd's createImageReference). Safe against a concurrent creator.
   */
  upsert(name: string, target: Descriptor, labels: Record<string, string>): ImageRecord {
    for (let attempt = 0;; attempt++) {
      const cur = this.#record(name);
      try {
        if (cur) {
          return this.#d.imageStore.update(CRI_NAMESPACE, name, {
            target,
            labels: { ...cur.labels, ...labels },
          });
        }
        return this.#d.imageStore.create(CRI_NAMESPACE, { name, target, labels });
      } catch (e) {
        // Someone else created or removed it between our read and write: read again.
        const raced = e instanceof AlreadyExistsError || isKind(e, "not-found");
        if (!raced || attempt >= 2) throw e;
      }
    }
  }

  /** Removes the record `name`; false when it was already gone. */
  removeName(name: string): boolean {
    try {
      this.#d.imageStore.delete(CRI_NAMESPACE, name);
      return true;
    } catch (e) {
      if (isKind(e, "not-found")) return false;
      throw e;
    }
  }

  /** The CRI message for an image. */
  toCri(img: ResolvedImage): CriImage {
    let cri = this.#asCri.get(img);
    if (!cri) {
      cri = Object.freeze(this.#toCri(img));
      this.#asCri.set(img, cri);
    }
    return cri;
  }

  #toCri(img: ResolvedImage): CriImage {
    const { tags, digests } = splitReferences(img.references);
    const { uid, username } = imageUser(img.config.config?.User);
    return {
      id: img.id,
      repoTags: tags,
      repoDigests: digests,
      size: BigInt(img.size),
      uid: uid === undefined ? undefined : { value: uid },
      username,
      spec: {
        image: img.id,
        annotations: {},
        userSpecifiedImage: "",
        runtimeHandler: "",
        imageRef: "",
      },
      pinned: img.pinned,
    };
  }
}
