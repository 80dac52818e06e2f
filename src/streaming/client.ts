/**
 * A small SPDY client for streaming URLs, doing what client-go's remotecommand and
 * portforward do: the `Upgrade: SPDY/3.1` handshake with protocol negotiation, then the
 * streams of an exec/attach or a port-forward. Tests and the CRI e2e suite use it in place of
 * kubectl/crictl.
 *
 * @example
 * ```ts
 * import { remoteCommand } from "./client.ts";
 * const r = await remoteCommand("http://127.0.0.1:41235/exec/TOKEN", {
 *   stdin: new TextEncoder().encode("hi"),
 *   stdout: true,
 *   stderr: true,
 * });
 * console.log(r.exitCode, new TextDecoder().decode(r.stdout));
 * ```
 */
import { ByteReader, concatBytes, writeAll } from "./bytes.ts";
import { parseResponseHead } from "./http1.ts";
import type { TerminalSize } from "./backend.ts";
import type { RemoteStatus } from "./remotecommand.ts";
import { SpdyConnection, type SpdyStream } from "./spdy.ts";

/** The server refused the upgrade; `status` and `body` are its HTTP answer. */
export class UpgradeFailedError extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`upgrade refused: HTTP ${status}: ${body.trim()}`);
    this.name = "UpgradeFailedError";
  }
}

/**
 * Connects to a streaming URL and upgrades to SPDY/3.1 offering `protocols` (in preference
 * order); returns the client connection and the protocol the server chose.
 *
 * @example
 * ```ts
 * import { dialSpdy } from "./client.ts";
 * const { conn, protocol } = await dialSpdy("http://127.0.0.1:41235/portforward/T", ["portforward.k8s.io"]);
 * conn.close();
 * ```
 */
export async function dialSpdy(
  url: string,
  protocols: readonly string[],
): Promise<{ conn: SpdyConnection; protocol: string }> {
  const u = new URL(url);
  if (u.protocol !== "http:") throw new Error(`unsupported streaming URL scheme ${u.protocol}`);
  const tcp = await Deno.connect({
    hostname: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port || 80),
  });
  try {
    const lines = [
      `POST ${u.pathname}${u.search} HTTP/1.1`,
      `Host: ${u.host}`,
      "Connection: Upgrade",
      "Upgrade: SPDY/3.1",
      ...protocols.map((p) => `X-Stream-Protocol-Version: ${p}`),
      "Content-Length: 0",
      "",
      "",
    ];
    await writeAll(tcp, new TextEncoder().encode(lines.join("\r\n")));
    const reader = new ByteReader(tcp);
    const head = await reader.readHead(16 * 1024);
    if (!head) throw new Error(`${url}: connection closed before the HTTP response`);
    const res = parseResponseHead(head);
    if (res.status !== 101) {
      const len = Number(res.headers.get("content-length") ?? "0");
      const body = len > 0 ? await reader.readExact(len) : null;
      throw new UpgradeFailedError(res.status, body ? new TextDecoder().decode(body) : "");
    }
    const protocol = res.headers.get("x-stream-protocol-version") ?? "";
    return { conn: new SpdyConnection(tcp, { role: "client", reader }), protocol };
  } catch (e) {
    try {
      tcp.close();
    } catch { /* closed */ }
    throw e;
  }
}

/** Options of {@link remoteCommand}. */
export interface RemoteCommandOptions {
  /** Bytes or a stream to send as stdin (closed at its end); omit for no stdin stream. */
  stdin?: Uint8Array | ReadableStream<Uint8Array>;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  /** Sizes to send on the resize stream (TTY with v3+ only). */
  resize?: AsyncIterable<TerminalSize> | TerminalSize[];
  /** Protocols to offer; default v4, v3, v2. */
  protocols?: readonly string[];
  /** Called with each stdout chunk as it arrives (it is also collected). */
  onStdout?: (chunk: Uint8Array) => void;
  /** Called with each stderr chunk as it arrives (it is also collected). */
  onStderr?: (chunk: Uint8Array) => void;
  /**
   * false: output goes only to the callbacks, the result's stdout and stderr stay empty (for
   * sessions that run as long as a container does). Default true.
   */
  collect?: boolean;
  /**
   * Ends the session from our side (a detach): the connection closes, the remote process is
   * left running, and the result has `detached: true`.
   */
  signal?: AbortSignal;
}

/** The outcome of {@link remoteCommand}. */
export interface RemoteCommandResult {
  protocol: string;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Raw bytes of the error stream. */
  errorStream: string;
  /** The parsed v4 status, when the protocol is v4. */
  status?: RemoteStatus;
  /** 0 on Success, the NonZeroExitCode cause, or -1 for another failure. */
  exitCode: number;
  /** The session was ended by `signal`, not by the remote end. */
  detached?: boolean;
}

async function readAll(
  s: ReadableStream<Uint8Array>,
  each?: (c: Uint8Array) => void,
  collect = true,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of s) {
    if (collect) parts.push(c);
    each?.(c);
  }
  return concatBytes(parts);
}

