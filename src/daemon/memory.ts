/**
 * Hands memory the daemon no longer uses back to the kernel. Two kinds:
 *
 * Freed heap memory. Starting a pod allocates and drops
 * buffers in native code (process pipes, file reads, V8 array buffers); glibc keeps freed pages
 * of its heaps resident, so without this the daemon's resident memory only ever grows with the
 * busiest moment. malloc_trim(3) every few seconds (on a worker thread) returns them: measured
 * with 50 pods, 10–20 MiB of the daemon's PSS.
 *
 * File pages only start-up used. Start-up leaves some 35 MiB of the Deno binary resident (V8's
 * and Deno's snapshots, the module loader), which serving never reads again: once, shortly after
 * the daemon serves, they are paged out (ffi/file_pages.ts). Measured here, a fresh daemon's PSS
 * 71 -> 47 MiB, and ~54 MiB once calls have brought back the code they run.
 *
 * @example
 * ```ts
 * import { startMemoryTrimmer } from "./memory.ts";
 * const trimmer = startMemoryTrimmer({ intervalMs: 5_000 });
 * // … serve …
 * await trimmer.stop();
 * const pageOut = schedulePageOut({ delayMs: 5_000 });
 * pageOut.cancel();
 * ```
 */
import { mallocTrim } from "../../ffi/process.ts";
import { pageOutFileMappings } from "../../ffi/file_pages.ts";
import type { Logger } from "../log/logger.ts";

export interface MemoryTrimmer {
  /** Stops the timer and waits for a trim in progress. */
  stop(): Promise<void>;
}

export function startMemoryTrimmer(
  opts: { intervalMs?: number; log?: Logger; trim?: () => Promise<boolean> } = {},
): MemoryTrimmer {
  const trim = opts.trim ?? (() => mallocTrim());
  let running: Promise<void> | undefined;
  let failed = false;
  const timer = setInterval(() => {
    if (running) return;
    const t0 = performance.now();
    running = trim().then(
      (released) =>
        opts.log?.trace("malloc_trim", { released, ms: +(performance.now() - t0).toFixed(2) }),
      (e) => {
        // Never fatal (no libc with malloc_trim, say): say so once and stop trying.
        if (!failed) opts.log?.warn("returning freed memory to the kernel failed", { err: e });
        failed = true;
        clearInterval(timer);
      },
    ).finally(() => (running = undefined));
  }, opts.intervalMs ?? 5_000);
  Deno.unrefTimer(timer);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/** How long after the daemon serves its start-up pages are paged out. */
export const PAGE_OUT_DELAY_MS = 5_000;

/**
 * Pages out, once and `delayMs` after it is called, the file pages that only this process maps
 * (see {@link pageOutFileMappings}). Never fatal: a kernel without MADV_PAGEOUT (before 5.4) is
 * logged as a warning.
 */
export function schedulePageOut(
  opts: {
    delayMs?: number;
    log?: Logger;
    pageOut?: () => { mappings: number; residentBytes: number };
  } = {},
): { cancel(): void } {
  const pageOut = opts.pageOut ?? pageOutFileMappings;
  const timer = setTimeout(() => {
    const t0 = performance.now();
    try {
      const { mappings, residentBytes } = pageOut();
      opts.log?.debug("paged out start-up file pages", {
        mappings,
        resident_mib: +(residentBytes / 1048576).toFixed(1),
        ms: +(performance.now() - t0).toFixed(2),
      });
    } catch (e) {
      opts.log?.warn("paging out start-up file pages failed", { err: e });
    }
  }, opts.delayMs ?? PAGE_OUT_DELAY_MS);
  Deno.unrefTimer(timer);
  return { cancel: () => clearTimeout(timer) };
}
