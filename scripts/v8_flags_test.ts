import { describe, expect, it } from "../src/testing/bdd.ts";
import { DAEMON_V8_FLAGS } from "./compile.ts";

const root = new URL("..", import.meta.url);

describe("daemon V8 flags", () => {
  it("are the same in the compiled binary, scripts/k8scontainerd and deno task start", async () => {
    const script = await Deno.readTextFile(new URL("scripts/k8scontainerd", root));
    expect(script).toContain(`daemon_v8_flags=${DAEMON_V8_FLAGS}\n`);
    const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks;
    expect(tasks.start).toContain(`--v8-flags=${DAEMON_V8_FLAGS} `);
  });

  it("reach the daemon started by scripts/k8scontainerd, and only the daemon", async () => {
    // A copy of the script in front of a stand-in Deno that prints the arguments it gets.
    const dir = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${dir}/scripts`);
      await Deno.copyFile(new URL("scripts/k8scontainerd", root), `${dir}/scripts/k8scontainerd`);
      await Deno.writeTextFile(`${dir}/scripts/deno`, '#!/bin/sh\nprintf "%s\\n" "$@"\n');
      await Deno.chmod(`${dir}/scripts/deno`, 0o755);
      await Deno.chmod(`${dir}/scripts/k8scontainerd`, 0o755);
      const argv = async (...args: string[]) =>
        new TextDecoder().decode(
          // K8SC_DENO (set by the aarch64 suite) would bypass the stand-in.
          (await new Deno.Command(`${dir}/scripts/k8scontainerd`, { args, env: { K8SC_DENO: "" } })
            .output()).stdout,
        ).split("\n");
      const flag = `--v8-flags=${DAEMON_V8_FLAGS}`;
      expect(await argv("daemon", "--root", "/x")).toContain(flag);
      expect(await argv("--address", "/s.sock", "daemon")).toContain(flag);
      expect(await argv("--address", "/s.sock", "version")).not.toContain(flag);
      expect(await argv("-n", "daemon", "containers", "ls")).not.toContain(flag);
      expect(await argv("run", "busybox", "daemon")).not.toContain(flag);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
