/**
 * The CLI as a node operator used to ctr, nerdctl and crictl drives it: a reused container id
 * starts with an empty log and removed containers take their logs along; stdin piped into
 * `run` and `tasks exec` reaches the program and ends with ours; signals sent to a foreground
 * `run` reach the task; a stopped container starts again; every command has --help on stdout
 * with exit 0, and every usage mistake exits 2 naming what was wrong — without a daemon.
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
import { type CliResult, command, runCli, startTestDaemon, type TestDaemon } from "./harness.ts";
import { type Command, COMMANDS } from "../src/cli/commands.ts";

const dec = new TextDecoder();

/** Runs the CLI with `input` piped into its stdin (closed after it, as `echo x |` does). */
async function piped(args: string[], input: string): Promise<CliResult> {
  const [cmd, ...pre] = command();
  const child = new Deno.Command(cmd, {
    args: [...pre, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const r = await child.output();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/**
 * A DNS server on a loopback address that answers NXDOMAIN to every question (RFC 1035
 * header and question echoed back), recording the names asked.
 */
async function nxdomainServer(): Promise<
  { address: string; queries(): string[]; close(): void }
> {
  const { createSocket } = await import("node:dgram");
  const sock = createSocket("udp4");
  const names: string[] = [];
  sock.on("message", (msg: Uint8Array, from: { address: string; port: number }) => {
    if (msg.length < 12) return;
    let i = 12;
    const labels: string[] = [];
    while (i < msg.length && msg[i] !== 0) {
      labels.push(dec.decode(msg.subarray(i + 1, i + 1 + msg[i])));
      i += msg[i] + 1;
    }
    names.push(labels.join("."));
    const question = msg.subarray(12, i + 5);
    const reply = new Uint8Array(12 + question.length);
    reply.set(msg.subarray(0, 2)); // id
    reply[2] = 0x81 | (msg[2] & 0x01); // QR, opcode 0, RD copied
    reply[3] = 0x83; // RA, NXDOMAIN
    reply[5] = 1; // one question, no answers
    reply.set(question, 12);
    sock.send(reply, from.port, from.address);
  });
  // A loopback address of its own, so port 53 is ours whatever else runs on this host.
  const address = `127.53.${Math.floor(Math.random() * 250) + 1}.${
    Math.floor(Math.random() * 250) + 1
  }`;
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(53, address, () => resolve());
  });
  return { address, queries: () => [...names], close: () => sock.close() };
}

async function until(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!isRoot, ROOT_REASON)("cli", () => {
  let registry: Registry;
  let d: TestDaemon;
  let image: string;
  const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
  const stopped = (id: string, exit: number) => async () =>
    new RegExp(`${id}\\s+\\d+\\s+STOPPED \\(exit ${exit}\\)`).test(
      (await cli("tasks", "ls")).stdout,
    );

  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox"]);
    image = `${registry.address}/busybox:latest`;
    d = await startTestDaemon();
    expect((await cli("images", "pull", "--quiet", image)).code).toBe(0);
  });
  afterAll(async () => {
    if (d) {
      for (const id of (await cli("containers", "ls", "--quiet")).stdout.split("\n")) {
        if (!id) continue;
        await cli("tasks", "rm", "--force", id);
        await cli("containers", "rm", id);
      }
      await d.stop();
      await d.cleanup();
    }
    await registry?.stop();
  });

  it("listings: STATUS, daemon labels hidden, ps with command lines, metrics, rm -f", async () => {
    expect((await cli("run", "-d", "--label", "team=a", image, "l1", "sleep", "1000")).code)
      .toBe(0);
    expect((await cli("run", "-d", image, "l2", "sh", "-c", "exit 3")).code).toBe(0);
    await until("l2 to exit", stopped("l2", 3));
    const row = async (id: string, flags: string[] = []) =>
      (await cli("containers", "ls", ...flags)).stdout.split("\n").find((l) =>
        l.startsWith(`${id} `)
      ) ?? "";
    const ls = await cli("containers", "ls");
    expect(ls.stdout.split("\n")[0]).toMatch(
      /^CONTAINER\s+IMAGE\s+STATUS\s+RUNTIME\s+CREATED\s+IP\s+LABELS$/,
    );
    expect(await row("l1")).toMatch(/\srunning\s.*\steam=a$/);
    expect(await row("l2")).toMatch(/\sstopped \(exit 3\)\s/);
    expect(ls.stdout).not.toContain("io.k8scontainerd.");
    for (const flag of ["-v", "--all-labels"]) {
      expect(await row("l1", [flag])).toMatch(/io\.k8scontainerd\.log-path=/);
    }
    const json = JSON.parse((await cli("containers", "ls", "--format", "json")).stdout);
    const l1 = json.find((x: { id: string }) => x.id === "l1");
    expect(l1.status).toBe("running");
    expect(Object.keys(l1.labels)).toEqual(["team"]);
    // A container whose task was removed is "created" again, as nerdctl shows it.
    expect((await cli("tasks", "rm", "l2")).code).toBe(0);
    expect(await row("l2")).toMatch(/\screated\s/);
    expect((await cli("tasks", "pause", "l1")).code).toBe(0);
    expect(await row("l1")).toMatch(/\spaused\s/);
    expect((await cli("tasks", "resume", "l1")).code).toBe(0);

    // tasks ps: each pid with its command line, as /proc on the host has it.
    expect((await cli("tasks", "exec", "-i", "l1", "true")).code).toBe(0);
    const ps = await cli("tasks", "ps", "l1");
    expect(ps.code).toBe(0);
    const lines = ps.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^PID\s+COMMAND$/);
    const sleepLine = lines.find((l) => /^\d+\s+sleep 1000$/.test(l));
    expect(sleepLine).toBeDefined();
    const pid = Number(sleepLine!.split(/\s+/)[0]);
    expect(await Deno.readTextFile(`/proc/${pid}/cmdline`)).toBe("sleep\x001000\x00");

    // tasks metrics: a table, and JSON for scripts.
    const mt = await cli("tasks", "metrics", "l1");
    expect(mt.code).toBe(0);
    const [head, vals] = mt.stdout.trimEnd().split("\n");
    expect(head).toMatch(/^ID\s+CPU USAGE\s+MEMORY USAGE \/ LIMIT\s+WORKING SET\s+PIDS$/);
    expect(vals).toMatch(
      /^l1\s+\d+\.\d{3} s\s+[\d.]+ (B|KiB|MiB) \/ (unlimited|[\d.]+ \w+)\s+.*\s1$/,
    );
    const mj = JSON.parse((await cli("tasks", "metrics", "--format", "json", "l1")).stdout);
    expect(mj.pids).toBe(1);
    expect(mj.memoryUsageBytes).toBeGreaterThan(0);
    expect(typeof mj.cpuUsageNs).toBe("number");
    expect((await cli("tasks", "metrics", "--format", "yaml", "l1")).code).toBe(2);

    // rm -f: the running task is killed and deleted, the container removed, in one step.
    const plain = await cli("containers", "rm", "l1");
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/l1/);
    expect(await cli("containers", "rm", "-f", "l1", "l2")).toEqual({
      code: 0,
      stdout: "l1\nl2\n",
      stderr: "",
    });
    expect((await cli("containers", "ls", "--quiet")).stdout).not.toMatch(/^l[12]$/m);
    expect((await cli("tasks", "ls", "--quiet")).stdout).not.toMatch(/^l1$/m);
    await until(
      "sleep to be gone",
      async () => !(await Deno.stat(`/proc/${pid}`).catch(() => null)),
    );
    const gone = await cli("containers", "rm", "-f", "l1");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/l1.*not found/);
  });

  it("a pull that cannot reach its registry names the cause and host:port", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close(); // nobody listens there now
    const refused = await cli("images", "pull", `127.0.0.1:${port}/busybox:latest`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(`connection refused by 127\\.0\\.0\\.1:${port} \\(gave up after \\d+ attempts\\)`),
    );
    expect(refused.stderr).not.toMatch(/fetch failed/);

    // A name that does not resolve: a daemon whose resolver asks a DNS server of ours on a
    // loopback address (a private /etc/resolv.conf in its own mount namespace), which
    // answers NXDOMAIN to everything — no query leaves loopback.
    const dns = await nxdomainServer();
    const dir = await Deno.makeTempDir({ prefix: "k8sc-dns-" });
    await Deno.writeTextFile(
      `${dir}/resolv.conf`,
      `nameserver ${dns.address}\noptions timeout:1 attempts:1\n`,
    );
    const d2 = await startTestDaemon({
      wrap: [
        "unshare",
        "-m",
        "sh",
        "-c",
        `mount --bind ${dir}/resolv.conf /etc/resolv.conf && exec "$@"`,
        "sh",
      ],
    });
    try {
      const r = await runCli([
        "--address",
        d2.socket,
        "images",
        "pull",
        "nonexistent.invalid/busybox:latest",
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /no such host: cannot resolve nonexistent\.invalid \(Name or service not known\)/,
      );
      expect(dns.queries()).toContain("nonexistent.invalid");
    } finally {
      await d2.stop();
      await d2.cleanup();
      dns.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  it("detaches from run -t, attach and tasks exec -t on ctrl-p ctrl-q or --detach-keys", async () => {
    const k8sc = `${command().join(" ")} --address ${d.socket}`;
    /** Runs `cli` under a pty (script), typing `keys` (printf escapes) after `delay` s. */
    const typed = async (cli: string, keys: string[], delay = 2) => {
      const feed = keys.map((x) => `printf '${x}'; sleep 0.5`).join("; ");
      const r = await new Deno.Command("sh", {
        // stdin stays open after the keys, so script does not send the pty an EOF first.
        args: ["-c", `(sleep ${delay}; ${feed}; sleep 3) | script -qfec "${cli}" /dev/null`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: r.code, out: dec.decode(r.stdout) };
    };
    const running = async (id: string) =>
      new RegExp(`^${id}\\s+\\d+\\s+RUNNING`, "m").test((await cli("tasks", "ls")).stdout);

    const run = await typed(`${k8sc} run -t ${image} dt1 sh`, [
      "echo one-$((1+1))\\r",
      "\\020\\021",
    ]);
    expect(run.out).toContain("one-2");
    expect(run.out).toMatch(/detached from dt1; it keeps running/);
    expect(run.code).toBe(0);
    expect(await running("dt1")).toBe(true);

    // attach with keys of our own; the default ones now pass through to the shell.
    const att = await typed(`${k8sc} attach --detach-keys ctrl-x,y dt1`, [
      "echo two-$((2+2))\\r",
      "\\030y",
    ]);
    expect(att.out).toContain("two-4");
    expect(att.code).toBe(0);
    expect(await running("dt1")).toBe(true);

    const ex = await typed(`${k8sc} tasks exec -t dt1 sh`, [
      "echo three-$((3+3))\\r",
      "\\020\\021",
    ]);
    expect(ex.out).toContain("three-6");
    expect(ex.out).toMatch(/detached from the exec session in dt1/);
    expect(ex.code).toBe(0);
    expect(await running("dt1")).toBe(true);

    // The shell still answers after all three detaches.
    const again = await typed(`${k8sc} attach dt1`, ["echo four-$((4+4))\\r", "exit\\r"]);
    expect(again.out).toContain("four-8");
    expect(again.code).toBe(0);
    await until("dt1 to exit", stopped("dt1", 0));
    expect((await cli("containers", "rm", "-f", "dt1")).code).toBe(0);

    const bad = await cli("attach", "--detach-keys", "ctrl-1", "dt1");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid --detach-keys "ctrl-1": "ctrl-1" is not a key/);
  });

  it("a reused container id starts with an empty log; rm removes the log", async () => {
    const first = await cli("run", "--rm", image, "c2", "echo", "first");
    expect(first).toEqual({ code: 0, stdout: "first\n", stderr: "" });
    const second = await cli("run", "--rm", image, "c2", "echo", "second");
    expect(second).toEqual({ code: 0, stdout: "second\n", stderr: "" });
    const logs = `${d.root}/logs/default`;
    expect(await Deno.stat(`${logs}/c2.log`).catch(() => null)).toBeNull();

    // containers rm (not only run --rm) takes the log along.
    expect((await cli("run", "-d", image, "lg1", "echo", "kept")).code).toBe(0);
    await until("lg1 to exit", stopped("lg1", 0));
    const info = JSON.parse((await cli("containers", "info", "lg1")).stdout);
    const path = info.labels["io.k8scontainerd.log-path"];
    expect(path).toBe(`${logs}/lg1.log`);
    expect(await Deno.readTextFile(path)).toMatch(/ stdout F kept\n$/);
    expect((await cli("tasks", "rm", "lg1")).code).toBe(0);
    expect((await cli("containers", "rm", "lg1")).code).toBe(0);
    expect(await Deno.stat(path).catch(() => null)).toBeNull();

    // A log left behind by an older container of the same id is not replayed.
    await Deno.writeTextFile(`${logs}/lg2.log`, "2020-01-01T00:00:00Z stdout F stale\n");
    const fresh = await cli("run", "--rm", image, "lg2", "echo", "fresh");
    expect(fresh.stdout).toBe("fresh\n");
  });

  it("forwards piped stdin to run and tasks exec, closing it at our EOF", async () => {
    const k = ["--address", d.socket];
    const read = await piped(
      [...k, "run", "--rm", image, "s2", "sh", "-c", "read v; echo got:$v"],
      "x\n",
    );
    expect(read).toEqual({ code: 0, stdout: "got:x\n", stderr: "" });
    // cat ends only when its stdin does: EOF reached the container.
    const cat = await piped([...k, "run", "--rm", "-i", image, "s3", "cat"], "a\nb\n");
    expect(cat).toEqual({ code: 0, stdout: "a\nb\n", stderr: "" });
    // Nothing piped (stdin /dev/null): the program sees EOF at once.
    const none = await cli("run", "--rm", image, "s4", "sh", "-c", "cat; echo done");
    expect(none).toEqual({ code: 0, stdout: "done\n", stderr: "" });

    expect((await cli("run", "-d", image, "s5", "sleep", "1000")).code).toBe(0);
    const ex = await piped([...k, "tasks", "exec", "s5", "sh", "-c", "read v; echo got:$v"], "y\n");
    expect(ex).toEqual({ code: 0, stdout: "got:y\n", stderr: "" });
    const exi = await piped(
      [...k, "tasks", "exec", "-i", "s5", "sh", "-c", "cat; echo err >&2; exit 3"],
      "p\nq\n",
    );
    expect(exi).toEqual({ code: 3, stdout: "p\nq\n", stderr: "err\n" });
    const bad = await cli("tasks", "exec", "-i", "--user", "1", "s5", "true");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--user cannot be combined with -t or -i/);
    await cli("tasks", "rm", "--force", "s5");
    await cli("containers", "rm", "s5");

    // From a terminal (a pty from `script`), without -t: the typed line is forwarded too.
    const typed = await new Deno.Command("sh", {
      args: [
        "-c",
        `(sleep 1.5; printf 'hello\\n') | script -qfec "${
          command().join(" ")
        } --address ${d.socket} run --rm ${image} p1 sh -c 'read v; echo got:\\$v'" /dev/null`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    expect(dec.decode(typed.stdout)).toContain("got:hello");
    expect(typed.code).toBe(0);

    // run -d -i keeps stdin open for a later attach, which feeds it.
    expect((await cli("run", "-d", "-i", image, "s6", "sh", "-c", "read v; echo got:$v")).code)
      .toBe(0);
    const att = await piped([...k, "attach", "s6"], "z\n");
    expect(att).toEqual({ code: 0, stdout: "got:z\n", stderr: "" });
    await until("s6 to exit", stopped("s6", 0));
    await cli("tasks", "rm", "s6");
    await cli("containers", "rm", "s6");
  });

  it("passes SIGHUP, SIGQUIT, SIGINT and SIGTERM on to a foreground run's task", async () => {
    const [cmd, ...pre] = command();
    const script = [
      'for s in HUP QUIT INT; do trap "echo got-$s" $s; done',
      "trap 'echo got-TERM; exit 5' TERM",
      "echo ready",
      "while :; do sleep 0.1; done",
    ].join("; ");
    const child = new Deno.Command(cmd, {
      args: [...pre, "--address", d.socket, "run", "--rm", image, "sig1", "sh", "-c", script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let out = "";
    const reader = child.stdout.getReader();
    const seen = async (text: string) => {
      const deadline = Date.now() + 15_000;
      while (!out.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no "${text}" in ${JSON.stringify(out)}`);
        const { value, done } = await reader.read();
        if (done) throw new Error(`output ended without "${text}": ${JSON.stringify(out)}`);
        out += dec.decode(value);
      }
    };
    await seen("ready\n");
    for (const s of ["HUP", "QUIT", "INT"] as const) {
      child.kill(`SIG${s}`);
      await seen(`got-${s}\n`);
    }
    child.kill("SIGTERM");
    await seen("got-TERM\n");
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const status = await child.status;
    expect(status.code).toBe(5);
    expect(out).toBe("ready\ngot-HUP\ngot-QUIT\ngot-INT\ngot-TERM\n");
    expect((await cli("containers", "ls", "--quiet")).stdout).not.toContain("sig1");

    // --sig-proxy=false: the CLI is interrupted itself, the task keeps running.
    const off = new Deno.Command(cmd, {
      args: [
        ...pre,
        "--address",
        d.socket,
        "run",
        "--sig-proxy=false",
        image,
        "sig2",
        "sleep",
        "1000",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await until(
      "sig2 to run",
      async () => /sig2\s+\d+\s+RUNNING/.test((await cli("tasks", "ls")).stdout),
    );
    off.kill("SIGTERM");
    expect((await off.status).signal).toBe("SIGTERM");
    expect((await cli("tasks", "ls")).stdout).toMatch(/sig2\s+\d+\s+RUNNING/);
    await cli("tasks", "rm", "--force", "sig2");
    await cli("containers", "rm", "sig2");
  });

  it("starts a stopped container again, also after tasks rm", async () => {
    expect((await cli("run", "-d", image, "r1", "sh", "-c", "echo ran; exit 4")).code).toBe(0);
    await until("r1 to exit", stopped("r1", 4));
    const again = await cli("tasks", "start", "r1");
    expect(again).toEqual({ code: 0, stdout: "", stderr: "" });
    await until(
      "r1 to exit again",
      async () => (await cli("logs", "r1")).stdout === "ran\nran\n" && await stopped("r1", 4)(),
    );
    expect((await cli("tasks", "rm", "r1")).stdout).toBe("r1: exit status 4\n");
    // No task, but the container is still there, and starts.
    expect((await cli("containers", "ls", "--quiet")).stdout).toContain("r1\n");
    expect((await cli("tasks", "start", "r1")).code).toBe(0);
    await until(
      "r1's third run",
      async () => (await cli("logs", "r1")).stdout === "ran\nran\nran\n",
    );
    await until("r1 to exit a third time", stopped("r1", 4));
    // A running task is not started twice.
    expect((await cli("run", "-d", image, "r2", "sleep", "1000")).code).toBe(0);
    const twice = await cli("tasks", "start", "r2");
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/cannot start container "r2": it is running/);
    for (const id of ["r1", "r2"]) {
      await cli("tasks", "rm", "--force", id);
      expect((await cli("containers", "rm", id)).code).toBe(0);
    }
  });
});

describe("cli: help and usage errors (no daemon needed)", () => {
  // A socket nobody serves: help and usage errors must not need one.
  const k = (...args: string[]) => runCli(["--address", "/nonexistent/k8sc.sock", ...args]);
  const leaves = (list: Command[], path: string[] = []): string[][] =>
    list.flatMap((c) =>
      c.subcommands ? leaves(c.subcommands, [...path, c.name]) : [[...path, c.name]]
    );

  it("prints every command's --help on stdout with exit 0", async () => {
    const paths = [
      [],
      ...leaves(COMMANDS),
      ...COMMANDS.filter((c) => c.subcommands).map((c) => [c.name]),
    ];
    for (let i = 0; i < paths.length; i += 4) {
      await Promise.all(
        paths.slice(i, i + 4).map(async (path) => {
          const r = await k(...path, "--help");
          expect({ path, code: r.code, stderr: r.stderr }).toEqual({ path, code: 0, stderr: "" });
          expect(r.stdout).toContain(
            path.length ? `Usage: k8scontainerd ${path.join(" ")}` : "COMMAND",
          );
        }),
      );
    }
    for (
      const args of [["run", "--help"], ["tasks", "exec", "--help"], ["daemon", "--help"], [
        "config",
        "check",
        "--help",
      ]]
    ) {
      const r = await k(...args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: k8scontainerd /);
    }
  });

  it("answers `GROUP help`, a bare GROUP and `help GROUP` alike: stdout, exit 0", async () => {
    for (const group of ["tasks", "images", "containers", "snapshots"]) {
      const [a, b, c] = await Promise.all([k(group, "help"), k(group), k("help", group)]);
      for (const r of [a, b, c]) {
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      }
      expect(b.stdout).toBe(a.stdout);
      expect(c.stdout).toBe(a.stdout);
    }
    const top = await k("help");
    expect(top.code).toBe(0);
    expect(top.stdout.split("\n")).toContain("  attach [--detach-keys KEYS] ID");
    expect((await k("--help")).stdout).toBe(top.stdout);
  });

  it("exits 2 on every usage mistake, naming it", async () => {
    const cases: [string[], RegExp][] = [
      [["version", "--bogus"], /^k8scontainerd: version: unknown flag --bogus/],
      [["containers", "rm", "--bogus", "X"], /containers rm: unknown flag --bogus/],
      [
        ["images", "ls", "--format", "yaml"],
        /images ls: invalid --format "yaml": expected table or json/,
      ],
      [["tasks", "ls", "--format=xml"], /invalid --format "xml"/],
      [["tasks", "bogus"], /unknown tasks command "bogus"/],
      [["bogus"], /unknown command "bogus"/],
      [["--bogus"], /unknown flag --bogus/],
      [["run"], /run: missing IMAGE/],
      [["tasks", "exec", "c1"], /tasks exec: missing CMD/],
      [
        ["run", "--sig-proxy=maybe", "i", "c"],
        /invalid --sig-proxy "maybe": expected true or false/,
      ],
      [["run", "--rm", "-d", "i", "c"], /--rm and -d cannot be combined/],
      [["run", "--label", "novalue", "i", "c"], /invalid --label "novalue": expected key=value/],
      [["logs", "--tail", "x", "c"], /invalid --tail "x"/],
      [["help", "nope"], /help: unknown command "nope"/],
      [["config"], /./],
    ];
    for (const [args, re] of cases) {
      const r = await k(...args);
      if (args[0] === "config") {
        expect(r.code).toBe(0); // a bare group prints its help
        continue;
      }
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
      expect(r.stderr).toMatch(re);
    }
    // Not a usage mistake: the daemon is not there (exit 1, naming the socket).
    const down = await k("version");
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the daemon at \/nonexistent\/k8sc\.sock/);
  });
});
