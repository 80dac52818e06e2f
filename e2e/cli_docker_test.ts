/**
 * The docker-style forms a nerdctl user types, against a real daemon and registry: ps, exec,
 * rm, pull, rmi, inspect, logs and stats as aliases; run --name / a generated id, -e, -v,
 * auto-pull with progress, docker's 127 / 126 exit codes, malformed -p and --restart refused
 * clearly (cli_net_test.ts runs them for real);
 * images export that a docker-archive reader (skopeo) loads.
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
import { runCli, startTestDaemon, type TestDaemon } from "./harness.ts";

async function until(what: string, ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!isRoot, ROOT_REASON)("cli: docker-style forms", () => {
  let registry: Registry;
  let d: TestDaemon;
  let image: string;
  const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
  const stopped = (id: string) => async () =>
    new RegExp(`^${id}\\s+\\d+\\s+STOPPED`, "m").test((await cli("tasks", "ls")).stdout);

  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox"]);
    image = `${registry.address}/busybox:latest`;
    d = await startTestDaemon();
  });
  afterAll(async () => {
    if (d) {
      for (const id of (await cli("ps", "-a", "--quiet")).stdout.split("\n")) {
        if (id) await cli("rm", "-f", id);
      }
      await d.stop();
      await d.cleanup();
    }
    await registry?.stop();
  });

  it("run pulls a missing image with progress, names containers, exits 127/126", async () => {
    // Not pulled yet: run pulls it, progress on stderr, the program's output alone on stdout.
    const first = await cli("run", "--rm", "--name", "n1", image, "echo", "hello");
    expect(first.stdout).toBe("hello\n");
    expect(first.stderr).toContain(`Unable to find image '${image}' locally`);
    expect(first.stderr).toMatch(/pulled in [\d.]+ s/);
    expect(first.code).toBe(0);
    const second = await cli("run", "--rm", "--name", "n1", image, "echo", "again");
    expect(second).toEqual({ code: 0, stdout: "again\n", stderr: "" });

    // --name, then the command right after IMAGE; -e; -v with :ro.
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/f`, "from-host");
    const r = await cli(
      "run",
      "--rm",
      "--name",
      "n2",
      "-e",
      "GREETING=hi",
      "-v",
      `${dir}:/data:ro`,
      image,
      "sh",
      "-c",
      "echo $GREETING; cat /data/f; echo; touch /data/x 2>/dev/null || echo read-only",
    );
    expect(r).toEqual({ code: 0, stdout: "hi\nfrom-host\nread-only\n", stderr: "" });
    const rw = await cli(
      "run",
      "--rm",
      "--name",
      "n3",
      "-v",
      `${dir}:/data`,
      image,
      "touch",
      "/data/y",
    );
    expect(rw.code).toBe(0);
    expect((await Deno.stat(`${dir}/y`)).isFile).toBe(true);
    await Deno.remove(dir, { recursive: true });

    // No name and no ID: a generated one, as nerdctl.
    const auto = await cli("run", "-d", image);
    expect(auto.code).toBe(0);
    const id = auto.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect((await cli("ps", "-a", "--quiet")).stdout.split("\n")).toContain(id);
    expect((await cli("rm", "-f", id)).code).toBe(0);

    // docker's exit codes for a command that cannot run; nothing is left behind.
    const missing = await cli("run", "--rm", "--name", "x1", image, "nosuchcommand");
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/nosuchcommand/);
    const notExec = await cli("run", "--rm", "--name", "x2", image, "/etc/passwd");
    expect(notExec.code).toBe(126);
    expect(notExec.stderr).toMatch(/permission denied/i);
    // Any other start failure (here a missing -v source) is a plain failure, exit 1.
    const noSrc = await cli(
      "run",
      "--rm",
      "--name",
      "x3",
      "-v",
      "/nonexistent-k8sc:/x",
      image,
      "true",
    );
    expect(noSrc.code).toBe(1);
    expect(noSrc.stderr).toMatch(/nonexistent-k8sc.*no such file or directory/);
    expect((await cli("ps", "-a", "--quiet")).stdout).not.toMatch(/^x[123]$/m);

    // Refused clearly, before anything is created (exit 2).
    const cases: [string[], RegExp][] = [
      [["-p", "8080"], /invalid -p "8080": expected HOST:CTR, IP:HOST:CTR/],
      [["-p", "8080:80/sctp"], /invalid -p "8080:80\/sctp"/],
      [["-p", "8080:80", "--net", "host"], /-p needs a CNI network .*port needs no publishing/],
      [["--restart", "sometimes"], /invalid --restart "sometimes": expected no, always/],
      [["--restart=always", "--rm"], /--rm and --restart=always cannot be combined/],
      [["-v", "relative:/x"], /"relative" is not an absolute host path/],
      [["-v", "/tmp"], /expected SRC:DST or SRC:DST:ro/],
    ];
    for (const [flags, re] of cases) {
      const bad = await cli("run", ...flags, "--name", "bad1", image, "true");
      expect({ flags, code: bad.code }).toEqual({ flags, code: 2 });
      expect(bad.stderr).toMatch(re);
    }
    expect((await cli("run", "--restart=no", "--rm", "--name", "ok1", image, "true")).code).toBe(0);
    expect((await cli("ps", "-a", "--quiet")).stdout).not.toMatch(/^(bad1|ok1)$/m);
  });

  it("ps, exec, logs, stats, inspect, rm, pull and rmi as nerdctl users type them", async () => {
    expect((await cli("pull", "-q", image)).stdout).toBe(`${image}\n`);
    expect((await cli("run", "-d", "--name", "web", image, "sh", "-c", "echo up; sleep 1000")).code)
      .toBe(0);
    expect((await cli("run", "-d", "--name", "done", image, "true")).code).toBe(0);
    await until("done to exit", stopped("done"));

    const ps = await cli("ps");
    expect(ps.stdout).toMatch(/^web\s.*\srunning\s/m);
    expect(ps.stdout).not.toMatch(/^done\s/m);
    expect((await cli("ps", "-a")).stdout).toMatch(/^done\s.*\sstopped \(exit 0\)\s/m);

    expect(await cli("exec", "web", "sh", "-c", "echo in-$HOSTNAME")).toEqual({
      code: 0,
      stdout: "in-web\n",
      stderr: "",
    });
    await until("web's log", async () => (await cli("logs", "web")).stdout === "up\n");

    const stats = await cli("stats");
    expect(stats.stdout).toMatch(/^ID\s+CPU USAGE\s+MEMORY USAGE \/ LIMIT/);
    expect(stats.stdout).toMatch(/^web\s/m);
    expect(stats.stdout).not.toMatch(/^done\s/m);
    const sj = JSON.parse((await cli("stats", "--format", "json", "web")).stdout);
    expect(sj).toHaveLength(1);
    expect(sj[0].id).toBe("web");
    expect(sj[0].pids).toBeGreaterThanOrEqual(1);

    const [c, i] = JSON.parse((await cli("inspect", "web", image)).stdout);
    expect(c.id).toBe("web");
    expect(c.spec.process.args).toEqual(["sh", "-c", "echo up; sleep 1000"]);
    expect(i.name).toBe(image);
    const none = await cli("inspect", "nothing-here");
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no container or image named "nothing-here"/);

    expect(await cli("rm", "-f", "web", "done")).toEqual({
      code: 0,
      stdout: "web\ndone\n",
      stderr: "",
    });
    expect((await cli("ps", "-a", "--quiet")).stdout).toBe("");
    expect(await cli("rmi", image)).toEqual({ code: 0, stdout: `${image}\n`, stderr: "" });
    expect((await cli("images", "ls", "--quiet")).stdout).not.toContain(image);
  });

  it("images export writes manifest.json and repositories that a docker-archive reader loads", async () => {
    expect((await cli("pull", "-q", image)).code).toBe(0);
    const dir = await Deno.makeTempDir();
    try {
      const tar = `${dir}/busybox.tar`;
      expect((await cli("images", "export", tar, image)).code).toBe(0);
      const x = await new Deno.Command("tar", { args: ["-xf", tar, "-C", dir] }).output();
      expect(x.code).toBe(0);
      const manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
      const familiar = image; // not on docker.io: the name stays whole
      expect(manifest).toHaveLength(1);
      expect(manifest[0].RepoTags).toEqual([familiar]);
      for (const p of [manifest[0].Config, ...manifest[0].Layers]) {
        expect((await Deno.stat(`${dir}/${p}`)).isFile).toBe(true);
      }
      const config = JSON.parse(await Deno.readTextFile(`${dir}/${manifest[0].Config}`));
      expect(config.rootfs.diff_ids).toHaveLength(manifest[0].Layers.length);
      const repos = JSON.parse(await Deno.readTextFile(`${dir}/repositories`));
      const repo = familiar.slice(0, familiar.lastIndexOf(":"));
      expect(repos[repo].latest).toBe(manifest[0].Layers.at(-1).split("/").at(-1));
      // The OCI layout is still there for ctr and our own import.
      expect((await Deno.stat(`${dir}/index.json`)).isFile).toBe(true);

      // skopeo reads it as `docker load` would: through manifest.json (docker-archive:).
      const sk = await new Deno.Command("skopeo", {
        args: ["inspect", "--config", `docker-archive:${tar}`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      expect({ code: sk.code, err: new TextDecoder().decode(sk.stderr) }).toEqual({
        code: 0,
        err: "",
      });
      const seen = JSON.parse(new TextDecoder().decode(sk.stdout));
      expect(seen.rootfs.diff_ids).toEqual(config.rootfs.diff_ids);
      const copy = await new Deno.Command("skopeo", {
        args: ["copy", "-q", `docker-archive:${tar}`, `oci:${dir}/copied:latest`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      expect({ code: copy.code, err: new TextDecoder().decode(copy.stderr) }).toEqual({
        code: 0,
        err: "",
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
