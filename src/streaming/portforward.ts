/**
 * The port-forward protocol as the kubelet's streaming server speaks it.
 *
 * SPDY (`portforward.k8s.io`): per forwarded connection the client opens an error stream and
 * a data stream, both with headers `streamtype`, `port` and `requestid`; once both of one
 * request id arrived, the data stream is piped to the backend and failures are written as
 * text on the error stream. WebSocket: ports come from the `port` query parameter; port i
 * uses channel 2i for data and 2i+1 for errors, and the server starts each channel with the
 * port number as two little-endian bytes.
 *
 * @example
 * ```ts
 * import { SpdyPortForward } from "./portforward.ts";
 * // new SpdyPortForward(conn, "sandbox-id", backend, log, 30_000).onStream(stream)
 * ```
 */
import type { StreamingBackend } from "./backend.ts";
import type { Logger } from "../log/logger.ts";
import { firstHeader, RstStatus, type SpdyConnection, type SpdyStream } from "./spdy.ts";
import type { WebSocketConnection } from "./websocket.ts";
import { raceTimeout } from "./remotecommand.ts";

/** SPDY port-forward protocol. */
export const SPDY_PORTFORWARD_PROTOCOLS = ["portforward.k8s.io"] as const;

/** WebSocket port-forward subprotocols we accept. */
export const WS_PORTFORWARD_PROTOCOLS = [
  "v4.channel.k8s.io",
  "portforward.k8s.io",
  "v4.base64.channel.k8s.io",
  "channel.k8s.io",
  "base64.channel.k8s.io",
] as const;

/**
 * Parses a port as the kubelet does: a decimal integer in 1..65535.
 *
 * @example
 * ```ts
 * import { parsePort } from "./portforward.ts";
 * parsePort("8080"); // 8080
 * parsePort("0");    // undefined
 * ```
 */
