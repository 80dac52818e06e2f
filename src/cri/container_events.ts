/**
 * CRI `GetContainerEvents`: the kubelet's evented PLEG stream. Task and container events of
 * the k8s.io namespace become CREATED / STARTED / STOPPED / DELETED events with the pod's and
 * the container's status attached (for a pause container, the pod's event, sent once
 * RunPodSandbox has ended so that a STARTED pod is a ready one).
 */
import {
  type ContainerEventResponse,
  ContainerEventType,
  type ContainerStatus,
  type GetEventsRequest,
  type PodSandboxStatus,
} from "../gen/runtime/v1/api.ts";
import type { CallContext } from "../grpc/server.ts";
import type { Exchange } from "../events/exchange.ts";
import { CRI_NAMESPACE, type CriContext, nanos } from "./context.ts";
import { podSandboxStatus } from "./sandbox_status.ts";
import { containerStatus } from "./container_status.ts";
import { runSettled } from "./sandbox_run.ts";

const TOPICS: Record<string, ContainerEventType> = {
  "/containers/create": ContainerEventType.CONTAINER_CREATED_EVENT,
  "/tasks/start": ContainerEventType.CONTAINER_STARTED_EVENT,
  "/tasks/exit": ContainerEventType.CONTAINER_STOPPED_EVENT,
  "/containers/delete": ContainerEventType.CONTAINER_DELETED_EVENT,
};

export function containerEvents(ctx: CriContext, events: Exchange) {
  return async function* (
    _req: GetEventsRequest,
    call: CallContext,
  ): AsyncGenerator<ContainerEventResponse> {
    const sub = events.subscribe({
      namespace: CRI_NAMESPACE,
      topics: Object.keys(TOPICS),
      signal: call.signal,
    });
    for await (const e of sub) {
      const id = String(e.event.containerId ?? e.event.id ?? "");
      if (!id) continue;
      // The pod this event belongs to: the container's, or the pause container's own.
      let sandboxId = id;
      let status: ContainerStatus | undefined;
      try {
        const c = ctx.store.container(id);
        sandboxId = c.sandboxId;
        status = (await containerStatus(ctx, { containerId: id, verbose: false })).status;
      } catch { /* a sandbox, or already removed */ }
      if (sandboxId === id) await runSettled(id);
      let pod: PodSandboxStatus | undefined;
      try {
        pod = (await podSandboxStatus(ctx, { podSandboxId: sandboxId, verbose: false })).status;
      } catch {
        if (sandboxId === id && !status) continue; // neither a CRI container nor a pod
      }
      yield {
        containerId: id,
        containerEventType: TOPICS[e.topic],
        createdAt: nanos(e.timestamp),
        podSandboxStatus: pod,
        containersStatuses: status ? [status] : [],
      };
    }
  };
}
