/**
 * `k8scontainerd run | containers | tasks | logs | events`: containers and their tasks, as
 * a plain client of the management API.
 */
import { parseArgs } from "node:util";
import type { DaemonClient } from "./client.ts";
import { formatAge, formatLabels, parseLabels, printList } from "./output.ts";
import { UsageError } from "./usage_error.ts";
import { splitAtCommand } from "./split_args.ts";
import { interactiveSession } from "./interactive.ts";
import { remoteCommand } from "../cri/streaming/client.ts";
import { Status } from "../gen/k8scontainerd/services/tasks/v1/tasks.ts";
import type { Mount } from "../gen/k8scontainerd/services/containers/v1/containers.ts";

export const CONTAINERS_USAGE = `Usage: k8scontainerd [-n NS] COMMAND

  run [--rm] [-d] [-t] [--env K=V]… [--mount type=bind,src=…,dst=…[,options=ro]]… [--net-host]
      [--user U] [--cwd DIR] [--runtime NAME] [--read-only] [--privileged] [--label K=V]… IMAGE ID [CMD…]
                           create and start a container; without -d, print its output and exit
                           with its exit code; -t gives an interactive terminal
  containers ls [--quiet] [--format F] | info ID | rm ID…
  tasks ls [--quiet] [--format F] | start ID | kill [--signal S] [--all] ID | exec [-t] [--env K=V]… [--user U] [--cwd D] ID CMD…
        ps ID | pause ID | resume ID | metrics ID | rm [--force] ID
  attach ID                 the container's terminal, or its output and stdin
  logs [-f] [--tail N] ID   print the container's output (CRI log format, decoded)
  events [--all-namespaces] [TOPIC-PREFIX…]
`;

const STATUS: Record<number, string> = {
  [Status.CREATED]: "CREATED",
  [Status.RUNNING]: "RUNNING",
  [Status.STOPPED]: "STOPPED",
  [Status.PAUSED]: "PAUSED",
  [Status.UNKNOWN]: "UNKNOWN",
};

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
  out: (stream: "stdout" | "stderr", text: string) => void,
): void {
  for (const line of chunk.split("\n")) {
    if (!line) continue;
    const m = /^\S+ (stdout|stderr) ([PF]) ?(.*)$/.exec(line);
    if (!m) continue;
    out(m[1] as "stdout" | "stderr", m[2] === "F" ? `${m[3]}\n` : m[3]);
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
    const chunk of c.stream(c.tasks.logs.bind(c.tasks), { containerId: id, follow, tail })
  ) {
    const text = rest + dec.decode(chunk.data, { stream: true });
    const cut = text.lastIndexOf("\n");
    rest = text.slice(cut + 1);
    decodeCriLog(text.slice(0, cut + 1), writeOut);
  }
  decodeCriLog(rest, writeOut);
}

const RUN_VALUE_FLAGS = new Set([
  "--env",
  "--mount",
  "--user",
  "-u",
  "--cwd",
  "--runtime",
  "--label",
  "--hostname",
]);

