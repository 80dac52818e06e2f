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

/** How to run this executable again: the compiled binary, or deno with this source tree. */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  if (!/\/deno$/.test(exe)) return [exe];
  const main = new URL(Deno.mainModule).pathname;
  const repo = main.replace(/\/src\/main\.ts$/, "");
  return [exe, "run", "--allow-all", "--quiet", "--no-prompt", `--config=${repo}/deno.json`, main];
}

async function pipeOut(
  from: ReadableStream<Uint8Array>,
  to?: WritableStream<Uint8Array>,
): Promise<void> {
  if (to) await from.pipeTo(to, { preventClose: true }).catch(() => {});
  else await from.cancel().catch(() => {});
}

export function criStreamingBackend(ctx: CriContext): StreamingBackend {
  return {
    async exec(o: ExecOptions): Promise<number> {
      const c = ctx.store.resolveContainer(o.containerId);
      const p = await ctx.containers.execStream(CRI_NAMESPACE, c.id, {
        args: o.cmd,
        tty: o.tty,
        stdin: !!o.stdin,
      });
      o.signal?.addEventListener("abort", () => void p.kill("SIGKILL").catch(() => {}), {
        once: true,
      });
      if (o.tty && o.resize && p.resize) {
        (async () => {
          for await (const size of o.resize!) await p.resize!(size.width, size.height);
        })().catch(() => {});
      }
      const feeding = o.stdin && p.stdin
        ? o.stdin.pipeTo(p.stdin).catch(() => {})
        : Promise.resolve();
      const [code] = await Promise.all([
        p.exitCode,
        pipeOut(p.stdout, o.stdout),
        pipeOut(p.stderr, o.stderr),
      ]);
      void feeding;
      return code;
    },

    async attach(o: AttachOptions): Promise<void> {
      const c = ctx.store.resolveContainer(o.containerId);
      const a = await ctx.containers.attach(CRI_NAMESPACE, c.id);
      if (o.tty && o.resize) {
        (async () => {
          for await (const size of o.resize!) {
            await ctx.containers.resize(CRI_NAMESPACE, c.id, size.width, size.height);
          }
        })().catch(() => {});
      }
      if (o.stdin && a.stdin) o.stdin.pipeTo(a.stdin).catch(() => {});
      const out = o.stdout?.getWriter();
      const err = o.stderr?.getWriter();
      try {
        for await (const chunk of a.output) {
          if (o.signal?.aborted) break;
          const w = chunk.stream === "stderr" && err ? err : out;
          await w?.write(chunk.data);
        }
      } finally {
        out?.releaseLock();
        err?.releaseLock();
      }
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
