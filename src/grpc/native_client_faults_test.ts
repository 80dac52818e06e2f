/**
 * The native client against servers that break HTTP/2 or gRPC: a scripted server on a real
 * unix socket answers each call by its path with frames a real server would never send. Each
 * call must end with a status that names what was wrong (not hang), a connection error must be
 * answered with GOAWAY, and a stream error must leave the connection serving.
 */
import { afterAll, beforeAll, describe, emulator, expect, it } from "../testing/bdd.ts";
import { HpackDecoder, HpackEncoder } from "./hpack.ts";
import {
  encodeFrame,
  encodeGoaway,
  encodeSettings,
  FLAG,
  FRAME,
  type Frame,
  FrameDecoder,
  H2_ERROR,
  PREFACE,
  readU32,
  SETTING,
  u32,
} from "./h2_frames.ts";
import { encodeMessage } from "./grpc_message.ts";
import { CallStatusError, NativeChannel, STATUS } from "./native_client.ts";
import type { RpcMethod } from "./rpc_service.ts";

const SLOW = emulator ? 20 : 1;
const enc = new TextEncoder();

function method(path: string): RpcMethod<string, string> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (v) => enc.encode(v),
    requestDeserialize: (b) => new TextDecoder().decode(b),
    responseSerialize: (v) => enc.encode(v),
    responseDeserialize: (b) => new TextDecoder().decode(b),
  };
}

/** What the scripted server does for one call: frames to write, given the stream id. */
type Script = (id: number, h: { headers: Uint8Array; trailers: Uint8Array }) => Uint8Array[];

const ok = (id: number, h: { headers: Uint8Array; trailers: Uint8Array }, body = "pong") => [
  encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS, id, h.headers),
  encodeFrame(FRAME.DATA, 0, id, encodeMessage(enc.encode(body))),
  encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, h.trailers),
];

const SCRIPTS: Record<string, Script> = {
  "/t.T/Ok": (id, h) => ok(id, h),
  "/t.T/Reset": (id) => [encodeFrame(FRAME.RST_STREAM, 0, id, u32(H2_ERROR.INTERNAL_ERROR))],
  // A header block that never ends: CONTINUATION after CONTINUATION, 16 KiB each.
  "/t.T/EndlessHeaders": (id) => [
    encodeFrame(FRAME.HEADERS, 0, id, new Uint8Array(16384)),
    ...Array.from(
      { length: 80 },
      () => encodeFrame(FRAME.CONTINUATION, 0, id, new Uint8Array(16384)),
    ),
  ],
  "/t.T/BadPadding": (id, h) => [
    encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS, id, h.headers),
    encodeFrame(FRAME.DATA, FLAG.PADDED, id, new Uint8Array([200, 1, 2, 3])),
  ],
  "/t.T/IdleStream": (_id, h) => [encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS, 99, h.headers)],
  "/t.T/BadHpack": (id) => [
    encodeFrame(
      FRAME.HEADERS,
      FLAG.END_HEADERS,
      id,
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f]),
    ),
  ],
  // 5 MiB in one message, ignoring the 4 MiB stream window the client gave.
  "/t.T/PastWindow": (id, h) => {
    const msg = encodeMessage(new Uint8Array(5 << 20));
    const out = [encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS, id, h.headers)];
    for (let at = 0; at < msg.length; at += 16384) {
      out.push(encodeFrame(FRAME.DATA, 0, id, msg.subarray(at, at + 16384)));
    }
    return out;
  },
  "/t.T/PrioritySize": (id) => [encodeFrame(FRAME.PRIORITY, 0, id, new Uint8Array(3))],
  "/t.T/Push": (id) => [encodeFrame(FRAME.PUSH_PROMISE, FLAG.END_HEADERS, id, new Uint8Array(4))],
  "/t.T/GoAway": () => [encodeGoaway(0, H2_ERROR.NO_ERROR, "restarting")],
  // Never answers, and ignores grpc-timeout: only the client's own deadline ends the call.
  "/t.T/Silent": () => [],
  "/t.T/Drop": (id, h) => [encodeFrame(FRAME.HEADERS, FLAG.END_HEADERS, id, h.headers)],
  "/t.T/NoStatus": (id) => [
    encodeFrame(
      FRAME.HEADERS,
      FLAG.END_HEADERS | FLAG.END_STREAM,
      id,
      new HpackEncoder().encode([{ name: ":status", value: "502" }]),
    ),
  ],
};
const DROP_AFTER = new Set(["/t.T/Drop"]);

/** One scripted connection: what it saw from the client. */
interface Seen {
  goaway?: { code: number; debug: string };
  resets: { id: number; code: number }[];
}

