import { describe, expect, it } from "../../testing/bdd.ts";
import { readLog } from "./logs.ts";

const dec = new TextDecoder();

async function collect(gen: AsyncGenerator<Uint8Array>): Promise<string> {
  let s = "";
  for await (const c of gen) s += dec.decode(c);
  return s;
}

describe("readLog", () => {
  it("gives the last N lines without follow", async () => {
    const path = await Deno.makeTempFile();
    await Deno.writeTextFile(path, "a\nb\nc\nd\n");
    const out = await collect(
      readLog(path, { follow: false, tail: 2, stopped: () => Promise.resolve(true) }),
    );
    expect(out).toBe("c\nd\n");
    await Deno.remove(path);
  });

  it("follows appended bytes until the writer has stopped and the file is drained", async () => {
    const path = await Deno.makeTempFile();
    await Deno.writeTextFile(path, "one\n");
    let done = false;
    const reading = collect(
      readLog(path, { follow: true, tail: 0, pollMs: 10, stopped: () => Promise.resolve(done) }),
    );
    await new Promise((r) => setTimeout(r, 50));
    await Deno.writeTextFile(path, "two\n", { append: true });
    await new Promise((r) => setTimeout(r, 50));
    await Deno.writeTextFile(path, "three\n", { append: true });
    done = true;
    expect(await reading).toBe("one\ntwo\nthree\n");
    await Deno.remove(path);
  });

  it("ends as soon as the task exits, not at the next poll", async () => {
    const path = await Deno.makeTempFile();
    await Deno.writeTextFile(path, "hello\n");
    let done = false;
    let exit!: () => void;
    const exited = new Promise<void>((r) => exit = r);
    const t0 = performance.now();
    const reading = collect(
      readLog(path, {
        follow: true,
        tail: 0,
        pollMs: 10_000,
        exited,
        stopped: () => Promise.resolve(done),
      }),
    );
    await new Promise((r) => setTimeout(r, 30));
    await Deno.writeTextFile(path, "bye\n", { append: true }); // written before the exit
    done = true;
    exit();
    expect(await reading).toBe("hello\nbye\n");
    // A 10 s poll: only the exit can have ended it this soon.
    expect(performance.now() - t0).toBeLessThan(2_000);
    await Deno.remove(path);
  });

  it("keeps polling, not spinning, when the exit wait fails (no task)", async () => {
    const path = await Deno.makeTempFile();
    let checks = 0;
    const ac = new AbortController();
    const exited = Promise.reject(new Error("no task"));
    exited.catch(() => {});
    const reading = collect(
      readLog(path, {
        follow: true,
        tail: 0,
        pollMs: 50,
        exited,
        signal: ac.signal,
        stopped: () => Promise.resolve((checks++, false)),
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    ac.abort();
    expect(await reading).toBe("");
    // ~6 polls in 300 ms; a loop woken by the failed wait would have checked thousands of times.
    expect(checks).toBeLessThan(15);
    await Deno.remove(path);
  });

  it("reads a rotated file from its top", async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/0.log`;
    await Deno.writeTextFile(path, "old\n");
    let done = false;
    const reading = collect(
      readLog(path, { follow: true, tail: 0, pollMs: 10, stopped: () => Promise.resolve(done) }),
    );
    await new Promise((r) => setTimeout(r, 50));
    await Deno.rename(path, `${path}.1`);
    await Deno.writeTextFile(path, "new\n");
    await new Promise((r) => setTimeout(r, 80));
    done = true;
    expect(await reading).toBe("old\nnew\n");
    await Deno.remove(dir, { recursive: true });
  });
});
