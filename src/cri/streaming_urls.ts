/**
 * CRI `Exec`, `Attach` and `PortForward`: each answers with a single-use URL of the streaming
 * server, which the kubelet (or crictl) then connects to with SPDY or WebSocket.
 */
import type {
  AttachRequest,
  AttachResponse,
  ExecRequest,
  ExecResponse,
  PortForwardRequest,
  PortForwardResponse,
} from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import type { StreamingServer } from "../streaming/server.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";

async function requireRunning(ctx: CriContext, id: string): Promise<string> {
  const c = ctx.store.resolveContainer(id);
  const t = await ctx.containers.task(CRI_NAMESPACE, c.id).catch(() => undefined);
  if (t?.status !== "running") {
    throw new FailedPreconditionError(`container ${c.id} is not running`);
  }
  return c.id;
}

export function streamingHandlers(ctx: CriContext, server: StreamingServer) {
  return {
    async exec(req: ExecRequest): Promise<ExecResponse> {
      const containerId = await requireRunning(ctx, req.containerId);
      return {
        url: server.getExecUrl({
          containerId,
          cmd: req.cmd,
          tty: req.tty,
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
        }),
      };
    },
    async attach(req: AttachRequest): Promise<AttachResponse> {
      const containerId = await requireRunning(ctx, req.containerId);
      return {
        url: server.getAttachUrl({
          containerId,
          tty: req.tty,
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
        }),
      };
    },
    portForward(req: PortForwardRequest): Promise<PortForwardResponse> {
      const sb = ctx.store.resolveSandbox(req.podSandboxId);
      return Promise.resolve({ url: server.getPortForwardUrl({ podSandboxId: sb.id }) });
    },
  };
}
