/**
 * CRI `ListMetricDescriptors`, `ListPodSandboxMetrics` and `StreamPodSandboxMetrics`: the
 * cAdvisor-named metrics the kubelet's `/metrics/cadvisor` serves when it takes pod metrics
 * from the runtime (`PodAndContainerStatsFromCRI`), with the names, help texts and label keys
 * containerd 2.2 uses: `pod, namespace, container, id, image` on every metric, plus
 * `interface` (network), `device` (filesystem) and `failure_type, scope` (memory failures).
 *
 * Values come from what runc reads from the container's cgroup (v1 and v2), the snapshotter
 * (the writable layer), /proc (file descriptors, threads) and the pod's netns, read through
 * /proc/<pause pid>/net/dev. The pod's own metrics are its network counters (container and
 * image labels empty, `id` the pod's); each running container of a READY pod adds its own.
 * Like containerd, counters in seconds are whole seconds (the value is a uint64).
 *
 * @example
 * ```ts
 * const { descriptors } = listMetricDescriptors();
 * const { podMetrics } = await listPodSandboxMetrics(ctx);
 * ```
 */
import {
  type ContainerConfig,
  type ContainerMetrics,
  type ListMetricDescriptorsResponse,
  type ListPodSandboxMetricsResponse,
  type Metric,
  type MetricDescriptor,
  MetricType,
  type PodSandboxConfig,
  type PodSandboxMetrics,
  type StreamPodSandboxMetricsRequest,
  type StreamPodSandboxMetricsResponse,
} from "../gen/runtime/v1/api.ts";
import { statfs } from "../../ffi/fs.ts";
import type { RuncStatsData } from "../services/containers/service.ts";
import { CRI_NAMESPACE, type CriContext } from "./context.ts";
import type { ContainerRecord, SandboxRecord } from "./store.ts";
import { type LinkStats, parseNetDev } from "./cgroup_files.ts";
import { streamOf } from "./chunked.ts";

const BASE = ["pod", "namespace", "container", "id", "image"];
const NET = [...BASE, "interface"];
const DISK = [...BASE, "device"];
const FAILURES = [...BASE, "failure_type", "scope"];

const d = (name: string, help: string, labelKeys = BASE): MetricDescriptor => ({
  name,
  help,
  labelKeys,
});

