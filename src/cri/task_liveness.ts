/**
 * What the CRI reports follows the tasks, as in containerd. A pod sandbox is READY only while
 * its pause task runs: when the pause process dies (killed, OOM, or a node reboot that took
 * every process with it), the pod turns NOTREADY and the kubelet recreates it. A started
 * container whose task vanished without an exit status (a reboot: conmon and its exit file
 * lived in /run) is EXITED with code 255, reason "Unknown". Two ways in: at daemon start every
 * sandbox and container is checked (after the containers service has re-attached to what still
 * runs), and while the daemon runs the pause task's exit event flips its pod.
 *
 * @example
 * ```ts
 * import { followTaskExits, reconcileTaskStates } from "./task_liveness.ts";
 * await reconcileTaskStates(ctx);         // at start, before serving
 * followTaskExits(ctx, events, signal);   // for the daemon's lifetime
 * ```
 */
import type { Exchange } from "../events/exchange.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";

async function pauseRunning(ctx: CriContext, id: string): Promise<boolean> {
  try {
    const t = await ctx.containers.task(CRI_NAMESPACE, id);
    return t.status === "running" || t.status === "paused";
  } catch {
    return false; // no task (or no container) left: nothing holds the pod's namespaces
  }
}

/**
 * Marks NOTREADY every READY sandbox whose pause task is no longer running, and EXITED (255,
 * "Unknown") every started container whose task is gone without an exit status.
 */
export async function reconcileTaskStates(ctx: CriContext): Promise<void> {
  for (const c of ctx.store.containers()) {
    if (!c.startedAt || c.finishedAt) continue;
    const status = await ctx.containers.task(CRI_NAMESPACE, c.id).then(
      (t) => t.status,
      () => "gone",
    );
    if (status !== "gone" && status !== "unknown") continue;
    ctx.store.markFinished(
      c.id,
      255,
      new Date(),
      "Unknown",
      "the container's task is gone without an exit status (the node rebooted, or its monitor died while the daemon was down)",
    );
    ctx.log.warn("container's task is gone: EXITED (255, Unknown)", {
      container: c.id.slice(0, 12),
    });
  }
  for (const sb of ctx.store.sandboxes()) {
    if (sb.state !== "ready" || sb.building) continue;
    if (await pauseRunning(ctx, sb.id)) continue;
    ctx.store.setSandboxState(sb.id, "notready");
    ctx.log.warn("pod sandbox's pause task is gone (exited or the node rebooted): NOTREADY", {
      sandbox: sb.id.slice(0, 12),
      pod: sb.nameKey,
    });
  }
}

/** Turns a sandbox NOTREADY when its pause task exits, until `signal` aborts. */
/**
 * Follows task exits until `signal` aborts: a pause task's exit turns its pod NOTREADY; a
 * container's exit status is kept in the CRI's own records, so it is still reported after a
 * reboot has taken conmon's exit file (in /run) with it.
 */
export function followTaskExits(ctx: CriContext, events: Exchange, signal?: AbortSignal): void {
  const sub = events.subscribe({ namespace: CRI_NAMESPACE, topics: ["/tasks/exit"], signal });
  (async () => {
    for await (const e of sub) {
      const id = String(e.event.containerId ?? "");
      if (!id) continue;
      if (!await containerExited(ctx, id)) sandboxExited(ctx, id, e.event.exitStatus);
    }
  })().catch((err) => ctx.log.error("following task exits stopped", { err }));
}

async function containerExited(ctx: CriContext, id: string): Promise<boolean> {
  try {
    if (ctx.store.container(id).id !== id) return false;
  } catch {
    return false;
  }
  const t = await ctx.containers.task(CRI_NAMESPACE, id).catch(() => undefined);
  if (t?.status !== "stopped") return true;
  const reason = t.oomKilled ? "OOMKilled" : t.exitCode === 0 ? "Completed" : "Error";
  ctx.store.markFinished(id, t.exitCode ?? 255, t.finishedAt ?? new Date(), reason);
  return true;
}

/**
 * Pause tasks that StopPodSandbox is killing: their exit is the stop, not news. Without this,
 * every pod the kubelet deleted logged a "pause task exited" warning.
 */
export const stoppingPauseTasks: Set<string> = new Set();

function sandboxExited(ctx: CriContext, id: string, exitStatus: unknown): void {
  const expected = stoppingPauseTasks.delete(id);
  let sb;
  try {
    sb = ctx.store.resolveSandbox(id);
  } catch {
    return;
  }
  if (sb.id !== id || sb.state !== "ready") return;
  ctx.store.setSandboxState(id, "notready");
  (expected ? ctx.log.debug : ctx.log.warn).call(
    ctx.log,
    "pod sandbox's pause task exited: NOTREADY",
    {
      sandbox: id.slice(0, 12),
      pod: sb.nameKey,
      exitStatus,
    },
  );
}
