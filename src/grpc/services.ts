/**
 * The management gRPC services (the CLI's; the CRI's are in cri_services.ts), as method tables: path, streaming shape and the
 * protobuf (de)serializers of each method, keyed by the camelCase method name — the shape
 * grpc-js calls a `ServiceDefinition`, built here from the plain descriptions ts-proto generates
 * (`outputServices=generic-definitions`), so that nothing that only needs the tables (the
 * daemon's edge, the CRI registration) loads @grpc/grpc-js. Clients for tests, benches and the
 * CLI are in clients.ts.
 *
 * @example
 * ```ts
 * import { VersionService } from "./services.ts";
 * VersionService.version.path; // "/k8scontainerd.services.version.v1.Version/Version"
 * ```
 */
import { Buffer } from "node:buffer";
import { VersionDefinition } from "../gen/k8scontainerd/services/version/v1/version.ts";
import { NamespacesDefinition } from "../gen/k8scontainerd/services/namespaces/v1/namespace.ts";
import { ImagesDefinition } from "../gen/k8scontainerd/services/images/v1/images.ts";
import { ContentDefinition } from "../gen/k8scontainerd/services/content/v1/content.ts";
import { SnapshotsDefinition } from "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts";
import { LeasesDefinition } from "../gen/k8scontainerd/services/leases/v1/leases.ts";
import { ContainersDefinition } from "../gen/k8scontainerd/services/containers/v1/containers.ts";
import { TasksDefinition } from "../gen/k8scontainerd/services/tasks/v1/tasks.ts";
import { EventsDefinition } from "../gen/k8scontainerd/services/events/v1/events.ts";

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
  requestSerialize: (value: Req) => Buffer;
  requestDeserialize: (bytes: Buffer) => Req;
  responseSerialize: (value: Res) => Buffer;
  responseDeserialize: (bytes: Buffer) => Res;
  originalName: string;
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

// A Buffer over the encoder's bytes, not a copy.
const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The method table of a generated service description. */
export function rpcService<D extends GenericService>(def: D): RpcService<D> {
  const out: Record<string, RpcMethod<unknown, unknown>> = {};
  for (const [key, m] of Object.entries(def.methods)) {
    out[key] = {
      path: `/${def.fullName}/${m.name}`,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (v) => asBuffer(m.requestType.encode(v).finish()),
      requestDeserialize: (b) => m.requestType.decode(b),
      responseSerialize: (v) => asBuffer(m.responseType.encode(v).finish()),
      responseDeserialize: (b) => m.responseType.decode(b),
      originalName: key,
    };
  }
  return out as RpcService<D>;
}

export const VersionService = rpcService(VersionDefinition);
export const NamespacesService = rpcService(NamespacesDefinition);
export const ImagesService = rpcService(ImagesDefinition);
export const ContentService = rpcService(ContentDefinition);
export const SnapshotsService = rpcService(SnapshotsDefinition);
export const LeasesService = rpcService(LeasesDefinition);
export const ContainersService = rpcService(ContainersDefinition);
export const TasksService = rpcService(TasksDefinition);
export const EventsService = rpcService(EventsDefinition);
