import * as grpc from "@grpc/grpc-js";
import { grpcJsDefinition } from "./grpcjs_definition.ts";
import { afterAll, beforeAll, describe, emulator, expect, it } from "../testing/bdd.ts";
import {
  ClientStreamRewriter,
  headerFrames,
  isValidAuthority,
  MAX_FRAME_SIZE,
  ProxyProtocolError,
} from "./authority_proxy.ts";
import { type Edge, serveUnixSocket } from "./edge.ts";
import { type HeaderField, HpackDecoder, HpackEncoder, type HpackEncoderOptions } from "./hpack.ts";
import { VersionResponse } from "../gen/k8scontainerd/services/version/v1/version.ts";
import { VersionService } from "./services.ts";
import { RuntimeServiceService } from "./cri_services.ts";
import { VersionClient } from "./clients.ts";

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const DATA = 0, HEADERS = 1, PRIORITY_FRAME = 2, SETTINGS = 4, PING = 6, GOAWAY = 7;
const CONTINUATION = 9;
const END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20;
const VERSION_PATH = "/k8scontainerd.services.version.v1.Version/Version";
/** A grpc-go client: crictl built outside the repo (1.26 or 1.32, whichever is there). */
const CRICTL = ["/opt/critools/crictl", "/opt/build/bin/crictl"].find((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});

/** The minor version of google.golang.org/grpc in a Go binary's embedded build info. */
function grpcGoMinor(binary: Uint8Array): number | undefined {
  const m = /google\.golang\.org\/grpc\tv1\.(\d+)\./.exec(new TextDecoder("latin1").decode(binary));
  return m ? Number(m[1]) : undefined;
}

function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(),
) {
  const f = new Uint8Array(9 + payload.length);
  f[0] = payload.length >> 16;
  f[1] = (payload.length >> 8) & 0xff;
  f[2] = payload.length & 0xff;
  f[3] = type;
  f[4] = flags;
  new DataView(f.buffer).setUint32(5, streamId);
  f.set(payload, 9);
  return f;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

/** Splits a byte stream into frames (no preface). */
function parseFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const len = (bytes[pos] << 16) | (bytes[pos + 1] << 8) | bytes[pos + 2];
    frames.push({
      type: bytes[pos + 3],
      flags: bytes[pos + 4],
      streamId: new DataView(bytes.buffer, bytes.byteOffset).getUint32(pos + 5) & 0x7fffffff,
      payload: bytes.slice(pos + 9, pos + 9 + len),
    });
    pos += 9 + len;
  }
  return frames;
}

/** A gRPC request's header list, with the authority a grpc-go unix client sends. */
function grpcRequest(authority: string, path = VERSION_PATH, extra: HeaderField[] = []) {
  return [
    { name: ":method", value: "POST" },
    { name: ":scheme", value: "http" },
    { name: ":path", value: path },
    { name: ":authority", value: authority },
    { name: "content-type", value: "application/grpc" },
    { name: "user-agent", value: "grpc-go/1.51.0" },
    { name: "te", value: "trailers" },
    ...extra,
  ];
}

/** An empty protobuf message with its 5-octet gRPC prefix. */
const EMPTY_MESSAGE = new Uint8Array(5);

interface StreamResult {
  headers: HeaderField[];
  data: Uint8Array;
  trailers: HeaderField[];
}

/** A minimal HTTP/2 client over a raw unix socket, enough for unary gRPC calls. */
class RawH2 {
  readonly encoder: HpackEncoder;
  readonly #decoder = new HpackDecoder();
  #buf: Uint8Array = new Uint8Array();
  #eof = false;
  goaway: { errorCode: number; debug: string } | undefined;

  private constructor(readonly conn: Deno.UnixConn, opts: HpackEncoderOptions) {
    this.encoder = new HpackEncoder(opts);
  }

