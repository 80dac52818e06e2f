/**
 * CRI `UpdatePodSandboxResources` (in-place pod resize, KEP 1287): writes the pod-level limits
 * — the sum of the containers' resources plus the pod overhead — into the pod's cgroup, the
 * directory its `linux.cgroup_parent` names: under each v1 controller (`cpu`, `memory`,
 * `cpuset`, `hugetlb`) on a v1 or hybrid host, once under /sys/fs/cgroup on v2 (where the
 * request's `unified` files are written as given too). With the systemd driver
 * the parent is a slice, which systemd nests (`kubepods-burstable-pod1.slice` lives in
 * `kubepods.slice/kubepods-burstable.slice/`); the files are written directly, as the kubelet
 * does for cgroupfs.
 *
 * The kubelet calls this after resizing the pod cgroup itself and treats it as best effort; a
 * pod started without a cgroup parent has no pod cgroup, and the call changes nothing. Unknown
 * pod: NotFound. A value out of range: InvalidArgument naming the field. A limit the kernel
 * refuses (a memory limit below what the pod uses): FailedPrecondition naming the file.
 *
 * @example
 * ```ts
 * podCgroupWrites("v2", "/kubepods/pod1", { cpuQuota: 50000, cpuPeriod: 100000 });
 * // [{ file: "/sys/fs/cgroup/kubepods/pod1/cpu.max", value: "50000 100000" }]
 * ```
 */
import type {
  LinuxContainerResources,
  UpdatePodSandboxResourcesRequest,
  UpdatePodSandboxResourcesResponse,
} from "../gen/runtime/v1/api.ts";
import type { PodSandboxConfig } from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import { cgroupMode } from "../../ffi/fs.ts";
import type { CriContext } from "./context.ts";
import { CGROUP_ROOT, cgroupParentDir } from "./cgroup_files.ts";

/** The pod cgroup's limits; a field left out is not written. */
export interface PodLimits {
  cpuPeriod?: number;
  /** -1: no quota. */
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimit?: number;
  /** Memory plus swap, as the CRI and OCI count it; -1: unlimited. */
  memorySwapLimit?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  /** Page size ("2MB") → limit in bytes. */
  hugepages?: Record<string, number>;
  /** cgroup v2 files to write as given (`memory.high` …). */
  unified?: Record<string, string>;
}

const DEFAULT_PERIOD = 100_000;

function num(v: bigint | number | undefined): number {
  return Number(v ?? 0);
}

/** Refuses values the kernel would refuse, naming the field as the proto spells it. */
export function validateResources(r: LinuxContainerResources | undefined, field: string): void {
  if (!r) return;
  const bad = (name: string, v: unknown, want: string) =>
    new InvalidArgumentError(`${field}.${name}: invalid value ${v}: expected ${want}`);
  const period = num(r.cpuPeriod), quota = num(r.cpuQuota), shares = num(r.cpuShares);
  if (period !== 0 && (period < 1000 || period > 1_000_000)) {
    throw bad("cpu_period", period, "0 or 1000–1000000 (µs)");
  }
  if (quota !== 0 && quota !== -1 && quota < 1000) {
    throw bad("cpu_quota", quota, "0, -1 or at least 1000 (µs)");
  }
  if (shares !== 0 && (shares < 2 || shares > 262144)) {
    throw bad("cpu_shares", shares, "0 or 2–262144");
  }
  if (num(r.memoryLimitInBytes) < 0) {
    throw bad("memory_limit_in_bytes", r.memoryLimitInBytes, "0 (unset) or a positive number");
  }
  if (num(r.memorySwapLimitInBytes) < -1) {
    throw bad("memory_swap_limit_in_bytes", r.memorySwapLimitInBytes, "-1, 0 or positive");
  }
  for (const h of r.hugepageLimits ?? []) {
    if (!/^\d+[KMG]B$/.test(h.pageSize)) {
      throw bad("hugepage_limits.page_size", JSON.stringify(h.pageSize), 'a size like "2MB"');
    }
    if (num(h.limit) < 0) throw bad("hugepage_limits.limit", h.limit, "0 or positive");
  }
  for (const k of Object.keys(r.unified ?? {})) {
    if (!/^[a-z]+\.[a-z0-9_.]+$/.test(k)) {
      throw bad("unified", JSON.stringify(k), "a cgroup v2 file name like memory.high");
    }
  }
  for (const [name, v] of [["cpuset_cpus", r.cpusetCpus], ["cpuset_mems", r.cpusetMems]]) {
    if (v && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) {
      throw bad(name, JSON.stringify(v), "a list like 0-2,4");
    }
  }
}