class ScriptedServer {
  readonly listener: Deno.Listener;
  readonly seen: Seen[] = [];
  /** Bytes sent instead of HTTP/2 when set (an HTTP/1 server on the socket). */
  garbage: Uint8Array | undefined;

  constructor(readonly path: string) {
    this.listener = Deno.listen({ transport: "unix", path });
    this.#accept();
  }

  async #accept() {
    for await (const conn of this.listener) this.#serve(conn).catch(() => {});
  }

  async #serve(conn: Deno.Conn) {
    const seen: Seen = { resets: [] };
    this.seen.push(seen);
    if (this.garbage) {
      await conn.write(this.garbage);
      return;
    }
    const hIn = new HpackDecoder();
    const hOut = new HpackEncoder();
    const frames = new FrameDecoder(1 << 20);
    // Writes go on beside the reads, so a GOAWAY is seen while a long answer is still going out.
    let writing = Promise.resolve();
    const write = (parts: Uint8Array[]) => {
      writing = writing.then(async () => {
        for (const p of parts) await conn.write(p);
      }).catch(() => {});
      return writing;
    };
    await write([encodeSettings([[SETTING.MAX_FRAME_SIZE, 16384]])]);
    const buf = new Uint8Array(65536);
    let preface = PREFACE.length;
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      let chunk = buf.subarray(0, n);
      if (preface > 0) {
        const k = Math.min(preface, chunk.length);
        preface -= k;
        chunk = chunk.subarray(k);
      }
      // Copied out of the read buffer: answering awaits, and the next read reuses the buffer.
      const got: Frame[] = [];
      frames.push(chunk, (f) => {
        got.push({ ...f, payload: f.payload.slice() });
      });
      for (const f of got) {
        if (f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK)) {
          write([encodeFrame(FRAME.SETTINGS, FLAG.ACK, 0)]);
        } else if (f.type === FRAME.GOAWAY) {
          seen.goaway = {
            code: readU32(f.payload, 4),
            debug: new TextDecoder().decode(f.payload.subarray(8)),
          };
        } else if (f.type === FRAME.RST_STREAM) {
          seen.resets.push({ id: f.streamId, code: readU32(f.payload, 0) });
        } else if (f.type === FRAME.HEADERS) {
          const path = hIn.decode(f.payload).find((h) => h.name === ":path")?.value ?? "";
          const headers = hOut.encode([
            { name: ":status", value: "200" },
            { name: "content-type", value: "application/grpc" },
          ]);
          const h = { headers, trailers: hOut.encode([{ name: "grpc-status", value: "0" }]) };
          const done = write((SCRIPTS[path] ?? SCRIPTS["/t.T/Ok"])(f.streamId, h));
          if (DROP_AFTER.has(path)) {
            await done;
            conn.close();
            return;
          }
        }
      }
    }
    try {
      conn.close();
    } catch { /* closed */ }
  }

  close() {
    this.listener.close();
  }
}

/** The call's error, or a failure if it does not end within the bound. */
async function failure(p: Promise<unknown>): Promise<CallStatusError> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the call did not end")), 5000 * SLOW);
  });
  try {
    await Promise.race([p, bound]);
  } catch (e) {
    return e as CallStatusError;
  } finally {
    clearTimeout(timer);
  }
  throw new Error("the call succeeded");
}

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 3000 * SLOW;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

