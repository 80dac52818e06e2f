/**
 * Pulling an image into a namespace: resolve the reference, fetch the index/manifest/config
 * into the content store, download layers with bounded parallelism (resuming an interrupted
 * ingest), and unpack each layer into a snapshot as soon as it and the one below are ready —
 * so unpacking overlaps the downloads still running. Everything is held by a lease until the
 * image record is written in one transaction: a pull that fails or is killed leaves no image,
 * and its leftovers are collected later.
 *
 * @example
 * ```ts
 * const image = await pullImage(deps, client, "default", "127.0.0.1:5000/busybox:latest", {
 *   unpack: true,
 *   onProgress: (s) => console.log(s),
 * });
 * ```
 */
import type { ContentStore } from "../../content/store.ts";
import type { ContentIndex } from "../../metadata/content.ts";
import type { Image, ImageStore } from "../../metadata/images.ts";
import type { LeaseStore } from "../../metadata/leases.ts";
import type { NamespaceStore } from "../../metadata/namespaces.ts";
import type { MetadataDB } from "../../metadata/db.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";
import { unpackImage } from "./unpack.ts";
import type { RegistryClient } from "../../remotes/registry.ts";
import { normalize } from "../../remotes/reference.ts";
import { FailedPreconditionError, InvalidArgumentError, isKind } from "../../errdefs/errors.ts";
import {
  type Descriptor,
  hostPlatform,
  type ImageConfig,
  type Index,
  isConfig,
  isIndex,
  isManifest,
  layerCompression,
  type Manifest,
  type Platform,
  platformMatches,
} from "../../images/oci.ts";
import {
  MAX_MANIFEST_SIZE,
  parseJson,
  selectManifests,
  validateIndex,
  validateManifest,
} from "./manifests.ts";
import type { Logger } from "../../log/logger.ts";

/** What a pull needs from the stores below it. */
export interface PullDeps {
  db: MetadataDB;
  content: ContentStore;
  contentIndex: ContentIndex;
  images: ImageStore;
  leases: LeaseStore;
  namespaces: NamespaceStore;
  snapshotters: Map<string, Snapshotter>;
  defaultSnapshotter: string;
  maxConcurrentDownloads: number;
  log: Logger;
  /** Called with bytes downloaded, for metrics. */
  onBytes?: (n: number) => void;
}

export type PullState =
  | "resolving"
  | "resolved"
  | "waiting"
  | "downloading"
  | "exists"
  | "unpacking"
  | "done";

export interface PullStatus {
  ref: string;
  state: PullState;
  mediaType: string;
  offset: number;
  total: number;
}

export interface PullOptions {
  platform?: Platform;
  allPlatforms?: boolean;
  unpack: boolean;
  snapshotter?: string;
  signal?: AbortSignal;
  onProgress?: (statuses: PullStatus[]) => void;
}

/** The label that ties an image config to its unpacked top snapshot, for GC and `unpacked`. */
export function snapshotLabel(snapshotter: string): string {
  return `containerd.io/gc.ref.snapshot.${snapshotter}`;
}

/** Label naming the image a pull lease protects; the daemon drops such leases at start. */
export const PULL_LEASE_LABEL = "k8scontainerd.io/pull";

function blobRef(desc: Descriptor): string {
  const kind = isIndex(desc.mediaType)
    ? "index"
    : isManifest(desc.mediaType)
    ? "manifest"
    : isConfig(desc.mediaType)
    ? "config"
    : "layer";
  return `${kind}-${desc.digest}`;
}

/** Reports progress at most every 100 ms, and at once on a state change. */
class Progress {
  #statuses = new Map<string, PullStatus>();
  #dirty = new Set<string>();
  #timer?: ReturnType<typeof setTimeout>;
  constructor(readonly emit?: (s: PullStatus[]) => void) {}

  set(desc: Descriptor | string, state: PullState, offset = 0, total = 0, mediaType = "") {
    const ref = typeof desc === "string" ? desc : blobRef(desc);
    const prev = this.#statuses.get(ref);
    const s: PullStatus = {
      ref,
      state,
      mediaType: typeof desc === "string" ? mediaType : desc.mediaType,
      offset,
      total: typeof desc === "string" ? total : desc.size,
    };
    this.#statuses.set(ref, s);
    this.#dirty.add(ref);
    if (!prev || prev.state !== state) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), 100);
  }

  flush() {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.emit || !this.#dirty.size) return;
    const out = [...this.#dirty].map((r) => this.#statuses.get(r)!);
    this.#dirty.clear();
    this.emit(out);
  }
}

/** A counting semaphore for bounded parallel downloads. */
class Limiter {
  #active = 0;
  #queue: (() => void)[] = [];
  constructor(readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.max) await new Promise<void>((r) => this.#queue.push(r));
    this.#active++;
    try {
      return await fn();
    } finally {
      this.#active--;
      this.#queue.shift()?.();
    }
  }
}

