/**
 * `k8scontainerd run | containers | tasks | logs | events`: containers and their tasks, as
 * a plain client of the management API.
 */
import type { DaemonClient } from "./client.ts";
import type { Args, Context } from "./commands.ts";
import { formatAge, formatBytes, formatLabels, parseLabels, printList } from "./output.ts";
import { UsageError } from "./usage_error.ts";
import { load } from "./lazy.ts";
import { interactiveSession, parseDetachKeys } from "./interactive.ts";
import { type CriStream, parseCriLogLine } from "../runtime/cri_log.ts";
import type { Mount, PortMapping } from "../gen/k8scontainerd/services/containers/v1/containers.ts";

/**
 * tasks.proto's Status values, spelled out: importing the generated enum would load the gRPC
 * code (and @grpc/grpc-js) with this module, before a usage error is found
 * (commands_test.ts checks they match).
 */
export const TASK_STATUS: Record<number, string> = {
  0: "UNKNOWN",
  1: "CREATED",
  2: "RUNNING",
  3: "STOPPED",
  4: "PAUSED",
};
const STOPPED = 3;

function parseMount(s: string): Mount {
  const m: Mount = { type: "bind", source: "", destination: "", options: [] };
  for (const part of s.split(",")) {
    const [k, ...rest] = part.split("=");
    const v = rest.join("=");
    if (k === "type") m.type = v;
    else if (k === "src" || k === "source") m.source = v;
    else if (k === "dst" || k === "destination" || k === "target") m.destination = v;
    else if (k === "options") m.options.push(...v.split(":"));
    else if (k === "ro" || k === "readonly") m.options.push("ro");
    else throw new UsageError(`invalid --mount "${s}": unknown field "${k}"`);
  }
  if (!m.destination) throw new UsageError(`invalid --mount "${s}": dst is required`);
  return m;
}

/** Decodes CRI log lines ("<time> <stream> <P|F> <text>") back into the program's output. */
export function decodeCriLog(
  chunk: string,
  out: (stream: CriStream, text: string) => void,
): void {
  for (const line of chunk.split("\n")) {
    const rec = parseCriLogLine(line);
    if (!rec) continue;
    out(rec.stream, rec.partial ? rec.content : `${rec.content}\n`);
  }
}

const enc = new TextEncoder();
function writeOut(stream: "stdout" | "stderr", text: string) {
  (stream === "stdout" ? Deno.stdout : Deno.stderr).writeSync(enc.encode(text));
}

async function followLogs(c: DaemonClient, id: string, follow: boolean, tail = 0n): Promise<void> {
  let rest = "";
  const dec = new TextDecoder();
  for await (
    const chunk of c.stream("tasks", "logs", { containerId: id, follow, tail })
  ) {
    const text = rest + dec.decode(chunk.data, { stream: true });
    const cut = text.lastIndexOf("\n");
    rest = text.slice(cut + 1);
    decodeCriLog(text.slice(0, cut + 1), writeOut);
  }
  decodeCriLog(rest, writeOut);
}

/** `-v SRC:DST[:ro|rw]` as a bind mount; SRC must be an absolute host path. */
export function parseVolume(s: string): Mount {
  const parts = s.split(":");
  const [src, dst, mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !src || !dst) {
    throw new UsageError(`invalid -v "${s}": expected SRC:DST or SRC:DST:ro`);
  }
  if (!src.startsWith("/")) {
    throw new UsageError(
      `invalid -v "${s}": "${src}" is not an absolute host path (named volumes are not supported)`,
    );
  }
  if (!dst.startsWith("/")) {
    throw new UsageError(`invalid -v "${s}": the container path "${dst}" is not absolute`);
  }
  if (mode !== undefined && mode !== "ro" && mode !== "rw") {
    throw new UsageError(`invalid -v "${s}": mode "${mode}" is not ro or rw`);
  }
  return {
    type: "bind",
    source: src,
    destination: dst,
    options: ["rbind", mode === "ro" ? "ro" : "rw"],
  };
}

/**
 * `-p [IP:]HOST:CTR[/tcp|udp]` as a port mapping; the host address is left empty (the daemon
 * binds 127.0.0.1) unless named.
 */
