import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { StreamingServer } from "./server.ts";
import type { StreamingBackend, TerminalSize } from "./backend.ts";
import { openPortForward, remoteCommand, UpgradeFailedError } from "./client.ts";
import { ByteReader, concatBytes, writeAll } from "./bytes.ts";
import { parseResponseHead } from "./http1.ts";
import { createLogger } from "../log/logger.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";

const te = new TextEncoder();
const td = new TextDecoder();

/** Reads `s` until it has produced a newline (or ended); returns what it read. */
async function readLine(s: ReadableStream<Uint8Array>): Promise<string> {
  const reader = s.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const r = await reader.read();
    if (r.done) break;
    text += td.decode(r.value);
  }
  reader.releaseLock();
  return text;
}

async function write(w: WritableStream<Uint8Array> | undefined, text: string): Promise<void> {
  if (!w) return; // the request did not ask for this stream
  const writer = w.getWriter();
  await writer.write(te.encode(text));
  writer.releaseLock();
}

/**
 * A fake runtime: behaviour picked by cmd[0] so each case shows one protocol feature.
 * - "echo-exit": copy stdin (to EOF) to stdout, "err" to stderr, exit with cmd[1].
 * - "line-exit": copy one stdin line to stdout, "err" to stderr, exit with cmd[1] (for
 *   WebSocket v4, which has no stdin EOF).
 * - "resize": collect resize events until cmd[1] of them arrived, print them, exit 0.
 * - "fail": throw.
 */
class FakeBackend implements StreamingBackend {
  resizes: TerminalSize[] = [];
  calls: string[] = [];
  async exec(o: Parameters<StreamingBackend["exec"]>[0]): Promise<number> {
    this.calls.push(`exec ${o.containerId} ${o.cmd.join(" ")} tty=${o.tty}`);
    switch (o.cmd[0]) {
      case "echo-exit": {
        if (o.stdin && o.stdout) await o.stdin.pipeTo(o.stdout, { preventClose: true });
        await write(o.stderr, "err");
        return Number(o.cmd[1]);
      }
      case "line-exit": {
        const line = o.stdin ? await readLine(o.stdin) : "";
        await write(o.stdout, line);
        await write(o.stderr, "err");
        return Number(o.cmd[1]);
      }
      case "resize": {
        for await (const s of o.resize!) {
          this.resizes.push(s);
          if (this.resizes.length >= Number(o.cmd[1])) break;
        }
        await write(o.stdout, JSON.stringify(this.resizes));
        return 0;
      }
      default:
        throw new Error(`no such command ${o.cmd[0]}`);
    }
  }
  async attach(o: Parameters<StreamingBackend["attach"]>[0]): Promise<void> {
    this.calls.push(`attach ${o.containerId}`);
    await write(o.stdout, "attached\n");
    if (o.stdin) await o.stdin.pipeTo(new WritableStream());
  }
  async portForward(o: Parameters<StreamingBackend["portForward"]>[0]): Promise<void> {
    this.calls.push(`portforward ${o.podSandboxId} ${o.port}`);
    if (o.port === 1) throw new Error("connection refused");
    // Echo with a per-port prefix so crossed streams would show.
    const prefix = te.encode(`${o.port}:`);
    await o.stream.readable.pipeThrough(
      new TransformStream({
        transform(chunk, c) {
          c.enqueue(concatBytes([prefix, chunk]));
        },
      }),
    ).pipeTo(o.stream.writable);
  }
}

