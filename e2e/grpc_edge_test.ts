/**
 * The daemon's gRPC edge against hostile and careless clients, over its real socket: bytes
 * that are not HTTP/2, a call to a method that does not exist, a message past the size limit,
 * a client that opens ten thousand streams and leaves them open, a call whose deadline passes
 * while the daemon waits on a registry, and a connection dropped in the middle of a stream.
 * After each, another client is served at once and nothing is left held. Run against both
 * `[grpc] server` implementations.
 */
import http2 from "node:http2";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "../src/testing/bdd.ts";
import { call } from "../src/grpc/clients.ts";
import { startTestDaemon, type TestDaemon } from "./harness.ts";
import { ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";

/** A gRPC message frame: 1 byte flags, 4 bytes length, the protobuf bytes. */
function grpcFrame(msg: Uint8Array): Uint8Array {
  const b = new Uint8Array(5 + msg.length);
  new DataView(b.buffer).setUint32(1, msg.length);
  b.set(msg, 5);
  return b;
}

/** A raw HTTP/2 session (node:http2) on the daemon's unix socket. */
function rawSession(socket: string): Promise<http2.ClientHttp2Session> {
  const s = http2.connect("http://localhost", {
    createConnection: () => net.connect(socket) as unknown as import("node:stream").Duplex,
  });
  s.on("error", () => {});
  return new Promise((resolve, reject) => {
    s.once("remoteSettings", () => resolve(s));
    s.once("error", reject);
  });
}

interface RawAnswer {
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
}

/** One unary call with a raw body; resolves with what came back once the stream closed. */
function rawCall(s: http2.ClientHttp2Session, path: string, body: Uint8Array): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const st = s.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const out: RawAnswer = { headers: {}, trailers: {} };
    st.on("response", (h) => out.headers = h);
    st.on("trailers", (t) => out.trailers = t);
    st.on("error", () => {});
    st.on("close", () => resolve(out));
    st.resume();
    st.end(body);
  });
}

/** The grpc-status of a raw answer (trailers-only answers carry it in the headers). */
const statusOf = (a: RawAnswer) => String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]);

const pss = async (pid: number) => {
  const m = (await Deno.readTextFile(`/proc/${pid}/smaps_rollup`)).match(/^Pss:\s+(\d+) kB/m);
  return Number(m![1]) * 1024;
};