export function parsePublish(s: string): PortMapping {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(
    s,
  );
  const port = (v: string | undefined) => {
    const n = Number(v);
    return Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
  };
  const hostPort = port(m?.[2]), containerPort = port(m?.[3]);
  if (!m || hostPort === undefined || containerPort === undefined) {
    throw new UsageError(
      `invalid -p "${s}": expected HOST:CTR, IP:HOST:CTR, optionally /tcp or /udp (ports 1-65535)`,
    );
  }
  return {
    hostPort,
    containerPort,
    protocol: m[4] ?? "tcp",
    hostIp: (m[1] ?? "").replace(/^\[|\]$/g, ""),
  };
}

/** A container id as docker generates them: 64 hex digits. */
function generatedId(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * docker's exit codes for a command the runtime could not start: 127 when it does not
 * exist in the image, 126 when it is not executable; undefined for any other failure.
 */
export function startFailureExitCode(message: string): number | undefined {
  // runc: exec: "CMD": executable file not found in $PATH | stat CMD: no such file or directory
  // crun: executable file `CMD` not found in $PATH
  if (
    /exec: "[^"]*": (executable file not found|stat [^\n]*: no such file or directory)/
      .test(message) || /executable file `[^`]*` not found/.test(message)
  ) return 127;
  // runc: exec: "CMD": permission denied | exec format error; crun: open executable: …
  if (
    /exec: "[^"]*": (permission denied|exec format error)/i.test(message) ||
    /open executable: permission denied/i.test(message)
  ) return 126;
  return undefined;
}

/** The image as the daemon has it, pulled first (progress on stderr) when it is missing. */
async function ensureImage(c: DaemonClient, ref: string): Promise<string> {
  try {
    const { image } = await c.unary("images", "get", { name: ref });
    return image!.name;
  } catch (e) {
    if (!/not found/.test((e as Error).message)) throw e;
  }
  const enc = new TextEncoder();
  const err = (t: string) => void Deno.stderr.writeSync(enc.encode(t));
  err(`Unable to find image '${ref}' locally; pulling it\n`);
  const { pullImage } = await load("images");
  const image = await pullImage(c, ref, { out: err, tty: Deno.stderr.isTerminal() });
  return image.name;
}

export async function runCommand(a: Args, ctx: Context): Promise<number> {
  const image0 = a.positionals[0];
  const id = a.str("name") ?? a.positionals[1] ?? generatedId();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) {
    throw new UsageError(
      `run: invalid container name "${id}": letters, digits, _ . - only, not first`,
    );
  }
  const cmd = a.command;
  const ports = a.list("publish").map(parsePublish);
  const net = a.str("net") ?? (a.bool("net-host") ? "host" : ports.length ? "cni" : "none");
  if (a.bool("net-host") && net !== "host") {
    throw new UsageError(`run: --net-host and --net ${net} cannot be combined`);
  }
  if (ports.length && net !== "cni") {
    throw new UsageError(
      `run: -p needs a CNI network (--net cni, the default with -p); --net ${net} has none${
        net === "host" ? " (on the host's network a port needs no publishing)" : ""
      }`,
    );
  }
  const restart = a.str("restart") ?? "no";
  if (!/^(no|always|unless-stopped|on-failure(:\d+)?)$/.test(restart)) {
    throw new UsageError(
      `run: invalid --restart "${restart}": expected no, always, unless-stopped or on-failure[:N]`,
    );
  }
  if (restart !== "no" && a.bool("rm")) {
    throw new UsageError(`run: --rm and --restart=${restart} cannot be combined`);
  }
  const values = {
    rm: a.bool("rm"),
    detach: a.bool("detach"),
    tty: a.bool("tty"),
    interactive: a.bool("interactive"),
    "sig-proxy": a.bool("sig-proxy"),
  };
  if (values.rm && values.detach) throw new UsageError("run: --rm and -d cannot be combined");
  const detachKeys = a.str("detach-keys");
  if (detachKeys !== undefined) parseDetachKeys(detachKeys);
  const mounts = [...a.list("mount").map(parseMount), ...a.list("volume").map(parseVolume)];
  const labels = parseLabels(a.list("label"));
  const c = await ctx.client();
  const image = await ensureImage(c, image0);
  await c.unary("containers", "create", {
    id,
    image,
    runtime: a.str("runtime") ?? "",
    labels,
    args: cmd,
    env: a.list("env"),
    cwd: a.str("cwd") ?? "",
    user: a.str("user") ?? "",
    tty: !!values.tty,
    // A foreground run forwards our stdin, as ctr does; -d -i keeps one open for attach.
    stdin: !!values.tty || !!values.interactive || !values.detach,
    stdinOnce: !values.tty && !values.detach,
    mounts,
    netHost: net === "host",
    network: net === "cni" ? "cni" : "",
    ports,
    restartPolicy: restart === "no" ? "" : restart,
    readonlyRootfs: !!a.bool("read-only"),
    privileged: !!a.bool("privileged"),
    snapshotter: "",
    hostname: a.str("hostname") ?? "",
  });
  const cleanup = async () => {
    if (!values.rm) return;
    await c.unary("tasks", "delete", { containerId: id, force: true }).catch(() => {});
    await c.unary("containers", "delete", { id });
  };
  try {
    await c.unary("tasks", "create", { containerId: id, logPath: "" });
    await c.unary("tasks", "start", { containerId: id });
  } catch (e) {
    await c.unary("tasks", "delete", { containerId: id, force: true }).catch(() => {});
    await c.unary("containers", "delete", { id }).catch(() => {});
    const code = startFailureExitCode((e as Error).message);
    if (code === undefined) throw e;
    console.error(`k8scontainerd: ${(e as Error).message}`);
    return code;
  }
  if (values.detach) {
    console.log(id);
    return 0;
  }
  if (values.tty) {
    // An interactive terminal: attach, then the container's exit code is ours.
    const proxy = sigProxy(values, c, id);
    try {
      const { url } = await c.unary("tasks", "streamUrl", {
        containerId: id,
        execArgs: [],
        tty: true,
        stdin: true,
      });
      const session = await interactiveSession(url, { tty: true, stdin: true, detachKeys });
      if (session.detached) {
        detachedFrom(id, !!values.rm);
        values.rm = false; // it keeps running: nothing to remove yet
        return 0;
      }
      const res = await c.unary("tasks", "wait", { containerId: id }, 365 * 24 * 3600_000);
      return res.exitStatus;
    } finally {
      proxy.stop();
      await cleanup();
    }
  }
  const proxy = sigProxy(values, c, id);
  try {
    forwardStdin(c, id);
    const [, res] = await Promise.all([
      followLogs(c, id, true),
      c.unary("tasks", "wait", { containerId: id }, 365 * 24 * 3600_000),
    ]);
    return res.exitStatus;
  } finally {
    proxy.stop();
    await cleanup();
  }
}

/** Says, after a detach, that the container runs on and how to come back. */
function detachedFrom(id: string, rm: boolean): void {
  console.error(
    `k8scontainerd: detached from ${id}; it keeps running ('k8scontainerd attach ${id}' to come back${
      rm ? `; --rm no longer applies: 'k8scontainerd rm -f ${id}' removes it` : ""
    })`,
  );
}

/** The signals a foreground run passes on to its task (as ctr and nerdctl's --sig-proxy do). */
export const PROXIED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

/**
 * Passes SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the CLI on to the task; on by default
 * without -t (a terminal sends Ctrl-C to the container as a keystroke instead).
 */
function sigProxy(
  values: { tty?: boolean; "sig-proxy"?: boolean },
  c: DaemonClient,
  id: string,
): { stop(): void } {
  const on = values["sig-proxy"] ?? !values.tty;
  if (!on) return { stop() {} };
  const listeners = PROXIED_SIGNALS.map((signal) => {
    const fn = () =>
      void c.unary("tasks", "kill", { containerId: id, signal, all: false })
        .catch((e) => {
          // A signal that crossed the task's exit needs no word.
          if (!/not running/.test(e.message)) {
            console.error(`k8scontainerd: forwarding ${signal} to ${id}: ${e.message}`);
          }
        });
    Deno.addSignalListener(signal, fn);
    return [signal, fn] as const;
  });
  return { stop: () => listeners.forEach(([s, fn]) => Deno.removeSignalListener(s, fn)) };
}

/**
 * Copies our stdin to the container's through an attach session; at our EOF the container's
 * stdin closes (it was created stdin-once). The output comes from the log, which has it all,
 * even what was written before the attach connected.
 */
function forwardStdin(c: DaemonClient, id: string): void {
  (async () => {
    const { url } = await c.unary("tasks", "streamUrl", {
      containerId: id,
      execArgs: [],
      tty: false,
      stdin: true,
    });
    // Loaded here: the streaming client brings node:zlib (SPDY), ~30 ms a plain run never needs.
    const { remoteCommand } = await load("streamingClient");
    await remoteCommand(url, {
      stdin: Deno.stdin.readable,
      stdout: true,
      stderr: true,
      collect: false,
    });
  })().catch((e) => {
    // A task that already exited needs no stdin.
    if (!/not running/.test(String(e?.message))) {
      console.error(`k8scontainerd: cannot forward stdin to ${id}: ${e?.message ?? e}`);
    }
  });
}

/** The daemon's own labels (log path, tty, stdin …): hidden from `containers ls` unless asked. */
export const DAEMON_LABEL_PREFIX = "io.k8scontainerd.";

/** A container's state as nerdctl shows it: created, running, paused, stopped (exit N). */
export function containerStatus(
  t: { status: number; exitStatus: number; oomKilled: boolean } | undefined,
): string {
  if (!t) return "created";
  if (t.status === STOPPED) return `stopped (exit ${t.exitStatus}${t.oomKilled ? ", OOM" : ""})`;
  return (TASK_STATUS[t.status] ?? "UNKNOWN").toLowerCase();
}

export async function containersList(
  a: Args,
  ctx: Context,
  o: { runningOnly?: boolean } = {},
): Promise<number> {
  const c = await ctx.client();
  const [{ containers }, { tasks }] = await Promise.all([
    c.unary("containers", "list", { filters: [] }),
    c.unary("tasks", "list", {}),
  ]);
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const allLabels = !!a.bool("all-labels");
  const shown = (labels: Record<string, string>) =>
    allLabels ? labels : Object.fromEntries(
      Object.entries(labels).filter(([k]) => !k.startsWith(DAEMON_LABEL_PREFIX)),
    );
  // ps without --all: running and paused only, as docker ps.
  const rows = o.runningOnly
    ? containers.filter((x) => [2, 4].includes(byId.get(x.id)?.status ?? -1))
    : containers;
  printList(rows, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (x) => x.id,
    json: (x) => ({
      ...x,
      labels: shown(x.labels),
      spec: JSON.parse(x.spec),
      status: containerStatus(byId.get(x.id)),
    }),
    columns: [
      ["CONTAINER", (x) => x.id],
      ["IMAGE", (x) => x.image || "-"],
      ["STATUS", (x) => containerStatus(byId.get(x.id))],
      ["RUNTIME", (x) => x.runtime],
      ["CREATED", (x) => formatAge(x.createdAt)],
      ["IP", (x) => x.ips.join(",") || "-"],
      ["LABELS", (x) => formatLabels(shown(x.labels))],
    ],
  });
  return 0;
}

export async function containersInfo(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { container } = await c.unary("containers", "get", {
    id: a.positionals[0],
  });
  console.log(
    JSON.stringify(
      { ...container, spec: JSON.parse(container!.spec) },
      (_k, v) => typeof v === "bigint" ? Number(v) : v,
      2,
    ),
  );
  return 0;
}

export async function containersRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  let failed = 0;
  for (const id of a.positionals) {
    try {
      if (a.bool("force")) {
        // Kill and delete the task first (none there is fine), as nerdctl rm -f does.
        await c.unary("tasks", "delete", { containerId: id, force: true }).catch(
          (e) => {
            if (!/^task of container .*: not found/.test(e.message)) throw e;
          },
        );
      }
      await c.unary("containers", "delete", { id });
      console.log(id);
    } catch (e) {
      if (a.positionals.length === 1) throw e;
      console.error(`k8scontainerd: ${id}: ${(e as Error).message}`);
      failed++;
    }
  }
  return failed ? 1 : 0;
}

export async function tasksList(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { tasks } = await c.unary("tasks", "list", {});
  printList(tasks, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (t) => t.id,
    json: (t) => ({ ...t, status: TASK_STATUS[t.status] }),
    columns: [
      ["TASK", (t) => t.id],
      ["PID", (t) => String(t.pid)],
      [
        "STATUS",
        (t) =>
          TASK_STATUS[t.status] +
          (t.status === STOPPED ? ` (exit ${t.exitStatus}${t.oomKilled ? ", OOM" : ""})` : ""),
      ],
    ],
  });
  return 0;
}

export async function tasksStart(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  await c.unary("tasks", "start", { containerId: a.positionals[0] });
  return 0;
}

export async function tasksKill(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  await c.unary("tasks", "kill", {
    containerId: a.positionals[0],
    signal: a.str("signal") ?? "SIGTERM",
    all: !!a.bool("all"),
  });
  return 0;
}

export async function tasksExec(a: Args, ctx: Context): Promise<number> {
  const [id] = a.positionals;
  const cmd = a.command;
  const tty = !!a.bool("tty");
  const timeout = a.str("timeout");
  if (timeout !== undefined && !(Number(timeout) >= 0)) {
    throw new UsageError(`tasks exec: invalid --timeout "${timeout}": expected seconds`);
  }
  const detachKeys = a.str("detach-keys");
  if (detachKeys !== undefined) parseDetachKeys(detachKeys);
  if (tty || a.bool("interactive")) {
    const unsupported = ["env", "user", "cwd", "timeout"].filter((f) => a.values.has(f));
    if (unsupported.length) {
      throw new UsageError(
        `tasks exec: --${
          unsupported[0]
        } cannot be combined with -t or -i (the exec session runs the command with the container's own user, env and cwd)`,
      );
    }
    // A live session: stdin streamed as it comes, output as it is written.
    const c = await ctx.client();
    const { url } = await c.unary("tasks", "streamUrl", {
      containerId: id,
      execArgs: cmd,
      tty,
      stdin: true,
    });
    const session = await interactiveSession(url, { tty, stdin: true, detachKeys });
    if (session.detached) {
      console.error(`k8scontainerd: detached from the exec session in ${id}`);
      return 0;
    }
    return session.exitCode;
  }
  // Without -i, stdin from a pipe or file is read to its end and given to the command (a
  // terminal is not read: the command would wait on the operator's Ctrl-D).
  const stdin = Deno.stdin.isTerminal()
    ? new Uint8Array(0)
    : await new Response(Deno.stdin.readable).bytes();
  const c = await ctx.client();
  const r = await c.unary("tasks", "exec", {
    containerId: id,
    args: cmd,
    env: a.list("env"),
    cwd: a.str("cwd") ?? "",
    user: a.str("user") ?? "",
    stdin: Buffer.from(stdin),
    timeoutMs: BigInt(Math.round(Number(timeout ?? 0) * 1000)),
  }, 24 * 3600_000);
  Deno.stdout.writeSync(r.stdout);
  Deno.stderr.writeSync(r.stderr);
  return r.exitCode;
}

