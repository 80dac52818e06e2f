/**
 * CRI `ContainerStats`, `ListContainerStats`, `PodSandboxStats` and `ListPodSandboxStats`
 * (and their `Stream*` forms): CPU, memory (with the working set the kubelet evicts on, RSS and
 * page faults), swap and the writable layer, from the cgroup stats runc reads (v1 and v2) and
 * the snapshotter's usage; PSI (cpu, memory, io) where the container's cgroup has `*.pressure`
 * files (cgroup v2, and the unified hierarchy of a hybrid host); a pod's network counters from
 * its netns.
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
  PsiStats,
  StreamContainerStatsRequest,
  StreamContainerStatsResponse,
  StreamPodSandboxStatsRequest,
  StreamPodSandboxStatsResponse,
} from "../gen/runtime/v1/api.ts";
import { isKind } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext, nanos } from "./context.ts";
import type { ContainerRecord, SandboxRecord } from "./store.ts";
import { streamOf } from "./chunked.ts";
import type { RuncStatsData } from "../services/containers/service.ts";
import {
  type LinkStats,
  parseNetDev,
  parsePsi,
  readPsiOfPid,
  unifiedPathOf,
  unifiedRoot,
} from "./cgroup_files.ts";
import type { NetworkInterfaceUsage, NetworkUsage, SwapUsage } from "../gen/runtime/v1/api.ts";

const u64 = (n: number) => ({ value: BigInt(Math.max(0, Math.round(n))) });
const opt = (n: number | undefined) => (n === undefined ? undefined : u64(n));

/**
 * Swap from runc's memory stats: runc reports memory+swap (v1's memsw, and v2 with
 * memory.current added to match), so swap alone is the difference. Undefined without swap
 * accounting.
 */
export function swapFromStats(raw: RuncStatsData, timestamp: bigint): SwapUsage | undefined {
  const mem = raw.memory;
  if (!mem?.swap || mem.swap.usage === undefined) return undefined;
  const usage = mem.usage?.usage ?? 0;
  const used = Math.max(0, (mem.swap.usage ?? 0) - usage);
  const limit = mem.swap.limit ?? 0;
  const memLimit = mem.usage?.limit ?? 0;
  const UNLIMITED = 2 ** 62;
  return {
    timestamp,
    swapUsageBytes: u64(used),
    swapAvailableBytes: limit > 0 && limit < UNLIMITED && memLimit < UNLIMITED
      ? u64(limit - memLimit - used)
      : undefined,
  };
}

/** A network interface's counters in the CRI's shape. */
export function interfaceUsage(name: string, s: LinkStats): NetworkInterfaceUsage {
  return {
    name,
    rxBytes: u64(s.rxBytes),
    rxErrors: u64(s.rxErrors),
    txBytes: u64(s.txBytes),
    txErrors: u64(s.txErrors),
  };
}

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
    const pid = await ctx.containers.task(CRI_NAMESPACE, c.id).then((t) => t.pid, () => 0);
    const [cpuPsi, memPsi, ioPsi] = await Promise.all(
      (["cpu", "memory", "io"] as const).map((r) => readPsiOfPid(pid, r)),
    );
    const raw = m.raw.memory?.raw ?? {};
    out.cpu = {
      timestamp: now,
      usageCoreNanoSeconds: u64(m.cpuUsageNs),
      usageNanoCores: undefined,
      psi: cpuPsi,
    };
    out.memory = {
      timestamp: now,
      workingSetBytes: u64(m.memoryWorkingSetBytes),
      availableBytes: m.memoryLimitBytes
        ? u64(m.memoryLimitBytes - m.memoryWorkingSetBytes)
        : undefined,
      usageBytes: u64(m.memoryUsageBytes),
      // v1 counts the hierarchy under total_*, v2 has no prefix (and names RSS anon).
      rssBytes: opt(raw.total_rss ?? raw.anon),
      pageFaults: opt(raw.total_pgfault ?? raw.pgfault),
      majorPageFaults: opt(raw.total_pgmajfault ?? raw.pgmajfault),
      psi: memPsi,
    };
    out.swap = swapFromStats(m.raw, now);
    if (ioPsi) out.io = { timestamp: now, psi: ioPsi };
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
  const pod = await podCgroupReadings(ctx, sb, now);
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
        psi: pod.psi.cpu,
      },
      memory: {
        timestamp: now,
        workingSetBytes: u64(ws),
        availableBytes: undefined,
        usageBytes: u64(mem),
        rssBytes: undefined,
        pageFaults: undefined,
        majorPageFaults: undefined,
        psi: pod.psi.memory,
      },
      network: pod.network,
      process: undefined,
      containers,
      io: pod.psi.io ? { timestamp: now, psi: pod.psi.io } : undefined,
    },
    windows: undefined,
  };
}

