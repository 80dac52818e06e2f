/**
 * CRI `StopPodSandbox` and `RemovePodSandbox`. Stop kills every container of the pod and the
 * pause container, tears the network down (CNI DEL, netns removed) and unmounts /dev/shm; it
 * is idempotent, as the kubelet calls it repeatedly. Remove stops first if needed, then removes
 * the pod's containers and records; removing an unknown pod is not an error.
 */
import type {
  PodSandboxConfig,
  RemovePodSandboxRequest,
  RemovePodSandboxResponse,
  StopPodSandboxRequest,
  StopPodSandboxResponse,
} from "../gen/runtime/v1/api.ts";
import { isKind } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext, sandboxDir } from "./context.ts";
import { hostNetwork, portMappings, runInFlight } from "./sandbox_run.ts";
import { removeContainerRecord, stopContainerTask } from "./container_lifecycle.ts";
import type { SandboxRecord } from "./store.ts";
import { stoppingPauseTasks } from "./task_liveness.ts";

/** Kills a task and waits for it to be gone; missing tasks are fine. */
async function killTask(ctx: CriContext, id: string): Promise<void> {
  try {
    const t = await ctx.containers.task(CRI_NAMESPACE, id);
    if (t.status === "running" || t.status === "paused" || t.status === "created") {
      stoppingPauseTasks.add(id);
      await ctx.containers.kill(CRI_NAMESPACE, id, "SIGKILL", true).catch(() => {});
      await ctx.containers.wait(CRI_NAMESPACE, id);
    }
  } catch (e) {
    if (!isKind(e, "not-found")) throw e;
  }
}

/** Deletes the pause container's task and the container (bundle, snapshot); absent is fine. */
export async function removePauseContainer(ctx: CriContext, id: string): Promise<void> {
  stoppingPauseTasks.delete(id);
  await ctx.containers.deleteTask(CRI_NAMESPACE, id, true).catch((e) => {
    if (!isKind(e, "not-found")) throw e;
  });
  await ctx.containers.delete(CRI_NAMESPACE, id).catch((e) => {
    if (!isKind(e, "not-found")) throw e;
  });
}

export async function stopSandbox(ctx: CriContext, sb: SandboxRecord): Promise<void> {
  const config = sb.config as PodSandboxConfig;
  // A pod left half built by a killed daemon has no netns path recorded, yet may have a netns
  // and an IP. (One still being built here is its RunPodSandbox's to finish or undo.)
  const leftover = sb.building && !runInFlight(sb.id);
  // The network goes while the tasks are killed: neither needs the other (the kubelet has
  // stopped the containers gracefully already), and CNI DEL is a third of the stop.
  const network = sb.netnsPath || (leftover && !hostNetwork(config))
    ? ctx.sandboxes.tearDownNetwork({
      podId: sb.id,
      netnsPath: sb.netnsPath,
      podName: config.metadata?.name,
      podNamespace: config.metadata?.namespace,
      podUid: config.metadata?.uid,
      portMappings: portMappings(config),
    })
    : Promise.resolve();
  const tasks = (async () => {
    // Containers with no grace period, then the pause container.
    await Promise.all(ctx.store.containers(sb.id).map((c) => stopContainerTask(ctx, c.id, 0)));
    await killTask(ctx, sb.id);
  })();
  const [t, n] = await Promise.allSettled([tasks, network]);
  if (n.status === "fulfilled" && sb.netnsPath) ctx.store.markNetworkDown(sb.id);
  if (t.status === "rejected") throw t.reason;
  if (n.status === "rejected") throw n.reason;
  ctx.sandboxes.unmountShm(`${sandboxDir(ctx, sb.id)}/shm`);
  // The pod's user namespace: its processes are gone; containers' idmapped mounts do not need it.
  ctx.sandboxes.releaseUserns(`${sandboxDir(ctx, sb.id)}/userns`);
  if (leftover) ctx.store.markSandboxUndone(sb.id);
  else ctx.store.setSandboxState(sb.id, "notready");
}

export async function stopPodSandbox(
  ctx: CriContext,
  req: StopPodSandboxRequest,
): Promise<StopPodSandboxResponse> {
  let sb: SandboxRecord;
  try {
    sb = ctx.store.resolveSandbox(req.podSandboxId);
  } catch (e) {
    // The kubelet may retry a stop after a remove: nothing left to stop is success.
    if (isKind(e, "not-found")) return {};
    throw e;
  }
  await stopSandbox(ctx, sb);
  return {};
}

export async function removePodSandbox(
  ctx: CriContext,
  req: RemovePodSandboxRequest,
): Promise<RemovePodSandboxResponse> {
  let sb: SandboxRecord;
  try {
    sb = ctx.store.resolveSandbox(req.podSandboxId);
  } catch (e) {
    if (isKind(e, "not-found")) return {};
    throw e;
  }
  await stopSandbox(ctx, sb);
  // Each container's runc state, rootfs and snapshot are its own: removed side by side.
  await Promise.all([
    ...ctx.store.containers(sb.id).map((c) => removeContainerRecord(ctx, c.id)),
    removePauseContainer(ctx, sb.id),
  ]);
  await Deno.remove(sandboxDir(ctx, sb.id), { recursive: true }).catch(() => {});
  ctx.store.removeSandbox(sb.id);
  return {};
}