export function parsePort(s: string | undefined): number | undefined {
  if (s === undefined || !/^\d{1,5}$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : undefined;
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Pairs incoming SPDY streams by request id and runs one backend.portForward per pair.
 *
 * @example
 * ```ts
 * import { SpdyPortForward } from "./portforward.ts";
 * import { SpdyConnection } from "./spdy.ts";
 * import { createLogger } from "../log/logger.ts";
 * const tcp = await Deno.connect({ hostname: "127.0.0.1", port: 10010 });
 * let pf: SpdyPortForward | undefined;
 * const conn = new SpdyConnection(tcp, { role: "server", onStream: (s) => pf!.onStream(s) });
 * pf = new SpdyPortForward(conn, "sandbox", {
 *   exec: async () => 0, attach: async () => {},
 *   portForward: (o) => o.stream.readable.pipeTo(o.stream.writable),
 * }, createLogger(), 30_000);
 * ```
 */
export class SpdyPortForward {
  readonly #pairs = new Map<string, Pair>();
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();

  constructor(
    private readonly conn: SpdyConnection,
    private readonly podSandboxId: string,
    private readonly backend: StreamingBackend,
    private readonly log: Logger,
    private readonly pairTimeoutMs: number,
  ) {
    conn.closed.then(() => {
      this.#abort.abort(new Error("client disconnected"));
      for (const p of this.#pairs.values()) clearTimeout(p.timer);
      this.#pairs.clear();
    });
  }

  /** Settles when every forwarded connection started so far has finished. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** The connection's onStream hook. */
  onStream(s: SpdyStream): boolean {
    const type = firstHeader(s.headers, "streamtype");
    if (type !== "data" && type !== "error") return false;
    let requestId = firstHeader(s.headers, "requestid");
    if (requestId === undefined || requestId === "") {
      // Clients older than request ids open the error stream, then the data stream two ids
      // later; the kubelet pairs them the same way.
      requestId = String(type === "error" ? s.id : s.id - 2);
    }
    let pair = this.#pairs.get(requestId);
    if (!pair) {
      const id = requestId;
      pair = {
        timer: setTimeout(() => this.#expire(id), this.pairTimeoutMs),
      };
      this.#pairs.set(requestId, pair);
    }
    if (pair[type]) return false;
    pair[type] = s;
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      this.#pairs.delete(requestId);
      const run = this.#forward(pair.data, pair.error).finally(() => this.#running.delete(run));
      this.#running.add(run);
    }
    return true;
  }

  #expire(requestId: string): void {
    const pair = this.#pairs.get(requestId);
    if (!pair) return;
    this.#pairs.delete(requestId);
    this.log.warn("port-forward stream pair incomplete; resetting", {
      requestId,
      podSandboxId: this.podSandboxId,
    });
    pair.data?.reset(RstStatus.CANCEL);
    pair.error?.reset(RstStatus.CANCEL);
  }

  async #forward(data: SpdyStream, error: SpdyStream): Promise<void> {
    const portText = firstHeader(data.headers, "port");
    const port = parsePort(portText);
    let failure: string | undefined;
    if (port === undefined) {
      failure = `invalid port ${JSON.stringify(portText ?? "")}`;
    } else {
      try {
        await this.backend.portForward({
          podSandboxId: this.podSandboxId,
          port,
          stream: {
            readable: data.readable,
            writable: new WritableStream<Uint8Array>({
              write: (chunk) => data.write(chunk),
              close: () => data.closeWrite(),
              abort: () => data.closeWrite(),
            }),
          },
          signal: this.#abort.signal,
        });
      } catch (e) {
        failure = `error forwarding port ${port} to pod sandbox ${this.podSandboxId}: ${
          (e as Error)?.message ?? String(e)
        }`;
        this.log.debug("port-forward failed", { port, podSandboxId: this.podSandboxId, error: e });
      }
    }
    try {
      await data.closeWrite();
      if (failure !== undefined) await error.write(new TextEncoder().encode(failure));
      await error.closeWrite();
    } catch { /* client already gone */ }
  }
}

/**
 * Serves a WebSocket port-forward until every port's backend call finished or the client
 * left.
 *
 * @example
 * ```ts
 * import { wsPortForward } from "./portforward.ts";
 * // await wsPortForward(ws, [8080], "sandbox-id", backend, log);
 * ```
 */
export async function wsPortForward(
  ws: WebSocketConnection,
  ports: number[],
  podSandboxId: string,
  backend: StreamingBackend,
  log: Logger,
): Promise<void> {
  const base64 = ws.protocol.includes("base64");
  const send = (channel: number, data: Uint8Array): Promise<void> => {
    if (base64) {
      let bin = "";
      for (const b of data) bin += String.fromCharCode(b);
      return ws.send(
        new TextEncoder().encode(String.fromCharCode(48 + channel) + btoa(bin)),
        false,
      );
    }
    const msg = new Uint8Array(data.length + 1);
    msg[0] = channel;
    msg.set(data, 1);
    return ws.send(msg, true);
  };
  const abort = new AbortController();
  const controllers: (ReadableStreamDefaultController<Uint8Array> | undefined)[] = [];
  const open: boolean[] = [];
  const readables = ports.map((_, i) =>
    new ReadableStream<Uint8Array>({
      start: (c) => {
        controllers[i] = c;
        open[i] = true;
      },
      cancel: () => {
        open[i] = false;
      },
    })
  );
  const readerDone = (async () => {
    for (let m = await ws.receive(); m; m = await ws.receive()) {
      let channel: number, data: Uint8Array;
      if (base64 && !m.binary) {
        const text = new TextDecoder().decode(m.data);
        if (!text) continue;
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
      const i = channel >> 1;
      if (channel % 2 === 0 && i < ports.length && open[i] && data.length > 0) {
        controllers[i]?.enqueue(data.slice());
      }
    }
    ports.forEach((_, i) => {
      if (open[i]) {
        open[i] = false;
        try {
          controllers[i]?.close();
        } catch { /* closed */ }
      }
    });
    abort.abort(new Error("client disconnected"));
  })();

  for (let i = 0; i < ports.length; i++) {
    const prefix = new Uint8Array([ports[i] & 0xff, ports[i] >> 8]);
    await send(2 * i, prefix);
    await send(2 * i + 1, prefix);
  }
  await Promise.all(ports.map(async (port, i) => {
    try {
      await backend.portForward({
        podSandboxId,
        port,
        stream: {
          readable: readables[i],
          writable: new WritableStream<Uint8Array>({
            write: async (chunk) => {
              if (chunk.length > 0) await send(2 * i, chunk);
            },
          }),
        },
        signal: abort.signal,
      });
    } catch (e) {
      log.debug("port-forward failed", { port, podSandboxId, error: e });
      const msg = `error forwarding port ${port} to pod sandbox ${podSandboxId}: ${
        (e as Error)?.message ?? String(e)
      }`;
      await send(2 * i + 1, new TextEncoder().encode(msg)).catch(() => {});
    }
  }));
  await ws.close(1000);
  await raceTimeout(readerDone, 2000);
  ws.abort();
}