/** A process's command line from /proc/PID/cmdline on this host ("-" when it is gone). */
export async function processCommandLine(pid: number): Promise<string> {
  try {
    const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    const argv = raw.split("\0").filter((x, i, all) => x || i < all.length - 1);
    if (argv.length) return argv.join(" ");
    // A kernel thread or a zombie: its name, bracketed, as ps prints it.
    const comm = (await Deno.readTextFile(`/proc/${pid}/comm`)).trim();
    return `[${comm}]`;
  } catch {
    return "-";
  }
}

export async function tasksPs(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const { pids } = await c.unary("tasks", "listPids", {
    containerId: a.positionals[0],
  });
  const rows = await Promise.all(
    pids.map(async (pid) => ({ pid, command: await processCommandLine(pid) })),
  );
  printList(rows, {
    quiet: a.bool("quiet"),
    format: a.str("format"),
    id: (r) => String(r.pid),
    columns: [["PID", (r) => String(r.pid)], ["COMMAND", (r) => r.command]],
  });
  return 0;
}

export async function tasksPause(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  await c.unary("tasks", "pause", { containerId: a.positionals[0] });
  return 0;
}

export async function tasksResume(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  await c.unary("tasks", "resume", { containerId: a.positionals[0] });
  return 0;
}

/** cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages). */
function formatLimit(n: bigint): string {
  return n === 0n || n >= 1n << 62n ? "unlimited" : formatBytes(n);
}

