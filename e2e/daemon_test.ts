/**
 * The daemon as an operator meets it: it starts, answers both APIs on its socket, counts calls
 * in its metrics, refuses a second daemon on the same root, stops cleanly on SIGTERM and comes
 * back after a kill -9.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "../src/testing/bdd.ts";
import { call } from "../src/grpc/clients.ts";
import { runCli, startTestDaemon, type TestDaemon } from "./harness.ts";
import { AF_UNIX, bindUnix, readAsync, SOCK_CLOEXEC, SOCK_DGRAM, socket } from "../ffi/socket.ts";
import { close } from "../ffi/fs.ts";
import { RuntimeServiceClient } from "../src/grpc/clients.ts";

function criClient(socket: string) {
  return new RuntimeServiceClient(`unix://${socket}`, grpc.credentials.createInsecure());
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

describe("daemon", () => {
  let d: TestDaemon;
  let metricsPort: number;

  beforeAll(async () => {
    metricsPort = freePort();
    d = await startTestDaemon({ args: ["--metrics-address", `127.0.0.1:${metricsPort}`] });
  });
  afterAll(async () => {
    await d?.kill();
    await d?.cleanup();
  });

  it("answers the CRI Version RPC the way crictl and the kubelet expect", async () => {
    const c = criClient(d.socket);
    try {
      const v = await call(d.socket, "k8s.io", c.version.bind(c), { version: "v1" });
      expect(v).toEqual({
        version: "0.1.0",
        runtimeName: "k8scontainerd",
        runtimeVersion: "0.1.0",
        runtimeApiVersion: "v1",
      });
    } finally {
      c.close();
    }
  });

  it("answers UNIMPLEMENTED for CRI RPCs it does not offer (as containerd 1.6)", async () => {
    const c = criClient(d.socket);
    try {
      await expect(
        call(d.socket, "k8s.io", c.checkpointContainer.bind(c), {
          containerId: "x",
          location: "/tmp/x",
          timeout: 0n,
        }),
      )
        .rejects.toMatchObject({
          code: grpc.status.UNIMPLEMENTED,
        });
    } finally {
      c.close();
    }
  });

  it("shows client and daemon versions with `version`", async () => {
    const r = await runCli(["--address", d.socket, "version"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Client:\n\s+Version:\s+0\.1\.0/);
    expect(r.stdout).toMatch(
      /Server:\n\s+Version:\s+0\.1\.0\n\s+Revision:\s+\S+\n\s+Runtime:\s+deno 2\./,
    );
  });

  it("serves the socket with mode 0660", async () => {
    const st = await Deno.lstat(d.socket);
    expect(st.isSocket).toBe(true);
    expect(st.mode! & 0o777).toBe(0o660);
  });

  it("counts and times requests per method on /v1/metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/v1/metrics`)).text();
    expect(text).toMatch(
      /k8scontainerd_grpc_requests_total\{method="\/runtime\.v1\.RuntimeService\/Version",code="OK"\} [1-9]/,
    );
    expect(text).toMatch(
      /k8scontainerd_grpc_request_duration_seconds_count\{method="\/runtime\.v1\.RuntimeService\/Version"\} [1-9]/,
    );
    expect(text).toMatch(
      /k8scontainerd_grpc_requests_total\{method="\/k8scontainerd\.services\.version\.v1\.Version\/Version",code="OK"\} [1-9]/,
    );
  });

  it("writes structured JSON logs", () => {
    const lines = d.log().trim().split("\n").map((l) => JSON.parse(l));
    const serving = lines.find((l) => l.msg === "serving");
    expect(serving).toMatchObject({ level: "info", address: d.socket, root: d.root });
    expect(lines.some((l) => l.level === "debug" && l.msg === "request")).toBe(true);
  });

  it("refuses a second daemon on the same root, naming the lock holder", async () => {
    const r = await runCli([
      "daemon",
      "--root",
      d.root,
      "--state",
      `${d.dir}/state2`,
      "--address",
      `${d.dir}/other.sock`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`another k8scontainerd daemon is using root ${d.root}`);
    expect(r.stderr).toContain(`held by pid`);
    // The first daemon is untouched.
    expect((await runCli(["--address", d.socket, "version"])).code).toBe(0);
  });

  it("refuses to take over a socket another daemon serves", async () => {
    const r = await runCli([
      "daemon",
      "--root",
      `${d.dir}/root2`,
      "--state",
      `${d.dir}/state2`,
      "--address",
      d.socket,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`another daemon is already serving on ${d.socket}`);
    expect((await runCli(["--address", d.socket, "version"])).code).toBe(0);
  });
});

describe("daemon lifecycle", () => {
  it("stops cleanly on SIGTERM: exit 0, socket removed, root reusable", async () => {
    const d = await startTestDaemon();
    try {
      expect(await d.stop()).toBe(0);
      await expect(Deno.lstat(d.socket)).rejects.toThrow(Deno.errors.NotFound);
      expect(d.log()).toContain('"msg":"stopped"');
      const again = await startTestDaemon({ dir: d.dir });
      expect(await again.stop()).toBe(0);
    } finally {
      await d.cleanup();
    }
  });

  it("restarts after kill -9: the stale socket is replaced and the lock was released", async () => {
    const d = await startTestDaemon();
    try {
      await d.kill();
      expect((await Deno.lstat(d.socket)).isSocket).toBe(true); // left behind by the crash
      const again = await startTestDaemon({ dir: d.dir });
      expect((await runCli(["--address", again.socket, "version"])).code).toBe(0);
      expect(await again.stop()).toBe(0);
    } finally {
      await d.cleanup();
    }
  });

  it("tells systemd it is ready once it serves, and that it is stopping (Type=notify)", async () => {
    const dir = await Deno.makeTempDir({ prefix: "k8sc-notify-" });
    const notify = `${dir}/notify`;
    const rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
    bindUnix(rx, notify);
    const dec = new TextDecoder();
    const next = async () => {
      const buf = new Uint8Array(4096);
      const n = await readAsync(rx, buf, { signal: AbortSignal.timeout(30_000) });
      return dec.decode(buf.subarray(0, n));
    };
    const daemonDir = `${dir}/d`;
    await Deno.mkdir(daemonDir);
    // READY=1 must come only once the socket answers: connect the moment it arrives.
    const ready = next().then(async (msg) => {
      const conn = await Deno.connect({
        transport: "unix",
        path: `${daemonDir}/k8scontainerd.sock`,
      });
      conn.close();
      return msg;
    });
    const d = await startTestDaemon({ dir: daemonDir, env: { NOTIFY_SOCKET: notify } });
    try {
      const msg = await ready;
      expect(msg.split("\n")).toContain("READY=1");
      expect(msg).toContain(`STATUS=serving on ${d.socket}`);
      const stopping = next();
      expect(await d.stop()).toBe(0);
      expect(await stopping).toBe("STOPPING=1");
    } finally {
      close(rx);
      await d.cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  });

  it.skipIf(
    Deno.readTextFileSync("/proc/1/comm").trim() === "systemd",
    "systemd is the init system here (the VM suite runs the systemd driver)",
  )("refuses the systemd cgroup driver where systemd is not the init system", async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/c.toml`, '[cri]\ncgroup_driver = "systemd"\n');
      const r = await runCli([
        "daemon",
        "--config",
        `${dir}/c.toml`,
        "--root",
        `${dir}/r`,
        "--state",
        `${dir}/s`,
        "--address",
        `${dir}/s.sock`,
      ]);
      expect(r.code).toBe(1);
      const fatal = r.stderr.trim().split("\n").map((l) => JSON.parse(l)).find((l) =>
        l.level === "fatal"
      );
      expect(fatal.err.message).toContain(
        'cri.cgroup_driver = "systemd" needs systemd as the init system',
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  it("refuses a damaged metadata.db (truncated, garbage) with what to do, and leaves it as it is", async () => {
    const d = await startTestDaemon();
    try {
      expect((await runCli(["--address", d.socket, "namespaces", "create", "kept"])).code).toBe(0);
      expect(await d.stop()).toBe(0);
      const db = `${d.root}/metadata.db`;
      const sha = async (path: string) =>
        new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(path)));
      const start = () =>
        runCli([
          "daemon",
          "--root",
          d.root,
          "--state",
          d.state,
          "--address",
          d.socket,
        ]);

      // Cut short (a disk that filled up, a copy interrupted): the schema's pages are gone.
      await Deno.truncate(db, 8192);
      const truncated = await sha(db);
      const a = await start();
      expect(a.code).toBe(1);
      expect(a.stderr).toContain(
        `metadata database ${db} is damaged (database disk image is malformed): refusing to start on it; it was left as it is. Restore it from a backup, or, to start over with empty metadata, move it aside`,
      );
      expect(a.stderr).toContain(`mv ${db} ${db}.damaged`);
      expect(a.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(await sha(db)).toEqual(truncated);
      await expect(Deno.lstat(d.socket)).rejects.toThrow(Deno.errors.NotFound);

      // Overwritten with garbage.
      const garbage = crypto.getRandomValues(new Uint8Array(16384));
      await Deno.writeFile(db, garbage);
      await Deno.remove(`${db}-wal`).catch(() => {});
      await Deno.remove(`${db}-shm`).catch(() => {});
      const b = await start();
      expect(b.code).toBe(1);
      expect(b.stderr).toContain(`metadata database ${db} is damaged (file is not a database)`);
      expect(b.stderr).not.toMatch(/\n\s+at /);
      expect(await Deno.readFile(db)).toEqual(garbage);

      // Doing what the message says brings the daemon back, with empty metadata.
      await Deno.rename(db, `${db}.damaged`);
      const again = await startTestDaemon({ dir: d.dir });
      const ns = await runCli(["--address", again.socket, "namespaces", "ls", "--quiet"]);
      expect(ns.stdout).not.toContain("kept");
      expect(await again.stop()).toBe(0);
      expect(await Deno.readFile(`${db}.damaged`)).toEqual(garbage);
    } finally {
      await d.cleanup();
    }
  });

  it("refuses a config with an unknown key, naming it", async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/c.toml`, '[grpc]\nadress = "/tmp/x.sock"\n');
      const r = await runCli([
        "daemon",
        "--config",
        `${dir}/c.toml`,
        "--root",
        `${dir}/r`,
        "--address",
        `${dir}/s.sock`,
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`config: ${dir}/c.toml: unknown key "grpc.adress"`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

describe("cli", () => {
  it("prints the full default config, which `config check` accepts", async () => {
    const r = await runCli(["config", "default"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('root = "/var/lib/k8scontainerd"');
    expect(r.stdout).toContain('address = "/run/k8scontainerd/k8scontainerd.sock"');
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/c.toml`, r.stdout);
      const check = await runCli(["config", "check", `${dir}/c.toml`]);
      expect(check).toMatchObject({ code: 0, stdout: `${dir}/c.toml: ok\n` });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  it("says the daemon is unreachable, naming the socket", async () => {
    const r = await runCli(["--address", "/nonexistent/k.sock", "version"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot reach the daemon at /nonexistent/k.sock");
  });

  it("rejects unknown commands and flags with exit code 2", async () => {
    expect(await runCli(["frobnicate"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unknown command "frobnicate"'),
    });
    expect((await runCli(["daemon", "--bogus"])).code).toBe(2);
  });

  it("doctor reports runc, conmon, CNI plugins and the cgroup mode", async () => {
    const r = await runCli(["doctor"]);
    expect(r.stdout).toMatch(/\[ ok \] runc\s+runc version 1\./);
    expect(r.stdout).toMatch(/\[ ok \] conmon\s+conmon version 2\./);
    expect(r.stdout).toMatch(/\[ ok \] cni-plugins\s+bridge, host-local, loopback, portmap/);
    expect(r.stdout).toMatch(/\[( ok |WARN)\] cgroups\s+cgroup v(1|2)/);
    expect(r.stdout).toMatch(/\[ ok \] overlayfs/);
    // Everything the daemon needs was installed by scripts/setup.sh, so nothing fails.
    expect(r.code).toBe(0);
  });
});
