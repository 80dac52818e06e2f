/**
 * Containers and tasks: the business rules between the management API (and later the CRI)
 * and the stores and drivers below. A container is a record plus a bundle: its root snapshot
 * prepared from the image and mounted at `<state>/bundles/<ns>/<id>/rootfs`, and the OCI
 * config.json built by the pure spec builder. A task is that bundle run by the container
 * runtime (the ContainerRuntime interface; conmon + runc in the daemon), surviving daemon restarts; exits are published as events. A container
 * created with network "cni" gets a CNI attachment (network.ts) for as long as a task exists;
 * restart policies are applied by the restart manager (restart.ts) from the exit events.
 *
 * @example
 * ```ts
 * const svc = new ContainerService(deps);
 * await svc.create("default", { id: "web", image: "busybox", args: ["sleep", "60"] });
 * await svc.createTask("default", "web");
 * await svc.start("default", "web");
 * ```
 */
import type {
  CgroupBlkioEntry,
  CgroupMemoryEntry,
  CgroupStats,
} from "../../runtime/cgroup_stats.ts";
import { type CgroupDriver, cgroupsPath, hostCgroupV2 } from "../../runtime/cgroups_path.ts";
import {
  type Container,
  type ContainerStore,
  validateContainerId,
} from "../../metadata/containers.ts";
import type { ContentIndex } from "../../metadata/content.ts";
import type { LeaseStore } from "../../metadata/leases.ts";
import type { NamespaceStore } from "../../metadata/namespaces.ts";
import { LABEL_GC_ROOT } from "../../metadata/gc.ts";
import type { ContentStore } from "../../content/store.ts";
import type { Snapshotter } from "../../snapshots/snapshotter.ts";
import { mountAll, unmountAll } from "../../snapshots/mount.ts";
import {
  idmappedVolume,
  mountIdmappedRootfs,
  mountIdmappedSnapshot,
  type RootfsIdmap,
  unmountIdmappedRootfs,
} from "./idmapped_rootfs.ts";
import {
  IMAGE_VOLUME_SNAPSHOT_LABEL,
  imageVolumeDir,
  imageVolumeKey,
  type ImageVolumeRecord,
  type ImageVolumeRequest,
  parseImageVolumes,
  resolveSubPath,
  unmountImageVolumes,
} from "./image_volumes.ts";
import type { ImageService } from "../images/service.ts";
import { readConfig } from "../images/manifests.ts";
import { snapshotLabel } from "../images/pull.ts";
import { resolveInRoot } from "../../archive/apply.ts";
import type { Exchange } from "../../events/exchange.ts";
import type { Logger } from "../../log/logger.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  isKind,
  NotFoundError,
} from "../../errdefs/errors.ts";
import {
  buildSpec,
  clampOomScoreAdj,
  type SpecOptions,
  type UserMount,
} from "../../runtime/spec/builder.ts";
import { capabilitiesFromMask } from "../../runtime/spec/capabilities.ts";
import type { Spec } from "../../runtime/spec/types.ts";
import type {
  AttachStreams,
  ContainerRuntime,
  ContainerState as TaskState,
  ExecProcess,
  RecoveredContainer,
} from "../../runtime/runtime.ts";
import { resolveUser } from "../../runtime/spec/user.ts";
import { exitWake } from "../../runtime/cri_log.ts";
import { readLog } from "./logs.ts";
import { failpoint } from "../../failpoints/failpoints.ts";
import { cniContainerId, type ContainerNetworks, type PortMapping } from "./network.ts";
import {
  parseRestartPolicy,
  RESTART_COUNT_LABEL,
  RESTART_POLICY_LABEL,
  USER_STOPPED_LABEL,
} from "./restart.ts";

export interface ContainerServiceDeps {
  /** How container cgroups are named and created (runc's --systemd-cgroup); cgroupfs if unset. */
  cgroupDriver?: CgroupDriver;
  containers: ContainerStore;
  /** Namespaces to look through for root snapshots left by a create cut short. */
  namespaces: NamespaceStore;
  /** A root snapshot a live lease names is someone's work in progress: never undone. */
  leases: LeaseStore;
  images: ImageService;
  content: ContentStore;
  contentIndex: ContentIndex;
  snapshotters: Map<string, Snapshotter>;
  defaultSnapshotter: string;
  /** Runs the tasks: the conmon + runc driver in the daemon, any {@link ContainerRuntime}. */
  runtime: ContainerRuntime;
  /** Runtime handler names the driver knows; the first is the default. */
  handlers: string[];
  stateDir: string;
  rootDir: string;
  events: Exchange;
  log: Logger;
  /** The daemon's own oom_score_adj: containers cannot go below it. */
  daemonOomScoreAdj: number;
  /** CNI attachments for containers created with network "cni"; none: such creates fail. */
  networks?: ContainerNetworks;
}

export interface CreateContainerOptions {
  id: string;
  image: string;
  runtime?: string;
  labels?: Record<string, string>;
  args?: string[];
  env?: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  stdin?: boolean;
  /** Close the container's stdin when the first attach ends (CRI stdin_once). */
  stdinOnce?: boolean;
  mounts?: { type: string; source: string; destination: string; options: string[] }[];
  netHost?: boolean;
  readonlyRootfs?: boolean;
  privileged?: boolean;
  snapshotter?: string;
  hostname?: string;
  /** Replaces the image's entrypoint too (CRI `command`). */
  command?: string[];
  /**
   * Anything else the OCI spec needs (the CRI sets namespaces to join, its mounts, security
   * context and resources this way); merged over what the fields above produce.
   */
  specOverrides?: Partial<SpecOptions>;
  /**
   * The cgroup parent the kubelet chose (a path for cgroupfs, a slice for systemd; "" for the
   * driver's default). Unset: the namespace's own group.
   */
  cgroupParent?: string;
  /**
   * The container runs in a user namespace with this mapping: its rootfs is mounted idmapped
   * through it (see idmapped_rootfs.ts). The user namespace itself goes in specOverrides.
   */
  idmap?: RootfsIdmap;
  /**
   * Images to mount read-only into the container (CRI image volumes): each a view snapshot
   * mounted under the bundle and bound at its destination (see image_volumes.ts).
   */
  imageVolumes?: ImageVolumeRequest[];
  /** "cni": a netns of its own attached to the CNI network while a task exists. */
  network?: string;
  /** With network "cni": host ports published to the container (portmap). */
  ports?: PortMapping[];
  /** always, unless-stopped, on-failure[:N] (see restart.ts); "" or "no": none. */
  restartPolicy?: string;
}

