/** CRI `PodSandboxStatus`, `ListPodSandbox` and `StreamPodSandboxes`. */
import {
  type ListPodSandboxRequest,
  type ListPodSandboxResponse,
  NamespaceMode,
  type PodSandbox,
  type PodSandboxConfig,
  PodSandboxState,
  type PodSandboxStatusRequest,
  type PodSandboxStatusResponse,
  type StreamPodSandboxesRequest,
  type StreamPodSandboxesResponse,
} from "../gen/runtime/v1/api.ts";
import { CRI_NAMESPACE, type CriContext, nanos } from "./context.ts";
import type { SandboxRecord } from "./store.ts";
import { streamOf } from "./chunked.ts";
import { runInFlight } from "./sandbox_run.ts";

function state(sb: SandboxRecord): PodSandboxState {
  return sb.state === "ready" ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

export async function podSandboxStatus(
  ctx: CriContext,
  req: PodSandboxStatusRequest,
): Promise<PodSandboxStatusResponse> {
  const sb = ctx.store.resolveSandbox(req.podSandboxId);
  const c = sb.config as PodSandboxConfig;
  const ns = c.linux?.securityContext?.namespaceOptions;
  const info: Record<string, string> = {};
  if (req.verbose) {
    // The pause process, as containerd reports it (0 once it is gone).
    const pid = await ctx.containers.task(CRI_NAMESPACE, sb.id).then((t) => t.pid, () => 0);
    info.info = JSON.stringify({
      pid,
      netNamespacePath: sb.netnsPath,
      runtimeHandler: sb.handler,
      config: c,
    }, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  }
  return {
    status: {
      id: sb.id,
      metadata: c.metadata,
      state: state(sb),
      createdAt: nanos(sb.createdAt),
      network: { ip: sb.ips[0] ?? "", additionalIps: sb.ips.slice(1).map((ip) => ({ ip })) },
      linux: {
        namespaces: {
          options: {
            network: ns?.network ?? NamespaceMode.POD,
            pid: ns?.pid ?? NamespaceMode.CONTAINER,
            ipc: ns?.ipc ?? NamespaceMode.POD,
            targetId: "",
            usernsOptions: undefined,
          },
        },
      },
      labels: c.labels ?? {},
      annotations: c.annotations ?? {},
      runtimeHandler: sb.handler,
    },
    info,
    containersStatuses: [],
    timestamp: nanos(new Date()),
  };
}

/**
 * The message listed for a sandbox record: the store's records are frozen and replaced on any
 * change, so one message per record, and its protobuf encoding kept too (list_encoding.ts).
 */
const listed = new WeakMap<SandboxRecord, PodSandbox>();

export function listPodSandbox(
  ctx: CriContext,
  req: ListPodSandboxRequest,
): Promise<ListPodSandboxResponse> {
  const f = req.filter;
  const items: PodSandbox[] = [];
  for (const sb of ctx.store.sandboxes()) {
    // A pod whose RunPodSandbox is still running here is not listed, as in containerd (which
    // stores it at the end): the kubelet's relist took it, NOTREADY, for a sandbox that died
    // and queued one more sync per pod. One left half-built by a killed daemon is listed.
    if (sb.building && runInFlight(sb.id)) continue;
    const c = sb.config as PodSandboxConfig;
    if (f?.id && !sb.id.startsWith(f.id)) continue;
    if (f?.state && state(sb) !== f.state.state) continue;
    if (f && Object.entries(f.labelSelector).some(([k, v]) => c.labels?.[k] !== v)) continue;
    let msg = listed.get(sb);
    if (!msg) {
      msg = Object.freeze({
        id: sb.id,
        metadata: c.metadata,
        state: state(sb),
        createdAt: nanos(sb.createdAt),
        labels: c.labels ?? {},
        annotations: c.annotations ?? {},
        runtimeHandler: sb.handler,
      });
      listed.set(sb, msg);
    }
    items.push(msg);
  }
  return Promise.resolve({ items });
}

/** `StreamPodSandboxes`: what ListPodSandbox returns (same filter), `size()` pods a message. */
export function streamPodSandboxes(ctx: CriContext, size: () => number) {
  return streamOf<
    StreamPodSandboxesRequest,
    ListPodSandboxResponse,
    PodSandbox,
    StreamPodSandboxesResponse
  >(
    (req) => listPodSandbox(ctx, req),
    (r) => r.items,
    (podSandboxes) => ({ podSandboxes }),
    size,
  );
}
