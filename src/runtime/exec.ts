/**
 * Processes run inside a running container with `runc exec`: the process spec built from the
 * container's own, the piped and the terminal variant as {@link ExecProcess}es (stdio as web
 * streams, the exit code as a promise), and collecting one to completion for ExecSync.
 *
 * @example
 * ```ts
 * import { collectExec, execPiped, execProcessSpec } from "./exec.ts";
 * await Deno.writeTextFile(processFile, JSON.stringify(await execProcessSpec(config, o)));
 * const r = await collectExec(execPiped(id, runc, { processFile, pidFile, logFile }), id, o.args);
 * ```
 *
 * @module
 */
import { RuntimeError } from "../errdefs/errors.ts";
import {
  close as closeFd,
  O_CLOEXEC,
  O_NOCTTY,
  O_RDWR,
  open as openFd,
  openPty,
  readAsync,
  setNonblocking,
  setWinsize,
  writeAsync,
} from "../../ffi/mod.ts";
import { readPidFile } from "./conmon.ts";
import { type Runc, signalName, signalNumber } from "./runc.ts";
import type { ExecOptions, ExecProcess, ExecSyncOptions, ExecSyncResult } from "./runtime.ts";

/**
 * An error that names the deadline that passed (errdefs has the kind but no class).
 *
 * @example
 * ```ts
 * throw new DeadlineExceededError(`exec ["sleep","9"] in container "c1" timed out after 5 ms`);
 * ```
 */
export class DeadlineExceededError extends RuntimeError {
  constructor(message: string) {
    super("deadline-exceeded", message);
  }
}

