/**
 * Whether a signal sent to a container's init now would be dropped. A process that is the init
 * of its own PID namespace gets, from outside it, only the signals it has a handler for
 * (SIGKILL and SIGSTOP aside): the kernel discards the rest, with no error to the sender. So a
 * stop signal sent between the init's exec and its sigaction — a StopContainer right after
 * StartContainer — is lost, and the stop waits out its whole grace period.
 *
 * @example
 * ```ts
 * import { signalDroppedByInit } from "./signal_disposition.ts";
 * if (signalDroppedByInit(pid, 15)) console.log("SIGTERM would be lost: no handler yet");
 * ```
 *
 * @module
 */

/**
 * True when `pid` is the init of its PID namespace (its innermost pid is 1) and has no handler
 * for `signal` (bit signal-1 of SigCgt in /proc/<pid>/status); false otherwise, also when the
 * process is gone.
 */
export function signalDroppedByInit(pid: number, signal: number): boolean {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`); // procfs: no I/O to wait for
  } catch {
    return false;
  }
  const nspid = /^NSpid:\s*(.+)$/m.exec(status)?.[1].trim().split(/\s+/);
  if (!nspid || nspid[nspid.length - 1] !== "1") return false;
  const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (caught === undefined) return false;
  return (BigInt(`0x${caught}`) & (1n << BigInt(signal - 1))) === 0n;
}
