/**
 * Per-call bookkeeping both gRPC servers share: every call is counted and timed for
 * /v1/metrics, logged at debug (INTERNAL and UNKNOWN failures at error), and its error mapped
 * to a status by status.ts.
 *
 * @example
 * ```ts
 * import { CallRecorder } from "./call_recorder.ts";
 * const rec = new CallRecorder(log, metrics);
 * const end = rec.begin("/runtime.v1.RuntimeService/Version");
 * const err = end(null); // null: OK was recorded
 * ```
 */
import type { Logger } from "../log/logger.ts";
import type { MetricsRegistry } from "../metrics/registry.ts";
import { type StatusError, statusName, toServiceError } from "./status.ts";

/** gRPC status codes the servers use by number (the wire values). */
export const CODE = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** Counts, times and logs calls. */
export class CallRecorder {
  readonly #log: Logger;
  readonly #requests;
  readonly #latency;

  constructor(log: Logger, metrics: MetricsRegistry) {
    this.#log = log;
    this.#requests = metrics.counter(
      "k8scontainerd_grpc_requests_total",
      "gRPC requests handled, by full method name and status code.",
      ["method", "code"],
    );
    this.#latency = metrics.histogram(
      "k8scontainerd_grpc_request_duration_seconds",
      "gRPC request handling time, by full method name.",
      ["method"],
    );
  }

  /**
   * Starts the clock for one call; the returned function records its outcome (null for OK)
   * and gives back the status error to send.
   */
  begin(path: string): (e: unknown) => StatusError | null {
    const start = performance.now();
    return (e) => {
      const err = e === null ? null : toServiceError(e);
      const code = err ? err.code : CODE.OK;
      const seconds = (performance.now() - start) / 1000;
      this.#requests.inc({ method: path, code: statusName(code) });
      this.#latency.observe({ method: path }, seconds);
      if (err && (code === CODE.INTERNAL || code === CODE.UNKNOWN)) {
        this.#log.error("request failed", { method: path, err: e });
      } else if (this.#log.enabled("debug")) {
        this.#log.debug("request", {
          method: path,
          code: statusName(code),
          ms: seconds * 1000,
          ...(err ? { error: err.details } : {}),
        });
      }
      return err;
    };
  }
}