  static async connect(path: string, opts: HpackEncoderOptions = {}): Promise<RawH2> {
    const c = new RawH2(await Deno.connect({ transport: "unix", path }), opts);
    await c.write(concat(PREFACE, frame(SETTINGS, 0, 0)));
    return c;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** The frames of one unary call: HEADERS (+ CONTINUATION) then DATA with END_STREAM. */
  request(streamId: number, fields: HeaderField[]): Uint8Array {
    const block = this.encoder.encode(fields);
    return concat(
      ...headerFrames(streamId, 0, undefined, block),
      frame(DATA, END_STREAM, streamId, EMPTY_MESSAGE),
    );
  }

  async #readFrame(): Promise<Frame | null> {
    for (;;) {
      if (this.#buf.length >= 9) {
        const len = (this.#buf[0] << 16) | (this.#buf[1] << 8) | this.#buf[2];
        if (this.#buf.length >= 9 + len) {
          const [f] = parseFrames(this.#buf.subarray(0, 9 + len));
          this.#buf = this.#buf.slice(9 + len);
          return f;
        }
      }
      if (this.#eof) return null;
      const chunk = new Uint8Array(16384);
      let n: number | null;
      try {
        n = await this.conn.read(chunk);
      } catch {
        n = null;
      }
      if (n === null) this.#eof = true;
      else this.#buf = concat(this.#buf, chunk.subarray(0, n));
    }
  }

  /**
   * Reads until every stream in `ids` has ended; answers SETTINGS and PING. Returns null when
   * the server said GOAWAY or closed the connection first.
   */
  // Under qemu-user (and a loaded machine) an answer can take far longer than natively.
  async collect(
    ids: number[],
    timeoutMs = emulator ? 60_000 : 10_000,
  ): Promise<Map<number, StreamResult> | null> {
    const timer = setTimeout(() => this.conn.close(), timeoutMs);
    const results = new Map<number, StreamResult>();
    const open = new Set(ids);
    let block: { streamId: number; flags: number; parts: Uint8Array[] } | undefined;
    try {
      while (open.size > 0) {
        const f = await this.#readFrame();
        if (f === null) return null;
        if (f.type === GOAWAY) {
          const view = new DataView(f.payload.buffer);
          this.goaway = {
            errorCode: view.getUint32(4),
            debug: new TextDecoder().decode(f.payload.subarray(8)),
          };
          return null;
        }
        // Acknowledgements are best effort: a refusing server may already have hung up.
        if (f.type === SETTINGS && !(f.flags & ACK)) {
          await this.write(frame(SETTINGS, ACK, 0)).catch(() => {});
        }
        if (f.type === PING && !(f.flags & ACK)) {
          await this.write(frame(PING, ACK, 0, f.payload)).catch(() => {});
        }
        const r = results.get(f.streamId) ??
          { headers: [], data: new Uint8Array(), trailers: [] };
        if (f.streamId !== 0) results.set(f.streamId, r);
        if (f.type === DATA) r.data = concat(r.data, f.payload);
        if (f.type === HEADERS || f.type === CONTINUATION) {
          let payload = f.payload;
          if (f.type === HEADERS) {
            let off = 0, pad = 0;
            if (f.flags & PADDED) pad = payload[off++];
            if (f.flags & PRIORITY) off += 5;
            payload = payload.subarray(off, payload.length - pad);
            block = { streamId: f.streamId, flags: f.flags, parts: [] };
          }
          block!.parts.push(payload);
          if (f.flags & END_HEADERS) {
            const fields = this.#decoder.decode(concat(...block!.parts));
            if (r.headers.length === 0) r.headers = fields;
            else r.trailers = fields;
            if (block!.flags & END_STREAM) open.delete(f.streamId);
          }
        } else if (f.type === DATA && f.flags & END_STREAM) {
          open.delete(f.streamId);
        }
      }
      return results;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

const field = (fields: HeaderField[], name: string) => fields.find((f) => f.name === name)?.value;

/** Checks one unary Version answer: 200, a VersionResponse, grpc-status 0. */
function expectVersionOk(r: StreamResult | undefined): void {
  expect(r).toBeDefined();
  expect(field(r!.headers, ":status")).toBe("200");
  expect(field(r!.trailers, "grpc-status")).toBe("0");
  expect(r!.data[0]).toBe(0);
  const len = new DataView(r!.data.buffer, r!.data.byteOffset).getUint32(1);
  expect(VersionResponse.decode(r!.data.subarray(5, 5 + len)).version).toBe("9.9.9");
}

function bind(server: grpc.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    server.bindAsync(
      `unix://${path}`,
      grpc.ServerCredentials.createInsecure(),
      (e) => (e ? reject(e) : resolve()),
    )
  );
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 2000);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

describe("authority proxy: frame rewriting", () => {
  const enc = () => new HpackEncoder({ dynamicTable: true, huffman: true });

  /** Feeds `bytes` in chunks of `size` and returns the concatenated output. */
  function feed(rw: ClientStreamRewriter, bytes: Uint8Array, size: number): Uint8Array {
    const out: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += size) {
      // Copy each output segment: they may be views of the chunk.
      for (const s of rw.push(bytes.slice(i, i + size))) out.push(s.slice());
    }
    return concat(...out);
  }

  it("accepts host[:port] authorities and rejects paths and empties", () => {
    for (
      const ok of ["localhost", "localhost:50051", "127.0.0.1:1", "[::1]:8080", "a%2Fb", "x.y-z_"]
    ) {
      expect([ok, isValidAuthority(ok)]).toEqual([ok, true]);
    }
    for (
      const bad of [
        "",
        "/run/k8scontainerd/k8scontainerd.sock",
        "unix:/x",
        "a b",
        "h:",
        "u@h",
        "h:p",
      ]
    ) {
      expect([bad, isValidAuthority(bad)]).toEqual([bad, false]);
    }
  });

  it("passes frames through, rewrites header blocks, whatever the chunking", () => {
    const client = enc();
    const block1 = client.encode(grpcRequest("/tmp/x/public.sock"));
    const block2 = client.encode(grpcRequest("/tmp/x/public.sock", "/a/B")); // uses the table
    const prio = new Uint8Array([0x80, 0, 0, 1, 15]);
    const stream = concat(
      PREFACE,
      frame(SETTINGS, 0, 0, new Uint8Array([0, 4, 0, 1, 0, 0])),
      // HEADERS, PADDED + PRIORITY, split into HEADERS + 2 CONTINUATION.
      frame(
        HEADERS,
        PADDED | PRIORITY,
        1,
        concat(new Uint8Array([3]), prio, block1.subarray(0, 10), new Uint8Array(3)),
      ),
      frame(CONTINUATION, 0, 1, block1.subarray(10, 20)),
      frame(CONTINUATION, END_HEADERS, 1, block1.subarray(20)),
      frame(DATA, END_STREAM, 1, EMPTY_MESSAGE),
      frame(HEADERS, END_HEADERS | END_STREAM, 3, block2),
      frame(PING, 0, 0, new Uint8Array(8).fill(7)),
    );
    let reference: Uint8Array | undefined;
    for (const size of [stream.length, 1, 2, 7, 9, 10, 13, 64]) {
      const rw = new ClientStreamRewriter();
      const out = feed(rw, stream, size);
      expect(rw.idle).toBe(true);
      expect(rw.rewritten).toBe(2);
      reference ??= out;
      expect(out).toEqual(reference);
    }
    // What the server sees: preface, SETTINGS, HEADERS(1, no priority, no padding), DATA,
    // HEADERS(3, END_STREAM), PING — the non-header frames byte-for-byte.
    expect(reference!.subarray(0, 24)).toEqual(PREFACE);
    const frames = parseFrames(reference!.subarray(24));
    expect(frames.map((f) => [f.type, f.flags, f.streamId])).toEqual([
      [SETTINGS, 0, 0],
      [HEADERS, END_HEADERS, 1],
      [DATA, END_STREAM, 1],
      [HEADERS, END_HEADERS | END_STREAM, 3],
      [PING, 0, 0],
    ]);
    const server = new HpackDecoder();
    expect(server.decode(frames[1].payload)).toEqual(grpcRequest("localhost"));
    expect(server.decode(frames[3].payload)).toEqual(grpcRequest("localhost", "/a/B"));
    expect(server.table.size).toBe(0); // the server's table is never used
    expect(frames[4].payload).toEqual(new Uint8Array(8).fill(7));
  });

  it("drops the client's GOAWAY and PRIORITY frames, whatever the chunking", () => {
    // Deno's HTTP/2 server can abort processing a client's GOAWAY (denoland/deno#36788).
    const block = new HpackEncoder().encode(grpcRequest("localhost"));
    const goaway = frame(GOAWAY, 0, 0, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0x64, 0x62]));
    const stream = concat(
      PREFACE,
      frame(PRIORITY_FRAME, 0, 3, new Uint8Array([0, 0, 0, 11, 200])),
      frame(HEADERS, END_HEADERS | END_STREAM, 1, block),
      frame(PING, 0, 0, new Uint8Array(8).fill(1)),
      goaway,
    );
    for (const size of [stream.length, 1, 5, 9, 12]) {
      const rw = new ClientStreamRewriter();
      const frames = parseFrames(feed(rw, stream, size).subarray(24));
      expect(frames.map((f) => f.type)).toEqual([HEADERS, PING]);
      expect(rw.dropped).toBe(2);
      expect(rw.idle).toBe(true);
    }
  });

  it("leaves a valid authority alone and forwards DATA as views of the input", () => {
    const rw = new ClientStreamRewriter("ignored");
    const block = new HpackEncoder().encode(grpcRequest("localhost"));
    const out = rw.push(concat(PREFACE, frame(HEADERS, END_HEADERS, 1, block)));
    expect(rw.rewritten).toBe(0);
    expect(new HpackDecoder().decode(parseFrames(concat(...out).subarray(24))[0].payload))
      .toEqual(grpcRequest("localhost"));
    const data = frame(DATA, 0, 1, new Uint8Array(1000).fill(1));
    const segs = rw.push(data);
    expect(segs.length).toBe(1);
    expect(segs[0].buffer).toBe(data.buffer); // no copy
  });

  it("splits a re-encoded block above 16384 octets into HEADERS + CONTINUATION", () => {
    const rw = new ClientStreamRewriter();
    const big = grpcRequest("/x.sock", VERSION_PATH, [{ name: "x-big", value: "v".repeat(40000) }]);
    const block = new HpackEncoder().encode(big);
    const input = concat(PREFACE);
    rw.push(input);
    const frames = parseFrames(concat(
      ...rw.push(concat(
        frame(HEADERS, 0, 5, block.subarray(0, 16000)),
        frame(CONTINUATION, 0, 5, block.subarray(16000, 32000)),
        frame(CONTINUATION, END_HEADERS, 5, block.subarray(32000)),
      )),
    ));
    expect(frames.map((f) => [f.type, f.flags, f.payload.length <= MAX_FRAME_SIZE])).toEqual([
      [HEADERS, 0, true],
      [CONTINUATION, 0, true],
      [CONTINUATION, END_HEADERS, true],
    ]);
    const fields = new HpackDecoder().decode(concat(...frames.map((f) => f.payload)));
    expect(field(fields, ":authority")).toBe("localhost");
    expect(field(fields, "x-big")?.length).toBe(40000);
  });

  it("rejects protocol violations", () => {
    const block = new HpackEncoder().encode(grpcRequest("localhost"));
    const cases: [Uint8Array, RegExp][] = [
      [new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"), /preface/],
      [concat(PREFACE, frame(HEADERS, 0, 1, block), frame(DATA, 0, 1)), /CONTINUATION expected/],
      [
        concat(PREFACE, frame(HEADERS, 0, 1, block), frame(CONTINUATION, END_HEADERS, 3)),
        /unexpected CONTINUATION/,
      ],
      [concat(PREFACE, frame(CONTINUATION, END_HEADERS, 1)), /unexpected CONTINUATION/],
      [concat(PREFACE, frame(HEADERS, END_HEADERS, 0, block)), /stream 0/],
      [
        concat(PREFACE, frame(HEADERS, END_HEADERS | PADDED, 1, new Uint8Array([200, 0x82]))),
        /padding/,
      ],
      [concat(PREFACE, frame(HEADERS, END_HEADERS | PRIORITY, 1, new Uint8Array(3))), /PRIORITY/],
    ];
    for (const [bytes, err] of cases) {
      expect(() => new ClientStreamRewriter().push(bytes)).toThrow(err);
    }
    expect(() =>
      new ClientStreamRewriter().push(
        concat(PREFACE, frame(HEADERS, END_HEADERS, 1, new Uint8Array([0xbe]))),
      )
    )
      .toThrow(/invalid header index/);
    expect(ProxyProtocolError.name).toBe("ProxyProtocolError");
  });
});

/**
 * A grpc-js server served the daemon's way: connections accepted on `pub` by the edge,
 * rewritten and injected; `internal`, when given, binds the same server directly (no rewriter).
 */
async function serveBoth(
  server: grpc.Server,
  pub: string,
  internal: string | undefined,
  log?: Parameters<typeof serveUnixSocket>[0]["log"],
): Promise<Edge> {
  if (internal) await bind(server, internal);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  return await serveUnixSocket({
    path: pub,
    inject: (c) => injector.injectConnection(c),
    log,
  });
}

async function stopBoth(edge: Edge | undefined, server: grpc.Server | undefined) {
  await edge?.stopAccepting();
  if (server) await shutdown(server);
  edge?.closeAll();
}

describe("gRPC edge: end to end with grpc-js (connections injected, authority rewritten)", () => {
  let dir = "";
  let internal = "";
  let pub = "";
  let server: grpc.Server;
  let edge: Edge;
  const warnings: string[] = [];
  const log = {
    debug: () => {},
    warn: (msg: string, fields?: Record<string, unknown>) =>
      warnings.push(`${msg} ${JSON.stringify(fields)}`),
  };

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "authproxy" });
    internal = `${dir}/internal.sock`;
    pub = `${dir}/public.sock`;
    server = new grpc.Server();
    server.addService(grpcJsDefinition(VersionService), {
      version: (
        _call: grpc.ServerUnaryCall<unknown, unknown>,
        cb: grpc.sendUnaryData<VersionResponse>,
      ) => cb(null, { version: "9.9.9", revision: "r", runtime: "deno" }),
    });
    edge = await serveBoth(server, pub, internal, log);
  });

