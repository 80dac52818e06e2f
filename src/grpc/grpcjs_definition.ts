/**
 * A method table (rpc_service.ts) as grpc-js takes it: grpc-js copies a serialized message with
 * Buffer methods, so its serializers must give Buffers; the tables give plain bytes (the native
 * server and client need nothing more), wrapped here without a copy.
 *
 * @example
 * ```ts
 * import { grpcJsDefinition } from "./grpcjs_definition.ts";
 * import { VersionService } from "./services.ts";
 * grpcJsDefinition(VersionService).version.requestSerialize({}); // a Buffer
 * ```
 */
import { Buffer } from "node:buffer";
import type * as grpc from "@grpc/grpc-js";
import type { RpcMethod } from "./rpc_service.ts";

// A Buffer over the encoder's bytes, not a copy.
const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The grpc-js `ServiceDefinition` of a method table. */
export function grpcJsDefinition(table: object): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [key, m] of Object.entries(table as Record<string, RpcMethod<unknown, unknown>>)) {
    out[key] = {
      ...m,
      requestSerialize: (v: unknown) => asBuffer(m.requestSerialize(v)),
      responseSerialize: (v: unknown) => asBuffer(m.responseSerialize(v)),
      requestDeserialize: (b: Buffer) => m.requestDeserialize(b),
      responseDeserialize: (b: Buffer) => m.responseDeserialize(b),
    };
  }
  return out;
}