export async function tasksMetrics(
  a: Args,
  ctx: Context,
  o: { array?: boolean } = {},
): Promise<number> {
  const format = a.str("format") ?? "table";
  const c = await ctx.client();
  const ids = a.positionals;
  const rows = await Promise.all(
    ids.map(async (id) => ({
      id,
      ...(await c.unary("tasks", "metrics", { containerId: id })),
    })),
  );
  if (format === "json" && ids.length === 1 && !o.array) {
    const { id: _, ...m } = rows[0];
    console.log(JSON.stringify(m, (_k, v) => typeof v === "bigint" ? Number(v) : v, 2));
    return 0;
  }
  printList(rows, {
    format,
    id: (r) => r.id,
    json: (r) => r,
    columns: [
      ["ID", (r) => r.id],
      ["CPU USAGE", (r) => `${(Number(r.cpuUsageNs) / 1e9).toFixed(3)} s`],
      [
        "MEMORY USAGE / LIMIT",
        (r) => `${formatBytes(r.memoryUsageBytes)} / ${formatLimit(r.memoryLimitBytes)}`,
      ],
      ["WORKING SET", (r) => formatBytes(r.memoryWorkingSetBytes)],
      ["PIDS", (r) => String(r.pids)],
    ],
  });
  return 0;
}

