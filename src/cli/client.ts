/**
 * The CLI's connection to the daemon: typed clients for the management API over the unix
 * socket, with errors that tell the operator what to check.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * const c = connect("/run/k8scontainerd/k8scontainerd.sock", "default");
 * console.log(await c.version());
 * c.close();
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import {
  VersionClient,
  type VersionResponse,
} from "../gen/k8scontainerd/services/version/v1/version.ts";

/** Header that carries the namespace on every management call, as containerd does. */
export { NAMESPACE_HEADER } from "../api/namespace.ts";
import { NAMESPACE_HEADER } from "../api/namespace.ts";

export interface DaemonClient {
  address: string;
  namespace: string;
  version(): Promise<VersionResponse>;
  close(): void;
}

/** A failed call, phrased for a terminal: it names the socket when the daemon is unreachable. */
export class CallError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

function describe(address: string, e: grpc.ServiceError): CallError {
  if (e.code === grpc.status.UNAVAILABLE) {
    return new CallError(
      e.code,
      `cannot reach the daemon at ${address}: ${
        e.details || e.message
      } (is 'k8scontainerd daemon' running? use --address to point elsewhere)`,
    );
  }
  return new CallError(e.code, e.details || e.message);
}

/** Calls a generated unary client method with a deadline and the namespace header. */
export function call<Req, Res>(
  address: string,
  namespace: string,
  fn: (
    req: Req,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => unknown,
  req: Req,
  timeoutMs = 10_000,
): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(NAMESPACE_HEADER, namespace);
  return new Promise((resolve, reject) => {
    fn(
      req,
      md,
      { deadline: Date.now() + timeoutMs },
      (e, r) => e ? reject(describe(address, e)) : resolve(r),
    );
  });
}

export function connect(address: string, namespace: string): DaemonClient {
  const target = `unix://${address}`;
  const creds = grpc.credentials.createInsecure();
  const version = new VersionClient(target, creds);
  return {
    address,
    namespace,
    version: () => call(address, namespace, version.version.bind(version), {}),
    close: () => version.close(),
  };
}
