/**
 * A container's cgroup statistics read straight from its cgroup files, in the shape of runc's
 * `events --stats` (libcontainer's `types.Stats`), for cgroup v1 and v2.
 *
 * Why not ask the OCI runtime: `runc events --stats` costs a process per container per sample
 * (the kubelet samples every container every few seconds), and crun 1.8 has no `events
 * --stats` at all, so a crun container had no CPU or memory figures. The files are what runc
 * reads itself; the mapping follows runc 1.1 (v2's cpu.stat microseconds become nanoseconds,
 * v2's swap is reported as memory+swap as v1's memsw is, io.stat becomes blkio entries).
 *
 * The container's cgroup is the one its init process is in (`/proc/<pid>/cgroup`, read from
 * the host's cgroup namespace). The parsers take file text, so tests feed them fixture trees.
 *
 * @example
 * ```ts
 * import { cgroupStatsOfPid } from "./cgroup_stats.ts";
 * const s = await cgroupStatsOfPid(1234);
 * console.log(s.memory?.usage?.usage, s.cpu?.usage?.total);
 * ```
 */
import { FailedPreconditionError } from "../errdefs/errors.ts";

/** Where the cgroup hierarchies are mounted (a test points it at a fixture tree). */
export const CGROUP_FS = "/sys/fs/cgroup";

/** runc's cgroup v2 "max" (no limit): the largest uint64. */
const MAX_U64 = 18446744073709551615;

/** One memory counter, as runc reports it. */
export interface CgroupMemoryEntry {
  usage?: number;
  limit?: number;
  max?: number;
  failcnt?: number;
}

/** One block-I/O counter: device, operation ("Read", "Write") and value. */
export interface CgroupBlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** The statistics read, named as in runc's JSON. */
export interface CgroupStats {
  cpu?: {
    usage?: { total?: number; kernel?: number; user?: number };
    throttling?: { periods?: number; throttledPeriods?: number; throttledTime?: number };
  };
  memory?: {
    cache?: number;
    usage?: CgroupMemoryEntry;
    swap?: CgroupMemoryEntry;
    kernel?: CgroupMemoryEntry;
    raw?: Record<string, number>;
  };
  pids?: { current?: number; limit?: number };
  blkio?: {
    ioServiceBytesRecursive?: CgroupBlkioEntry[];
    ioServicedRecursive?: CgroupBlkioEntry[];
  };
}

/** `key value` lines (memory.stat, cpu.stat, cpuacct.stat) → numbers. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** A single-value file: a number, "max" (no limit) as the largest uint64, else undefined. */
export function parseSingle(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (t === undefined || t === "") return undefined;
  if (t === "max") return MAX_U64;
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

/** v2 io.stat (`MAJ:MIN rbytes=… wbytes=… rios=… wios=…`) → runc's blkio entries. */
export function parseIoStat(text: string): NonNullable<CgroupStats["blkio"]> {
  const bytes: CgroupBlkioEntry[] = [], ios: CgroupBlkioEntry[] = [];
  for (const line of text.split("\n")) {
    const [dev, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? "");
    if (!m) continue;
    const major = Number(m[1]), minor = Number(m[2]);
    const kv = Object.fromEntries(fields.map((f) => f.split("=")).filter((p) => p.length === 2));
    const add = (to: CgroupBlkioEntry[], op: string, v: string | undefined) => {
      if (v !== undefined && /^\d+$/.test(v)) to.push({ major, minor, op, value: Number(v) });
    };
    add(bytes, "Read", kv.rbytes);
    add(bytes, "Write", kv.wbytes);
    add(ios, "Read", kv.rios);
    add(ios, "Write", kv.wios);
  }
  return { ioServiceBytesRecursive: bytes, ioServicedRecursive: ios };
}

/** v1 blkio (`MAJ:MIN Op value` lines and a `Total` line) → runc's blkio entries. */
export function parseBlkioV1(text: string): CgroupBlkioEntry[] {
  const out: CgroupBlkioEntry[] = [];
  for (const line of text.split("\n")) {
    const [dev, op, v] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? "");
    if (!m || !op || !/^\d+$/.test(v ?? "")) continue;
    out.push({ major: Number(m[1]), minor: Number(m[2]), op, value: Number(v) });
  }
  return out;
}

