/**
 * The one place typed errors become gRPC statuses (containerd's errdefs → grpc mapping).
 * Untyped errors are INTERNAL; their message is kept because operators debug from it.
 *
 * @example
 * ```ts
 * import { toServiceError } from "./status.ts";
 * import { NotFoundError } from "../errdefs/errors.ts";
 * toServiceError(new NotFoundError("pod p1")).code; // status.NOT_FOUND
 * ```
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type ErrorKind, errorKind } from "../errdefs/errors.ts";

const CODES: Record<ErrorKind, status> = {
  "not-found": status.NOT_FOUND,
  "already-exists": status.ALREADY_EXISTS,
  "invalid-argument": status.INVALID_ARGUMENT,
  "failed-precondition": status.FAILED_PRECONDITION,
  "unavailable": status.UNAVAILABLE,
  "unimplemented": status.UNIMPLEMENTED,
  "deadline-exceeded": status.DEADLINE_EXCEEDED,
  "canceled": status.CANCELLED,
  "resource-exhausted": status.RESOURCE_EXHAUSTED,
  "internal": status.INTERNAL,
};

/** Maps any thrown value to the ServiceError grpc-js sends. */
export function toServiceError(e: unknown): ServiceError {
  const message = e instanceof Error ? e.message : String(e);
  const err = new Error(message) as ServiceError;
  err.code = CODES[errorKind(e)];
  err.details = message;
  err.metadata = new Metadata();
  return err;
}

/** The status name for logs and metrics labels, e.g. "NOT_FOUND". */
export function statusName(code: status): string {
  return status[code] ?? String(code);
}
