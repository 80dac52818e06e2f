/**
 * The native server's HTTP/2 connection driven by raw bytes over a real unix socket: the
 * preface, SETTINGS and PING, flow control against a reader that withholds WINDOW_UPDATE, the
 * RFC's connection and stream errors, and other connections carrying on after one fails.
 */
import { afterAll, beforeAll, describe, emulator, expect, it } from "../testing/bdd.ts";

// qemu-user runs this 10–50× slower than natively: waits scale, what they wait for does not.
const SLOW = emulator ? 20 : 1;
import { type CallContext, GrpcServer } from "./server.ts";
import { createLogger } from "../log/logger.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { HpackDecoder, HpackEncoder } from "./hpack.ts";
import {
  decodeSettings,
  encodeFrame,
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
import { checkRequestHeaders } from "./h2_connection.ts";

const bytes = (b: Uint8Array) => b;
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: bytes,
  requestDeserialize: (b: Uint8Array) => new Uint8Array(b),
  responseSerialize: bytes,
  responseDeserialize: (b: Uint8Array) => new Uint8Array(b),
  originalName: path,
});
const SERVICE = {
  echo: method("/t.T/Echo", false),
  hang: method("/t.T/Hang", false),
  flood: method("/t.T/Flood", true),
};

interface Got extends Frame {
  payload: Uint8Array;
}