/** A file's text, or undefined when it (or the cgroup) does not exist. */
async function read(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/** Statistics of one cgroup v2 directory. */
export async function readV2Stats(dir: string): Promise<CgroupStats> {
  const names = [
    "cpu.stat",
    "memory.current",
    "memory.max",
    "memory.peak",
    "memory.stat",
    "memory.swap.current",
    "memory.swap.max",
    "pids.current",
    "pids.max",
    "io.stat",
  ] as const;
  const t = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, await read(`${dir}/${n}`)] as const)),
  ) as Record<(typeof names)[number], string | undefined>;
  if (t["cpu.stat"] === undefined && t["memory.current"] === undefined) {
    throw new FailedPreconditionError(`cgroup ${dir} is gone (the container is not running)`);
  }
  const out: CgroupStats = {};
  if (t["cpu.stat"] !== undefined) {
    const c = parseFlatKeyed(t["cpu.stat"]);
    const ns = (k: string) => (c[k] === undefined ? undefined : c[k] * 1000);
    out.cpu = {
      usage: { total: ns("usage_usec"), user: ns("user_usec"), kernel: ns("system_usec") },
      throttling: {
        periods: c.nr_periods,
        throttledPeriods: c.nr_throttled,
        throttledTime: ns("throttled_usec"),
      },
    };
  }
  if (t["memory.current"] !== undefined) {
    const raw = parseFlatKeyed(t["memory.stat"] ?? "");
    const usage: CgroupMemoryEntry = {
      usage: parseSingle(t["memory.current"]),
      limit: parseSingle(t["memory.max"]) ?? MAX_U64,
      max: parseSingle(t["memory.peak"]),
    };
    out.memory = { cache: raw.file, usage, raw };
    const swapUsage = parseSingle(t["memory.swap.current"]);
    if (swapUsage !== undefined) {
      // runc reports v2 swap as memory+swap, as v1's memsw counts it.
      const swapLimit = parseSingle(t["memory.swap.max"]) ?? MAX_U64;
      out.memory.swap = {
        usage: swapUsage + (usage.usage ?? 0),
        limit: swapLimit === MAX_U64 || usage.limit === MAX_U64
          ? MAX_U64
          : swapLimit + (usage.limit ?? 0),
      };
    }
  }
  const pidsCurrent = parseSingle(t["pids.current"]);
  if (pidsCurrent !== undefined) {
    const limit = parseSingle(t["pids.max"]);
    out.pids = { current: pidsCurrent, limit: limit === MAX_U64 ? 0 : limit };
  }
  if (t["io.stat"] !== undefined) out.blkio = parseIoStat(t["io.stat"]);
  return out;
}

