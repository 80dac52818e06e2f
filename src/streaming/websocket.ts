/**
 * Server side of RFC 6455 on a connection whose HTTP head we already parsed: the handshake
 * (Sec-WebSocket-Accept via SHA-1) and framing (masked client frames, fragmentation,
 * ping/pong, close). Small on purpose; only the streaming endpoints use it.
 *
 * @example
 * ```ts
 * import { acceptWebSocket } from "./websocket.ts";
 * // inside a connection handler that parsed `req` with a ByteReader `reader`:
 * // const ws = await acceptWebSocket(conn, reader, req, ["v4.channel.k8s.io"]);
 * // for (let m; (m = await ws.receive()) !== null;) await ws.send(m.data, m.binary);
 * ```
 */
import { ByteReader, concatBytes, writeAll } from "./bytes.ts";
import { BadRequestError, type HttpRequestHead, writeResponse } from "./http1.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_MESSAGE = 16 * 1024 * 1024;

/**
 * The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
 *
 * @example
 * ```ts
 * import { websocketAccept } from "./websocket.ts";
 * await websocketAccept("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export async function websocketAccept(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  let bin = "";
  for (const b of new Uint8Array(digest)) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** One complete WebSocket message. */
export interface WsMessage {
  binary: boolean;
  data: Uint8Array;
}

/** The raw connection a {@link WebSocketConnection} writes to. */
export interface WsTransport {
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * A server-side WebSocket after the handshake. `receive()` is single-consumer.
 *
 * @example
 * ```ts
 * import type { WebSocketConnection } from "./websocket.ts";
 * async function echo(ws: WebSocketConnection) {
 *   for (let m = await ws.receive(); m; m = await ws.receive()) await ws.send(m.data, m.binary);
 * }
 * ```
 */
export class WebSocketConnection {
  #writeChain: Promise<void> = Promise.resolve();
  #closeSent = false;
  #closed = false;

  constructor(
    private readonly transport: WsTransport,
    private readonly reader: ByteReader,
    /** The negotiated subprotocol ("" when the client offered none). */
    readonly protocol: string,
  ) {}

  /** True once the close handshake finished or the socket died. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** The next data message; `null` when the peer closed or the socket ended. */
  async receive(): Promise<WsMessage | null> {
    const parts: Uint8Array[] = [];
    let size = 0;
    let binary = true;
    let inMessage = false;
    while (true) {
      let frame;
      try {
        frame = await this.#readFrame();
      } catch {
        frame = null;
      }
      if (!frame) {
        this.#terminate();
        return null;
      }
      const { fin, opcode, payload } = frame;
      if (opcode === 0x8) {
        // Echo the close (with the peer's code) and finish.
        await this.#sendFrame(0x8, payload.subarray(0, 2)).catch(() => {});
        this.#closeSent = true;
        this.#terminate();
        return null;
      }
      if (opcode === 0x9) {
        await this.#sendFrame(0xa, payload).catch(() => {});
        continue;
      }
      if (opcode === 0xa) continue;
      if (opcode === 0x1 || opcode === 0x2) {
        if (inMessage) {
          await this.close(1002, "new message inside a fragmented one");
          this.#terminate();
          return null;
        }
        inMessage = true;
        binary = opcode === 0x2;
      } else if (opcode !== 0x0 || !inMessage) {
        await this.close(1002, "protocol error");
        this.#terminate();
        return null;
      }
      parts.push(payload);
      size += payload.length;
      if (size > MAX_MESSAGE) {
        await this.close(1009, "message too big");
        this.#terminate();
        return null;
      }
      if (fin) return { binary, data: concatBytes(parts) };
    }
  }

  /** Sends one message as a single unmasked frame. */
  send(data: Uint8Array, binary = true): Promise<void> {
    if (this.#closeSent || this.#closed) {
      return Promise.reject(new Error("websocket is closed"));
    }
    return this.#sendFrame(binary ? 0x2 : 0x1, data);
  }