export async function runCommand(args: string[], c: DaemonClient): Promise<number> {
  const split = splitAtCommand(args, 2, RUN_VALUE_FLAGS);
  split.head = split.head.map((a) =>
    a === "--sig-proxy=false" ? "--no-sig-proxy" : a === "--sig-proxy=true" ? "--sig-proxy" : a
  );
  const { values, positionals: pos } = parseArgs({
    args: split.head,
    allowPositionals: true,
    options: {
      rm: { type: "boolean" },
      detach: { type: "boolean", short: "d" },
      tty: { type: "boolean", short: "t" },
      interactive: { type: "boolean", short: "i" },
      "sig-proxy": { type: "boolean" },
      "no-sig-proxy": { type: "boolean" },
      env: { type: "string", multiple: true },
      mount: { type: "string", multiple: true },
      "net-host": { type: "boolean" },
      user: { type: "string", short: "u" },
      cwd: { type: "string" },
      runtime: { type: "string" },
      "read-only": { type: "boolean" },
      privileged: { type: "boolean" },
      label: { type: "string", multiple: true },
      hostname: { type: "string" },
    },
  });
  const [image, id] = pos;
  const cmd = split.command;
  if (!image || !id) {
    throw new UsageError(`usage: run [flags] IMAGE ID [CMD…]\n\n${CONTAINERS_USAGE}`);
  }
  if (values.rm && values.detach) throw new UsageError("run: --rm and -d cannot be combined");
  await c.unary(c.containers.create.bind(c.containers), {
    id,
    image,
    runtime: values.runtime ?? "",
    labels: parseLabels(values.label),
    args: cmd,
    env: values.env ?? [],
    cwd: values.cwd ?? "",
    user: values.user ?? "",
    tty: !!values.tty,
    // A foreground run forwards our stdin, as ctr does; -d -i keeps one open for attach.
    stdin: !!values.tty || !!values.interactive || !values.detach,
    stdinOnce: !values.tty && !values.detach,
    mounts: (values.mount ?? []).map(parseMount),
    netHost: !!values["net-host"],
    readonlyRootfs: !!values["read-only"],
    privileged: !!values.privileged,
    snapshotter: "",
    hostname: values.hostname ?? "",
  });
  const cleanup = async () => {
    if (!values.rm) return;
    await c.unary(c.tasks.delete.bind(c.tasks), { containerId: id, force: true }).catch(() => {});
    await c.unary(c.containers.delete.bind(c.containers), { id });
  };
  try {
    await c.unary(c.tasks.create.bind(c.tasks), { containerId: id, logPath: "" });
    await c.unary(c.tasks.start.bind(c.tasks), { containerId: id });
  } catch (e) {
    await c.unary(c.tasks.delete.bind(c.tasks), { containerId: id, force: true }).catch(() => {});
    await c.unary(c.containers.delete.bind(c.containers), { id }).catch(() => {});
    throw e;
  }
  if (values.detach) {
    console.log(id);
    return 0;
  }
  if (values.tty) {
    // An interactive terminal: attach, then the container's exit code is ours.
    const proxy = sigProxy(values, c, id);
    try {
      const { url } = await c.unary(c.tasks.streamUrl.bind(c.tasks), {
        containerId: id,
        execArgs: [],
        tty: true,
        stdin: true,
      });
      await interactiveSession(url, { tty: true, stdin: true });
      const res = await c.unary(
        c.tasks.wait.bind(c.tasks),
        { containerId: id },
        365 * 24 * 3600_000,
      );
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
      c.unary(c.tasks.wait.bind(c.tasks), { containerId: id }, 365 * 24 * 3600_000),
    ]);
    return res.exitStatus;
  } finally {
    proxy.stop();
    await cleanup();
  }
}

/** The signals a foreground run passes on to its task (as ctr and nerdctl's --sig-proxy do). */
export const PROXIED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

/**
 * Passes SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the CLI on to the task; on by default
 * without -t (a terminal sends Ctrl-C to the container as a keystroke instead).
 */