/** Sends a raw HTTP request head and returns the response status and body. */
async function rawRequest(
  url: string,
  headLines: string[],
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    await writeAll(
      conn,
      te.encode(
        [`POST ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, ...headLines, "", ""].join(
          "\r\n",
        ),
      ),
    );
    const reader = new ByteReader(conn);
    const res = parseResponseHead((await reader.readHead(16384))!);
    const len = Number(res.headers.get("content-length") ?? 0);
    const body = len ? td.decode((await reader.readExact(len))!) : "";
    return { status: res.status, body };
  } finally {
    conn.close();
  }
}

const spdyUpgrade = ["Connection: Upgrade", "Upgrade: SPDY/3.1"];

/** Collects WebSocket messages; `next()` waits for the next one. */
function wsMessages(ws: WebSocket) {
  const queue: Uint8Array[] = [];
  const waiters: ((m: Uint8Array | null) => void)[] = [];
  let closed = false;
  ws.binaryType = "arraybuffer";
  ws.onmessage = (e) => {
    const m = typeof e.data === "string"
      ? te.encode(e.data)
      : new Uint8Array(e.data as ArrayBuffer);
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  };
  ws.onclose = () => {
    closed = true;
    for (const w of waiters.splice(0)) w(null);
  };
  return {
    next(): Promise<Uint8Array | null> {
      const m = queue.shift();
      if (m) return Promise.resolve(m);
      if (closed) return Promise.resolve(null);
      return new Promise((r) => waiters.push(r));
    },
  };
}

function wsOpen(url: string, protocol: string): Promise<WebSocket> {
  const ws = new WebSocket(url.replace(/^http/, "ws"), [protocol]);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) => reject(new Error(`websocket failed: ${(e as ErrorEvent).message}`));
  });
}

describe("StreamingServer", () => {
  const backend = new FakeBackend();
  const server = new StreamingServer({
    backend,
    log: createLogger({ level: "error" }),
    tokenTtlMs: 60_000,
  });
  let base = "";

  beforeAll(async () => {
    base = (await server.start()).url;
  });
  afterAll(() => server.stop());

  describe("exec over SPDY", () => {
    it("carries stdin, stdout and stderr and reports a non-zero exit code as a v4 status", async () => {
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["echo-exit", "3"],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      expect(url).toMatch(new RegExp(`^${base}/exec/[A-Za-z0-9_-]{20,}$`));
      const r = await remoteCommand(url, {
        stdin: te.encode("hello from stdin\n".repeat(5000)),
        stdout: true,
        stderr: true,
      });
      expect(r.protocol).toBe("v4.channel.k8s.io");
      expect(td.decode(r.stdout)).toBe("hello from stdin\n".repeat(5000));
      expect(td.decode(r.stderr)).toBe("err");
      expect(r.exitCode).toBe(3);
      expect(JSON.parse(r.errorStream)).toEqual({
        metadata: {},
        status: "Failure",
        message: "command terminated with non-zero exit code: exit status 3",
        reason: "NonZeroExitCode",
        details: { causes: [{ reason: "ExitCode", message: "3" }] },
      });
      expect(backend.calls).toContain("exec c1 echo-exit 3 tty=false");
    });

    it("reports exit 0 as the Success status", async () => {
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["echo-exit", "0"],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const r = await remoteCommand(url, { stdin: te.encode("x"), stdout: true, stderr: true });
      expect(r.errorStream).toBe('{"metadata":{},"status":"Success"}');
      expect(r.exitCode).toBe(0);
      expect(td.decode(r.stdout)).toBe("x");
    });

    it("delivers TTY resize events to the backend, not those with a zero side (kubectl without a terminal sends 0x0)", async () => {
      backend.resizes = [];
      const url = server.getExecUrl({
        containerId: "c2",
        cmd: ["resize", "2"],
        tty: true,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      const r = await remoteCommand(url, {
        stdout: true,
        tty: true,
        resize: [
          { width: 0, height: 0 },
          { width: 80, height: 24 },
          { width: 100, height: 0 },
          { width: 132, height: 43 },
        ],
      });
      expect(r.exitCode).toBe(0);
      expect(backend.resizes).toEqual([{ width: 80, height: 24 }, { width: 132, height: 43 }]);
      expect(JSON.parse(td.decode(r.stdout))).toEqual(backend.resizes);
    });

    it("with v3 writes only an error text, and only on failure", async () => {
      const mk = (code: number) =>
        server.getExecUrl({
          containerId: "c1",
          cmd: ["echo-exit", String(code)],
          tty: false,
          stdin: false,
          stdout: true,
          stderr: true,
        });
      const ok = await remoteCommand(mk(0), {
        stdout: true,
        stderr: true,
        protocols: ["v3.channel.k8s.io"],
      });
      expect(ok.protocol).toBe("v3.channel.k8s.io");
      expect(ok.errorStream).toBe("");
      const bad = await remoteCommand(mk(5), {
        stdout: true,
        stderr: true,
        protocols: ["v3.channel.k8s.io"],
      });
      expect(bad.errorStream).toBe("command terminated with non-zero exit code: exit status 5");
    });

    it("turns a backend error into an InternalError status", async () => {
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["nope"],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      const r = await remoteCommand(url, { stdout: true });
      expect(r.status).toMatchObject({ status: "Failure", reason: "InternalError", code: 500 });
      expect(r.status?.message).toContain("no such command nope");
      expect(r.exitCode).toBe(-1);
    });

    it("attach reports Success when the backend returns", async () => {
      const url = server.getAttachUrl({
        containerId: "c3",
        tty: false,
        stdin: true,
        stdout: true,
        stderr: false,
      });
      const r = await remoteCommand(url, { stdin: te.encode("ignored"), stdout: true });
      expect(td.decode(r.stdout)).toBe("attached\n");
      expect(r.status?.status).toBe("Success");
    });
  });

  describe("tokens and HTTP", () => {
    it("answers 404 for an unknown token and for a token used once already", async () => {
      await expect(remoteCommand(`${base}/exec/doesnotexist`, { stdout: true })).rejects
        .toMatchObject({
          status: 404,
        });
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["echo-exit", "0"],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      expect((await remoteCommand(url, { stdout: true })).exitCode).toBe(0);
      const again = await remoteCommand(url, { stdout: true }).catch((e) => e);
      expect(again).toBeInstanceOf(UpgradeFailedError);
      expect(again.status).toBe(404);
    });

    it("answers 404 for a token of another kind and for an expired token", async () => {
      const pf = server.getPortForwardUrl({ podSandboxId: "p1" });
      const asExec = pf.replace("/portforward/", "/exec/");
      expect(
        (await rawRequest(asExec, [...spdyUpgrade, "X-Stream-Protocol-Version: v4.channel.k8s.io"]))
          .status,
      )
        .toBe(404);

      const short = new StreamingServer({
        backend,
        log: createLogger({ level: "error" }),
        tokenTtlMs: 1,
      });
      await short.start();
      try {
        const url = short.getExecUrl({
          containerId: "c1",
          cmd: ["echo-exit", "0"],
          tty: false,
          stdin: false,
          stdout: true,
          stderr: false,
        });
        await new Promise((r) => setTimeout(r, 20));
        const res = await rawRequest(url, [
          ...spdyUpgrade,
          "X-Stream-Protocol-Version: v4.channel.k8s.io",
        ]);
        expect(res.status).toBe(404);
      } finally {
        await short.stop();
      }
    });

    it("answers 403 when no offered protocol is supported, 400 without an upgrade", async () => {
      const mk = () =>
        server.getExecUrl({
          containerId: "c1",
          cmd: ["echo-exit", "0"],
          tty: false,
          stdin: false,
          stdout: true,
          stderr: false,
        });
      const forbidden = await rawRequest(mk(), [
        ...spdyUpgrade,
        "X-Stream-Protocol-Version: v9.channel.k8s.io",
      ]);
      expect(forbidden.status).toBe(403);
      expect(forbidden.body).toContain("v4.channel.k8s.io");
      expect((await rawRequest(mk(), [])).status).toBe(400);
      expect((await rawRequest(`${base}/other/path`, [])).status).toBe(404);
    });

    it("rejects requests the kubelet would reject", () => {
      expect(() =>
        server.getExecUrl({
          containerId: "c",
          cmd: ["sh"],
          tty: true,
          stdin: true,
          stdout: true,
          stderr: true,
        })
      ).toThrow(InvalidArgumentError);
      expect(() =>
        server.getExecUrl({
          containerId: "c",
          cmd: ["sh"],
          tty: false,
          stdin: false,
          stdout: false,
          stderr: false,
        })
      ).toThrow(/one of stdin, stdout, or stderr/);
      expect(() =>
        server.getExecUrl({
          containerId: "c",
          cmd: [],
          tty: false,
          stdin: false,
          stdout: true,
          stderr: false,
        })
      ).toThrow(/cmd/);
      expect(() => server.getPortForwardUrl({ podSandboxId: "" })).toThrow(InvalidArgumentError);
    });
  });

  describe("port-forward over SPDY", () => {
    it("pipes concurrent forwarded connections to the backend and reports failures", async () => {
      const pf = await openPortForward(server.getPortForwardUrl({ podSandboxId: "sandbox-1" }));
      try {
        const [a, b, refused] = await Promise.all([
          pf.forward(8080),
          pf.forward(9090),
          pf.forward(1),
        ]);
        const exchange = async (s: typeof a, text: string) => {
          const reading = new Response(s.readable).text();
          const w = s.writable.getWriter();
          await w.write(te.encode(text));
          await w.close();
          return [await reading, await s.error];
        };
        const [ra, rb] = await Promise.all([exchange(a, "ping-a"), exchange(b, "ping-b")]);
        expect(ra).toEqual(["8080:ping-a", ""]);
        expect(rb).toEqual(["9090:ping-b", ""]);
        expect(await refused.error).toBe(
          "error forwarding port 1 to pod sandbox sandbox-1: connection refused",
        );
        expect(backend.calls).toContain("portforward sandbox-1 8080");
      } finally {
        pf.close();
      }
    });
  });

  describe("WebSocket", () => {
    it("exec with v4.channel.k8s.io: channel-prefixed stdin, stdout, stderr and the status", async () => {
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["line-exit", "3"],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const ws = await wsOpen(url, "v4.channel.k8s.io");
      expect(ws.protocol).toBe("v4.channel.k8s.io");
      const msgs = wsMessages(ws);
      ws.send(new Uint8Array([0, ...te.encode("over websocket\n")]));
      const byChannel = new Map<number, string>();
      for (let m = await msgs.next(); m; m = await msgs.next()) {
        byChannel.set(m[0], (byChannel.get(m[0]) ?? "") + td.decode(m.subarray(1)));
      }
      expect(byChannel.get(1)).toBe("over websocket\n");
      expect(byChannel.get(2)).toBe("err");
      expect(JSON.parse(byChannel.get(3)!)).toMatchObject({
        status: "Failure",
        reason: "NonZeroExitCode",
        details: { causes: [{ reason: "ExitCode", message: "3" }] },
      });
    });

    it("exec with v5.channel.k8s.io: the close signal ends stdin", async () => {
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["echo-exit", "0"],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const ws = await wsOpen(url, "v5.channel.k8s.io");
      const msgs = wsMessages(ws);
      ws.send(new Uint8Array([0, ...te.encode("a")]));
      ws.send(new Uint8Array([0, ...te.encode("b")]));
      ws.send(new Uint8Array([255, 0]));
      let out = "", status = "";
      for (let m = await msgs.next(); m; m = await msgs.next()) {
        if (m[0] === 1) out += td.decode(m.subarray(1));
        if (m[0] === 3) status += td.decode(m.subarray(1));
      }
      expect(out).toBe("ab");
      expect(status).toBe('{"metadata":{},"status":"Success"}');
    });

    it("port-forward: each channel starts with the port, then data is echoed", async () => {
      const url = server.getPortForwardUrl({ podSandboxId: "sandbox-2" }) + "?port=8080";
      const ws = await wsOpen(url, "v4.channel.k8s.io");
      const msgs = wsMessages(ws);
      const first = [await msgs.next(), await msgs.next()];
      expect(first).toEqual([new Uint8Array([0, 0x90, 0x1f]), new Uint8Array([1, 0x90, 0x1f])]);
      ws.send(new Uint8Array([0, ...te.encode("hello")]));
      const reply = await msgs.next();
      expect(reply![0]).toBe(0);
      expect(td.decode(reply!.subarray(1))).toBe("8080:hello");
      ws.close();
      for (let m = await msgs.next(); m; m = await msgs.next()) { /* drain to close */ }
    });

    it("refuses an unsupported subprotocol", async () => {
      const url = server.getExecUrl({
        containerId: "c1",
        cmd: ["echo-exit", "0"],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      await expect(wsOpen(url, "v9.channel.k8s.io")).rejects.toThrow();
    });
  });

  it("stop() closes live sessions", async () => {
    const other = new StreamingServer({ backend, log: createLogger({ level: "error" }) });
    await other.start();
    const pf = await openPortForward(other.getPortForwardUrl({ podSandboxId: "p" }));
    await pf.forward(8080);
    await other.stop();
    await pf.conn.closed;
    expect(pf.conn.isClosed).toBe(true);
  });
});
