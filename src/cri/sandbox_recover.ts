/**
 * Daemon start: undo what a RunPodSandbox cut short by a killed daemon had half built. Such a
 * sandbox still carries its `building` mark; what it may hold is a netns under /run/netns with
 * a CNI attachment (an IP lease, port rules), a mounted /dev/shm, and a pause container with
 * its task, bundle and snapshot. All of it is released here, before the socket serves, so IPs
 * do not leak while the kubelet has not yet come round to the pod.
 *
 * The record itself is kept and reported NOTREADY, as containerd reports a sandbox whose pause
 * task is gone after a restart: the kubelet sees the attempt in ListPodSandbox, starts the next
 * attempt beside it, and stops and removes the dead one through its usual garbage collection.
 * Removing the record instead would hide the attempt from the kubelet's history.
 *
 * @example
 * ```ts
 * import { recoverSandboxes } from "./sandbox_recover.ts";
 * await recoverSandboxes(ctx); // in registerCri, before the server listens
 * ```
 */
import { type CriContext, sandboxDir } from "./context.ts";
import { removePauseContainer, stopSandbox } from "./sandbox_stop_remove.ts";

/**
 * Undoes every sandbox still marked as being built and marks it NOTREADY. A sandbox whose
 * undo fails keeps its mark (and is logged): StopPodSandbox tears down such a pod in full, and
 * the next start tries again.
 */
export async function recoverSandboxes(ctx: CriContext): Promise<void> {
  for (const sb of ctx.store.sandboxes()) {
    if (!sb.building) continue;
    const log = ctx.log.child({ sandbox: sb.id.slice(0, 12), pod: sb.nameKey });
    try {
      // Kills the pause task, tears the network down (CNI DEL, netns removed), unmounts shm.
      await stopSandbox(ctx, sb);
      await removePauseContainer(ctx, sb.id);
      await Deno.remove(sandboxDir(ctx, sb.id), { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
      ctx.store.markSandboxUndone(sb.id);
      log.warn("pod sandbox was left half built by a killed daemon; undone, kept as NOTREADY");
    } catch (err) {
      log.error("cannot undo a half-built pod sandbox; StopPodSandbox or the next start retries", {
        err,
      });
    }
  }
}