  /** Starts the close handshake and closes the socket shortly after. */
  async close(code = 1000, reason = ""): Promise<void> {
    if (this.#closed) return;
    if (!this.#closeSent) {
      this.#closeSent = true;
      const r = new TextEncoder().encode(reason).subarray(0, 123);
      const payload = new Uint8Array(2 + r.length);
      new DataView(payload.buffer).setUint16(0, code);
      payload.set(r, 2);
      await this.#sendFrame(0x8, payload).catch(() => {});
    }
  }

  /** Closes the TCP connection without a handshake. */
  abort(): void {
    this.#terminate();
  }

  #terminate(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Let queued frames (a close reply) go out first.
    this.#writeChain.finally(() => {
      try {
        this.transport.close();
      } catch { /* already closed */ }
    });
  }

  #sendFrame(opcode: number, payload: Uint8Array): Promise<void> {
    const len = payload.length;
    const headLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const out = new Uint8Array(headLen + len);
    out[0] = 0x80 | opcode;
    if (len < 126) out[1] = len;
    else if (len < 65536) {
      out[1] = 126;
      new DataView(out.buffer).setUint16(2, len);
    } else {
      out[1] = 127;
      new DataView(out.buffer).setBigUint64(2, BigInt(len));
    }
    out.set(payload, headLen);
    const p = this.#writeChain.then(() => writeAll(this.transport, out));
    this.#writeChain = p.catch(() => {});
    return p;
  }

  async #readFrame(): Promise<{ fin: boolean; opcode: number; payload: Uint8Array } | null> {
    const h = await this.reader.readExact(2, "a websocket frame");
    if (!h) return null;
    const fin = (h[0] & 0x80) !== 0;
    const opcode = h[0] & 0x0f;
    const masked = (h[1] & 0x80) !== 0;
    let len = h[1] & 0x7f;
    if (len === 126) {
      const b = await this.reader.readExact(2);
      if (!b) return null;
      len = new DataView(b.buffer).getUint16(0);
    } else if (len === 127) {
      const b = await this.reader.readExact(8);
      if (!b) return null;
      const big = new DataView(b.buffer).getBigUint64(0);
      if (big > BigInt(MAX_MESSAGE)) throw new Error("websocket frame too large");
      len = Number(big);
    }
    if (len > MAX_MESSAGE) throw new Error("websocket frame too large");
    const mask = masked ? await this.reader.readExact(4) : null;
    const payload = len === 0 ? new Uint8Array(0) : await this.reader.readExact(len);
    if (!payload || (masked && !mask)) return null;
    if (mask) { for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]; }
    return { fin, opcode, payload };
  }
}

/** True when the request asks for a WebSocket upgrade. */
export function isWebSocketRequest(req: HttpRequestHead): boolean {
  return (req.headers.get("upgrade") ?? "").toLowerCase() === "websocket";
}

/**
 * Completes the handshake. The subprotocol is the first one the client offers that is in
 * `supported` (client order, as the kubelet's wsstream does); a client that offers none gets
 * "". When the client offers protocols and none is supported, answers 403 and returns null.
 *
 * @example
 * ```ts
 * import { ByteReader } from "./bytes.ts";
 * import { parseRequestHead } from "./http1.ts";
 * import { acceptWebSocket } from "./websocket.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const conn = await listener.accept();
 * const reader = new ByteReader(conn);
 * const req = parseRequestHead((await reader.readHead(16384))!);
 * const ws = await acceptWebSocket(conn, reader, req, ["v4.channel.k8s.io"]);
 * ```
 */
export async function acceptWebSocket(
  conn: WsTransport,
  reader: ByteReader,
  req: HttpRequestHead,
  supported: readonly string[],
): Promise<WebSocketConnection | null> {
  const key = req.headers.get("sec-websocket-key");
  if (req.method !== "GET") throw new BadRequestError("websocket upgrade needs GET");
  if (!key) throw new BadRequestError("missing Sec-WebSocket-Key");
  if (req.headers.get("sec-websocket-version") !== "13") {
    throw new BadRequestError("unsupported Sec-WebSocket-Version (want 13)");
  }
  const offered = req.headers.tokens("sec-websocket-protocol");
  const protocol = offered.find((p) => supported.includes(p));
  if (offered.length > 0 && protocol === undefined) {
    await writeResponse(
      conn,
      403,
      [],
      `none of the requested websocket protocols [${offered.join(", ")}] is supported; ` +
        `supported: [${supported.join(", ")}]\n`,
    );
    return null;
  }
  const headers: [string, string][] = [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Accept", await websocketAccept(key)],
  ];
  if (protocol) headers.push(["Sec-WebSocket-Protocol", protocol]);
  await writeResponse(conn, 101, headers);
  return new WebSocketConnection(conn, reader, protocol ?? "");
}
