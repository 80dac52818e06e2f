/**
 * CRI `ContainerStatus`, `ListContainers` and `StreamContainers`: the kubelet's view of each
 * container's state.
 */
import {
  type Container,
  type ContainerConfig,
  ContainerState,
  type ContainerStatusRequest,
  type ContainerStatusResponse,
  type ContainerUser,
  type ImageSpec,
  type ListContainersRequest,
  type ListContainersResponse,
  MountPropagation,
  type StreamContainersRequest,
  type StreamContainersResponse,
} from "../gen/runtime/v1/api.ts";
import { CRI_NAMESPACE, type CriContext, nanos } from "./context.ts";
import type { ContainerRecord } from "./store.ts";
import type { TaskState } from "../services/containers/service.ts";
import { streamOf } from "./chunked.ts";

interface Live {
  state: ContainerState;
  exitCode: number;
  finishedAt?: Date;
  startedAt?: Date;
  reason: string;
}

/**
 * The container's live state: at once when the task's state is known without I/O (a list of
 * 1000 then makes no promise per container), else after asking the runtime.
 */
function live(ctx: CriContext, c: ContainerRecord): Live | Promise<Live> {
  const known = ctx.containers.knownTaskState(CRI_NAMESPACE, c.id);
  if (known !== undefined) return liveOf(c, known ?? undefined);
  return ctx.containers.taskState(CRI_NAMESPACE, c.id).then((t) => liveOf(c, t));
}

function liveOf(c: ContainerRecord, t: TaskState | undefined): Live {
  if (t) {
    if (t.status === "running" || t.status === "paused") {
      return {
        state: ContainerState.CONTAINER_RUNNING,
        exitCode: 0,
        startedAt: t.startedAt ?? c.startedAt,
        reason: "",
      };
    }
    if (t.status === "stopped") {
      const reason = t.oomKilled ? "OOMKilled" : t.exitCode === 0 ? "Completed" : "Error";
      return {
        state: ContainerState.CONTAINER_EXITED,
        exitCode: t.exitCode ?? 0,
        startedAt: t.startedAt ?? c.startedAt,
        finishedAt: t.finishedAt,
        reason,
      };
    }
    if (t.status === "created") {
      return { state: ContainerState.CONTAINER_CREATED, exitCode: 0, reason: "" };
    }
  }
  if (c.finishedAt) {
    return {
      state: ContainerState.CONTAINER_EXITED,
      exitCode: c.exitCode ?? 0,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      reason: c.reason,
    };
  }
  return {
    state: c.startedAt ? ContainerState.CONTAINER_UNKNOWN : ContainerState.CONTAINER_CREATED,
    exitCode: 0,
    reason: "",
  };
}

/**
 * The uid, gid and supplementary groups the container's process runs with, as resolved into
 * its OCI spec at creation (image user, run_as_user/group, /etc/group of the image and the
 * SupplementalGroupsPolicy); undefined when the spec is gone.
 */
function effectiveUser(ctx: CriContext, c: ContainerRecord): ContainerUser | undefined {
  // Fixed at creation, and reading it parses the whole OCI spec: kept per container, keyed by
  // the store's shared (frozen) config object of that container.
  const key = c.config as object;
  if (key && users.has(key)) return users.get(key);
  const user = readEffectiveUser(ctx, c.id);
  if (key && user) users.set(key, user);
  return user;
}

const users = new WeakMap<object, ContainerUser | undefined>();

function readEffectiveUser(ctx: CriContext, id: string): ContainerUser | undefined {
  let spec: { process?: { user?: { uid: number; gid: number; additionalGids?: number[] } } };
  try {
    spec = ctx.containers.get(CRI_NAMESPACE, id).spec as typeof spec;
  } catch {
    return undefined;
  }
  const u = spec?.process?.user;
  if (!u) return undefined;
  return {
    linux: {
      uid: BigInt(u.uid),
      gid: BigInt(u.gid),
      supplementalGroups: (u.additionalGids ?? []).map(BigInt),
    },
  };
}