/** The files of one `runc exec`: the process spec it reads, the pid and log files it writes. */
export interface ExecFiles {
  processFile: string;
  pidFile: string;
  logFile: string;
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends a signal by number to a host pid, ignoring a process that already left. */
function killPid(pid: number, sig: number): void {
  try {
    Deno.kill(pid, signalName(sig) as Deno.Signal);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** The size a new exec terminal starts with, until the client's first resize. */
export const INITIAL_TERMINAL = { rows: 24, cols: 80 } as const;

/**
 * The exec process spec: the container's process (from its config.json at `configPath`) with
 * the caller's overrides.
 *
 * @example
 * ```ts
 * const spec = await execProcessSpec(`${dir}/config.json`, { args: ["ls"], tty: false });
 * await Deno.writeTextFile(`${dir}/exec-1.json`, JSON.stringify(spec));
 * ```
 */
export async function execProcessSpec(
  configPath: string,
  o: ExecOptions,
): Promise<Record<string, unknown>> {
  // (terminal follows o.tty: runc then makes the console and hands it over)
  const config = JSON.parse(await Deno.readTextFile(configPath)) as {
    process?: Record<string, unknown>;
  };
  const base = { ...(config.process ?? {}) };
  const env = [...((base.env as string[] | undefined) ?? []), ...(o.env ?? [])];
  const spec: Record<string, unknown> = {
    ...base,
    args: o.args,
    env,
    terminal: o.tty === true,
  };
  // runc makes the container's console and copies our pty's size to it only after the process
  // started: without consoleSize a quick `stty size` saw 0x0 (and failed) one run in three.
  if (o.tty) spec.consoleSize = { height: INITIAL_TERMINAL.rows, width: INITIAL_TERMINAL.cols };
  if (o.cwd) spec.cwd = o.cwd;
  if (o.user) {
    spec.user = {
      uid: o.user.uid,
      gid: o.user.gid,
      additionalGids: o.user.additionalGids ?? [],
    };
  }
  // The exec'd process inherits the container's limits; a score below ours is refused here.
  delete spec.oomScoreAdj;
  return spec;
}

/**
 * A `runc exec` in the foreground with pipes for stdio: see {@link ExecProcess}. `f` names the
 * process spec runc reads and the pid and log files it writes; all three are removed when it
 * exits.
 *
 * @example
 * ```ts
 * const p = execPiped("c1", runc, { processFile, pidFile, logFile }, false);
 * console.log(await new Response(p.stdout).text(), await p.exitCode);
 * ```
 */
export function execPiped(id: string, runc: Runc, f: ExecFiles, stdin?: boolean): ExecProcess {
  const { processFile, pidFile, logFile } = f;
  const child = runc.execCommand(id, { processFile, pidFile, stdin }, logFile);
  const readPid = () => readPidFile(pidFile);
  let knownPid: number | undefined;
  const pidWatch = (async () => {
    for (let i = 0; i < 200 && knownPid === undefined; i++) {
      knownPid = await readPid();
      if (knownPid) break;
      await sleep(10);
    }
  })();
  const exitCode = child.status.then(async (s) => {
    knownPid ??= await readPid();
    const err = s.code !== 0 ? await runc.execError(id, logFile) : undefined;
    await Promise.all(
      [processFile, pidFile, logFile].map((p) => Deno.remove(p).catch(() => {})),
    );
    if (err) throw err;
    return s.signal ? 128 + signalNumber(s.signal) : s.code;
  });
  exitCode.catch(() => {}); // the caller may only look at the streams
  return {
    pid: async () => {
      await Promise.race([pidWatch, exitCode.catch(() => {})]);
      return knownPid;
    },
    stdin: stdin ? child.stdin : undefined,
    stdout: child.stdout,
    stderr: child.stderr,
    exitCode,
    kill: async (sig: string | number = "SIGKILL") => {
      await Promise.race([pidWatch, exitCode.catch(() => {})]);
      if (knownPid) killPid(knownPid, signalNumber(sig));
    },
  };
}

export function execTty(
  id: string,
  runtimePath: string,
  runc: Runc,
  f: ExecFiles & { stdin?: boolean },
): ExecProcess {
  const pty = openPty();
  // Our own slave descriptor keeps the master from reading EIO before runc opened the slave;
  // it is closed once runc exits, after which the master drains and then reads end-of-file.
  let slave = -1;
  let child: Deno.ChildProcess;
  try {
    setNonblocking(pty.master);
    setWinsize(pty.master, INITIAL_TERMINAL.rows, INITIAL_TERMINAL.cols);
    slave = openFd(pty.slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC);
    const args = [
      ...runc.globalArgs(f.logFile),
      "exec",
      "--process",
      f.processFile,
      "--pid-file",
      f.pidFile,
      id,
    ];
    child = new Deno.Command("/bin/sh", {
      args: ["-c", 'exec "$0" "$@" <"$K8SC_PTY" >"$K8SC_PTY"', runtimePath, ...args],
      env: { K8SC_PTY: pty.slavePath },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (slave >= 0) closeFd(slave);
    closeFd(pty.master);
    throw e;
  }
  const runcStderr = new Response(child.stderr).text().catch(() => "");
  let refs = 2; // the output reader and the exit watcher
  const release = () => {
    if (--refs === 0) closeFd(pty.master);
  };
  let knownPid: number | undefined;
  const readPid = () => readPidFile(f.pidFile);
  const pidWatch = (async () => {
    for (let i = 0; i < 200 && knownPid === undefined; i++) {
      knownPid = await readPid();
      if (knownPid) break;
      await sleep(10);
    }
  })();
  const exitCode = child.status.then(async (s) => {
    closeFd(slave);
    knownPid ??= await readPid();
    const err = s.code !== 0 ? await runc.execError(id, f.logFile) : undefined;
    await runcStderr;
    await Promise.all(
      [f.processFile, f.pidFile, f.logFile].map((p) => Deno.remove(p).catch(() => {})),
    );
    release();
    if (err) throw err;
    return s.signal ? 128 + signalNumber(s.signal) : s.code;
  });
  exitCode.catch(() => {});
  const ac = new AbortController();
  let reading: Promise<unknown> | undefined;
  let ended = false;
  const stdout = new ReadableStream<Uint8Array>({
    async pull(c) {
      const buf = new Uint8Array(32 * 1024);
      try {
        reading = readAsync(pty.master, buf, { signal: ac.signal });
        const n = await reading as number;
        if (n > 0) {
          c.enqueue(buf.slice(0, n));
          return;
        }
      } catch (e) {
        if (!ac.signal.aborted) c.error(e);
      }
      if (!ended) {
        ended = true;
        if (!ac.signal.aborted) c.close();
        release();
      }
    },
    async cancel() {
      ac.abort();
      await reading?.catch(() => {});
      if (!ended) {
        ended = true;
        release();
      }
    },
  }, { highWaterMark: 0 });
  const stdin = f.stdin
    ? new WritableStream<Uint8Array>({
      async write(chunk) {
        if (refs > 0) await writeAsync(pty.master, chunk, { signal: ac.signal });
      },
    })
    : undefined;
  const stderr = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  return {
    pid: async () => {
      await Promise.race([pidWatch, exitCode.catch(() => {})]);
      return knownPid;
    },
    stdin,
    stdout,
    stderr,
    exitCode,
    kill: async (sig: string | number = "SIGKILL") => {
      await Promise.race([pidWatch, exitCode.catch(() => {})]);
      if (knownPid) killPid(knownPid, signalNumber(sig));
    },
    resize: (width: number, height: number) => {
      if (refs > 0) {
        setWinsize(pty.master, height, width);
        // runc copies its console's size to the container's on SIGWINCH.
        try {
          child.kill("SIGWINCH");
        } catch { /* runc already exited */ }
      }
      return Promise.resolve();
    },
  };
}

/**
 * Collects a started exec to completion (CRI ExecSync): writes `opts.stdin` and closes it;
 * after `timeoutMs` the process is killed and a DeadlineExceeded error names the command;
 * output past `maxOutput` bytes per stream is dropped and reported as truncated.
 *
 * @example
 * ```ts
 * const r = await collectExec(await rt.exec("c1", { args: ["ls"], stdin: false }), "c1", ["ls"]);
 * console.log(r.exitCode, new TextDecoder().decode(r.stdout));
 * ```
 */
export async function collectExec(
  p: ExecProcess,
  id: string,
  args: string[],
  opts: Pick<ExecSyncOptions, "timeoutMs" | "maxOutput" | "stdin" | "onStart"> = {},
): Promise<ExecSyncResult> {
  const max = opts.maxOutput ?? 16 * 1024 * 1024;
  opts.onStart?.(await p.pid());
  if (p.stdin) {
    const w = p.stdin.getWriter();
    if (opts.stdin?.length) await w.write(opts.stdin).catch(() => {});
    await w.close().catch(() => {});
  }
  let truncated = false;
  const collect = async (s: ReadableStream<Uint8Array>) => {
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of s) {
      const room = max - size;
      if (room <= 0) {
        truncated = true;
        continue;
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (part.length < chunk.length) truncated = true;
      parts.push(part);
      size += part.length;
    }
    const out = new Uint8Array(size);
    let off = 0;
    for (const part of parts) {
      out.set(part, off);
      off += part.length;
    }
    return out;
  };
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (opts.timeoutMs && opts.timeoutMs > 0) {
    timer = setTimeout(() => {
      timedOut = true;
      p.kill("SIGKILL").catch(() => {});
    }, opts.timeoutMs);
  }
  try {
    const [stdout, stderr, exitCode] = await Promise.all([
      collect(p.stdout),
      collect(p.stderr),
      p.exitCode,
    ]);
    if (timedOut) {
      throw new DeadlineExceededError(
        `exec ${JSON.stringify(args)} in container "${id}" timed out after ${opts.timeoutMs} ms`,
      );
    }
    return { exitCode, stdout, stderr, truncated };
  } finally {
    clearTimeout(timer);
  }
}
