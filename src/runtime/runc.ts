/**
 * A typed wrapper of an OCI runtime command line (runc, or a compatible binary such as crun):
 * every call runs `<binary> --root <dir> --log <file> --log-format json [--systemd-cgroup] …`
 * and turns a failure into a typed error carrying the runtime's own message, read from the last
 * error line of that JSON log (runc prints nothing useful on stderr once `--log` is given).
 *
 * @example
 * ```ts
 * import { Runc } from "./runc.ts";
 * const runc = new Runc({ binary: "/usr/bin/runc", root: "/run/k8scontainerd/runc/k8s.io" });
 * const st = await runc.state("c1"); // { id: "c1", status: "running", pid: 4242, … }
 * await runc.kill("c1", "SIGTERM");
 * ```
 *
 * @module
 */

import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  RuntimeError,
  UnavailableError,
} from "../errdefs/errors.ts";

/** How to invoke the runtime binary; one instance per runtime handler and namespace. */
export interface RuncOptions {
  /** Path of the binary (default `/usr/bin/runc`). */
  binary?: string;
  /** State root given as `--root`; the runtime keeps one directory per container under it. */
  root?: string;
  /** Pass `--systemd-cgroup` (cgroupsPath is then "slice:prefix:name"). */
  systemdCgroup?: boolean;
  /** Directory for the per-call JSON log files (default: the system temp dir). */
  logDir?: string;
}

/** The status words of `runc state`. */
export type RuncStatus = "creating" | "created" | "running" | "paused" | "stopped";

/** What `runc state <id>` prints (the fields we use; the runtime may add more). */
export interface RuncState {
  ociVersion: string;
  id: string;
  pid: number;
  status: RuncStatus;
  bundle: string;
  rootfs: string;
  /** RFC 3339 creation time. */
  created: string;
  annotations?: Record<string, string>;
  owner?: string;
}

/** The `linux.resources` object of the OCI runtime spec, as accepted by `runc update`. */
export type LinuxResources = Record<string, unknown>;

/** Options of {@link Runc.exec}: the process spec is a JSON file the caller wrote. */
export interface RuncExecOptions {
  /** Path of the process.json (`--process`). */
  processFile: string;
  /** Return once started (`--detach`); the pid lands in `pidFile`. */
  detach?: boolean;
  /** Where runc writes the exec'd process's host pid (`--pid-file`). */
  pidFile?: string;
  /** Pipe stdin (otherwise /dev/null). */
  stdin?: boolean;
}

/** Signals by name, as accepted by {@link Runc.kill} (numbers work too). */
const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/**
 * Parses a signal given as a name ("SIGTERM", "TERM", "term") or a number (15, "15") into its
 * number, so callers and the CRI (which speaks numbers) agree.
 *
 * @example
 * ```ts
 * import { signalNumber } from "./runc.ts";
 * signalNumber("TERM"); // 15
 * signalNumber(9); // 9
 * ```
 */
export function signalNumber(signal: string | number): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && signal > 0 && signal < 65) return signal;
    throw new InvalidArgumentError(`invalid signal ${signal}: expected 1..64`);
  }
  const s = signal.trim().toUpperCase();
  if (/^\d+$/.test(s)) return signalNumber(Number(s));
  const full = s.startsWith("SIG") ? s : `SIG${s}`;
  // Real-time signals by offset, as glibc numbers them for programs (SIGRTMIN is 34 there).
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(full);
  if (rt) {
    const off = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === "-" ? -1 : 1);
    return signalNumber((rt[1] === "MIN" ? 34 : 64) + off);
  }
  const n = SIGNALS[full];
  if (n === undefined) throw new InvalidArgumentError(`invalid signal "${signal}"`);
  return n;
}

/**
 * The name of a signal number ("SIGTERM" for 15), for APIs such as `Deno.kill` that take names.
 *
 * @example
 * ```ts
 * import { signalName } from "./runc.ts";
 * signalName(9); // "SIGKILL"
 * ```
 */
export function signalName(signal: number): string {
  const name = Object.entries(SIGNALS).find(([, n]) => n === signal)?.[0];
  if (!name) throw new InvalidArgumentError(`signal ${signal} has no name`);
  return name;
}

