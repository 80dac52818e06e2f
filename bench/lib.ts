/**
 * Benchmark plumbing shared by every side-by-side benchmark: a private containerd 1.6 (Debian)
 * and a private k8scontainerd, each with its own root, state and socket; peak memory read from
 * the kernel (VmHWM of the daemon process, so a short spike is not missed between samples);
 * medians and ratios.
 */
import { REPO, startTestDaemon, type TestDaemon } from "../e2e/harness.ts";

export interface Daemon {
  name: string;
  pid: number;
  socket: string;
  dir: string;
  stop(): Promise<void>;
}

/** Peak resident set size of a live process, in bytes (VmHWM). */
export async function peakRss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Proportional set size of a live process, in bytes (shared pages split between sharers). */
export async function pss(pid: number): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`);
  const m = /^Pss:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The per-container (conmon) or per-pod (containerd-shim) monitor processes of the daemon whose
 * dir is `dir`: their command lines name it.
 */
export async function monitorPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).split("\0");
      if (/(conmon|containerd-shim)/.test(cmd[0]) && cmd.some((a) => a.includes(dir))) {
        pids.push(Number(e.name));
      }
    } catch { /* gone */ }
  }
  return pids;
}

/** PSS of all of a daemon's monitors (see {@link monitorPids}), in bytes. */
export async function monitorsPss(dir: string): Promise<number> {
  let sum = 0;
  for (const pid of await monitorPids(dir)) sum += await pss(pid).catch(() => 0);
  return sum;
}

/**
 * CPU seconds a live process used (user + system), with those of its children it has reaped
 * (the runc and CNI plugin runs a daemon or monitor waits for).
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the ")" that ends the command name: utime is field 14, cstime 17 (1-based).
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = [11, 12, 13, 14].reduce((s, i) => s + Number(f[i]), 0);
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** Starts containerd 1.6 from Debian on a private root; its CRI plugin stays on, as on a node. */
export async function startContainerd(
  opts: { hostsDir?: string; extra?: string[] } = {},
): Promise<Daemon> {
  const dir = await Deno.makeTempDir({ prefix: "bench-containerd-" });
  const socket = `${dir}/containerd.sock`;
  const config = [
    "version = 2",
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    "[grpc]",
    `  address = "${socket}"`,
    "[debug]",
    '  level = "warn"',
    // `extra` replaces the CRI plugin section (the pod benchmark configures CNI and the pause image).
    ...(opts.extra ?? [
      '[plugins."io.containerd.grpc.v1.cri"]',
      "  restrict_oom_score_adj = true",
      ...(opts.hostsDir
        ? ['[plugins."io.containerd.grpc.v1.cri".registry]', `  config_path = "${opts.hostsDir}"`]
        : []),
    ]),
  ].join("\n");
  await Deno.writeTextFile(`${dir}/config.toml`, config);
  const child = new Deno.Command("containerd", {
    args: ["--config", `${dir}/config.toml`],
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const r = await new Deno.Command("ctr", {
      args: ["-a", socket, "version"],
      stdout: "null",
      stderr: "null",
    }).output();
    if (r.success) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: "containerd",
    pid: child.pid,
    socket,
    dir,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await umountUnder(dir);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Starts k8scontainerd from this tree on a private root. */
export async function startOurs(args: string[] = []): Promise<Daemon & { daemon: TestDaemon }> {
  // A launcher given by hand (a profiling wrapper, say) is kept as it is.
  const env = Deno.env.get("K8SC_DENO") ? undefined : { K8SC_DENO: await daemonDeno() };
  const d = await startTestDaemon({ args: ["--log-level", "warn", ...args], env });
  return {
    name: "k8scontainerd",
    pid: d.process!.pid, // ours always runs as a child here
    socket: d.socket,
    dir: d.dir,
    daemon: d,
    async stop() {
      await d.stop();
      await umountUnder(d.dir);
      await d.cleanup();
    },
  };
}

/**
 * A copy of the Deno running the bench, for our daemon to run on. PSS splits a file's resident
 * pages between the processes that map it, so a daemon on the bench's own Deno binary is charged
 * only part of the binary's code: measured here, a fresh daemon read 71 MiB alone and 59 MiB
 * beside one `deno eval`. On a node the daemon is the only process of its executable (the
 * compiled binary; now and then a CLI call), so it is measured on a binary of its own. Copied
 * once per Deno build, under /var/tmp, renamed into place whole.
 */
export async function daemonDeno(dir = "/var/tmp/k8sc-bench"): Promise<string> {
  const src = Deno.execPath();
  const st = await Deno.stat(src);
  // Named `deno` still: the daemon tells a from-source run from the compiled binary by the name
  // (selfCommand() in services/sandboxes/port_forward.ts).
  const build = `${dir}/${st.size}-${st.mtime?.getTime() ?? 0}`;
  const dst = `${build}/deno`;
  if (await Deno.stat(dst).then(() => true, () => false)) return dst;
  await Deno.mkdir(build, { recursive: true });
  const tmp = `${dst}.${Deno.pid}.tmp`;
  await Deno.copyFile(src, tmp);
  await Deno.chmod(tmp, 0o755);
  await Deno.rename(tmp, dst);
  return dst;
}

/** Unmounts anything a daemon left mounted under its temp dir (deepest first). */
export async function umountUnder(dir: string): Promise<void> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  const points = info.split("\n").map((l) => l.split(" ")[4]).filter((p) =>
    p && p.startsWith(dir + "/")
  );
  for (const p of points.sort((a, b) => b.length - a.length)) {
    await new Deno.Command("umount", { args: ["-l", p], stderr: "null" }).output();
  }
}

/** Runs a command to completion, returning wall seconds; throws with its stderr on failure. */
export async function timed(cmd: string[], env?: Record<string, string>): Promise<number> {
  const start = performance.now();
  const r = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "null",
    stderr: "piped",
    env,
  }).output();
  const secs = (performance.now() - start) / 1000;
  if (!r.success) throw new Error(`${cmd.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`);
  return secs;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export const OUR_CLI = [`${REPO}scripts/k8scontainerd`];

export function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

/** The names `ip netns list` shows now. */
export async function netnsNames(): Promise<Set<string>> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" }).output();
  return new Set(
    new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]).filter((n) => n),
  );
}

/**
 * After a CRI bench run of one runtime: kills its shims/monitors, deletes its bridge and the pod
 * network namespaces that appeared since `before` (only k8sc-/cni- ones: never a namespace that
 * was there when the run began, so other daemons on the node keep theirs), removes `work`.
 */
export async function cleanUpCriRun(
  d: Daemon,
  bridge: string,
  work: string,
  before: Set<string>,
): Promise<void> {
  await new Deno.Command("sh", {
    args: [
      "-c",
      `pkill -9 -f '[c]ontainerd-shim.*${d.dir}'; pkill -9 -f '[c]onmon.*${d.dir}'; ip link del ${bridge} 2>/dev/null; true`,
    ],
  }).output();
  for (const n of await netnsNames()) {
    if (before.has(n) || !/^(k8sc-|cni-)/.test(n)) continue;
    await new Deno.Command("ip", { args: ["netns", "del", n], stderr: "null" }).output();
  }
  await Deno.remove(work, { recursive: true }).catch(() => {});
}

/**
 * `report` with the section that starts at the line `heading…` (up to the next `## ` heading or
 * the end) replaced by `section`, or `section` appended when there is none.
 *
 * @example
 * ```ts
 * replaceSection("# R\n\n## A\nold\n\n## B\nb\n", "## A", "## A\nnew\n");
 * // "# R\n\n## A\nnew\n\n## B\nb\n"
 * ```
 */
