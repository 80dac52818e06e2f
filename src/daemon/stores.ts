/**
 * Opens everything the daemon keeps under its root: the metadata database, the content store,
 * the snapshotters, and the images service over them. Overlay is the default snapshotter;
 * where the kernel has no overlayfs the daemon falls back to native (copying) and says so.
 */
import type { Config } from "../config/config.ts";
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import { MetadataDB } from "../metadata/db.ts";
import { ContentStore } from "../content/store.ts";
import { ContentIndex } from "../metadata/content.ts";
import { ImageStore } from "../metadata/images.ts";
import { LeaseStore } from "../metadata/leases.ts";
import { NamespaceStore } from "../metadata/namespaces.ts";
import { OverlaySnapshotter } from "../snapshots/overlay.ts";
import { NativeSnapshotter } from "../snapshots/native.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { ImageService } from "../services/images/service.ts";

export interface Stores {
  db: MetadataDB;
  content: ContentStore;
  contentIndex: ContentIndex;
  images: ImageService;
  imageStore: ImageStore;
  leases: LeaseStore;
  namespaces: NamespaceStore;
  snapshotters: Map<string, Snapshotter>;
  defaultSnapshotter: string;
  close(): void;
}

async function overlaySupported(): Promise<boolean> {
  const fs = await Deno.readTextFile("/proc/filesystems").catch(() => "");
  return /\toverlay$/m.test(fs);
}

export async function openStores(
  config: Config,
  log: Logger,
  metrics: MetricsRegistry,
): Promise<Stores> {
  const db = MetadataDB.open(`${config.root}/metadata.db`);
  const content = new ContentStore(`${config.root}/content`);
  const snapshotters = new Map<string, Snapshotter>();
  const native = new NativeSnapshotter(`${config.root}/snapshots/native`, db);
  snapshotters.set("native", native);
  let defaultSnapshotter = config.images.snapshotter;
  if (await overlaySupported()) {
    snapshotters.set("overlayfs", new OverlaySnapshotter(`${config.root}/snapshots/overlayfs`, db));
  } else if (defaultSnapshotter === "overlayfs") {
    log.warn(
      "overlayfs is not available in this kernel: unpacking with the native (copying) snapshotter",
    );
    defaultSnapshotter = "native";
  }
  const contentIndex = new ContentIndex(db);
  const imageStore = new ImageStore(db);
  const leases = new LeaseStore(db);
  const namespaces = new NamespaceStore(db);
  const images = new ImageService({
    db,
    content,
    contentIndex,
    images: imageStore,
    leases,
    namespaces,
    snapshotters,
    defaultSnapshotter,
    maxConcurrentDownloads: config.images.max_concurrent_downloads,
    registry: {
      hostsDir: config.registry.config_path,
      plainHttpHosts: config.registry.plain_http_hosts,
      auths: config.registry.auths,
    },
    log,
    metrics,
  });
  return {
    db,
    content,
    contentIndex,
    images,
    imageStore,
    leases,
    namespaces,
    snapshotters,
    defaultSnapshotter,
    close: () => db.close(),
  };
}
