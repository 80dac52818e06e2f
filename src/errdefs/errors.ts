/**
 * Typed errors shared by every layer, after containerd's errdefs: services and stores throw
 * these; only the gRPC edge (src/grpc/status.ts) turns them into gRPC status codes.
 *
 * @example
 * ```ts
 * import { NotFoundError } from "./errors.ts";
 * throw new NotFoundError(`image "docker.io/library/busybox:latest"`);
 * ```
 */

/** Base class: `kind` names the category so callers can branch without instanceof chains. */
export class RuntimeError extends Error {
  constructor(readonly kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export type ErrorKind =
  | "not-found"
  | "already-exists"
  | "invalid-argument"
  | "failed-precondition"
  | "unavailable"
  | "unimplemented"
  | "deadline-exceeded"
  | "canceled"
  | "resource-exhausted"
  | "internal";

/** The named object does not exist. Message: `<what>: not found`. */
export class NotFoundError extends RuntimeError {
  constructor(what: string, options?: ErrorOptions) {
    super("not-found", `${what}: not found`, options);
  }
}

/** An object with that name or id exists already. */
export class AlreadyExistsError extends RuntimeError {
  constructor(what: string, options?: ErrorOptions) {
    super("already-exists", `${what}: already exists`, options);
  }
}

/** The request itself is wrong; the message names the field and why. */
export class InvalidArgumentError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super("invalid-argument", message, options);
  }
}

/** The request is well formed but the system is not in a state that allows it. */
export class FailedPreconditionError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super("failed-precondition", message, options);
  }
}

/** A dependency (registry, runc, the daemon itself) cannot be reached right now. */
export class UnavailableError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super("unavailable", message, options);
  }
}

/** The operation is not supported by this runtime (same places where containerd says so). */
export class UnimplementedError extends RuntimeError {
  constructor(message: string, options?: ErrorOptions) {
    super("unimplemented", message, options);
  }
}

/** Returns the error's kind, "internal" for anything untyped. */
export function errorKind(e: unknown): ErrorKind {
  return e instanceof RuntimeError ? e.kind : "internal";
}

/** True when `e` is a typed error of that kind. */
export function isKind(e: unknown, kind: ErrorKind): boolean {
  return errorKind(e) === kind;
}