  afterAll(async () => {
    await stopBoth(edge, server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  it("serves a grpc-js client through the edge, sequential and concurrent calls", async () => {
    const client = new VersionClient(`unix://${pub}`, grpc.credentials.createInsecure());
    const call = () =>
      new Promise<VersionResponse>((resolve, reject) =>
        client.version({}, (e, r) => (e ? reject(e) : resolve(r)))
      );
    try {
      for (let i = 0; i < 10; i++) expect((await call()).version).toBe("9.9.9");
      const all = await Promise.all(Array.from({ length: 50 }, call));
      expect(all.every((r) => r.version === "9.9.9")).toBe(true);
    } finally {
      client.close();
    }
  });

  it("answers a raw request with a path :authority through the edge, not directly", async () => {
    const fields = grpcRequest(pub);
    // Directly: the server refuses the authority (GOAWAY or a closed connection).
    const direct = await RawH2.connect(internal);
    try {
      // The server may already have hung up while we write: that is a refusal too.
      await direct.write(direct.request(1, fields)).catch(() => {});
      const res = await direct.collect([1]);
      expect(res).toBeNull();
      console.log(
        `  direct: ${direct.goaway ? `GOAWAY ${JSON.stringify(direct.goaway)}` : "closed"}`,
      );
    } finally {
      direct.close();
    }
    // Directly with a host authority: answered, so the authority alone was the problem.
    const directOk = await RawH2.connect(internal);
    try {
      await directOk.write(directOk.request(1, grpcRequest("localhost")));
      const res = await directOk.collect([1]);
      expect(res).not.toBeNull();
      expectVersionOk(res!.get(1));
    } finally {
      directOk.close();
    }
    // Through the proxy: a full answer.
    const proxied = await RawH2.connect(pub);
    try {
      await proxied.write(proxied.request(1, fields));
      const res = await proxied.collect([1]);
      expect(res).not.toBeNull();
      expectVersionOk(res!.get(1));
    } finally {
      proxied.close();
    }
  });

  it("carries the client's dynamic table across many sequential and concurrent calls", async () => {
    const c = await RawH2.connect(pub, { dynamicTable: true, huffman: true });
    try {
      let id = 1;
      const first = c.encoder.table!.size;
      for (let i = 0; i < 20; i++) {
        if (i === 5) c.encoder.setTableSize(128); // evicts most entries
        if (i === 8) c.encoder.setTableSize(4096);
        const extra = [{ name: "x-seq", value: String(i % 4) }];
        await c.write(c.request(id, grpcRequest(pub, VERSION_PATH, extra)));
        const res = await c.collect([id]);
        expect(res).not.toBeNull();
        expectVersionOk(res!.get(id));
        id += 2;
      }
      expect(c.encoder.table!.size).toBeGreaterThan(first); // incremental indexing was used
      // 30 concurrent streams written in one go, answers interleaved.
      const ids = Array.from({ length: 30 }, (_, i) => id + 2 * i);
      await c.write(concat(
        ...ids.map((s, i) =>
          c.request(s, grpcRequest(pub, VERSION_PATH, [{ name: "x-n", value: `${i % 3}` }]))
        ),
      ));
      const res = await c.collect(ids);
      expect(res).not.toBeNull();
      for (const s of ids) expectVersionOk(res!.get(s));
      // A header block needing CONTINUATION frames on both sides.
      const big = ids[ids.length - 1] + 2;
      await c.write(
        c.request(
          big,
          grpcRequest(pub, VERSION_PATH, [{ name: "x-big", value: "b".repeat(20000) }]),
        ),
      );
      const bigRes = await c.collect([big]);
      expect(bigRes).not.toBeNull();
      expectVersionOk(bigRes!.get(big));
    } finally {
      c.close();
    }
    expect(warnings).toEqual([]);
  });

  it("drops a connection that sends malformed frames, logging a warning", async () => {
    const c = await RawH2.connect(pub);
    try {
      await c.write(frame(CONTINUATION, END_HEADERS, 1, new Uint8Array([0x82])));
      expect(await c.collect([1], 5000)).toBeNull();
    } finally {
      c.close();
    }
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/unexpected CONTINUATION/);
    warnings.length = 0;
  });
});

describe.skipIf(
  !CRICTL,
  "no crictl (built outside the repo from cri-tools)",
)("gRPC edge: crictl (grpc-go) through the edge", () => {
  let dir = "";
  let server: grpc.Server;
  let edge: Edge;

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "authproxy-crictl" });
    server = new grpc.Server();
    server.addService(grpcJsDefinition(RuntimeServiceService), {
      version: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, {
          version: "0.1.0",
          runtimeName: "test",
          runtimeVersion: "1",
          runtimeApiVersion: "v1",
        }),
    });
    edge = await serveBoth(server, `${dir}/public.sock`, `${dir}/internal.sock`);
  });

  afterAll(async () => {
    await stopBoth(edge, server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  const crictl = (socket: string) =>
    new Deno.Command(CRICTL!, {
      args: ["--runtime-endpoint", `unix://${socket}`, "--timeout", "5s", "version"],
      env: { HOME: dir },
      stdout: "piped",
      stderr: "piped",
    }).output();

  it("crictl version answers through the edge (and 1.26 fails directly)", async () => {
    for (let i = 0; i < 3; i++) {
      const out = await crictl(`${dir}/public.sock`);
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      expect([out.code, stderr]).toEqual([0, expect.any(String)]);
      expect(stdout).toMatch(/RuntimeName:\s+test/);
      expect(stdout).toMatch(/RuntimeApiVersion:\s+v1/);
    }
    // grpc-go 1.51 (crictl 1.26's) sends the socket path as `:authority`, which grpc-js refuses;
    // v1.32's grpc-go (1.68) sends "localhost". Which one this crictl has, its build info says.
    const minor = grpcGoMinor(await Deno.readFile(CRICTL!));
    if (minor !== undefined && minor <= 51) {
      const direct = await crictl(`${dir}/internal.sock`);
      expect(direct.code).not.toBe(0);
    }
  });
});