/** The result of a finished runtime invocation. */
interface Output {
  code: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

const decoder = new TextDecoder();

/**
 * Extracts the runtime's own error message from its JSON log (`{"level":"error","msg":…}` lines,
 * last one wins) or, failing that, from stderr text such as `time=… level=error msg="…"`.
 *
 * @example
 * ```ts
 * import { runtimeMessage } from "./runc.ts";
 * runtimeMessage('{"level":"error","msg":"container does not exist"}\n', ""); // "container does not exist"
 * ```
 */
export function runtimeMessage(jsonLog: string, stderr: string): string {
  let msg = "";
  for (const line of jsonLog.split("\n")) {
    if (!line.trim()) continue;
    try {
      const rec = JSON.parse(line) as { level?: string; msg?: string };
      if ((rec.level === "error" || rec.level === "fatal") && rec.msg) msg = rec.msg;
    } catch {
      // crun writes plain text lines when it cannot use JSON: keep the last one.
      msg = line.trim();
    }
  }
  if (msg) return msg;
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l);
  const last = lines.at(-1) ?? "";
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(last);
  if (m) {
    try {
      return JSON.parse(`"${m[1]}"`);
    } catch {
      return m[1];
    }
  }
  return last;
}

/**
 * Maps a runtime failure onto the project's typed errors: "does not exist" → NotFound, "not
 * running"/"stopped"/"paused" style conflicts → FailedPrecondition, a missing binary →
 * Unavailable, anything else → internal.
 *
 * @example
 * ```ts
 * import { runtimeError } from "./runc.ts";
 * runtimeError("kill", "c1", "container not running").kind; // "failed-precondition"
 * ```
 */
export function runtimeError(
  command: string,
  id: string,
  message: string,
  root?: string,
): RuntimeError {
  const what = `container "${id}"`;
  const text = `runtime ${command} of ${what} failed: ${message}`;
  // crun names the missing state file instead: "error opening file `<root>/<id>/status`: No
  // such file or directory", "cannot open directory '<root>/<id>'".
  const crunMissing = root !== undefined && message.includes(`${root}/${id}`) &&
    /No such file or directory/.test(message);
  if (
    crunMissing ||
    (/does not exist|not found|no such container/i.test(message) && !/exec:|stat /.test(message))
  ) {
    return new NotFoundError(`${what} (runtime ${command}: ${message})`);
  }
  if (
    /not running|is stopped|already (stopped|paused|running)|not paused|cannot (start|pause|resume|kill|delete)|not in created state|container is (paused|running|stopped|created)|process already finished|is not running|container that is not stopped/i
      .test(message)
  ) {
    return new FailedPreconditionError(text);
  }
  return new RuntimeError("internal", text);
}

/**
 * One OCI runtime binary at one state root. Stateless apart from its options: every method is a
 * single invocation of the binary.
 *
 * @example
 * ```ts
 * import { Runc } from "./runc.ts";
 * const runc = new Runc({ root: "/run/k8scontainerd/runc/default" });
 * for (const c of await runc.list()) console.log(c.id, c.status);
 * ```
 */
export class Runc {
  /** Path of the binary. */
  readonly binary: string;
  /** `--root` directory (undefined: the binary's default). */
  readonly root?: string;
  /** Whether `--systemd-cgroup` is passed. */
  readonly systemdCgroup: boolean;
  readonly #logDir?: string;

  constructor(opts: RuncOptions = {}) {
    this.binary = opts.binary ?? "/usr/bin/runc";
    this.root = opts.root;
    this.systemdCgroup = opts.systemdCgroup ?? false;
    this.#logDir = opts.logDir;
  }

  /**
   * The global flags (before the subcommand), for callers that build their own command line,
   * such as conmon's `--runtime-arg`s.
   */
  globalArgs(logFile?: string): string[] {
    const args: string[] = [];
    if (this.root) args.push(`--root=${this.root}`);
    if (logFile) args.push(`--log=${logFile}`, "--log-format=json");
    if (this.systemdCgroup) args.push("--systemd-cgroup");
    return args;
  }

