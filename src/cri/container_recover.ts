/**
 * Daemon start: settle the CRI container records that a CreateContainer or StartContainer cut
 * short by a killed daemon left out of step with the containers service below.
 *
 * - CreateContainer writes its record (reserving the kubelet's name) before the containers
 *   service creates the container. Killed in between, or inside the service's create (whose
 *   own recovery has already undone its half at this point), the record names a container that
 *   was never created: listed as CREATED, its name taken, StartContainer failing. Such records
 *   are removed, so the kubelet's retry with the same name succeeds. (The same holds for a
 *   RemoveContainer killed between removing the container and its record, or halfway through
 *   removing the container: the containers service finishes that delete at start.)
 * - StartContainer creates the task, starts it, then records the start. Killed with the task
 *   created but not started, the task is deleted: the container is CREATED again and the next
 *   StartContainer runs it. Killed after the start, the record learns what the task says:
 *   started (RUNNING), and finished too if it has exited since.
 *
 * Runs before the socket serves and after the containers service's own recovery.
 *
 * @example
 * ```ts
 * import { recoverContainers } from "./container_recover.ts";
 * await recoverContainers(ctx); // in registerCri, before the server listens
 * ```
 *
 * @module
 */
import { isKind } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";
import type { ContainerRecord } from "./store.ts";

/**
 * Removes CRI container records with no container in the containers service, and settles the
 * records of containers whose StartContainer did not finish. A record that cannot be settled
 * is logged and left as it is (the kubelet can still stop and remove it).
 *
 * @example
 * ```ts
 * await recoverContainers(ctx);
 * ```
 */
export async function recoverContainers(ctx: CriContext): Promise<void> {
  for (const c of ctx.store.containers()) {
    const log = ctx.log.child({ container: c.id.slice(0, 12), name: c.nameKey });
    try {
      if (!exists(ctx, c.id)) {
        ctx.store.removeContainer(c.id);
        // Started or finished: it was a RemoveContainer, not a CreateContainer, that was cut short.
        const cut = c.startedAt || c.finishedAt ? "RemoveContainer" : "CreateContainer";
        log.warn(
          `container record left by a ${cut} cut short (no container below it): removed, its name is free again`,
        );
        continue;
      }
      if (!c.startedAt && !c.finishedAt) await settleStart(ctx, c, log);
    } catch (err) {
      log.error("cannot settle a container record at start", { err });
    }
  }
}

function exists(ctx: CriContext, id: string): boolean {
  try {
    ctx.containers.get(CRI_NAMESPACE, id);
    return true;
  } catch (e) {
    if (isKind(e, "not-found")) return false;
    throw e;
  }
}

/** A container never recorded as started: what does its task say? */
async function settleStart(
  ctx: CriContext,
  c: ContainerRecord,
  log: CriContext["log"],
): Promise<void> {
  let t;
  try {
    t = await ctx.containers.task(CRI_NAMESPACE, c.id);
  } catch (e) {
    if (isKind(e, "not-found")) return; // no task: plain CREATED, as it should be
    throw e;
  }
  if (t.status === "created") {
    await ctx.containers.deleteTask(CRI_NAMESPACE, c.id, true);
    log.warn(
      "container's task was created by a StartContainer cut short, never started: deleted, the container is CREATED again",
    );
    return;
  }
  if (t.status === "running" || t.status === "paused" || t.status === "stopped") {
    ctx.store.markStarted(c.id, t.startedAt ?? new Date());
    if (t.status === "stopped") {
      const reason = t.oomKilled ? "OOMKilled" : t.exitCode === 0 ? "Completed" : "Error";
      ctx.store.markFinished(c.id, t.exitCode ?? 255, t.finishedAt ?? new Date(), reason);
    }
    log.warn("container was started by a StartContainer cut short: recorded as started", {
      status: t.status,
    });
  }
}