/** A task's state as the runtime reports it. */
export type { TaskState };

export interface TaskView extends TaskState {
  id: string;
  logPath: string;
}

/**
 * The label {@link ContainerService.create} puts on a container's root snapshot (value: the
 * container id), in the same row insert that creates the snapshot. It is what tells the
 * service's own snapshots from those a client prepared through the snapshots API.
 */
export const CONTAINER_SNAPSHOT_LABEL = "io.k8scontainerd.container";

/** Where the daemon's own container labels live; clients may not set keys under it. */
const RESERVED_LABEL_PREFIX = "io.k8scontainerd.";
/** Labels the daemon keeps on a container for its task. */
const LOG_PATH_LABEL = "io.k8scontainerd.log-path";
const TTY_LABEL = "io.k8scontainerd.tty";
/** "stdin" or "stdin-once": the task keeps the container's stdin open for attach. */
const STDIN_LABEL = "io.k8scontainerd.stdin";
/** "true": the rootfs is idmapped through a pod's user namespace (never remounted plain). */
const IDMAP_LABEL = "io.k8scontainerd.idmapped-rootfs";
/** JSON list of the container's image volumes ({@link ImageVolumeRecord}). */
export const IMAGE_VOLUMES_LABEL = "io.k8scontainerd.image-volumes";
/**
 * Set on a container's record when its delete begins. The record goes last, after the rootfs,
 * root snapshot and bundle, so nothing it owns is ever leaked; a record still carrying this
 * label at start is a delete a killed daemon cut short, and {@link ContainerService.recover}
 * finishes it (otherwise it would be listed with its snapshot gone).
 */
export const DELETING_LABEL = "io.k8scontainerd.deleting";
/** "cni": the container's task gets a CNI attachment (see network.ts). */
export const NETWORK_LABEL = "io.k8scontainerd.network";
/** JSON list of the container's published ports ({@link PortMapping}). */
export const PORTS_LABEL = "io.k8scontainerd.ports";
/** The IPs of the container's CNI attachment, comma-separated, while its task exists. */
export const IPS_LABEL = "io.k8scontainerd.ips";

export class ContainerService {
  readonly #d: ContainerServiceDeps;
  readonly #log: Logger;
  #clampLogged = false;

  constructor(deps: ContainerServiceDeps) {
    this.#d = deps;
    this.#log = deps.log.child({ component: "containers" });
  }

  bundleDir(ns: string, id: string): string {
    return `${this.#d.stateDir}/bundles/${ns}/${id}`;
  }

  defaultLogPath(ns: string, id: string): string {
    return `${this.#d.rootDir}/logs/${ns}/${id}.log`;
  }

  get(ns: string, id: string): Container {
    return this.#d.containers.get(ns, id);
  }

  list(ns: string): Container[] {
    return this.#d.containers.list(ns);
  }

  /** Every container of every namespace (the restart manager's scan at start). */
  all(): { namespace: string; container: Container }[] {
    return this.#d.containers.all();
  }

  /** Sets (or, with "", removes) daemon labels on a container: the restart manager's count. */
  setDaemonLabels(ns: string, id: string, labels: Record<string, string>): void {
    this.#d.containers.setLabels(ns, id, labels);
  }

