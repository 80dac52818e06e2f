/**
 * ConmonRuntime against the real runc 1.1 and conmon 2.1 (root only, nothing mocked): a busybox
 * rootfs built in a temp dir, bundles from `runc spec`, cgroups under
 * /k8scontainerd-driver-test/<id>.
 */
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { ConmonRuntime } from "./driver.ts";
import { parseCriLogLine } from "./cri_log.ts";
import { Runc } from "./runc.ts";
import { errorKind } from "../errdefs/errors.ts";
import { cgroupMode } from "../../ffi/mod.ts";

// Per process: two runs side by side must not remove each other's parent.
const CGROUP_PARENT = `k8scontainerd-driver-test-${Deno.pid}`;
const decoder = new TextDecoder();

let tmp = "";
let rootfs = "";
let baseSpec: Record<string, unknown> = {};
let rt: ConmonRuntime;
const NS = "test";
const ids: string[] = [];

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function buildRootfs(dir: string) {
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  for (const d of ["etc", "proc", "sys", "dev", "tmp", "root"]) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  await Deno.copyFile("/bin/busybox", `${dir}/bin/busybox`);
  await Deno.chmod(`${dir}/bin/busybox`, 0o755);
  for (
    const tool of ["sh", "echo", "sleep", "id", "cat", "true", "false", "tail", "head", "env", "tr"]
  ) {
    await Deno.symlink("busybox", `${dir}/bin/${tool}`);
  }
  await Deno.writeTextFile(`${dir}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(`${dir}/etc/group`, "root:x:0:\n");
}

interface BundleOpts {
  args: string[];
  memoryLimit?: number;
  noPidNs?: boolean;
  env?: string[];
  oomScoreAdj?: number;
  hooks?: Record<string, unknown>;
}

/** Writes a bundle for `id` from `runc spec` with our changes and returns its path. */
async function bundle(id: string, o: BundleOpts): Promise<string> {
  const spec = structuredClone(baseSpec) as {
    process: Record<string, unknown>;
    root: { path: string; readonly: boolean };
    linux: {
      cgroupsPath?: string;
      resources?: Record<string, unknown>;
      namespaces: { type: string }[];
    };
  };
  spec.process.args = o.args;
  spec.process.terminal = false;
  if (o.env) spec.process.env = [...(spec.process.env as string[]), ...o.env];
  delete spec.process.oomScoreAdj;
  if (o.oomScoreAdj !== undefined) spec.process.oomScoreAdj = o.oomScoreAdj;
  spec.root = { path: rootfs, readonly: true };
  spec.linux.cgroupsPath = `/${CGROUP_PARENT}/${id}`;
  if (o.memoryLimit) {
    spec.linux.resources = {
      ...(spec.linux.resources ?? {}),
      memory: { limit: o.memoryLimit, swap: o.memoryLimit },
    };
  }
  if (o.hooks) (spec as Record<string, unknown>).hooks = o.hooks;
  if (o.noPidNs) spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== "pid");
  const dir = `${tmp}/bundles/${id}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(spec, null, 2));
  return dir;
}

function logPathOf(id: string) {
  return `${tmp}/logs/${id}/0.log`;
}

async function createStarted(
  id: string,
  o: BundleOpts & { stdin?: boolean; tty?: boolean; start?: boolean; handler?: string },
) {
  ids.push(id);
  const b = await bundle(id, o);
  const r = await rt.create({
    id,
    namespace: NS,
    bundle: b,
    handler: o.handler,
    logPath: logPathOf(id),
    tty: o.tty ?? false,
    stdin: o.stdin ?? false,
    stdinOnce: false,
  });
  if (o.start !== false) await rt.start(id, NS);
  return r;
}

