/**
 * An interactive session for `run -t`, `attach` and `tasks exec -t`/`-i`: with a terminal, it in
 * raw mode, keystrokes to the container, its output to ours, and the window size followed on
 * SIGWINCH — over the daemon's streaming server (the same SPDY protocol crictl uses).
 */
import { UsageError } from "./usage_error.ts";
import { load } from "./lazy.ts";

const enc = new TextEncoder();

async function* windowSizes(
  signal: AbortSignal,
): AsyncGenerator<{ width: number; height: number }> {
  const size = () => {
    const { columns, rows } = Deno.consoleSize();
    return { width: columns, height: rows };
  };
  yield size();
  let wake: (() => void) | undefined;
  const onWinch = () => wake?.();
  Deno.addSignalListener("SIGWINCH", onWinch);
  try {
    while (!signal.aborted) {
      await new Promise<void>((r) => {
        wake = r;
        signal.addEventListener("abort", () => r(), { once: true });
      });
      if (!signal.aborted) yield size();
    }
  } finally {
    Deno.removeSignalListener("SIGWINCH", onWinch);
  }
}

/** The keys that detach from a session unless --detach-keys says otherwise (docker's). */
export const DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q";

/**
 * Parses docker's --detach-keys syntax: comma-separated keys, each a single character or
 * `ctrl-<x>` (x a letter, or one of `@ [ \ ] ^ _`). Throws UsageError naming the bad key.
 *
 * @example
 * ```ts
 * parseDetachKeys("ctrl-p,ctrl-q"); // Uint8Array [0x10, 0x11]
 * ```
 */
export function parseDetachKeys(spec: string): Uint8Array {
  const out: number[] = [];
  for (const key of spec.split(",")) {
    const ctrl = /^ctrl-(.)$/i.exec(key);
    if (ctrl) {
      const c = ctrl[1].toLowerCase();
      // ctrl-a … ctrl-z are 1 … 26; ctrl-@ [ \\ ] ^ _ are 0 and 27 … 31 (the char's code - 64).
      const code = c >= "a" && c <= "z"
        ? c.charCodeAt(0) - 96
        : "@[\\]^_".includes(c)
        ? c.charCodeAt(0) - 64
        : -1;
      if (code < 0) {
        throw new UsageError(
          `invalid --detach-keys "${spec}": "${key}" is not a key (ctrl- takes a letter or one of @[\\]^_)`,
        );
      }
      out.push(code);
    } else if (key.length === 1) out.push(key.charCodeAt(0));
    else {
      throw new UsageError(
        `invalid --detach-keys "${spec}": "${key}" is not a key (expected a character or ctrl-<x>, comma-separated, e.g. ctrl-p,ctrl-q)`,
      );
    }
  }
  return new Uint8Array(out);
}

/**
 * Copies stdin through, watching for the detach sequence: bytes that may start it are held
 * back until the next byte decides (sent on a mismatch, dropped on a match, as docker does);
 * the whole sequence calls `onDetach`, and nothing after it is passed on.
 */
export function detachFilter(
  keys: Uint8Array,
  onDetach: () => void,
): TransformStream<Uint8Array, Uint8Array> {
  let matched = 0;
  let done = false;
  return new TransformStream({
    transform(chunk, ctl) {
      if (done) return;
      const out: number[] = [];
      for (const b of chunk) {
        if (b === keys[matched]) {
          if (++matched === keys.length) {
            done = true;
            if (out.length) ctl.enqueue(new Uint8Array(out));
            onDetach();
            return;
          }
          continue;
        }
        // A mismatch: what was held goes out, and this byte may start the sequence anew.
        out.push(...keys.subarray(0, matched));
        matched = 0;
        if (b === keys[0]) matched = 1;
        else out.push(b);
      }
      if (out.length) ctl.enqueue(new Uint8Array(out));
    },
    flush(ctl) {
      // Our stdin ended on a prefix: it was typed, so it goes on.
      if (!done && matched) ctl.enqueue(keys.slice(0, matched));
    },
  });
}

/** How a session ended: the remote exit code (exec; 0 for attach), or our detach. */
export interface SessionResult {
  exitCode: number;
  detached: boolean;
}

/**
 * Runs the session to its end, or until the detach keys are typed (`detachKeys`, docker's
 * syntax; default ctrl-p,ctrl-q; only with stdin).
 */
export async function interactiveSession(
  url: string,
  opts: { tty: boolean; stdin: boolean; detachKeys?: string },
): Promise<SessionResult> {
  const terminal = opts.tty && Deno.stdin.isTerminal();
  const done = new AbortController();
  const detach = new AbortController();
  const keys = parseDetachKeys(opts.detachKeys || DEFAULT_DETACH_KEYS);
  if (terminal) Deno.stdin.setRaw(true);
  try {
    const { remoteCommand } = await load("streamingClient");
    const r = await remoteCommand(url, {
      stdin: opts.stdin
        ? Deno.stdin.readable.pipeThrough(detachFilter(keys, () => detach.abort()))
        : undefined,
      signal: detach.signal,
      stdout: true,
      stderr: !opts.tty,
      tty: opts.tty,
      resize: terminal ? windowSizes(done.signal) : undefined,
      onStdout: (chunk) => void Deno.stdout.writeSync(chunk),
      onStderr: (chunk) => void Deno.stderr.writeSync(chunk),
      collect: false,
    });
    return { exitCode: r.exitCode, detached: !!r.detached };
  } finally {
    done.abort();
    if (terminal) {
      Deno.stdin.setRaw(false);
      Deno.stdout.writeSync(enc.encode("\r"));
    }
  }
}