export async function containerStatus(
  ctx: CriContext,
  req: ContainerStatusRequest,
): Promise<ContainerStatusResponse> {
  const c = ctx.store.resolveContainer(req.containerId);
  const cfg = c.config as ContainerConfig;
  const l = await live(ctx, c);
  const info: Record<string, string> = {};
  if (req.verbose) {
    info.info = JSON.stringify(
      { sandboxID: c.sandboxId, config: cfg, logPath: c.logPath },
      (_k, v) => (typeof v === "bigint" ? v.toString() : v),
    );
  }
  return {
    status: {
      id: c.id,
      metadata: cfg.metadata,
      state: l.state,
      createdAt: nanos(c.createdAt),
      startedAt: nanos(l.startedAt),
      finishedAt: nanos(l.finishedAt),
      exitCode: l.exitCode,
      image: imageSpecOf(c, cfg),
      imageRef: c.imageId,
      reason: l.reason,
      message: c.message,
      labels: cfg.labels ?? {},
      annotations: cfg.annotations ?? {},
      mounts: (cfg.mounts ?? []).map((m) => ({
        ...m,
        propagation: m.propagation ?? MountPropagation.PROPAGATION_PRIVATE,
      })),
      logPath: c.logPath,
      resources: undefined,
      imageId: c.imageId,
      user: effectiveUser(ctx, c),
      stopSignal: cfg.stopSignal ?? 0,
    },
    info,
  };
}

/**
 * The message last listed for a container record, with the runtime's known state it came from
 * (the record is the store's frozen one, replaced on any change; a known state is the
 * runtime's shared answer, the same object while nothing changed): unchanged containers are
 * listed without building anything, and keep their protobuf encoding too (list_encoding.ts).
 */
const listed = new WeakMap<ContainerRecord, { known?: object; msg: Container }>();

export async function listContainers(
  ctx: CriContext,
  req: ListContainersRequest,
): Promise<ListContainersResponse> {
  const f = req.filter;
  const containers: Container[] = [];
  for (const c of ctx.store.containers()) {
    const cfg = c.config as ContainerConfig;
    if (f?.id && !c.id.startsWith(f.id)) continue;
    if (f?.podSandboxId && !c.sandboxId.startsWith(f.podSandboxId)) continue;
    if (f && Object.entries(f.labelSelector).some(([k, v]) => cfg.labels?.[k] !== v)) continue;
    const known = ctx.containers.knownTaskState(CRI_NAMESPACE, c.id);
    const prev = listed.get(c);
    let msg = prev?.msg;
    if (!msg || !known || prev!.known !== known) {
      // null: known to have no task; undefined: ask the runtime.
      const l = known !== undefined
        ? liveOf(c, known ?? undefined)
        : liveOf(c, await ctx.containers.taskState(CRI_NAMESPACE, c.id));
      if (msg?.state !== l.state) msg = listedMessage(c, cfg, l.state);
      listed.set(c, { known: known ?? undefined, msg });
    }
    if (f?.state && msg.state !== f.state.state) continue;
    containers.push(msg);
  }
  return { containers };
}

/** The image a container runs, as ContainerStatus and ListContainers report it. */
function imageSpecOf(c: ContainerRecord, cfg: ContainerConfig): ImageSpec {
  return {
    image: c.imageRef,
    annotations: {},
    userSpecifiedImage: cfg.image?.userSpecifiedImage ?? "",
    runtimeHandler: "",
    imageRef: c.imageId,
  };
}

function listedMessage(c: ContainerRecord, cfg: ContainerConfig, state: ContainerState): Container {
  return Object.freeze({
    id: c.id,
    podSandboxId: c.sandboxId,
    metadata: cfg.metadata,
    image: imageSpecOf(c, cfg),
    imageRef: c.imageId,
    state,
    createdAt: nanos(c.createdAt),
    labels: cfg.labels ?? {},
    annotations: cfg.annotations ?? {},
    imageId: c.imageId,
  });
}

/** `StreamContainers`: what ListContainers returns (same filter), `size()` containers a message. */
export function streamContainers(ctx: CriContext, size: () => number) {
  return streamOf<
    StreamContainersRequest,
    ListContainersResponse,
    Container,
    StreamContainersResponse
  >(
    (req) => listContainers(ctx, req),
    (r) => r.containers,
    (containers) => ({ containers }),
    size,
  );
}
