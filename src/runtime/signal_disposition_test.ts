/**
 * signalDroppedByInit against real processes: a shell made the init of a new PID namespace
 * (unshare, root only) before and after it traps SIGTERM, and processes that are no namespace's
 * init.
 */
import { describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { signalDroppedByInit } from "./signal_disposition.ts";

const SIGTERM = 15;
const SIGUSR1 = 10;

describe("signalDroppedByInit", () => {
  it("is false for a process that is no PID namespace's init, and for a pid that is gone", () => {
    expect(signalDroppedByInit(Deno.pid, SIGTERM)).toBe(false);
    expect(signalDroppedByInit(2 ** 22 + 1, SIGTERM)).toBe(false); // above pid_max's ceiling
  });

  it.skipIf(!isRoot, ROOT_REASON)(
    "is true for a namespace init without a handler, false once it traps the signal",
    async () => {
      // The init sleeps untrapped until it sees the go file, then traps SIGTERM (busybox/dash
      // `trap` installs a handler) and keeps running.
      const dir = await Deno.makeTempDir({ prefix: "k8sc-sigdisp-" });
      const child = new Deno.Command("unshare", {
        args: [
          "--pid",
          "--fork",
          "--kill-child",
          "sh",
          "-c",
          `while [ ! -e ${dir}/go ]; do sleep 0.05; done; trap 'exit 0' TERM; touch ${dir}/trapped; while :; do sleep 0.05; done`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        // unshare --fork: the namespace's init is unshare's child.
        let init = 0;
        for (let i = 0; i < 100 && !init; i++) {
          await new Promise((r) => setTimeout(r, 20));
          const kids = Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`)
            .trim();
          init = Number(kids.split(" ")[0] || 0);
        }
        expect(init).toBeGreaterThan(0);
        expect(signalDroppedByInit(init, SIGTERM)).toBe(true);
        await Deno.writeTextFile(`${dir}/go`, "");
        for (let i = 0; i < 100; i++) {
          if (await Deno.stat(`${dir}/trapped`).then(() => true, () => false)) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(signalDroppedByInit(init, SIGTERM)).toBe(false);
        // Only the trapped signal: SIGUSR1 would still be dropped.
        expect(signalDroppedByInit(init, SIGUSR1)).toBe(true);
        Deno.kill(init, "SIGTERM");
        expect((await child.status).code).toBe(0);
      } finally {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await Deno.remove(dir, { recursive: true });
      }
    },
  );
});