/** Every metric this runtime reports, by name (static for the daemon's lifetime). */
export const METRIC_DESCRIPTORS: readonly MetricDescriptor[] = [
  // CPU
  d("container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds."),
  d("container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds."),
  d("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds."),
  d("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals."),
  d("container_cpu_cfs_throttled_periods_total", "Number of CPU throttled period intervals."),
  d(
    "container_cpu_cfs_throttled_seconds_total",
    "Total time duration the container has been throttled.",
  ),
  // Memory
  d(
    "container_memory_cache",
    "Number of bytes of memory used by the container for caching purposes.",
  ),
  d(
    "container_memory_rss",
    "Size of RSS in bytes, total anonymous memory and swap cache memory used by the container.",
  ),
  d(
    "container_memory_kernel_usage",
    "Size of kernel memory allocated to the container in bytes.",
  ),
  d("container_memory_mapped_file", "Size of container's memory mapped files in bytes."),
  d("container_memory_swap", "Container swap usage in bytes."),
  d(
    "container_memory_failcnt",
    "Number of times container memory usage has hit its cgroup v1 upper memory limit.",
  ),
  d(
    "container_memory_usage_bytes",
    "Current memory usage in bytes, including all memory regardless of when it was accessed",
  ),
  d("container_memory_max_usage_bytes", "Maximum container memory usage recorded in bytes"),
  d(
    "container_memory_working_set_bytes",
    "Amount of memory that is actively used by the container, excluding cached memory.",
  ),
  d(
    "container_memory_total_active_file_bytes",
    "Amount of cache memory bytes, in use by the container, in file on disk.",
  ),
  d(
    "container_memory_total_inactive_file_bytes",
    "Amount of inactive cache memory bytes, for the container, in file on disk.",
  ),
  d(
    "container_memory_failures_total",
    "Cumulative count of container memory allocation failures.",
    FAILURES,
  ),
  // Network (the pod's)
  d("container_network_receive_bytes_total", "Cumulative count of bytes received", NET),
  d("container_network_receive_packets_total", "Cumulative count of packets received", NET),
  d(
    "container_network_receive_packets_dropped_total",
    "Cumulative count of packets dropped while receiving",
    NET,
  ),
  d(
    "container_network_receive_errors_total",
    "Cumulative count of errors encountered while receiving",
    NET,
  ),
  d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", NET),
  d("container_network_transmit_packets_total", "Cumulative count of packets transmitted", NET),
  d(
    "container_network_transmit_packets_dropped_total",
    "Cumulative count of packets dropped while transmitting",
    NET,
  ),
  d(
    "container_network_transmit_errors_total",
    "Cumulative count of errors encountered while transmitting",
    NET,
  ),
  // Filesystem (the writable layer) and block I/O
  d("container_fs_inodes_free", "Number of available Inodes", DISK),
  d("container_fs_inodes_total", "Number of Inodes", DISK),
  d(
    "container_fs_limit_bytes",
    "Number of bytes that can be consumed by the container on this filesystem.",
    DISK,
  ),
  d(
    "container_fs_usage_bytes",
    "Number of bytes that are consumed by the container on this filesystem.",
    DISK,
  ),
  d("container_fs_reads_bytes_total", "Cumulative count of bytes read", DISK),
  d("container_fs_reads_total", "Cumulative count of reads completed", DISK),
  d("container_fs_writes_bytes_total", "Cumulative count of bytes written", DISK),
  d("container_fs_writes_total", "Cumulative count of writes completed", DISK),
  // Processes
  d("container_processes", "Number of processes running inside the container."),
  d("container_file_descriptors", "Number of open file descriptors for the container."),
  d("container_sockets", "Number of open sockets for the container."),
  d(
    "container_threads_max",
    "Maximum number of threads allowed inside the container, infinity if value is zero",
  ),
  d("container_threads", "Number of threads running inside the container"),
  // Miscellaneous
  d("container_last_seen", "Last time a container was seen by the exporter"),
  d("container_start_time_seconds", "Start time of the container since unix epoch in seconds"),
  // Spec
  d("container_spec_cpu_period", "CPU period of the container"),
  d("container_spec_cpu_shares", "CPU share of the container"),
  d("container_spec_memory_limit_bytes", "Memory limit for the container"),
  d("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container"),
];

const TYPES = new Map<string, MetricType>(
  METRIC_DESCRIPTORS.map((m) => [
    m.name,
    /_total$/.test(m.name) ? MetricType.COUNTER : MetricType.GAUGE,
  ]),
);

/** `ListMetricDescriptors`. */
export function listMetricDescriptors(): Promise<ListMetricDescriptorsResponse> {
  return Promise.resolve({ descriptors: METRIC_DESCRIPTORS.map((m) => ({ ...m })) });
}

/**
 * Builds Metric messages sharing one label prefix (the base labels) and timestamp (0: gathered
 * live, as the proto asks); a value that is undefined is left out.
 */
export class MetricsBuilder {
  readonly out: Metric[] = [];
  constructor(readonly labels: string[], readonly timestamp: bigint) {}
  add(name: string, value: number | undefined, extra: string[] = []): void {
    if (value === undefined || !Number.isFinite(value)) return;
    const metricType = TYPES.get(name);
    if (metricType === undefined) throw new Error(`metric ${name} has no descriptor`);
    this.out.push({
      name,
      timestamp: this.timestamp,
      metricType,
      labelValues: [...this.labels, ...extra],
      value: { value: BigInt(Math.max(0, Math.floor(value))) },
    });
  }
}

const SEC = 1e9;

