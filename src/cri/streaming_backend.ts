/**
 * What the streaming server runs for the CRI: exec and attach through the container service,
 * and port-forward by relaying to the pod's loopback from inside its network namespace (a
 * short-lived `nsenter --net=<netns> k8scontainerd __relay 127.0.0.1 PORT` per connection).
 */
import type {
  AttachOptions,
  ExecOptions,
  PortForwardOptions,
  StreamingBackend,
} from "./streaming/backend.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";
import { attachOverStreams, execOverStreams } from "../api/stream_backend.ts";

/** How to run this executable again: the compiled binary, or deno with this source tree. */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  if (!/\/deno$/.test(exe)) return [exe];
  const main = new URL(Deno.mainModule).pathname;
  const repo = main.replace(/\/src\/main\.ts$/, "");
  return [exe, "run", "--allow-all", "--quiet", "--no-prompt", `--config=${repo}/deno.json`, main];
}

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
      const [cmd, ...args] = sb.netnsPath
        ? ["nsenter", `--net=${sb.netnsPath}`, "--", ...selfCommand()]
        : selfCommand();
      const child = new Deno.Command(cmd, {
        args: [...args, "__relay", "127.0.0.1", String(o.port)],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      o.signal?.addEventListener("abort", () => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, { once: true });
      const stderr = new Response(child.stderr).text();
      // The session ends when the pod side closes; the client side may stay open.
      const upstream = o.stream.readable.pipeTo(child.stdin).catch(() => {});
      await child.stdout.pipeTo(o.stream.writable).catch(() => {});
      const status = await child.status;
      void upstream;
      if (!status.success) {
        throw new FailedPreconditionError(
          `port-forward to port ${o.port} of pod ${sb.id}: ${(await stderr).trim()}`,
        );
      }
    },
  };
}
