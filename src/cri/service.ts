/**
 * Assembles the CRI v1 RuntimeService and ImageService from the per-RPC-family files in this
 * folder and registers them on the shared gRPC server. An RPC not listed here answers
 * UNIMPLEMENTED until its family lands.
 *
 * Every CRI object lives in the `k8s.io` namespace; images share the daemon's image store with
 * the management API (`k8scontainerd -n k8s.io images ls` shows what the kubelet pulled).
 *
 * @example
 * ```ts
 * registerCri(grpc, { ...stores, log }); // stores from openStores()
 * ```
 */
import type { GrpcServer } from "../grpc/server.ts";
import type { ContentStore } from "../content/store.ts";
import { withCachedListEncodings } from "./list_encoding.ts";
import type { Logger } from "../log/logger.ts";
import type { ImageStore } from "../metadata/images.ts";
import type { ImageService } from "../services/images/service.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { imageFsInfoHandler } from "./imagefs_info.ts";
import { imageStatusHandler } from "./image_status.ts";
import { listImagesHandler, streamImagesHandler } from "./image_list.ts";
import { pullImageHandler } from "./image_pull.ts";
import { removeImageHandler } from "./image_remove.ts";
import { CriImageView, DEFAULT_SANDBOX_IMAGE } from "./image_view.ts";
import { type NetworkStatus, runtimeStatusHandlers } from "./status.ts";
import { version } from "./version.ts";
import type { ContainerService } from "../services/containers/service.ts";
import type { SandboxService } from "../services/sandboxes/service.ts";
import type { MetadataDB } from "../metadata/db.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";
import { CriStore } from "./store.ts";
import { runPodSandbox } from "./sandbox_run.ts";
import { removePodSandbox, stopPodSandbox } from "./sandbox_stop_remove.ts";
import { recoverSandboxes } from "./sandbox_recover.ts";
import { recoverContainers } from "./container_recover.ts";
import { followTaskExits, reconcileTaskStates } from "./task_liveness.ts";
import { listPodSandbox, podSandboxStatus, streamPodSandboxes } from "./sandbox_status.ts";
import {
  createContainer,
  removeContainer,
  startContainer,
  stopContainer,
} from "./container_lifecycle.ts";
import { containerStatus, listContainers, streamContainers } from "./container_status.ts";
import { execSync } from "./exec_sync.ts";
import { containerEvents } from "./container_events.ts";
import { StreamingServer } from "../streaming/server.ts";
import { criStreamingBackend } from "./streaming_backend.ts";
import type { StreamingBackend } from "../streaming/backend.ts";
import { streamingHandlers } from "./streaming_urls.ts";
import type { Exchange } from "../events/exchange.ts";
import type { HandlerFeatures } from "../runtime/features.ts";
import {
  containerStats,
  listContainerStats,
  listPodSandboxStats,
  podSandboxStats,
  streamContainerStats,
  streamPodSandboxStats,
} from "./stats.ts";
import type { CdiOptions } from "../cdi/inject.ts";
import { reopenContainerLog, updateContainerResources } from "./container_update.ts";
import { updatePodSandboxResources } from "./sandbox_update.ts";
import {
  listMetricDescriptors,
  listPodSandboxMetrics,
  streamPodSandboxMetrics,
} from "./pod_metrics.ts";
import { DEFAULT_STREAM_BATCH_SIZE } from "./chunked.ts";
import { ImageServiceService, RuntimeServiceService } from "../grpc/cri_services.ts";

/**
 * What the CRI server needs from the daemon. The first group is what openStores() returns
 * (so `{ ...stores, log }` fits); the rest are CRI settings with containerd's defaults.
 */
export interface CriDeps {
  images: ImageService;
  imageStore: ImageStore;
  content: ContentStore;
  snapshotters: Map<string, Snapshotter>;
  defaultSnapshotter: string;
  log: Logger;
  /** The pause image; pinned, so the kubelet's image GC never removes it. */
  sandboxImage?: string;
  /** More pinned image names (the sandbox image is always pinned). */
  pinned?: string[];
  /** CNI config directory Status reports in its verbose info (default /etc/cni/net.d). */
  cniConfDir?: string;
  /** Replaces the CNI config directory check. */
  networkStatus?: () => Promise<NetworkStatus>;
  /** Default "cgroupfs". */
  cgroupDriver?: "systemd" | "cgroupfs";
  /** CDI devices (default: on, /etc/cdi and /var/run/cdi). */
  cdi?: CdiOptions;
  /** Named runtime handlers (default ["runc"]). */
  runtimeHandlers?: string[];
  /** What each handler can do here (probed at start). */
  handlerFeatures?: Record<string, HandlerFeatures>;
  /** Containers and tasks (the CRI's containers live in k8s.io). */
  containers: ContainerService;
  /** Pod-level resources: the pod network (CNI), /dev/shm mounts, port-forward relays. */
  sandboxes: SandboxService;
  /** The metadata database the CRI keeps its pod and container records in. */
  db: MetadataDB;
  /** The daemon's state dir: pod files under cri/. */
  stateDir: string;
  /** The event exchange GetContainerEvents reads. */
  events: Exchange;
  /** Where the streaming server listens (default 127.0.0.1, a free port). */
  streamAddress?: string;
  streamPort?: number;
  /** Objects per message of the Stream* list RPCs (default 100). */
  streamBatchSize?: number;
  /**
   * Wraps the CRI's streaming backend before the streaming server gets it: the daemon routes
   * management containers' sessions through the same server this way (default: as is).
   */
  streamBackend?: (cri: StreamingBackend) => StreamingBackend;
}

