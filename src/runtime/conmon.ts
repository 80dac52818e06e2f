/**
 * Talking to conmon 2.1 (one monitor process per container, which runs `runc create`, holds the
 * container's stdio, writes the CRI log file and the exit file, and survives the daemon).
 *
 * Deno cannot hand a child extra file descriptors, so the sync and start pipes conmon expects
 * as inherited fds (`_OCI_SYNCPIPE`, `_OCI_STARTPIPE`) are named FIFOs in the container's state
 * directory, wired to fds 3 and 4 by a `/bin/sh -c 'exec conmon … 3>"$SYNC" 4<"$START"'`:
 *
 * - start pipe: conmon blocks reading it before it forks (CRI-O uses the gap to move conmon into
 *   a cgroup); we write one byte and close it.
 * - sync pipe: conmon writes one JSON line, `{"data": <container pid>}` once `runc create`
 *   succeeded, or `{"data": -1, "message": "<runc's stderr>"}` when it failed.
 *
 * The control FIFO `ctl` in conmon's bundle directory takes lines `"<type> <height> <width>\n"`:
 * type 1 resizes the terminal, type 2 reopens the log file (conmon 2.1.6 src/config.h).
 *
 * @example
 * ```ts
 * import { conmonArgs } from "./conmon.ts";
 * conmonArgs({ id: "c1", cuuid: "ab12", dir: "/run/x/c1", runtimePath: "/usr/bin/runc",
 *   runtimeArgs: ["--root=/run/x/runc"], logPath: "/var/log/pods/c1.log", socketDir: "/run/x/s",
 *   tty: false, stdin: false, stdinOnce: false });
 * ```
 *
 * @module
 */

import { close, mknod, O_NONBLOCK, O_WRONLY, open, S_IFIFO } from "../../ffi/mod.ts";
import { UnavailableError } from "../errdefs/errors.ts";

/** Inputs of {@link conmonArgs}: everything that goes on conmon's command line. */
export interface ConmonArgsInput {
  /** Container id (`-c`), also the exit file's name. */
  id: string;
  /** Short unique id (`-u`): names the attach socket's directory symlink. */
  cuuid: string;
  /** Container state directory: conmon's bundle (`-b`), persist dir and cwd. */
  dir: string;
  /** OCI runtime binary (`-r`). */
  runtimePath: string;
  /** Global runtime flags, each passed as one `--runtime-arg`. */
  runtimeArgs: string[];
  /** CRI log file (`-l k8s-file:<path>`). */
  logPath: string;
  /** Where conmon puts the attach socket's directory symlink (`--socket-dir-path`). */
  socketDir: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  /** Container name (`-n`), for conmon's own messages. */
  name?: string;
  /** conmon's log level: error, warn, info, debug, trace. */
  logLevel?: string;
  /** `--log-size-max` in bytes (conmon rotates by truncation above it). */
  logSizeMax?: number;
  /** Pass `--systemd-cgroup` to conmon (it then puts itself under a systemd scope). */
  systemdCgroup?: boolean;
  /** Path of the conmon binary (`/usr/bin/conmon`). */
  conmonPath?: string;
}

/** Files of one container state directory, named once so every part agrees. */
export function containerFiles(dir: string) {
  return {
    meta: `${dir}/meta.json`,
    config: `${dir}/config.json`,
    conmonPid: `${dir}/conmon.pid`,
    pid: `${dir}/container.pid`,
    exitDir: `${dir}/exits`,
    syncFifo: `${dir}/sync.fifo`,
    startFifo: `${dir}/start.fifo`,
    ctl: `${dir}/ctl`,
    winsz: `${dir}/winsz`,
    oom: `${dir}/oom`,
    runcLog: `${dir}/runc.log`,
  };
}

/**
 * conmon's argument vector (without the binary) for creating a container with API version 1,
 * after CRI-O's `createContainer`: runc's global flags as `--runtime-arg`s, the CRI log driver,
 * exit dir and persist dir in the state directory.
 *
 * @example
 * ```ts
 * import { conmonArgs } from "./conmon.ts";
 * const args = conmonArgs({ id: "c", cuuid: "u", dir: "/d", runtimePath: "/usr/bin/runc",
 *   runtimeArgs: [], logPath: "/l", socketDir: "/s", tty: true, stdin: true, stdinOnce: false });
 * args.includes("--leave-stdin-open"); // true
 * ```
 */
export function conmonArgs(i: ConmonArgsInput): string[] {
  const f = containerFiles(i.dir);
  const args = [
    "--api-version",
    "1",
    "-c",
    i.id,
    "-u",
    i.cuuid,
    "-n",
    i.name ?? i.id,
    "-r",
    i.runtimePath,
    "-b",
    i.dir,
    "-p",
    f.pid,
    "-P",
    f.conmonPid,
    "-l",
    `k8s-file:${i.logPath}`,
    "--exit-dir",
    f.exitDir,
    "--persist-dir",
    i.dir,
    "--socket-dir-path",
    i.socketDir,
    "--log-level",
    i.logLevel ?? "error",
  ];
  for (const a of i.runtimeArgs) args.push("--runtime-arg", a);
  if (i.systemdCgroup) args.push("--systemd-cgroup");
  if (i.logSizeMax && i.logSizeMax > 0) args.push("--log-size-max", String(i.logSizeMax));
  if (i.tty) args.push("-t");
  if (i.stdin) {
    args.push("-i");
    // conmon closes the container's stdin when the last attach client leaves unless told to
    // leave it open: that is exactly CRI's stdinOnce=false.
    if (!i.stdinOnce) args.push("--leave-stdin-open");
  }
  return args;
}