/**
 * The pod cgroup's limits from the request: the containers' sum plus the overhead, for each
 * resource the containers limit (an overhead alone limits nothing; the quota of the overhead is
 * scaled to the resources' period).
 */
export function podLimits(
  overhead: LinuxContainerResources | undefined,
  resources: LinuxContainerResources | undefined,
): PodLimits {
  validateResources(overhead, "overhead");
  validateResources(resources, "resources");
  const out: PodLimits = {};
  if (!resources) return out;
  const period = num(resources.cpuPeriod) || DEFAULT_PERIOD;
  const quota = num(resources.cpuQuota);
  if (quota > 0) {
    const ovQuota = num(overhead?.cpuQuota);
    const ovPeriod = num(overhead?.cpuPeriod) || DEFAULT_PERIOD;
    out.cpuPeriod = period;
    out.cpuQuota = quota + (ovQuota > 0 ? Math.round(ovQuota * period / ovPeriod) : 0);
  } else if (quota === -1) {
    out.cpuPeriod = period;
    out.cpuQuota = -1;
  }
  const shares = num(resources.cpuShares);
  if (shares > 0) out.cpuShares = Math.min(262144, shares + Math.max(0, num(overhead?.cpuShares)));
  const mem = num(resources.memoryLimitInBytes);
  if (mem > 0) out.memoryLimit = mem + Math.max(0, num(overhead?.memoryLimitInBytes));
  const swap = num(resources.memorySwapLimitInBytes);
  if (swap === -1) out.memorySwapLimit = -1;
  else if (swap > 0) out.memorySwapLimit = swap + Math.max(0, num(overhead?.memoryLimitInBytes));
  if (resources.cpusetCpus) out.cpusetCpus = resources.cpusetCpus;
  if (resources.cpusetMems) out.cpusetMems = resources.cpusetMems;
  if (resources.hugepageLimits?.length) {
    out.hugepages = Object.fromEntries(
      resources.hugepageLimits.map((h) => [h.pageSize, num(h.limit)]),
    );
  }
  if (Object.keys(resources.unified ?? {}).length) out.unified = { ...resources.unified };
  return out;
}

