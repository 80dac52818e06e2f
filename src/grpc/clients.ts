/**
 * Typed @grpc/grpc-js clients for every service in services.ts (the CLI, the tests and the
 * benches dial the daemon with these; crictl and the kubelet are grpc-go). A client's methods
 * are the service's, camelCase, with grpc-js's call signatures.
 *
 * @example
 * ```ts
 * import * as grpc from "@grpc/grpc-js";
 * import { VersionClient } from "./clients.ts";
 * const c = new VersionClient("unix:///run/k8scontainerd/k8scontainerd.sock", grpc.credentials.createInsecure());
 * c.version({}, (err, res) => console.log(err ?? res.version));
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import { NAMESPACE_HEADER } from "./call_metadata.ts";
import {
  ContainersService,
  ContentService,
  EventsService,
  ImagesService,
  LeasesService,
  NamespacesService,
  SnapshotsService,
  TasksService,
  VersionService,
} from "./services.ts";
import { ImageServiceService, RuntimeServiceService } from "./cri_services.ts";
import { grpcJsDefinition } from "./grpcjs_definition.ts";
import type { RpcMethod } from "./rpc_service.ts";

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

interface UnaryCall<Req, Res> {
  (req: Req, cb: Callback<Res>): grpc.ClientUnaryCall;
  (req: Req, md: grpc.Metadata, cb: Callback<Res>): grpc.ClientUnaryCall;
  (
    req: Req,
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: Callback<Res>,
  ): grpc.ClientUnaryCall;
}

interface ServerStreamCall<Req, Res> {
  (req: Req, opts?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<Res>;
  (
    req: Req,
    md?: grpc.Metadata,
    opts?: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<Res>;
}

interface ClientStreamCall<Req, Res> {
  (cb: Callback<Res>): grpc.ClientWritableStream<Req>;
  (md: grpc.Metadata, cb: Callback<Res>): grpc.ClientWritableStream<Req>;
  (opts: Partial<grpc.CallOptions>, cb: Callback<Res>): grpc.ClientWritableStream<Req>;
  (
    md: grpc.Metadata,
    opts: Partial<grpc.CallOptions>,
    cb: Callback<Res>,
  ): grpc.ClientWritableStream<Req>;
}

/** A client's method for one table entry, by its streaming shape. */
type ClientMethod<M> = M extends RpcMethod<infer Req, infer Res>
  ? M["responseStream"] extends true ? ServerStreamCall<Req, Res>
  : M["requestStream"] extends true ? ClientStreamCall<Req, Res>
  : UnaryCall<Req, Res>
  : never;

/** A typed client of one service table. */
export type ClientOf<S> = grpc.Client & { [K in keyof S]: ClientMethod<S[K]> };

/** A typed client constructor of one service table. */
export type ClientConstructor<S> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: Partial<grpc.ClientOptions>,
) => ClientOf<S>;

/** The grpc-js client constructor of a service table. */
export function clientFor<S extends object>(
  service: S,
  name: string,
): ClientConstructor<S> {
  return grpc.makeGenericClientConstructor(
    grpcJsDefinition(service),
    name,
  ) as unknown as ClientConstructor<
    S
  >;
}

export const RuntimeServiceClient = clientFor(RuntimeServiceService, "RuntimeService");
export type RuntimeServiceClient = ClientOf<typeof RuntimeServiceService>;
export const ImageServiceClient = clientFor(ImageServiceService, "ImageService");
export type ImageServiceClient = ClientOf<typeof ImageServiceService>;
export const VersionClient = clientFor(VersionService, "Version");
export type VersionClient = ClientOf<typeof VersionService>;
export const NamespacesClient = clientFor(NamespacesService, "Namespaces");
export type NamespacesClient = ClientOf<typeof NamespacesService>;
export const ImagesClient = clientFor(ImagesService, "Images");
export type ImagesClient = ClientOf<typeof ImagesService>;
export const ContentClient = clientFor(ContentService, "Content");
export type ContentClient = ClientOf<typeof ContentService>;
export const SnapshotsClient = clientFor(SnapshotsService, "Snapshots");
export type SnapshotsClient = ClientOf<typeof SnapshotsService>;
export const LeasesClient = clientFor(LeasesService, "Leases");
export type LeasesClient = ClientOf<typeof LeasesService>;
export const ContainersClient = clientFor(ContainersService, "Containers");
export type ContainersClient = ClientOf<typeof ContainersService>;
export const TasksClient = clientFor(TasksService, "Tasks");
export type TasksClient = ClientOf<typeof TasksService>;
export const EventsClient = clientFor(EventsService, "Events");
export type EventsClient = ClientOf<typeof EventsService>;

/** A failed grpc-js call: its status code and message. */
export class CallError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

type UnaryMethod<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: (e: grpc.ServiceError | null, r: Res) => void,
) => unknown;

/**
 * Calls a bound grpc-js unary client method with a deadline and the containerd namespace
 * header, as a promise (tests and benches).
 *
 * @example
 * ```ts
 * const r = await call(socket, "k8s.io", rt.version.bind(rt), {});
 * ```
 */
export function call<Req, Res>(
  address: string,
  namespace: string,
  fn: UnaryMethod<Req, Res>,
  req: Req,
  timeoutMs = 30_000,
): Promise<Res> {
  const md = new grpc.Metadata();
  md.set(NAMESPACE_HEADER, namespace);
  return new Promise((resolve, reject) => {
    fn(req, md, { deadline: Date.now() + timeoutMs }, (e, r) => {
      if (!e) return resolve(r);
      const unreachable = e.code === grpc.status.UNAVAILABLE &&
        /connect|No connection established/.test(e.details ?? "");
      reject(
        new CallError(
          e.code,
          unreachable
            ? `cannot reach the daemon at ${address}: ${e.details}`
            : e.details || e.message,
        ),
      );
    });
  });
}
