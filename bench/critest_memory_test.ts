import { describe, expect, it } from "../src/testing/bdd.ts";
import {
  CRITEST_MEMORY_HEADING,
  critestMemorySkipReason,
  reportCritestMemory,
} from "./critest_memory.ts";

const MiB = 1048576;

describe("critest_memory", () => {
  it("reports each step's PSS with ours / containerd ratios and every run's result", () => {
    const text = reportCritestMemory({
      runs: 2,
      pods: 30,
      ours: {
        idle: 50 * MiB,
        afterRuns: 90 * MiB,
        withPods: { daemon: 80 * MiB, node: 100 * MiB },
        results: ["critest: 98 passed, 1 failed, 14 skipped", "critest: 97 passed, 2 failed"],
      },
      containerd: {
        idle: 40 * MiB,
        afterRuns: 90 * MiB,
        withPods: { daemon: 64 * MiB, node: 200 * MiB },
        results: ["critest: 84 passed", "critest: 84 passed"],
      },
    });
    expect(text.startsWith(CRITEST_MEMORY_HEADING)).toBe(true);
    expect(text).toContain("| daemon PSS, fresh and idle | 50.0 MiB | 40.0 MiB | 1.25 |");
    expect(text).toContain(
      "| daemon PSS after 2 critest runs, idle | 90.0 MiB | 90.0 MiB | 1.00 |",
    );
    expect(text).toContain("| daemon PSS after the runs, 30 pods | 80.0 MiB | 64.0 MiB | 1.25 |");
    expect(text).toContain(
      "| daemon + monitors after the runs, 30 pods | 100.0 MiB | 200.0 MiB | 0.50 |",
    );
    expect(text).toContain("- k8scontainerd, run 2: critest: 97 passed, 2 failed");
    expect(text).toContain("- containerd 1.6, run 1: critest: 84 passed");
  });

  it("says why it cannot run without K8SC_CRITEST_DIR", () => {
    const saved = Deno.env.get("K8SC_CRITEST_DIR");
    Deno.env.delete("K8SC_CRITEST_DIR");
    try {
      expect(critestMemorySkipReason()).toMatch(/needs root|K8SC_CRITEST_DIR is not set/);
    } finally {
      if (saved !== undefined) Deno.env.set("K8SC_CRITEST_DIR", saved);
    }
  });

  it("names the missing binary when K8SC_CRITEST_DIR lacks it", () => {
    const dir = Deno.makeTempDirSync();
    const saved = Deno.env.get("K8SC_CRITEST_DIR");
    Deno.env.set("K8SC_CRITEST_DIR", dir);
    try {
      const why = critestMemorySkipReason();
      if (Deno.uid() === 0) expect(why).toBe(`${dir}/critest is missing`);
      else expect(why).toBe("needs root");
    } finally {
      if (saved !== undefined) Deno.env.set("K8SC_CRITEST_DIR", saved);
      else Deno.env.delete("K8SC_CRITEST_DIR");
      Deno.removeSync(dir);
    }
  });
});
