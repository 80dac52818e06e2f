/**
 * Failpoints: named places in the daemon where a test can freeze it, to kill it (-9) at a
 * known point of an operation instead of racing it (containerd's tests use pkg/failpoint the
 * same way). `K8SCONTAINERD_FAILPOINTS` lists the names, comma-separated; at a listed point the
 * process sends itself SIGSTOP and stays stopped until killed (or sent SIGCONT). Unset — as it
 * always is outside tests — a failpoint is one Set lookup.
 *
 * @example
 * ```ts
 * import { failpoint } from "./failpoints.ts";
 * failpoint("container-create-mounted"); // K8SCONTAINERD_FAILPOINTS=container-create-mounted
 * ```
 *
 * @module
 */

/** The environment variable that enables failpoints. */
export const FAILPOINTS_ENV = "K8SCONTAINERD_FAILPOINTS";

function enabled(): Set<string> {
  try {
    return new Set(
      (Deno.env.get(FAILPOINTS_ENV) ?? "").split(",").map((s) => s.trim()).filter(Boolean),
    );
  } catch {
    return new Set(); // no env permission: no failpoints
  }
}

const ENABLED = enabled();

/**
 * Stops the whole process (SIGSTOP to itself) when `name` is enabled; otherwise does nothing.
 *
 * @example
 * ```ts
 * failpoint("container-create-mounted");
 * ```
 */
export function failpoint(name: string): void {
  if (ENABLED.has(name)) Deno.kill(Deno.pid, "SIGSTOP");
}