/**
 * Registers both CRI services and starts the streaming server their Exec/Attach/PortForward
 * URLs point at; returns what the daemon stops on shutdown.
 */
export async function registerCri(
  server: GrpcServer,
  deps: CriDeps,
): Promise<{ ctx: CriContext; streaming: StreamingServer; stop: () => void }> {
  const log = deps.log.child({ component: "cri" });
  const sandboxImage = deps.sandboxImage ?? DEFAULT_SANDBOX_IMAGE;
  const view = new CriImageView({
    images: deps.images,
    imageStore: deps.imageStore,
    content: deps.content,
    pinned: [sandboxImage, ...(deps.pinned ?? [])],
    log,
  });
  const ctx: CriContext = {
    containers: deps.containers,
    sandboxes: deps.sandboxes,
    images: deps.images,
    imageView: view,
    store: new CriStore(deps.db),
    stateDir: `${deps.stateDir}/cri`,
    sandboxImage,
    cgroupDriver: deps.cgroupDriver ?? "cgroupfs",
    handlerFeatures: deps.handlerFeatures ?? {},
    defaultHandler: deps.runtimeHandlers?.[0] ?? "runc",
    cdi: deps.cdi,
    log,
  };
  // Before anything can call in: release what a killed daemon's RunPodSandbox half built.
  await recoverSandboxes(ctx);
  // …and what a killed CreateContainer / StartContainer left out of step with the service.
  await recoverContainers(ctx);
  // A pod is READY only while its pause task runs (a reboot, a killed pause process).
  await reconcileTaskStates(ctx);
  const stopping = new AbortController();
  followTaskExits(ctx, deps.events, stopping.signal);
  const streaming = new StreamingServer({
    address: deps.streamAddress ?? "127.0.0.1",
    port: deps.streamPort ?? 0,
    backend: (deps.streamBackend ?? ((b) => b))(criStreamingBackend(ctx)),
    log,
  });
  await streaming.start();
  const batch = () => deps.streamBatchSize ?? DEFAULT_STREAM_BATCH_SIZE;
  const bind = <Req, Res>(fn: (ctx: CriContext, req: Req) => Promise<Res>) => (req: Req) =>
    fn(ctx, req);
  server.add(withCachedListEncodings(RuntimeServiceService), {
    version,
    runPodSandbox: bind(runPodSandbox),
    stopPodSandbox: bind(stopPodSandbox),
    removePodSandbox: bind(removePodSandbox),
    podSandboxStatus: bind(podSandboxStatus),
    listPodSandbox: bind(listPodSandbox),
    streamPodSandboxes: streamPodSandboxes(ctx, batch),
    createContainer: bind(createContainer),
    startContainer: bind(startContainer),
    stopContainer: bind(stopContainer),
    removeContainer: bind(removeContainer),
    containerStatus: bind(containerStatus),
    listContainers: bind(listContainers),
    streamContainers: streamContainers(ctx, batch),
    execSync: bind(execSync),
    containerStats: bind(containerStats),
    listContainerStats: bind(listContainerStats),
    streamContainerStats: streamContainerStats(ctx, batch),
    podSandboxStats: bind(podSandboxStats),
    listPodSandboxStats: bind(listPodSandboxStats),
    streamPodSandboxStats: streamPodSandboxStats(ctx, batch),
    listMetricDescriptors,
    listPodSandboxMetrics: () => listPodSandboxMetrics(ctx),
    streamPodSandboxMetrics: streamPodSandboxMetrics(ctx, batch),
    updatePodSandboxResources: bind(updatePodSandboxResources),
    updateContainerResources: bind(updateContainerResources),
    reopenContainerLog: bind(reopenContainerLog),
    getContainerEvents: containerEvents(ctx, deps.events),
    ...streamingHandlers(ctx, streaming),
    ...runtimeStatusHandlers({
      cniConfDir: deps.cniConfDir,
      networkStatus: deps.networkStatus ?? (() => deps.sandboxes.networkStatus()),
      cgroupDriver: deps.cgroupDriver,
      runtimeHandlers: deps.runtimeHandlers,
      handlerFeatures: deps.handlerFeatures,
      config: { sandboxImage, snapshotter: deps.defaultSnapshotter, stateDir: deps.stateDir },
      log,
    }),
  });
  server.add(ImageServiceService, {
    pullImage: pullImageHandler(view, deps.content, log),
    listImages: listImagesHandler(view),
    streamImages: streamImagesHandler(view, batch),
    imageStatus: imageStatusHandler(view),
    removeImage: removeImageHandler(
      view,
      log,
      (id) => deps.containers.imageVolumeUsers(CRI_NAMESPACE, id),
    ),
    imageFsInfo: imageFsInfoHandler({
      snapshotters: deps.snapshotters,
      snapshotter: deps.defaultSnapshotter,
    }),
  });
  return { ctx, streaming, stop: () => stopping.abort() };
}
