import { afterAll, beforeAll, describe, emulator, expect, it } from "../testing/bdd.ts";

// qemu-user runs this 10–50× slower than natively: waits scale, what they wait for does not.
const SLOW = emulator ? 20 : 1;
import { Buffer } from "node:buffer";
import { type CallContext, type GrpcImplementation, GrpcServer } from "./server.ts";
import { createLogger } from "../log/logger.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { CallStatusError, grpcTimeout, NativeChannel } from "./native_client.ts";
import type { RpcMethod } from "./rpc_service.ts";
import { NotFoundError } from "../errdefs/errors.ts";

/** JSON-coded test methods: enough to exercise every call shape. */
function method<Req, Res>(path: string, requestStream: boolean, responseStream: boolean) {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: (v: Req) => Buffer.from(JSON.stringify(v)),
    requestDeserialize: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as Req,
    responseSerialize: (v: Res) => Buffer.from(JSON.stringify(v)),
    responseDeserialize: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as Res,
    originalName: path.split("/").pop()!,
  } satisfies RpcMethod<Req, Res>;
}

const T = {
  echo: method<{ s: string; md?: boolean }, { s: string; ns?: string }>("/t.T/Echo", false, false),
  fail: method<{ s: string }, { s: string }>("/t.T/Fail", false, false),
  slow: method<{ ms: number }, { s: string }>("/t.T/Slow", false, false),
  count: method<{ n: number; size: number }, { i: number; pad: string }>("/t.T/Count", false, true),
  sum: method<{ v: number; pad?: string }, { total: number; n: number }>("/t.T/Sum", true, false),
};

for (const implementation of ["native", "grpc-js"] as GrpcImplementation[]) {
  describe(`NativeChannel against the ${implementation} server`, () => {
    let dir = "";
    let socket = "";
    let srv: GrpcServer;
    let slowAborted = 0;
    let ch: NativeChannel;

    beforeAll(async () => {
      dir = await Deno.makeTempDir({ prefix: "k8sc-h2-client-" });
      socket = `${dir}/api.sock`;
      srv = new GrpcServer({
        log: createLogger({ level: "error", sink: () => {} }),
        metrics: new MetricsRegistry(),
        implementation,
      });
      srv.add(T as never, {
        echo: (req: { s: string }, ctx: CallContext) =>
          Promise.resolve({ s: req.s, ns: ctx.metadata.get("containerd-namespace")[0] as string }),
        fail: (req: { s: string }) => Promise.reject(new NotFoundError(`no ${req.s} here: 100%`)),
        slow: async (req: { ms: number }, ctx: CallContext) => {
          await new Promise<void>((r) => {
            const t = setTimeout(r, req.ms);
            ctx.signal.addEventListener("abort", () => {
              slowAborted++;
              clearTimeout(t);
              r();
            });
          });
          return { s: "late" };
        },
        count: async function* (req: { n: number; size: number }) {
          for (let i = 0; i < req.n; i++) yield { i, pad: "x".repeat(req.size) };
        },
        sum: async (reqs: AsyncIterable<{ v: number }>) => {
          let total = 0, n = 0;
          for await (const r of reqs) {
            total += r.v;
            n++;
          }
          return { total, n };
        },
      } as never);
      await srv.listen(socket);
      ch = await NativeChannel.connect(socket);
    });

    afterAll(async () => {
      ch.close();
      await srv.shutdown(1000);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    });

    it("unary calls carry metadata and many run at once on one connection", async () => {
      const r = await ch.unary(T.echo, { s: "hi" }, {
        metadata: { "containerd-namespace": "ns1" },
      });
      expect(r).toEqual({ s: "hi", ns: "ns1" });
      const many = await Promise.all(
        Array.from({ length: 50 }, (_, i) => ch.unary(T.echo, { s: `m${i}` })),
      );
      expect(many.map((m) => m.s)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    });

    it("a failed call gives the status code and the decoded message", async () => {
      const e = await ch.unary(T.fail, { s: "thing" }).catch((e) => e);
      expect(e).toBeInstanceOf(CallStatusError);
      expect(e.code).toBe(5); // NOT_FOUND
      expect(e.details).toContain("no thing here: 100%");
    });

    it("an unknown method is UNIMPLEMENTED", async () => {
      const e = await ch.unary({ ...T.echo, path: "/t.T/Nope" }, { s: "" }).catch((e) => e);
      expect(e.code).toBe(12);
    });

    it("a deadline ends the call DEADLINE_EXCEEDED and the server's handler sees the abort", async () => {
      const t0 = Date.now();
      const e = await ch.unary(T.slow, { ms: 5000 }, { timeoutMs: 200 }).catch((e) => e);
      expect(e.code).toBe(4);
      expect(Date.now() - t0).toBeLessThan(2000 * SLOW);
      for (let i = 0; i < 100 * SLOW && slowAborted === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(slowAborted).toBeGreaterThan(0);
    });

    it("a year-long deadline (the CLI's run waits so) does not end the call early", async () => {
      const r = await ch.unary(T.slow, { ms: 100 }, { timeoutMs: 365 * 24 * 3600_000 });
      expect(r.s).toBe("late");
    });

    it("an AbortSignal cancels a call (CANCELLED), the connection still serves", async () => {
      const ac = new AbortController();
      const p = ch.unary(T.slow, { ms: 5000 }, { signal: ac.signal }).catch((e) => e);
      setTimeout(() => ac.abort(), 50);
      expect((await p).code).toBe(1);
      expect((await ch.unary(T.echo, { s: "after" })).s).toBe("after");
    });

    it("a server stream of 12 MB arrives whole and in order (flow control past the windows)", async () => {
      let n = 0, bytes = 0;
      for await (const m of ch.serverStream(T.count, { n: 200, size: 60_000 })) {
        expect(m.i).toBe(n++);
        bytes += m.pad.length;
      }
      expect(n).toBe(200);
      expect(bytes).toBe(12_000_000);
    });

    it("breaking out of a server stream cancels it; the connection still serves", async () => {
      let seen = 0;
      for await (const _ of ch.serverStream(T.count, { n: 100_000, size: 1000 })) {
        if (++seen === 3) break;
      }
      expect(seen).toBe(3);
      expect((await ch.unary(T.echo, { s: "still" })).s).toBe("still");
    });

    it("a client stream sends every request (8 MB, past the windows) and gets one answer", async () => {
      async function* reqs() {
        for (let i = 1; i <= 100; i++) yield { v: i, pad: "y".repeat(80_000) };
      }
      expect(await ch.clientStream(T.sum, reqs())).toEqual({ total: 5050, n: 100 });
    });
  });
}

describe("NativeChannel connecting", () => {
  it("grpc-timeout keeps to 8 digits: long deadlines are sent in seconds or hours", () => {
    expect(grpcTimeout(1500)).toBe("1500m");
    expect(grpcTimeout(0)).toBe("1m");
    expect(grpcTimeout(365 * 24 * 3600_000)).toBe("31536000S");
    expect(grpcTimeout(1e15)).toBe("99999999H");
  });

  it("a socket nobody listens on fails the connect, naming the path", async () => {
    const e = await NativeChannel.connect("/nonexistent/k8sc.sock").catch((e) => e);
    expect(e).toBeInstanceOf(Error);
    expect(String(e.message)).toContain("No such file");
  });
});