  /**
   * Reads a file of the image's rootfs without following a symlink out of it: directories
   * resolve inside the root, and the file itself must not be a symlink.
   */
  async #readRootfsFile(rootfs: string, path: string): Promise<string | undefined> {
    const comps = path.split("/").filter(Boolean);
    try {
      const dir = resolveInRoot(rootfs, comps.slice(0, -1), false);
      if (dir === undefined) return undefined;
      const file = `${rootfs}/${dir ? `${dir}/` : ""}${comps.at(-1)}`;
      if (!(await Deno.lstat(file)).isFile) return undefined;
      return await Deno.readTextFile(file);
    } catch {
      return undefined;
    }
  }

  /** A namespace's containers share one cgroup parent unless the caller (the CRI) names one. */
  #cgroupsPath(ns: string, o: CreateContainerOptions): string {
    const driver = this.#d.cgroupDriver ?? "cgroupfs";
    if (driver === "systemd") {
      return cgroupsPath(
        driver,
        o.cgroupParent,
        o.cgroupParent === undefined ? `${ns}-${o.id}` : o.id,
        "",
      );
    }
    return cgroupsPath(driver, o.cgroupParent, o.id, `/k8scontainerd/${ns}`);
  }

  async create(ns: string, o: CreateContainerOptions): Promise<Container> {
    validateContainerId(o.id);
    // The daemon's own labels steer it (a record labelled deleting is deleted at start).
    const reserved = Object.keys(o.labels ?? {}).find((k) => k.startsWith(RESERVED_LABEL_PREFIX));
    if (reserved !== undefined) {
      throw new InvalidArgumentError(
        `label "${reserved}" is reserved: keys under ${RESERVED_LABEL_PREFIX} are the daemon's own`,
      );
    }
    const runtime = o.runtime || this.#d.handlers[0];
    if (!this.#d.handlers.includes(runtime)) {
      throw new InvalidArgumentError(
        `unknown runtime "${runtime}" (configured: ${this.#d.handlers.join(", ")})`,
      );
    }
    const cgroupPath = this.#cgroupsPath(ns, o);
    const network = o.network === "none" ? "" : o.network ?? "";
    if (network !== "" && network !== "cni") {
      throw new InvalidArgumentError(`unknown network "${o.network}" (cni or none)`);
    }
    if (network && o.netHost) {
      throw new InvalidArgumentError("network cni and the host's network cannot be combined");
    }
    if (o.ports?.length && network !== "cni") {
      throw new InvalidArgumentError("published ports need network cni");
    }
    for (const p of o.ports ?? []) {
      const proto = (p.protocol || "tcp").toLowerCase();
      if (
        !(p.hostPort > 0 && p.hostPort < 65536 && p.containerPort > 0 && p.containerPort < 65536)
      ) {
        throw new InvalidArgumentError(`port ${p.hostPort}:${p.containerPort}: out of range`);
      }
      if (proto !== "tcp" && proto !== "udp") {
        throw new InvalidArgumentError(
          `port ${p.hostPort}:${p.containerPort}: protocol ${p.protocol} is not tcp or udp`,
        );
      }
    }
    const restart = parseRestartPolicy(o.restartPolicy ?? "");
    if (network) {
      if (!this.#d.networks) {
        throw new FailedPreconditionError("network cni: this daemon has no CNI networking");
      }
      await this.#d.networks.requireConfig(
        o.ports?.length ? "publishing a port" : "network cni",
      );
    }
    try {
      this.#d.containers.get(ns, o.id);
      throw new FailedPreconditionError(`container "${o.id}" already exists`);
    } catch (e) {
      if (!isKind(e, "not-found")) throw e;
    }
    const image = await this.#d.images.get(ns, o.image).catch((e) => {
      if (isKind(e, "not-found")) throw new NotFoundError(`image "${o.image}" (pull it first)`);
      throw e;
    });
    const snapName = o.snapshotter || this.#d.defaultSnapshotter;
    const snapshotter = this.#d.snapshotters.get(snapName);
    if (!snapshotter) throw new InvalidArgumentError(`unknown snapshotter "${snapName}"`);
    const { manifest, config } = await readConfig(this.#d.content, image.target);
    const parent = this.#unpackedChain(ns, image.name, manifest.manifest, snapName);

    const bundle = this.bundleDir(ns, o.id);
    const rootfs = `${bundle}/rootfs`;
    const undo: (() => Promise<void>)[] = [];
    // A new container starts with an empty log, even where an older one of the same id left
    // its log behind (a daemon from before deletes removed logs, or one killed mid-delete).
    await removeFile(this.defaultLogPath(ns, o.id));
    try {
      await Deno.mkdir(rootfs, { recursive: true, mode: 0o711 });
      undo.push(() => Deno.remove(bundle, { recursive: true }).catch(() => {}));
      const mounts = await snapshotter.prepare(ns, o.id, parent, {
        [CONTAINER_SNAPSHOT_LABEL]: o.id,
      });
      undo.push(() => snapshotter.remove(ns, o.id).catch(() => {}));
      if (o.idmap) mountIdmappedRootfs(mounts, bundle, o.idmap);
      else mountAll(mounts, rootfs);
      undo.push(() => Promise.resolve(unmountIdmappedRootfs(bundle)));
      const volumes = await this.#mountImageVolumes(ns, o, snapshotter, bundle, undo);
      const userMounts = o.specOverrides?.mounts?.map((m, i) => {
        if (!m.idmap) return m;
        if (!o.idmap || !m.source) {
          throw new InvalidArgumentError(
            `mount ${m.destination}: an idmapped volume needs a user-namespaced container`,
          );
        }
        return { ...m, source: idmappedVolume(m.source, bundle, i, o.idmap, !!m.readonly) };
      });

      const baseMounts = o.mounts?.map((m, i) => userMount(m, i));
      const host = await hostLimits();
      const floor = this.#d.daemonOomScoreAdj;
      const { clamped } = clampOomScoreAdj(0, floor);
      if (clamped && !this.#clampLogged) {
        this.#clampLogged = true;
        this.#log.info(
          "container oom_score_adj is clamped to the daemon's own: it may not be lowered on this host",
          {
            floor,
          },
        );
      }
      const specOpts: SpecOptions = {
        id: o.id,
        rootfs: { path: "rootfs", readonly: !!o.readonlyRootfs },
        hostname: o.hostname || (o.netHost ? Deno.hostname() : o.id.slice(0, 63)),
        image: config.config,
        args: o.args?.length ? o.args : undefined,
        env: (o.env ?? []).map(parseEnv),
        workingDir: o.cwd || undefined,
        user: o.user || undefined,
        passwd: await this.#readRootfsFile(rootfs, "/etc/passwd"),
        group: await this.#readRootfsFile(rootfs, "/etc/group"),
        terminal: !!o.tty,
        privileged: !!o.privileged,
        mounts: baseMounts,
        namespaces: o.netHost
          ? { network: "host" }
          : network
          ? { network: this.#d.networks!.netnsPath(ns, o.id) }
          : undefined,
        cgroupsPath: cgroupPath,
        oomScoreAdj: floor,
        command: o.command?.length ? o.command : undefined,
        ...o.specOverrides,
        ...(userMounts ? { mounts: userMounts } : {}),
        ...(volumes.mounts.length
          ? { mounts: [...(userMounts ?? baseMounts ?? []), ...volumes.mounts] }
          : {}),
        // What the host allows always wins over what was asked for.
        oomScoreAdjFloor: floor,
        hostCapabilities: host.capabilities,
        cgroupV2: hostCgroupV2(),
        rlimitCeiling: host.nofile ? { RLIMIT_NOFILE: host.nofile } : undefined,
      };
      const spec: Spec = buildSpec(specOpts);
      await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(spec));
      // Tests freeze the daemon here to kill it with everything but the record in place.
      failpoint("container-create-before-record");
      const c = this.#d.containers.create(ns, {
        id: o.id,
        image: image.name,
        runtime,
        spec,
        snapshotter: snapName,
        snapshotKey: o.id,
        labels: {
          ...o.labels,
          [TTY_LABEL]: o.tty ? "true" : "",
          [STDIN_LABEL]: o.stdin ? (o.stdinOnce ? "stdin-once" : "stdin") : "",
          [IDMAP_LABEL]: o.idmap ? "true" : "",
          [IMAGE_VOLUMES_LABEL]: volumes.records.length ? JSON.stringify(volumes.records) : "",
          ...(network ? { [NETWORK_LABEL]: network } : {}),
          ...(o.ports?.length
            ? {
              [PORTS_LABEL]: JSON.stringify(
                o.ports.map((p) => ({ ...p, protocol: (p.protocol || "tcp").toLowerCase() })),
              ),
            }
            : {}),
          ...(restart.name !== "no" ? { [RESTART_POLICY_LABEL]: restart.text } : {}),
        },
      });
      this.#d.events.publish(ns, "/containers/create", { id: o.id, image: image.name, runtime });
      return c;
    } catch (e) {
      for (const fn of undo.reverse()) await fn();
      throw e;
    }
  }

  /**
   * The committed snapshot (chain id) an image's rootfs is unpacked as, undefined for an image
   * without layers.
   *
   * @throws FailedPreconditionError when the image is not unpacked for `snapName`.
   */
  #unpackedChain(
    ns: string,
    name: string,
    manifest: { config: { digest: string }; layers: unknown[] },
    snapName: string,
  ): string | undefined {
    if (!manifest.layers.length) return undefined;
    const parent = this.#d.contentIndex.get(ns, manifest.config.digest)
      .labels[snapshotLabel(snapName)];
    if (!parent) {
      throw new FailedPreconditionError(
        `image "${name}" is not unpacked for ${snapName}: pull it again`,
      );
    }
    return parent;
  }

  /**
   * Mounts `o.imageVolumes`: a view of each image's layers at `<bundle>/imagevolumes/<n>`, and
   * the read-only binds the spec gets. Pushes its undo steps onto `undo`.
   */
  async #mountImageVolumes(
    ns: string,
    o: CreateContainerOptions,
    snapshotter: Snapshotter,
    bundle: string,
    undo: (() => Promise<void>)[],
  ): Promise<{ mounts: UserMount[]; records: ImageVolumeRecord[] }> {
    const mounts: UserMount[] = [];
    const records: ImageVolumeRecord[] = [];
    if (!o.imageVolumes?.length) return { mounts, records };
    for (const [n, v] of (o.imageVolumes ?? []).entries()) {
      const image = await this.#d.images.get(ns, v.image).catch((e) => {
        if (isKind(e, "not-found")) {
          throw new NotFoundError(`${v.field}.image: image "${v.image}" (pull it first)`);
        }
        throw e;
      });
      const { manifest } = await readConfig(this.#d.content, image.target);
      const parent = this.#unpackedChain(ns, image.name, manifest.manifest, snapshotter.name);
      const key = imageVolumeKey(o.id, n);
      const viewMounts = await snapshotter.view(ns, key, parent, {
        [IMAGE_VOLUME_SNAPSHOT_LABEL]: o.id,
      });
      undo.push(() => snapshotter.remove(ns, key).catch(() => {}));
      const at = imageVolumeDir(bundle, n);
      await Deno.mkdir(at, { recursive: true, mode: 0o711 });
      // In a user-namespaced pod the image's files are seen through the pod's mapping too.
      if (o.idmap) mountIdmappedSnapshot(viewMounts, at, bundle, `v${n}-`, o.idmap);
      else mountAll(viewMounts, at);
      undo.push(() => Promise.resolve(unmountAll(at)));
      const sub = resolveSubPath(at, v.subPath, `${v.field}.image_sub_path`);
      mounts.push({
        destination: v.destination,
        source: sub ? `${at}/${sub}` : at,
        type: "bind",
        readonly: true,
        propagation: "rprivate",
      });
      records.push({ n, image: image.name, imageId: manifest.manifest.config.digest, key });
    }
    return { mounts, records };
  }

  /**
   * Containers of `ns` with an image volume of the image whose id (config digest) is
   * `imageId`: such an image may not be removed (its view would lose its image).
   *
   * @example
   * ```ts
   * svc.imageVolumeUsers("k8s.io", "sha256:…"); // ["4f2a…"]
   * ```
   */
  imageVolumeUsers(ns: string, imageId: string): string[] {
    return this.#d.containers.list(ns)
      .filter((c) =>
        parseImageVolumes(c.labels[IMAGE_VOLUMES_LABEL]).some((v) => v.imageId === imageId)
      )
      .map((c) => c.id);
  }

  async delete(ns: string, id: string): Promise<void> {
    const c = this.#d.containers.get(ns, id);
    const state = await this.#taskState(ns, id);
    if (state) {
      throw new FailedPreconditionError(
        `container "${id}" has a task (${state.status}): delete the task first`,
      );
    }
    this.#d.containers.setLabels(ns, id, { [DELETING_LABEL]: "true" });
    if (c.labels[NETWORK_LABEL]) await this.#d.networks?.detach(ns, id);
    await this.#removeOwned(ns, c);
    this.#d.containers.delete(ns, id);
    this.#d.events.publish(ns, "/containers/delete", { id });
  }

  /** What a container owns besides its record: the rootfs mount, root snapshot and bundle. */
  async #removeOwned(ns: string, c: Container): Promise<void> {
    const bundle = this.bundleDir(ns, c.id);
    unmountIdmappedRootfs(bundle);
    unmountImageVolumes(bundle);
    const snapshotter = this.#d.snapshotters.get(c.snapshotter);
    if (snapshotter) {
      for (const v of parseImageVolumes(c.labels[IMAGE_VOLUMES_LABEL])) {
        await snapshotter.remove(ns, v.key).catch((e) => {
          if (!isKind(e, "not-found")) throw e;
        });
      }
    }
    if (snapshotter && c.snapshotKey) {
      await snapshotter.remove(ns, c.snapshotKey).catch((e) => {
        if (!isKind(e, "not-found")) throw e;
      });
    }
    failpoint("container-delete-snapshot-removed");
    await Deno.remove(bundle, { recursive: true }).catch(() => {});
    // The log goes with the container when the daemon chose where it lives; a path the client
    // named (the kubelet's /var/log/pods/…) is the client's to rotate and remove.
    const log = this.defaultLogPath(ns, c.id);
    const labelled = c.labels[LOG_PATH_LABEL];
    if (!labelled || labelled === log) await removeFile(log);
  }

  /** Deletes at start what a delete cut short left: records carrying {@link DELETING_LABEL}. */
  async #finishDeletes(): Promise<string[]> {
    const finished: string[] = [];
    for (const { namespace, container: c } of this.#d.containers.all()) {
      if (c.labels[DELETING_LABEL] === undefined) continue;
      try {
        await this.#removeOwned(namespace, c);
        this.#d.containers.delete(namespace, c.id);
        finished.push(`${namespace}/${c.id}`);
        this.#log.warn("finished the delete of a container cut short", { namespace, id: c.id });
      } catch (e) {
        this.#log.error("cannot finish the delete of a container cut short", {
          namespace,
          id: c.id,
          err: e,
        });
      }
    }
    return finished;
  }

  async #taskState(ns: string, id: string): Promise<TaskState | undefined> {
    if (this.#d.runtime.knownAbsent(id, ns)) return undefined;
    try {
      return await this.#d.runtime.state(id, ns);
    } catch (e) {
      if (isKind(e, "not-found")) return undefined;
      throw e;
    }
  }

  async createTask(
    ns: string,
    id: string,
    opts: { logPath?: string } = {},
  ): Promise<{ pid: number }> {
    const c = this.#d.containers.get(ns, id);
    if (await this.#taskState(ns, id)) {
      throw new FailedPreconditionError(`container "${id}" already has a task`);
    }
    const logPath = opts.logPath || this.defaultLogPath(ns, id);
    await Deno.mkdir(logPath.slice(0, logPath.lastIndexOf("/")), { recursive: true });
    let ips: string[] | undefined;
    if (c.labels[NETWORK_LABEL]) {
      if (!this.#d.networks) {
        throw new FailedPreconditionError(`container "${id}": this daemon has no CNI networking`);
      }
      const ports = JSON.parse(c.labels[PORTS_LABEL] || "[]") as PortMapping[];
      ips = await this.#d.networks.attach(ns, id, ports);
    }
    let pid: number;
    try {
      ({ pid } = await this.#d.runtime.create({
        id,
        namespace: ns,
        bundle: this.bundleDir(ns, id),
        handler: c.runtime,
        logPath,
        tty: c.labels[TTY_LABEL] === "true",
        stdin: !!c.labels[STDIN_LABEL],
        stdinOnce: c.labels[STDIN_LABEL] === "stdin-once",
      }));
    } catch (e) {
      if (ips) {
        await this.#d.networks!.detach(ns, id).catch((err) =>
          this.#log.warn("undo: cannot detach the container's network", { id, err })
        );
      }
      throw e;
    }
    this.#d.containers.setLabels(ns, id, {
      [LOG_PATH_LABEL]: logPath,
      ...(ips ? { [IPS_LABEL]: ips.join(",") } : {}),
    });
    this.#d.events.publish(ns, "/tasks/create", { containerId: id, pid });
    return { pid };
  }

  /**
   * Starts the container's created task. With `restart` (what the management API's Start
   * does), a container whose task exited, or that has no task since `tasks rm`, gets a fresh
   * task first, writing on to the same log; the CRI, whose exited containers stay exited,
   * starts only what it created.
   */
  async start(
    ns: string,
    id: string,
    opts: { restart?: boolean; byUser?: boolean } = {},
  ): Promise<{ pid: number }> {
    const c = this.#d.containers.get(ns, id);
    if (opts.byUser && (c.labels[USER_STOPPED_LABEL] || c.labels[RESTART_COUNT_LABEL])) {
      // A start by the user undoes a stop by the user, and the restart count begins again.
      this.#d.containers.setLabels(ns, id, { [USER_STOPPED_LABEL]: "", [RESTART_COUNT_LABEL]: "" });
    }
    if (opts.restart) {
      const st = await this.#taskState(ns, id);
      if (st?.status === "stopped") await this.deleteTask(ns, id, false);
      if (!st || st.status === "stopped") {
        await this.createTask(ns, id, { logPath: c.labels[LOG_PATH_LABEL] || undefined });
      }
    }
    await this.#d.runtime.start(id, ns);
    const st = await this.#d.runtime.state(id, ns);
    this.#d.events.publish(ns, "/tasks/start", { containerId: id, pid: st.pid });
    this.#watchExit(ns, id);
    return { pid: st.pid ?? 0 };
  }

  /** Publishes the task's exit once it happens (also for tasks found running at start). */
  #watchExit(ns: string, id: string): void {
    this.#d.runtime.wait(id, ns).then(
      (r) =>
        this.#d.events.publish(ns, "/tasks/exit", {
          containerId: id,
          exitStatus: r.exitCode,
          exitedAt: r.finishedAt?.toISOString(),
        }),
      (e) => {
        if (!isKind(e, "not-found")) {
          this.#log.warn("waiting for a task failed", { id, namespace: ns, err: e });
        }
      },
    );
  }

  async kill(
    ns: string,
    id: string,
    signal: string,
    all: boolean,
    opts: { byUser?: boolean } = {},
  ): Promise<void> {
    this.#d.containers.get(ns, id);
    // Marked first: the exit this kill causes must find it (a user stop is not restarted).
    if (opts.byUser) this.#d.containers.setLabels(ns, id, { [USER_STOPPED_LABEL]: "true" });
    await this.#d.runtime.kill(id, signal || "SIGTERM", { all, namespace: ns });
  }

  async deleteTask(
    ns: string,
    id: string,
    force: boolean,
    opts: { byUser?: boolean } = {},
  ): Promise<{ exitCode: number; finishedAt?: Date }> {
    const c = this.#d.containers.get(ns, id);
    if (opts.byUser) this.#d.containers.setLabels(ns, id, { [USER_STOPPED_LABEL]: "true" });
    const st = await this.#taskState(ns, id);
    if (!st) throw new NotFoundError(`task of container "${id}"`);
    if (st.status === "running" || st.status === "paused" || st.status === "created") {
      if (!force) {
        throw new FailedPreconditionError(
          `task of container "${id}" is ${st.status}: kill it first or use --force`,
        );
      }
    }
    await this.#d.runtime.delete(id, { force, namespace: ns });
    // Tests freeze the daemon here to kill it with the task gone and its network still attached.
    failpoint("task-delete-before-network-detach");
    if (c.labels[NETWORK_LABEL]) {
      await this.#d.networks?.detach(ns, id);
      this.#d.containers.setLabels(ns, id, { [IPS_LABEL]: "" });
    }
    this.#d.events.publish(ns, "/tasks/delete", { containerId: id, exitStatus: st.exitCode ?? 0 });
    return { exitCode: st.exitCode ?? 0, finishedAt: st.finishedAt };
  }

  async task(ns: string, id: string): Promise<TaskView> {
    const c = this.#d.containers.get(ns, id);
    const st = await this.#taskState(ns, id);
    if (!st) throw new NotFoundError(`task of container "${id}"`);
    return { ...st, id, logPath: c.labels[LOG_PATH_LABEL] ?? "" };
  }

  /**
   * The task's state alone, undefined when the container has no task: what state polling (the
   * CRI's ListContainers and ContainerStatus) needs, without reading the container's record.
   */
  async taskState(ns: string, id: string): Promise<TaskState | undefined> {
    return await this.#taskState(ns, id);
  }

  /**
   * taskState() without waiting, where the answer is known at once: null for a container
   * known to have no task, its state for one seen running (same process); undefined means
   * "ask taskState()". Lists of many containers take this first.
   */
  knownTaskState(ns: string, id: string): TaskState | null | undefined {
    if (this.#d.runtime.knownAbsent(id, ns)) return null;
    return this.#d.runtime.knownState(id, ns);
  }

  async tasks(ns: string): Promise<TaskView[]> {
    const out: TaskView[] = [];
    for (const c of this.#d.containers.list(ns)) {
      const st = await this.#taskState(ns, c.id);
      if (st) out.push({ ...st, id: c.id, logPath: c.labels[LOG_PATH_LABEL] ?? "" });
    }
    return out;
  }

  async wait(
    ns: string,
    id: string,
  ): Promise<{ exitCode: number; finishedAt?: Date; oomKilled: boolean }> {
    this.#d.containers.get(ns, id);
    const r = await this.#d.runtime.wait(id, ns);
    return { exitCode: r.exitCode, finishedAt: r.finishedAt, oomKilled: r.oomKilled };
  }

  async exec(
    ns: string,
    id: string,
    o: {
      args: string[];
      env?: string[];
      cwd?: string;
      user?: string;
      timeoutMs?: number;
      stdin?: Uint8Array;
    },
  ): Promise<{ exitCode: number; stdout: Uint8Array; stderr: Uint8Array }> {
    this.#d.containers.get(ns, id);
    if (!o.args.length) throw new InvalidArgumentError("exec: a command is required");
    const rootfs = `${this.bundleDir(ns, id)}/rootfs`;
    const user = o.user
      ? resolveUser(
        o.user,
        await this.#readRootfsFile(rootfs, "/etc/passwd"),
        await this.#readRootfsFile(rootfs, "/etc/group"),
      )
      : undefined;
    const r = await this.#d.runtime.execSync(id, o.args, {
      namespace: ns,
      env: o.env,
      cwd: o.cwd,
      user: user && { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      stdin: o.stdin,
      timeoutMs: o.timeoutMs,
      maxOutput: MAX_EXEC_OUTPUT,
      onStart: (pid) => this.#d.events.publish(ns, "/tasks/exec-started", { containerId: id, pid }),
    });
    this.#d.events.publish(ns, "/tasks/exec-exited", { containerId: id, exitStatus: r.exitCode });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  async pause(ns: string, id: string): Promise<void> {
    this.#d.containers.get(ns, id);
    await this.#d.runtime.pause(id, ns);
    this.#d.events.publish(ns, "/tasks/paused", { containerId: id });
  }

  async resume(ns: string, id: string): Promise<void> {
    this.#d.containers.get(ns, id);
    await this.#d.runtime.resume(id, ns);
    this.#d.events.publish(ns, "/tasks/resumed", { containerId: id });
  }

  async pids(ns: string, id: string): Promise<number[]> {
    this.#d.containers.get(ns, id);
    return await this.#d.runtime.ps(id, ns);
  }

  /**
   * Resource usage from runc's cgroup stats (v1 and v2 alike): CPU time, memory usage and the
   * working set the kubelet evicts on (usage minus inactive file cache), pids.
   */
  async metrics(ns: string, id: string): Promise<TaskMetrics> {
    this.#d.containers.get(ns, id);
    return metricsFromStats(await this.#d.runtime.stats(id, ns) as RuncStatsData);
  }

  /**
   * Starts a command in the container with its stdio as streams (the CRI streaming server
   * pipes them to kubectl/crictl). TTY exec needs a console from the runtime, which the driver
   * does not offer yet.
   */
  async execStream(
    ns: string,
    id: string,
    o: { args: string[]; tty: boolean; stdin: boolean },
  ): Promise<ExecProcess> {
    this.#d.containers.get(ns, id);
    if (!o.args.length) throw new InvalidArgumentError("exec: a command is required");
    const p = await this.#d.runtime.exec(id, { args: o.args, tty: o.tty, stdin: o.stdin }, ns);
    this.#d.events.publish(ns, "/tasks/exec-started", { containerId: id, pid: await p.pid() });
    p.exitCode.then(
      (code) =>
        this.#d.events.publish(ns, "/tasks/exec-exited", { containerId: id, exitStatus: code }),
      () => {},
    );
    return p;
  }

  /** Resizes the container's terminal (TTY containers). */
  async resize(ns: string, id: string, width: number, height: number): Promise<void> {
    this.#d.containers.get(ns, id);
    await this.#d.runtime.resize(id, { width, height }, ns);
  }

  /** The container's output (and stdin, if it was created with one) as streams. */
  async attach(ns: string, id: string): Promise<AttachStreams> {
    this.#d.containers.get(ns, id);
    return await this.#d.runtime.attach(id, ns);
  }

  /** Changes a running task's resources (cgroup limits), as `runc update` does. */
  async updateResources(ns: string, id: string, resources: Record<string, unknown>): Promise<void> {
    this.#d.containers.get(ns, id);
    await this.#d.runtime.update(id, resources, ns);
  }

  /** Makes conmon reopen the log file, after the kubelet rotated it. */
  async reopenLog(ns: string, id: string): Promise<void> {
    const c = this.#d.containers.get(ns, id);
    await this.#d.runtime.reopenLog(id, ns);
    // conmon reopens asynchronously; callers (the kubelet's rotation) expect the file to exist
    // when the call returns.
    const path = c.labels[LOG_PATH_LABEL] || this.defaultLogPath(ns, id);
    for (let i = 0; i < 100; i++) {
      try {
        await Deno.stat(path);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    throw new FailedPreconditionError(
      `container "${id}": conmon did not reopen its log at ${path}`,
    );
  }

  /** Bytes and inodes the container wrote into its root snapshot, and where that lives. */
  async writableLayer(
    ns: string,
    id: string,
  ): Promise<{ size: number; inodes: number; mountpoint: string }> {
    const c = this.#d.containers.get(ns, id);
    const snap = this.#d.snapshotters.get(c.snapshotter);
    if (!snap) return { size: 0, inodes: 0, mountpoint: "" };
    const u = await snap.usage(ns, c.snapshotKey);
    return { ...u, mountpoint: snap.upperDir(ns, c.snapshotKey) };
  }

  logs(
    ns: string,
    id: string,
    o: { follow: boolean; tail: number; signal?: AbortSignal },
  ): AsyncGenerator<Uint8Array> {
    const c = this.#d.containers.get(ns, id);
    const path = c.labels[LOG_PATH_LABEL] || this.defaultLogPath(ns, id);
    return readLog(path, {
      ...o,
      // Only a task's end wakes a follow early; without a task (none yet, or gone) it polls.
      exited: o.follow ? exitWake(this.#d.runtime.wait(id, ns)) : undefined,
      stopped: async () => {
        const st = await this.#taskState(ns, id);
        return !st || st.status === "stopped";
      },
    });
  }

  /**
   * Undoes what a create cut short by a killed daemon left behind: everything the service makes
   * for a container whose record was never written (or, for runtime state, no longer exists).
   *
   * Why a scan for orphans rather than an intent record written first ("creating" rows): every
   * resource create() makes names its container by itself — the bundle directory
   * `<state>/bundles/<ns>/<id>` lives in a tree only this service writes, the runtime state
   * `<state>/runtime/<ns>/<id>` in one only its driver writes, and the root snapshot carries
   * {@link CONTAINER_SNAPSHOT_LABEL} from the very row insert that creates it. So the disk itself
   * says what is half done, whatever the point the kill came at, with no second source of truth
   * to keep in step; and the container table keeps holding only complete containers, so no
   * reader (management API, CRI, GC) has to learn to skip a "creating" state. The record is
   * written last in create(), which is what makes "no record" mean "not created".
   *
   * Runs before the socket serves, so no create of this process can be under way. Order: the
   * runtime state first (its processes may use the rootfs), then bundles (rootfs unmounted
   * before the directory goes, never deleting through a live mount), then snapshots. Root
   * snapshots a live lease names or labelled as GC roots are left alone, as GC does.
   */
  async #undoUnrecorded(found: RecoveredContainer[]): Promise<Omit<UndoneAtStart, "deletes">> {
    const undone = { runtime: [] as string[], bundles: [] as string[], snapshots: [] as string[] };
    const records = this.#d.containers.all();
    const recorded = new Set(records.map((r) => `${r.namespace}/${r.container.id}`));

    for (const f of found) {
      const key = `${f.namespace}/${f.id}`;
      if (f.status === "removed" || recorded.has(key)) continue;
      try {
        await this.#d.runtime.delete(f.id, { force: true, namespace: f.namespace });
        undone.runtime.push(key);
        this.#log.warn("removed the runtime state of a container that has no record", {
          namespace: f.namespace,
          id: f.id,
          status: f.status,
        });
      } catch (e) {
        if (!isKind(e, "not-found")) {
          this.#log.error("cannot remove runtime state of a container with no record", {
            namespace: f.namespace,
            id: f.id,
            err: e,
          });
        }
      }
    }

    const bundles = `${this.#d.stateDir}/bundles`;
    for (const ns of await dirNames(bundles)) {
      for (const id of await dirNames(`${bundles}/${ns}`)) {
        if (recorded.has(`${ns}/${id}`)) continue;
        const dir = this.bundleDir(ns, id);
        try {
          unmountIdmappedRootfs(dir);
          unmountImageVolumes(dir);
          const left = await mountsUnder(dir);
          if (left.length) {
            throw new FailedPreconditionError(`still mounted: ${left.join(", ")}`);
          }
          await Deno.remove(dir, { recursive: true });
          undone.bundles.push(`${ns}/${id}`);
          this.#log.warn("removed the bundle of a container create cut short", {
            namespace: ns,
            id,
          });
        } catch (e) {
          this.#log.error("cannot remove the bundle of a container with no record", {
            namespace: ns,
            id,
            err: e,
          });
        }
      }
    }

    const owned = new Set(
      records.flatMap((r) => [
        `${r.namespace}/${r.container.snapshotter}/${r.container.snapshotKey}`,
        ...parseImageVolumes(r.container.labels[IMAGE_VOLUMES_LABEL]).map((v) =>
          `${r.namespace}/${r.container.snapshotter}/${v.key}`
        ),
      ]),
    );
    const now = Date.now();
    for (const { name: ns } of this.#d.namespaces.list()) {
      const leased = new Set<string>();
      for (const l of this.#d.leases.list(ns)) {
        if (l.expiresAt && l.expiresAt.getTime() <= now) continue;
        for (const r of this.#d.leases.resources(ns, l.id)) leased.add(`${r.type}\0${r.ref}`);
      }
      for (const [name, snapshotter] of this.#d.snapshotters) {
        const orphans = snapshotter.walk(
          ns,
          (i) =>
            ((i.kind === "active" && i.labels[CONTAINER_SNAPSHOT_LABEL] !== undefined) ||
              (i.kind === "view" && i.labels[IMAGE_VOLUME_SNAPSHOT_LABEL] !== undefined)) &&
            i.labels[LABEL_GC_ROOT] === undefined && !owned.has(`${ns}/${name}/${i.key}`) &&
            !leased.has(`snapshots/${name}\0${i.key}`),
        );
        for (const snap of orphans) {
          try {
            await snapshotter.remove(ns, snap.key);
            undone.snapshots.push(`${ns}/${name}/${snap.key}`);
            this.#log.warn("removed the root snapshot of a container create cut short", {
              namespace: ns,
              snapshotter: name,
              key: snap.key,
            });
          } catch (e) {
            this.#log.error("cannot remove the root snapshot of a container with no record", {
              namespace: ns,
              snapshotter: name,
              key: snap.key,
              err: e,
            });
          }
        }
      }
    }
    return undone;
  }

  /**
   * At daemon start: the driver re-attaches to what conmon still supervises and cleans up what
   * was half created; deletes cut short are finished; what a create cut short left without a
   * record is undone (both returned); exits that happened while the daemon was down are
   * published; rootfs mounts lost with a reboot are restored.
   */
  async recover(): Promise<UndoneAtStart> {
    const found = await this.#d.runtime.recover();
    const deletes = await this.#finishDeletes();
    const undone = { deletes, ...await this.#undoUnrecorded(found) };
    for (const { namespace, container: c } of this.#d.containers.all()) {
      const rootfs = `${this.bundleDir(namespace, c.id)}/rootfs`;
      const snapshotter = this.#d.snapshotters.get(c.snapshotter);
      try {
        // An idmapped rootfs needs its pod's user namespace, gone once the rootfs is (a
        // reboot); mounted plain it would show the container wrong owners: left unmounted.
        if (snapshotter && !c.labels[IDMAP_LABEL] && !(await isMounted(rootfs))) {
          await Deno.mkdir(rootfs, { recursive: true });
          mountAll(snapshotter.mounts(namespace, c.snapshotKey), rootfs);
          await Deno.writeTextFile(
            `${this.bundleDir(namespace, c.id)}/config.json`,
            JSON.stringify(c.spec),
          );
          this.#log.info("restored container rootfs", { namespace, id: c.id });
        }
        // Image volumes lost with a reboot: the views are remounted where config.json binds them.
        for (const v of parseImageVolumes(c.labels[IMAGE_VOLUMES_LABEL])) {
          const at = imageVolumeDir(this.bundleDir(namespace, c.id), v.n);
          if (!snapshotter || c.labels[IDMAP_LABEL] || await isMounted(at)) continue;
          await Deno.mkdir(at, { recursive: true, mode: 0o711 });
          mountAll(snapshotter.mounts(namespace, v.key), at);
          this.#log.info("restored an image volume", { namespace, id: c.id, image: v.image });
        }
      } catch (e) {
        this.#log.warn("could not restore container rootfs", { namespace, id: c.id, err: e });
      }
      const t = found.find((f) => f.namespace === namespace && f.id === c.id);
      if (t && (t.status === "running" || t.status === "paused")) this.#watchExit(namespace, c.id);
    }
    if (this.#d.networks) {
      // Attachments of containers with no task any more (deleted while the daemon was down,
      // or a delete cut short): DEL and the netns removed.
      const keep = new Set(
        this.#d.containers.all()
          .filter(({ namespace, container: c }) =>
            c.labels[NETWORK_LABEL] &&
            found.some((f) => f.namespace === namespace && f.id === c.id && f.status !== "removed")
          )
          .map(({ namespace, container: c }) => cniContainerId(namespace, c.id)),
      );
      try {
        const swept = await this.#d.networks.sweep(keep);
        if (swept.length) this.#log.warn("detached container networks left behind", { swept });
      } catch (e) {
        this.#log.error("cannot sweep container networks", { err: e });
      }
      for (const { namespace, container: c } of this.#d.containers.all()) {
        if (c.labels[IPS_LABEL] && !keep.has(cniContainerId(namespace, c.id))) {
          this.#d.containers.setLabels(namespace, c.id, { [IPS_LABEL]: "" });
        }
      }
    }
    this.#log.info("recovered tasks", {
      running: found.filter((f) => f.status === "running").length,
      stopped: found.filter((f) => f.status === "stopped").length,
    });
    return undone;
  }
}

