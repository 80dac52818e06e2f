/**
 * Host checks behind `k8scontainerd doctor`: what the runtime needs from the kernel and which
 * helper binaries it finds, each with a one-line fix. Pure inspection; it changes nothing.
 *
 * @example
 * ```ts
 * import { runChecks } from "./checks.ts";
 * for (const c of await runChecks()) console.log(c.status, c.name, c.detail, c.fix ?? "");
 * ```
 */
import { cgroupMode } from "../../ffi/mod.ts";
import { appArmorSummary } from "../runtime/apparmor.ts";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

/** Where CNI plugins are looked for, as containerd's and CRI-O's defaults plus Debian's. */
export const CNI_BIN_DIRS = ["/opt/cni/bin", "/usr/lib/cni"];
export const CNI_CONF_DIR = "/etc/cni/net.d";
const CNI_PLUGINS = ["bridge", "host-local", "loopback", "portmap"];

async function output(cmd: string, args: string[], stdin?: string): Promise<string | null> {
  try {
    const child = new Deno.Command(cmd, {
      args,
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    if (stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(stdin));
      await w.close();
    }
    const res = await child.output();
    return new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function kernel(): Promise<CheckResult[]> {
  const out: CheckResult[] = [{
    name: "kernel",
    status: "ok",
    detail: `Linux ${Deno.osRelease()} ${Deno.build.arch}`,
  }];
  const fs = await Deno.readTextFile("/proc/filesystems").catch(() => "");
  const hasOverlay = /\toverlay$/m.test(fs) || await exists("/sys/module/overlay");
  out.push(
    hasOverlay ? { name: "overlayfs", status: "ok", detail: "overlay filesystem available" } : {
      name: "overlayfs",
      status: "fail",
      detail: "overlay filesystem not available",
      fix: "modprobe overlay (and add it to /etc/modules)",
    },
  );
  const missing = [];
  for (const ns of ["mnt", "uts", "ipc", "pid", "net", "user", "cgroup"]) {
    if (!(await exists(`/proc/self/ns/${ns}`))) missing.push(ns);
  }
  out.push(
    missing.length
      ? {
        name: "namespaces",
        status: "fail",
        detail: `missing: ${missing.join(", ")}`,
        fix: "use a kernel built with CONFIG_NAMESPACES and the missing ones",
      }
      : { name: "namespaces", status: "ok", detail: "mnt uts ipc pid net user cgroup" },
  );
  try {
    const mode = cgroupMode();
    if (mode === "none") throw new Error("no cgroup filesystem mounted");
    const controllers = mode === "v2"
      ? (await Deno.readTextFile("/sys/fs/cgroup/cgroup.controllers")).trim()
      : [...Deno.readDirSync("/sys/fs/cgroup")].map((e) => e.name).filter((n) =>
        n !== "unified" && n !== "systemd"
      ).sort().join(" ");
    const need = ["cpu", "memory", "pids"].filter((c) => !controllers.split(/\s+/).includes(c));
    out.push({
      name: "cgroups",
      status: need.length ? "warn" : "ok",
      detail: `${
        mode === "v2"
          ? "cgroup v2 (unified)"
          : mode === "hybrid"
          ? "cgroup v1 (hybrid, cgroup2 at /sys/fs/cgroup/unified)"
          : "cgroup v1"
      }; controllers: ${controllers}`,
      fix: need.length ? `enable the ${need.join(", ")} controller(s)` : undefined,
    });
  } catch (e) {
    out.push({
      name: "cgroups",
      status: "fail",
      detail: `cannot read /sys/fs/cgroup: ${(e as Error).message}`,
      fix: "mount cgroupfs (v2 at /sys/fs/cgroup)",
    });
  }
  return out;
}

async function binary(
  name: string,
  args: string[],
  required: boolean,
  pkg: string,
): Promise<CheckResult> {
  const out = await output(name, args);
  if (out === null) {
    return {
      name,
      status: required ? "fail" : "warn",
      detail: `${name} not found in PATH`,
      fix: `apt-get install ${pkg}${required ? "" : " (optional)"}`,
    };
  }
  return { name, status: "ok", detail: out.split("\n")[0].trim() };
}

async function cni(): Promise<CheckResult[]> {
  const found = new Map<string, string>();
  for (const dir of CNI_BIN_DIRS) {
    for (const p of CNI_PLUGINS) {
      if (!found.has(p) && await exists(`${dir}/${p}`)) found.set(p, `${dir}/${p}`);
    }
  }
  const missing = CNI_PLUGINS.filter((p) => !found.has(p));
  const results: CheckResult[] = [];
  if (missing.length) {
    results.push({
      name: "cni-plugins",
      status: "fail",
      detail: `missing ${missing.join(", ")} in ${CNI_BIN_DIRS.join(" or ")}`,
      fix: "apt-get install containernetworking-plugins",
    });
  } else {
    const bridge = found.get("bridge")!;
    const v = await output(bridge, [], undefined);
    const proto = await output("env", ["CNI_COMMAND=VERSION", bridge], "{}");
    let versions = "";
    try {
      versions = (JSON.parse(proto ?? "") as { supportedVersions: string[] }).supportedVersions
        .join(", ");
    } catch { /* older plugins print nothing useful */ }
    results.push({
      name: "cni-plugins",
      status: "ok",
      detail: `${CNI_PLUGINS.join(", ")} in ${bridge.slice(0, bridge.lastIndexOf("/"))}` +
        `${v ? `; ${v.split("\n")[0].trim()}` : ""}${versions ? `; CNI versions ${versions}` : ""}`,
    });
  }
  let confs: string[] = [];
  try {
    confs = [...Deno.readDirSync(CNI_CONF_DIR)].map((e) => e.name).filter((n) =>
      /\.(conflist|conf|json)$/.test(n)
    ).sort();
  } catch { /* absent */ }
  results.push(
    confs.length
      ? { name: "cni-config", status: "ok", detail: `${CNI_CONF_DIR}: ${confs.join(", ")}` }
      : {
        name: "cni-config",
        status: "warn",
        detail:
          `no network config in ${CNI_CONF_DIR}: pods report NetworkReady=false until one exists`,
        fix:
          `install your cluster's CNI (it writes ${CNI_CONF_DIR}), or write a bridge .conflist there`,
      },
  );
  return results;
}

async function privileges(): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  out.push(
    Deno.uid() === 0 ? { name: "root", status: "ok", detail: "running as root" } : {
      name: "root",
      status: "fail",
      detail: `running as uid ${Deno.uid()}`,
      fix: "run the daemon as root",
    },
  );
  const adj = (await Deno.readTextFile("/proc/self/oom_score_adj").catch(() => "0")).trim();
  if (adj !== "0" && Number(adj) > -1000) {
    out.push({
      name: "oom_score_adj",
      status: "warn",
      detail: `this process has oom_score_adj ${adj}; containers cannot be given a lower value`,
      fix: "nothing to do: the daemon clamps container values to its own and logs it once",
    });
  }
  return out;
}

/** Runs every check; never throws. */
export async function runChecks(): Promise<CheckResult[]> {
  const [k, runc, crun, conmon, ipt, ip, net, priv] = await Promise.all([
    kernel(),
    binary("runc", ["--version"], true, "runc"),
    binary("crun", ["--version"], false, "crun"),
    binary("conmon", ["--version"], true, "conmon"),
    binary("iptables", ["--version"], true, "iptables"),
    binary("ip", ["-V"], true, "iproute2"),
    cni(),
    privileges(),
  ]);
  const aa = { name: "apparmor", ...(await appArmorSummary()) };
  return [...k, runc, crun, conmon, ...net, ipt, ip, ...priv, aa];
}
