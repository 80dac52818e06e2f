/**
 * CRI `CreateContainer`, `StartContainer`, `StopContainer` and `RemoveContainer`. A CRI
 * container is a container of the k8s.io namespace joined to its pod: the pod's netns, IPC and
 * UTS namespaces (PID too when the pod shares it), the pod's hostname / hosts / resolv.conf and
 * /dev/shm, and the kubelet's mounts, devices, security context and resources — all expressed
 * as OCI spec options for the one spec builder.
 */
import {
  type ContainerConfig,
  type CreateContainerRequest,
  type CreateContainerResponse,
  type LinuxContainerResources,
  MountPropagation,
  NamespaceMode,
  type PodSandboxConfig,
  type RemoveContainerRequest,
  type RemoveContainerResponse,
  SecurityProfile_ProfileType,
  type StartContainerRequest,
  type StartContainerResponse,
  type StopContainerRequest,
  type StopContainerResponse,
  SupplementalGroupsPolicy,
} from "../gen/runtime/v1/api.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  isKind,
  NotFoundError,
} from "../errdefs/errors.ts";
import type { SpecOptions, UserMount } from "../runtime/spec/builder.ts";
import { seccompFromJson } from "../runtime/spec/seccomp.ts";
import { signalNumber } from "../runtime/runc.ts";
import { hugetlbControllerPresent } from "../runtime/cgroups_path.ts";
import { signalDroppedByInit } from "../runtime/signal_disposition.ts";
import { CRI_NAMESPACE, type CriContext, featuresOf, newId, sandboxDir } from "./context.ts";
import { mountIdmapped, podUsernsMappings } from "./userns.ts";
import { criSignalName } from "./stop_signal.ts";
import type { ContainerRecord } from "./store.ts";
import { failpoint } from "../failpoints/failpoints.ts";
import { injectCdi, mergeMounts } from "../cdi/mod.ts";
import { imageVolumes, isImageVolume } from "./image_volumes.ts";
import { criDevices, mergeDevices } from "./devices.ts";
import { containerAppArmorProfile } from "./apparmor.ts";

const PROPAGATION: Record<number, UserMount["propagation"]> = {
  [MountPropagation.PROPAGATION_PRIVATE]: "rprivate",
  [MountPropagation.PROPAGATION_HOST_TO_CONTAINER]: "rslave",
  [MountPropagation.PROPAGATION_BIDIRECTIONAL]: "rshared",
};

function containerNameKey(c: ContainerConfig, sb: PodSandboxConfig): string {
  if (!c.metadata?.name) {
    throw new InvalidArgumentError("container config metadata.name is required");
  }
  const m = sb.metadata!;
  return `${c.metadata.name}_${m.name}_${m.namespace}_${m.uid}_${c.metadata.attempt}`;
}

