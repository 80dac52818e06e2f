/**
 * The images service: the business rules over the content store, the metadata stores, the
 * snapshotters and the registry client — pull, list, get, create/update (tag), delete, check,
 * import, export and garbage collection. Both the management API and the CRI ImageService
 * call this; neither touches a store directly.
 *
 * @example
 * ```ts
 * const images = new ImageService(deps);
 * const img = await images.pull("default", "127.0.0.1:5000/busybox:latest", { unpack: true });
 * console.log(img.size, img.unpacked);
 * ```
 */
import type { ContentStore } from "../../content/store.ts";
import type { MetadataDB } from "../../metadata/db.ts";
import type { ContentIndex } from "../../metadata/content.ts";
import type { Image, ImageStore } from "../../metadata/images.ts";
import type { LeaseStore } from "../../metadata/leases.ts";
import type { NamespaceStore } from "../../metadata/namespaces.ts";
import { collectGarbage, type GCResult } from "../../metadata/gc.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";
import { RegistryClient } from "../../remotes/registry.ts";
import { type Credentials, credentialsFromConfig } from "../../remotes/auth.ts";
import { normalize } from "../../remotes/reference.ts";
import { isKind } from "../../errdefs/errors.ts";
import type { Logger } from "../../log/logger.ts";
import type { Counter, Histogram } from "../../metrics/registry.ts";
import type { MetricsRegistry } from "../../metrics/registry.ts";
import type { RegistryAuth } from "../../config/config.ts";
import { type Descriptor, hostPlatform, type Platform } from "../../images/oci.ts";
import { imageDescriptors, readConfig } from "./manifests.ts";
import { PULL_LEASE_LABEL, pullImage, type PullStatus, snapshotLabel } from "./pull.ts";
import { exportImages } from "./export.ts";
import { importedDescriptors, readTarball } from "./import.ts";
import { unpackImage } from "./unpack.ts";

export interface ImageServiceDeps {
  db: MetadataDB;
  content: ContentStore;
  contentIndex: ContentIndex;
  images: ImageStore;
  leases: LeaseStore;
  namespaces: NamespaceStore;
  snapshotters: Map<string, Snapshotter>;
  defaultSnapshotter: string;
  maxConcurrentDownloads: number;
  registry: { hostsDir?: string; plainHttpHosts: string[]; auths: Record<string, RegistryAuth> };
  log: Logger;
  metrics: MetricsRegistry;
}

/** An image as users see it: the record plus its size and whether it is unpacked. */
export interface ImageView extends Image {
  /** Bytes of content for the host platform (manifests, config, layers), as `ctr images ls`. */
  size: number;
  unpacked: boolean;
}

export interface PullRequestOptions {
  platform?: Platform;
  allPlatforms?: boolean;
  unpack?: boolean;
  snapshotter?: string;
  /** Credentials for this pull only (CRI AuthConfig, `--user`). */
  credentials?: Credentials;
  plainHttpHosts?: string[];
  signal?: AbortSignal;
  onProgress?: (s: PullStatus[]) => void;
}

export interface CheckResult {
  complete: boolean;
  missing: string[];
  presentSize: number;
  totalSize: number;
  unpacked: boolean;
}

export class ImageService {
  readonly #d: ImageServiceDeps;
  readonly #log: Logger;
  #gcRunning: Promise<GCResult> | undefined;
  #gcAgain = false;
  readonly #pullBytes: Counter;
  readonly #pullSeconds: Histogram;

