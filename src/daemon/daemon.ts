/**
 * The daemon's lifecycle: load config, take the root lock, open the API socket, register the
 * CRI and management services, serve until SIGTERM/SIGINT, then stop cleanly (in-flight calls
 * finish, the socket is removed, the lock released).
 *
 * @example
 * ```ts
 * import { startDaemon } from "./daemon.ts";
 * const d = await startDaemon(cfg, log);
 * await d.stopped; // resolves after stop()
 * ```
 */
import type { Config } from "../config/config.ts";
import { parseHostPort } from "../config/config.ts";
import type { Logger } from "../log/logger.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { type MetricsServer, serveMetrics } from "../metrics/server.ts";
import { GrpcServer } from "../grpc/server.ts";
import { versionService } from "../api/version.ts";
import { registerCri } from "../cri/service.ts";
import { acquireRootLock } from "./root_lock.ts";
import type { StreamingServer } from "../streaming/server.ts";
import { withManagementStreams } from "../services/containers/stream_sessions.ts";
import { openStores } from "./stores.ts";
import { schedulePageOut, startMemoryTrimmer } from "./memory.ts";
import { imagesApi } from "../api/images.ts";
import { contentApi, leasesApi, namespacesApi, snapshotsApi } from "../api/stores.ts";
import { containersApi, eventsApi, tasksApi } from "../api/containers.ts";
import { prepareSocketPath, secureSocket } from "./socket.ts";
import { closeOnExecAll } from "../../ffi/fs.ts";
import { REVISION, VERSION } from "../version.ts";
import { systemdNotifier } from "./sd_notify.ts";
import {
  ContainersService,
  ContentService,
  EventsService,
  ImagesService,
  LeasesService,
  NamespacesService,
  SnapshotsService,
  TasksService,
  VersionService,
} from "../grpc/services.ts";

export interface Daemon {
  config: Config;
  metrics: MetricsRegistry;
  metricsServer?: MetricsServer;
  /** Stops serving; idempotent. */
  stop(reason?: string): Promise<void>;
  /** Resolves once the daemon has fully stopped. */
  stopped: Promise<void>;
}

