/**
 * The remotecommand protocol (exec and attach) as the kubelet's streaming server speaks it,
 * over SPDY (one SPDY stream per `streamtype`) and over WebSocket (one channel byte per
 * message). Both transports are reduced to {@link RemoteCommandSession}, which the server
 * hands to the backend and then finishes with the protocol's status message.
 *
 * Versions: SPDY v4/v3/v2.channel.k8s.io and channel.k8s.io (v4 writes a JSON metav1.Status on
 * the error stream, older ones only an error text; resize needs v3+). WebSocket
 * v5/v4.channel.k8s.io, their base64 variants, and the pre-v4 channel.k8s.io.
 *
 * @example
 * ```ts
 * import { exitStatus } from "./remotecommand.ts";
 * console.log(JSON.stringify(exitStatus(3)));
 * ```
 */
import { AsyncQueue, type TerminalSize } from "./backend.ts";
import { firstHeader, type SpdyConnection, type SpdyStream } from "./spdy.ts";
import type { WebSocketConnection } from "./websocket.ts";

/** SPDY remotecommand protocols we accept, most preferred first. */
export const SPDY_REMOTECOMMAND_PROTOCOLS = [
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
] as const;

/** WebSocket remotecommand subprotocols we accept. */
export const WS_REMOTECOMMAND_PROTOCOLS = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v4.base64.channel.k8s.io",
  "channel.k8s.io",
  "base64.channel.k8s.io",
] as const;

/** WebSocket channel numbers of remotecommand. */
export const Channel = {
  STDIN: 0,
  STDOUT: 1,
  STDERR: 2,
  ERROR: 3,
  RESIZE: 4,
  /** v5 only: `[255, n]` says the client closed channel n. */
  CLOSE: 255,
} as const;

/** A metav1.Status as remotecommand v4 puts it on the error stream. */
export interface RemoteStatus {
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string; message?: string }[] };
  code?: number;
}

/**
 * The Success status.
 *
 * @example
 * ```ts
 * import { successStatus } from "./remotecommand.ts";
 * JSON.stringify(successStatus()); // {"metadata":{},"status":"Success"}
 * ```
 */
export function successStatus(): RemoteStatus {
  return { metadata: {}, status: "Success" };
}

/**
 * The status for a non-zero exit: client-go turns it into an exit code error with `code`.
 *
 * @example
 * ```ts
 * import { exitStatus } from "./remotecommand.ts";
 * exitStatus(3).details?.causes?.[0]; // { reason: "ExitCode", message: "3" }
 * ```
 */
export function exitStatus(code: number): RemoteStatus {
  return {
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: exit status ${code}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(code) }] },
  };
}

/**
 * The status for a failure that is not an exit code (the backend threw).
 *
 * @example
 * ```ts
 * import { internalErrorStatus } from "./remotecommand.ts";
 * internalErrorStatus("container not running").reason; // "InternalError"
 * ```
 */
export function internalErrorStatus(message: string): RemoteStatus {
  return {
    metadata: {},
    status: "Failure",
    message: `Internal error occurred: ${message}`,
    reason: "InternalError",
    details: { causes: [{ message }] },
    code: 500,
  };
}

/**
 * Parses the JSON terminal sizes of a resize stream, which arrive as a sequence of objects
 * (Go's json.Encoder, newline-separated) that may be split across frames.
 *
 * @example
 * ```ts
 * import { ResizeDecoder } from "./remotecommand.ts";
 * new ResizeDecoder().push(new TextEncoder().encode('{"Width":80,"Height":24}\n'));
 * // [{ width: 80, height: 24 }]
 * ```
 */
export class ResizeDecoder {
  #pending = "";
  #decoder = new TextDecoder();

  /**
   * Feeds bytes; returns every size completed by them. Malformed objects are skipped, and so
   * are sizes with a zero dimension, as the kubelet's streaming library and containerd do:
   * kubectl sends its own terminal's size, 0x0 when it has none (under `script` with no
   * terminal of its own), and a 0x0 window makes `stty size` in the container fail.
   */
  push(bytes: Uint8Array): TerminalSize[] {
    this.#pending += this.#decoder.decode(bytes, { stream: true });
    const out: TerminalSize[] = [];
    let depth = 0, inString = false, escaped = false, start = -1, consumed = 0;
    for (let i = 0; i < this.#pending.length; i++) {
      const c = this.#pending[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === "{") {
        if (depth++ === 0) start = i;
      } else if (c === "}" && depth > 0 && --depth === 0) {
        const size = parseSize(this.#pending.slice(start, i + 1));
        if (size) out.push(size);
        consumed = i + 1;
      }
    }
    this.#pending = depth === 0 ? "" : this.#pending.slice(consumed);
    if (this.#pending.length > 64 * 1024) this.#pending = ""; // garbage: do not grow forever
    return out;
  }
}

function parseSize(json: string): TerminalSize | undefined {
  try {
    const o = JSON.parse(json) as Record<string, unknown>;
    // Go's decoder matches field names case-insensitively; so do we.
    const get = (k: string) => {
      for (const [key, v] of Object.entries(o)) if (key.toLowerCase() === k) return v;
      return undefined;
    };
    const width = Number(get("width")), height = Number(get("height"));
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) return;
    return { width, height };
  } catch {
    return;
  }
}