function sigProxy(
  values: { tty?: boolean; "sig-proxy"?: boolean; "no-sig-proxy"?: boolean },
  c: DaemonClient,
  id: string,
): { stop(): void } {
  const on = values["no-sig-proxy"] ? false : values["sig-proxy"] ?? !values.tty;
  if (!on) return { stop() {} };
  const listeners = PROXIED_SIGNALS.map((signal) => {
    const fn = () =>
      void c.unary(c.tasks.kill.bind(c.tasks), { containerId: id, signal, all: false })
        .catch((e) => console.error(`k8scontainerd: forwarding ${signal}: ${e.message}`));
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
    const { url } = await c.unary(c.tasks.streamUrl.bind(c.tasks), {
      containerId: id,
      execArgs: [],
      tty: false,
      stdin: true,
    });
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

export async function containersCommand(args: string[], c: DaemonClient): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "ls" || sub === "list") {
    const { values } = parseArgs({
      args: rest,
      options: { quiet: { type: "boolean", short: "q" }, format: { type: "string" } },
    });
    const { containers } = await c.unary(c.containers.list.bind(c.containers), { filters: [] });
    printList(containers, {
      quiet: values.quiet,
      format: values.format,
      id: (x) => x.id,
      json: (x) => ({ ...x, spec: JSON.parse(x.spec) }),
      columns: [
        ["CONTAINER", (x) => x.id],
        ["IMAGE", (x) => x.image || "-"],
        ["RUNTIME", (x) => x.runtime],
        ["CREATED", (x) => formatAge(x.createdAt)],
        ["LABELS", (x) => formatLabels(x.labels)],
      ],
    });
    return 0;
  }
  if (sub === "info") {
    if (rest.length !== 1) throw new UsageError("usage: containers info ID");
    const { container } = await c.unary(c.containers.get.bind(c.containers), { id: rest[0] });
    console.log(
      JSON.stringify(
        { ...container, spec: JSON.parse(container!.spec) },
        (_k, v) => typeof v === "bigint" ? Number(v) : v,
        2,
      ),
    );
    return 0;
  }
  if (sub === "rm" || sub === "delete") {
    if (!rest.length) throw new UsageError("usage: containers rm ID…");
    for (const id of rest) {
      await c.unary(c.containers.delete.bind(c.containers), { id });
      console.log(id);
    }
    return 0;
  }
  throw new UsageError(CONTAINERS_USAGE);
}

export async function tasksCommand(args: string[], c: DaemonClient): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "ls":
    case "list": {
      const { values } = parseArgs({
        args: rest,
        options: { quiet: { type: "boolean", short: "q" }, format: { type: "string" } },
      });
      const { tasks } = await c.unary(c.tasks.list.bind(c.tasks), {});
      printList(tasks, {
        quiet: values.quiet,
        format: values.format,
        id: (t) => t.id,
        json: (t) => ({ ...t, status: STATUS[t.status] }),
        columns: [
          ["TASK", (t) => t.id],
          ["PID", (t) => String(t.pid)],
          [
            "STATUS",
            (t) =>
              STATUS[t.status] +
              (t.status === Status.STOPPED
                ? ` (exit ${t.exitStatus}${t.oomKilled ? ", OOM" : ""})`
                : ""),
          ],
        ],
      });
      return 0;
    }
    case "start":
      await c.unary(c.tasks.start.bind(c.tasks), { containerId: one(rest, "tasks start ID") });
      return 0;
    case "kill": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { signal: { type: "string", short: "s" }, all: { type: "boolean", short: "a" } },
      });
      await c.unary(c.tasks.kill.bind(c.tasks), {
        containerId: one(positionals, "tasks kill [--signal S] ID"),
        signal: values.signal ?? "SIGTERM",
        all: !!values.all,
      });
      return 0;
    }
    case "exec": {
      const split = splitAtCommand(
        rest,
        1,
        new Set(["--env", "--user", "-u", "--cwd", "--timeout"]),
      );
      const { values, positionals: head } = parseArgs({
        args: split.head,
        allowPositionals: true,
        options: {
          env: { type: "string", multiple: true },
          user: { type: "string", short: "u" },
          cwd: { type: "string" },
          timeout: { type: "string" },
          tty: { type: "boolean", short: "t" },
          interactive: { type: "boolean", short: "i" },
        },
      });
      const [id] = head;
      const cmd = split.command;
      if (!id || !cmd.length) throw new UsageError("usage: tasks exec [flags] ID CMD…");
      if (values.tty || values.interactive) {
        const unsupported = (["env", "user", "cwd", "timeout"] as const).filter((f) => values[f]);
        if (unsupported.length) {
          throw new UsageError(
            `tasks exec: --${
              unsupported[0]
            } cannot be combined with -t or -i (the exec session runs the command with the container's own user, env and cwd)`,
          );
        }
        // A live session: stdin streamed as it comes, output as it is written.
        const { url } = await c.unary(c.tasks.streamUrl.bind(c.tasks), {
          containerId: id,
          execArgs: cmd,
          tty: !!values.tty,
          stdin: true,
        });
        return await interactiveSession(url, { tty: !!values.tty, stdin: true });
      }
      // Without -i, stdin from a pipe or file is read to its end and given to the command (a
      // terminal is not read: the command would wait on the operator's Ctrl-D).
      const stdin = Deno.stdin.isTerminal()
        ? new Uint8Array(0)
        : await new Response(Deno.stdin.readable).bytes();
      const r = await c.unary(
        c.tasks.exec.bind(c.tasks),
        {
          containerId: id,
          args: cmd,
          env: values.env ?? [],
          cwd: values.cwd ?? "",
          user: values.user ?? "",
          stdin: Buffer.from(stdin),
          timeoutMs: BigInt(Number(values.timeout ?? 0) * 1000),
        },
        24 * 3600_000,
      );
      Deno.stdout.writeSync(r.stdout);
      Deno.stderr.writeSync(r.stderr);
      return r.exitCode;
    }
    case "ps": {
      const { pids } = await c.unary(c.tasks.listPids.bind(c.tasks), {
        containerId: one(rest, "tasks ps ID"),
      });
      console.log("PID");
      for (const p of pids) console.log(p);
      return 0;
    }
    case "pause":
      await c.unary(c.tasks.pause.bind(c.tasks), { containerId: one(rest, "tasks pause ID") });
      return 0;
    case "resume":
      await c.unary(c.tasks.resume.bind(c.tasks), { containerId: one(rest, "tasks resume ID") });
      return 0;
    case "metrics": {
      const m = await c.unary(c.tasks.metrics.bind(c.tasks), {
        containerId: one(rest, "tasks metrics ID"),
      });
      console.log(JSON.stringify(m, (_k, v) => typeof v === "bigint" ? Number(v) : v, 2));
      return 0;
    }
    case "rm":
    case "delete": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { force: { type: "boolean", short: "f" } },
      });
      const r = await c.unary(c.tasks.delete.bind(c.tasks), {
        containerId: one(positionals, "tasks rm [--force] ID"),
        force: !!values.force,
      });
      console.log(`${positionals[0]}: exit status ${r.exitStatus}`);
      return 0;
    }
    default:
      throw new UsageError(CONTAINERS_USAGE);
  }
}

