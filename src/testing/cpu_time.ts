/**
 * CPU time for the fuzz tests' "decoding is bounded" checks: a runaway parse burns CPU, while a
 * busy or emulated machine only stretches wall time (a parallel CI run under qemu-user once
 * descheduled a decode past a wall-time bound).
 */
import process from "node:process";
import { isEmulated } from "./bdd.ts";

/** The bound for one fuzzed decode: wide under qemu-user, which is 10–50× slower and compiles
 * each new code path on first use. */
export const FUZZ_SLOW_MS = isEmulated ? 10_000 : 200;

/** The process's CPU time so far (user + system, every thread), in milliseconds. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