/** Which stdio streams a session carries (from the cached Exec/Attach request). */
export interface StdioFlags {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** How a session ended, as the server reports it to the client. */
export type SessionResult = { exitCode: number } | { error: string };

/**
 * One exec/attach session independent of transport: the streams for the backend, and
 * `finish` to report the outcome and close.
 */
export interface RemoteCommandSession {
  protocol: string;
  stdin?: ReadableStream<Uint8Array>;
  stdout?: WritableStream<Uint8Array>;
  stderr?: WritableStream<Uint8Array>;
  resize?: AsyncQueue<TerminalSize>;
  signal: AbortSignal;
  finish(result: SessionResult): Promise<void>;
}

function statusOf(result: SessionResult): RemoteStatus {
  if ("error" in result) return internalErrorStatus(result.error);
  return result.exitCode === 0 ? successStatus() : exitStatus(result.exitCode);
}

/** Pre-v4 protocols carry only an error text, and only on failure. */
function statusBytes(protocol: string, result: SessionResult): Uint8Array | undefined {
  const status = statusOf(result);
  const v4 = /^v[45]\./.test(protocol);
  if (v4) return new TextEncoder().encode(JSON.stringify(status));
  return status.status === "Success" ? undefined : new TextEncoder().encode(status.message ?? "");
}

/**
 * Waits for the client to open the SPDY streams the request implies (error, plus stdin,
 * stdout, stderr and resize as flagged) and returns the session; rejects after `timeoutMs`
 * without them, as the kubelet does after its stream creation timeout.
 *
 * @example
 * ```ts
 * import { SpdyConnection } from "./spdy.ts";
 * import { spdyRemoteCommand } from "./remotecommand.ts";
 * const tcp = await Deno.connect({ hostname: "127.0.0.1", port: 10010 });
 * const streams: import("./spdy.ts").SpdyStream[] = [];
 * const conn = new SpdyConnection(tcp, { role: "server", onStream: (s) => void streams.push(s) });
 * // const session = await spdyRemoteCommand(conn, streams, "v4.channel.k8s.io", flags, 30_000);
 * ```
 */
export function spdyRemoteCommand(
  conn: SpdyConnection,
  arrivals: { next(): Promise<SpdyStream | undefined> },
  protocol: string,
  flags: StdioFlags,
  timeoutMs: number,
): Promise<RemoteCommandSession> {
  const resizeSupported = protocol === "v4.channel.k8s.io" || protocol === "v3.channel.k8s.io";
  const expected = new Set(["error"]);
  if (flags.stdin) expected.add("stdin");
  if (flags.stdout) expected.add("stdout");
  if (flags.stderr && !flags.tty) expected.add("stderr");
  if (flags.tty && resizeSupported) expected.add("resize");
  const got = new Map<string, SpdyStream>();

  const collect = async () => {
    while ([...expected].some((t) => !got.has(t))) {
      const s = await arrivals.next();
      if (!s) throw new Error("connection closed before all streams were created");
      const type = firstHeader(s.headers, "streamtype") ?? "";
      if (!expected.has(type) || got.has(type)) {
        s.reset();
        continue;
      }
      got.set(type, s);
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `timed out waiting for client streams (${
              [...expected].filter((t) => !got.has(t)).join(", ")
            }) after ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
  const collecting = collect();
  collecting.catch(() => {}); // after a timeout it fails unobserved when the socket closes
  return Promise.race([collecting, timeout]).finally(() => clearTimeout(timer)).then(() => {
    const abort = new AbortController();
    conn.closed.then(() => abort.abort(new Error("client disconnected")));
    const errorStream = got.get("error")!;
    const stdout = got.get("stdout"), stderr = got.get("stderr");
    const stdinStream = got.get("stdin"), resizeStream = got.get("resize");
    let resize: AsyncQueue<TerminalSize> | undefined;
    if (resizeStream) {
      const q = new AsyncQueue<TerminalSize>();
      resize = q;
      const decoder = new ResizeDecoder();
      (async () => {
        try {
          for await (const chunk of resizeStream.readable) {
            for (const s of decoder.push(chunk)) q.push(s);
          }
        } catch { /* reset: no more sizes */ }
        q.close();
      })();
    }
    return {
      protocol,
      stdin: stdinStream?.readable,
      stdout: stdout && serverOwnedWritable(stdout),
      stderr: stderr && serverOwnedWritable(stderr),
      resize,
      signal: abort.signal,
      finish: async (result) => {
        resize?.close();
        await Promise.allSettled([stdout?.closeWrite(), stderr?.closeWrite()]);
        const bytes = statusBytes(protocol, result);
        try {
          if (bytes) await errorStream.write(bytes);
          await errorStream.closeWrite();
        } catch { /* client already gone */ }
        stdinStream?.readable.cancel().catch(() => {});
        await conn.closeGracefully();
      },
    };
  });
}

/** A writable for the backend whose close is safe to repeat: the server closes it again. */
function serverOwnedWritable(s: SpdyStream): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: (chunk) => s.write(chunk),
    close: () => s.closeWrite(),
    abort: () => s.closeWrite(),
  });
}

/** Reads incoming SPDY streams in arrival order (fed by a connection's onStream). */
export class StreamArrivals {
  #queue = new AsyncQueue<SpdyStream>();
  #it = this.#queue[Symbol.asyncIterator]();
  /** Feed from `onStream`. */
  push(s: SpdyStream): void {
    this.#queue.push(s);
  }
  /** No more streams will come (connection closed). */
  end(): void {
    this.#queue.close();
  }
  /** The next stream, or undefined after `end()`. */
  async next(): Promise<SpdyStream | undefined> {
    const r = await this.#it.next();
    return r.done ? undefined : r.value;
  }
}

/**
 * Builds the session for a WebSocket exec/attach: demultiplexes channel messages (binary, or
 * base64 text for the base64 protocols) and sends the lowest writable channel an empty
 * message first, as the kubelet does to tell the client the session is live.
 *
 * @example
 * ```ts
 * import { wsRemoteCommand } from "./remotecommand.ts";
 * // const session = await wsRemoteCommand(ws, { stdin: true, stdout: true, stderr: false, tty: true });
 * ```
 */
export async function wsRemoteCommand(
  ws: WebSocketConnection,
  flags: StdioFlags,
): Promise<RemoteCommandSession> {
  const protocol = ws.protocol || "channel.k8s.io";
  const base64 = protocol.includes("base64");
  const v5 = protocol.startsWith("v5.");
  const send = (channel: number, data: Uint8Array): Promise<void> => {
    if (base64) {
      let bin = "";
      for (const b of data) bin += String.fromCharCode(b);
      return ws.send(new TextEncoder().encode(String(channel) + btoa(bin)), false);
    }
    const msg = new Uint8Array(data.length + 1);
    msg[0] = channel;
    msg.set(data, 1);
    return ws.send(msg, true);
  };

  let stdinController: ReadableStreamDefaultController<Uint8Array> | undefined;
  let stdinOpen = flags.stdin;
  const stdin = flags.stdin
    ? new ReadableStream<Uint8Array>({
      start: (c) => {
        stdinController = c;
      },
      cancel: () => {
        stdinOpen = false;
      },
    })
    : undefined;
  const closeStdin = () => {
    if (!stdinOpen) return;
    stdinOpen = false;
    try {
      stdinController?.close();
    } catch { /* already closed */ }
  };
  const resize = flags.tty ? new AsyncQueue<TerminalSize>() : undefined;
  const resizeDecoder = new ResizeDecoder();
  const abort = new AbortController();

  const readerDone = (async () => {
    for (let m = await ws.receive(); m; m = await ws.receive()) {
      let channel: number, data: Uint8Array;
      if (base64 && !m.binary) {
        const text = new TextDecoder().decode(m.data);
        if (text.length === 0) continue;
        channel = text.charCodeAt(0) - 48;
        try {
          data = Uint8Array.from(atob(text.slice(1)), (c) => c.charCodeAt(0));
        } catch {
          continue;
        }
      } else {
        if (m.data.length === 0) continue;
        channel = m.data[0];
        data = m.data.subarray(1);
      }
      if (channel === Channel.STDIN && stdinOpen && data.length > 0) {
        stdinController?.enqueue(data.slice());
      } else if (channel === Channel.RESIZE && resize) {
        for (const s of resizeDecoder.push(data)) resize.push(s);
      } else if (v5 && channel === Channel.CLOSE && data[0] === Channel.STDIN) {
        closeStdin();
      }
    }
    // The client went away: stdin ends, the backend may stop.
    closeStdin();
    resize?.close();
    abort.abort(new Error("client disconnected"));
  })();

  const channelWritable = (channel: number) => {
    let closed = false;
    return new WritableStream<Uint8Array>({
      write: async (chunk) => {
        if (!closed && chunk.length > 0) await send(channel, chunk);
      },
      close: () => {
        closed = true;
      },
    });
  };

  const first = flags.stdout ? Channel.STDOUT : flags.stderr ? Channel.STDERR : Channel.ERROR;
  await send(first, new Uint8Array(0));

  return {
    protocol,
    stdin,
    stdout: flags.stdout ? channelWritable(Channel.STDOUT) : undefined,
    stderr: flags.stderr && !flags.tty ? channelWritable(Channel.STDERR) : undefined,
    resize,
    signal: abort.signal,
    finish: async (result) => {
      resize?.close();
      const bytes = statusBytes(protocol, result);
      try {
        if (bytes) await send(Channel.ERROR, bytes);
      } catch { /* client already gone */ }
      await ws.close(1000);
      // Give the client a moment to answer the close, then drop the socket regardless.
      await raceTimeout(readerDone, 2000);
      ws.abort();
    },
  };
}

/** Waits for `p` or `ms`, whichever is first, without leaving a timer behind. */
export async function raceTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.catch(() => {}), new Promise((r) => timer = setTimeout(r, ms))]);
  clearTimeout(timer);
}
