/**
 * The native server against the grpc-js client, over a real unix socket: unary, server
 * streaming with a slow reader, client streaming, deadlines, cancellation, 10 MB responses,
 * unknown methods and message size limits.
 */
import * as grpc from "@grpc/grpc-js";
import { grpcJsDefinition } from "./grpcjs_definition.ts";
import type { MethodTable } from "./rpc_service.ts";
import { Buffer } from "node:buffer";
import { afterAll, beforeAll, describe, emulator, expect, it } from "../testing/bdd.ts";

// qemu-user runs this 10–50× slower than natively: waits scale, what they wait for does not.
const SLOW = emulator ? 20 : 1;
import { type CallContext, GrpcServer } from "./server.ts";
import { createLogger } from "../log/logger.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { NotFoundError } from "../errdefs/errors.ts";

const raw = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  // Messages are raw bytes: sizes are exact, no codec in the way.
  requestSerialize: (v: Uint8Array) => raw(v),
  requestDeserialize: (b: Uint8Array) => new Uint8Array(b),
  responseSerialize: (v: Uint8Array) => raw(v),
  responseDeserialize: (b: Uint8Array) => new Uint8Array(b),
});

const TEST: MethodTable = {
  echo: method("/test.T/Echo", false, false),
  big: method("/test.T/Big", false, false),
  fail: method("/test.T/Fail", false, false),
  slow: method("/test.T/Slow", false, false),
  missing: method("/test.T/Missing", false, false),
  chunks: method("/test.T/Chunks", false, true),
  sum: method("/test.T/Sum", true, false),
};