async function seccomp(c: ContainerConfig): Promise<SpecOptions["seccomp"]> {
  const sc = c.linux?.securityContext;
  const p = sc?.seccomp;
  if (p) {
    if (p.profileType === SecurityProfile_ProfileType.RuntimeDefault) {
      return { type: "RuntimeDefault" };
    }
    if (p.profileType === SecurityProfile_ProfileType.Localhost) {
      const path = p.localhostRef.replace(/^localhost\//, "");
      const text = await Deno.readTextFile(path).catch(() => {
        throw new InvalidArgumentError(`seccomp profile ${path} cannot be read`);
      });
      return { type: "Localhost", profile: seccompFromJson(text) };
    }
    return { type: "Unconfined" };
  }
  // The deprecated string form.
  const legacy = sc?.seccompProfilePath ?? "";
  if (legacy === "runtime/default" || legacy === "docker/default") {
    return { type: "RuntimeDefault" };
  }
  if (legacy.startsWith("localhost/")) {
    return {
      type: "Localhost",
      profile: seccompFromJson(await Deno.readTextFile(legacy.slice("localhost/".length))),
    };
  }
  // CRI: no profile asked for means unconfined.
  if (legacy === "" || legacy === "unconfined") return { type: "Unconfined" };
  throw new InvalidArgumentError(
    `unknown seccomp profile "${legacy}": use runtime/default, docker/default, unconfined or localhost/<path>`,
  );
}

/**
 * CRI LinuxContainerResources → the spec builder's resource options (also for updates).
 * Hugepage limits are dropped where the host has no hugetlb controller (see
 * {@linkcode hugetlbControllerPresent}); `hugetlb` overrides the host probe in tests.
 */
export function resourceOptions(
  r: LinuxContainerResources | undefined,
  hugetlb = hugetlbControllerPresent(),
): SpecOptions["resources"] {
  if (!r) return undefined;
  const n = (v: bigint) => (v ? Number(v) : undefined);
  return {
    cpu: {
      shares: n(r.cpuShares),
      quota: n(r.cpuQuota),
      period: n(r.cpuPeriod),
      cpus: r.cpusetCpus || undefined,
      mems: r.cpusetMems || undefined,
    },
    memory: r.memoryLimitInBytes
      ? { limit: Number(r.memoryLimitInBytes), swap: n(r.memorySwapLimitInBytes) }
      : undefined,
    hugepageLimits: hugetlb
      ? r.hugepageLimits.map((h) => ({ pageSize: h.pageSize, limit: Number(h.limit) }))
      : [],
    unified: Object.keys(r.unified).length ? r.unified : undefined,
  };
}

export async function createContainer(
  ctx: CriContext,
  req: CreateContainerRequest,
): Promise<CreateContainerResponse> {
  const config = req.config;
  if (!config) throw new InvalidArgumentError("container config is required");
  const sb = ctx.store.resolveSandbox(req.podSandboxId);
  if (sb.state !== "ready") throw new FailedPreconditionError(`pod sandbox ${sb.id} is not ready`);
  const sbConfig = (req.sandboxConfig ?? sb.config) as PodSandboxConfig;
  const nameKey = containerNameKey(config, sb.config as PodSandboxConfig);
  const imageRef = config.image?.image ?? "";
  if (!imageRef) throw new InvalidArgumentError("container config image.image is required");
  const image = await ctx.imageView.resolve(imageRef);
  if (!image) throw new NotFoundError(`image "${imageRef}"`);
  // CDI devices: resolved before the record, so a bad request leaves nothing behind.
  const cdi = await injectCdi(ctx.cdi, config, ctx.log);
  // Image volumes and host devices too (image_volumes.ts, devices.ts).
  const volumes = await imageVolumes(ctx.imageView, config.mounts);
  const devices = await criDevices(config.devices, !!config.linux?.securityContext?.privileged);
  const id = newId();
  const logPath = sbConfig.logDirectory && config.logPath
    ? `${sbConfig.logDirectory.replace(/\/$/, "")}/${config.logPath}`
    : "";
  ctx.store.addContainer({
    id,
    sandboxId: sb.id,
    nameKey,
    config,
    imageRef,
    imageId: image.id,
    logPath,
  });
  // Tests freeze the daemon here to kill it with the CRI record written and nothing created
  // below it: the next start drops such a record (container_recover.ts).
  failpoint("cri-container-create-after-record");
  try {
    const sc = config.linux?.securityContext;
    const ns = sc?.namespaceOptions;
    const pause = await ctx.containers.task(CRI_NAMESPACE, sb.id);
    const podNs = (what: string) => `/proc/${pause.pid}/ns/${what}`;
    const sbNs = (sb.config as PodSandboxConfig).linux?.securityContext?.namespaceOptions;
    const dir = sandboxDir(ctx, sb.id);
    const mounts: UserMount[] = [
      { destination: "/etc/hostname", source: `${dir}/hostname`, type: "bind" },
      { destination: "/etc/hosts", source: `${dir}/hosts`, type: "bind" },
      { destination: "/etc/resolv.conf", source: `${dir}/resolv.conf`, type: "bind" },
    ];
    if (sbNs?.ipc !== NamespaceMode.NODE) {
      mounts.push({ destination: "/dev/shm", source: `${dir}/shm`, type: "bind" });
    }
    const sbConfig0 = sb.config as PodSandboxConfig;
    const userns = podUsernsMappings(sbConfig0, {
      name: sb.handler,
      features: featuresOf(ctx, sb.handler),
    });
    const usernsPath = `${dir}/userns`;
    for (const [i, m] of config.mounts.entries()) {
      if (!m.containerPath.startsWith("/")) {
        throw new InvalidArgumentError(`mounts[${i}].container_path must be absolute`);
      }
      if (isImageVolume(m)) continue; // mounted by the container service
      if (m.recursiveReadOnly && !featuresOf(ctx, sb.handler).recursiveReadOnlyMounts) {
        throw new InvalidArgumentError(
          `mounts[${i}].recursive_read_only: runtime handler "${
            sb.handler || ctx.defaultHandler
          }" does not support recursive read-only mounts on this host`,
        );
      }
      const idmap = mountIdmapped(m, i, userns);
      if (m.hostPath) {
        // A missing host path is created as a directory, as the kubelet's DirectoryOrCreate does.
        await Deno.stat(m.hostPath).catch(() => Deno.mkdir(m.hostPath, { recursive: true }));
      }
      // The kubelet's mounts replace the pod files where they overlap.
      const at = mounts.findIndex((x) => x.destination === m.containerPath);
      if (at >= 0) mounts.splice(at, 1);
      mounts.push({
        destination: m.containerPath,
        source: m.hostPath,
        type: "bind",
        readonly: m.readonly,
        recursiveReadonly: m.recursiveReadOnly,
        propagation: PROPAGATION[m.propagation] ?? "rprivate",
        idmap,
      });
    }
    if (sc?.runAsGroup && !sc.runAsUser && !sc.runAsUsername) {
      throw new InvalidArgumentError(
        "runAsGroup should only be specified when runAsUser or runAsUsername is specified",
      );
    }
    const user = sc?.runAsUsername
      ? sc.runAsUsername + (sc.runAsGroup ? `:${sc.runAsGroup.value}` : "")
      : sc?.runAsUser
      ? `${sc.runAsUser.value}${sc.runAsGroup ? `:${sc.runAsGroup.value}` : ""}`
      : undefined;
    const podName = (sb.config as PodSandboxConfig).metadata!;
    await ctx.containers.create(CRI_NAMESPACE, {
      id,
      image: image.references[0] ?? imageRef,
      runtime: sb.handler,
      tty: config.tty,
      stdin: config.stdin,
      stdinOnce: config.stdinOnce,
      labels: {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sb.id,
      },
      command: config.command,
      args: config.args,
      env: [...config.envs.map((e) => `${e.key}=${new TextDecoder().decode(e.value)}`), ...cdi.env],
      cwd: config.workingDir || undefined,
      user,
      privileged: !!sc?.privileged,
      readonlyRootfs: !!sc?.readonlyRootfs,
      cgroupParent: (sb.config as PodSandboxConfig).linux?.cgroupParent ?? "",
      idmap: userns
        ? { usernsPath, uid: userns.uids[0].hostID, gid: userns.gids[0].hostID }
        : undefined,
      imageVolumes: volumes,
      specOverrides: {
        hostname: undefined,
        supplementalGroups: [...(sc?.supplementalGroups.map(Number) ?? []), ...cdi.additionalGids],
        supplementalGroupsPolicy: sc?.supplementalGroupsPolicy === SupplementalGroupsPolicy.Strict
          ? "Strict"
          : "Merge",
        idMappings: userns,
        noNewPrivileges: sc?.noNewPrivs,
        capabilities: sc?.capabilities
          ? { add: sc.capabilities.addCapabilities, drop: sc.capabilities.dropCapabilities }
          : undefined,
        seccomp: sc?.privileged ? { type: "Unconfined" } : await seccomp(config),
        apparmorProfile: await containerAppArmorProfile(ctx, config),
        maskedPaths: sc?.maskedPaths.length ? sc.maskedPaths : undefined,
        readonlyPaths: sc?.readonlyPaths.length ? sc.readonlyPaths : undefined,
        mounts: mergeMounts(mounts, cdi.mounts),
        devices: mergeDevices(devices, cdi.devices),
        hooks: cdi.hooks,
        namespaces: {
          network: sbNs?.network === NamespaceMode.NODE ? "host" : sb.netnsPath || podNs("net"),
          ipc: sbNs?.ipc === NamespaceMode.NODE ? "host" : podNs("ipc"),
          uts: sbNs?.network === NamespaceMode.NODE ? "host" : podNs("uts"),
          pid: ns?.pid === NamespaceMode.NODE
            ? "host"
            : ns?.pid === NamespaceMode.POD
            ? podNs("pid")
            : "new",
          user: userns ? usernsPath : "host",
        },
        resources: resourceOptions(config.linux?.resources),
        oomScoreAdj: config.linux?.resources?.oomScoreAdj
          ? Number(config.linux.resources.oomScoreAdj)
          : undefined,
        annotations: {
          ...config.annotations,
          "io.kubernetes.cri.container-type": "container",
          "io.kubernetes.cri.container-name": config.metadata!.name,
          "io.kubernetes.cri.sandbox-id": sb.id,
          "io.kubernetes.cri.sandbox-name": podName.name,
          "io.kubernetes.cri.sandbox-namespace": podName.namespace,
          "io.kubernetes.cri.image-name": imageRef,
        },
      },
    });
  } catch (e) {
    ctx.store.removeContainer(id);
    throw e;
  }
  return { containerId: id };
}

export async function startContainer(
  ctx: CriContext,
  req: StartContainerRequest,
): Promise<StartContainerResponse> {
  const c = ctx.store.resolveContainer(req.containerId);
  if (c.startedAt) throw new FailedPreconditionError(`container ${c.id} was already started`);
  const sb = ctx.store.sandbox(c.sandboxId);
  if (sb.state !== "ready") throw new FailedPreconditionError(`pod sandbox ${sb.id} is not ready`);
  try {
    await ctx.containers.createTask(CRI_NAMESPACE, c.id, { logPath: c.logPath || undefined });
    // Tests kill the daemon here (task created, not started) and after the start below (the
    // process runs, the record does not say so yet): container_recover.ts settles both.
    failpoint("cri-container-start-after-task-create");
    await ctx.containers.start(CRI_NAMESPACE, c.id);
    failpoint("cri-container-start-before-record");
  } catch (e) {
    ctx.store.markFinished(c.id, 128, new Date(), "StartError", (e as Error).message);
    await ctx.containers.deleteTask(CRI_NAMESPACE, c.id, true).catch(() => {});
    throw e;
  }
  ctx.store.markStarted(c.id);
  watchExit(ctx, c.id);
  return {};
}

/** Records the exit (code, time, OOM) when the task ends. */
export function watchExit(ctx: CriContext, id: string): void {
  ctx.containers.wait(CRI_NAMESPACE, id).then(
    (r) =>
      ctx.store.markFinished(
        id,
        r.exitCode,
        r.finishedAt ?? new Date(),
        r.oomKilled ? "OOMKilled" : r.exitCode === 0 ? "Completed" : "Error",
      ),
    () => {},
  );
}

/** SIGTERM (or the image's StopSignal), then SIGKILL after `timeoutSeconds`; a stopped task is fine. */
export async function stopContainerTask(
  ctx: CriContext,
  id: string,
  timeoutSeconds: number,
): Promise<void> {
  let task: { status: string; pid: number };
  try {
    task = await ctx.containers.task(CRI_NAMESPACE, id);
  } catch (e) {
    if (isKind(e, "not-found")) return;
    throw e;
  }
  if (task.status === "stopped") return;
  const signal = (await stopSignal(ctx, id)) ?? "SIGTERM";
  if (timeoutSeconds > 0) {
    const send = () => ctx.containers.kill(CRI_NAMESPACE, id, signal, false).catch(() => {});
    const sig = signalNumberOrUndefined(signal);
    // Looked at before and after the send: either may catch the init between exec and sigaction.
    const droppedBefore = sig !== undefined && signalDroppedByInit(task.pid, sig);
    await send();
    const mayBeLost = sig !== undefined &&
      (droppedBefore || signalDroppedByInit(task.pid, sig));
    // The grace timer is cleared on an early exit: a long grace period would otherwise hold a
    // timer (and this closure) per stopped container for its whole length.
    let timer: ReturnType<typeof setTimeout> | undefined;
    let over = false;
    // Runs beside the wait and ends with it (`over`); it settles nothing itself.
    if (mayBeLost) void resendOnceHandled(task.pid, sig!, send, () => over);
    const exited = await Promise.race([
      ctx.containers.wait(CRI_NAMESPACE, id).then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), timeoutSeconds * 1000)),
    ]).finally(() => {
      over = true;
      clearTimeout(timer);
    });
    if (exited) return;
  }
  await ctx.containers.kill(CRI_NAMESPACE, id, "SIGKILL", true).catch(() => {});
  const r = await ctx.containers.wait(CRI_NAMESPACE, id);
  ctx.store.markFinished(
    id,
    r.exitCode,
    r.finishedAt ?? new Date(),
    r.oomKilled ? "OOMKilled" : "Error",
  );
}