/**
 * What the pod's pause process shows of the pod: its netns's links (/proc/<pid>/net/dev; the
 * default interface is eth0, as the CNI names it) and, when the pod has its own cgroup (a
 * cgroup parent), the PSI of that cgroup — the parent directory of the pause container's.
 */
async function podCgroupReadings(
  ctx: CriContext,
  sb: SandboxRecord,
  now: bigint,
): Promise<{ network?: NetworkUsage; psi: Record<"cpu" | "memory" | "io", PsiStats | undefined> }> {
  const psi: Record<"cpu" | "memory" | "io", PsiStats | undefined> = {
    cpu: undefined,
    memory: undefined,
    io: undefined,
  };
  const pid = await ctx.containers.task(CRI_NAMESPACE, sb.id).then((t) => t.pid, () => 0);
  if (!pid) return { psi };
  let network: NetworkUsage | undefined;
  if (sb.netnsPath) {
    try {
      const links = parseNetDev(await Deno.readTextFile(`/proc/${pid}/net/dev`));
      const interfaces = [...links].filter(([n]) => n !== "lo").map(([n, s]) =>
        interfaceUsage(n, s)
      );
      network = {
        timestamp: now,
        defaultInterface: interfaces.find((i) => i.name === "eth0") ?? interfaces[0],
        interfaces,
      };
    } catch { /* the pause process is gone */ }
  }
  const base = unifiedRoot();
  if (base && (sb.config as PodSandboxConfig).linux?.cgroupParent) {
    try {
      const rel = unifiedPathOf(await Deno.readTextFile(`/proc/${pid}/cgroup`));
      const dir = rel?.replace(/\/[^/]*$/, "");
      if (dir) {
        for (const r of ["cpu", "memory", "io"] as const) {
          psi[r] = parsePsi(await Deno.readTextFile(`${base}${dir}/${r}.pressure`).catch(() => ""));
        }
      }
    } catch { /* gone */ }
  }
  return { network, psi };
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

/** `StreamContainerStats`: what ListContainerStats returns (same filter), in pages. */
export function streamContainerStats(ctx: CriContext, size: () => number) {
  return streamOf<
    StreamContainerStatsRequest,
    ListContainerStatsResponse,
    ContainerStats,
    StreamContainerStatsResponse
  >(
    (req) => listContainerStats(ctx, req),
    (r) => r.stats,
    (containerStats) => ({ containerStats }),
    size,
  );
}

/** `StreamPodSandboxStats`: what ListPodSandboxStats returns (same filter), in pages. */
export function streamPodSandboxStats(ctx: CriContext, size: () => number) {
  return streamOf<
    StreamPodSandboxStatsRequest,
    ListPodSandboxStatsResponse,
    PodSandboxStats,
    StreamPodSandboxStatsResponse
  >(
    (req) => listPodSandboxStats(ctx, req),
    (r) => r.stats,
    (podSandboxStats) => ({ podSandboxStats }),
    size,
  );
}
