import { describe, expect, it } from "../testing/bdd.ts";
import { schedulePageOut, startMemoryTrimmer } from "./memory.ts";
import { createLogger } from "../log/logger.ts";

describe("memory trimmer", () => {
  it("trims on its interval, one at a time, and stops", async () => {
    let calls = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const trimmer = startMemoryTrimmer({
      intervalMs: 10,
      trim: async () => {
        calls++;
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await new Promise((r) => setTimeout(r, 25));
        inFlight--;
        return true;
      },
    });
    // Until it has trimmed twice (not a fixed 120 ms: a busy emulated CI run trimmed once in
    // that time); bounded, so a trimmer that never runs again fails here.
    for (let waited = 0; calls < 2 && waited < 30_000; waited += 20) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await trimmer.stop();
    const after = calls;
    await new Promise((r) => setTimeout(r, 40));
    expect(after).toBeGreaterThanOrEqual(2);
    expect(calls).toBe(after);
    expect(maxInFlight).toBe(1);
  });

  it("gives up after a failure and says so once", async () => {
    const lines: string[] = [];
    let calls = 0;
    const trimmer = startMemoryTrimmer({
      intervalMs: 5,
      log: createLogger({ level: "warn", sink: (l) => lines.push(l) }),
      trim: () => {
        calls++;
        return Promise.reject(new Error("no malloc_trim"));
      },
    });
    await new Promise((r) => setTimeout(r, 60));
    await trimmer.stop();
    expect(calls).toBe(1);
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("no malloc_trim");
  });
});

describe("start-up page-out", () => {
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("pages out once, after its delay, and logs what was resident", async () => {
    const lines: string[] = [];
    let calls = 0;
    schedulePageOut({
      delayMs: 20,
      log: createLogger({ level: "debug", sink: (l) => lines.push(l) }),
      pageOut: () => (calls++, { mappings: 3, residentBytes: 38 * 1048576 }),
    });
    expect(calls).toBe(0);
    for (let waited = 0; calls === 0 && waited < 30_000; waited += 10) await wait(10);
    await wait(60);
    expect(calls).toBe(1);
    expect(lines.length).toBe(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      level: "debug",
      msg: "paged out start-up file pages",
      mappings: 3,
      resident_mib: 38,
    });
  });

  it("does nothing once cancelled (the daemon stopped first)", async () => {
    let calls = 0;
    schedulePageOut({ delayMs: 10, pageOut: () => (calls++, { mappings: 0, residentBytes: 0 }) })
      .cancel();
    await wait(50);
    expect(calls).toBe(0);
  });

  it("logs a failure as a warning and goes on", async () => {
    const lines: string[] = [];
    schedulePageOut({
      delayMs: 1,
      log: createLogger({ level: "warn", sink: (l) => lines.push(l) }),
      pageOut: () => {
        throw new Error("madvise /opt/deno (MADV_PAGEOUT): EINVAL");
      },
    });
    for (let waited = 0; lines.length === 0 && waited < 30_000; waited += 10) await wait(10);
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("paging out start-up file pages failed");
    expect(lines[0]).toContain("EINVAL");
  });
});