describe("native gRPC server with the grpc-js client", () => {
  let dir = "";
  let socket = "";
  let srv: GrpcServer;
  let client: grpc.Client & Record<string, CallableFunction>;
  let produced = 0;
  const slowAborts: unknown[] = [];
  const metrics = new MetricsRegistry();

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-h2-native" });
    socket = `${dir}/api.sock`;
    srv = new GrpcServer({
      log: createLogger({ level: "error", sink: () => {} }),
      metrics,
      implementation: "native",
      maxRecvMessageSize: 1 << 20,
      maxSendMessageSize: 12 << 20,
    });
    srv.add(TEST, {
      echo: (req: Uint8Array, ctx: CallContext) => {
        const ns = ctx.metadata.get("containerd-namespace")[0] ?? "";
        return Promise.resolve(new Uint8Array([...req, ...new TextEncoder().encode(String(ns))]));
      },
      big: (req: Uint8Array) => Promise.resolve(new Uint8Array(req[0] << 20).fill(7)),
      fail: () => Promise.reject(new NotFoundError("thing ünïcode 100%")),
      slow: (_req: never, ctx: CallContext) =>
        new Promise((_, reject) =>
          ctx.signal.addEventListener("abort", () => {
            slowAborts.push(ctx.signal.reason);
            reject(ctx.signal.reason);
          })
        ),
      chunks: async function* (req: Uint8Array) {
        for (let i = 0; i < req[0]; i++) {
          produced++;
          yield new Uint8Array(64 << 10).fill(i & 0xff);
        }
      },
      sum: async (reqs: AsyncIterable<Uint8Array>) => {
        let n = 0, count = 0;
        for await (const r of reqs) {
          n += r.length;
          count++;
        }
        return new TextEncoder().encode(`${count}:${n}`);
      },
    } as never);
    await srv.listen(socket);
    const Ctor = grpc.makeGenericClientConstructor(grpcJsDefinition(TEST), "T");
    client = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": 64 << 20,
    }) as never;
  });

  afterAll(async () => {
    client.close();
    await srv.shutdown(1000);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  const unary = (
    name: string,
    req: Uint8Array,
    md = new grpc.Metadata(),
    opts: grpc.CallOptions = {},
  ) =>
    new Promise<{ res?: Uint8Array; err?: grpc.ServiceError }>((resolve) =>
      client[name](
        req,
        md,
        opts,
        (err: grpc.ServiceError | null, res: Uint8Array) => resolve(err ? { err } : { res }),
      )
    );

  it("answers unary calls, with the request metadata", async () => {
    const md = new grpc.Metadata();
    md.set("containerd-namespace", "k8s.io");
    const { res } = await unary("echo", new Uint8Array([65, 66]), md);
    expect(new TextDecoder().decode(res)).toBe("ABk8s.io");
    // Many at once on one connection.
    const all = await Promise.all(
      Array.from({ length: 200 }, (_, i) => unary("echo", new Uint8Array([i & 0x7f]))),
    );
    expect(all.every((r, i) => r.res?.[0] === (i & 0x7f))).toBe(true);
  });

  it("maps errors to status and percent-encodes the message", async () => {
    const { err } = await unary("fail", new Uint8Array());
    expect([err?.code, err?.details]).toEqual([
      grpc.status.NOT_FOUND,
      "thing ünïcode 100%: not found",
    ]);
    const text = metrics.render();
    expect(text).toContain('method="/test.T/Fail",code="NOT_FOUND"');
  });

  it("answers UNIMPLEMENTED for a method nobody registered", async () => {
    const { err } = await unary("missing", new Uint8Array());
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("sends 10 MB responses and refuses ones past maxSendMessageSize", async () => {
    const { res } = await unary("big", new Uint8Array([10]));
    expect(res?.length).toBe(10 << 20);
    expect(res?.every((b) => b === 7)).toBe(true);
    const { err } = await unary("big", new Uint8Array([13]));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  it("refuses requests past maxRecvMessageSize with RESOURCE_EXHAUSTED", async () => {
    const { err } = await unary("echo", new Uint8Array((1 << 20) + 1));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // The connection is fine afterwards.
    expect((await unary("echo", new Uint8Array([1]))).res?.[0]).toBe(1);
  });

  it("ends a call at its deadline and aborts the handler", async () => {
    slowAborts.length = 0;
    const t0 = performance.now();
    const { err } = await unary("slow", new Uint8Array(), new grpc.Metadata(), {
      deadline: Date.now() + 200,
    });
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(performance.now() - t0).toBeLessThan(2000 * SLOW);
    for (let i = 0; i < 50 * SLOW && slowAborts.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(slowAborts.length).toBe(1);
    // grpc-js's client keeps the same deadline and resets the stream at it: on a busy machine
    // that RST_STREAM can land before the server's own timer fires.
    expect(["Deadline exceeded", "client cancelled the call"]).toContain(
      (slowAborts[0] as Error).message,
    );
  });

  it("aborts the handler when the client cancels", async () => {
    slowAborts.length = 0;
    const call = client.slow(new Uint8Array(), () => {}) as grpc.ClientUnaryCall;
    await new Promise((r) => setTimeout(r, 100));
    call.cancel();
    for (let i = 0; i < 50 * SLOW && slowAborts.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((slowAborts[0] as Error).message).toBe("client cancelled the call");
  });

  // Deno's node:http2 client (under grpc-js) grants window as it buffers, paused or not, so
  // back-pressure is tested with a raw client that withholds WINDOW_UPDATE (h2_connection_test).
  it("streams 12.5 MiB to a paused-then-resumed reader, in order", async () => {
    produced = 0;
    const stream = client.chunks(new Uint8Array([200])) as grpc.ClientReadableStream<Uint8Array>;
    stream.pause();
    await new Promise((r) => setTimeout(r, 100));
    let got = 0, bytes = 0;
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (m: Uint8Array) => {
        if (m[0] !== (got & 0xff)) reject(new Error(`message ${got} out of order`));
        got++;
        bytes += m.length;
      });
      stream.on("end", () => resolve());
      stream.on("error", reject);
      stream.resume();
    });
    expect([got, bytes, produced]).toEqual([200, 200 * (64 << 10), 200]);
  });

  it("reads client streams", async () => {
    const res = await new Promise<Uint8Array>((resolve, reject) => {
      const w = client.sum((e: grpc.ServiceError | null, r: Uint8Array) =>
        e ? reject(e) : resolve(r)
      );
      for (let i = 0; i < 100; i++) w.write(new Uint8Array(1000));
      w.end();
    });
    expect(new TextDecoder().decode(res)).toBe("100:100000");
  });
});