/** Statistics of a cgroup v1 container given each controller's directory. */
export async function readV1Stats(dirs: Map<string, string>): Promise<CgroupStats> {
  const at = (controller: string, file: string) => {
    const d = dirs.get(controller);
    return d ? read(`${d}/${file}`) : Promise.resolve(undefined);
  };
  const [
    usage,
    acctStat,
    cpuStat,
    memUsage,
    memLimit,
    memMax,
    memFail,
    memStat,
    swUsage,
    swLimit,
    kmem,
    pidsCur,
    pidsMax,
    ioBytes,
    ioOps,
  ] = await Promise.all([
    at("cpuacct", "cpuacct.usage"),
    at("cpuacct", "cpuacct.stat"),
    at("cpu", "cpu.stat"),
    at("memory", "memory.usage_in_bytes"),
    at("memory", "memory.limit_in_bytes"),
    at("memory", "memory.max_usage_in_bytes"),
    at("memory", "memory.failcnt"),
    at("memory", "memory.stat"),
    at("memory", "memory.memsw.usage_in_bytes"),
    at("memory", "memory.memsw.limit_in_bytes"),
    at("memory", "memory.kmem.usage_in_bytes"),
    at("pids", "pids.current"),
    at("pids", "pids.max"),
    at("blkio", "blkio.throttle.io_service_bytes_recursive"),
    at("blkio", "blkio.throttle.io_serviced_recursive"),
  ]);
  if (usage === undefined && memUsage === undefined) {
    throw new FailedPreconditionError(
      `cgroup ${
        dirs.get("memory") ?? dirs.get("cpuacct") ?? "?"
      } is gone (the container is not running)`,
    );
  }
  const out: CgroupStats = {};
  // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
  const ticks = parseFlatKeyed(acctStat ?? "");
  const tickNs = (n: number | undefined) => (n === undefined ? undefined : n * 10_000_000);
  const thr = parseFlatKeyed(cpuStat ?? "");
  out.cpu = {
    usage: { total: parseSingle(usage), user: tickNs(ticks.user), kernel: tickNs(ticks.system) },
    throttling: {
      periods: thr.nr_periods,
      throttledPeriods: thr.nr_throttled,
      throttledTime: thr.throttled_time,
    },
  };
  if (memUsage !== undefined) {
    const raw = parseFlatKeyed(memStat ?? "");
    out.memory = {
      cache: raw.cache,
      usage: {
        usage: parseSingle(memUsage),
        limit: parseSingle(memLimit),
        max: parseSingle(memMax),
        failcnt: parseSingle(memFail),
      },
      raw,
    };
    if (swUsage !== undefined) {
      out.memory.swap = { usage: parseSingle(swUsage), limit: parseSingle(swLimit) };
    }
    if (kmem !== undefined) out.memory.kernel = { usage: parseSingle(kmem) };
  }
  const pc = parseSingle(pidsCur);
  if (pc !== undefined) {
    const limit = parseSingle(pidsMax);
    out.pids = { current: pc, limit: limit === MAX_U64 ? 0 : limit };
  }
  if (ioBytes !== undefined || ioOps !== undefined) {
    out.blkio = {
      ioServiceBytesRecursive: parseBlkioV1(ioBytes ?? ""),
      ioServicedRecursive: parseBlkioV1(ioOps ?? ""),
    };
  }
  return out;
}

/**
 * Where a process's cgroups are, from its `/proc/<pid>/cgroup` text: the v2 directory when the
 * host is unified (`0::/path` and no v1 line with controllers), else each v1 controller's.
 */
export function cgroupDirsOf(
  procCgroup: string,
  root = CGROUP_FS,
): { v2: string } | { v1: Map<string, string> } {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of procCgroup.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") {
      unified = m[3];
      continue;
    }
    for (const c of m[2].split(",")) {
      if (!c || c.startsWith("name=")) continue;
      // Debian links each co-mounted controller (cpu, cpuacct) to the joint mount.
      v1.set(c, `${root}/${c}${m[3] === "/" ? "" : m[3]}`);
    }
  }
  if (v1.size === 0 && unified !== undefined) {
    return { v2: `${root}${unified === "/" ? "" : unified}` };
  }
  return { v1 };
}

/**
 * The statistics of the cgroup process `pid` is in. FailedPrecondition when the process or its
 * cgroup is gone (the container is not running).
 */
export async function cgroupStatsOfPid(pid: number, root = CGROUP_FS): Promise<CgroupStats> {
  const text = await read(`/proc/${pid}/cgroup`);
  if (!pid || text === undefined) {
    throw new FailedPreconditionError(`process ${pid} is gone (the container is not running)`);
  }
  const dirs = cgroupDirsOf(text, root);
  return "v2" in dirs ? await readV2Stats(dirs.v2) : await readV1Stats(dirs.v1);
}
