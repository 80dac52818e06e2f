/**
 * What the streaming server runs for the CRI: exec and attach through the container service,
 * and port-forward through the sandbox service, which relays to the pod's loopback from inside
 * its network namespace.
 */
import type {
  AttachOptions,
  ExecOptions,
  PortForwardOptions,
  StreamingBackend,
} from "../streaming/backend.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";
import { attachOverStreams, execOverStreams } from "../services/containers/stream_sessions.ts";

export function criStreamingBackend(ctx: CriContext): StreamingBackend {
  return {
    async exec(o: ExecOptions): Promise<number> {
      const c = ctx.store.resolveContainer(o.containerId);
      return await execOverStreams(ctx.containers, CRI_NAMESPACE, c.id, o);
    },

    async attach(o: AttachOptions): Promise<void> {
      const c = ctx.store.resolveContainer(o.containerId);
      return await attachOverStreams(ctx.containers, CRI_NAMESPACE, c.id, o);
    },

    async portForward(o: PortForwardOptions): Promise<void> {
      const sb = ctx.store.resolveSandbox(o.podSandboxId);
      if (sb.state !== "ready") {
        throw new FailedPreconditionError(`pod sandbox ${sb.id} is not ready`);
      }
      await ctx.sandboxes.portForward({
        netnsPath: sb.netnsPath,
        port: o.port,
        stream: o.stream,
        signal: o.signal,
        podId: sb.id,
      });
    },
  };
}
