/**
 * Exec and attach sessions over the streaming server's stdio streams: a container service
 * process wired to one upgraded connection. The CRI runs its containers' sessions through
 * these, and so do management containers (`run -t`, `attach`, `tasks exec -t`), whose stream
 * ids are `<namespace>/<id>` — a `/` never appears in CRI ids — so one streaming server
 * serves both. The daemon joins the two with {@link withManagementStreams}.
 *
 * @example
 * ```ts
 * import { withManagementStreams } from "./stream_sessions.ts";
 * const backend = withManagementStreams(criStreamingBackend(ctx), containers);
 * const streaming = new StreamingServer({ backend });
 * ```
 */
import type {
  AttachOptions,
  ExecOptions,
  PortForwardOptions,
  StreamingBackend,
} from "../../streaming/backend.ts";
import type { ContainerService } from "./service.ts";

/**
 * The stream id for a management container.
 *
 * @example
 * ```ts
 * managementStreamId("default", "web"); // "default/web"
 * ```
 */
export function managementStreamId(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}

function split(streamId: string): [string, string] | undefined {
  const i = streamId.indexOf("/");
  return i > 0 ? [streamId.slice(0, i), streamId.slice(i + 1)] : undefined;
}

async function pipeOut(
  from: ReadableStream<Uint8Array>,
  to?: WritableStream<Uint8Array>,
): Promise<void> {
  if (to) await from.pipeTo(to, { preventClose: true }).catch(() => {});
  else await from.cancel().catch(() => {});
}

/**
 * Runs an exec in a container with its stdio wired to a streaming session; the exit code.
 *
 * @example
 * ```ts
 * const code = await execOverStreams(containers, "k8s.io", id, { containerId: id, cmd, tty });
 * ```
 */
export async function execOverStreams(
  containers: ContainerService,
  ns: string,
  id: string,
  o: ExecOptions,
): Promise<number> {
  const p = await containers.execStream(ns, id, { args: o.cmd, tty: o.tty, stdin: !!o.stdin });
  o.signal?.addEventListener("abort", () => void p.kill("SIGKILL").catch(() => {}), { once: true });
  if (o.tty && o.resize && p.resize) {
    (async () => {
      for await (const size of o.resize!) await p.resize!(size.width, size.height);
    })().catch(() => {});
  }
  if (o.stdin && p.stdin) o.stdin.pipeTo(p.stdin).catch(() => {});
  const [code] = await Promise.all([
    p.exitCode,
    pipeOut(p.stdout, o.stdout),
    pipeOut(p.stderr, o.stderr),
  ]);
  return code;
}

/**
 * Attaches a streaming session to a container's own process until its output ends.
 *
 * @example
 * ```ts
 * await attachOverStreams(containers, "default", "web", { containerId: "default/web", tty });
 * ```
 */
export async function attachOverStreams(
  containers: ContainerService,
  ns: string,
  id: string,
  o: AttachOptions,
): Promise<void> {
  const a = await containers.attach(ns, id);
  if (o.tty && o.resize) {
    (async () => {
      for await (const size of o.resize!) await containers.resize(ns, id, size.width, size.height);
    })().catch(() => {});
  }
  if (o.stdin && a.stdin) o.stdin.pipeTo(a.stdin).catch(() => {});
  const out = o.stdout?.getWriter();
  const err = o.stderr?.getWriter();
  try {
    for await (const chunk of a.output) {
      if (o.signal?.aborted) break;
      await (chunk.stream === "stderr" && err ? err : out)?.write(chunk.data);
    }
  } finally {
    out?.releaseLock();
    err?.releaseLock();
  }
}

/**
 * Routes `ns/id` streams to the container service and everything else to `cri`.
 *
 * @example
 * ```ts
 * const backend = withManagementStreams(criBackend, containers);
 * ```
 */
export function withManagementStreams(
  cri: StreamingBackend,
  containers: ContainerService,
): StreamingBackend {
  return {
    exec(o: ExecOptions): Promise<number> {
      const ref = split(o.containerId);
      return ref ? execOverStreams(containers, ref[0], ref[1], o) : cri.exec(o);
    },
    attach(o: AttachOptions): Promise<void> {
      const ref = split(o.containerId);
      return ref ? attachOverStreams(containers, ref[0], ref[1], o) : cri.attach(o);
    },
    portForward(o: PortForwardOptions): Promise<void> {
      return cri.portForward(o);
    },
  };
}
