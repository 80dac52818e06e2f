/**
 * Which process a pid is now: its start time, read from /proc, tells it from a later process
 * given the same pid, and a zombie (exited, not yet reaped) counts as gone.
 *
 * @example
 * ```ts
 * import { processStart } from "./process_start.ts";
 * processStart(Deno.pid); // "123456" (clock ticks after boot)
 * ```
 *
 * @module
 */

/**
 * The start time of a live, non-zombie process (field 22 of /proc/<pid>/stat, clock ticks after
 * boot), which tells it from a later process given the same pid; undefined when there is none.
 */
export function processStart(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`); // procfs: no I/O to wait for
    // Fields from the state letter (field 3) on follow the parenthesised command name, which
    // may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 20);
    return fields[0] === "Z" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}