/**
 * A container's init that is the init of its PID namespace only gets signals it has a handler
 * for: a stop signal sent between its exec and its sigaction (a StopContainer right after
 * StartContainer; critest does this) is dropped, and the stop would wait out the whole grace
 * period. When the signal may have been lost, look again (10 ms, doubling up to 500 ms) while
 * the init has no handler, and send the signal once more as soon as it has one. Returns when it
 * resent, or when `over()`.
 */
async function resendOnceHandled(
  pid: number,
  sig: number,
  send: () => Promise<unknown>,
  over: () => boolean,
): Promise<void> {
  for (let delay = 10; !over(); delay = Math.min(delay * 2, 500)) {
    await new Promise((r) => setTimeout(r, delay));
    if (over()) return;
    if (!signalDroppedByInit(pid, sig)) {
      await send();
      return;
    }
  }
}

/** An image's StopSignal as a number; undefined for one runc alone may understand. */
function signalNumberOrUndefined(signal: string): number | undefined {
  try {
    return signalNumber(signal);
  } catch {
    return undefined;
  }
}

/** The container's stop signal: its config's (CRI stop_signal), else the image's StopSignal. */
async function stopSignal(ctx: CriContext, id: string): Promise<string | undefined> {
  try {
    const c = ctx.store.container(id);
    const own = criSignalName((c.config as ContainerConfig).stopSignal);
    if (own) return own;
    const img = await ctx.imageView.resolve(c.imageId);
    return img?.config.config?.StopSignal || undefined;
  } catch {
    return undefined;
  }
}