/**
 * What the container service finished or undid at start: deletes cut short (`deletes`), and
 * for containers that have no record, their runtime state, bundles and root snapshots.
 * Ids are "<namespace>/<id>" (snapshots: "<namespace>/<snapshotter>/<key>").
 */
export interface UndoneAtStart {
  deletes: string[];
  runtime: string[];
  bundles: string[];
  snapshots: string[];
}

export interface TaskMetrics {
  cpuUsageNs: number;
  memoryUsageBytes: number;
  memoryWorkingSetBytes: number;
  /** 0 when unlimited. */
  memoryLimitBytes: number;
  pids: number;
  timestamp: Date;
  /** Everything `runc events --stats` reported, for the CRI's cAdvisor-named metrics. */
  raw: RuncStatsData;
}

/** The cgroup statistics the runtime reads (runc's `events --stats` shape), v1 and v2. */
export type RuncStatsData = CgroupStats;

/** One memory counter. */
export type MemoryEntry = CgroupMemoryEntry;

/** One block-I/O counter: a device, an operation ("Read", "Write" …) and its value. */
export type BlkioEntry = CgroupBlkioEntry;

/** runc reports "no limit" as the largest page-aligned int64. */
const UNLIMITED = 2 ** 62;

export function metricsFromStats(d: RuncStatsData): TaskMetrics {
  const usage = d.memory?.usage?.usage ?? 0;
  const raw = d.memory?.raw ?? {};
  // v1 names it total_inactive_file, v2 inactive_file.
  const inactive = raw.total_inactive_file ?? raw.inactive_file ?? 0;
  const limit = d.memory?.usage?.limit ?? 0;
  return {
    cpuUsageNs: d.cpu?.usage?.total ?? 0,
    memoryUsageBytes: usage,
    memoryWorkingSetBytes: Math.max(0, usage - inactive),
    memoryLimitBytes: limit >= UNLIMITED ? 0 : limit,
    pids: d.pids?.current ?? 0,
    timestamp: new Date(),
    raw: d,
  };
}