for (const server of ["native", "grpc-js"]) {
  describe(`gRPC edge (${server} server): hostile and careless clients`, () => {
    let d: TestDaemon;
    const versionOk = async () => {
      const c = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
      try {
        const t0 = performance.now();
        const v = await call(d.socket, "k8s.io", c.version.bind(c), { version: "v1" }, 10_000);
        expect(v.runtimeName).toBe("k8scontainerd");
        return performance.now() - t0;
      } finally {
        c.close();
      }
    };

    beforeAll(async () => {
      const dir = await Deno.makeTempDir({ prefix: "k8sc-e2e-" });
      await Deno.writeTextFile(`${dir}/config.toml`, `[grpc]\nserver = "${server}"\n`);
      d = await startTestDaemon({ dir, args: ["--config", `${dir}/config.toml`] });
    });
    afterAll(async () => {
      await d?.stop();
      await d?.cleanup();
    });

    it("bytes that are not HTTP/2 end that connection only (RFC 9113 §3.4)", async () => {
      const c = await Deno.connect({ transport: "unix", path: d.socket });
      await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      const got: number[] = [];
      const buf = new Uint8Array(1024);
      const timer = setTimeout(() => c.close(), 10_000);
      try {
        for (let n = await c.read(buf); n !== null; n = await c.read(buf)) {
          got.push(...buf.slice(0, n));
        }
      } catch { /* closed by the timer: the test fails below */ }
      clearTimeout(timer);
      try {
        c.close();
      } catch { /* already */ }
      // At most the server's own SETTINGS (and a GOAWAY) before it hangs up; never an answer.
      expect(got.length).toBeLessThan(64);
      expect(new TextDecoder().decode(Uint8Array.from(got))).not.toContain("HTTP/1.1");
      await versionOk();
    });

    it("an unknown method is UNIMPLEMENTED, naming it; any :authority is accepted", async () => {
      const s = await rawSession(d.socket);
      try {
        const a = await rawCall(
          s,
          "/runtime.v1.RuntimeService/NoSuchMethod",
          grpcFrame(new Uint8Array()),
        );
        expect(statusOf(a)).toBe("12");
        expect(decodeURIComponent(String(a.headers["grpc-message"] ?? a.trailers["grpc-message"])))
          .toContain("/runtime.v1.RuntimeService/NoSuchMethod");
        const svc = await rawCall(s, "/no.such.Service/Call", grpcFrame(new Uint8Array()));
        expect(statusOf(svc)).toBe("12");
      } finally {
        s.close();
      }
      // grpc-go clients send the socket path as :authority.
      const p = await rawSession(d.socket);
      try {
        const a = await new Promise<RawAnswer>((resolve) => {
          const st = p.request({
            ":method": "POST",
            ":path": "/runtime.v1.RuntimeService/Version",
            ":authority": "/run/k8scontainerd/k8scontainerd.sock",
            "content-type": "application/grpc",
            te: "trailers",
          });
          const out: RawAnswer = { headers: {}, trailers: {} };
          st.on("response", (h) => out.headers = h);
          st.on("trailers", (t) => out.trailers = t);
          st.on("close", () => resolve(out));
          st.resume();
          st.end(grpcFrame(new Uint8Array()));
        });
        expect(statusOf(a)).toBe("0");
      } finally {
        p.close();
      }
    });

    it("a request past max_recv_message_size is RESOURCE_EXHAUSTED; the connection lives on", async () => {
      const s = await rawSession(d.socket);
      try {
        const a = await rawCall(
          s,
          "/runtime.v1.RuntimeService/Version",
          grpcFrame(new Uint8Array((16 << 20) + 1)),
        );
        expect(statusOf(a)).toBe("8");
        // The same connection still serves.
        const ok = await rawCall(
          s,
          "/runtime.v1.RuntimeService/Version",
          grpcFrame(new Uint8Array()),
        );
        expect(statusOf(ok)).toBe("0");
      } finally {
        s.close();
      }
    });

    it("a client holding 10 000 open streams: others are served, and it all goes when it leaves", async () => {
      const before = await pss(d.process!.pid);
      const s = await rawSession(d.socket);
      const advertised = s.remoteSettings.maxConcurrentStreams ?? 2 ** 32 - 1;
      const open: http2.ClientHttp2Stream[] = [];
      for (let i = 0; i < 10_000; i++) {
        const st = s.request({
          ":method": "POST",
          ":path": "/runtime.v1.RuntimeService/Version",
          "content-type": "application/grpc",
          te: "trailers",
        });
        st.on("error", () => {});
        open.push(st); // headers sent, no message, never ended: each waits on the daemon
      }
      await new Promise((r) => setTimeout(r, 2000));
      const during = await pss(d.process!.pid);
      const ms = await versionOk();
      console.log(
        `  SETTINGS_MAX_CONCURRENT_STREAMS ${advertised}; PSS ${(before / 2 ** 20).toFixed(1)} → ` +
          `${(during / 2 ** 20).toFixed(1)} MiB with the streams open; another client's Version ` +
          `${ms.toFixed(1)} ms`,
      );
      expect(advertised).toBeLessThanOrEqual(1000);
      expect(during - before).toBeLessThan(64 * 2 ** 20);
      s.destroy();
      // Released: the next connection is served and memory comes back down (V8 keeps some).
      // What stays, measured here: native 12–20 MiB; grpc-js 7–45 MiB (node:http2's per-stream
      // objects grow V8's heap, which it keeps for a while), once 24.2 against a 24 MiB bound.
      const kept = (server === "native" ? 24 : 48) * 2 ** 20;
      await versionOk();
      let after = 0;
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 500));
        after = await pss(d.process!.pid);
        if (after - before < kept) break;
      }
      expect(after - before).toBeLessThan(kept);
    });

    it("a deadline that passes while the daemon waits on a registry: DEADLINE_EXCEEDED, the pull abandoned", async () => {
      // A "registry" that accepts connections and never answers.
      const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (silent.addr as Deno.NetAddr).port;
      const conns: Deno.Conn[] = [];
      const accepting = (async () => {
        for await (const c of silent) conns.push(c);
      })();
      const img = new ImageServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
      try {
        const t0 = performance.now();
        const err = await call(
          d.socket,
          "k8s.io",
          img.pullImage.bind(img),
          {
            image: {
              image: `127.0.0.1:${port}/never/answers:1`,
              annotations: {},
              userSpecifiedImage: "",
              runtimeHandler: "",
              imageRef: "",
            },
            auth: undefined,
            sandboxConfig: undefined,
          },
          1500,
        ).catch((e) => e);
        const took = performance.now() - t0;
        expect((err as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
        expect(took).toBeLessThan(5000);
        expect(conns.length).toBeGreaterThan(0); // the daemon did dial it
        // Cancelled on the daemon's side too: it hangs up on the registry soon after.
        const closed = await Promise.race([
          conns[0].read(new Uint8Array(1)).then(() => true, () => true),
          new Promise((r) => setTimeout(() => r(false), 15_000)),
        ]);
        expect(closed).toBe(true);
        await versionOk();
      } finally {
        img.close();
        silent.close();
        await accepting.catch(() => {});
        for (const c of conns) {
          try {
            c.close();
          } catch { /* closed */ }
        }
      }
    });

    it("a connection dropped in the middle of an event stream leaves the daemon serving", async () => {
      const s = await rawSession(d.socket);
      const st = s.request({
        ":method": "POST",
        ":path": "/runtime.v1.RuntimeService/GetContainerEvents",
        "content-type": "application/grpc",
        te: "trailers",
      });
      st.on("error", () => {});
      st.end(grpcFrame(new Uint8Array()));
      // A server stream sends its headers with the first event: give the call time to start.
      await new Promise((r) => setTimeout(r, 1000));
      s.destroy(); // no RST_STREAM, no GOAWAY: the socket just goes
      await new Promise((r) => setTimeout(r, 500));
      await versionOk();
      expect(d.log()).not.toMatch(/"level":"(error|fatal)"/);
    });
  });
}