export async function stopContainer(
  ctx: CriContext,
  req: StopContainerRequest,
): Promise<StopContainerResponse> {
  let c: ContainerRecord;
  try {
    c = ctx.store.resolveContainer(req.containerId);
  } catch (e) {
    // Idempotent, as the kubelet (and critest 1.32) expect of an unknown container.
    if (isKind(e, "not-found")) return {};
    throw e;
  }
  await stopContainerTask(ctx, c.id, Number(req.timeout));
  return {};
}

/** Stops, then removes the task, the container and the record; idempotent. */
export async function removeContainerRecord(ctx: CriContext, id: string): Promise<void> {
  await stopContainerTask(ctx, id, 0);
  await ctx.containers.deleteTask(CRI_NAMESPACE, id, true).catch((e) => {
    if (!isKind(e, "not-found")) throw e;
  });
  await ctx.containers.delete(CRI_NAMESPACE, id).catch((e) => {
    if (!isKind(e, "not-found")) throw e;
  });
  ctx.store.removeContainer(id);
}

export async function removeContainer(
  ctx: CriContext,
  req: RemoveContainerRequest,
): Promise<RemoveContainerResponse> {
  let c: ContainerRecord;
  try {
    c = ctx.store.resolveContainer(req.containerId);
  } catch (e) {
    if (isKind(e, "not-found")) return {};
    throw e;
  }
  await removeContainerRecord(ctx, c.id);
  return {};
}