async function conmonPidsFor(text: string): Promise<number[]> {
  const out: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (cmd.split("\0")[0].endsWith("conmon") && cmd.includes(text)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

async function rmCgroups() {
  const roots: string[] = [];
  for await (const e of Deno.readDir("/sys/fs/cgroup")) roots.push(`/sys/fs/cgroup/${e.name}`);
  for (const root of roots) {
    const parent = `${root}/${CGROUP_PARENT}`;
    try {
      for await (const e of Deno.readDir(parent)) {
        if (e.isDirectory) await Deno.remove(`${parent}/${e.name}`).catch(() => {});
      }
      await Deno.remove(parent).catch(() => {});
    } catch { /* not there */ }
  }
}

async function eventually<T>(fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(50);
  }
}

describe.skipIf(!isRoot, ROOT_REASON)("ConmonRuntime (runc + conmon)", () => {
  beforeAll(async () => {
    tmp = await Deno.makeTempDir({ prefix: "k8sc-runtime-" });
    rootfs = `${tmp}/rootfs`;
    await buildRootfs(rootfs);
    await Deno.mkdir(`${tmp}/spec`);
    const out = await new Deno.Command("runc", { args: ["spec"], cwd: `${tmp}/spec` }).output();
    if (!out.success) throw new Error(`runc spec: ${decoder.decode(out.stderr)}`);
    baseSpec = JSON.parse(await Deno.readTextFile(`${tmp}/spec/config.json`));
    // runc under a wrapper that writes down each run's arguments: what spawns no runc shows.
    await Deno.mkdir(`${tmp}/counted`);
    await Deno.writeTextFile(
      `${tmp}/counted/runc`,
      `#!/bin/sh\necho "$*" >> ${tmp}/counted/calls\nexec /usr/bin/runc "$@"\n`,
      { mode: 0o755 },
    );
    // And one whose create takes a second: a create in flight can be looked at.
    await Deno.mkdir(`${tmp}/slow`);
    await Deno.writeTextFile(
      `${tmp}/slow/runc`,
      `#!/bin/sh\necho "$*" >> ${tmp}/slow/calls\ncase " $* " in *" create "*) sleep 1 ;; esac\nexec /usr/bin/runc "$@"\n`,
      { mode: 0o755 },
    );
    rt = new ConmonRuntime({
      stateDir: `${tmp}/state`,
      handlers: {
        runc: { name: "runc", path: "/usr/bin/runc" },
        crun: { name: "crun", path: "/usr/bin/crun" },
        counted: { name: "counted", path: `${tmp}/counted/runc` },
        slow: { name: "slow", path: `${tmp}/slow/runc` },
      },
    });
  });

  afterAll(async () => {
    for (const [binary, name] of [["/usr/bin/runc", "runc"], ["/usr/bin/crun", "crun"]]) {
      const runc = new Runc({ binary, root: `${tmp}/state/${name}/${NS}` });
      for (const c of await runc.list().catch(() => [])) {
        await runc.delete(c.id, { force: true }).catch(() => {});
      }
    }
    for (const pid of await conmonPidsFor(tmp)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await sleep(200);
    await rmCgroups();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
  });

  it("runs a container to completion: exit code 3, stdout and stderr in the CRI log", async () => {
    const id = "exit3";
    const { pid } = await createStarted(id, {
      args: ["sh", "-c", "echo hello; echo err >&2; exit 3"],
    });
    expect(pid).toBeGreaterThan(0);
    const exit = await rt.wait(id, NS);
    expect(exit.exitCode).toBe(3);
    expect(exit.oomKilled).toBe(false);
    const st = await rt.state(id, NS);
    expect(st.status).toBe("stopped");
    expect(st.exitCode).toBe(3);
    expect(st.reason).toBe("Error");
    expect(st.finishedAt).toBeInstanceOf(Date);
    expect(st.startedAt).toBeInstanceOf(Date);
    const lines = (await Deno.readTextFile(logPathOf(id))).trim().split("\n");
    for (const l of lines) {
      expect(l).toMatch(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] /,
      );
    }
    expect(lines.some((l) => / stdout F hello$/.test(l))).toBe(true);
    expect(lines.some((l) => / stderr F err$/.test(l))).toBe(true);
  });

  it("start releases runc's init without a runc process: runc then says running", async () => {
    const id = "fifo-start";
    const { pid } = await createStarted(id, { args: ["sleep", "30"], start: false });
    const runc = new Runc({ root: `${tmp}/state/runc/${NS}` });
    expect((await runc.state(id)).status).toBe("created");
    await rt.start(id, NS);
    // runc tells "created" from "running" by exec.fifo: gone now, and init runs sleep.
    expect((await runc.state(id)).status).toBe("running");
    expect(await Deno.lstat(`${tmp}/state/runc/${NS}/${id}/exec.fifo`).catch(() => null)).toBe(
      null,
    );
    expect((await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0")[0]).toBe("sleep");
    expect(errorKind(await rt.start(id, NS).catch((e) => e))).toBe("failed-precondition");
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("tells created from running without a runc process (init alive, exec.fifo there)", async () => {
    const id = "created-state";
    await createStarted(id, { args: ["sleep", "30"], start: false, handler: "counted" });
    const stateRuns = async () =>
      (await Deno.readTextFile(`${tmp}/counted/calls`).catch(() => "")).split("\n")
        .filter((l) => l.split(" ").includes("state")).length;
    const before = await stateRuns();
    for (let i = 0; i < 5; i++) expect((await rt.state(id, NS)).status).toBe("created");
    await rt.start(id, NS);
    expect((await rt.state(id, NS)).status).toBe("running");
    expect(await stateRuns()).toBe(before);
    // What runc itself says agrees.
    const runc = new Runc({ root: `${tmp}/state/counted/${NS}` });
    expect((await runc.state(id)).status).toBe("running");
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
    expect((await rt.state(id, NS)).status).toBe("stopped");
  });

  it("a container being created has no task yet: state says so at once, asking runc nothing", async () => {
    const id = "in-create";
    const creating = createStarted(id, { args: ["sleep", "30"], start: false, handler: "slow" });
    const calls = async () => await Deno.readTextFile(`${tmp}/slow/calls`).catch(() => "");
    await eventually(async () => (await calls()).includes(" create ") || undefined);
    const err = await rt.state(id, NS).catch((e) => e);
    expect(errorKind(err)).toBe("not-found");
    expect(String(err)).toMatch(/being created/);
    expect((await calls()).split("\n").filter((l) => l.split(" ").includes("state"))).toEqual([]);
    await creating;
    expect((await rt.state(id, NS)).status).toBe("created");
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("knows a running container's state without I/O once seen, and forgets it when it ends", async () => {
    const id = "known-running";
    const { pid } = await createStarted(id, { args: ["sleep", "30"] });
    expect((await rt.state(id, NS)).status).toBe("running");
    const known = rt.knownState(id, NS);
    expect(known).toMatchObject({ id, namespace: NS, status: "running", pid });
    expect(known?.startedAt).toBeInstanceOf(Date);
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
    expect(rt.knownState(id, NS)).toBeUndefined();
    expect((await rt.state(id, NS)).status).toBe("stopped");
    expect(rt.knownState("never-made", NS)).toBeUndefined();
  });

  it("knows a stopped container's final state once its exit was read, until it is deleted", async () => {
    const id = "known-stopped";
    await createStarted(id, { args: ["sh", "-c", "exit 3"] });
    expect((await rt.wait(id, NS)).exitCode).toBe(3);
    const st = await rt.state(id, NS);
    expect(st).toMatchObject({ status: "stopped", exitCode: 3, reason: "Error", pid: 0 });
    // Kept once its OOM verdict is final: 2 s after the exit (conmon's oom file may lag).
    const known = await eventually(async () => (await rt.state(id, NS)) && rt.knownState(id, NS));
    expect(known).toEqual(st);
    // state() answers the same, and a change to its answer does not reach the next one.
    const again = await rt.state(id, NS);
    expect(again).toEqual(st);
    again.labels.changed = "yes";
    expect((await rt.state(id, NS)).labels.changed).toBeUndefined();
    await rt.delete(id, { namespace: NS });
    expect(rt.knownState(id, NS)).toBeUndefined();
    expect(errorKind(await rt.state(id, NS).catch((e) => e))).toBe("not-found");
    // The id made again is a new container: its state is its own.
    await createStarted(id, { args: ["sleep", "30"] });
    expect((await rt.state(id, NS)).status).toBe("running");
    expect(rt.knownState(id, NS)?.status).toBe("running");
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("knows a created container as created while its init lives, not once started", async () => {
    const id = "known-created";
    await createStarted(id, { args: ["sleep", "30"], start: false });
    expect(rt.knownState(id, NS)).toBeUndefined(); // not looked at yet
    expect((await rt.state(id, NS)).status).toBe("created");
    expect(rt.knownState(id, NS)?.status).toBe("created");
    await rt.start(id, NS);
    expect(rt.knownState(id, NS)?.status).not.toBe("created");
    expect((await rt.state(id, NS)).status).toBe("running");
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("a created container whose init died is not taken for created", async () => {
    const id = "created-dead";
    const { pid } = await createStarted(id, { args: ["sleep", "30"], start: false });
    expect((await rt.state(id, NS)).status).toBe("created");
    expect(rt.knownState(id, NS)?.status).toBe("created");
    Deno.kill(pid, "SIGKILL");
    await eventually(async () => (await rt.state(id, NS)).status !== "created" || undefined);
    expect(rt.knownState(id, NS)?.status).not.toBe("created");
    expect((await rt.state(id, NS)).status).toBe("stopped");
  });

  it("a spec with poststart hooks is started by runc itself: the hook runs, the container too", async () => {
    const id = "hooked";
    const mark = `${tmp}/poststart-ran`;
    await createStarted(id, {
      args: ["sleep", "30"],
      hooks: { poststart: [{ path: "/bin/sh", args: ["sh", "-c", `echo ran > ${mark}`] }] },
    });
    expect((await rt.state(id, NS)).status).toBe("running");
    expect(await Deno.readTextFile(mark)).toBe("ran\n");
    await rt.kill(id, "SIGKILL", { all: true, namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("start of a created container whose init was killed fails at once, naming why", async () => {
    const id = "fifo-dead";
    const { pid } = await createStarted(id, { args: ["sleep", "30"], start: false });
    Deno.kill(pid, "SIGKILL");
    const t0 = performance.now();
    const err = await rt.start(id, NS).catch((e) => e);
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(errorKind(err)).toBe("failed-precondition");
    expect(String(err)).toMatch(/stopped|already dead/);
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("clamps an oom_score_adj below the daemon's own instead of failing the create", async () => {
    const own = parseInt(await Deno.readTextFile("/proc/self/oom_score_adj"), 10);
    const id = "oomadj";
    await createStarted(id, {
      args: ["cat", "/proc/self/oom_score_adj"],
      oomScoreAdj: Math.max(-1000, own - 100),
    });
    expect((await rt.wait(id, NS)).exitCode).toBe(0);
    const text = await Deno.readTextFile(logPathOf(id));
    expect(text.trim().split("\n").map((l) => parseCriLogLine(l)?.content)).toContain(String(own));
    await rt.delete(id, { namespace: NS });
  });

  it("the crun handler runs a container under its own root (or says why not)", async () => {
    const id = "viacrun";
    if (cgroupMode() === "hybrid") {
      // crun 1.8 refuses hybrid hierarchies: the create must fail with its message, cleanly.
      const err = await createStarted(id, { args: ["true"], handler: "crun" }).catch((e) => e);
      expect(String(err.message)).toContain("hybrid mode not supported");
      expect(String(err.message)).toContain("runtime crun");
      await expect(Deno.stat(rt.containerDir(id, NS))).rejects.toThrow();
      expect(await conmonPidsFor(rt.containerDir(id, NS))).toEqual([]);
      return;
    }
    await createStarted(id, { args: ["sh", "-c", "echo from-crun; exit 4"], handler: "crun" });
    expect((await rt.wait(id, NS)).exitCode).toBe(4);
    expect(await Deno.readTextFile(logPathOf(id))).toContain("stdout F from-crun");
    expect((await rt.state(id, NS)).handler).toBe("crun");
    await rt.delete(id, { namespace: NS });
    const crun = new Runc({ binary: "/usr/bin/crun", root: `${tmp}/state/crun/${NS}` });
    expect((await crun.list()).map((c) => c.id)).not.toContain(id);
  });

  it("splits a long line into P partial records ending with an F record", async () => {
    const id = "longline";
    // 2^15 = 32768 'a's, printed as one line.
    await createStarted(id, {
      args: ["sh", "-c", "s=a; i=0; while [ $i -lt 15 ]; do s=$s$s; i=$((i+1)); done; echo $s"],
    });
    expect((await rt.wait(id, NS)).exitCode).toBe(0);
    const recs = (await Deno.readTextFile(logPathOf(id))).trim().split("\n").map((l) =>
      parseCriLogLine(l)!
    );
    expect(recs.length).toBeGreaterThan(1);
    expect(recs.slice(0, -1).every((r) => r.partial)).toBe(true);
    expect(recs.at(-1)!.partial).toBe(false);
    expect(recs.map((r) => r.content).join("")).toBe("a".repeat(32768));
  });

  it("kill SIGTERM of sleep → 143 (no pid namespace: a pid-1 sleep ignores SIGTERM)", async () => {
    const id = "term";
    await createStarted(id, { args: ["sleep", "1000"], noPidNs: true });
    expect((await rt.state(id, NS)).status).toBe("running");
    await rt.kill(id, "SIGTERM", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(143);
  });

  it("state() sees an exit soon after seeing the container run, also from a fresh runtime", async () => {
    const id = "seen-running";
    const { pid } = await createStarted(id, { args: ["sleep", "1000"] });
    expect((await rt.state(id, NS)).status).toBe("running");
    expect((await rt.state(id, NS)).status).toBe("running"); // the seen-running fast path
    Deno.kill(pid, "SIGKILL");
    const st = await eventually(async () => {
      const s = await rt.state(id, NS);
      return s.status === "stopped" ? s : undefined;
    }, 3_000);
    expect(st.exitCode).toBe(137);

    // Exits while no runtime looks (a killed daemon): a fresh one reads the exit file.
    const id2 = "exited-while-away";
    const second = await createStarted(id2, { args: ["sleep", "1000"] });
    const before = new ConmonRuntime({ stateDir: `${tmp}/state` });
    expect((await before.state(id2, NS)).status).toBe("running");
    Deno.kill(second.pid, "SIGKILL");
    await eventually(async () => (await rt.wait(id2, NS)).exitCode === 137 || undefined);
    const after = new ConmonRuntime({ stateDir: `${tmp}/state` });
    const st2 = await after.state(id2, NS);
    expect([st2.status, st2.exitCode]).toEqual(["stopped", 137]);
    expect((await before.state(id2, NS)).status).toBe("stopped");
    await rt.delete(id, { namespace: NS });
    await rt.delete(id2, { namespace: NS });
  });

  it("kill SIGKILL of a pid-1 sleep → 137; killing it again → FailedPrecondition", async () => {
    const id = "killed";
    await createStarted(id, { args: ["sleep", "1000"] });
    await rt.kill(id, 9, { namespace: NS });
    const exit = await rt.wait(id, NS);
    expect(exit.exitCode).toBe(137);
    const err = await rt.kill(id, "SIGTERM", { namespace: NS }).catch((e) => e);
    expect(errorKind(err)).toBe("failed-precondition");
    expect(String(err.message)).toContain(`"${id}"`);
  });

  it("kill --all SIGKILL ends every process of the container, exits seen at once", async () => {
    // Own PID namespace: killing init (through a pidfd, no runc process) takes the rest along.
    const id = "killall";
    const { pid } = await createStarted(id, { args: ["sh", "-c", "sleep 1000 & exec sleep 999"] });
    const child = await eventually(async () =>
      Number((await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`)).trim()) || undefined
    );
    const t0 = performance.now();
    await rt.kill(id, "SIGKILL", { all: true, namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
    expect(performance.now() - t0).toBeLessThan(1_000);
    await eventually(async () =>
      (await Deno.readTextFile(`/proc/${child}/stat`).then((t) => !/\) Z /.test(t), () => false))
        ? undefined
        : true
    );
    // Without a PID namespace of its own, runc kills the cgroup's processes: same outcome.
    const id2 = "killall-hostpid";
    const r2 = await createStarted(id2, {
      args: ["sh", "-c", "sleep 1000 & exec sleep 999"],
      noPidNs: true,
    });
    const child2 = await eventually(async () =>
      Number((await Deno.readTextFile(`/proc/${r2.pid}/task/${r2.pid}/children`)).trim()) ||
      undefined
    );
    await rt.kill(id2, "SIGKILL", { all: true, namespace: NS });
    expect((await rt.wait(id2, NS)).exitCode).toBe(137);
    await eventually(async () =>
      (await Deno.readTextFile(`/proc/${child2}/stat`).then((t) => !/\) Z /.test(t), () => false))
        ? undefined
        : true
    );
  });

  it("a wait given an AbortSignal gives up when told to, the container running on", async () => {
    const id = "wait-abort";
    await createStarted(id, { args: ["sleep", "1000"] });
    const t0 = performance.now();
    const err = await rt.wait(id, NS, AbortSignal.timeout(100)).catch((e) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect((await rt.state(id, NS)).status).toBe("running");
    await rt.kill(id, "SIGKILL", { all: true, namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(137);
  });

  it("delete removes everything; a second delete → NotFound", async () => {
    const id = "exit3";
    await rt.delete(id, { namespace: NS });
    const dir = rt.containerDir(id, NS);
    await expect(Deno.stat(dir)).rejects.toThrow();
    const runc = new Runc({ root: `${tmp}/state/runc/${NS}` });
    expect((await runc.list()).map((c) => c.id)).not.toContain(id);
    const err = await rt.delete(id, { namespace: NS }).catch((e) => e);
    expect(errorKind(err)).toBe("not-found");
    expect(errorKind(await rt.state(id, NS).catch((e) => e))).toBe("not-found");
  });

  it("knows a container it found without a task until one is created (no re-read per list)", async () => {
    const id = "absent-then-created";
    expect(rt.knownAbsent(id, NS)).toBe(false); // never looked up: look
    expect(errorKind(await rt.state(id, NS).catch((e) => e))).toBe("not-found");
    expect(rt.knownAbsent(id, NS)).toBe(true);
    await createStarted(id, { args: ["sleep", "30"], start: false });
    expect(rt.knownAbsent(id, NS)).toBe(false);
    expect((await rt.state(id, NS)).status).toBe("created");
    await rt.delete(id, { namespace: NS, force: true });
    expect(errorKind(await rt.state(id, NS).catch((e) => e))).toBe("not-found");
    expect(rt.knownAbsent(id, NS)).toBe(true);
  });

  it("a missing binary fails create with runc's message and leaks nothing", async () => {
    const id = "nope";
    ids.push(id);
    const b = await bundle(id, { args: ["/nope"] });
    const err = await rt.create({
      id,
      namespace: NS,
      bundle: b,
      logPath: logPathOf(id),
      tty: false,
      stdin: false,
      stdinOnce: false,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/exec: "\/nope": stat \/nope: no such file or directory/);
    expect(String(err.message)).toContain(`"${id}"`);
    const dir = rt.containerDir(id, NS);
    await expect(Deno.stat(dir)).rejects.toThrow();
    expect(await conmonPidsFor(dir)).toEqual([]);
    const runc = new Runc({ root: `${tmp}/state/runc/${NS}` });
    expect((await runc.list()).map((c) => c.id)).not.toContain(id);
    expect(await Deno.readTextFile("/proc/self/mountinfo")).not.toContain(dir);
    // the same id can be created again afterwards
    await Deno.writeTextFile(
      `${b}/config.json`,
      (await Deno.readTextFile(`${b}/config.json`)).replace('"/nope"', '"true"'),
    );
    await rt.create({
      id,
      namespace: NS,
      bundle: b,
      logPath: logPathOf(id),
      tty: false,
      stdin: false,
      stdinOnce: false,
    });
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("pause/resume change the state; ps lists the pid; update applies", async () => {
    const id = "pausable";
    const { pid } = await createStarted(id, { args: ["sleep", "1000"] });
    expect(await rt.ps(id, NS)).toContain(pid);
    await rt.pause(id, NS);
    expect((await rt.state(id, NS)).status).toBe("paused");
    const busy = await rt.delete(id, { namespace: NS }).catch((e) => e);
    expect(errorKind(busy)).toBe("failed-precondition");
    await rt.resume(id, NS);
    expect((await rt.state(id, NS)).status).toBe("running");
    await rt.update(id, { pids: { limit: 50 } }, NS);
    const cg = `/sys/fs/cgroup/pids/${CGROUP_PARENT}/${id}/pids.max`;
    expect((await Deno.readTextFile(cg)).trim()).toBe("50");
    await rt.delete(id, { namespace: NS, force: true });
    expect(await conmonPidsFor(rt.containerDir(id, NS))).toEqual([]);
  });

  it("stats read from the cgroup files agree with runc's own events --stats", async () => {
    const id = "stats";
    await createStarted(id, {
      args: ["sh", "-c", "x=a; for i in $(seq 18); do x=$x$x; done; sleep 1000 & wait"],
      memoryLimit: 64 * 1024 * 1024,
    });
    // the shell has built its 256 KiB string and sleeps: the figures hold still
    await eventually(async () => (await rt.ps(id, NS)).length === 2 || undefined);
    const ours = await rt.stats(id, NS) as {
      memory: { usage: { usage: number; limit: number }; raw: Record<string, number> };
      cpu: { usage: { total: number } };
      pids: { current: number; limit: number };
    };
    const out = await new Deno.Command("runc", {
      args: ["--root", `${tmp}/state/runc/${NS}`, "events", "--stats", id],
    }).output();
    const theirs = JSON.parse(decoder.decode(out.stdout)).data;
    expect(ours.memory.usage.limit).toBe(64 * 1024 * 1024);
    expect(ours.memory.usage.limit).toBe(theirs.memory.usage.limit);
    expect(ours.pids.current).toBe(2);
    expect(ours.pids.current).toBe(theirs.pids.current);
    expect(ours.memory.usage.usage).toBeGreaterThan(256 * 1024);
    // two samples a moment apart (the kernel's own charges move under load): within 1 MiB
    expect(Math.abs(ours.memory.usage.usage - theirs.memory.usage.usage)).toBeLessThan(1 << 20);
    expect(ours.cpu.usage.total).toBeGreaterThan(0);
    expect(ours.cpu.usage.total).toBeLessThanOrEqual(theirs.cpu.usage.total);
    expect(Object.keys(ours.memory.raw).sort()).toEqual(Object.keys(theirs.memory.raw).sort());
    await rt.kill(id, "SIGKILL", { namespace: NS });
    await rt.wait(id, NS);
    const gone = await rt.stats(id, NS).catch((e) => e);
    expect(errorKind(gone)).toBe("failed-precondition");
    await rt.delete(id, { namespace: NS });
  });

  it("exec returns the exit code and sees the given env; execSync times out", async () => {
    const id = "execs";
    await createStarted(id, { args: ["sleep", "1000"] });
    const r = await rt.execSync(id, ["sh", "-c", "echo $FOO; echo oops >&2; exit 7"], {
      namespace: NS,
      env: ["FOO=bar"],
    });
    expect(r.exitCode).toBe(7);
    expect(decoder.decode(r.stdout)).toBe("bar\n");
    expect(decoder.decode(r.stderr)).toBe("oops\n");

    const capped = await rt.execSync(id, ["sh", "-c", "echo 0123456789"], {
      namespace: NS,
      maxOutput: 4,
    });
    expect(decoder.decode(capped.stdout)).toBe("0123");
    expect(capped.truncated).toBe(true);

    const t0 = Date.now();
    const err = await rt.execSync(id, ["sleep", "100"], { namespace: NS, timeoutMs: 500 })
      .catch((e) => e);
    expect(errorKind(err)).toBe("deadline-exceeded");
    expect(Date.now() - t0).toBeLessThan(5000);
    // the timed-out process is gone from the container
    const procs = await rt.ps(id, NS);
    expect(procs.length).toBe(1);

    const p = await rt.exec(id, { args: ["id", "-u"], user: { uid: 1234, gid: 1234 } }, NS);
    const out = await new Response(p.stdout).text();
    expect(await p.exitCode).toBe(0);
    expect(out.trim()).toBe("1234");
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("OOM: a container over its 10 MiB limit exits 137 with oomKilled", async () => {
    const id = "oom";
    await createStarted(id, {
      args: ["sh", "-c", "x=a; while true; do x=$x$x; done"],
      memoryLimit: 10 * 1024 * 1024,
    });
    const exit = await rt.wait(id, NS);
    expect(exit.exitCode).toBe(137);
    expect(exit.oomKilled).toBe(true);
    const st = await rt.state(id, NS);
    expect(st.oomKilled).toBe(true);
    expect(st.reason).toBe("OOMKilled");
    await rt.delete(id, { namespace: NS });
  });

  it("reopenLog makes conmon write a new file at logPath after a rename", async () => {
    const id = "rotate";
    await createStarted(id, { args: ["sh", "-c", "while true; do echo tick; sleep 0.1; done"] });
    const path = logPathOf(id);
    await eventually(async () => (await Deno.readTextFile(path)).includes("tick") || undefined);
    await Deno.rename(path, `${path}.1`);
    await rt.reopenLog(id, NS);
    const text = await eventually(async () => {
      const t = await Deno.readTextFile(path).catch(() => "");
      return t.includes("stdout F tick") ? t : undefined;
    });
    expect(text).toContain("tick");
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("attach: stdin reaches the container and its output comes back", async () => {
    const id = "attached";
    await createStarted(id, {
      args: ["sh", "-c", 'while read l; do echo "got:$l"; echo "e:$l" >&2; done'],
      stdin: true,
    });
    const a = await rt.attach(id, NS);
    expect(a.stdin).toBeDefined();
    const w = a.stdin!.getWriter();
    await w.write(new TextEncoder().encode("hi\n"));
    const reader = a.output.getReader();
    const seen: string[] = [];
    while (seen.length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      seen.push(`${value.stream}:${decoder.decode(value.data)}`);
    }
    expect(seen.sort()).toEqual(["stderr:e:hi\n", "stdout:got:hi\n"]);
    await reader.cancel();
    await w.close().catch(() => {});
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("attach goes through conmon's seqpacket socket: cat echoes stdin", async () => {
    const id = "attachcat";
    await createStarted(id, { args: ["cat"], stdin: true });
    const a = await rt.attach(id, NS);
    const w = a.stdin!.getWriter();
    const reader = a.output.getReader();
    await w.write(new TextEncoder().encode("hello\n"));
    let got = "";
    while (!got.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      expect(value.stream).toBe("stdout");
      got += decoder.decode(value.data);
    }
    expect(got).toBe("hello\n");
    // The log has it too, so it went through conmon.
    await eventually(async () =>
      (await Deno.readTextFile(logPathOf(id)).catch(() => "")).includes("stdout F hello") ||
      undefined
    );
    await reader.cancel();
    await w.close();
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("attach without conmon's socket tails the log and ends when the container exits", async () => {
    const id = "attachlog";
    await createStarted(id, {
      args: ["sh", "-c", "read x; echo got:$x; echo e:$x >&2"],
      stdin: true,
    });
    const { cuuid } = JSON.parse(await Deno.readTextFile(`${rt.containerDir(id, NS)}/meta.json`));
    const socketDir = `${tmp}/state/attach/${cuuid}`;
    expect((await Deno.lstat(`${socketDir}/attach`)).isFile).toBe(false);
    // A socket that cannot be reached (gone with a rebuilt state dir, say): the log it is.
    await Deno.remove(`${socketDir}/attach`);
    const a = await rt.attach(id, NS);
    const w = a.stdin!.getWriter();
    await w.write(new TextEncoder().encode("hi\n"));
    const seen: string[] = [];
    for await (const c of a.output) seen.push(`${c.stream}:${decoder.decode(c.data)}`);
    // The output ended with the container, both streams in it.
    expect(seen.sort()).toEqual(["stderr:e:hi\n", "stdout:got:hi\n"]);
    expect((await rt.wait(id, NS)).exitCode).toBe(0);
    await w.close().catch(() => {});
    await rt.delete(id, { namespace: NS });
  });

  it("attach with stdinOnce: closing stdin ends the container", async () => {
    const id = "attachonce";
    ids.push(id);
    const b = await bundle(id, { args: ["sh", "-c", "cat; echo bye"] });
    await rt.create({
      id,
      namespace: NS,
      bundle: b,
      logPath: logPathOf(id),
      tty: false,
      stdin: true,
      stdinOnce: true,
    });
    await rt.start(id, NS);
    const a = await rt.attach(id, NS);
    const w = a.stdin!.getWriter();
    await w.write(new TextEncoder().encode("x\n"));
    await w.close();
    let out = "";
    for await (const c of a.output) out += decoder.decode(c.data);
    expect(out).toBe("x\nbye\n");
    expect((await rt.wait(id, NS)).exitCode).toBe(0);
    await rt.delete(id, { namespace: NS });
  });

  it("TTY exec: resize reaches stty; exit codes come back", async () => {
    const id = "ttyexec";
    await createStarted(id, { args: ["sleep", "1000"] });
    const p = await rt.exec(id, {
      args: ["sh", "-c", "read x; stty size; echo done"],
      tty: true,
      stdin: true,
    }, NS);
    expect(p.resize).toBeDefined();
    const outP = new Response(p.stdout).text();
    expect(await p.pid()).toBeGreaterThan(0);
    await p.resize!(100, 30);
    await sleep(300); // runc applies the size on SIGWINCH, asynchronously
    const w = p.stdin!.getWriter();
    await w.write(new TextEncoder().encode("go\n"));
    expect(await p.exitCode).toBe(0);
    const out = (await outP).replaceAll("\r", "");
    expect(out).toContain("30 100\n");
    expect(out).toContain("done\n");
    expect(await new Response(p.stderr).text()).toBe("");

    const p3 = await rt.exec(id, { args: ["sh", "-c", "echo three; exit 3"], tty: true }, NS);
    const out3 = await new Response(p3.stdout).text();
    expect(await p3.exitCode).toBe(3);
    expect(out3.replaceAll("\r", "")).toBe("three\n");

    // Before any resize the terminal already has a size: runc copies our pty's size to the
    // container's console only after the process started, so it comes in the process spec.
    for (let i = 0; i < 5; i++) {
      const q = await rt.exec(id, { args: ["sh", "-c", "stty size"], tty: true }, NS);
      const size = (await new Response(q.stdout).text()).replaceAll("\r", "");
      expect({ size, code: await q.exitCode }).toEqual({ size: "24 80\n", code: 0 });
    }
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("a terminal container: output in the log, resize accepted", async () => {
    const id = "tty";
    await createStarted(id, { args: ["sh", "-c", "echo ttyout; sleep 1000"], tty: true });
    await eventually(async () =>
      (await Deno.readTextFile(logPathOf(id)).catch(() => "")).includes("ttyout") || undefined
    );
    await rt.resize(id, { width: 100, height: 40 }, NS);
    await rt.delete(id, { namespace: NS, force: true });
  });

  it("the container outlives the process that created it; recover() finds it", async () => {
    const id = "survivor";
    ids.push(id);
    const b = await bundle(id, { args: ["sleep", "1000"] });
    const script = new URL("./testdata/create_and_exit.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", script, `${tmp}/state`, b, id, logPathOf(id)],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text).toMatch(/^started \d+/);
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});

    const fresh = new ConmonRuntime({ stateDir: `${tmp}/state` });
    const found = await fresh.recover();
    const me = found.find((c) => c.id === id)!;
    expect(me.status).toBe("running");
    expect(me.pid).toBe(Number(text.split(" ")[1]));
    await fresh.kill(id, "SIGKILL", { namespace: NS });
    expect((await fresh.wait(id, NS)).exitCode).toBe(137);
    await fresh.delete(id, { namespace: NS });
  });

  it("recover() undoes a create cut short by the daemon's death, once runc create is done", async () => {
    const id = "cutshort";
    ids.push(id);
    const b = await bundle(id, { args: ["sleep", "1000"] });
    // A runc that holds `create` until the test releases it: the daemon dies in between.
    const wrapper = `${tmp}/slow-runc`;
    await Deno.writeTextFile(
      wrapper,
      `#!/bin/sh
case " $* " in *" create "*)
  touch ${tmp}/create-blocked
  while [ ! -e ${tmp}/create-release ]; do sleep 0.05; done ;;
esac
exec /usr/bin/runc "$@"
`,
      { mode: 0o755 },
    );
    const script = new URL("./testdata/create_and_exit.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", script, `${tmp}/state`, b, id, logPathOf(id), wrapper],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await eventually(
      async () => (await Deno.stat(`${tmp}/create-blocked`).catch(() => null)) ?? undefined,
      30_000,
    );
    child.kill("SIGKILL");
    await child.status;
    const dir = rt.containerDir(id, NS);
    expect(await conmonPidsFor(dir)).toHaveLength(1); // conmon outlived its daemon

    const fresh = new ConmonRuntime({
      stateDir: `${tmp}/state`,
      handlers: { runc: { name: "runc", path: wrapper } },
    });
    const recovering = fresh.recover();
    await sleep(300); // runc create finishes while the new daemon is recovering
    await Deno.writeTextFile(`${tmp}/create-release`, "");
    const found = (await recovering).find((c) => c.id === id);
    expect(found?.status).toBe("removed");
    expect(await conmonPidsFor(dir)).toEqual([]);
    const runc = new Runc({ binary: "/usr/bin/runc", root: `${tmp}/state/runc/${NS}` });
    expect((await runc.list()).map((c) => c.id)).not.toContain(id);
    expect(await Deno.stat(dir).catch(() => null)).toBeNull();
  });

  it("a container whose conmon died keeps running; recover() keeps it; wait() → 255", async () => {
    const id = "orphan";
    const { pid } = await createStarted(id, { args: ["sleep", "1000"] });
    const dir = rt.containerDir(id, NS);
    const [conmon] = await conmonPidsFor(dir);
    Deno.kill(conmon, "SIGKILL");
    await eventually(async () => (await conmonPidsFor(dir)).length === 0 || undefined);
    const found = (await new ConmonRuntime({ stateDir: `${tmp}/state` }).recover())
      .find((c) => c.id === id)!;
    expect(found.status).toBe("running");
    expect(found.pid).toBe(pid);
    await rt.kill(id, "SIGKILL", { namespace: NS });
    expect((await rt.wait(id, NS)).exitCode).toBe(255);
    await rt.delete(id, { namespace: NS });
  });

  it("recover() keeps exited containers and removes half-created ones", async () => {
    const exited = (await rt.recover()).find((c) => c.id === "longline")!;
    expect(exited.status).toBe("stopped");
    expect(exited.exitCode).toBe(0);
    // a create that died after writing meta.json and before conmon reported
    const dir = rt.containerDir("half", NS);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/meta.json`,
      JSON.stringify({
        id: "half",
        namespace: NS,
        handler: "runc",
        runtimePath: "/usr/bin/runc",
        runtimeRoot: `${tmp}/state/runc/${NS}`,
        systemdCgroup: false,
        bundle: "/nonexistent",
        logPath: `${tmp}/logs/half.log`,
        tty: false,
        stdin: false,
        stdinOnce: false,
        labels: {},
        cuuid: "0123456789abcdef",
        createdAt: new Date().toISOString(),
      }),
    );
    const res = await rt.recover();
    expect(res.find((c) => c.id === "half")?.status).toBe("removed");
    await expect(Deno.stat(dir)).rejects.toThrow();
  });
});
