/**
 * Container exits as conmon records them: `exits/<id>` in the container's state directory holds
 * the exit status (128+N for signal N), written once, after conmon reaped the process; the
 * file's mtime is when. An exit never changes, so each is read once and kept.
 *
 * @example
 * ```ts
 * import { ExitCache } from "./exit_cache.ts";
 * const exits = new ExitCache();
 * const exit = exits.read("/run/k8scontainerd/runtime/default/c1", "c1");
 * if (exit) console.log(exit.code, exit.at);
 * ```
 *
 * @module
 */
import { containerFiles } from "./conmon.ts";

/** A recorded exit: the status and when conmon wrote it. */
export interface RecordedExit {
  code: number;
  at: Date;
}

/**
 * Exits by container directory. Lifecycle: an entry appears the first time its exit file is
 * read whole; {@link forget} drops it when the container is deleted (an id may be reused).
 */
export class ExitCache {
  #exits = new Map<string, RecordedExit>();

  /** Reads conmon's exit file: the exit code and when it was written; undefined before that. */
  read(dir: string, id: string): RecordedExit | undefined {
    const cached = this.#exits.get(dir);
    if (cached) return cached;
    const path = `${containerFiles(dir).exitDir}/${id}`;
    try {
      // Synchronous on purpose: a tiny file on the state tmpfs, read on the kubelet's hot path,
      // where scheduling async ops costs far more than the read.
      const text = Deno.readTextFileSync(path);
      const st = Deno.statSync(path);
      const code = parseInt(text.trim(), 10);
      if (!Number.isFinite(code)) return undefined; // being written
      const exit = { code, at: st.mtime ?? new Date() };
      this.#exits.set(dir, exit); // an exit never changes
      return exit;
    } catch {
      return undefined;
    }
  }

  /** Drops the directory's exit (its container was deleted). */
  forget(dir: string): void {
    this.#exits.delete(dir);
  }
}