export async function tasksRemove(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const [id] = a.positionals;
  const r = await c.unary("tasks", "delete", {
    containerId: id,
    force: !!a.bool("force"),
  });
  console.log(`${id}: exit status ${r.exitStatus}`);
  return 0;
}

/** `attach ID`: the container's terminal (or output and stdin) until it exits or we detach. */
export async function attachCommand(a: Args, ctx: Context): Promise<number> {
  const id = a.positionals[0];
  const detachKeys = a.str("detach-keys");
  if (detachKeys !== undefined) parseDetachKeys(detachKeys);
  const c = await ctx.client();
  const { container } = await c.unary("containers", "get", { id });
  const tty = container?.labels["io.k8scontainerd.tty"] === "true";
  const { url } = await c.unary("tasks", "streamUrl", {
    containerId: id,
    execArgs: [],
    tty,
    stdin: true,
  });
  const session = await interactiveSession(url, { tty, stdin: true, detachKeys });
  if (session.detached) detachedFrom(id, false);
  return 0;
}

export async function logsCommand(a: Args, ctx: Context): Promise<number> {
  const tail = a.str("tail") ?? "0";
  if (!/^\d+$/.test(tail)) {
    throw new UsageError(`logs: invalid --tail "${tail}": expected a number of lines`);
  }
  const c = await ctx.client();
  await followLogs(c, a.positionals[0], !!a.bool("follow"), BigInt(tail));
  return 0;
}