/** The network metrics of one link, for the pod (its netns). */
export function networkMetrics(m: MetricsBuilder, iface: string, s: LinkStats): void {
  const x = [iface];
  m.add("container_network_receive_bytes_total", s.rxBytes, x);
  m.add("container_network_receive_packets_total", s.rxPackets, x);
  m.add("container_network_receive_packets_dropped_total", s.rxDropped, x);
  m.add("container_network_receive_errors_total", s.rxErrors, x);
  m.add("container_network_transmit_bytes_total", s.txBytes, x);
  m.add("container_network_transmit_packets_total", s.txPackets, x);
  m.add("container_network_transmit_packets_dropped_total", s.txDropped, x);
  m.add("container_network_transmit_errors_total", s.txErrors, x);
}

/** The CPU and memory metrics of runc's stats (v1 and v2 key names alike). */
export function cgroupMetrics(m: MetricsBuilder, s: RuncStatsData): void {
  const cpu = s.cpu;
  if (cpu?.usage) {
    m.add("container_cpu_usage_seconds_total", (cpu.usage.total ?? 0) / SEC);
    m.add("container_cpu_user_seconds_total", (cpu.usage.user ?? 0) / SEC);
    m.add("container_cpu_system_seconds_total", (cpu.usage.kernel ?? 0) / SEC);
  }
  if (cpu) {
    const t = cpu.throttling ?? {};
    m.add("container_cpu_cfs_periods_total", t.periods ?? 0);
    m.add("container_cpu_cfs_throttled_periods_total", t.throttledPeriods ?? 0);
    m.add("container_cpu_cfs_throttled_seconds_total", (t.throttledTime ?? 0) / SEC);
  }
  const mem = s.memory;
  if (!mem) return;
  const raw = mem.raw ?? {};
  // v1 names hierarchical totals total_*; v2 has no prefix and calls mapped files file_mapped.
  const r = (v1: string, v2: string) => raw[`total_${v1}`] ?? raw[v2];
  const usage = mem.usage?.usage ?? 0;
  const inactive = r("inactive_file", "inactive_file") ?? 0;
  m.add("container_memory_usage_bytes", usage);
  m.add("container_memory_working_set_bytes", Math.max(0, usage - inactive));
  m.add("container_memory_max_usage_bytes", mem.usage?.max);
  m.add("container_memory_failcnt", mem.usage?.failcnt ?? 0);
  m.add("container_memory_cache", mem.cache ?? r("cache", "file"));
  m.add("container_memory_rss", r("rss", "anon"));
  m.add("container_memory_mapped_file", r("mapped_file", "file_mapped"));
  m.add("container_memory_total_active_file_bytes", r("active_file", "active_file"));
  m.add("container_memory_total_inactive_file_bytes", inactive);
  m.add("container_memory_kernel_usage", mem.kernel?.usage ?? raw.kernel ?? raw.kernel_stack);
  if (mem.swap?.usage) m.add("container_memory_swap", Math.max(0, mem.swap.usage - usage));
  const pgfault = r("pgfault", "pgfault"), pgmaj = r("pgmajfault", "pgmajfault");
  for (const scope of ["container", "hierarchy"]) {
    m.add("container_memory_failures_total", pgfault, ["pgfault", scope]);
    m.add("container_memory_failures_total", pgmaj, ["pgmajfault", scope]);
  }
}

/** Block devices by "major:minor" → /dev name (from /sys/dev/block/M:m/uevent). */
async function deviceName(major: number, minor: number): Promise<string> {
  try {
    const ev = await Deno.readTextFile(`/sys/dev/block/${major}:${minor}/uevent`);
    const name = /^DEVNAME=(.+)$/m.exec(ev)?.[1];
    if (name) return `/dev/${name}`;
  } catch { /* not a block device we can see */ }
  return `${major}:${minor}`;
}