export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  await Deno.mkdir(config.root, { recursive: true, mode: 0o711 });
  await Deno.mkdir(config.state, { recursive: true, mode: 0o711 });
  const lock = await acquireRootLock(config.root);
  const cleanup: (() => Promise<void> | void)[] = [() => lock.release()];
  const runCleanup = async () => {
    for (const fn of cleanup.reverse()) {
      try {
        await fn();
      } catch (e) {
        log.warn("cleanup step failed", { err: e });
      }
    }
  };
  try {
    const metrics = new MetricsRegistry();
    const grpc = new GrpcServer({
      log,
      metrics,
      maxRecvMessageSize: config.grpc.max_recv_message_size,
      maxSendMessageSize: config.grpc.max_send_message_size,
      maxConcurrentStreams: config.grpc.max_concurrent_streams,
      implementation: config.grpc.server,
    });
    const stores = await openStores(config, log, metrics);
    cleanup.push(() => stores.close());
    const trimmer = startMemoryTrimmer({ log });
    cleanup.push(() => trimmer.stop());
    // Finish what a killed daemon left half done before anyone can call in.
    await stores.images.recover();
    // Listening before recovery publishes the exits it finds.
    stores.restarts.start();
    cleanup.push(() => stores.restarts.stop());
    await stores.containers.recover();
    await stores.restarts.recover();

    grpc.add(VersionService, versionService);
    grpc.add(NamespacesService, namespacesApi(stores.namespaces));
    grpc.add(ImagesService, imagesApi(stores.images));
    grpc.add(ContentService, contentApi(stores.content, stores.contentIndex, stores.images));
    grpc.add(SnapshotsService, snapshotsApi(stores.snapshotters, stores.defaultSnapshotter));
    grpc.add(LeasesService, leasesApi(stores.leases, stores.images));
    grpc.add(ContainersService, containersApi(stores.containers));
    // The streaming server starts with the CRI below; calls only arrive once we serve.
    const streaming: { server?: StreamingServer } = {};
    grpc.add(TasksService, tasksApi(stores.containers, () => streaming.server!));
    grpc.add(EventsService, eventsApi(stores.events));
    const cri = await registerCri(grpc, {
      ...stores,
      log,
      sandboxImage: config.cri.sandbox_image,
      cniConfDir: config.cri.cni_conf_dir,
      cgroupDriver: config.cri.cgroup_driver as "cgroupfs" | "systemd",
      cdi: { enabled: config.cri.enable_cdi, specDirs: config.cri.cdi_spec_dirs },
      runtimeHandlers: [...new Set(["runc", ...stores.runtimeHandlers])],
      handlerFeatures: stores.handlerFeatures,
      stateDir: config.state,
      streamAddress: config.cri.stream_server_address,
      streamPort: config.cri.stream_server_port,
      streamBatchSize: config.cri.stream_batch_size,
      // One streaming server: `ns/id` sessions are management containers', the rest the CRI's.
      streamBackend: (criBackend) => withManagementStreams(criBackend, stores.containers),
    });
    streaming.server = cri.streaming;
    cleanup.push(() => cri.streaming.stop());
    cleanup.push(() => Promise.resolve(cri.stop()));
    log.info("CRI streaming server listening", { url: cri.streaming.url });

    // One socket: the edge accepts, fixes up the `:authority` grpc-go clients (kubelet,
    // crictl) send and Deno's HTTP/2 refuses, and hands each connection to grpc-js in-process.
    const socket = config.grpc.address;
    await prepareSocketPath(socket);
    await grpc.listen(socket);
    // node:net opens the listening socket without close-on-exec: every child (a CNI plugin, a
    // runc) would inherit it, and one outliving a killed daemon would keep the socket accepting
    // connections nobody answers (the kubelet would hang; the next start would refuse it).
    closeOnExecAll();
    cleanup.push(() => grpc.shutdown());
    await secureSocket(socket, config.grpc.uid, config.grpc.gid);

    let metricsServer: MetricsServer | undefined;
    if (config.metrics.address) {
      const addr = parseHostPort(config.metrics.address)!;
      metricsServer = serveMetrics(metrics, addr);
      cleanup.push(() => metricsServer!.close());
      log.info("metrics endpoint listening", {
        address: `${metricsServer.hostname}:${metricsServer.port}`,
      });
    }

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((r) => (resolveStopped = r));
    let stopping: Promise<void> | undefined;
    const stop = (reason = "requested") => {
      stopping ??= (async () => {
        log.info("stopping", { reason });
        await runCleanup();
        log.info("stopped");
        resolveStopped();
      })();
      return stopping;
    };
    // What start-up alone needed of the binary stays resident until paged out.
    const pageOut = schedulePageOut({ log });
    cleanup.push(() => Promise.resolve(pageOut.cancel()));
    log.info("serving", {
      version: VERSION,
      revision: REVISION,
      address: socket,
      root: config.root,
      state: config.state,
      pid: Deno.pid,
    });
    return { config, metrics, metricsServer, stop, stopped };
  } catch (e) {
    await runCleanup();
    throw e;
  }
}

/** Runs the daemon in the foreground until SIGTERM or SIGINT. */
export async function runDaemon(config: Config, log: Logger): Promise<void> {
  // Handlers go in before the socket exists: a signal during start-up stops cleanly after it.
  let requested: Deno.Signal | undefined;
  let daemon: Daemon | undefined;
  // Taken before anything is spawned: runc must not inherit NOTIFY_SOCKET.
  const systemd = systemdNotifier(log);
  const onSignal = (sig: Deno.Signal) => () => {
    requested = sig;
    systemd.notify("STOPPING=1");
    if (daemon) void daemon.stop(sig);
  };
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", onSignal("SIGTERM")],
    ["SIGINT", onSignal("SIGINT")],
  ];
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  try {
    daemon = await startDaemon(config, log);
    systemd.notify(`READY=1\nSTATUS=serving on ${config.grpc.address}`);
    if (requested) void daemon.stop(requested);
    await daemon.stopped;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}
