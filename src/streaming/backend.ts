/**
 * The contract between the streaming server (protocol only) and whatever runs processes:
 * the CRI layer implements {@link StreamingBackend} with the container service's exec and
 * attach sessions (services/containers/stream_sessions.ts). The server calls
 * one method per upgraded connection (per forwarded connection for port-forward) and turns
 * its outcome into the protocol's status message.
 *
 * Lifecycle: the streams passed in belong to the server. A method may close `stdout`/`stderr`
 * itself; whatever it leaves open the server closes once the returned promise settles. `stdin`
 * ends when the client closes it or goes away; `signal` aborts when the client goes away, so
 * a long exec or attach can stop early.
 *
 * @example
 * ```ts
 * import type { StreamingBackend } from "./backend.ts";
 * const echo: StreamingBackend = {
 *   async exec(o) {
 *     if (o.stdin && o.stdout) await o.stdin.pipeTo(o.stdout, { preventClose: true });
 *     return 0;
 *   },
 *   async attach() {},
 *   async portForward(o) {
 *     await o.stream.readable.pipeTo(o.stream.writable);
 *   },
 * };
 * ```
 */

/** A terminal size from a client's resize channel. */
export interface TerminalSize {
  width: number;
  height: number;
}

/** The stdio and control streams of one exec or attach session. */
export interface StdioStreams {
  /** Present when the request asked for stdin; ends at the client's EOF. */
  stdin?: ReadableStream<Uint8Array>;
  /** Present when the request asked for stdout. With a TTY it carries the terminal output. */
  stdout?: WritableStream<Uint8Array>;
  /** Present when the request asked for stderr (never with a TTY). */
  stderr?: WritableStream<Uint8Array>;
  /** Terminal size changes, present for TTY sessions whose protocol carries them. */
  resize?: AsyncIterable<TerminalSize>;
  /** Aborted when the client disconnects before the session ended. */
  signal?: AbortSignal;
}

/** What an Exec URL runs. */
export interface ExecOptions extends StdioStreams {
  containerId: string;
  cmd: string[];
  tty: boolean;
}

/** What an Attach URL attaches to. */
export interface AttachOptions extends StdioStreams {
  containerId: string;
  tty: boolean;
}

/** One forwarded connection to a port inside a pod's network namespace. */
export interface PortForwardOptions {
  podSandboxId: string;
  port: number;
  /** Bytes from the client in `readable`, bytes to the client into `writable`. */
  stream: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };
  /** Aborted when the client disconnects. */
  signal?: AbortSignal;
}

/**
 * Runs the processes behind streaming URLs. Errors thrown become a Failure status (exec,
 * attach) or the text of the error stream (port-forward).
 */
export interface StreamingBackend {
  /** Runs `cmd` in the container; resolves with its exit code. */
  exec(o: ExecOptions): Promise<number>;
  /** Attaches to the container's main process until it exits or the client leaves. */
  attach(o: AttachOptions): Promise<void>;
  /** Pipes one client connection to `port` in the sandbox until either side closes. */
  portForward(o: PortForwardOptions): Promise<void>;
}

/**
 * An unbounded async queue, used for resize events: producers `push`, one consumer iterates.
 *
 * @example
 * ```ts
 * import { AsyncQueue } from "./backend.ts";
 * const q = new AsyncQueue<number>();
 * q.push(1);
 * q.close();
 * for await (const n of q) console.log(n);
 * ```
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiters: ((r: IteratorResult<T>) => void)[] = [];
  #closed = false;

  /** Adds an item; ignored after close. */
  push(item: T): void {
    if (this.#closed) return;
    const w = this.#waiters.shift();
    if (w) w({ value: item, done: false });
    else this.#items.push(item);
  }

  /** Ends iteration once queued items are consumed. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((r) => this.#waiters.push(r));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