export async function eventsCommand(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  for await (
    const e of c.stream("events", "subscribe", {
      topics: a.positionals,
      allNamespaces: !!a.bool("all-namespaces"),
    })
  ) {
    const ts = new Date(Number(e.timestamp / 1_000_000n)).toISOString();
    console.log(`${ts} ${e.namespace} ${e.topic} ${e.event}`);
  }
  return 0;
}

/** `inspect NAME…`: a container's record, or an image's when no container has that name. */
export async function inspectCommand(a: Args, ctx: Context): Promise<number> {
  const c = await ctx.client();
  const out: unknown[] = [];
  for (const name of a.positionals) {
    try {
      const { container } = await c.unary("containers", "get", { id: name });
      out.push({ ...container, spec: JSON.parse(container!.spec) });
      continue;
    } catch (e) {
      if (!/not found/.test((e as Error).message)) throw e;
    }
    try {
      const { image } = await c.unary("images", "get", { name });
      out.push(image);
    } catch (e) {
      if (!/not found/.test((e as Error).message)) throw e;
      throw new Error(`no container or image named "${name}"`);
    }
  }
  console.log(JSON.stringify(out, (_k, v) => typeof v === "bigint" ? Number(v) : v, 2));
  return 0;
}

/** `stats [ID…]`: tasks metrics of the IDs, or of every running task. */
export async function statsCommand(a: Args, ctx: Context): Promise<number> {
  let ids = a.positionals;
  if (!ids.length) {
    const c = await ctx.client();
    const { tasks } = await c.unary("tasks", "list", {});
    ids = tasks.filter((t) => t.status === 2).map((t) => t.id);
    if (!ids.length) {
      if (a.str("format") === "json") console.log("[]");
      else console.log("no running containers");
      return 0;
    }
  }
  const { Args: ArgsClass } = await load("commands");
  return await tasksMetrics(new ArgsClass(a.values, ids, []), ctx, { array: true });
}
