/**
 * CRI `Signal` (ContainerConfig.stop_signal, ContainerStatus.stop_signal) ↔ signal names. The
 * enum's names are the signal names but for the real-time ones (SIGRTMINPLUS3 is SIGRTMIN+3).
 *
 * @example
 * ```ts
 * import { criSignalName } from "./stop_signal.ts";
 * import { Signal } from "../gen/runtime/v1/api.ts";
 * criSignalName(Signal.SIGUSR1); // "SIGUSR1"
 * criSignalName(Signal.RUNTIME_DEFAULT); // undefined: the image's or SIGTERM
 * ```
 */
import { Signal } from "../gen/runtime/v1/api.ts";

/** The name runc takes for a CRI signal; undefined for RUNTIME_DEFAULT or unknown values. */
export function criSignalName(s: Signal | undefined): string | undefined {
  if (!s) return undefined;
  const name = Signal[s];
  if (name === undefined || name === "UNRECOGNIZED") return undefined;
  return name.replace(/^SIGRTMINPLUS(\d+)$/, "SIGRTMIN+$1").replace(
    /^SIGRTMAXMINUS(\d+)$/,
    "SIGRTMAX-$1",
  );
}

/** The CRI enum value of a signal name ("SIGTERM", "TERM", "SIGRTMIN+3"); 0 when unknown. */
export function criSignal(name: string | undefined): Signal {
  if (!name) return Signal.RUNTIME_DEFAULT;
  const n = name.toUpperCase().replace(/^(?!SIG)/, "SIG").replace(
    /^SIGRTMIN\+(\d+)$/,
    "SIGRTMINPLUS$1",
  )
    .replace(/^SIGRTMAX-(\d+)$/, "SIGRTMAXMINUS$1");
  const v = (Signal as unknown as Record<string, number>)[n];
  return typeof v === "number" ? v : Signal.RUNTIME_DEFAULT;
}