describe("NativeChannel against a server that breaks the protocol", () => {
  let dir = "";
  let srv: ScriptedServer;
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-h2-faults-" });
    srv = new ScriptedServer(`${dir}/api.sock`);
  });
  afterAll(async () => {
    srv.close();
    await Deno.remove(dir, { recursive: true });
  });

  /** A fresh connection, one well-behaved call on it first (the scripted server works). */
  async function channel(): Promise<NativeChannel> {
    const ch = await NativeChannel.connect(srv.path);
    expect(await ch.unary(method("/t.T/Ok"), "ping")).toBe("pong");
    return ch;
  }

  const connectionErrors: [string, RegExp, number][] = [
    ["/t.T/EndlessHeaders", /header block past 1048576 octets/, H2_ERROR.ENHANCE_YOUR_CALM],
    ["/t.T/BadPadding", /padding exceeds the frame payload/, H2_ERROR.PROTOCOL_ERROR],
    ["/t.T/IdleStream", /HEADERS on an idle stream/, H2_ERROR.PROTOCOL_ERROR],
    ["/t.T/BadHpack", /HTTP\/2 protocol error from the server: /, H2_ERROR.COMPRESSION_ERROR],
    ["/t.T/Push", /PUSH_PROMISE though push is off/, H2_ERROR.PROTOCOL_ERROR],
  ];
  for (const [path, message, code] of connectionErrors) {
    it(`${path.split("/").pop()}: the call fails INTERNAL naming it, the server gets GOAWAY ${code}`, async () => {
      const ch = await channel();
      const conn = srv.seen.at(-1)!;
      const e = await failure(ch.unary(method(path), "x"));
      expect(e).toBeInstanceOf(CallStatusError);
      expect({ code: e.code, details: e.details }).toEqual({
        code: STATUS.INTERNAL,
        details: expect.stringMatching(message),
      });
      await until(() => conn.goaway !== undefined);
      expect(conn.goaway?.code).toBe(code);
      // The connection is gone: later calls fail at once, they do not hang.
      expect((await failure(ch.unary(method("/t.T/Ok"), "y"))).code).toBe(STATUS.INTERNAL);
      ch.close();
    });
  }

  it("a reset stream fails that call only; the connection goes on serving", async () => {
    const ch = await channel();
    const e = await failure(ch.unary(method("/t.T/Reset"), "x"));
    expect(e.code).toBe(STATUS.INTERNAL);
    expect(e.details).toMatch(/the server reset the stream \(HTTP\/2 error 2\)/);
    expect(await ch.unary(method("/t.T/Ok"), "again")).toBe("pong");
    ch.close();
  });

  it("DATA past the stream window: the client resets that stream, the connection goes on", async () => {
    const ch = await channel();
    const conn = srv.seen.at(-1)!;
    const e = await failure(ch.unary(method("/t.T/PastWindow"), "x"));
    expect(e.code).toBe(STATUS.INTERNAL);
    expect(e.details).toMatch(/DATA past the stream window/);
    await until(() => conn.resets.length > 0);
    expect(conn.resets[0].code).toBe(H2_ERROR.FLOW_CONTROL_ERROR);
    expect(await ch.unary(method("/t.T/Ok"), "again")).toBe("pong");
    ch.close();
  });

  it("a PRIORITY frame of the wrong size is a stream error: RST_STREAM, the rest serves", async () => {
    const ch = await channel();
    const conn = srv.seen.at(-1)!;
    const e = await failure(ch.unary(method("/t.T/PrioritySize"), "x"));
    expect(e.details).toMatch(/PRIORITY of the wrong size/);
    await until(() => conn.resets.length > 0);
    expect(conn.resets[0].code).toBe(H2_ERROR.FRAME_SIZE_ERROR);
    expect(await ch.unary(method("/t.T/Ok"), "again")).toBe("pong");
    ch.close();
  });

  it("GOAWAY ends the calls it did not take UNAVAILABLE, and new calls fail at once", async () => {
    const ch = await channel();
    const e = await failure(ch.unary(method("/t.T/GoAway"), "x"));
    expect(e.code).toBe(STATUS.UNAVAILABLE);
    expect(e.details).toMatch(/going away/);
    const again = await failure(ch.unary(method("/t.T/Ok"), "y"));
    expect(again.code).toBe(STATUS.UNAVAILABLE);
    ch.close();
  });

  it("a connection dropped mid-response ends the call UNAVAILABLE", async () => {
    const ch = await channel();
    const e = await failure(ch.unary(method("/t.T/Drop"), "x"));
    expect(e.code).toBe(STATUS.UNAVAILABLE);
    expect(e.details).toMatch(/closed the connection|connection lost/);
    ch.close();
  });

  it("a server that ignores grpc-timeout: the client's deadline ends the call and resets it", async () => {
    const ch = await channel();
    const t0 = performance.now();
    const e = await failure(ch.unary(method("/t.T/Silent"), "x", { timeoutMs: 150 }));
    const took = performance.now() - t0;
    expect(e.code).toBe(STATUS.DEADLINE_EXCEEDED);
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(5_000 * SLOW);
    // The connection goes on serving, and the server was told the call is off.
    expect(await ch.unary(method("/t.T/Ok"), "ping")).toBe("pong");
    const resets = srv.seen.flatMap((s) => s.resets);
    expect(resets.some((r) => r.code === H2_ERROR.CANCEL)).toBe(true);
    ch.close();
  });

  it("a response without grpc-status is UNKNOWN and names the HTTP status", async () => {
    const ch = await channel();
    const e = await failure(ch.unary(method("/t.T/NoStatus"), "x"));
    expect(e.code).toBe(STATUS.UNKNOWN);
    expect(e.details).toMatch(/no grpc-status in the response \(HTTP status 502\)/);
    ch.close();
  });

  it("a socket that does not speak HTTP/2 fails the call saying so", async () => {
    srv.garbage = enc.encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    try {
      const ch = await NativeChannel.connect(srv.path);
      const e = await failure(ch.unary(method("/t.T/Ok"), "x"));
      expect(e.code).toBe(STATUS.INTERNAL);
      expect(e.details).toMatch(/did not start with HTTP\/2 SETTINGS \(not a gRPC socket\?\)/);
      ch.close();
    } finally {
      srv.garbage = undefined;
    }
  });
});
