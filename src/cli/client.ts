/**
 * The CLI's connection to the daemon: one HTTP/2 connection (src/grpc/native_client.ts, no
 * grpc-js: the CLI starts faster and smaller), the namespace header on every call, and errors
 * that tell the operator what to check.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * const c = await connect("/run/k8scontainerd/k8scontainerd.sock", "default");
 * const { images } = await c.unary(c.images.list, { filters: [] });
 * c.close();
 * ```
 */
import { CallStatusError, NativeChannel, STATUS } from "../grpc/native_client.ts";
import {
  ContainersService,
  ContentService,
  EventsService,
  ImagesService,
  LeasesService,
  NamespacesService,
  type RpcMethod,
  SnapshotsService,
  TasksService,
  VersionService,
} from "../grpc/services.ts";
import { NAMESPACE_HEADER } from "../grpc/call_metadata.ts";

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

/** The management services' method tables, as `c.images.list` for `c.unary`. */
const SERVICES = {
  version: VersionService,
  namespaces: NamespacesService,
  images: ImagesService,
  content: ContentService,
  snapshots: SnapshotsService,
  leases: LeasesService,
  containers: ContainersService,
  tasks: TasksService,
  events: EventsService,
};

export interface DaemonClient {
  address: string;
  namespace: string;
  version: typeof VersionService;
  namespaces: typeof NamespacesService;
  images: typeof ImagesService;
  content: typeof ContentService;
  snapshots: typeof SnapshotsService;
  leases: typeof LeasesService;
  containers: typeof ContainersService;
  tasks: typeof TasksService;
  events: typeof EventsService;
  /** A unary call with a deadline (default 30 s). */
  unary<Req, Res>(m: RpcMethod<Req, Res>, req: Req, timeoutMs?: number): Promise<Res>;
  /** A server-streaming call; leaving the loop early cancels it. */
  stream<Req, Res>(m: RpcMethod<Req, Res>, req: Req): AsyncGenerator<Res>;
  /** A client-streaming call: every request, then the one answer. */
  clientStream<Req, Res>(m: RpcMethod<Req, Res>, reqs: AsyncIterable<Req>): Promise<Res>;
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
    ...SERVICES,
    unary: (m, req, timeoutMs = 30_000) =>
      ch.unary(m, req, { metadata, timeoutMs }).catch((e) => {
        throw explain(address, e);
      }),
    async *stream(m, req) {
      try {
        yield* ch.serverStream(m, req, { metadata });
      } catch (e) {
        throw explain(address, e);
      }
    },
    clientStream: (m, reqs) =>
      ch.clientStream(m, reqs, { metadata }).catch((e) => {
        throw explain(address, e);
      }),
    close: () => ch.close(),
  };
}
