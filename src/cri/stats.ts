/**
 * CRI `ContainerStats`, `ListContainerStats`, `PodSandboxStats` and `ListPodSandboxStats`:
 * CPU, memory (with the working set the kubelet evicts on) and the writable layer, from the
 * cgroup stats runc reads (v1 and v2) and the snapshotter's usage.
 */
import type {
  ContainerConfig,
  ContainerStats,
  ContainerStatsRequest,
  ContainerStatsResponse,
  ListContainerStatsRequest,
  ListContainerStatsResponse,
  ListPodSandboxStatsRequest,
  ListPodSandboxStatsResponse,
  PodSandboxConfig,
  PodSandboxStats,
  PodSandboxStatsRequest,
  PodSandboxStatsResponse,
} from "../gen/runtime/v1/api.ts";
import { isKind } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext, nanos } from "./context.ts";
import type { ContainerRecord, SandboxRecord } from "./store.ts";

const u64 = (n: number) => ({ value: BigInt(Math.max(0, Math.round(n))) });

async function statsOf(ctx: CriContext, c: ContainerRecord): Promise<ContainerStats> {
  const cfg = c.config as ContainerConfig;
  const now = nanos(new Date());
  const out: ContainerStats = {
    attributes: {
      id: c.id,
      metadata: cfg.metadata,
      labels: cfg.labels ?? {},
      annotations: cfg.annotations ?? {},
    },
    cpu: undefined,
    memory: undefined,
    writableLayer: undefined,
    swap: undefined,
    io: undefined,
  };
  try {
    const m = await ctx.containers.metrics(CRI_NAMESPACE, c.id);
    out.cpu = {
      timestamp: now,
      usageCoreNanoSeconds: u64(m.cpuUsageNs),
      usageNanoCores: undefined,
      psi: undefined,
    };
    out.memory = {
      timestamp: now,
      workingSetBytes: u64(m.memoryWorkingSetBytes),
      availableBytes: m.memoryLimitBytes
        ? u64(m.memoryLimitBytes - m.memoryWorkingSetBytes)
        : undefined,
      usageBytes: u64(m.memoryUsageBytes),
      rssBytes: undefined,
      pageFaults: undefined,
      majorPageFaults: undefined,
      psi: undefined,
    };
  } catch (e) {
    // A container without a running task has no cgroup to read: its stats are just attributes.
    if (!isKind(e, "not-found") && !isKind(e, "failed-precondition")) {
      ctx.log.debug("container stats unavailable", { id: c.id, err: e });
    }
  }
  try {
    const w = await ctx.containers.writableLayer(CRI_NAMESPACE, c.id);
    out.writableLayer = {
      timestamp: now,
      fsId: { mountpoint: w.mountpoint },
      usedBytes: u64(w.size),
      inodesUsed: u64(w.inodes),
    };
  } catch { /* no snapshot */ }
  return out;
}

export async function containerStats(
  ctx: CriContext,
  req: ContainerStatsRequest,
): Promise<ContainerStatsResponse> {
  return { stats: await statsOf(ctx, ctx.store.resolveContainer(req.containerId)) };
}

export async function listContainerStats(
  ctx: CriContext,
  req: ListContainerStatsRequest,
): Promise<ListContainerStatsResponse> {
  const f = req.filter;
  const stats: ContainerStats[] = [];
  for (const c of ctx.store.containers()) {
    const cfg = c.config as ContainerConfig;
    if (f?.id && !c.id.startsWith(f.id)) continue;
    if (f?.podSandboxId && !c.sandboxId.startsWith(f.podSandboxId)) continue;
    if (f && Object.entries(f.labelSelector).some(([k, v]) => cfg.labels?.[k] !== v)) continue;
    stats.push(await statsOf(ctx, c));
  }
  return { stats };
}

async function podStats(ctx: CriContext, sb: SandboxRecord): Promise<PodSandboxStats> {
  const cfg = sb.config as PodSandboxConfig;
  const containers = [];
  let cpu = 0, mem = 0, ws = 0;
  for (const c of ctx.store.containers(sb.id)) {
    const s = await statsOf(ctx, c);
    containers.push(s);
    cpu += Number(s.cpu?.usageCoreNanoSeconds?.value ?? 0n);
    mem += Number(s.memory?.usageBytes?.value ?? 0n);
    ws += Number(s.memory?.workingSetBytes?.value ?? 0n);
  }
  const now = nanos(new Date());
  return {
    attributes: {
      id: sb.id,
      metadata: cfg.metadata,
      labels: cfg.labels ?? {},
      annotations: cfg.annotations ?? {},
    },
    linux: {
      cpu: {
        timestamp: now,
        usageCoreNanoSeconds: u64(cpu),
        usageNanoCores: undefined,
        psi: undefined,
      },
      memory: {
        timestamp: now,
        workingSetBytes: u64(ws),
        availableBytes: undefined,
        usageBytes: u64(mem),
        rssBytes: undefined,
        pageFaults: undefined,
        majorPageFaults: undefined,
        psi: undefined,
      },
      network: undefined,
      process: undefined,
      containers,
      io: undefined,
    },
    windows: undefined,
  };
}

export async function podSandboxStats(
  ctx: CriContext,
  req: PodSandboxStatsRequest,
): Promise<PodSandboxStatsResponse> {
  return { stats: await podStats(ctx, ctx.store.resolveSandbox(req.podSandboxId)) };
}

export async function listPodSandboxStats(
  ctx: CriContext,
  req: ListPodSandboxStatsRequest,
): Promise<ListPodSandboxStatsResponse> {
  const f = req.filter;
  const stats: PodSandboxStats[] = [];
  for (const sb of ctx.store.sandboxes()) {
    const cfg = sb.config as PodSandboxConfig;
    if (f?.id && !sb.id.startsWith(f.id)) continue;
    if (f && Object.entries(f.labelSelector).some(([k, v]) => cfg.labels?.[k] !== v)) continue;
    stats.push(await podStats(ctx, sb));
  }
  return { stats };
}