/** Exec output is capped so a chatty command cannot exhaust the daemon's memory. */
const MAX_EXEC_OUTPUT = 16 << 20;

/** "K=V" → {key, value}; a bare "K" sets an empty value, as docker does. */
function parseEnv(e: string): { key: string; value: string } {
  const i = e.indexOf("=");
  if (i === 0) throw new InvalidArgumentError(`invalid environment variable "${e}": empty name`);
  return i < 0 ? { key: e, value: "" } : { key: e.slice(0, i), value: e.slice(i + 1) };
}

function userMount(
  m: { type: string; source: string; destination: string; options: string[] },
  i: number,
): UserMount {
  if (m.type !== "bind" && m.type !== "tmpfs") {
    throw new InvalidArgumentError(
      `mounts[${i}]: type "${m.type}" is not supported (bind or tmpfs)`,
    );
  }
  const flags = new Set(m.options);
  const propagation = (["rshared", "rslave", "rprivate"] as const).find((p) => flags.has(p));
  return {
    destination: m.destination,
    source: m.source || undefined,
    type: m.type,
    readonly: flags.has("ro"),
    propagation,
    options: m.options.filter((o) =>
      !["ro", "rw", "rshared", "rslave", "rprivate", "rbind", "bind"].includes(o)
    ),
  };
}

/** What the daemon itself may grant: its capability bounding set and open-files hard limit. */
async function hostLimits(): Promise<{ capabilities?: string[]; nofile?: number }> {
  const status = await Deno.readTextFile("/proc/self/status").catch(() => "");
  const bnd = /^CapBnd:\s+([0-9a-f]+)/m.exec(status)?.[1];
  const limits = await Deno.readTextFile("/proc/self/limits").catch(() => "");
  const nofile = /^Max open files\s+\S+\s+(\d+)/m.exec(limits)?.[1];
  return {
    capabilities: bnd ? capabilitiesFromMask(bnd) : undefined,
    nofile: nofile ? Number(nofile) : undefined,
  };
}

/** The names of the directories in `dir`; none when it does not exist. */
async function dirNames(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isDirectory) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** Mount points at or below `dir` (a recursive remove must never go through one). */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").map((l) => l.split(" ")[4]).filter((m) =>
    m !== undefined && (m === dir || m.startsWith(`${dir}/`))
  );
}

async function isMounted(path: string): Promise<boolean> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").some((l) => l.split(" ")[4] === path);
}

/** Removes a file; one that is already gone is fine, any other failure is thrown. */
async function removeFile(path: string): Promise<void> {
  await Deno.remove(path).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}
