/**
 * The CLI's connection to the daemon: typed clients for every management service over the
 * unix socket, the namespace header on every call, and errors that tell the operator what to
 * check.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * const c = connect("/run/k8scontainerd/k8scontainerd.sock", "default");
 * const { images } = await c.unary(c.images.list.bind(c.images), { filters: [] });
 * c.close();
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import { NAMESPACE_HEADER } from "../api/namespace.ts";
import {
  ContainersClient,
  ContentClient,
  EventsClient,
  ImagesClient,
  LeasesClient,
  NamespacesClient,
  SnapshotsClient,
  TasksClient,
  VersionClient,
} from "../grpc/clients.ts";

export { NAMESPACE_HEADER };

/** A failed call, phrased for a terminal: it names the socket when the daemon is unreachable. */
export class CallError extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

function explain(address: string, e: grpc.ServiceError): CallError {
  if (
    e.code === grpc.status.UNAVAILABLE && /connect|No connection established/.test(e.details ?? "")
  ) {
    return new CallError(
      e.code,
      `cannot reach the daemon at ${address}: ${
        e.details || e.message
      } (is 'k8scontainerd daemon' running? use --address to point elsewhere)`,
    );
  }
  return new CallError(e.code, e.details || e.message);
}

type UnaryMethod<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts: Partial<grpc.CallOptions>,
  cb: (e: grpc.ServiceError | null, r: Res) => void,
) => unknown;

type StreamMethod<Req, Res> = (
  req: Req,
  md: grpc.Metadata,
  opts?: Partial<grpc.CallOptions>,
) => grpc.ClientReadableStream<Res>;

function metadata(namespace: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(NAMESPACE_HEADER, namespace);
  return md;
}

/** Calls a generated unary client method with a deadline and the namespace header. */
export function call<Req, Res>(
  address: string,
  namespace: string,
  fn: UnaryMethod<Req, Res>,
  req: Req,
  timeoutMs = 30_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(
      req,
      metadata(namespace),
      { deadline: Date.now() + timeoutMs },
      (e, r) => e ? reject(explain(address, e)) : resolve(r),
    );
  });
}

/** Reads a server stream as an async iterable; errors carry the operator-facing message. */
export async function* readStream<Req, Res>(
  address: string,
  namespace: string,
  fn: StreamMethod<Req, Res>,
  req: Req,
): AsyncGenerator<Res> {
  const stream = fn(req, metadata(namespace));
  try {
    for await (const msg of stream as AsyncIterable<Res>) yield msg;
  } catch (e) {
    throw "code" in (e as object) ? explain(address, e as grpc.ServiceError) : e;
  } finally {
    stream.cancel();
  }
}

export interface DaemonClient {
  address: string;
  namespace: string;
  version: VersionClient;
  namespaces: NamespacesClient;
  images: ImagesClient;
  content: ContentClient;
  snapshots: SnapshotsClient;
  leases: LeasesClient;
  containers: ContainersClient;
  tasks: TasksClient;
  events: EventsClient;
  unary<Req, Res>(fn: UnaryMethod<Req, Res>, req: Req, timeoutMs?: number): Promise<Res>;
  stream<Req, Res>(fn: StreamMethod<Req, Res>, req: Req): AsyncGenerator<Res>;
  /** Metadata with the namespace header, for client-streaming calls. */
  metadata(): grpc.Metadata;
  explain(e: grpc.ServiceError): CallError;
  close(): void;
}

export function connect(address: string, namespace: string): DaemonClient {
  const target = `unix://${address}`;
  const creds = grpc.credentials.createInsecure();
  // One channel shared by all clients.
  const version = new VersionClient(target, creds);
  const channelOverride = { channelOverride: version.getChannel() };
  const clients = {
    version,
    namespaces: new NamespacesClient(target, creds, channelOverride),
    images: new ImagesClient(target, creds, channelOverride),
    content: new ContentClient(target, creds, channelOverride),
    snapshots: new SnapshotsClient(target, creds, channelOverride),
    leases: new LeasesClient(target, creds, channelOverride),
    containers: new ContainersClient(target, creds, channelOverride),
    tasks: new TasksClient(target, creds, channelOverride),
    events: new EventsClient(target, creds, channelOverride),
  };
  return {
    address,
    namespace,
    ...clients,
    unary: (fn, req, timeoutMs) => call(address, namespace, fn, req, timeoutMs),
    stream: (fn, req) => readStream(address, namespace, fn, req),
    metadata: () => metadata(namespace),
    explain: (e) => explain(address, e),
    close: () => version.close(),
  };
}
