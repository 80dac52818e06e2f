import { describe, expect, it } from "../testing/bdd.ts";
import { type CriLogChunk, exitWake, followCriLog, parseCriLogLine, pollPause } from "./cri_log.ts";

describe("CRI log lines", () => {
  it("parse into time, stream, full or partial, and content (a carriage return included)", () => {
    expect(parseCriLogLine("2024-01-01T00:00:00.000000000Z stdout F hello")).toEqual({
      time: "2024-01-01T00:00:00.000000000Z",
      stream: "stdout",
      partial: false,
      content: "hello",
    });
    expect(parseCriLogLine("2024-01-01T00:00:00Z stderr P 50%\r")?.content).toBe("50%\r");
    expect(parseCriLogLine("2024-01-01T00:00:00Z stdout F")?.content).toBe("");
    expect(parseCriLogLine("not a log line")).toBeUndefined();
  });
});

async function collect(s: ReadableStream<CriLogChunk>): Promise<string> {
  const dec = new TextDecoder();
  let out = "";
  for await (const c of s) out += `${c.stream}:${dec.decode(c.data)}`;
  return out;
}

describe("following a CRI log file", () => {
  async function logFile(
    lines: string,
  ): Promise<{ path: string; file: Deno.FsFile; ino: number | null }> {
    const path = await Deno.makeTempFile({ suffix: ".log" });
    await Deno.writeTextFile(path, lines);
    const file = await Deno.open(path, { read: true });
    return { path, file, ino: (await file.stat()).ino };
  }

  it("writes partial lines without a newline, keeps streams apart, skips garbage, ends once done and drained", async () => {
    const { path, file, ino } = await logFile(
      "2024-01-01T00:00:00Z stdout P hel\n2024-01-01T00:00:00Z stdout F lo\nnot a line\n",
    );
    let done = false;
    const out = collect(followCriLog(path, file, ino, () => Promise.resolve(done)));
    await Deno.writeTextFile(path, "2024-01-01T00:00:01Z stderr F oops\n", { append: true });
    done = true;
    expect(await out).toBe("stdout:helstdout:lo\nstderr:oops\n");
    await Deno.remove(path);
  });

  it("keeps what the writer flushed between its last read and its exit", async () => {
    const { path, file, ino } = await logFile("");
    // The race: the read finds the end, then the writer appends and exits before the follow
    // asks whether it is done.
    let flushed = false;
    const done = async () => {
      if (!flushed) {
        await Deno.writeTextFile(path, "2024-01-01T00:00:00Z stdout F last words\n", {
          append: true,
        });
        flushed = true;
      }
      return true;
    };
    expect(await collect(followCriLog(path, file, ino, done))).toBe("stdout:last words\n");
    await Deno.remove(path);
  });

  it("ends as soon as the writer exits, not at the next poll", async () => {
    const { path, file, ino } = await logFile("");
    let done = false;
    let exit!: () => void;
    const exited = new Promise<void>((r) => exit = r);
    const out = collect(followCriLog(path, file, ino, () => Promise.resolve(done), exited));
    await new Promise((r) => setTimeout(r, 20)); // the follow sits in its 100 ms poll
    await Deno.writeTextFile(path, "2024-01-01T00:00:00Z stdout F bye\n", { append: true });
    done = true;
    const t0 = performance.now();
    exit();
    expect(await out).toBe("stdout:bye\n");
    // The poll left alone would take up to 100 ms more.
    expect(performance.now() - t0).toBeLessThan(60);
    await Deno.remove(path);
  });

  it("reads a rotated file from its top", async () => {
    const { path, file, ino } = await logFile("2024-01-01T00:00:00Z stdout F one\n");
    let done = false;
    const out = collect(
      followCriLog(path, file, ino, () => Promise.resolve(done)),
    );
    await new Promise((r) => setTimeout(r, 20));
    await Deno.rename(path, `${path}.1`);
    await Deno.writeTextFile(path, "2024-01-01T00:00:01Z stdout F two\n");
    await new Promise((r) => setTimeout(r, 250)); // two polls: the reopen, then the read
    done = true;
    expect(await out).toBe("stdout:one\nstdout:two\n");
    await Deno.remove(path);
    await Deno.remove(`${path}.1`);
  });
});

describe("a follower's pause", () => {
  const later = (ms: number) => new Promise<string>((r) => setTimeout(() => r("timer"), ms));

  it("wakes when the task exits, and sleeps its interval out when the wait failed", async () => {
    let exit!: () => void;
    const waited = new Promise<void>((r) => (exit = r));
    const woken = exitWake(waited).then(() => "exit");
    exit();
    expect(await Promise.race([woken, later(1000)])).toBe("exit");
    // A failed wait neither rejects (nothing unhandled) nor settles.
    const failed = exitWake(Promise.reject(new Error("no task"))).then(() => "settled");
    expect(await Promise.race([failed, later(30)])).toBe("timer");
    const t0 = performance.now();
    await pollPause(40, Promise.reject(new Error("deleted")));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    const t1 = performance.now();
    await pollPause(5_000, Promise.resolve());
    expect(performance.now() - t1).toBeLessThan(1000);
  });
});
