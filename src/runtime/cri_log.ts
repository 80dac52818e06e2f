/**
 * The kubelet's CRI container log format, which conmon writes and the kubelet, `kubectl logs`,
 * attach's fallback and the CLI's `logs` read: one record per line,
 * `<RFC3339Nano> <stdout|stderr> <F|P> <content>`, where P marks a partial line (the content
 * continues in the next record) and F a full one. This module imports nothing, so the CLI can
 * use it without pulling in the daemon.
 *
 * @example
 * ```ts
 * import { parseCriLogLine } from "./cri_log.ts";
 * parseCriLogLine("2024-01-01T00:00:00.000000000Z stderr P half")?.partial; // true
 * ```
 *
 * @module
 */

/** The stream a record came from. */
export type CriStream = "stdout" | "stderr";

/** One parsed record of a CRI log file. */
export interface CriLogLine {
  time: string;
  stream: CriStream;
  /** A P record: the line goes on in the next record. */
  partial: boolean;
  content: string;
}

/** Output read back from a CRI log file: a line's content and its stream. */
export interface CriLogChunk {
  stream: CriStream;
  data: Uint8Array;
}

/**
 * A task's exit as a follower's wake-up: settles when `wait` resolves. A failed wait (no task
 * to wait for, or it was deleted) never settles, so it neither goes unhandled nor wakes a
 * follow in a loop.
 *
 * @example
 * ```ts
 * import { exitWake } from "./cri_log.ts";
 * const exited = exitWake(runtime.wait(id)); // safe to hold before the first await
 * ```
 */
export function exitWake(wait: Promise<unknown>): Promise<void> {
  return wait.then(() => {}, () => new Promise<void>(() => {}));
}

/**
 * A follower's wait at the end of a log file: the poll interval, cut short when `exited`
 * settles (the writer is gone, so one more look drains the file and ends the follow); a failed
 * `exited` wakes nothing (see {@link exitWake}).
 *
 * @example
 * ```ts
 * import { pollPause } from "./cri_log.ts";
 * await pollPause(100, runtime.wait(id));
 * ```
 */
export function pollPause(ms: number, exited?: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const slept = new Promise<void>((r) => timer = setTimeout(r, ms));
  if (!exited) return slept;
  return Promise.race([slept, exitWake(exited)]).finally(() => clearTimeout(timer));
}

/**
 * One parsed line of a CRI log file: `<RFC3339Nano> <stream> <F|P> <content>`.
 *
 * @example
 * ```ts
 * import { parseCriLogLine } from "./cri_log.ts";
 * parseCriLogLine("2024-01-01T00:00:00.000000000Z stdout F hello");
 * // { time: "2024-01-01T00:00:00.000000000Z", stream: "stdout", partial: false, content: "hello" }
 * ```
 */
export function parseCriLogLine(line: string): CriLogLine | undefined {
  const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1], stream: m[2] as CriStream, partial: m[3] === "P", content: m[4] };
}

/**
 * Follows a CRI log file from the position of `opened`, emitting each line's content (a newline
 * added after full lines) until `isDone` says the writer finished and the file is drained.
 * Reopens the path when it was replaced (log rotation). `exited`, when given, settles when the
 * writer exits: the follow then ends at once instead of at its next 100 ms poll.
 *
 * @example
 * ```ts
 * import { followCriLog } from "./cri_log.ts";
 * const f = await Deno.open(path);
 * const out = followCriLog(path, f, (await f.stat()).ino, () => Promise.resolve(false));
 * for await (const { stream, data } of out) console.log(stream, data.length);
 * ```
 */
export function followCriLog(
  path: string,
  opened: Deno.FsFile,
  openedIno: number | null,
  isDone: () => Promise<boolean>,
  exited?: Promise<unknown>,
): ReadableStream<CriLogChunk> {
  const enc = new TextEncoder();
  let file: Deno.FsFile | undefined = opened;
  let ino = openedIno;
  let pending = "";
  let stopped = false;
  const buf = new Uint8Array(64 * 1024);
  const dec = new TextDecoder();
  /** Enqueues every complete line in `pending`; true when any was a log line. */
  const emitLines = (controller: ReadableStreamDefaultController<CriLogChunk>): boolean => {
    let emitted = false;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const rec = parseCriLogLine(line);
      if (!rec) continue;
      controller.enqueue({
        stream: rec.stream,
        data: enc.encode(rec.partial ? rec.content : rec.content + "\n"),
      });
      emitted = true;
    }
    return emitted;
  };
  return new ReadableStream<CriLogChunk>({
    async pull(controller) {
      for (;;) {
        if (stopped || !file) return;
        const n = await file.read(buf);
        if (n) {
          pending += dec.decode(buf.subarray(0, n), { stream: true });
          if (emitLines(controller)) return;
          continue;
        }
        // At the end: rotated? finished? else wait for more.
        try {
          const st = await Deno.stat(path);
          if (st.ino !== ino) {
            file.close();
            file = await Deno.open(path, { read: true });
            ino = (await file.stat()).ino;
            continue;
          }
        } catch { /* between rename and reopen */ }
        if (await isDone()) {
          // conmon drains stdio before writing the exit file: what came since the read above
          // is the last of it. (It was once appended here and never parsed: the next read found
          // the end and the follow closed without those lines, when the exit came in between.)
          for (let last; (last = await file.read(buf));) {
            pending += dec.decode(buf.subarray(0, last), { stream: true });
            emitLines(controller);
          }
          stopped = true;
          file.close();
          controller.close();
          return;
        }
        await pollPause(100, exited);
      }
    },
    cancel() {
      stopped = true;
      file?.close();
    },
  });
}
