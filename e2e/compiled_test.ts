/**
 * The single executable built by `deno task compile` runs `version` and `doctor` and serves as
 * a daemon. Building needs a denort runtime: from DENORT_BIN (no internet on our CI machines), or
 * downloaded where K8SCONTAINERD_TEST_COMPILE=1 says it can be; otherwise the suite is skipped
 * and says why.
 */
import { beforeAll, describe, expect, it } from "../src/testing/bdd.ts";
import { compile, hostTarget } from "../scripts/compile.ts";
import { runCli, startTestDaemon } from "./harness.ts";

// DENORT_BIN offline, or K8SCONTAINERD_TEST_COMPILE=1 where deno compile can download denort.
const canCompile = !!Deno.env.get("DENORT_BIN") ||
  Deno.env.get("K8SCONTAINERD_TEST_COMPILE") === "1";

describe.skipIf(
  !canCompile,
  "DENORT_BIN is not set: deno compile cannot download a denort runtime offline, so the compiled binary is not built or tested here",
)("compiled binary", () => {
  let bin: string;
  beforeAll(async () => {
    bin = await compile(hostTarget());
  });

  it("prints its version and revision", async () => {
    const r = await runCli(["--version"], { bin: [bin] });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^k8scontainerd 0\.1\.0 \([0-9a-f]{12}|unknown\)/);
  });

  it("runs doctor", async () => {
    const r = await runCli(["doctor"], { bin: [bin] });
    expect(r.stdout).toMatch(/\[ ok \] runc/);
  });

  it("serves as a daemon and answers its own CLI", async () => {
    Deno.env.set("K8SCONTAINERD_BIN", bin);
    try {
      const d = await startTestDaemon();
      try {
        const r = await runCli(["--address", d.socket, "version"], { bin: [bin] });
        expect(r.stdout).toMatch(/Server:\n\s+Version:\s+0\.1\.0/);
        expect(await d.stop()).toBe(0);
      } finally {
        await d.cleanup();
      }
    } finally {
      Deno.env.delete("K8SCONTAINERD_BIN");
    }
  });
});
