/**
 * Attaching to a container's own process: through conmon's attach socket, or, when that cannot
 * be reached (a container recovered without its conmon), by following its CRI log file and
 * writing to its init's stdin pipe directly.
 *
 * @example
 * ```ts
 * import { attachFromLog, attachSocket } from "./attach.ts";
 * const streams = await exists(sock)
 *   ? attachSocket(sock, true)
 *   : await attachFromLog(logPath, pid, () => Promise.resolve(exited()));
 * ```
 *
 * @module
 */
import {
  AF_UNIX,
  close as closeFd,
  connectUnix,
  readAsync,
  SHUT_WR,
  shutdown,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_SEQPACKET,
  socket,
  writeAsync,
} from "../../ffi/mod.ts";
import { followCriLog } from "./cri_log.ts";
import type { AttachChunk, AttachStreams } from "./runtime.ts";

/** The largest stdin packet sent to conmon (it reads at most 32 KiB - 1 per packet). */
const ATTACH_STDIN_PACKET = 4096;

/**
 * Connects to conmon's attach socket at `path` (`SOCK_SEQPACKET`): every packet conmon sends is
 * one byte naming the pipe (2 stdout, 3 stderr; a terminal's output is stdout) and the data;
 * what the client writes is the container's stdin, and shutting down the write side ends it
 * (conmon closes the container's stdin unless it runs with --leave-stdin-open, i.e. unless
 * stdinOnce is false). Throws when the socket cannot be reached.
 *
 * @example
 * ```ts
 * const { output } = attachSocket(`${stateDir}/attach/${cuuid}/attach`, false);
 * for await (const chunk of output) Deno.stdout.writeSync(chunk.data);
 * ```
 */
export function attachSocket(path: string, withStdin: boolean): AttachStreams {
  const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK);
  try {
    connectUnix(fd, path);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  let refs = withStdin ? 2 : 1;
  const release = () => {
    if (--refs === 0) closeFd(fd);
  };
  const ac = new AbortController();
  let reading: Promise<number> | undefined;
  let outputDone = false;
  const finishOutput = () => {
    if (outputDone) return;
    outputDone = true;
    release();
  };
  const output = new ReadableStream<AttachChunk>({
    async pull(c) {
      const buf = new Uint8Array(32 * 1024);
      for (;;) {
        let n: number;
        try {
          reading = readAsync(fd, buf, { signal: ac.signal });
          n = await reading;
        } catch (e) {
          if (!ac.signal.aborted) c.error(e);
          finishOutput();
          return;
        }
        if (n === 0) {
          c.close();
          finishOutput();
          return;
        }
        if (n === 1) continue;
        c.enqueue({ stream: buf[0] === 3 ? "stderr" : "stdout", data: buf.slice(1, n) });
        return;
      }
    },
    async cancel() {
      ac.abort();
      await reading?.catch(() => {});
      finishOutput();
    },
  }, { highWaterMark: 0 });
  let stdinDone = false;
  const endStdin = () => {
    if (stdinDone) return;
    stdinDone = true;
    try {
      shutdown(fd, SHUT_WR);
    } catch { /* conmon already gone */ }
    release();
  };
  const stdin = withStdin
    ? new WritableStream<Uint8Array>({
      async write(chunk) {
        for (let off = 0; off < chunk.length; off += ATTACH_STDIN_PACKET) {
          await writeAsync(fd, chunk.subarray(off, off + ATTACH_STDIN_PACKET));
        }
      },
      close: endStdin,
      abort: endStdin,
    })
    : undefined;
  return { stdin, output };
}

/**
 * The fallback attach: output is the tail of the CRI log file at `logPath` (lines as conmon
 * wrote them, from now on; partial lines joined) until `isDone` says the container exited and
 * the file is drained; stdin, when `stdinPid` is given (non-TTY containers created with stdin),
 * is that process's stdin pipe opened through /proc/<pid>/fd/0. `exited` (the container's
 * wait) ends the output as soon as the container exits rather than at the next poll.
 *
 * @example
 * ```ts
 * const { output } = await attachFromLog("/var/log/pods/p/c/0.log", undefined, isDone);
 * ```
 */
export async function attachFromLog(
  logPath: string,
  stdinPid: number | undefined,
  isDone: () => Promise<boolean>,
  exited?: Promise<unknown>,
): Promise<AttachStreams> {
  let stdin: WritableStream<Uint8Array> | undefined;
  if (stdinPid !== undefined) {
    const file = await Deno.open(`/proc/${stdinPid}/fd/0`, { write: true });
    // FsFile.writable was seen to hold small writes on a pipe until close: write directly.
    stdin = new WritableStream<Uint8Array>({
      async write(chunk) {
        for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
      },
      close() {
        file.close();
      },
      abort() {
        file.close();
      },
    });
  }
  // Position at the end before returning, so nothing written after attach() is missed.
  const log = await Deno.open(logPath, { read: true });
  const ino = (await log.stat()).ino;
  await log.seek(0, Deno.SeekMode.End);
  const output: ReadableStream<AttachChunk> = followCriLog(logPath, log, ino, isDone, exited);
  return { stdin, output };
}
