import { describe, expect, it } from "../src/testing/bdd.ts";
import { close } from "./fs.ts";
import {
  acceptAsync,
  AF_UNIX,
  bindUnix,
  connectUnix,
  listen,
  readAsync,
  recvFdAsync,
  sendDatagram,
  sendFd,
  SHUT_WR,
  shutdown,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_SEQPACKET,
  SOCK_STREAM,
  socket,
  writeAsync,
} from "./socket.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function pair(
  type: number,
): Promise<{ a: number; b: number; listener: number; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "k8sc-sock-" });
  const path = `${dir}/s`;
  const listener = socket(AF_UNIX, type | SOCK_CLOEXEC);
  bindUnix(listener, path);
  listen(listener, 4);
  const a = socket(AF_UNIX, type | SOCK_CLOEXEC);
  connectUnix(a, path);
  const b = await acceptAsync(listener, { signal: AbortSignal.timeout(5000) });
  return { a, b, listener, dir };
}

async function cleanup(p: { a: number; b: number; listener: number; dir: string }) {
  for (const fd of [p.a, p.b, p.listener]) close(fd);
  await Deno.remove(p.dir, { recursive: true });
}

describe("socket", () => {
  it("a seqpacket pair keeps message boundaries and shutdown ends the stream", async () => {
    const p = await pair(SOCK_SEQPACKET);
    try {
      await writeAsync(p.a, enc.encode("\x02hello"));
      await writeAsync(p.a, enc.encode("\x03world!"));
      const buf = new Uint8Array(8193);
      const n1 = await readAsync(p.b, buf);
      expect(dec.decode(buf.subarray(0, n1))).toBe("\x02hello");
      const n2 = await readAsync(p.b, buf);
      expect(dec.decode(buf.subarray(0, n2))).toBe("\x03world!");
      // The other way, with a read already waiting before the write.
      const pending = readAsync(p.a, buf);
      await writeAsync(p.b, enc.encode("stdin"));
      expect(dec.decode(buf.subarray(0, await pending))).toBe("stdin");
      shutdown(p.a, SHUT_WR);
      expect(await readAsync(p.b, buf)).toBe(0);
    } finally {
      await cleanup(p);
    }
  });

  it("connect to a missing path fails with ENOENT", () => {
    const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC);
    try {
      let code = "";
      try {
        connectUnix(fd, "/nonexistent/k8sc.sock");
      } catch (e) {
        code = (e as { code: string }).code;
      }
      expect(code).toBe("ENOENT");
    } finally {
      close(fd);
    }
  });

  it("passes a descriptor with SCM_RIGHTS", async () => {
    const p = await pair(SOCK_STREAM);
    const file = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(file, "through the socket");
      using f = await Deno.open(file);
      // Deno hides the fd of its files: find ours through /proc/self/fd by path.
      let fd = -1;
      for (const e of Deno.readDirSync("/proc/self/fd")) {
        try {
          if (Deno.readLinkSync(`/proc/self/fd/${e.name}`) === file) fd = Number(e.name);
        } catch { /* raced */ }
      }
      expect(fd).toBeGreaterThan(2);
      void f;
      sendFd(p.a, fd, enc.encode("/dev/pts/9"));
      const got = await recvFdAsync(p.b, { signal: AbortSignal.timeout(5000) });
      expect(dec.decode(got.data)).toBe("/dev/pts/9");
      expect(got.fd).toBeDefined();
      expect(got.fd).not.toBe(fd);
      const buf = new Uint8Array(64);
      const n = await readAsync(got.fd!, buf);
      expect(dec.decode(buf.subarray(0, n))).toBe("through the socket");
      close(got.fd!);
    } finally {
      await Deno.remove(file);
      await cleanup(p);
    }
  });

  for (const abstract of [false, true]) {
    it(`sends a datagram to ${abstract ? "an abstract" : "a path"} socket (sd_notify's transport)`, async () => {
      const dir = await Deno.makeTempDir({ prefix: "k8sc-dgram-" });
      const path = abstract ? `@k8sc-test-${Deno.pid}-${Math.random()}` : `${dir}/notify`;
      const rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
      try {
        bindUnix(rx, path);
        sendDatagram(path, enc.encode("READY=1\nSTATUS=serving"));
        const buf = new Uint8Array(256);
        const n = await readAsync(rx, buf, { signal: AbortSignal.timeout(5000) });
        expect(dec.decode(buf.subarray(0, n))).toBe("READY=1\nSTATUS=serving");
        if (!abstract) expect(Deno.statSync(path).isSocket).toBe(true);
      } finally {
        close(rx);
        await Deno.remove(dir, { recursive: true });
      }
    });
  }

  it("names the socket a datagram could not reach", () => {
    expect(() => sendDatagram("/nonexistent/notify", new Uint8Array(1))).toThrow(
      /connect.*\/nonexistent\/notify/,
    );
  });
});