/** Block I/O from runc's blkio counters (v2's io.stat is mapped to the same by runc). */
export async function blkioMetrics(m: MetricsBuilder, s: RuncStatsData): Promise<void> {
  const per = new Map<string, { rb: number; wb: number; r: number; w: number }>();
  const at = (maj = 0, min = 0) => {
    const k = `${maj}:${min}`;
    let e = per.get(k);
    if (!e) per.set(k, e = { rb: 0, wb: 0, r: 0, w: 0 });
    return e;
  };
  for (const e of s.blkio?.ioServiceBytesRecursive ?? []) {
    const op = e.op?.toLowerCase();
    if (op === "read") at(e.major, e.minor).rb += e.value ?? 0;
    if (op === "write") at(e.major, e.minor).wb += e.value ?? 0;
  }
  for (const e of s.blkio?.ioServicedRecursive ?? []) {
    const op = e.op?.toLowerCase();
    if (op === "read") at(e.major, e.minor).r += e.value ?? 0;
    if (op === "write") at(e.major, e.minor).w += e.value ?? 0;
  }
  for (const [k, v] of per) {
    const [maj, min] = k.split(":").map(Number);
    const dev = [await deviceName(maj, min)];
    m.add("container_fs_reads_bytes_total", v.rb, dev);
    m.add("container_fs_writes_bytes_total", v.wb, dev);
    m.add("container_fs_reads_total", v.r, dev);
    m.add("container_fs_writes_total", v.w, dev);
  }
}

/**
 * The device of the filesystem holding `path`, as cAdvisor labels filesystem metrics: the
 * source of the longest mount point in /proc/self/mountinfo that contains it (fields 5 and,
 * after the " - " separator, 2). The path itself when none matches.
 */
export function deviceFromMountinfo(mountinfo: string, path: string): string {
  let best = "", source = path;
  for (const line of mountinfo.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!post) continue;
    const mp = (pre.split(" ")[4] ?? "").replace(/\\040/g, " ");
    if (!(path === mp || path.startsWith(mp.endsWith("/") ? mp : `${mp}/`))) continue;
    if (mp.length >= best.length) {
      best = mp;
      source = post.split(" ")[1] ?? path;
    }
  }
  return source;
}

async function deviceOf(path: string): Promise<string> {
  if (!path) return "";
  try {
    return deviceFromMountinfo(await Deno.readTextFile("/proc/self/mountinfo"), path);
  } catch {
    return path;
  }
}

/** File descriptors, sockets and threads of the container's processes, from /proc. */
async function procMetrics(m: MetricsBuilder, pids: number[]): Promise<void> {
  let fds = 0, sockets = 0, threads = 0;
  for (const pid of pids) {
    try {
      for await (const e of Deno.readDir(`/proc/${pid}/fd`)) {
        fds++;
        try {
          if ((await Deno.readLink(`/proc/${pid}/fd/${e.name}`)).startsWith("socket:")) sockets++;
        } catch { /* closed meanwhile */ }
      }
      const st = await Deno.readTextFile(`/proc/${pid}/status`);
      threads += Number(/^Threads:\s+(\d+)/m.exec(st)?.[1] ?? 0);
    } catch { /* exited meanwhile */ }
  }
  m.add("container_processes", pids.length);
  m.add("container_file_descriptors", fds);
  m.add("container_sockets", sockets);
  m.add("container_threads", threads);
}