/** One message conmon writes on the sync pipe. */
export interface SyncMessage {
  /** The container pid (> 0), or -1 (negative) when the runtime failed. */
  data: number;
  /** The runtime's stderr when it failed. */
  message?: string;
}

/**
 * Parses the first complete JSON line conmon wrote on the sync pipe.
 *
 * @example
 * ```ts
 * import { parseSyncMessage } from "./conmon.ts";
 * parseSyncMessage('{"data": 42}\n'); // { data: 42 }
 * ```
 */
export function parseSyncMessage(text: string): SyncMessage | undefined {
  const line = text.split("\n").find((l) => l.trim());
  if (!line) return undefined;
  const msg = JSON.parse(line) as SyncMessage;
  if (typeof msg.data !== "number") throw new Error(`unexpected conmon sync message: ${line}`);
  return msg;
}

/** Creates a named FIFO (mode 0600) through the ffi mknod binding. */
export function mkfifo(path: string): void {
  mknod(path, S_IFIFO | 0o600);
}

/** Result of {@link spawnConmon}. */
export interface ConmonStart {
  /** What conmon reported on the sync pipe; undefined when it closed the pipe without a word. */
  sync?: SyncMessage;
  /** Exit status of the launching shell (conmon's first process, which exits after forking). */
  code: number;
  /** Whatever conmon printed before it detached (usually empty). */
  stderr: string;
}

const decoder = new TextDecoder();

/**
 * Launches conmon with the sync and start FIFOs as fds 3 and 4, lets it go through the start
 * pipe, and waits (up to `timeoutMs`) for its one sync message. conmon double-forks: the
 * launched process exits at once and the monitor lives on, reparented away from us, which is
 * what lets containers outlive the daemon.
 */
export async function spawnConmon(
  conmonPath: string,
  args: string[],
  dir: string,
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ConmonStart> {
  const f = containerFiles(dir);
  mkfifo(f.syncFifo);
  mkfifo(f.startFifo);
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'exec "$@" 3>"$_K8SC_SYNC" 4<"$_K8SC_START"', "sh", conmonPath, ...args],
    cwd: dir,
    env: {
      ...opts.env,
      _OCI_SYNCPIPE: "3",
      _OCI_STARTPIPE: "4",
      _K8SC_SYNC: f.syncFifo,
      _K8SC_START: f.startFifo,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderrP = new Response(child.stderr).text().catch(() => "");
  // If the shell dies before opening its ends (no conmon binary, bad fifo), our blocking opens
  // would never return: opening a FIFO read-write never blocks and releases them.
  let exited = false;
  const statusP = child.status.then(async (s) => {
    exited = true;
    for (const p of [f.syncFifo, f.startFifo]) {
      try {
        const h = await Deno.open(p, { read: true, write: true });
        h.close();
      } catch { /* already gone */ }
    }
    return s;
  });
  const [syncFile, startFile] = await Promise.all([
    Deno.open(f.syncFifo, { read: true }),
    Deno.open(f.startFifo, { write: true }),
  ]);
  try {
    try {
      if (!exited) await startFile.write(new Uint8Array([0]));
    } catch { /* conmon died: the sync pipe tells */ }
    startFile.close();
    const text = await readLine(syncFile, opts.timeoutMs ?? 120_000, dir);
    const status = await statusP;
    const stderr = await stderrP;
    return { sync: text ? parseSyncMessage(text) : undefined, code: status.code, stderr };
  } finally {
    try {
      syncFile.close();
    } catch { /* closed */ }
    await Deno.remove(f.syncFifo).catch(() => {});
    await Deno.remove(f.startFifo).catch(() => {});
  }
}

/** Reads up to the first newline (or EOF), failing after `timeoutMs`. */
async function readLine(file: Deno.FsFile, timeoutMs: number, dir: string): Promise<string> {
  let text = "";
  const buf = new Uint8Array(8192);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new UnavailableError(`conmon for ${dir} did not report within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    while (!text.includes("\n")) {
      const n = await Promise.race([file.read(buf), timeout]);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
  return text;
}

/**
 * Writes one line to a FIFO that a live conmon reads. Opening a FIFO for writing blocks while
 * nobody reads it, so a non-blocking probe first tells "conmon is gone" (ENXIO) apart.
 * Returns false when no reader exists.
 */
export async function writeFifo(path: string, line: string): Promise<boolean> {
  try {
    close(open(path, O_WRONLY | O_NONBLOCK));
  } catch {
    return false;
  }
  const file = await Deno.open(path, { write: true });
  try {
    await file.write(new TextEncoder().encode(line));
  } finally {
    file.close();
  }
  return true;
}

/**
 * True when `pid` is a live conmon monitoring the container whose state directory is `dir`
 * (its command line names both), so a recycled pid is never mistaken for our monitor.
 */
export async function isConmonAlive(pid: number | undefined, dir: string): Promise<boolean> {
  if (!pid || pid <= 0) return false;
  let cmdline: string;
  try {
    cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
  } catch {
    return false;
  }
  const argv = cmdline.split("\0");
  return (argv[0] ?? "").endsWith("conmon") && argv.includes(dir);
}

/** Reads a pid file written by conmon or runc; undefined when absent or empty. */
export async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const n = parseInt((await Deno.readTextFile(path)).trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