export async function pullImage(
  deps: PullDeps,
  client: RegistryClient,
  namespace: string,
  reference: string,
  opts: PullOptions,
): Promise<Image> {
  const name = normalize(reference);
  const log = deps.log.child({ image: name, namespace });
  const snapshotterName = opts.snapshotter || deps.defaultSnapshotter;
  const snapshotter = deps.snapshotters.get(snapshotterName);
  if (opts.unpack && !snapshotter) {
    throw new InvalidArgumentError(
      `unknown snapshotter "${snapshotterName}" (have: ${
        [...deps.snapshotters.keys()].join(", ")
      })`,
    );
  }
  deps.namespaces.ensure(namespace);
  const progress = new Progress(opts.onProgress);
  const lease = deps.leases.create(namespace, undefined, {
    labels: { [PULL_LEASE_LABEL]: name },
    expiresAt: new Date(Date.now() + 3600_000),
  });
  const started = performance.now();
  try {
    progress.set(name, "resolving");
    const { name: resolvedName, descriptor: root } = await client.resolve(name);
    progress.set(name, "resolved", 0, root.size, root.mediaType);

    /** Stores a small JSON blob (index, manifest, config) and returns its bytes. */
    const fetchJsonBlob = async (desc: Descriptor): Promise<Uint8Array> => {
      if (desc.size > MAX_MANIFEST_SIZE) {
        throw new InvalidArgumentError(
          `${name}: ${desc.mediaType} ${desc.digest} is ${desc.size} bytes, over the ${MAX_MANIFEST_SIZE}-byte limit`,
        );
      }
      deps.leases.addResource(namespace, lease.id, { type: "content", ref: desc.digest });
      let bytes: Uint8Array;
      if (await deps.content.exists(desc.digest)) {
        bytes = await deps.content.readAll(desc.digest, { maxSize: MAX_MANIFEST_SIZE });
      } else {
        bytes = isConfig(desc.mediaType) || !(isIndex(desc.mediaType) || isManifest(desc.mediaType))
          ? new Uint8Array(
            await new Response(await client.fetchBlob(resolvedName, desc, { signal: opts.signal }))
              .arrayBuffer(),
          )
          : await client.fetchManifest(resolvedName, desc);
        await whileLocked(
          deps.content,
          desc,
          opts.signal,
          () =>
            deps.content.writeBlob(blobRef(desc), bytes, {
              expected: desc.digest,
              size: desc.size,
            }),
        );
      }
      deps.contentIndex.add(namespace, { digest: desc.digest, size: desc.size });
      progress.set(desc, "done", desc.size);
      return bytes;
    };

    // The manifests to fetch: the root itself, or those an index selects.
    const want = opts.platform ?? hostPlatform();
    const manifests: Descriptor[] = [];
    const visit = async (desc: Descriptor, depth: number): Promise<void> => {
      if (depth > 3) throw new InvalidArgumentError(`${name}: indexes nested too deep`);
      if (isManifest(desc.mediaType)) {
        manifests.push(desc);
        return;
      }
      if (!isIndex(desc.mediaType)) {
        throw new FailedPreconditionError(
          `${name}: unsupported manifest media type ${desc.mediaType}`,
        );
      }
      const index = validateIndex(parseJson<Index>(await fetchJsonBlob(desc), desc), desc);
      for (const m of selectManifests(index, { platform: want, all: opts.allPlatforms }, desc)) {
        await visit(m, depth + 1);
      }
    };
    await visit(root, 0);
    if (isManifest(root.mediaType)) await fetchJsonBlob(root);

    // Manifests and configs; the unpack target is the manifest for the wanted platform.
    const images: { desc: Descriptor; manifest: Manifest; config: ImageConfig }[] = [];
    for (const desc of manifests) {
      const manifest = validateManifest(parseJson<Manifest>(await fetchJsonBlob(desc), desc), desc);
      const config = parseJson<ImageConfig>(await fetchJsonBlob(manifest.config), manifest.config);
      if (
        !config.rootfs || !Array.isArray(config.rootfs.diff_ids) ||
        config.rootfs.diff_ids.length !== manifest.layers.length
      ) {
        throw new InvalidArgumentError(
          `${name}: image config ${manifest.config.digest} lists ${
            config.rootfs?.diff_ids?.length ?? 0
          } diff_ids for ${manifest.layers.length} layers`,
        );
      }
      for (const l of manifest.layers) {
        if (layerCompression(l.mediaType) === null) {
          throw new FailedPreconditionError(
            `${name}: layer ${l.digest} has unsupported media type ${l.mediaType}`,
          );
        }
      }
      images.push({ desc, manifest, config });
    }

    // Layer downloads, bounded, deduplicated across platforms.
    const limiter = new Limiter(Math.max(1, deps.maxConcurrentDownloads));
    const downloads = new Map<string, Promise<void>>();
    const download = (desc: Descriptor): Promise<void> => {
      let p = downloads.get(desc.digest);
      if (!p) {
        progress.set(desc, "waiting");
        p = limiter.run(() =>
          downloadLayer(deps, client, resolvedName, desc, progress, opts.signal)
        );
        // Leased before the download starts so GC never takes a finished blob from under us.
        deps.leases.addResource(namespace, lease.id, { type: "content", ref: desc.digest });
        deps.leases.addResource(namespace, lease.id, { type: "ingests", ref: blobRef(desc) });
        downloads.set(desc.digest, p);
      }
      return p;
    };
    for (const img of images) for (const l of img.manifest.layers) void download(l).catch(() => {});

    // Unpack the platform's image in layer order, each layer as soon as it has arrived.
    const target = images.find((i) =>
      platformMatches(want, {
        os: i.config.os,
        architecture: i.config.architecture,
        variant: i.config.variant,
      })
    ) ??
      images[0];
    let unpackedChain: string | undefined;
    if (opts.unpack && target) {
      unpackedChain = await unpackImage({
        snapshotter: snapshotter!,
        namespace,
        manifest: target.manifest,
        config: target.config,
        content: deps.content,
        beforeLayer: async (layer, chainID) => {
          await download(layer);
          deps.leases.addResource(namespace, lease.id, {
            type: `snapshots/${snapshotterName}`,
            ref: chainID,
          });
          progress.set(layer, "unpacking", layer.size);
        },
        afterLayer: (layer) => progress.set(layer, "done", layer.size),
      });
    }
    await Promise.all(downloads.values());
    for (const img of images) {
      for (const l of img.manifest.layers) {
        deps.contentIndex.add(namespace, { digest: l.digest, size: l.size });
      }
    }

    // One transaction makes the image visible with its snapshot reference, or nothing.
    const record = deps.db.transaction(() => {
      if (unpackedChain && target) {
        deps.contentIndex.setLabels(namespace, target.manifest.config.digest, {
          [snapshotLabel(snapshotterName)]: unpackedChain,
        });
      }
      try {
        deps.images.get(namespace, name);
        return deps.images.update(namespace, name, { target: root });
      } catch (e) {
        if (!isKind(e, "not-found")) throw e;
        return deps.images.create(namespace, { name, target: root, labels: {} });
      }
    });
    progress.set(name, "done", root.size, root.size, root.mediaType);
    progress.flush();
    log.info("pulled", { digest: root.digest, ms: Math.round(performance.now() - started) });
    return record;
  } finally {
    progress.flush();
    try {
      deps.leases.delete(namespace, lease.id);
    } catch (e) {
      log.warn("could not release pull lease", { lease: lease.id, err: e });
    }
  }
}

