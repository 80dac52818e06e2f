/**
 * The streaming server against the real client-go 1.26 (remotecommand + portforward over
 * SPDY/moby-spdystream), via testdata/clientgo/main.go. Runs when CLIENTGO_INTEROP_BIN names
 * the built helper (see that file for the two build commands); skipped otherwise because the
 * repository does not vendor client-go.
 */
import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { StreamingServer } from "./server.ts";
import type { StreamingBackend, TerminalSize } from "./backend.ts";
import { createLogger } from "../log/logger.ts";

const bin = Deno.env.get("CLIENTGO_INTEROP_BIN") ?? "";
const te = new TextEncoder();

async function put(w: WritableStream<Uint8Array> | undefined, text: string) {
  if (!w) return;
  const writer = w.getWriter();
  await writer.write(te.encode(text));
  writer.releaseLock();
}

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command(bin, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

describe.skipIf(bin === "", "set CLIENTGO_INTEROP_BIN to a built testdata/clientgo helper")(
  "streaming server with client-go",
  () => {
    const sizes: TerminalSize[] = [];
    const backend: StreamingBackend = {
      async exec(o) {
        if (o.tty) {
          for await (const s of o.resize!) {
            sizes.push(s);
            if (sizes.length === 2) break;
          }
          await put(o.stdout, "tty ok");
          return 0;
        }
        if (o.stdin && o.stdout) await o.stdin.pipeTo(o.stdout, { preventClose: true });
        await put(o.stderr, "err");
        return 3;
      },
      async attach() {},
      portForward: (o) => o.stream.readable.pipeTo(o.stream.writable),
    };
    const server = new StreamingServer({ backend, log: createLogger({ level: "error" }) });
    beforeAll(async () => {
      await server.start();
    });
    afterAll(() => server.stop());

    it("exec: stdin echoed, stderr, exit code 3 from the v4 status", async () => {
      const url = server.getExecUrl({
        containerId: "c",
        cmd: ["x"],
        tty: false,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const out = await run(["exec", url]);
      expect(out).toContain(`stdout="client-go stdin\\n" stderr="err"`);
      expect(out).toContain("exit status 3");
    });

    it("tty exec: terminal sizes arrive", async () => {
      const url = server.getExecUrl({
        containerId: "c",
        cmd: ["x"],
        tty: true,
        stdin: false,
        stdout: true,
        stderr: false,
      });
      const out = await run(["tty", url]);
      expect(out).toContain(`stdout="tty ok" stderr="" err=<nil>`);
      expect(sizes).toEqual([{ width: 80, height: 24 }, { width: 160, height: 48 }]);
    });

    it("port-forward: a local connection through client-go is echoed", async () => {
      const url = server.getPortForwardUrl({ podSandboxId: "p" });
      const child = new Deno.Command(bin, { args: ["pf", url], stdout: "piped" }).spawn();
      try {
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        while (!/LOCAL (\d+)/.test(text)) {
          const r = await reader.read();
          if (r.done) throw new Error(`helper exited: ${text}`);
          text += r.value;
        }
        reader.releaseLock();
        const port = Number(/LOCAL (\d+)/.exec(text)![1]);
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        await c.write(te.encode("through client-go"));
        await c.closeWrite();
        expect(await new Response(c.readable).text()).toBe("through client-go");
      } finally {
        child.kill();
        await child.status;
        await child.stdout.cancel().catch(() => {});
      }
    });
  },
);
