/** ProcessExits against real processes: exits are seen at once, with no polling. */
import { describe, expect, it } from "../testing/bdd.ts";
import { ProcessExits } from "./process_exits.ts";

function sleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
}

describe("ProcessExits", () => {
  it("resolves when a watched process exits, each when its own does", async () => {
    const exits = new ProcessExits();
    const a = sleeper(), b = sleeper();
    const order: string[] = [];
    const pa = exits.exited(a.pid)!.then(() => order.push("a"));
    const pb = exits.exited(b.pid)!.then(() => order.push("b"));
    expect(exits.size).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(order).toEqual([]);
    const t0 = performance.now();
    b.kill("SIGKILL");
    await pb;
    // Seen as it happens, not at a poll tick.
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(order).toEqual(["b"]);
    a.kill("SIGKILL");
    await pa;
    expect(order).toEqual(["b", "a"]);
    expect(exits.size).toBe(0);
    await a.status, await b.status;
  });

  it("sees an exit before the parent reaps it (a zombie has exited)", async () => {
    const exits = new ProcessExits();
    // The shell forks a subshell and stops itself; the subshell exits only once the shell is
    // stopped, so it stays a zombie of it. (A child that exited on a timer could end before
    // the shell stopped, and be reaped: a loaded CI run under qemu-user once lost that race.)
    const sh = new Deno.Command("sh", {
      args: [
        "-c",
        '(while ! grep -q "^State:.*T" /proc/$$/status; do sleep 0.01; done) & kill -STOP $$; wait',
      ],
      stdout: "piped",
    }).spawn();
    let pid = 0;
    for (let i = 0; i < 500 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const kids = await Deno.readTextFile(`/proc/${sh.pid}/task/${sh.pid}/children`)
        .catch(() => "");
      pid = Number(kids.trim().split(" ")[0]) || 0;
    }
    expect(pid).toBeGreaterThan(0);
    await exits.exited(pid);
    expect(await Deno.readTextFile(`/proc/${pid}/stat`)).toMatch(/\) Z /);
    sh.kill("SIGKILL");
    await sh.status;
  });

  it("a process that is gone already resolves at once; one pidfd per pid", async () => {
    const exits = new ProcessExits();
    const done = new Deno.Command("true").spawn();
    await done.status;
    await exits.exited(done.pid);
    const s = sleeper();
    const p1 = exits.exited(s.pid), p2 = exits.exited(s.pid);
    expect(p1).toBe(p2);
    expect(exits.size).toBe(1);
    s.kill("SIGKILL");
    await p1;
    await s.status;
  });
});
