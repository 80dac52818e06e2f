import * as grpc from "@grpc/grpc-js";
import { grpcJsDefinition } from "./grpcjs_definition.ts";
import type { MethodTable } from "./rpc_service.ts";
import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { Buffer } from "node:buffer";
import { type CallContext, type GrpcImplementation, GrpcServer } from "./server.ts";
import { createLogger } from "../log/logger.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { type VersionResponse } from "../gen/k8scontainerd/services/version/v1/version.ts";
import { VersionService } from "./services.ts";
import { VersionClient } from "./clients.ts";

/** A server-streaming method with JSON messages, enough to hold a stream open. */
const TICKS: MethodTable = {
  watch: {
    path: "/test.Ticks/Watch",
    requestStream: false,
    responseStream: true,
    requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    requestDeserialize: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)),
    responseSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    responseDeserialize: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)),
  },
};

for (const implementation of ["native", "grpc-js"] as GrpcImplementation[]) {
  describe(`GrpcServer (${implementation}) on one unix socket`, () => {
    let dir = "";
    let socket = "";
    let srv: GrpcServer;
    const lines: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inFlight = new Promise<void>((r) => (entered = r));

    beforeAll(async () => {
      dir = await Deno.makeTempDir({ prefix: "k8sc-h2-grpcserver" });
      socket = `${dir}/api.sock`;
      srv = new GrpcServer({
        log: createLogger({ level: "debug", sink: (l) => lines.push(l) }),
        metrics: new MetricsRegistry(),
        implementation,
      });
      let calls = 0;
      srv.add(VersionService, {
        version: async () => {
          // The third call waits until the test releases it (in flight across the shutdown).
          if (++calls === 3) {
            entered();
            await released;
          }
          return { version: `v${calls}`, revision: "r", runtime: "deno" };
        },
      });
      srv.add(TICKS, {
        // A subscription: one message, then nothing until the call is cancelled.
        watch: async function* (_req: never, ctx: CallContext) {
          yield { tick: 1 };
          await new Promise((r) => ctx.signal.addEventListener("abort", r));
        },
      });
      await srv.listen(socket);
    });

    afterAll(async () => {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    });

    const call = (c: VersionClient) =>
      new Promise<VersionResponse>((resolve, reject) =>
        c.version({}, (e, r) => (e ? reject(e) : resolve(r)))
      );

    it("serves calls, then on shutdown lets an in-flight call finish and removes the socket", async () => {
      const client = new VersionClient(`unix://${socket}`, grpc.credentials.createInsecure());
      try {
        expect((await call(client)).version).toBe("v1");
        expect((await call(client)).version).toBe("v2");
        const Ticks = grpc.makeGenericClientConstructor(grpcJsDefinition(TICKS), "Ticks");
        const ticks = new Ticks(`unix://${socket}`, grpc.credentials.createInsecure());
        const stream = ticks.watch({}) as grpc.ClientReadableStream<{ tick: number }>;
        const streamDone = new Promise<[unknown[], grpc.ServiceError | undefined]>((resolve) => {
          const got: unknown[] = [];
          stream.on("data", (m) => got.push(m));
          stream.on("error", (e: grpc.ServiceError) => resolve([got, e]));
          stream.on("end", () => resolve([got, undefined]));
        });
        await new Promise((r) => stream.once("data", r));
        const slow = call(client);
        await inFlight;
        const t0 = performance.now();
        const stopping = srv.shutdown(5000);
        // The open subscription ends at once, UNAVAILABLE, so it does not hold the stop.
        const [got, err] = await streamDone;
        expect(got).toEqual([{ tick: 1 }]);
        expect([err?.code, err?.details]).toEqual([
          grpc.status.UNAVAILABLE,
          "the daemon is shutting down",
        ]);
        ticks.close();
        // The socket goes first: nobody new gets in while the last calls finish.
        await new Promise((r) => setTimeout(r, 100));
        await expect(Deno.lstat(socket)).rejects.toThrow();
        release();
        expect((await slow).version).toBe("v3");
        await stopping;
        expect(performance.now() - t0).toBeLessThan(3000);
      } finally {
        client.close();
      }
      const fresh = new VersionClient(`unix://${socket}`, grpc.credentials.createInsecure(), {
        "grpc.initial_reconnect_backoff_ms": 50,
      });
      try {
        const e = await new Promise<grpc.ServiceError>((resolve) =>
          fresh.version(
            {},
            new grpc.Metadata(),
            { deadline: Date.now() + 1000 },
            (e) => resolve(e!),
          )
        );
        expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(e.code);
      } finally {
        fresh.close();
      }
    });
  });
}
