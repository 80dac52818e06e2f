/**
 * Reading a container's CRI-format log file for `logs`: the last N lines, then (with follow)
 * new bytes as conmon appends them, until the task has stopped and the file is drained.
 *
 * @example
 * ```ts
 * for await (const chunk of readLog(path, { follow: true, tail: 10, stopped: () => done })) out(chunk);
 * ```
 */
import { pollPause } from "../../runtime/cri_log.ts";

export interface ReadLogOptions {
  follow: boolean;
  /** Only the last N lines first; 0 is all. */
  tail: number;
  /** Follow ends once this says the writer is gone and the file has no more bytes. */
  stopped: () => Promise<boolean>;
  /**
   * Settles when the writer is gone (the task exited): a follow waiting at the end of the file
   * looks again at once instead of at the next poll. Without it, `run --rm true` waited out the
   * poll (up to 100 ms) after its container had exited.
   */
  exited?: Promise<unknown>;
  signal?: AbortSignal;
  pollMs?: number;
}

/** The poll interval, cut short when `exited` settles. */
function pause(o: ReadLogOptions): Promise<void> {
  return pollPause(o.pollMs ?? 100, o.exited);
}

const CHUNK = 256 << 10;

async function tailOffset(file: Deno.FsFile, size: number, lines: number): Promise<number> {
  // Walk back from the end in blocks until enough newlines are seen.
  let pos = size, seen = 0;
  const buf = new Uint8Array(64 << 10);
  while (pos > 0) {
    const n = Math.min(buf.length, pos);
    pos -= n;
    await file.seek(pos, Deno.SeekMode.Start);
    let got = 0;
    while (got < n) got += (await file.read(buf.subarray(got, n))) ?? n;
    for (let i = n - 1; i >= 0; i--) {
      if (buf[i] === 10 && !(pos + i === size - 1)) {
        if (++seen === lines) return pos + i + 1;
      }
    }
  }
  return 0;
}

export async function* readLog(path: string, o: ReadLogOptions): AsyncGenerator<Uint8Array> {
  let file: Deno.FsFile | undefined;
  try {
    for (;;) {
      try {
        file = await Deno.open(path, { read: true });
        break;
      } catch (e) {
        if (
          !(e instanceof Deno.errors.NotFound) || !o.follow || (await o.stopped()) ||
          o.signal?.aborted
        ) return;
        await pause(o);
      }
    }
    let offset = o.tail > 0 ? await tailOffset(file, (await file.stat()).size, o.tail) : 0;
    await file.seek(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(CHUNK);
    for (;;) {
      if (o.signal?.aborted) return;
      const n = await file.read(buf);
      if (n !== null && n > 0) {
        offset += n;
        yield buf.slice(0, n);
        continue;
      }
      if (!o.follow) return;
      // Log rotation (reopen): a new file at the path means start reading it from its top.
      const [cur, onDisk] = await Promise.all([
        file.stat(),
        Deno.stat(path).catch(() => undefined),
      ]);
      if (onDisk && onDisk.ino !== cur.ino) {
        file.close();
        file = await Deno.open(path, { read: true });
        offset = 0;
        continue;
      }
      if (await o.stopped()) {
        // To the end once more: the writer may have flushed after our previous read.
        for (let last; (last = await file.read(buf));) yield buf.slice(0, last);
        return;
      }
      await pause(o);
    }
  } finally {
    file?.close();
  }
}