/**
 * Runs `write` (which opens a content writer for `desc`'s ref), waiting while another pull holds
 * that ref — two pods starting at once both pull the pause image, a Deployment's replicas their
 * image — with a randomized backoff up to 2 s between tries, as containerd's content.OpenWriter
 * does. Resolves to undefined, without writing, once the other pull has committed the blob.
 *
 * @example
 * ```ts
 * await whileLocked(cs, desc, undefined, () => cs.writeBlob(`config-${desc.digest}`, bytes));
 * ```
 */
export async function whileLocked<T>(
  content: ContentStore,
  desc: Descriptor,
  signal: AbortSignal | undefined,
  write: () => Promise<T | undefined>,
): Promise<T | undefined> {
  for (let backoff = 16;; backoff = Math.min(backoff * 2, 2048)) {
    try {
      return await write();
    } catch (e) {
      if (!isKind(e, "unavailable")) throw e;
    }
    signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, Math.random() * backoff));
    signal?.throwIfAborted();
    if (await content.exists(desc.digest)) return undefined;
  }
}

async function downloadLayer(
  deps: PullDeps,
  client: RegistryClient,
  name: string,
  desc: Descriptor,
  progress: Progress,
  signal?: AbortSignal,
): Promise<void> {
  if (await deps.content.exists(desc.digest)) {
    progress.set(desc, "exists", desc.size);
    return;
  }
  const ref = blobRef(desc);
  const w = await whileLocked(deps.content, desc, signal, async () => {
    const w = await deps.content.writer(ref, { total: desc.size, expected: desc.digest });
    // The pull that held the ref may have just committed the blob.
    if (!(await deps.content.exists(desc.digest))) return w;
    await w.abort().catch(() => {});
    return undefined;
  });
  if (!w) {
    progress.set(desc, "exists", desc.size);
    return;
  }
  try {
    let offset = w.offset;
    if (offset > desc.size) {
      await w.truncate(0);
      offset = 0;
    }
    progress.set(desc, "downloading", offset);
    const body = await client.fetchBlob(name, desc, { offset, signal });
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await w.write(value);
      offset += value.length;
      deps.onBytes?.(value.length);
      progress.set(desc, "downloading", offset);
    }
    await w.commit({ size: desc.size, digest: desc.digest });
  } catch (e) {
    // Keep a partial ingest for a later resume unless the bytes were wrong.
    if (isKind(e, "invalid-argument")) await w.abort().catch(() => {});
    else await w.close().catch(() => {});
    throw e;
  }
  progress.set(desc, "done", desc.size);
}
