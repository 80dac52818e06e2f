/**
 * The test daemon when systemd runs it (the VM suite): `startTestDaemon` hands over here when
 * `K8SC_E2E_SYSTEMD_UNIT` names the installed unit. The suite's `--config` file becomes
 * /etc/k8scontainerd/config.toml (with the systemd cgroup driver), "start" is
 * `systemctl restart` (which returns once the daemon sent READY=1), "stop" is `systemctl stop`,
 * "kill -9" is `systemctl kill --kill-who=main -s KILL` (only the daemon: the containers'
 * conmons live on, as in production), and the log is the unit's journal.
 */
import { parse, stringify } from "smol-toml";
import type { StartOptions, TestDaemon } from "./harness.ts";

export const CONFIG_PATH = "/etc/k8scontainerd/config.toml";

function sh(cmd: string, args: string[]): { code: number; out: string } {
  const o = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

function mustSh(cmd: string, args: string[]): string {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}: ${r.out}`);
  return r.out;
}

function show(unit: string, prop: string): string {
  return mustSh("systemctl", ["show", "-p", prop, "--value", unit]).trim();
}

/** Writes the suite's config (systemd driver added) and (re)starts the unit. */
export async function startSystemdDaemon(unit: string, opts: StartOptions): Promise<TestDaemon> {
  const args = opts.args ?? [];
  let config: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--config") config = parse(await Deno.readTextFile(args[++i])) as typeof config;
    else throw new Error(`systemd-run test daemon: unsupported daemon flag ${args[i]}`);
  }
  config.cri = { ...(config.cri as object ?? {}), cgroup_driver: "systemd" };
  await Deno.mkdir("/etc/k8scontainerd", { recursive: true });
  await Deno.writeTextFile(CONFIG_PATH, stringify(config) + "\n");
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "k8sc-e2e-" });
  const since = Math.floor(Date.now() / 1000) - 1;
  // Type=notify: this returns once the daemon reported READY=1 (or failed).
  mustSh("systemctl", ["restart", unit]);
  const d: TestDaemon = {
    dir,
    root: "/var/lib/k8scontainerd",
    state: "/run/k8scontainerd",
    socket: "/run/k8scontainerd/k8scontainerd.sock",
    process: undefined,
    log: () => sh("journalctl", ["-u", unit, "-o", "cat", `--since=@${since}`]).out,
    stop() {
      mustSh("systemctl", ["stop", unit]);
      return Promise.resolve(Number(show(unit, "ExecMainStatus")) || 0);
    },
    async kill() {
      const pid = show(unit, "MainPID");
      if (pid === "0") return;
      mustSh("systemctl", ["kill", "--kill-who=main", "--signal=SIGKILL", unit]);
      // Wait for the kill to land (Restart=always brings it back a little later by itself).
      for (let i = 0; i < 100 && show(unit, "MainPID") === pid; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    cleanup: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
  return d;
}