  constructor(deps: ImageServiceDeps) {
    this.#d = deps;
    this.#log = deps.log.child({ component: "images" });
    this.#pullBytes = deps.metrics.counter(
      "k8scontainerd_image_pull_bytes_total",
      "Bytes downloaded by image pulls.",
    );
    this.#pullSeconds = deps.metrics.histogram(
      "k8scontainerd_image_pull_duration_seconds",
      "Image pull time, from resolve to unpacked, by outcome.",
      ["outcome"],
      [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    );
  }

  /** A registry client for one operation: config credentials, then per-request ones. */
  #client(opts: PullRequestOptions): RegistryClient {
    const fromConfig = credentialsFromConfig(
      Object.fromEntries(
        Object.entries(this.#d.registry.auths).map(([host, a]) => [
          host,
          {
            auth: {
              username: a.username,
              password: a.password,
              auth: a.auth,
              identitytoken: a.identity_token,
            },
          },
        ]),
      ),
    );
    return new RegistryClient({
      hostsDir: this.#d.registry.hostsDir,
      plainHttp: [...this.#d.registry.plainHttpHosts, ...(opts.plainHttpHosts ?? [])],
      credentials: (host) => opts.credentials ?? fromConfig(host),
      log: this.#log,
    });
  }

  async pull(
    namespace: string,
    reference: string,
    opts: PullRequestOptions = {},
  ): Promise<ImageView> {
    const start = performance.now();
    const client = this.#client(opts);
    try {
      const img = await pullImage(
        { ...this.#d, onBytes: (n) => this.#pullBytes.inc({}, n) },
        client,
        namespace,
        reference,
        {
          platform: opts.platform,
          allPlatforms: opts.allPlatforms,
          unpack: opts.unpack ?? true,
          snapshotter: opts.snapshotter,
          signal: opts.signal,
          onProgress: opts.onProgress,
        },
      );
      this.#pullSeconds.observe({ outcome: "ok" }, (performance.now() - start) / 1000);
      return await this.view(namespace, img);
    } catch (e) {
      this.#pullSeconds.observe({ outcome: "error" }, (performance.now() - start) / 1000);
      throw e;
    } finally {
      client.close();
    }
  }

  /** Size and unpacked state for the host platform; content that is missing counts as 0. */
  async view(
    namespace: string,
    img: Image,
    platform: Platform = hostPlatform(),
  ): Promise<ImageView> {
    let size = 0;
    let unpacked = false;
    try {
      const descs = await imageDescriptors(this.#d.content, img.target, platform);
      size = descs.reduce((n, d) => n + d.size, 0);
      unpacked = await this.#unpacked(namespace, img.target, platform);
    } catch (e) {
      if (!isKind(e, "not-found")) {
        this.#log.debug("image view incomplete", { image: img.name, err: e });
      }
    }
    return { ...img, size, unpacked };
  }

  async #unpacked(
    namespace: string,
    target: Descriptor,
    platform: Platform,
    snapshotter = this.#d.defaultSnapshotter,
  ): Promise<boolean> {
    const { manifest } = await readConfig(this.#d.content, target, platform);
    let key: string | undefined;
    try {
      key = this.#d.contentIndex.get(namespace, manifest.manifest.config.digest)
        .labels[snapshotLabel(snapshotter)];
    } catch {
      return false;
    }
    if (!key) return manifest.manifest.layers.length === 0;
    try {
      return this.#d.snapshotters.get(snapshotter)?.stat(namespace, key).kind === "committed";
    } catch {
      return false;
    }
  }

  /**
   * Whether an image of that name exists in the namespace: a metadata lookup, reading no
   * content (what callers that only need presence should ask).
   *
   * @example
   * ```ts
   * if (!images.has("k8s.io", "registry.k8s.io/pause:3.9")) await images.pull("k8s.io", "registry.k8s.io/pause:3.9");
   * ```
   */
  has(namespace: string, name: string): boolean {
    try {
      this.#d.images.get(namespace, normalizeName(name));
      return true;
    } catch (e) {
      if (isKind(e, "not-found")) return false;
      throw e;
    }
  }

  get(namespace: string, name: string): Promise<ImageView> {
    return this.view(namespace, this.#d.images.get(namespace, normalizeName(name)));
  }

  async list(namespace: string, filters: string[] = []): Promise<ImageView[]> {
    const out: ImageView[] = [];
    for (const img of this.#d.images.list(namespace, filters)) {
      out.push(await this.view(namespace, img));
    }
    return out;
  }

  /** Gives an image (another) name; the target must be in this namespace's content. */
  async create(
    namespace: string,
    img: { name: string; target: Descriptor; labels?: Record<string, string> },
  ): Promise<ImageView> {
    this.#d.contentIndex.get(namespace, img.target.digest);
    return await this.view(
      namespace,
      this.#d.images.create(namespace, { ...img, name: normalizeName(img.name) }),
    );
  }

  async update(
    namespace: string,
    name: string,
    changes: { target?: Descriptor; labels?: Record<string, string> },
  ): Promise<ImageView> {
    if (changes.target) this.#d.contentIndex.get(namespace, changes.target.digest);
    return await this.view(
      namespace,
      this.#d.images.update(namespace, normalizeName(name), changes),
    );
  }

  /** Removes the name; with `sync`, collects garbage before returning, else soon after. */
  async delete(namespace: string, name: string, opts: { sync?: boolean } = {}): Promise<void> {
    this.#d.images.delete(namespace, normalizeName(name));
    const gc = this.gc();
    if (opts.sync) await gc;
    else gc.catch((e) => this.#log.warn("garbage collection failed", { err: e }));
  }

  async check(
    namespace: string,
    name: string,
    platform: Platform = hostPlatform(),
  ): Promise<CheckResult> {
    const img = this.#d.images.get(namespace, normalizeName(name));
    const missing: string[] = [];
    let present = 0, total = 0;
    let descs: Descriptor[] = [];
    try {
      descs = await imageDescriptors(this.#d.content, img.target, platform);
    } catch (e) {
      if (!isKind(e, "not-found")) throw e;
      descs = [img.target];
    }
    for (const d of descs) {
      total += d.size;
      if (await this.#d.content.exists(d.digest)) present += d.size;
      else missing.push(d.digest);
    }
    const unpacked = missing.length ? false : await this.#unpacked(namespace, img.target, platform);
    return {
      complete: missing.length === 0,
      missing,
      presentSize: present,
      totalSize: total,
      unpacked,
    };
  }

  /** Imports an OCI layout or docker save tarball; unpacks the host platform unless told not to. */
  async import(
    namespace: string,
    stream: ReadableStream<Uint8Array>,
    opts: { baseName?: string; unpack?: boolean; platform?: Platform; snapshotter?: string } = {},
  ): Promise<ImageView[]> {
    this.#d.namespaces.ensure(namespace);
    const lease = this.#d.leases.create(namespace, undefined, {
      labels: { [PULL_LEASE_LABEL]: "import" },
      expiresAt: new Date(Date.now() + 3600_000),
    });
    const snapName = opts.snapshotter || this.#d.defaultSnapshotter;
    try {
      const found = await readTarball(
        { content: this.#d.content, addContent: () => {} },
        stream,
        opts,
      );
      // Everything referenced must be present, and is recorded for this namespace.
      const perImage = new Map<string, Descriptor[]>();
      for (const f of found) {
        const descs = await importedDescriptors(this.#d.content, f.target, opts.platform);
        perImage.set(f.name, descs);
        for (const d of descs) {
          this.#d.leases.addResource(namespace, lease.id, { type: "content", ref: d.digest });
        }
        this.#d.db.transaction(() => {
          for (const d of descs) {
            this.#d.contentIndex.add(namespace, { digest: d.digest, size: d.size });
          }
        });
      }
      if (opts.unpack ?? true) {
        const snapshotter = this.#d.snapshotters.get(snapName);
        if (!snapshotter) throw new Error(`unknown snapshotter "${snapName}"`);
        for (const f of found) {
          const { manifest, config } = await readConfig(this.#d.content, f.target, opts.platform);
          const top = await unpackImage({
            snapshotter,
            namespace,
            manifest: manifest.manifest,
            config,
            content: this.#d.content,
            beforeLayer: (_l, chainID) =>
              Promise.resolve(
                this.#d.leases.addResource(namespace, lease.id, {
                  type: `snapshots/${snapName}`,
                  ref: chainID,
                }),
              ),
          });
          if (top) {
            this.#d.contentIndex.setLabels(namespace, manifest.manifest.config.digest, {
              [snapshotLabel(snapName)]: top,
            });
          }
        }
      }
      const records = this.#d.db.transaction(() =>
        found.map((f) => {
          try {
            this.#d.images.get(namespace, f.name);
            return this.#d.images.update(namespace, f.name, { target: f.target });
          } catch (e) {
            if (!isKind(e, "not-found")) throw e;
            return this.#d.images.create(namespace, { name: f.name, target: f.target, labels: {} });
          }
        })
      );
      const out: ImageView[] = [];
      for (const r of records) out.push(await this.view(namespace, r, opts.platform));
      return out;
    } finally {
      this.#d.leases.delete(namespace, lease.id);
      // Files of a docker save that no image references are collected now.
      this.gc().catch((e) => this.#log.warn("garbage collection failed", { err: e }));
    }
  }

  export(
    namespace: string,
    names: string[],
    opts: { platform?: Platform; all?: boolean } = {},
  ): ReadableStream<Uint8Array> {
    const images = names.map((n) => {
      const img = this.#d.images.get(namespace, normalizeName(n));
      return { name: img.name, target: img.target };
    });
    return exportImages(this.#d.content, images, opts);
  }

  /**
   * Collects garbage; concurrent callers share a run, and a request during a run schedules
   * one more (so a removal is never missed).
   */
  gc(): Promise<GCResult> {
    if (this.#gcRunning) {
      this.#gcAgain = true;
      return this.#gcRunning;
    }
    const run = async (): Promise<GCResult> => {
      try {
        let res: GCResult;
        do {
          this.#gcAgain = false;
          res = await collectGarbage({
            db: this.#d.db,
            content: this.#d.content,
            snapshotters: this.#d.snapshotters,
            log: this.#log,
          });
          if (res.contentRemoved.length || res.blobsDeleted.length || res.snapshotsRemoved.length) {
            this.#log.info("garbage collected", {
              content: res.contentRemoved.length,
              blobs: res.blobsDeleted.length,
              snapshots: res.snapshotsRemoved.length,
              ms: Math.round(res.durationMs),
            });
          }
        } while (this.#gcAgain);
        return res;
      } finally {
        this.#gcRunning = undefined;
      }
    };
    this.#gcRunning = run();
    return this.#gcRunning;
  }

  /**
   * At daemon start: leases of pulls the previous daemon did not finish are dropped (their
   * operation is gone), their partial downloads removed, and garbage collected — so a pull killed midway
   * leaves nothing behind.
   */
  async recover(): Promise<void> {
    for (const ns of this.#d.namespaces.list()) {
      for (const l of this.#d.leases.list(ns.name)) {
        if (l.labels[PULL_LEASE_LABEL] !== undefined) {
          this.#d.leases.delete(ns.name, l.id);
          this.#log.info("dropped the lease of an unfinished pull", {
            namespace: ns.name,
            lease: l.id,
            image: l.labels[PULL_LEASE_LABEL],
          });
        }
      }
    }
    // The writers of any ingest left on disk died with the previous daemon.
    const removed = await this.#d.content.cleanupIngests();
    if (removed.length) this.#log.info("removed stale ingests", { count: removed.length });
    for (const s of this.#d.snapshotters.values()) await s.cleanup();
    await this.gc();
  }
}

/** Accepts familiar names (busybox) wherever a full name is stored. */
function normalizeName(name: string): string {
  // An image id (config digest) is a name of its own, as the CRI stores it.
  if (/^sha256:[0-9a-f]{64}$/.test(name)) return name;
  try {
    return normalize(name);
  } catch {
    return name;
  }
}
