/**
 * CPU time for the fuzz tests' "decoding is bounded" checks: a runaway parse burns CPU, while a
 * busy or emulated machine only stretches wall time (a parallel CI run under qemu-user once
 * descheduled a decode past a wall-time bound). The JS thread's own CPU time: the process's
 * (`process.cpuUsage()`, every thread) once charged a 1 ms decode with 17 s under qemu-user,
 * the other test files of `deno test --parallel` and V8's helper threads running meanwhile.
 */
import { threadCpuMs } from "../../ffi/process.ts";
import { isEmulated } from "./bdd.ts";

/** The bound for one fuzzed decode: wide under qemu-user, which is 10–50× slower and compiles
 * each new code path on first use. */
export const FUZZ_SLOW_MS = isEmulated ? 10_000 : 200;

/** The calling (JS) thread's CPU time so far (user + system), in milliseconds. */
export function cpuMs(): number {
  return threadCpuMs();
}