/** cgroup v1 cpu.shares → v2 cpu.weight, the formula runc and the kubelet use. */
export function sharesToWeight(shares: number): number {
  if (shares <= 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** One write: the file and what goes into it, in order. */
export interface CgroupWrite {
  file: string;
  value: string;
}

/** The files to write for `limits` in the pod cgroup `dir` (relative to a hierarchy root). */
export function podCgroupWrites(
  mode: "v1" | "v2",
  dir: string,
  limits: PodLimits,
  root = CGROUP_ROOT,
): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const put = (file: string, value: number | string) => w.push({ file, value: String(value) });
  if (mode === "v2") {
    const at = `${root}${dir}`;
    if (limits.cpuQuota !== undefined) {
      const q = limits.cpuQuota === -1 ? "max" : String(limits.cpuQuota);
      put(`${at}/cpu.max`, `${q} ${limits.cpuPeriod ?? DEFAULT_PERIOD}`);
    }
    if (limits.cpuShares !== undefined) put(`${at}/cpu.weight`, sharesToWeight(limits.cpuShares));
    if (limits.cpusetCpus) put(`${at}/cpuset.cpus`, limits.cpusetCpus);
    if (limits.cpusetMems) put(`${at}/cpuset.mems`, limits.cpusetMems);
    if (limits.memoryLimit !== undefined) put(`${at}/memory.max`, limits.memoryLimit);
    if (limits.memorySwapLimit !== undefined) {
      // v2 limits swap alone: memory+swap minus memory.
      const s = limits.memorySwapLimit === -1
        ? "max"
        : String(Math.max(0, limits.memorySwapLimit - (limits.memoryLimit ?? 0)));
      put(`${at}/memory.swap.max`, s);
    }
    for (const [size, limit] of Object.entries(limits.hugepages ?? {})) {
      put(`${at}/hugetlb.${size}.max`, limit);
    }
    for (const [k, v] of Object.entries(limits.unified ?? {})) put(`${at}/${k}`, v);
    return w;
  }
  const cpu = `${root}/cpu${dir}`, mem = `${root}/memory${dir}`, cs = `${root}/cpuset${dir}`;
  if (limits.cpuQuota !== undefined) {
    put(`${cpu}/cpu.cfs_period_us`, limits.cpuPeriod ?? DEFAULT_PERIOD);
    put(`${cpu}/cpu.cfs_quota_us`, limits.cpuQuota);
  }
  if (limits.cpuShares !== undefined) put(`${cpu}/cpu.shares`, limits.cpuShares);
  if (limits.cpusetCpus) put(`${cs}/cpuset.cpus`, limits.cpusetCpus);
  if (limits.cpusetMems) put(`${cs}/cpuset.mems`, limits.cpusetMems);
  if (limits.memoryLimit !== undefined) put(`${mem}/memory.limit_in_bytes`, limits.memoryLimit);
  if (limits.memorySwapLimit !== undefined) {
    put(`${mem}/memory.memsw.limit_in_bytes`, limits.memorySwapLimit);
  }
  for (const [size, limit] of Object.entries(limits.hugepages ?? {})) {
    put(`${root}/hugetlb${dir}/hugetlb.${size}.limit_in_bytes`, limit);
  }
  if (limits.unified) {
    throw new InvalidArgumentError(
      "resources.unified: cgroup v2 files cannot be set on this cgroup v1 host",
    );
  }
  return w;
}

/** Writes in order; on v1 a memory.limit_in_bytes above memsw is retried after it. */
export async function applyCgroupWrites(writes: CgroupWrite[]): Promise<void> {
  const failed: CgroupWrite[] = [];
  for (const wr of writes) {
    try {
      await Deno.writeTextFile(wr.file, wr.value, { create: false });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        // A controller file the kernel does not have (memsw without swap accounting).
        if (/memsw|swap/.test(wr.file)) continue;
        throw new FailedPreconditionError(`pod cgroup file ${wr.file} does not exist`, {
          cause: e,
        });
      }
      failed.push(wr);
    }
  }
  for (const wr of failed) {
    try {
      await Deno.writeTextFile(wr.file, wr.value, { create: false });
    } catch (e) {
      throw new FailedPreconditionError(
        `cannot write ${wr.value} to ${wr.file}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}

export async function updatePodSandboxResources(
  ctx: CriContext,
  req: UpdatePodSandboxResourcesRequest,
): Promise<UpdatePodSandboxResourcesResponse> {
  const sb = ctx.store.resolveSandbox(req.podSandboxId);
  const limits = podLimits(req.overhead, req.resources);
  const parent = (sb.config as PodSandboxConfig).linux?.cgroupParent ?? "";
  if (!parent) {
    ctx.log.debug("UpdatePodSandboxResources: the pod has no cgroup parent", { id: sb.id });
    return {};
  }
  const dir = cgroupParentDir(ctx.cgroupDriver, parent);
  const mode = cgroupMode(CGROUP_ROOT) === "v2" ? "v2" : "v1";
  await applyCgroupWrites(podCgroupWrites(mode, dir, limits));
  ctx.log.info("pod resources updated", { id: sb.id, cgroup: dir, ...limits });
  return {};
}
