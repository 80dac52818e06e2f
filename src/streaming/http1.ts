/**
 * Just enough HTTP/1.1 for the streaming endpoints: parse one request head, answer with a
 * short response or a 101 upgrade. We own the socket (Deno.listen) because `Deno.serve` only
 * hands over the raw connection after a 101 for WebSocket, and SPDY needs it too.
 *
 * @example
 * ```ts
 * import { parseRequestHead, writeResponse } from "./http1.ts";
 * const req = parseRequestHead(new TextEncoder().encode("GET /exec/abc HTTP/1.1\r\nHost: x\r\n\r\n"));
 * console.log(req.path, req.headers.get("host"));
 * ```
 */
import { writeAll } from "./bytes.ts";
import type { ByteSink } from "./bytes.ts";

/** A parsed request head. Header names are lower-cased; repeated headers keep every line. */
export interface HttpRequestHead {
  method: string;
  /** The request target as sent, e.g. `/portforward/abc?ports=80`. */
  target: string;
  /** The path part of the target. */
  path: string;
  /** The query part of the target. */
  query: URLSearchParams;
  version: string;
  headers: HeaderList;
}

/**
 * Case-insensitive multi-valued headers, keeping each header line (the X-Stream-Protocol-
 * Version offer is sent as one line per protocol).
 *
 * @example
 * ```ts
 * import { HeaderList } from "./http1.ts";
 * const h = new HeaderList([["Upgrade", "SPDY/3.1"]]);
 * h.get("upgrade"); // "SPDY/3.1"
 * ```
 */
export class HeaderList {
  readonly #map = new Map<string, string[]>();
  constructor(entries: Iterable<[string, string]> = []) {
    for (const [k, v] of entries) this.add(k, v);
  }
  /** Appends one value. */
  add(name: string, value: string): void {
    const k = name.toLowerCase();
    const list = this.#map.get(k);
    if (list) list.push(value);
    else this.#map.set(k, [value]);
  }
  /** The first value, or undefined. */
  get(name: string): string | undefined {
    return this.#map.get(name.toLowerCase())?.[0];
  }
  /** Every value of every line, comma-separated lists split and trimmed. */
  tokens(name: string): string[] {
    return (this.#map.get(name.toLowerCase()) ?? [])
      .flatMap((v) => v.split(","))
      .map((v) => v.trim())
      .filter((v) => v !== "");
  }
  /** True when one of the comma-separated tokens equals `token` (case-insensitive). */
  hasToken(name: string, token: string): boolean {
    return this.tokens(name).some((t) => t.toLowerCase() === token.toLowerCase());
  }
}

/** The request head could not be parsed; the server answers 400. */
export class BadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadRequestError";
  }
}

/**
 * Parses a request head ending in CRLFCRLF.
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./http1.ts";
 * parseRequestHead(new TextEncoder().encode("POST /exec/t HTTP/1.1\r\n\r\n")).method; // "POST"
 * ```
 */
export function parseRequestHead(head: Uint8Array): HttpRequestHead {
  // latin1 keeps arbitrary bytes intact; header values we care about are ASCII.
  const text = new TextDecoder("latin1").decode(head);
  const lines = text.split("\r\n");
  const [method, target, version, ...extra] = (lines[0] ?? "").split(" ");
  if (!method || !target || !version || extra.length > 0 || !version.startsWith("HTTP/1.")) {
    throw new BadRequestError(`malformed request line ${JSON.stringify(lines[0])}`);
  }
  const headers = new HeaderList();
  for (const line of lines.slice(1)) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new BadRequestError(`malformed header line ${JSON.stringify(line)}`);
    headers.add(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  let url: URL;
  try {
    url = new URL(target, "http://streaming.invalid");
  } catch {
    throw new BadRequestError(`malformed request target ${JSON.stringify(target)}`);
  }
  return { method, target, path: url.pathname, query: url.searchParams, version, headers };
}

const REASONS: Record<number, string> = {
  101: "Switching Protocols",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  500: "Internal Server Error",
};

/**
 * Writes a complete response. Non-101 responses carry `Connection: close` and a text body,
 * since each streaming connection serves exactly one request.
 *
 * @example
 * ```ts
 * import { writeResponse } from "./http1.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8080 });
 * await writeResponse(conn, 404, [], "token not found\n");
 * ```
 */
export async function writeResponse(
  sink: ByteSink,
  status: number,
  headers: [string, string][],
  body = "",
): Promise<void> {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  const bodyBytes = new TextEncoder().encode(body);
  if (status !== 101) {
    lines.push("Content-Type: text/plain; charset=utf-8");
    lines.push(`Content-Length: ${bodyBytes.length}`);
    lines.push("Connection: close");
  }
  const head = new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
  const out = new Uint8Array(head.length + bodyBytes.length);
  out.set(head);
  out.set(bodyBytes, head.length);
  await writeAll(sink, out);
}

/** A parsed response head (used by the clients in this folder). */
export interface HttpResponseHead {
  status: number;
  reason: string;
  headers: HeaderList;
}

/**
 * Parses a response head ending in CRLFCRLF.
 *
 * @example
 * ```ts
 * import { parseResponseHead } from "./http1.ts";
 * parseResponseHead(new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\r\n\r\n")).status; // 101
 * ```
 */
export function parseResponseHead(head: Uint8Array): HttpResponseHead {
  const text = new TextDecoder("latin1").decode(head);
  const lines = text.split("\r\n");
  const m = /^HTTP\/1\.\d (\d{3}) ?(.*)$/.exec(lines[0] ?? "");
  if (!m) throw new Error(`malformed HTTP status line ${JSON.stringify(lines[0])}`);
  const headers = new HeaderList();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.add(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), reason: m[2], headers };
}
