/**
 * Black-box harness: runs the real k8scontainerd executable (from source, as
 * scripts/k8scontainerd does, or a compiled binary via K8SCONTAINERD_BIN) in its own temp root,
 * state dir and socket, so many daemons can run side by side.
 *
 * @example
 * ```ts
 * const d = await startTestDaemon();
 * const out = await runCli(["--address", d.socket, "version"]);
 * await d.stop();
 * ```
 */
import { fileURLToPath } from "node:url";
import { startSystemdDaemon } from "./systemd_daemon.ts";
import { isEmulated } from "../src/testing/bdd.ts";

export const REPO = fileURLToPath(new URL("..", import.meta.url));

/** The command that runs k8scontainerd: the compiled binary when K8SCONTAINERD_BIN is set. */
export function command(): string[] {
  const bin = Deno.env.get("K8SCONTAINERD_BIN");
  if (bin) return [bin];
  return [`${REPO}scripts/k8scontainerd`];
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], opts: { bin?: string[] } = {}): Promise<CliResult> {
  const [cmd, ...pre] = opts.bin ?? command();
  const res = await new Deno.Command(cmd, {
    args: [...pre, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  })
    .output();
  const dec = new TextDecoder();
  return { code: res.code, stdout: dec.decode(res.stdout), stderr: dec.decode(res.stderr) };
}

export interface TestDaemon {
  dir: string;
  root: string;
  state: string;
  socket: string;
  /** The daemon process (undefined when systemd runs it: see ./systemd_daemon.ts). */
  process?: Deno.ChildProcess;
  /** Everything the daemon wrote to stderr so far (its JSON log). */
  log(): string;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
  /** SIGKILL and wait, like a crash. */
  kill(): Promise<void>;
  /** Removes the temp dir (after stop/kill). */
  cleanup(): Promise<void>;
}

export interface StartOptions {
  dir?: string;
  args?: string[];
  /** How long to wait for the socket to answer (default 30 s; 180 s under qemu-user, where
   * the aarch64 Deno takes ~10 s of CPU just to load the daemon). */
  timeoutMs?: number;
  /** Extra environment for the daemon process. */
  env?: Record<string, string>;
  /**
   * A command that runs the daemon's command line (given as its trailing arguments) and
   * execs it, e.g. `unshare -m sh -c '… && exec "$@"' sh`: the daemon's pid stays the one
   * signalled.
   */
  wrap?: string[];
}

/** Starts a daemon and waits until its socket accepts connections. */
export async function startTestDaemon(opts: StartOptions = {}): Promise<TestDaemon> {
  const unit = Deno.env.get("K8SC_E2E_SYSTEMD_UNIT");
  if (unit) return startSystemdDaemon(unit, opts);
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "k8sc-e2e-" });
  // As the daemon's own dirs: searchable, so a user-namespaced pod's root reaches its rootfs.
  await Deno.chmod(dir, 0o711);
  const root = `${dir}/root`, state = `${dir}/state`, socket = `${dir}/k8scontainerd.sock`;
  const [cmd, ...pre] = [...(opts.wrap ?? []), ...command()];
  const process = new Deno.Command(cmd, {
    args: [
      ...pre,
      "daemon",
      "--root",
      root,
      "--state",
      state,
      "--address",
      socket,
      "--log-level",
      "debug",
      ...(opts.args ?? []),
    ],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
    env: opts.env,
  }).spawn();
  let log = "";
  const dec = new TextDecoder();
  const pump = (async () => {
    for await (const chunk of process.stderr) log += dec.decode(chunk, { stream: true });
  })();
  let exited: number | undefined;
  const status = process.status.then((s) => (exited = s.code));
  const d: TestDaemon = {
    dir,
    root,
    state,
    socket,
    process,
    log: () => log,
    async stop() {
      if (exited === undefined) {
        try {
          process.kill("SIGTERM");
        } catch { /* already gone */ }
      }
      await status;
      await pump;
      return exited!;
    },
    async kill() {
      if (exited === undefined) {
        try {
          process.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await status;
      await pump;
    },
    cleanup: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
  const timeoutMs = opts.timeoutMs ?? (isEmulated ? 180_000 : 30_000);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      await pump;
      throw new Error(`daemon exited with ${exited} before serving:\n${log}`);
    }
    // A connection is accepted only once the daemon serves (a stale socket file refuses).
    try {
      (await Deno.connect({ transport: "unix", path: socket })).close();
      return d;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  await d.kill();
  throw new Error(
    `daemon did not serve on ${socket} within ${timeoutMs} ms:\n${log}`,
  );
}

/**
 * Waits until a daemon started with K8SCONTAINERD_FAILPOINTS has frozen itself at the point
 * (SIGSTOP: state T): a kill there is deterministic, not a race against the operation.
 */
export async function frozenAtFailpoint(d: TestDaemon): Promise<boolean> {
  const pid = d.process!.pid;
  const stopped = async () =>
    (await Deno.readTextFile(`/proc/${pid}/stat`)).replace(/^.*\) /, "")[0] === "T";
  for (let i = 0; i < 600 && !(await stopped()); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return await stopped();
}
