/**
 * The one place typed errors become gRPC statuses (containerd's errdefs → grpc mapping).
 * Untyped errors are INTERNAL; their message is kept because operators debug from it.
 *
 * @example
 * ```ts
 * import { toServiceError } from "./status.ts";
 * import { NotFoundError } from "../errdefs/errors.ts";
 * toServiceError(new NotFoundError("pod p1")).code; // Status.NOT_FOUND (5)
 * ```
 */
import { type ErrorKind, errorKind } from "../errdefs/errors.ts";

/** gRPC status codes (the wire values), named as grpc-js and grpc-go name them. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Status).map(([k, v]) => [v, k]),
);

/** A status to send: code and message (grpc-js's ServiceError has the same fields). */
export interface StatusError extends Error {
  code: number;
  details: string;
}

const CODES: Record<ErrorKind, number> = {
  "not-found": Status.NOT_FOUND,
  "already-exists": Status.ALREADY_EXISTS,
  "invalid-argument": Status.INVALID_ARGUMENT,
  "failed-precondition": Status.FAILED_PRECONDITION,
  "unavailable": Status.UNAVAILABLE,
  "unimplemented": Status.UNIMPLEMENTED,
  "deadline-exceeded": Status.DEADLINE_EXCEEDED,
  "canceled": Status.CANCELLED,
  "resource-exhausted": Status.RESOURCE_EXHAUSTED,
  "internal": Status.INTERNAL,
};

/** Maps any thrown value to the status the servers send. */
export function toServiceError(e: unknown): StatusError {
  const message = e instanceof Error ? e.message : String(e);
  const err = new Error(message) as StatusError;
  err.code = CODES[errorKind(e)];
  err.details = message;
  return err;
}

/** The status name for logs and metrics labels, e.g. "NOT_FOUND". */
export function statusName(code: number): string {
  return NAMES[code] ?? String(code);
}