/** A raw HTTP/2 client on a unix socket: sends bytes, collects the frames that come back. */
class RawClient {
  readonly frames: Got[] = [];
  closed = false;
  readonly #conn: Deno.UnixConn;
  readonly #enc = new HpackEncoder();
  readonly dec = new HpackDecoder();
  #waiters: (() => void)[] = [];

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#read();
  }

  static async open(path: string, settings: [number, number][] = [], preface = true) {
    const c = new RawClient(await Deno.connect({ transport: "unix", path }));
    if (preface) await c.send(PREFACE, encodeSettings(settings));
    return c;
  }

  async #read() {
    const d = new FrameDecoder(1 << 24);
    const buf = new Uint8Array(1 << 16);
    try {
      while (true) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        d.push(buf.subarray(0, n), (f) => {
          this.frames.push({ ...f, payload: f.payload.slice() });
        });
        this.#wake();
      }
    } catch { /* reset */ }
    this.closed = true;
    this.#wake();
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  async send(...parts: Uint8Array[]) {
    try {
      for (const p of parts) await this.#conn.write(p);
    } catch {
      // the server closed first: what it sent back is in `frames`
    }
  }

  headers(
    id: number,
    path: string,
    flags: number = FLAG.END_HEADERS,
    extra: [string, string][] = [],
  ) {
    const block = this.#enc.encode([
      { name: ":method", value: "POST" },
      { name: ":scheme", value: "http" },
      { name: ":path", value: path },
      // What grpc-go sends when it dials a unix socket.
      { name: ":authority", value: "/run/some/socket.sock" },
      { name: "content-type", value: "application/grpc" },
      { name: "te", value: "trailers" },
      ...extra.map(([name, value]) => ({ name, value })),
    ]);
    return encodeFrame(FRAME.HEADERS, flags, id, block);
  }

  /** Waits until a frame matching `pred` has arrived (or the connection closed). */
  async until(pred: (f: Got) => boolean, ms = 3000): Promise<Got | undefined> {
    const end = Date.now() + ms * SLOW;
    while (true) {
      const f = this.frames.find(pred);
      if (f || this.closed || Date.now() > end) return f;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  async waitClosed(ms = 3000) {
    const end = Date.now() + ms * SLOW;
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  goawayCode(): number | undefined {
    const g = this.frames.find((f) => f.type === FRAME.GOAWAY);
    return g ? readU32(g.payload, 4) : undefined;
  }

  close() {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

describe("H2Connection (native server) on raw bytes", () => {
  let dir = "", socket = "";
  let srv: GrpcServer;
  let produced = 0;
  const lines: string[] = [];

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-h2-conn" });
    socket = `${dir}/s.sock`;
    srv = new GrpcServer({
      log: createLogger({ level: "debug", sink: (l) => lines.push(l) }),
      metrics: new MetricsRegistry(),
      implementation: "native",
      maxConcurrentStreams: 4,
    });
    srv.add(SERVICE, {
      echo: (req: Uint8Array) => Promise.resolve(req),
      hang: (_r: never, ctx: CallContext) =>
        new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason))),
      flood: async function* () {
        for (let i = 0; i < 1000; i++) {
          produced++;
          yield new Uint8Array(16 << 10);
        }
      },
    } as never);
    await srv.listen(socket);
  });

  afterAll(async () => {
    await srv.shutdown(500);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  const echoOk = async () => {
    const c = await RawClient.open(socket);
    await c.send(
      c.headers(1, "/t.T/Echo"),
      encodeFrame(FRAME.DATA, FLAG.END_STREAM, 1, encodeMessage(new Uint8Array([42]))),
    );
    const t = await c.until((f) => f.type === FRAME.HEADERS && (f.flags & FLAG.END_STREAM) !== 0);
    c.close();
    return t !== undefined;
  };

  it("sends SETTINGS (MAX_CONCURRENT_STREAMS), ACKs the client's, answers PING", async () => {
    const c = await RawClient.open(socket, [[SETTING.INITIAL_WINDOW_SIZE, 1 << 20]]);
    const s = await c.until((f) => f.type === FRAME.SETTINGS && f.flags === 0);
    expect(decodeSettings(s!.payload)).toContainEqual([SETTING.MAX_CONCURRENT_STREAMS, 4]);
    expect(await c.until((f) => f.type === FRAME.SETTINGS && f.flags === FLAG.ACK)).toBeDefined();
    await c.send(encodeFrame(FRAME.PING, 0, 0, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])));
    const p = await c.until((f) => f.type === FRAME.PING);
    expect([p?.flags, [...p!.payload]]).toEqual([FLAG.ACK, [1, 2, 3, 4, 5, 6, 7, 8]]);
    c.close();
  });

  it("answers a call whose headers come in HEADERS + CONTINUATION, any :authority", async () => {
    const c = await RawClient.open(socket);
    const h = c.headers(1, "/t.T/Echo", 0);
    const block = h.subarray(9);
    await c.send(
      encodeFrame(FRAME.HEADERS, 0, 1, block.subarray(0, 10)),
      encodeFrame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(10)),
      encodeFrame(FRAME.DATA, FLAG.END_STREAM, 1, encodeMessage(new Uint8Array([7, 8]))),
    );
    const t = await c.until((f) => f.type === FRAME.HEADERS && (f.flags & FLAG.END_STREAM) !== 0);
    expect(t).toBeDefined();
    const heads = c.frames.filter((f) => f.type === FRAME.HEADERS).map((f) =>
      c.dec.decode(f.payload)
    );
    expect(heads[0]).toContainEqual({ name: ":status", value: "200" });
    expect(heads[1]).toContainEqual({ name: "grpc-status", value: "0" });
    const data = c.frames.find((f) => f.type === FRAME.DATA);
    expect([...data!.payload]).toEqual([0, 0, 0, 0, 2, 7, 8]);
    c.close();
  });

  it("never sends past the client's windows: a stalled reader stalls the producer", async () => {
    produced = 0;
    // A 16 KiB stream window; the connection window stays the default 65535.
    const c = await RawClient.open(socket, [[SETTING.INITIAL_WINDOW_SIZE, 16384]]);
    await c.send(
      c.headers(1, "/t.T/Flood"),
      encodeFrame(FRAME.DATA, FLAG.END_STREAM, 1, encodeMessage(new Uint8Array())),
    );
    const sent = () =>
      c.frames.filter((f) => f.type === FRAME.DATA).reduce((n, f) => n + f.payload.length, 0);
    // Waits for `n` bytes to have arrived, then a while longer: no byte more may follow.
    const settled = async (n: number) => {
      const end = Date.now() + 5000 * SLOW;
      while (sent() < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200 * SLOW));
      return sent();
    };
    expect(await settled(16384)).toBe(16384);
    // 1000 messages were asked for; the producer waits on the window, not buffering them all.
    expect(produced).toBeLessThan(200);
    await c.send(encodeFrame(FRAME.WINDOW_UPDATE, 0, 1, u32(20000)));
    expect(await settled(36384)).toBe(36384);
    // Past the connection window (65535) nothing more, whatever the stream window says.
    await c.send(encodeFrame(FRAME.WINDOW_UPDATE, 0, 1, u32(1 << 30)));
    expect(await settled(65535)).toBe(65535);
    await c.send(encodeFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(1 << 30)));
    const end = await c.until(
      (f) => f.type === FRAME.HEADERS && (f.flags & FLAG.END_STREAM) !== 0,
      10_000,
    );
    expect(end).toBeDefined();
    expect(sent()).toBe(1000 * ((16 << 10) + 5));
    c.close();
  });

  it("refuses streams past MAX_CONCURRENT_STREAMS, cancels on RST_STREAM", async () => {
    const c = await RawClient.open(socket);
    for (const id of [1, 3, 5, 7, 9]) await c.send(c.headers(id, "/t.T/Hang"));
    const rst = await c.until((f) => f.type === FRAME.RST_STREAM);
    expect([rst?.streamId, readU32(rst!.payload, 0)]).toEqual([9, H2_ERROR.REFUSED_STREAM]);
    await c.send(encodeFrame(FRAME.RST_STREAM, 0, 1, u32(H2_ERROR.CANCEL)));
    // The slot is free again.
    await c.send(
      c.headers(11, "/t.T/Echo"),
      encodeFrame(FRAME.DATA, FLAG.END_STREAM, 11, encodeMessage(new Uint8Array([1]))),
    );
    expect(
      await c.until((f) =>
        f.type === FRAME.HEADERS && f.streamId === 11 && (f.flags & FLAG.END_STREAM) !== 0
      ),
    ).toBeDefined();
    c.close();
  });

  it("answers a grpc-timeout with DEADLINE_EXCEEDED", async () => {
    const c = await RawClient.open(socket);
    await c.send(
      c.headers(1, "/t.T/Hang", FLAG.END_HEADERS, [["grpc-timeout", "100m"]]),
      encodeFrame(FRAME.DATA, FLAG.END_STREAM, 1, encodeMessage(new Uint8Array())),
    );
    const t = await c.until((f) => f.type === FRAME.HEADERS);
    expect(c.dec.decode(t!.payload)).toContainEqual({ name: "grpc-status", value: "4" });
    c.close();
  });

  const connectionErrors: [string, (c: RawClient) => Uint8Array[], number][] = [
    [
      "bad HPACK",
      () => [
        encodeFrame(
          FRAME.HEADERS,
          FLAG.END_HEADERS,
          1,
          new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f]),
        ),
      ],
      H2_ERROR.COMPRESSION_ERROR,
    ],
    [
      "DATA on an idle stream",
      () => [encodeFrame(FRAME.DATA, 0, 5, new Uint8Array(3))],
      H2_ERROR.PROTOCOL_ERROR,
    ],
    [
      "an oversize frame",
      () => [encodeFrame(FRAME.DATA, 0, 1, new Uint8Array(20000))],
      H2_ERROR.FRAME_SIZE_ERROR,
    ],
    [
      "a PING of 7 octets",
      () => [encodeFrame(FRAME.PING, 0, 0, new Uint8Array(7))],
      H2_ERROR.FRAME_SIZE_ERROR,
    ],
    ["an even stream id", (c) => [c.headers(2, "/t.T/Echo")], H2_ERROR.PROTOCOL_ERROR],
    [
      "a header block interrupted",
      (c) => [c.headers(1, "/t.T/Echo", 0), encodeFrame(FRAME.PING, 0, 0, new Uint8Array(8))],
      H2_ERROR.PROTOCOL_ERROR,
    ],
    [
      "a WINDOW_UPDATE overflowing the connection window",
      () => [encodeFrame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))],
      H2_ERROR.FLOW_CONTROL_ERROR,
    ],
    [
      "SETTINGS of 5 octets",
      () => [encodeFrame(FRAME.SETTINGS, 0, 0, new Uint8Array(5))],
      H2_ERROR.FRAME_SIZE_ERROR,
    ],
    [
      "a PUSH_PROMISE",
      () => [encodeFrame(FRAME.PUSH_PROMISE, FLAG.END_HEADERS, 1, new Uint8Array(4))],
      H2_ERROR.PROTOCOL_ERROR,
    ],
  ];
  for (const [what, frames, code] of connectionErrors) {
    it(`answers ${what} with GOAWAY and closes; others are served`, async () => {
      const c = await RawClient.open(socket);
      await c.send(...frames(c));
      expect(await c.waitClosed()).toBe(true);
      expect(c.goawayCode()).toBe(code);
      expect(await echoOk()).toBe(true);
    });
  }

  it("answers a malformed request with RST_STREAM PROTOCOL_ERROR, the connection stays", async () => {
    const c = await RawClient.open(socket);
    await c.send(c.headers(1, "/t.T/Echo", FLAG.END_HEADERS, [["connection", "close"]]));
    const rst = await c.until((f) => f.type === FRAME.RST_STREAM);
    expect(readU32(rst!.payload, 0)).toBe(H2_ERROR.PROTOCOL_ERROR);
    await c.send(
      c.headers(3, "/t.T/Echo"),
      encodeFrame(FRAME.DATA, FLAG.END_STREAM, 3, encodeMessage(new Uint8Array([1]))),
    );
    expect(
      await c.until((f) =>
        f.type === FRAME.HEADERS && f.streamId === 3 && (f.flags & FLAG.END_STREAM) !== 0
      ),
    ).toBeDefined();
    expect(c.closed).toBe(false);
    c.close();
  });

  it("closes on a bad connection preface (logged at debug)", async () => {
    const c = await RawClient.open(socket, [], false);
    await c.send(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    expect(await c.waitClosed()).toBe(true);
    expect(c.frames.filter((f) => f.type !== FRAME.SETTINGS && f.type !== FRAME.WINDOW_UPDATE))
      .toEqual([]);
    expect(lines.some((l) => l.includes("bad connection preface") && l.includes('"debug"'))).toBe(
      true,
    );
    expect(await echoOk()).toBe(true);
  });

  it("checkRequestHeaders names what is malformed", () => {
    expect(checkRequestHeaders([{ name: "a", value: "1" }, { name: ":path", value: "/" }]))
      .toContain("after a regular header");
    expect(checkRequestHeaders([{ name: ":method", value: "POST" }])).toBe("no :path or :scheme");
  });
});
