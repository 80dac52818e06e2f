/**
 * Containers and tasks as an operator meets them through the CLI: run with the exit code
 * passed through, output in the logs, exec, kill, pause, events; bad input ending in a clear
 * error with no leaked mounts, conmon processes, runc state or directories; and containers that
 * keep running across a daemon killed with -9.
 */
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
import { command, frozenAtFailpoint, runCli, startTestDaemon, type TestDaemon } from "./harness.ts";

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").map((l) => l.split(" ")[4]).filter((p) => p?.startsWith(dir + "/"));
}

/** conmon processes supervising a container of this daemon's state dir. */
async function conmonsFor(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).split("\0");
      if (cmd[0].endsWith("conmon") && cmd.some((a) => a.startsWith(dir))) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** Kills the daemon and removes what it leaves behind: conmons, mounts, its directories. */
async function disposeDaemon(d: TestDaemon): Promise<void> {
  await d.kill();
  for (const pid of await conmonsFor(d.dir)) Deno.kill(pid, "SIGKILL");
  for (const m of (await mountsUnder(d.dir)).reverse()) {
    await new Deno.Command("umount", { args: ["-l", m] }).output();
  }
  await d.cleanup();
}

describe.skipIf(!isRoot, ROOT_REASON)("containers", () => {
  let registry: Registry;
  let d: TestDaemon;
  let image: string;
  const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);

  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox", "user-name"]);
    image = `${registry.address}/busybox:latest`;
    d = await startTestDaemon();
    const pull = await cli("images", "pull", "--quiet", image);
    expect(pull.stderr).toBe("");
    await cli("images", "pull", "--quiet", `${registry.address}/user-name:latest`);
  });
  afterAll(async () => {
    for (
      const id of (await cli("containers", "ls", "--quiet")).stdout.trim().split("\n").filter(
        Boolean,
      )
    ) {
      await cli("tasks", "rm", "--force", id);
      await cli("containers", "rm", id);
    }
    if (d) await disposeDaemon(d);
    await registry?.stop();
  });

  it("runs a command, passes its exit code through and prints its output", async () => {
    const r = await cli(
      "run",
      "--rm",
      image,
      "hello",
      "sh",
      "-c",
      "echo out; echo err >&2; exit 7",
    );
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    // --rm removed everything.
    expect((await cli("containers", "ls", "--quiet")).stdout.trim()).toBe("");
    expect(await mountsUnder(d.dir)).toEqual([]);
    expect(await conmonsFor(d.dir)).toEqual([]);
  });

  it("applies the image's USER, env and cwd, and the run flags over them", async () => {
    const img = await cli("run", "--rm", `${registry.address}/user-name:latest`, "u1");
    expect(img.stdout.trim()).toBe("uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)");
    const r = await cli(
      "run",
      "--rm",
      "--env",
      "GREETING=hi",
      "--cwd",
      "/tmp",
      "--user",
      "1000:2000",
      image,
      "u2",
      "sh",
      "-c",
      'echo "$GREETING $(pwd) $(id -u):$(id -g)"',
    );
    expect(r.stdout.trim()).toBe("hi /tmp 1000:2000");
    const ro = await cli("run", "--rm", "--read-only", image, "ro1", "touch", "/x");
    expect(ro.code).not.toBe(0);
    expect(ro.stderr).toMatch(/Read-only file system/);
  });

  it("runs detached; exec, ps, pause/resume, kill and logs work on it", async () => {
    const run = await cli(
      "run",
      "-d",
      image,
      "svc",
      "sh",
      "-c",
      "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    );
    expect(run.stdout.trim()).toBe("svc");
    const exec = await cli("tasks", "exec", "--user", "app", "svc", "sh", "-c", "id -un; exit 4");
    expect(exec).toMatchObject({ code: 4, stdout: "app\n" });
    const ps = await cli("tasks", "ps", "svc");
    expect(ps.stdout.trim().split("\n").length).toBeGreaterThan(1);
    const m = JSON.parse((await cli("tasks", "metrics", "--format", "json", "svc")).stdout);
    expect(m.pids).toBeGreaterThanOrEqual(1);
    expect(m.memoryUsageBytes).toBeGreaterThan(0);
    expect(m.memoryWorkingSetBytes).toBeLessThanOrEqual(m.memoryUsageBytes);
    expect((await cli("tasks", "pause", "svc")).code).toBe(0);
    expect((await cli("tasks", "ls")).stdout).toMatch(/svc\s+\d+\s+PAUSED/);
    expect((await cli("tasks", "resume", "svc")).code).toBe(0);
    expect((await cli("tasks", "kill", "svc")).code).toBe(0);
    // The trap answers SIGTERM and exits 0.
    const deadline = Date.now() + 10_000;
    while (
      !(await cli("tasks", "ls")).stdout.match(/svc\s+\d+\s+STOPPED \(exit 0\)/) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await cli("tasks", "ls")).stdout).toMatch(/svc\s+\d+\s+STOPPED \(exit 0\)/);
    const logs = await cli("logs", "svc");
    expect(logs.stdout).toBe("started\nbye\n");
    // The raw file is in the kubelet's CRI format.
    const info = JSON.parse((await cli("containers", "info", "svc")).stdout);
    const raw = await Deno.readTextFile(info.labels["io.k8scontainerd.log-path"]);
    expect(raw).toMatch(/^\d{4}-\d\d-\d\dT\S+ stdout F started\n/);
    // Kill of a stopped task, then double delete: clear errors.
    const kill = await cli("tasks", "kill", "svc");
    expect(kill.code).toBe(1);
    expect(kill.stderr).toMatch(/not running/);
    expect((await cli("tasks", "rm", "svc")).code).toBe(0);
    const again = await cli("tasks", "rm", "svc");
    expect(again.stderr).toMatch(/not found/);
    expect((await cli("containers", "rm", "svc")).code).toBe(0);
    expect(await conmonsFor(d.dir)).toEqual([]);
  });

  it("reports SIGKILL as exit 137 and refuses to delete a live task without --force", async () => {
    await cli("run", "-d", image, "k1", "sleep", "1000");
    const rm = await cli("tasks", "rm", "k1");
    expect(rm.stderr).toMatch(/running: kill it first or use --force/);
    const crm = await cli("containers", "rm", "k1");
    expect(crm.stderr).toMatch(/has a task \(running\)/);
    await cli("tasks", "kill", "--signal", "SIGKILL", "k1");
    const deadline = Date.now() + 10_000;
    while (
      !(await cli("tasks", "ls")).stdout.match(/k1\s+\d+\s+STOPPED \(exit 137\)/) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await cli("tasks", "rm", "k1")).stdout).toMatch(/exit status 137/);
    await cli("containers", "rm", "k1");
  });

  it("fails clearly on bad input and leaks nothing", async () => {
    const before = { mounts: await mountsUnder(d.dir), conmons: await conmonsFor(d.dir) };
    // run pulls a missing image first: one the (loopback) registry does not have is not found.
    const nope = `${registry.address}/nope:1`;
    const noImage = await cli("run", "--rm", nope, "x1", "true");
    expect(noImage.code).toBe(1);
    expect(noImage.stderr).toContain(nope);
    expect(noImage.stderr).toMatch(/not found/);
    const noUser = await cli("run", "--rm", "--user", "ghost", image, "x2", "true");
    expect(noUser.code).toBe(1);
    expect(noUser.stderr).toMatch(/unable to find user ghost/);
    const noBinary = await cli("run", "--rm", image, "x3", "/no/such/binary");
    // As docker: 127 for a command that does not exist in the image.
    expect(noBinary.code).toBe(127);
    expect(noBinary.stderr).toMatch(/no such file or directory/);
    const badId = await cli("run", "--rm", image, "../evil", "true");
    expect(badId.stderr).toMatch(/invalid container name "\.\.\/evil"/);
    const reserved = await cli(
      "run",
      "--rm",
      "--label",
      "io.k8scontainerd.deleting=1",
      image,
      "x4",
    );
    expect(reserved.code).toBe(1);
    expect(reserved.stderr).toMatch(/label "io\.k8scontainerd\.deleting" is reserved/);
    const dup1 = await cli("run", "-d", image, "dup", "sleep", "100");
    expect(dup1.code).toBe(0);
    const dup2 = await cli("run", "-d", image, "dup", "true");
    expect(dup2.stderr).toMatch(/container "dup" already exists/);
    await cli("tasks", "rm", "--force", "dup");
    await cli("containers", "rm", "dup");
    expect((await cli("containers", "ls", "--quiet")).stdout.trim()).toBe("");
    expect(await mountsUnder(d.dir)).toEqual(before.mounts);
    expect(await conmonsFor(d.dir)).toEqual(before.conmons);
    const runcState = await new Deno.Command("sh", {
      args: [
        "-c",
        `ls ${d.state}/runtime 2>/dev/null; find ${d.state}/bundles -mindepth 2 -maxdepth 2 2>/dev/null`,
      ],
    }).output();
    expect(new TextDecoder().decode(runcState.stdout).trim()).not.toMatch(/x1|x2|x3|x4|dup/);
  });

  it("gives an interactive terminal: run -t, tasks exec -t (with the window size) and attach", async () => {
    // `script` gives the CLI a real pseudo-terminal; keystrokes arrive after a pause, as typed.
    const typed = async (cmdline: string, keys: string) => {
      const child = new Deno.Command("sh", {
        args: ["-c", `(sleep 1.5; printf '${keys}') | script -qfec "${cmdline}" /dev/null`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const r = await child;
      return { code: r.code, out: new TextDecoder().decode(r.stdout) };
    };
    const k = `${command().join(" ")} --address ${d.socket}`;
    const run = await typed(`${k} run -t --rm ${image} tty1 sh`, "echo hi-from-tty\\nexit 5\\n");
    expect(run.out).toContain("hi-from-tty");
    expect(run.code).toBe(5);
    expect((await cli("containers", "ls", "--quiet")).stdout).not.toContain("tty1");

    await cli("run", "-d", image, "tty2", "sleep", "1000");
    const ex = await typed(
      `stty cols 120 rows 40; ${k} tasks exec -t tty2 sh`,
      "stty size; exit 7\\n",
    );
    expect(ex.out).toContain("40 120");
    expect(ex.code).toBe(7);
    await cli("tasks", "rm", "--force", "tty2");
    await cli("containers", "rm", "tty2");

    expect((await cli("run", "-d", "-t", image, "tty3", "sh")).code).toBe(0);
    const att = await typed(`${k} attach tty3`, "echo attached-here; exit 3\\n");
    expect(att.out).toContain("attached-here");
    const deadline = Date.now() + 10_000;
    while (
      !(await cli("tasks", "ls")).stdout.match(/tty3\s+\d+\s+STOPPED \(exit 3\)/) &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await cli("tasks", "ls")).stdout).toMatch(/tty3\s+\d+\s+STOPPED \(exit 3\)/);
    await cli("tasks", "rm", "tty3");
    await cli("containers", "rm", "tty3");
  });

  it("streams task events", async () => {
    const ac = new AbortController();
    const events = new Deno.Command(command()[0], {
      args: [...command().slice(1), "--address", d.socket, "events", "/tasks/"],
      stdout: "piped",
      stderr: "null",
      signal: ac.signal,
    }).spawn();
    await new Promise((r) => setTimeout(r, 500));
    await cli("run", "--rm", image, "ev1", "true");
    await new Promise((r) => setTimeout(r, 300));
    ac.abort();
    const out = new TextDecoder().decode((await events.output()).stdout);
    for (const topic of ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]) {
      expect(out).toMatch(new RegExp(`default ${topic} \\{"containerId":"ev1"`));
    }
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("containers: daemon killed with -9", () => {
  let registry: Registry;
  let image = "";
  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox"]);
    image = `${registry.address}/busybox:latest`;
  });
  afterAll(async () => await registry?.stop());

  /** A fresh daemon with busybox pulled; with a failpoint, it freezes itself when it gets there. */
  async function daemonWithImage(failpoint?: string): Promise<TestDaemon> {
    const d = await startTestDaemon(
      failpoint ? { env: { K8SCONTAINERD_FAILPOINTS: failpoint } } : {},
    );
    expect((await runCli(["--address", d.socket, "images", "pull", "--quiet", image])).code)
      .toBe(0);
    return d;
  }

  async function snapshots(d: TestDaemon): Promise<string[]> {
    const ls = await runCli(["--address", d.socket, "snapshots", "ls", "--quiet"]);
    return ls.stdout.trim().split("\n").sort();
  }

  it("a create killed before its record is written is undone at the next start; the id is free again", async () => {
    // The daemon freezes itself (SIGSTOP) in ContainerService.create with the root snapshot
    // prepared and mounted and config.json written, just before the record.
    let d = await daemonWithImage("container-create-before-record");
    const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
    const bundle = `${d.state}/bundles/default/half`;
    try {
      const before = await snapshots(d);

      const run = cli("run", "-d", image, "half", "sleep", "60");
      expect(await frozenAtFailpoint(d)).toBe(true);
      // Frozen mid-create: the rootfs is mounted, the bundle written, no record yet.
      expect(await mountsUnder(d.state)).toEqual([`${bundle}/rootfs`]);
      expect((await Deno.stat(`${bundle}/config.json`)).isFile).toBe(true);
      await d.kill();
      expect((await run).code).not.toBe(0); // the daemon died before answering

      d = await startTestDaemon({ dir: d.dir });
      expect(d.log()).toContain("removed the bundle of a container create cut short");
      expect(await mountsUnder(d.dir)).toEqual([]);
      expect(await Deno.stat(bundle).catch(() => null)).toBeNull();
      expect(await snapshots(d)).toEqual(before);
      expect(before.includes("half")).toBe(false);
      expect((await cli("containers", "ls", "--quiet")).stdout.trim()).toBe("");

      // The same id is free: a create now runs to the end.
      const again = await cli("run", "--rm", image, "half", "echo", "again");
      expect(again.stderr).toBe("");
      expect(again.stdout).toBe("again\n");
      expect(again.code).toBe(0);
    } finally {
      await disposeDaemon(d);
    }
  });

  it("a delete killed halfway is finished at the next start; the id is free again", async () => {
    // The daemon freezes itself in ContainerService.delete with the record marked, the rootfs
    // unmounted and the root snapshot removed, before the bundle and the record go.
    let d = await daemonWithImage("container-delete-snapshot-removed");
    const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
    const bundle = `${d.state}/bundles/default/dying`;
    try {
      const before = await snapshots(d);
      expect((await cli("run", "-d", image, "dying", "sleep", "60")).code).toBe(0);
      expect((await cli("tasks", "rm", "--force", "dying")).code).toBe(0);

      const rm = cli("containers", "rm", "dying");
      expect(await frozenAtFailpoint(d)).toBe(true);
      // Frozen mid-delete: unmounted, the snapshot gone, the bundle still there.
      expect(await mountsUnder(d.state)).toEqual([]);
      expect((await Deno.stat(`${bundle}/config.json`)).isFile).toBe(true);
      await d.kill();
      expect((await rm).code).not.toBe(0); // the daemon died before answering

      d = await startTestDaemon({ dir: d.dir });
      expect(d.log()).toContain("finished the delete of a container cut short");
      expect((await cli("containers", "ls", "--quiet")).stdout.trim()).toBe("");
      expect(await Deno.stat(bundle).catch(() => null)).toBeNull();
      expect(await snapshots(d)).toEqual(before);

      // The same id is free: a run now goes to the end.
      const again = await cli("run", "--rm", image, "dying", "echo", "again");
      expect({ code: again.code, stdout: again.stdout, stderr: again.stderr })
        .toEqual({ code: 0, stdout: "again\n", stderr: "" });
    } finally {
      await disposeDaemon(d);
    }
  });

  it("keeps containers running; after restart they are listed, exec works, exits are seen", async () => {
    let d = await daemonWithImage();
    const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
    try {
      await cli("run", "-d", image, "survivor", "sh", "-c", "echo up; sleep 1000");
      await cli("run", "-d", image, "quitter", "sh", "-c", "sleep 1; exit 9");
      const pidBefore = (await cli("tasks", "ls")).stdout.match(/survivor\s+(\d+)/)![1];
      await d.kill();
      // Exits while the daemon is down are not lost.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await Deno.stat(`/proc/${pidBefore}`)).toBeTruthy();

      d = await startTestDaemon({ dir: d.dir });
      const ls = (await cli("tasks", "ls")).stdout;
      expect(ls).toMatch(new RegExp(`survivor\\s+${pidBefore}\\s+RUNNING`));
      expect(ls).toMatch(/quitter\s+\d+\s+STOPPED \(exit 9\)/);
      expect((await cli("tasks", "exec", "survivor", "echo", "still here")).stdout).toBe(
        "still here\n",
      );
      expect((await cli("logs", "survivor")).stdout).toBe("up\n");
      await cli("tasks", "kill", "--signal", "KILL", "survivor");
      const wait = await runCli(["--address", d.socket, "tasks", "rm", "--force", "survivor"]);
      expect(wait.code).toBe(0);
      for (const id of ["survivor", "quitter"]) {
        await cli("tasks", "rm", "--force", id);
        expect((await cli("containers", "rm", id)).code).toBe(0);
      }
    } finally {
      await disposeDaemon(d);
    }
  });
});