  /** Runs one subcommand with a fresh JSON log; throws the typed error on a non-zero exit. */
  async #run(
    command: string,
    id: string,
    args: string[],
    opts: { stdin?: Uint8Array } = {},
  ): Promise<Output> {
    const logFile = await Deno.makeTempFile({ dir: this.#logDir, prefix: "runc-log-" });
    try {
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(this.binary, {
          args: [...this.globalArgs(logFile), command, ...args],
          stdin: opts.stdin ? "piped" : "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new UnavailableError(`OCI runtime binary ${this.binary} not found`, { cause: e });
        }
        throw e;
      }
      if (opts.stdin) {
        const w = child.stdin.getWriter();
        await w.write(opts.stdin);
        await w.close();
      }
      const out = await child.output();
      if (out.code !== 0) {
        const log = await Deno.readTextFile(logFile).catch(() => "");
        const msg = runtimeMessage(log, decoder.decode(out.stderr)) ||
          `exit status ${out.code}`;
        throw runtimeError(command, id, msg, this.root);
      }
      return { code: out.code, stdout: out.stdout, stderr: out.stderr };
    } finally {
      await Deno.remove(logFile).catch(() => {});
    }
  }

  /** `state <id>`: the runtime's view of one container. NotFound when it does not know it. */
  async state(id: string): Promise<RuncState> {
    const out = await this.#run("state", id, [id]);
    return JSON.parse(decoder.decode(out.stdout)) as RuncState;
  }

  /** `list --format json`: every container under this root (empty when the root is absent). */
  async list(): Promise<RuncState[]> {
    const out = await this.#run("list", "*", ["--format", "json"]);
    const text = decoder.decode(out.stdout).trim();
    if (!text || text === "null") return [];
    return JSON.parse(text) as RuncState[];
  }

  /** `start <id>`: runs the user process of a created container. */
  async start(id: string): Promise<void> {
    await this.#run("start", id, [id]);
  }

  /** `kill [--all] <id> <signal>`; `all` signals every process of the container. */
  async kill(id: string, signal: string | number = "SIGTERM", opts: { all?: boolean } = {}) {
    const args = opts.all ? ["--all"] : [];
    await this.#run("kill", id, [...args, id, String(signalNumber(signal))]);
  }

  /** `delete [--force] <id>`: forgets a stopped container (force: kills a running one first). */
  async delete(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.#run("delete", id, [...(opts.force ? ["--force"] : []), id]);
  }

  /** `pause <id>`: freezes every process of the container (cgroup freezer). */
  async pause(id: string): Promise<void> {
    await this.#run("pause", id, [id]);
  }

  /** `resume <id>`: thaws a paused container. */
  async resume(id: string): Promise<void> {
    await this.#run("resume", id, [id]);
  }

  /** `ps --format json <id>`: host pids of every process in the container. */
  async ps(id: string): Promise<number[]> {
    const out = await this.#run("ps", id, ["--format", "json", id]);
    const text = decoder.decode(out.stdout).trim();
    return text && text !== "null" ? JSON.parse(text) as number[] : [];
  }

  /**
   * `update --resources - <id>`: applies new `linux.resources` (cpu, memory, pids, blockIO) to a
   * running container; the JSON goes in on stdin so no file is left behind.
   */
  async update(id: string, resources: LinuxResources): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(resources));
    await this.#run("update", id, ["--resources", "-", id], { stdin: body });
  }

  /**
   * `exec --process <file> [--detach] [--pid-file f] <id>` started as a child with piped
   * stdio: the caller reads the process's output from the returned child. A runtime failure
   * (the container stopped, bad process spec) shows as a non-zero exit; call
   * {@link Runc.execError} with the log file to type it.
   */
  execCommand(id: string, opts: RuncExecOptions, logFile: string): Deno.ChildProcess {
    const args = [...this.globalArgs(logFile), "exec", "--process", opts.processFile];
    if (opts.detach) args.push("--detach");
    if (opts.pidFile) args.push("--pid-file", opts.pidFile);
    args.push(id);
    return new Deno.Command(this.binary, {
      args,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /**
   * The typed error of a failed `exec` given its JSON log, or undefined when the log holds no
   * runtime error (the exec'd process itself exited non-zero).
   */
  async execError(id: string, logFile: string): Promise<RuntimeError | undefined> {
    const log = await Deno.readTextFile(logFile).catch(() => "");
    const msg = runtimeMessage(log, "");
    return msg ? runtimeError("exec", id, msg, this.root) : undefined;
  }
}