async function containerMetrics(
  ctx: CriContext,
  c: ContainerRecord,
  pod: string[],
): Promise<ContainerMetrics | undefined> {
  const cfg = c.config as ContainerConfig;
  const task = await ctx.containers.task(CRI_NAMESPACE, c.id).catch(() => undefined);
  if (task?.status !== "running") return undefined;
  const image = cfg.image?.userSpecifiedImage || c.imageRef;
  const m = new MetricsBuilder([...pod, cfg.metadata?.name ?? "", c.id, image], 0n);
  m.add("container_last_seen", Date.now() / 1000);
  const started = task.startedAt ?? c.startedAt;
  if (started) m.add("container_start_time_seconds", started.getTime() / 1000);
  const r = cfg.linux?.resources;
  // The limit the cgroup has now (it follows UpdateContainerResources; 0 when unlimited).
  let memoryLimit = Number(r?.memoryLimitInBytes ?? 0);
  try {
    const tm = await ctx.containers.metrics(CRI_NAMESPACE, c.id);
    const stats = tm.raw;
    cgroupMetrics(m, stats);
    await blkioMetrics(m, stats);
    m.add("container_threads_max", stats.pids?.limit ?? 0);
    memoryLimit = tm.memoryLimitBytes;
  } catch (e) {
    ctx.log.debug("container metrics: no cgroup stats", { id: c.id, err: e });
  }
  try {
    const w = await ctx.containers.writableLayer(CRI_NAMESPACE, c.id);
    const dev = [await deviceOf(w.mountpoint)];
    m.add("container_fs_usage_bytes", w.size, dev);
    if (w.mountpoint) {
      const fs = statfs(w.mountpoint);
      m.add("container_fs_limit_bytes", fs.blocks * fs.bsize, dev);
      m.add("container_fs_inodes_total", fs.files, dev);
      m.add("container_fs_inodes_free", fs.ffree, dev);
    }
  } catch { /* no snapshot */ }
  await procMetrics(m, await ctx.containers.pids(CRI_NAMESPACE, c.id).catch(() => []));
  m.add("container_spec_cpu_period", Number(r?.cpuPeriod ?? 0));
  m.add("container_spec_cpu_shares", Number(r?.cpuShares ?? 0));
  m.add("container_spec_memory_limit_bytes", memoryLimit);
  m.add("container_spec_memory_swap_limit_bytes", Number(r?.memorySwapLimitInBytes ?? 0));
  return { containerId: c.id, metrics: m.out };
}

async function podMetrics(ctx: CriContext, sb: SandboxRecord): Promise<PodSandboxMetrics> {
  const cfg = sb.config as PodSandboxConfig;
  const pod = [cfg.metadata?.name ?? "", cfg.metadata?.namespace ?? ""];
  const m = new MetricsBuilder([...pod, "", sb.id, ""], 0n);
  if (sb.netnsPath) {
    // The pause process lives in the pod's netns: its /proc/<pid>/net/dev is the pod's.
    const pid = await ctx.containers.task(CRI_NAMESPACE, sb.id).then((t) => t.pid, () => 0);
    if (pid) {
      try {
        const links = parseNetDev(await Deno.readTextFile(`/proc/${pid}/net/dev`));
        for (const [iface, s] of links) if (iface !== "lo") networkMetrics(m, iface, s);
      } catch (e) {
        ctx.log.debug("pod metrics: no network counters", { id: sb.id, err: e });
      }
    }
  }
  const containerMetricsList: ContainerMetrics[] = [];
  for (const c of ctx.store.containers(sb.id)) {
    const cm = await containerMetrics(ctx, c, pod);
    if (cm) containerMetricsList.push(cm);
  }
  return { podSandboxId: sb.id, metrics: m.out, containerMetrics: containerMetricsList };
}

/** `ListPodSandboxMetrics`: every READY pod, with its running containers. */
export async function listPodSandboxMetrics(
  ctx: CriContext,
): Promise<ListPodSandboxMetricsResponse> {
  const podMetricsList: PodSandboxMetrics[] = [];
  for (const sb of ctx.store.sandboxes()) {
    if (sb.state !== "ready") continue;
    podMetricsList.push(await podMetrics(ctx, sb));
  }
  return { podMetrics: podMetricsList };
}

/** `StreamPodSandboxMetrics`: what ListPodSandboxMetrics returns, `size()` pods a message. */
export function streamPodSandboxMetrics(ctx: CriContext, size: () => number) {
  return streamOf<
    StreamPodSandboxMetricsRequest,
    ListPodSandboxMetricsResponse,
    PodSandboxMetrics,
    StreamPodSandboxMetricsResponse
  >(
    () => listPodSandboxMetrics(ctx),
    (r) => r.podMetrics,
    (podSandboxMetrics) => ({ podSandboxMetrics }),
    size,
  );
}
