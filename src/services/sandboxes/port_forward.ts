/**
 * Port-forward into a pod: each connection is relayed to the pod's loopback from inside its
 * network namespace by a short-lived `nsenter --net=<netns> k8scontainerd __relay 127.0.0.1
 * PORT` (this executable again, see src/cli/relay.ts), whose stdin and stdout carry the bytes.
 * A pod on the host network (no netns) is relayed from the host's loopback.
 *
 * @example
 * ```ts
 * import { relayPortForward } from "./port_forward.ts";
 * await relayPortForward({ netnsPath: "/run/netns/k8sc-ab12", port: 80, stream, podId: "ab12" });
 * ```
 *
 * @module
 */
import { FailedPreconditionError } from "../../errdefs/errors.ts";

/**
 * How to run this executable again: the compiled binary, or deno with this source tree.
 *
 * @example
 * ```ts
 * const [cmd, ...args] = selfCommand();
 * ```
 */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  if (!/\/deno$/.test(exe)) return [exe];
  const main = new URL(Deno.mainModule).pathname;
  const repo = main.replace(/\/src\/main\.ts$/, "");
  return [exe, "run", "--allow-all", "--quiet", "--no-prompt", `--config=${repo}/deno.json`, main];
}

/** One port-forward connection. */
export interface PortForwardRequest {
  /** The pod's network namespace; "" for a pod on the host's network. */
  netnsPath: string;
  /** The port on the pod's 127.0.0.1. */
  port: number;
  /** Bytes from the client in `readable`, bytes to the client into `writable`. */
  stream: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
  /** Aborted when the client disconnects: the relay is killed. */
  signal?: AbortSignal;
  /** The pod's id, for error messages. */
  podId: string;
}

/**
 * Relays one connection until the pod side closes it. A relay that fails (nothing listens on
 * the port, no such netns) ends in a FailedPreconditionError carrying the relay's own words.
 *
 * @example
 * ```ts
 * await relayPortForward({ netnsPath: "", port: 8080, stream, podId });
 * ```
 */
export async function relayPortForward(r: PortForwardRequest): Promise<void> {
  const [cmd, ...args] = r.netnsPath
    ? ["nsenter", `--net=${r.netnsPath}`, "--", ...selfCommand()]
    : selfCommand();
  const child = new Deno.Command(cmd, {
    args: [...args, "__relay", "127.0.0.1", String(r.port)],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  r.signal?.addEventListener("abort", () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, { once: true });
  const stderr = new Response(child.stderr).text();
  // The session ends when the pod side closes; the client side may stay open.
  const upstream = r.stream.readable.pipeTo(child.stdin).catch(() => {});
  await child.stdout.pipeTo(r.stream.writable).catch(() => {});
  const status = await child.status;
  void upstream;
  if (!status.success) {
    throw new FailedPreconditionError(
      `port-forward to port ${r.port} of pod ${r.podId}: ${(await stderr).trim()}`,
    );
  }
}
