/**
 * CRI `ExecSync`: runs a command in a running container and returns its output and exit code;
 * the timeout (seconds, 0 = none) is honoured and the output is capped by the service.
 */
import type { ExecSyncRequest, ExecSyncResponse } from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";

export async function execSync(ctx: CriContext, req: ExecSyncRequest): Promise<ExecSyncResponse> {
  const c = ctx.store.resolveContainer(req.containerId);
  if (!req.cmd.length) throw new InvalidArgumentError("cmd is required");
  const t = await ctx.containers.task(CRI_NAMESPACE, c.id).catch(() => undefined);
  if (t?.status !== "running") {
    throw new FailedPreconditionError(`container ${c.id} is not running`);
  }
  const r = await ctx.containers.exec(CRI_NAMESPACE, c.id, {
    args: req.cmd,
    timeoutMs: req.timeout > 0n ? Number(req.timeout) * 1000 : undefined,
  });
  return { stdout: Buffer.from(r.stdout), stderr: Buffer.from(r.stderr), exitCode: r.exitCode };
}
