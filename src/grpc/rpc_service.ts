/**
 * A gRPC service as a method table: path, streaming shape and the protobuf (de)serializers of
 * each method, keyed by the camelCase method name — the shape grpc-js calls a
 * `ServiceDefinition`, built from the plain descriptions ts-proto generates
 * (`outputServices=generic-definitions`). Serializers give plain bytes: the native server and
 * client send them as they are; grpc-js wants Buffers, which grpcjs_definition.ts wraps, so that
 * nothing here loads node:buffer (~8 ms of a CLI call's start-up).
 *
 * @example
 * ```ts
 * import { rpcService } from "./rpc_service.ts";
 * import { VersionDefinition } from "../gen/k8scontainerd/services/version/v1/version.ts";
 * const t = rpcService(VersionDefinition);
 * t.version.path; // "/k8scontainerd.services.version.v1.Version/Version"
 * ```
 */
/** A message type's codec, as ts-proto generates it. */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/** One method of a generated service description. */
export interface GenericMethod {
  name: string;
  // deno-lint-ignore no-explicit-any
  requestType: MessageCodec<any>;
  requestStream: boolean;
  // deno-lint-ignore no-explicit-any
  responseType: MessageCodec<any>;
  responseStream: boolean;
}

/** A generated service description, such as `VersionDefinition` or `RuntimeServiceDefinition`. */
export interface GenericService {
  name: string;
  fullName: string;
  methods: Record<string, GenericMethod>;
}

type CodecOf<C> = C extends MessageCodec<infer T> ? T : never;

/** One method's table entry (grpc-js's `MethodDefinition`). */
export interface RpcMethod<Req, Res> {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (value: Req) => Uint8Array;
  requestDeserialize: (bytes: Uint8Array) => Req;
  responseSerialize: (value: Res) => Uint8Array;
  responseDeserialize: (bytes: Uint8Array) => Res;
  originalName?: string;
}

/** A service's method table, keyed as the description's methods are. */
export type RpcService<D extends GenericService> = {
  [K in keyof D["methods"]]:
    & RpcMethod<
      CodecOf<D["methods"][K]["requestType"]>,
      CodecOf<D["methods"][K]["responseType"]>
    >
    // the descriptions are `as const`: which methods stream is known to the type checker
    & {
      requestStream: D["methods"][K]["requestStream"];
      responseStream: D["methods"][K]["responseStream"];
    };
};

/** The method table of a generated service description. */
export function rpcService<D extends GenericService>(def: D): RpcService<D> {
  const out: Record<string, RpcMethod<unknown, unknown>> = {};
  for (const [key, m] of Object.entries(def.methods)) {
    out[key] = {
      path: `/${def.fullName}/${m.name}`,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (v) => m.requestType.encode(v).finish(),
      requestDeserialize: (b) => m.requestType.decode(b),
      responseSerialize: (v) => m.responseType.encode(v).finish(),
      responseDeserialize: (b) => m.responseType.decode(b),
      originalName: key,
    };
  }
  return out as RpcService<D>;
}

/** Any service's method table, as servers take it. */
// deno-lint-ignore no-explicit-any
export type MethodTable = Record<string, RpcMethod<any, any>>;
