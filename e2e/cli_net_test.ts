/**
 * `run` as nerdctl users expect it, against a real daemon: `-p` without a CNI config fails
 * naming the config dir; with the suite's own CNI bridge (k8scli3, 10.223.91.0/24, portmap) a
 * published port answers on 127.0.0.1 from the host, `containers ls`/`inspect` show the IP,
 * and `rm -f` leaves no netns and no portmap rule; `--restart=on-failure:2` runs a failing
 * command 3 times and then leaves it stopped; `--restart=always` restarts after an exit, again
 * after a daemon restart, and stops restarting after `tasks kill`; a daemon killed between a
 * task's delete and its network's detach leaves a netns that the next start removes.
 */
import { createHash } from "node:crypto";
import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../src/testing/bdd.ts";
import { type Registry, startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import { frozenAtFailpoint, runCli, startTestDaemon, type TestDaemon } from "./harness.ts";
import { cleanUpAfterDaemon, writeCniConf } from "./cri_env.ts";

const BRIDGE = "k8scli3";
const SUBNET = "10.223.91.0/24";

async function until(what: string, ok: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function sh(script: string): Promise<string> {
  const r = await new Deno.Command("sh", { args: ["-c", script], stderr: "null" }).output();
  return new TextDecoder().decode(r.stdout);
}

/** The netns name the daemon gives a container of the default namespace. */
function netnsOf(id: string): string {
  return `k8sc-${createHash("sha256").update(`default/${id}`).digest("hex").slice(0, 16)}`;
}

describe.skipIf(!isRoot, ROOT_REASON)("cli: run --net cni, -p, --restart", () => {
  let registry: Registry;
  let d: TestDaemon;
  let dir: string;
  let config: string;
  let image: string;
  const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
  const taskLine = async (id: string) =>
    (await cli("tasks", "ls")).stdout.split("\n").find((l) => l.startsWith(`${id} `)) ?? "";
  const runs = async (id: string) =>
    (await cli("logs", id)).stdout.split("\n").filter((l) => l === "ran").length;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox"]);
    image = `${registry.address}/busybox:latest`;
    dir = await Deno.makeTempDir({ prefix: "k8sc-cli3-" });
    await Deno.chmod(dir, 0o711);
    await Deno.mkdir(`${dir}/net.d`);
    await Deno.mkdir(`${dir}/d`);
    config = `${dir}/config.toml`;
    await Deno.writeTextFile(config, `[cri]\ncni_conf_dir = "${dir}/net.d"\n`);
    d = await startTestDaemon({ dir: `${dir}/d`, args: ["--config", config] });
    expect((await cli("images", "pull", "--quiet", image)).code).toBe(0);
  });
  afterAll(async () => {
    if (d) {
      for (const id of (await cli("containers", "ls", "--quiet")).stdout.split("\n")) {
        if (id) await cli("rm", "-f", id);
      }
    }
    await cleanUpAfterDaemon(
      d,
      BRIDGE,
      `grep -rhoE '/run/netns/k8sc-[0-9a-f]+' ${dir}/d/state/cni-containers 2>/dev/null |
        sort -u | while read -r ns; do ip netns delete "$(basename "$ns")"; done;`,
    );
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await registry?.stop();
  });

  it("-p publishes on 127.0.0.1 through the CNI bridge; rm -f leaves nothing behind", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const publish = `127.0.0.1:${port}:80`;
    const server = [
      "sh",
      "-c",
      "mkdir -p /w && echo hello-cli3 > /w/index.html && exec httpd -f -p 80 -h /w",
    ];

    // No network config yet: a clear error naming the directory, and nothing left behind.
    const none = await cli("run", "-d", "--name", "web", "-p", publish, image, ...server);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no network config in ${dir}/net.d`);
    expect((await cli("containers", "ls", "--quiet")).stdout).not.toMatch(/^web$/m);

    await writeCniConf(dir, {
      name: "k8scli3",
      bridge: BRIDGE,
      subnet: SUBNET,
      after: [{ type: "portmap", capabilities: { portMappings: true } }],
    });
    const run = await cli("run", "-d", "--name", "web", "-p", publish, image, ...server);
    expect(run).toEqual({ code: 0, stdout: "web\n", stderr: "" });

    const row = (await cli("containers", "ls")).stdout.split("\n").find((l) =>
      l.startsWith("web ")
    );
    expect(row).toMatch(/\srunning\s.*\s10\.223\.91\.\d+\s/);
    const [inspected] = JSON.parse((await cli("inspect", "web")).stdout);
    expect(inspected.ips[0]).toMatch(/^10\.223\.91\.\d+$/);
    expect((await sh("ip netns list")).split("\n").map((l) => l.split(" ")[0]))
      .toContain(netnsOf("web"));

    // From the host, on loopback only: bounded retries until httpd listens.
    let body = "";
    await until("the published port to answer", async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
        body = await r.text();
        return r.ok;
      } catch {
        return false;
      }
    });
    expect(body).toBe("hello-cli3\n");
    expect(await sh("iptables-save -t nat")).toContain(`--dport ${port}`);

    expect((await cli("rm", "-f", "web")).code).toBe(0);
    expect((await sh("ip netns list")).split("\n").map((l) => l.split(" ")[0]))
      .not.toContain(netnsOf("web"));
    expect(await sh("iptables-save -t nat")).not.toContain(`--dport ${port}`);
    const cached = [];
    for await (const e of Deno.readDir(`${dir}/d/state/cni-containers/results`)) cached.push(e);
    expect(cached).toEqual([]);
  });

  it("--restart=on-failure:2 runs a failing command 3 times, then leaves it stopped", async () => {
    const run = await cli(
      "run",
      "-d",
      "--name",
      "of",
      "--restart=on-failure:2",
      image,
      "sh",
      "-c",
      "echo ran; exit 3",
    );
    expect(run.code).toBe(0);
    await until("three runs", async () => await runs("of") === 3);
    // Backoff 100 ms, 200 ms: a fourth run would have come long before this.
    await new Promise((r) => setTimeout(r, 2000));
    expect(await runs("of")).toBe(3);
    expect(await taskLine("of")).toMatch(/STOPPED \(exit 3\)/);
    const v = (await cli("containers", "ls", "-v")).stdout;
    expect(v).toMatch(/io\.k8scontainerd\.restart-count=2/);
    expect((await cli("rm", "-f", "of")).code).toBe(0);
  });

  it("--restart=always restarts after an exit and a daemon restart, not after tasks kill", async () => {
    const run = await cli(
      "run",
      "-d",
      "--name",
      "al",
      "--restart=always",
      image,
      "sh",
      "-c",
      "echo ran; sleep 2; exit 0",
    );
    expect(run.code).toBe(0);
    await until("a restart after exit 0", async () => await runs("al") >= 2);

    // The daemon goes away; the task exits meanwhile; the next daemon starts it again.
    await until("al to run", async () => /RUNNING/.test(await taskLine("al")));
    const pid = Number((await taskLine("al")).split(/\s+/)[1]);
    expect(pid).toBeGreaterThan(0);
    await d.stop();
    await until("al to exit with the daemon down", async () => {
      try {
        await Deno.stat(`/proc/${pid}`);
        return false;
      } catch {
        return true;
      }
    }, 10_000);
    const before = await (async () => {
      d = await startTestDaemon({ dir: `${dir}/d`, args: ["--config", config] });
      return await runs("al");
    })();
    await until("a restart by the new daemon", async () => await runs("al") > before);

    await until("al to run", async () => /RUNNING/.test(await taskLine("al")));
    expect((await cli("tasks", "kill", "--signal", "SIGKILL", "al")).code).toBe(0);
    await until("al to stop", async () => /STOPPED/.test(await taskLine("al")));
    const after = await runs("al");
    await new Promise((r) => setTimeout(r, 3000));
    expect(await runs("al")).toBe(after);
    expect(await taskLine("al")).toMatch(/STOPPED/);
    // A start by the user brings the policy back.
    expect((await cli("tasks", "start", "al")).code).toBe(0);
    await until("a restart after the user's start", async () => await runs("al") >= after + 2);
    expect((await cli("rm", "-f", "al")).code).toBe(0);
  });

  it("the next start detaches the network of a task a killed daemon deleted", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    await d.stop();
    d = await startTestDaemon({
      dir: `${dir}/d`,
      args: ["--config", config],
      env: { K8SCONTAINERD_FAILPOINTS: "task-delete-before-network-detach" },
    });
    const run = await cli("run", "-d", "--name", "lk", "-p", `${port}:80`, image, "sleep", "1000");
    expect(run.code).toBe(0);
    const netns = () => sh("ip netns list").then((o) => o.split("\n").map((l) => l.split(" ")[0]));
    expect(await netns()).toContain(netnsOf("lk"));
    const rm = cli("tasks", "rm", "-f", "lk");
    expect(await frozenAtFailpoint(d)).toBe(true);
    await d.kill();
    await rm;
    expect(await netns()).toContain(netnsOf("lk"));
    expect(await sh("iptables-save -t nat")).toContain(`--dport ${port}`);

    d = await startTestDaemon({ dir: `${dir}/d`, args: ["--config", config] });
    expect(await netns()).not.toContain(netnsOf("lk"));
    expect(await sh("iptables-save -t nat")).not.toContain(`--dport ${port}`);
    const row = (await cli("containers", "ls")).stdout.split("\n").find((l) => l.startsWith("lk "));
    expect(row).toMatch(/\screated\s.*\s-\s/);
    expect((await cli("rm", "lk")).code).toBe(0);
  });
});
