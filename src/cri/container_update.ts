/** CRI `UpdateContainerResources` and `ReopenContainerLog`. */
import type {
  ReopenContainerLogRequest,
  ReopenContainerLogResponse,
  UpdateContainerResourcesRequest,
  UpdateContainerResourcesResponse,
} from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";
import { resourceOptions } from "./container_lifecycle.ts";

export async function updateContainerResources(
  ctx: CriContext,
  req: UpdateContainerResourcesRequest,
): Promise<UpdateContainerResourcesResponse> {
  const c = ctx.store.resolveContainer(req.containerId);
  const r = req.linux;
  if (!r) return {};
  // runc update takes OCI LinuxResources; swap follows the limit unless given (no swapping).
  const opts = resourceOptions(r)!;
  const resources: Record<string, unknown> = {
    cpu: opts.cpu,
    ...(opts.memory
      ? { memory: { limit: opts.memory.limit, swap: opts.memory.swap ?? opts.memory.limit } }
      : {}),
  };
  await ctx.containers.updateResources(CRI_NAMESPACE, c.id, resources);
  return {};
}

export async function reopenContainerLog(
  ctx: CriContext,
  req: ReopenContainerLogRequest,
): Promise<ReopenContainerLogResponse> {
  const c = ctx.store.resolveContainer(req.containerId);
  const t = await ctx.containers.task(CRI_NAMESPACE, c.id).catch(() => undefined);
  if (t?.status !== "running") {
    throw new FailedPreconditionError(`container ${c.id} is not running`);
  }
  await ctx.containers.reopenLog(CRI_NAMESPACE, c.id);
  return {};
}
