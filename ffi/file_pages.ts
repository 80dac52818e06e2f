/**
 * Evicts the resident pages of this process's read-only file mappings that no other process
 * maps. For the daemon those are mostly its own executable: the start-up snapshots of V8 and
 * Deno in its read-only data, code only start-up runs (the module loader, the TypeScript
 * transpiler), and Deno's module caches (SQLite files mapped read-only). Start-up leaves some
 * 35 MiB of them resident that serving never touches again. `madvise(MADV_PAGEOUT)` (Linux
 * 5.4) reclaims them at once, which frees the memory and does not only hide it from the
 * process's count. The kernel itself skips pages that another process also maps (libc, or a CLI
 * run of the same binary). A page touched later is read back in.
 *
 * Writable mappings are never advised. Neither are read-only ones that hold private copies
 * (RELRO data, relocated and then made read-only), or locked, I/O or PFN mappings: evicting
 * those would lose what they hold, or the kernel refuses them.
 *
 * @example
 * ```ts
 * import { pageOutFileMappings } from "./file_pages.ts";
 * const { mappings, residentBytes } = pageOutFileMappings();
 * ```
 *
 * @module
 */

import { libc } from "./libc.ts";
import { lastError } from "./errno.ts";

/** madvise(2): reclaim the range's pages now (Linux >= 5.4). */
export const MADV_PAGEOUT = 21;

/** One mapping of /proc/self/smaps that may be paged out. */
export interface FileMapping {
  start: bigint;
  end: bigint;
  path: string;
  /** Resident bytes when the smaps text was read. */
  rss: number;
}

// VmFlags the kernel refuses MADV_PAGEOUT for, or that mean the mapping is not plain file pages:
// locked, PFN map, I/O, hugetlb, mixed map.
const REFUSED_FLAGS = new Set(["lo", "pf", "io", "ht", "mm"]);

/**
 * The mappings of an smaps text (`/proc/<pid>/smaps`) that {@link pageOutFileMappings} would
 * advise: file-backed (a path, not `[heap]`, not under /dev), not writable, no private
 * (anonymous) pages, some resident pages, no refused VmFlags.
 *
 * @example
 * ```ts
 * import { pageOutCandidates } from "./file_pages.ts";
 * pageOutCandidates(Deno.readTextFileSync("/proc/self/smaps")).length; // > 0
 * ```
 */
export function pageOutCandidates(smaps: string): FileMapping[] {
  const out: FileMapping[] = [];
  let cur: (FileMapping & { ok: boolean }) | undefined;
  const done = () => {
    if (cur?.ok && cur.rss > 0) {
      out.push({ start: cur.start, end: cur.end, path: cur.path, rss: cur.rss });
    }
  };
  for (const line of smaps.split("\n")) {
    // 7f1c…-7f1c… r-xp 00001000 fe:00 123 /usr/bin/x  (the path may hold spaces)
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+ *(.*)$/.exec(line);
    if (head) {
      done();
      const path = head[4];
      cur = {
        start: BigInt(`0x${head[1]}`),
        end: BigInt(`0x${head[2]}`),
        path,
        rss: 0,
        ok: path.startsWith("/") && !path.startsWith("/dev/") && !head[3].includes("w"),
      };
    } else if (cur?.ok) {
      const [key, value = ""] = line.split(":", 2);
      if (key === "Rss") cur.rss = parseInt(value) * 1024;
      else if (key === "Anonymous" && parseInt(value) !== 0) cur.ok = false;
      else if (key === "VmFlags" && value.trim().split(" ").some((f) => REFUSED_FLAGS.has(f))) {
        cur.ok = false;
      }
    }
  }
  done();
  return out;
}

/**
 * Advises every {@link pageOutCandidates} mapping of this process `MADV_PAGEOUT`. Returns how
 * many mappings were advised and how many bytes they had resident before. A mapping that went
 * away since smaps was read (ENOMEM) is skipped; any other failure (EINVAL before Linux 5.4)
 * throws, naming the mapping.
 *
 * @example
 * ```ts
 * import { pageOutFileMappings } from "./file_pages.ts";
 * pageOutFileMappings(); // { mappings: 9, residentBytes: 38_100_000 }
 * ```
 */
export function pageOutFileMappings(): { mappings: number; residentBytes: number } {
  let mappings = 0, residentBytes = 0;
  for (const m of pageOutCandidates(Deno.readTextFileSync("/proc/self/smaps"))) {
    if (libc().madvise(m.start, m.end - m.start, MADV_PAGEOUT) !== 0) {
      const e = lastError("madvise", m.path, "MADV_PAGEOUT");
      if (e.code === "ENOMEM") continue;
      throw e;
    }
    mappings++;
    residentBytes += m.rss;
  }
  return { mappings, residentBytes };
}
