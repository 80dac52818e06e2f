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
import { ContainerStore } from "../metadata/containers.ts";
import { ContainerService } from "../services/containers/service.ts";
import { SandboxService } from "../services/sandboxes/service.ts";
import { ContainerNetworks } from "../services/containers/network.ts";
import { RestartManager } from "../services/containers/restart.ts";
import { ConmonRuntime, type RuntimeHandler } from "../runtime/driver.ts";
import { Exchange } from "../events/exchange.ts";
import { systemdBooted } from "../runtime/cgroups_path.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import { type HandlerFeatures, probeHandlerFeatures, probeHostIdmap } from "../runtime/features.ts";

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
  containers: ContainerService;
  sandboxes: SandboxService;
  /** Restarts exited tasks by their containers' `run --restart` policies. */
  restarts: RestartManager;
  events: Exchange;
  /** Runtime handler names (runc, and crun when installed). */
  runtimeHandlers: string[];
  /** What each handler can do here (recursive read-only mounts, user namespaces). */
  handlerFeatures: Record<string, HandlerFeatures>;
  close(): void;
}

/** runc always; crun too when installed (a second runtime handler, as CRI-O offers). */
async function runtimeHandlers(systemdCgroup: boolean): Promise<Record<string, RuntimeHandler>> {
  const handlers: Record<string, RuntimeHandler> = {};
  for (const name of ["runc", "crun"]) {
    for (
      const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    ) {
      try {
        await Deno.stat(`${dir}/${name}`);
        handlers[name] = { name, path: `${dir}/${name}`, systemdCgroup };
        break;
      } catch { /* next */ }
    }
  }
  return handlers;
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
  const events = new Exchange();
  const systemdCgroup = config.cri.cgroup_driver === "systemd";
  if (systemdCgroup && !(await systemdBooted())) {
    throw new FailedPreconditionError(
      'cri.cgroup_driver = "systemd" needs systemd as the init system (/run/systemd/system is ' +
        'missing): use "cgroupfs" on this host',
    );
  }
  const handlers = await runtimeHandlers(systemdCgroup);
  // Probed once: the kernel, the runtimes and the root filesystem do not change under us.
  const hostIdmap = await probeHostIdmap(config.root);
  const handlerFeatures: Record<string, HandlerFeatures> = {};
  for (const [name, h] of Object.entries(handlers)) {
    handlerFeatures[name] = await probeHandlerFeatures(h.path, hostIdmap);
  }
  log.info("runtime handler features", { handlerFeatures, hostIdmap });
  const runtime = new ConmonRuntime({
    stateDir: `${config.state}/runtime`,
    handlers,
    defaultHandler: "runc",
    log,
  });
  const daemonOomScoreAdj =
    Number((await Deno.readTextFile("/proc/self/oom_score_adj").catch(() => "0")).trim()) || 0;
  const containers = new ContainerService({
    containers: new ContainerStore(db),
    namespaces,
    leases,
    images,
    content,
    contentIndex,
    snapshotters,
    defaultSnapshotter,
    runtime,
    handlers: Object.keys(handlers).sort((
      a,
      b,
    ) => (a === "runc" ? -1 : b === "runc" ? 1 : a.localeCompare(b))),
    stateDir: config.state,
    rootDir: config.root,
    events,
    log,
    daemonOomScoreAdj,
    cgroupDriver: systemdCgroup ? "systemd" : "cgroupfs",
    networks: new ContainerNetworks({
      confDir: config.cri.cni_conf_dir,
      binDirs: config.cri.cni_bin_dirs,
      // Apart from the CRI's cache: each side's recovery sees only its own attachments.
      cacheDir: `${config.state}/cni-containers`,
      log: log.child({ component: "container-networks" }),
    }),
  });
  return {
    db,
    content,
    contentIndex,
    images,
    containers,
    sandboxes: new SandboxService({
      network: {
        confDir: config.cri.cni_conf_dir,
        binDirs: config.cri.cni_bin_dirs,
        // CNI ADD results: they must outlive a daemon restart for as long as the pods do.
        cacheDir: `${config.state}/cni`,
        log: log.child({ component: "sandboxes" }),
      },
    }),
    restarts: new RestartManager(containers, events, log),
    events,
    runtimeHandlers: Object.keys(handlers),
    handlerFeatures,
    imageStore,
    leases,
    namespaces,
    snapshotters,
    defaultSnapshotter,
    close: () => db.close(),
  };
}
