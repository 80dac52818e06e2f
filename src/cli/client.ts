/**
 * The CLI's connection to the daemon: one HTTP/2 connection (src/grpc/native_client.ts, no
 * grpc-js: the CLI starts faster and smaller), the namespace header on every call, and errors
 * that tell the operator what to check.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * const c = await connect("/run/k8scontainerd/k8scontainerd.sock", "default");
 * const { images } = await c.unary("images", "list", { filters: [] });
 * c.close();
 * ```
 */
import { CallStatusError, NativeChannel, STATUS } from "../grpc/native_client.ts";
import { type GenericService, type RpcMethod, rpcService } from "../grpc/rpc_service.ts";
import type * as Tables from "../grpc/services.ts";
import { NAMESPACE_HEADER } from "../grpc/call_metadata.ts";
import { load } from "./lazy.ts";

export { NAMESPACE_HEADER };

/** A failed call, phrased for a terminal: it names the socket when the daemon is unreachable. */
export class CallError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

function explain(address: string, e: unknown): unknown {
  if (e instanceof CallStatusError) {
    if (e.code === STATUS.UNAVAILABLE && /connection lost|closed the connection/.test(e.details)) {
      return new CallError(e.code, `the daemon at ${address} went away: ${e.details}`);
    }
    return new CallError(e.code, e.details);
  }
  return e;
}

/** The management services' method tables, by the names calls use. */
interface Services {
  version: typeof Tables.VersionService;
  namespaces: typeof Tables.NamespacesService;
  images: typeof Tables.ImagesService;
  content: typeof Tables.ContentService;
  snapshots: typeof Tables.SnapshotsService;
  leases: typeof Tables.LeasesService;
  containers: typeof Tables.ContainersService;
  tasks: typeof Tables.TasksService;
  events: typeof Tables.EventsService;
}
/** A service's name, as in `c.unary("images", "list", …)`. */
export type ServiceName = keyof Services;
type MethodName<S extends ServiceName> = keyof Services[S] & string;
type Method<S extends ServiceName, M extends MethodName<S>> = Services[S][M];
type RequestOf<T> = T extends { requestDeserialize(b: Uint8Array): infer Req } ? Req : never;
type ResponseOf<T> = T extends { responseDeserialize(b: Uint8Array): infer Res } ? Res : never;

// A command loads the generated code of the services it calls, not all nine (~2 ms each).
const DESCRIPTIONS: { [S in ServiceName]: () => Promise<GenericService> } = {
  version: async () => (await load("versionApi")).VersionDefinition,
  namespaces: async () => (await load("namespacesApi")).NamespacesDefinition,
  images: async () => (await load("imagesApi")).ImagesDefinition,
  content: async () => (await load("contentApi")).ContentDefinition,
  snapshots: async () => (await load("snapshotsApi")).SnapshotsDefinition,
  leases: async () => (await load("leasesApi")).LeasesDefinition,
  containers: async () => (await load("containersApi")).ContainersDefinition,
  tasks: async () => (await load("tasksApi")).TasksDefinition,
  events: async () => (await load("eventsApi")).EventsDefinition,
};
const tables = new Map<ServiceName, Promise<Record<string, RpcMethod<unknown, unknown>>>>();

async function method<S extends ServiceName, M extends MethodName<S>>(
  service: S,
  name: M,
): Promise<RpcMethod<RequestOf<Method<S, M>>, ResponseOf<Method<S, M>>>> {
  let t = tables.get(service);
  if (!t) {
    t = DESCRIPTIONS[service]().then((d) => rpcService(d));
    tables.set(service, t);
  }
  const m = (await t)[name];
  if (!m) throw new Error(`no method ${service}.${name}`);
  return m as RpcMethod<RequestOf<Method<S, M>>, ResponseOf<Method<S, M>>>;
}

export interface DaemonClient {
  address: string;
  namespace: string;
  /** A unary call with a deadline (default 30 s): `c.unary("images", "list", { filters: [] })`. */
  unary<S extends ServiceName, M extends MethodName<S>>(
    service: S,
    method: M,
    req: RequestOf<Method<S, M>>,
    timeoutMs?: number,
  ): Promise<ResponseOf<Method<S, M>>>;
  /** A server-streaming call; leaving the loop early cancels it. */
  stream<S extends ServiceName, M extends MethodName<S>>(
    service: S,
    method: M,
    req: RequestOf<Method<S, M>>,
  ): AsyncGenerator<ResponseOf<Method<S, M>>>;
  /** A client-streaming call: every request, then the one answer. */
  clientStream<S extends ServiceName, M extends MethodName<S>>(
    service: S,
    method: M,
    reqs: AsyncIterable<RequestOf<Method<S, M>>>,
  ): Promise<ResponseOf<Method<S, M>>>;
  close(): void;
}

/** Dials the daemon; an unreachable socket is a CallError that says what to check. */
export async function connect(address: string, namespace: string): Promise<DaemonClient> {
  let ch: NativeChannel;
  try {
    ch = await NativeChannel.connect(address);
  } catch (e) {
    throw new CallError(
      STATUS.UNAVAILABLE,
      `cannot reach the daemon at ${address}: ${
        e instanceof Error ? e.message : e
      } (is 'k8scontainerd daemon' running? use --address to point elsewhere)`,
    );
  }
  const metadata = { [NAMESPACE_HEADER]: namespace };
  return {
    address,
    namespace,
    async unary(service, name, req, timeoutMs = 30_000) {
      const m = await method(service, name);
      try {
        return await ch.unary(m, req, { metadata, timeoutMs });
      } catch (e) {
        throw explain(address, e);
      }
    },
    async *stream(service, name, req) {
      const m = await method(service, name);
      try {
        yield* ch.serverStream(m, req, { metadata });
      } catch (e) {
        throw explain(address, e);
      }
    },
    async clientStream(service, name, reqs) {
      const m = await method(service, name);
      try {
        return await ch.clientStream(m, reqs, { metadata });
      } catch (e) {
        throw explain(address, e);
      }
    },
    close: () => ch.close(),
  };
}