/**
 * Runs an exec or attach URL to completion the way client-go's v4 executor does: error
 * stream first, then stdin/stdout/stderr/resize streams, stdin copied and half-closed, output
 * read to EOF, the status read from the error stream.
 *
 * @example
 * ```ts
 * import { remoteCommand } from "./client.ts";
 * const r = await remoteCommand("http://127.0.0.1:41235/exec/TOKEN", { stdout: true });
 * if (r.exitCode !== 0) console.error(r.status?.message);
 * ```
 */
export async function remoteCommand(
  url: string,
  opts: RemoteCommandOptions,
): Promise<RemoteCommandResult> {
  const { conn, protocol } = await dialSpdy(
    url,
    opts.protocols ?? ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"],
  );
  try {
    const errorStream = await conn.openStream({ streamtype: "error" });
    const stdin = opts.stdin !== undefined
      ? await conn.openStream({ streamtype: "stdin" })
      : undefined;
    const stdout = opts.stdout ? await conn.openStream({ streamtype: "stdout" }) : undefined;
    const stderr = opts.stderr && !opts.tty
      ? await conn.openStream({ streamtype: "stderr" })
      : undefined;
    const resize =
      opts.tty && (protocol === "v4.channel.k8s.io" || protocol === "v3.channel.k8s.io")
        ? await conn.openStream({ streamtype: "resize" })
        : undefined;

    const background: Promise<unknown>[] = [];
    if (stdin) background.push(copyIn(stdin, opts.stdin!));
    if (resize) {
      background.push(
        (async () => {
          for await (const s of opts.resize ?? []) {
            await resize.write(
              new TextEncoder().encode(JSON.stringify({ Width: s.width, Height: s.height }) + "\n"),
            );
          }
        })().catch(() => {}),
      );
    }
    const streams = Promise.all([
      stdout ? readAll(stdout.readable, opts.onStdout, opts.collect) : new Uint8Array(0),
      stderr ? readAll(stderr.readable, opts.onStderr, opts.collect) : new Uint8Array(0),
      readAll(errorStream.readable).then((b) => new TextDecoder().decode(b)),
    ]);
    if (opts.signal) {
      const signal = opts.signal;
      const detached = await Promise.race([
        streams.then(() => false),
        new Promise<true>((resolve) => {
          if (signal.aborted) resolve(true);
          signal.addEventListener("abort", () => resolve(true), { once: true });
        }),
      ]);
      if (detached) {
        streams.catch(() => {}); // the connection closes under them
        void Promise.allSettled(background);
        const none = new Uint8Array(0);
        return { protocol, stdout: none, stderr: none, errorStream: "", exitCode: 0, detached };
      }
    }
    const [out, err, errText] = await streams;
    // The session is over once the server closed its streams; stdin and resize copying may
    // still wait on a terminal that never ends, so they are not waited for (kubectl does the same).
    void Promise.allSettled(background);
    let status: RemoteStatus | undefined;
    let exitCode = errText === "" ? 0 : -1;
    if (protocol === "v4.channel.k8s.io" && errText !== "") {
      status = JSON.parse(errText) as RemoteStatus;
      if (status.status === "Success") exitCode = 0;
      else if (status.reason === "NonZeroExitCode") {
        const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
        exitCode = cause ? Number(cause.message) : -1;
      }
    }
    return { protocol, stdout: out, stderr: err, errorStream: errText, status, exitCode };
  } finally {
    conn.close();
  }
}

async function copyIn(s: SpdyStream, src: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
  try {
    if (src instanceof Uint8Array) {
      if (src.length > 0) await s.write(src);
    } else {
      for await (const c of src) await s.write(c);
    }
    await s.closeWrite();
  } catch { /* the session ended first */ }
}

/** One forwarded connection opened by {@link openPortForward}. */
export interface ForwardedStream {
  /** Bytes from the port inside the pod. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the port; close it to half-close. */
  writable: WritableStream<Uint8Array>;
  /** The text of the error stream ("" when the forward ended cleanly). */
  error: Promise<string>;
}

/**
 * A port-forward session over SPDY; `forward(port)` opens one connection to a port, as
 * client-go's portforward does for each accepted local connection.
 *
 * @example
 * ```ts
 * import { openPortForward } from "./client.ts";
 * const pf = await openPortForward("http://127.0.0.1:41235/portforward/TOKEN");
 * const s = await pf.forward(8080);
 * pf.close();
 * ```
 */
export async function openPortForward(
  url: string,
): Promise<
  { forward(port: number): Promise<ForwardedStream>; close(): void; conn: SpdyConnection }
> {
  const { conn } = await dialSpdy(url, ["portforward.k8s.io"]);
  let requestId = 0;
  return {
    conn,
    close: () => conn.close(),
    async forward(port: number): Promise<ForwardedStream> {
      const id = String(requestId++);
      const headers = { port: String(port), requestid: id };
      const errorStream = await conn.openStream({ ...headers, streamtype: "error" });
      // We never write on the error stream; client-go half-closes it at once too.
      await errorStream.closeWrite();
      const data = await conn.openStream({ ...headers, streamtype: "data" });
      return {
        readable: data.readable,
        writable: data.writable,
        error: readAll(errorStream.readable).then(
          (b) => new TextDecoder().decode(b),
          (e: Error) => e.message, // a reset error stream: report why instead of rejecting
        ),
      };
    },
  };
}
