/**
 * A pod sandbox is READY only while its pause task runs, as in containerd: when the pause
 * process dies (killed, OOM, or a node reboot that took every process with it), the pod turns
 * NOTREADY and the kubelet recreates it. Two ways in: at daemon start every READY sandbox's
 * pause task is checked (after the containers service has re-attached to what still runs), and
 * while the daemon runs the pause task's exit event flips it.
 *
 * @example
 * ```ts
 * import { followPauseExits, reconcileSandboxStates } from "./sandbox_liveness.ts";
 * await reconcileSandboxStates(ctx);      // at start, before serving
 * followPauseExits(ctx, events, signal);  // for the daemon's lifetime
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

/** Marks NOTREADY every READY sandbox whose pause task is no longer running. */
export async function reconcileSandboxStates(ctx: CriContext): Promise<void> {
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
export function followPauseExits(ctx: CriContext, events: Exchange, signal?: AbortSignal): void {
  const sub = events.subscribe({ namespace: CRI_NAMESPACE, topics: ["/tasks/exit"], signal });
  (async () => {
    for await (const e of sub) {
      const id = String(e.event.containerId ?? "");
      let sb;
      try {
        sb = id ? ctx.store.resolveSandbox(id) : undefined;
      } catch {
        continue; // not a sandbox: a container's exit
      }
      if (!sb || sb.id !== id || sb.state !== "ready") continue;
      ctx.store.setSandboxState(id, "notready");
      ctx.log.warn("pod sandbox's pause task exited: NOTREADY", {
        sandbox: id.slice(0, 12),
        pod: sb.nameKey,
        exitStatus: e.event.exitStatus,
      });
    }
  })().catch((err) => ctx.log.error("following pause task exits stopped", { err }));
}
