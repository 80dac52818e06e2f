/**
 * The cgroup and procfs files the CRI reads and writes itself, beside what runc reports: PSI
 * (`cpu.pressure`, `memory.pressure`, `io.pressure` of a cgroup v2 directory — also present in
 * the unified hierarchy of a hybrid v1 host), a pod's network counters (`/proc/<pid>/net/dev`
 * of its pause process, which reads the pod's netns without entering it), and where a pod's
 * cgroup parent lives on disk for each driver and cgroup mode.
 *
 * The parsers are pure and take the file's text, so they are tested with fixture text on hosts
 * whose kernel has no PSI.
 *
 * @example
 * ```ts
 * parsePsi("some avg10=0.50 avg60=0.10 avg300=0.00 total=1200\n");
 * // { Some: { Total: 1200000n, Avg10: 0.5, Avg60: 0.1, Avg300: 0 }, Full: undefined }
 * ```
 */
import type { PsiData, PsiStats } from "../gen/runtime/v1/api.ts";
import { cgroupMode } from "../../ffi/fs.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";

/** The cgroup filesystem root (a test points it at a fixture directory). */
export const CGROUP_ROOT = "/sys/fs/cgroup";

/**
 * Parses a PSI file (`some …` and `full …` lines); `total` is in microseconds in the file and
 * in nanoseconds in the CRI. Undefined when the text has neither line.
 */
export function parsePsi(text: string): PsiStats | undefined {
  const out: PsiStats = { Full: undefined, Some: undefined };
  for (const line of text.split("\n")) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== "some" && kind !== "full") continue;
    const v: Record<string, string> = {};
    for (const f of fields) {
      const i = f.indexOf("=");
      if (i > 0) v[f.slice(0, i)] = f.slice(i + 1);
    }
    const d: PsiData = {
      Total: /^\d+$/.test(v.total ?? "") ? BigInt(v.total) * 1000n : 0n,
      Avg10: Number(v.avg10) || 0,
      Avg60: Number(v.avg60) || 0,
      Avg300: Number(v.avg300) || 0,
    };
    if (kind === "some") out.Some = d;
    else out.Full = d;
  }
  return out.Some || out.Full ? out : undefined;
}

/** The v2 directory of the cgroup a `/proc/<pid>/cgroup` text puts the process in ("0::/path"). */
export function unifiedPathOf(procCgroup: string): string | undefined {
  for (const line of procCgroup.split("\n")) {
    if (line.startsWith("0::")) return line.slice(3).trim() || undefined;
  }
  return undefined;
}

/** Where the unified (v2) hierarchy is mounted on this host, if anywhere. */
export function unifiedRoot(root = CGROUP_ROOT): string | undefined {
  const mode = cgroupMode(root);
  return mode === "v2" ? root : mode === "hybrid" ? `${root}/unified` : undefined;
}

/** PSI of the cgroup process `pid` is in, for one resource; undefined without PSI files. */
export async function readPsiOfPid(
  pid: number,
  resource: "cpu" | "memory" | "io",
): Promise<PsiStats | undefined> {
  if (!pid) return undefined;
  const base = unifiedRoot();
  if (!base) return undefined;
  try {
    const rel = unifiedPathOf(await Deno.readTextFile(`/proc/${pid}/cgroup`));
    if (!rel) return undefined;
    return parsePsi(await Deno.readTextFile(`${base}${rel}/${resource}.pressure`));
  } catch {
    return undefined; // gone, or a kernel without PSI
  }
}

/** One interface's counters from /proc/net/dev. */
export interface LinkStats {
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

/** Parses /proc/net/dev: interface name → counters (two header lines, then one per link). */
export function parseNetDev(text: string): Map<string, LinkStats> {
  const out = new Map<string, LinkStats>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0 || line.includes("|")) continue;
    const name = line.slice(0, i).trim();
    const n = line.slice(i + 1).trim().split(/\s+/).map(Number);
    if (n.length < 16 || n.some((x) => !Number.isFinite(x))) continue;
    out.set(name, {
      rxBytes: n[0],
      rxPackets: n[1],
      rxErrors: n[2],
      rxDropped: n[3],
      txBytes: n[8],
      txPackets: n[9],
      txErrors: n[10],
      txDropped: n[11],
    });
  }
  return out;
}

/**
 * The directory, relative to a hierarchy's root, of a pod's cgroup parent: the path itself for
 * cgroupfs (`/kubepods/burstable/pod<uid>`), and for systemd the nesting systemd makes of a
 * slice name (`kubepods-burstable-pod<uid>.slice` →
 * `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`).
 */
export function cgroupParentDir(driver: string, parent: string): string {
  if (driver !== "systemd") {
    if (!parent.startsWith("/") || parent.split("/").includes("..")) {
      throw new InvalidArgumentError(
        `cgroup parent ${JSON.stringify(parent)} is not a cgroupfs path (/a/b)`,
      );
    }
    return parent.replace(/\/+$/, "");
  }
  const slice = parent.replace(/\/+$/, "").split("/").pop() ?? "";
  if (!slice.endsWith(".slice") || slice.includes("..")) {
    throw new InvalidArgumentError(
      `cgroup parent ${JSON.stringify(parent)} is not a systemd slice (name.slice)`,
    );
  }
  const parts = slice.slice(0, -".slice".length).split("-");
  if (parts.length === 1 && parts[0] === "") return "";
  let dir = "", prefix = "";
  for (const p of parts) {
    prefix = prefix ? `${prefix}-${p}` : p;
    dir += `/${prefix}.slice`;
  }
  return dir;
}