export function replaceSection(report: string, heading: string, section: string): string {
  const body = section.trimEnd() + "\n";
  const at = report.startsWith(heading) ? 0 : report.indexOf(`\n${heading}`) + 1;
  if (at <= 0 && !report.startsWith(heading)) {
    return report.trim() === "" ? body : `${report.trimEnd()}\n\n${body}`;
  }
  const next = report.indexOf("\n## ", at + heading.length);
  if (next < 0) return report.slice(0, at) + body;
  return report.slice(0, at) + body + "\n" + report.slice(next + 1);
}

/**
 * The hand-written sections of `report`: those whose heading starts with a date (`## 2026-12-04:
 * …`), notes of one-off measurements that a new run of the generated sections must not drop.
 *
 * @example
 * ```ts
 * datedSections("# R\n\n## Pull\np\n\n## 2026-12-04: A/B\nx\n"); // ["## 2026-12-04: A/B\nx\n"]
 * ```
 */
export function datedSections(report: string): string[] {
  const out: string[] = [];
  for (const m of report.matchAll(/^## \d{4}-\d{2}-\d{2}\b.*$/gm)) {
    out.push(sectionOf(report.slice(m.index), m[0])!);
  }
  return out;
}

/** The section of `report` that starts at the line `heading…` (up to the next `## `), if any. */
export function sectionOf(report: string, heading: string): string | undefined {
  const at = report.startsWith(heading) ? 0 : report.indexOf(`\n${heading}`) + 1;
  if (at === 0 && !report.startsWith(heading)) return undefined;
  const next = report.indexOf("\n## ", at + heading.length);
  return (next < 0 ? report.slice(at) : report.slice(at, next)).trimEnd() + "\n";
}
