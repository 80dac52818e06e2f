/**
 * An interactive session for `run -t`, `attach` and `tasks exec -t`/`-i`: with a terminal, it in
 * raw mode, keystrokes to the container, its output to ours, and the window size followed on
 * SIGWINCH — over the daemon's streaming server (the same SPDY protocol crictl uses).
 */
import { remoteCommand } from "../cri/streaming/client.ts";

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

/** Runs the session to its end; returns the remote exit code (exec) or 0 (attach). */
export async function interactiveSession(
  url: string,
  opts: { tty: boolean; stdin: boolean },
): Promise<number> {
  const terminal = opts.tty && Deno.stdin.isTerminal();
  const done = new AbortController();
  if (terminal) Deno.stdin.setRaw(true);
  try {
    const r = await remoteCommand(url, {
      stdin: opts.stdin ? Deno.stdin.readable : undefined,
      stdout: true,
      stderr: !opts.tty,
      tty: opts.tty,
      resize: terminal ? windowSizes(done.signal) : undefined,
      onStdout: (chunk) => void Deno.stdout.writeSync(chunk),
      onStderr: (chunk) => void Deno.stderr.writeSync(chunk),
      collect: false,
    });
    return r.exitCode;
  } finally {
    done.abort();
    if (terminal) {
      Deno.stdin.setRaw(false);
      Deno.stdout.writeSync(enc.encode("\r"));
    }
  }
}