function one(list: string[], usage: string): string {
  if (list.length !== 1) throw new UsageError(`usage: ${usage}`);
  return list[0];
}

/** `attach ID`: the container's terminal (or output and stdin) until it exits or we detach. */
export async function attachCommand(args: string[], c: DaemonClient): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const id = one(positionals, "attach ID");
  const { container } = await c.unary(c.containers.get.bind(c.containers), { id });
  const tty = container?.labels["io.k8scontainerd.tty"] === "true";
  const { url } = await c.unary(c.tasks.streamUrl.bind(c.tasks), {
    containerId: id,
    execArgs: [],
    tty,
    stdin: true,
  });
  await interactiveSession(url, { tty, stdin: true });
  return 0;
}

export async function logsCommand(args: string[], c: DaemonClient): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { follow: { type: "boolean", short: "f" }, tail: { type: "string" } },
  });
  await followLogs(
    c,
    one(positionals, "logs [-f] [--tail N] ID"),
    !!values.follow,
    BigInt(values.tail ?? 0),
  );
  return 0;
}

export async function eventsCommand(args: string[], c: DaemonClient): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { "all-namespaces": { type: "boolean" } },
  });
  for await (
    const e of c.stream(c.events.subscribe.bind(c.events), {
      topics: positionals,
      allNamespaces: !!values["all-namespaces"],
    })
  ) {
    const ts = new Date(Number(e.timestamp / 1_000_000n)).toISOString();
    console.log(`${ts} ${e.namespace} ${e.topic} ${e.event}`);
  }
  return 0;
}
