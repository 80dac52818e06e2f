/**
 * The runtime driver: one conmon per container, an OCI runtime (runc by default) underneath,
 * after CRI-O's internal/oci runtime_oci.go. It owns `<stateDir>/<namespace>/<id>/`, which
 * holds everything conmon and runc leave for a container:
 *
 * ```
 * meta.json        what the daemon asked for (handler, log path, tty, times)
 * config.json      copy of the caller's bundle config (root.path made absolute): conmon's bundle
 * conmon.pid       the monitor's pid        container.pid  the container's init pid
 * exits/<id>       exit code, written by conmon when the container exits (128+N for signal N)
 * exit, oom        conmon's persist-dir files (oom: the memory cgroup hit its limit)
 * ctl, winsz       conmon's control FIFOs (reopen log, resize)
 * attach           conmon's attach socket (SOCK_SEQPACKET), reached through
 *                  <stateDir>/attach/<cuuid> → this directory
 * ```
 *
 * The lifecycle: {@link ConmonRuntime.create} (conmon runs `runc create`, the pid comes back over
 * the sync pipe) → {@link ConmonRuntime.start} → {@link ConmonRuntime.wait} /
 * {@link ConmonRuntime.kill} → {@link ConmonRuntime.delete}. Containers survive the daemon:
 * on start-up {@link ConmonRuntime.recover} rebuilds the view from this directory.
 *
 * @example
 * ```ts
 * import { ConmonRuntime } from "./driver.ts";
 * const rt = new ConmonRuntime({ stateDir: "/run/k8scontainerd/runtime" });
 * const { pid } = await rt.create({ id: "c1", namespace: "k8s.io", bundle: "/b/c1",
 *   logPath: "/var/log/pods/p/c/0.log", tty: false, stdin: false, stdinOnce: false });
 * await rt.start("c1", "k8s.io");
 * const { exitCode } = await rt.wait("c1", "k8s.io");
 * await rt.delete("c1", "k8s.io");
 * ```
 *
 * @module
 */

import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  isKind,
  NotFoundError,
  RuntimeError,
} from "../errdefs/errors.ts";
import type { Logger } from "../log/logger.ts";
import {
  AF_UNIX,
  close as closeFd,
  closeOnExecAll,
  connectUnix,
  O_CLOEXEC,
  O_NOCTTY,
  O_RDWR,
  open as openFd,
  openPty,
  pidfdOpen,
  pidfdSendSignal,
  readAsync,
  setNonblocking,
  setWinsize,
  SHUT_WR,
  shutdown,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_SEQPACKET,
  socket,
  writeAsync,
} from "../../ffi/mod.ts";
import {
  conmonArgs,
  containerFiles,
  isConmonAlive,
  readPidFile,
  spawnConmon,
  writeFifo,
} from "./conmon.ts";
import { speaksExecFifo, startThroughExecFifo } from "./exec_fifo.ts";
import { ProcessExits } from "./process_exits.ts";
import { processStart } from "./process_start.ts";
import {
  type LinuxResources,
  Runc,
  type RuncStatus,
  runtimeMessage,
  signalName,
  signalNumber,
} from "./runc.ts";

/** A named OCI runtime the daemon may use (CRI's `runtime_handler`). */
export interface RuntimeHandler {
  /** Handler name as the CRI names it ("runc", "crun"). */
  name: string;
  /** Path of the runtime binary. */
  path: string;
  /** The runtime's `--root`; default `<stateDir>/<name>`. A namespace directory goes under it. */
  root?: string;
  /** Use the systemd cgroup driver. */
  systemdCgroup?: boolean;
}

/** Options of {@link ConmonRuntime}. */
export interface ConmonRuntimeOptions {
  /** The driver's state directory (the daemon passes `<state>/runtime`). */
  stateDir: string;
  /** Runtime handlers by name; default `{ runc: /usr/bin/runc }`. */
  handlers?: Record<string, RuntimeHandler>;
  /** Handler used when a create names none (default "runc"). */
  defaultHandler?: string;
  /** conmon binary (default /usr/bin/conmon). */
  conmonPath?: string;
  /** conmon's own log level. */
  conmonLogLevel?: "error" | "warn" | "info" | "debug" | "trace";
  /** `--log-size-max` for every container (0: unlimited). */
  logSizeMax?: number;
  /** How long to wait for conmon's sync message (runc create) before giving up. */
  createTimeoutMs?: number;
  log?: Logger;
}

/** What {@link ConmonRuntime.create} needs. */
export interface CreateOptions {
  id: string;
  /** Namespace ("k8s.io" for CRI objects); default "default". */
  namespace?: string;
  /** A directory holding config.json whose root.path points at a mounted rootfs. */
  bundle: string;
  /** Runtime handler name; default the runtime's default handler. */
  handler?: string;
  /** CRI log file conmon writes (created with its directory if missing). */
  logPath: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  labels?: Record<string, string>;
}

/** Container status as the driver reports it. */
export type ContainerStatus = "created" | "running" | "paused" | "stopped" | "unknown";

/** The driver's view of one container. */
export interface ContainerState {
  id: string;
  namespace: string;
  status: ContainerStatus;
  /** Host pid of the container's init (0 once stopped or unknown). */
  pid: number;
  /** Set once stopped: the exit status, 128+N when killed by signal N. */
  exitCode?: number;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** The memory cgroup ran out (conmon saw an OOM event). */
  oomKilled: boolean;
  /** "OOMKilled", "Completed" or "Error" once stopped, as the CRI reports reasons. */
  reason?: string;
  logPath: string;
  handler: string;
  labels: Record<string, string>;
}

/** What {@link ConmonRuntime.wait} resolves to. */
export interface ExitStatus {
  exitCode: number;
  finishedAt: Date;
  oomKilled: boolean;
}

/** A user for an exec'd process. */
export interface ExecUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

/** What {@link ConmonRuntime.exec} runs. */
export interface ExecOptions {
  args: string[];
  /** Extra environment ("K=V"), appended to the container's. */
  env?: string[];
  cwd?: string;
  user?: ExecUser;
  tty?: boolean;
  /** Give the process a stdin pipe (else /dev/null). */
  stdin?: boolean;
}

/** A running exec'd process: its stdio as web streams and its exit code. */
export interface ExecProcess {
  /** Host pid of the exec'd process (undefined if it exited before runc wrote it). */
  pid(): Promise<number | undefined>;
  stdin?: WritableStream<Uint8Array>;
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  /** Resolves with the process's exit code; rejects with a typed error if runc failed. */
  exitCode: Promise<number>;
  /** Sends a signal to the exec'd process (inside the container). */
  kill(signal?: string | number): Promise<void>;
  /** TTY exec only: sets the terminal's size in character cells. */
  resize?(width: number, height: number): Promise<void>;
}

/** What {@link ConmonRuntime.execSync} returns. */
export interface ExecSyncResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Output beyond `maxOutput` was dropped. */
  truncated: boolean;
}

/** One chunk read by {@link ConmonRuntime.attach}. */
export interface AttachChunk {
  stream: "stdout" | "stderr";
  data: Uint8Array;
}

/** What {@link ConmonRuntime.attach} returns. */
export interface AttachStreams {
  /**
   * Present when the container was created with stdin. Closing it ends the container's stdin
   * when the container was created with stdinOnce (conmon closes it as the client leaves).
   */
  stdin?: WritableStream<Uint8Array>;
  /** The container's output from now on; ends after the container exited. */
  output: ReadableStream<AttachChunk>;
}

/** One container found by {@link ConmonRuntime.recover}. */
export interface RecoveredContainer {
  id: string;
  namespace: string;
  /** "removed": it was half-created and has been cleaned up. */
  status: ContainerStatus | "removed";
  exitCode?: number;
  pid?: number;
}

/** The driver-owned record in meta.json. */
interface Meta {
  id: string;
  namespace: string;
  handler: string;
  runtimePath: string;
  runtimeRoot: string;
  systemdCgroup: boolean;
  /** Under the systemd driver, the container's transient scope (`<prefix>-<name>.scope`). */
  systemdScope?: string;
  bundle: string;
  logPath: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  labels: Record<string, string>;
  cuuid: string;
  createdAt: string;
  startedAt?: string;
  pid?: number;
  /** Set by pause(), cleared by resume(): lets state() answer without asking runc. */
  paused?: boolean;
  /**
   * The container has a PID namespace of its own (not the host's, not a pod's): killing its
   * init kills every process in it, so kill() needs no `runc kill --all`.
   */
  ownPidNamespace?: boolean;
  /**
   * The spec has poststart hooks: `runc start` itself then, never the in-process handshake
   * (runc 1.1 runs them at create, later runcs may run them in start).
   */
  poststartHooks?: boolean;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** "slice:prefix:name" → "prefix-name.scope", the unit runc asks systemd for. */
function systemdScopeOf(cgroupsPath: string | undefined): string | undefined {
  const parts = cgroupsPath?.split(":");
  return parts?.length === 3 ? `${parts[1]}-${parts[2]}.scope` : undefined;
}

/** Runs a command; its stdout, or undefined when it could not run or failed. */
async function command(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return o.success ? new TextDecoder().decode(o.stdout) : undefined;
  } catch {
    return undefined;
  }
}

const SIGKILL = 9;

/** How long a wait trusts the pidfd before looking at the files again anyway. */
const EXIT_SAFETY_NET_MS = 5_000;

/** Resolves when `p` does, after `ms`, or when `signal` aborts, whichever comes first. */
function settledOrAborted(p: Promise<void>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    p.then(done, done);
  });
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** This process's oom_score_adj (undefined where /proc cannot tell). */
async function ownOomScoreAdj(): Promise<number | undefined> {
  try {
    const n = parseInt(await Deno.readTextFile("/proc/self/oom_score_adj"), 10);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** An error that names the deadline that passed (errdefs has the kind but no class). */
export class DeadlineExceededError extends RuntimeError {
  constructor(message: string) {
    super("deadline-exceeded", message);
  }
}

/**
 * The conmon + OCI runtime driver. All methods take the container id and its namespace
 * (default "default"); ids are unique per namespace.
 *
 * @example
 * ```ts
 * import { ConmonRuntime } from "./driver.ts";
 * const rt = new ConmonRuntime({ stateDir: "/run/k8scontainerd/runtime",
 *   handlers: { runc: { name: "runc", path: "/usr/bin/runc" },
 *               crun: { name: "crun", path: "/usr/bin/crun" } } });
 * for (const c of await rt.recover()) console.log(c.id, c.status);
 * ```
 */
export class ConmonRuntime {
  /** The driver's state directory. */
  readonly stateDir: string;
  /** The configured handlers by name. */
  readonly handlers: Record<string, RuntimeHandler>;
  readonly #defaultHandler: string;
  readonly #conmon: string;
  readonly #opts: ConmonRuntimeOptions;
  readonly #log?: Logger;
  #oomClampLogged = false;

  constructor(opts: ConmonRuntimeOptions) {
    this.stateDir = opts.stateDir.replace(/\/+$/, "");
    this.handlers = opts.handlers ?? { runc: { name: "runc", path: "/usr/bin/runc" } };
    this.#defaultHandler = opts.defaultHandler ?? "runc";
    this.#conmon = opts.conmonPath ?? "/usr/bin/conmon";
    this.#opts = opts;
    this.#log = opts.log;
  }

  /** The state directory of one container. */
  containerDir(id: string, namespace = "default"): string {
    return `${this.stateDir}/${namespace}/${id}`;
  }

  /** The runtime root for a handler and namespace (runc ids are unique per root). */
  #runtimeRoot(h: RuntimeHandler, namespace: string): string {
    return `${h.root ?? `${this.stateDir}/${h.name}`}/${namespace}`;
  }

  #runc(meta: Meta): Runc {
    return new Runc({
      binary: meta.runtimePath,
      root: meta.runtimeRoot,
      systemdCgroup: meta.systemdCgroup,
    });
  }

  /** Exits of conmon and init processes, seen through pidfds (see wait()). */
  readonly #exits = new ProcessExits();

  /** Parsed meta files and final exits, by container dir: state() is polled constantly. */
  #metaCache = new Map<string, Meta>();
  /**
   * Container dirs found without a meta.json (no task: a CRI container created, never started)
   * and not written since. The kubelet lists every container every second; each of these cost a
   * failed file read and a thrown NotFoundError per list (49 ms p50 for ListContainers with 900
   * created containers). Only this daemon writes meta.json, through #writeMeta, which clears it.
   */
  #absent = new Set<string>();
  #exitCache = new Map<string, { code: number; at: Date }>();
  /**
   * Containers this daemon has seen running: their init's pid and start time. While /proc still
   * shows that very process, the container runs and its exit file cannot exist yet (conmon
   * writes it after reaping the process), so state() and the exit watch skip reading it. Only
   * ever filled by a full check (exit file absent, process alive), so it starts empty after a
   * restart and a container that exited meanwhile is found by its exit file.
   */
  #running = new Map<string, { pid: number; start: string }>();

  #forget(dir: string): void {
    this.#absent.delete(dir);
    this.#metaCache.delete(dir);
    this.#exitCache.delete(dir);
    this.#running.delete(dir);
  }

  /**
   * Containers whose end a pidfd is watching right now (see wait()): until it fires they run,
   * and state() need not even read /proc (ListContainers asks for every container at once).
   */
  #watched = new Set<string>();

  /** True when the container was seen running and the same init process still lives. */
  #stillRunning(dir: string, meta: Meta): boolean {
    const seen = this.#running.get(dir);
    if (!seen) return false;
    if (
      seen.pid === meta.pid && !meta.paused &&
      (this.#watched.has(dir) || processStart(seen.pid) === seen.start)
    ) {
      return true;
    }
    this.#running.delete(dir);
    return false;
  }

  async #meta(id: string, namespace: string): Promise<Meta> {
    const dir = this.containerDir(id, namespace);
    const hit = this.#metaCache.get(dir);
    // A copy: callers change it and then write it back through #writeMeta.
    if (hit) return structuredClone(hit);
    try {
      const meta = JSON.parse(await Deno.readTextFile(containerFiles(dir).meta)) as Meta;
      this.#metaCache.set(dir, structuredClone(meta));
      return meta;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        // Unless a write landed while this read was in flight.
        if (!this.#metaCache.has(dir)) this.#absent.add(dir);
        throw new NotFoundError(`container "${id}" in namespace "${namespace}"`);
      }
      throw e;
    }
  }

  /**
   * True when the container is known to have no task here (its state was looked up, found
   * absent, and nothing has created it since): state() would throw not-found. A cheap check
   * for callers that ask about many containers; false means "look".
   */
  knownAbsent(id: string, namespace = "default"): boolean {
    const dir = this.containerDir(id, namespace);
    return this.#absent.has(dir) && !this.#metaCache.has(dir);
  }

  async #writeMeta(dir: string, meta: Meta): Promise<void> {
    const f = containerFiles(dir);
    this.#absent.delete(dir);
    await Deno.writeTextFile(`${f.meta}.tmp`, JSON.stringify(meta, null, 2));
    await Deno.rename(`${f.meta}.tmp`, f.meta);
    this.#metaCache.set(dir, structuredClone(meta));
    this.#absent.delete(dir);
  }

  /**
   * Creates the container: copies the bundle's config.json into the state directory (making
   * root.path absolute, since that directory becomes conmon's bundle), starts conmon, which
   * runs `runc create`, and returns the container's init pid from conmon's sync pipe. On any
   * failure everything is undone (conmon, runc state, the directory) and the error carries the
   * runtime's own message.
   */
  async create(opts: CreateOptions): Promise<{ pid: number }> {
    const namespace = opts.namespace ?? "default";
    if (!ID_RE.test(opts.id)) {
      throw new InvalidArgumentError(`invalid container id "${opts.id}"`);
    }
    if (!ID_RE.test(namespace)) {
      throw new InvalidArgumentError(`invalid namespace "${namespace}"`);
    }
    const handlerName = opts.handler || this.#defaultHandler;
    const handler = this.handlers[handlerName];
    if (!handler) {
      throw new InvalidArgumentError(
        `unknown runtime handler "${handlerName}" (configured: ${
          Object.keys(this.handlers).join(", ")
        })`,
      );
    }
    if (!opts.logPath.startsWith("/")) {
      throw new InvalidArgumentError(`log path "${opts.logPath}" is not absolute`);
    }
    let config: {
      root?: { path?: string };
      process?: { terminal?: boolean; oomScoreAdj?: number };
      linux?: { cgroupsPath?: string };
      [k: string]: unknown;
    };
    try {
      config = JSON.parse(await Deno.readTextFile(`${opts.bundle}/config.json`));
    } catch (e) {
      throw new InvalidArgumentError(
        `bundle ${opts.bundle}: cannot read config.json: ${(e as Error).message}`,
      );
    }
    if (config.root?.path && !config.root.path.startsWith("/")) {
      config.root.path = `${opts.bundle.replace(/\/+$/, "")}/${config.root.path}`;
    }

    // conmon passes runc a console socket exactly when it got -t, and runc refuses a console
    // socket for a process without a terminal (and the reverse): make the two agree.
    if (config.process) {
      config.process.terminal = opts.tty;
      const adj = config.process.oomScoreAdj;
      const own = await ownOomScoreAdj();
      if (typeof adj === "number" && own !== undefined && adj < own) {
        // Lowering oom_score_adj below our own is refused on some hosts (even to root); runc
        // would then fail the create. Clamp, as containerd's restrict_oom_score_adj does.
        if (!this.#oomClampLogged) {
          this.#log?.info("clamping container oom_score_adj to the daemon's own", {
            requested: adj,
            clamped: own,
          });
          this.#oomClampLogged = true;
        }
        config.process.oomScoreAdj = own;
      }
    }

    const dir = this.containerDir(opts.id, namespace);
    await Deno.mkdir(`${this.stateDir}/${namespace}`, { recursive: true });
    try {
      await Deno.mkdir(dir);
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new AlreadyExistsError(`container "${opts.id}" in namespace "${namespace}"`);
      }
      throw e;
    }
    const f = containerFiles(dir);
    const socketDir = `${this.stateDir}/attach`;
    const meta: Meta = {
      id: opts.id,
      namespace,
      handler: handler.name,
      runtimePath: handler.path,
      runtimeRoot: this.#runtimeRoot(handler, namespace),
      systemdCgroup: handler.systemdCgroup ?? false,
      systemdScope: handler.systemdCgroup ? systemdScopeOf(config.linux?.cgroupsPath) : undefined,
      bundle: opts.bundle,
      logPath: opts.logPath,
      tty: opts.tty,
      stdin: opts.stdin,
      stdinOnce: opts.stdinOnce,
      labels: opts.labels ?? {},
      cuuid: randomHex(8),
      createdAt: new Date().toISOString(),
      ownPidNamespace: (config.linux as { namespaces?: { type: string; path?: string }[] })
        ?.namespaces?.some((n) => n.type === "pid" && !n.path) ?? false,
      poststartHooks: ((config.hooks as { poststart?: unknown[] })?.poststart?.length ?? 0) > 0,
    };
    const runc = this.#runc(meta);
    try {
      await Deno.mkdir(f.exitDir);
      await Deno.mkdir(socketDir, { recursive: true });
      await Deno.mkdir(meta.runtimeRoot, { recursive: true, mode: 0o700 });
      await Deno.mkdir(opts.logPath.replace(/\/[^/]*$/, "") || "/", { recursive: true });
      await Deno.writeTextFile(f.config, JSON.stringify(config));
      await this.#writeMeta(dir, meta);
      const args = conmonArgs({
        id: opts.id,
        cuuid: meta.cuuid,
        dir,
        runtimePath: handler.path,
        runtimeArgs: runc.globalArgs(f.runcLog),
        logPath: opts.logPath,
        socketDir,
        tty: opts.tty,
        stdin: opts.stdin,
        stdinOnce: opts.stdinOnce,
        name: opts.labels?.["io.kubernetes.container.name"] ?? opts.id,
        logLevel: this.#opts.conmonLogLevel,
        logSizeMax: this.#opts.logSizeMax,
        systemdCgroup: handler.systemdCgroup,
      });
      // conmon outlives the daemon: it must not inherit the API socket or open connections
      // (descriptors opened by libraries inside the daemon may lack close-on-exec).
      closeOnExecAll();
      const started = await spawnConmon(this.#conmon, args, dir, {
        timeoutMs: this.#opts.createTimeoutMs,
      });
      const sync = started.sync;
      if (!sync || sync.data <= 0) {
        const runcLog = await Deno.readTextFile(f.runcLog).catch(() => "");
        const why = runtimeMessage(runcLog, sync?.message ?? "") ||
          sync?.message?.trim() || started.stderr.trim() ||
          `conmon exited with status ${started.code} without reporting`;
        throw new FailedPreconditionError(
          `create container "${opts.id}" (runtime ${handler.name}): ${why}`,
        );
      }
      meta.pid = sync.data;
      await this.#writeMeta(dir, meta);
      this.#log?.debug("container created", { id: opts.id, namespace, pid: sync.data });
      return { pid: sync.data };
    } catch (e) {
      await this.#cleanup(dir, meta, runc);
      throw e;
    }
  }

  /**
   * Undoes a (possibly half-done) create: conmon, runc state, attach symlink, directory.
   * `runcDeleted`: the caller's own `runc delete` succeeded, so a second one (a whole runc
   * process) is skipped.
   */
  async #cleanup(dir: string, meta: Meta, runc: Runc, runcDeleted = false): Promise<void> {
    const f = containerFiles(dir);
    const conmonPid = await readPidFile(f.conmonPid);
    if (!runcDeleted) await runc.delete(meta.id, { force: true }).catch(() => {});
    await this.#reapConmon(conmonPid, dir);
    await Deno.remove(`${this.stateDir}/attach/${meta.cuuid}`).catch(() => {});
    this.#forget(dir);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  /**
   * Waits until a `runc create` under conmon has finished: the container's pid file is written
   * (runc's last step) or conmon has gone. Bounded by the create timeout.
   */
  async #createSettled(conmonPid: number | undefined, dir: string): Promise<void> {
    const end = Date.now() + (this.#opts.createTimeoutMs ?? 120_000);
    while (Date.now() < end && await isConmonAlive(conmonPid, dir)) {
      if (await exists(containerFiles(dir).pid)) return;
      await sleep(50);
    }
  }

  /** Waits for conmon to leave by itself (it does once the container is gone), else kills it. */
  async #reapConmon(pid: number | undefined, dir: string): Promise<void> {
    if (!pid) return;
    for (let i = 0; i < 40 && await isConmonAlive(pid, dir); i++) await sleep(50);
    if (await isConmonAlive(pid, dir)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
      for (let i = 0; i < 20 && await isConmonAlive(pid, dir); i++) await sleep(50);
    }
  }

  /** Starts the user process of a created container (`runc start`). */
  async start(id: string, namespace = "default"): Promise<void> {
    const meta = await this.#meta(id, namespace);
    const refuse = (status: string) =>
      new FailedPreconditionError(`cannot start container "${id}": it is ${status}, not created`);
    // What our own files tell without a `runc state` (a whole runc process on the pod-start
    // path); runc start refuses anything not "created" itself, and then we say what it was.
    if (meta.startedAt) throw refuse((await this.state(id, namespace)).status);
    if (this.#exit(this.containerDir(id, namespace), id)) throw refuse("stopped");
    try {
      const handshake = speaksExecFifo(meta.runtimePath) && meta.pid !== undefined &&
        !meta.poststartHooks && await startThroughExecFifo(meta.runtimeRoot, id, meta.pid);
      if (!handshake) await this.#runc(meta).start(id);
    } catch (e) {
      const st = await this.state(id, namespace).catch(() => undefined);
      if (st && st.status !== "created") throw refuse(st.status);
      throw e;
    }
    meta.startedAt = new Date().toISOString();
    await this.#writeMeta(this.containerDir(id, namespace), meta);
  }

  /** Reads conmon's exit file: the exit code and when it was written. */
  #exit(dir: string, id: string): { code: number; at: Date } | undefined {
    const cached = this.#exitCache.get(dir);
    if (cached) return cached;
    const path = `${containerFiles(dir).exitDir}/${id}`;
    try {
      // Synchronous on purpose: a tiny file on the state tmpfs, read on the kubelet's hot path,
      // where scheduling async ops costs far more than the read.
      const text = Deno.readTextFileSync(path);
      const st = Deno.statSync(path);
      const code = parseInt(text.trim(), 10);
      if (!Number.isFinite(code)) return undefined; // being written
      const exit = { code, at: st.mtime ?? new Date() };
      this.#exitCache.set(dir, exit); // an exit never changes
      return exit;
    } catch {
      return undefined;
    }
  }

  /**
   * The container's state: runc's status while it lives, conmon's exit file once it exited
   * (exit code, finish time, OOM). "unknown" when neither runc nor conmon can tell.
   */
  async state(id: string, namespace = "default"): Promise<ContainerState> {
    const dir = this.containerDir(id, namespace);
    // Read only: the cached meta itself (no copy), as nothing here changes it.
    const meta = this.#metaCache.get(dir) ?? await this.#meta(id, namespace);
    const f = containerFiles(dir);
    const base = {
      id,
      namespace,
      createdAt: new Date(meta.createdAt),
      startedAt: meta.startedAt ? new Date(meta.startedAt) : undefined,
      logPath: meta.logPath,
      handler: meta.handler,
      labels: { ...meta.labels },
    };
    // Hottest path (the kubelet lists every container every second): seen running, same process.
    if (meta.pid && this.#stillRunning(dir, meta)) {
      return { ...base, status: "running", pid: meta.pid, oomKilled: false };
    }
    const stopped = async (): Promise<ContainerState | undefined> => {
      const exit = await this.#exit(dir, id);
      if (!exit) return undefined;
      const oomKilled = await this.#oomKilled(meta, f, exit.code);
      return {
        ...base,
        status: "stopped",
        pid: 0,
        exitCode: exit.code,
        finishedAt: exit.at,
        oomKilled,
        reason: oomKilled ? "OOMKilled" : exit.code === 0 ? "Completed" : "Error",
      };
    };
    const done = await stopped();
    if (done) return done;
    // Fast path, hot for the kubelet's polling: a started, unpaused container whose init
    // process is alive is running — no `runc state` process needed. conmon writes the exit
    // file as soon as it reaps the process, and that was checked above.
    if (meta.startedAt && meta.pid && !meta.paused) {
      const start = processStart(meta.pid);
      if (start !== undefined) {
        this.#running.set(dir, { pid: meta.pid, start });
        return { ...base, status: "running", pid: meta.pid, oomKilled: false };
      }
    }
    let status: RuncStatus | undefined;
    let pid = 0;
    try {
      const rs = await this.#runc(meta).state(id);
      status = rs.status;
      pid = rs.pid;
    } catch (e) {
      if (!isKind(e, "not-found")) throw e;
    }
    const conmonAlive = await isConmonAlive(await readPidFile(f.conmonPid), dir);
    if (status === "stopped" || (status === undefined && conmonAlive)) {
      // conmon writes the exit file right after reaping the process: give it a moment.
      for (let i = 0; i < 40 && conmonAlive; i++) {
        await sleep(50);
        const later = await stopped();
        if (later) return later;
      }
    }
    if (status === "created" || status === "running" || status === "paused") {
      return { ...base, status, pid, oomKilled: false };
    }
    if (status === "stopped") {
      // conmon may have written the exit file and gone between our first look and runc's answer.
      const last = await stopped();
      if (last) return last;
      return { ...base, status: "stopped", pid: 0, oomKilled: await exists(f.oom) };
    }
    return { ...base, status: "unknown", pid: 0, oomKilled: false };
  }

  /**
   * Whether the container was OOM-killed: conmon's `oom` file; under the systemd driver also
   * systemd's own record. There systemd removes the scope's cgroup as soon as its last process
   * dies, which can beat conmon to reading `memory.events`; systemd itself has seen the kill and
   * logged it for the scope ("A process of this unit has been killed by the OOM killer", in the
   * journal since systemd 243). The verdict is written down once, so later reads agree.
   */
  async #oomKilled(meta: Meta, f: ReturnType<typeof containerFiles>, code: number) {
    if (await exists(f.oom)) return true;
    // A SIGKILL (128+9) is what the OOM killer sends; nothing else is worth asking about.
    if (code !== 137 || !meta.systemdScope || await exists(`${f.oom}-checked`)) return false;
    let oom = false;
    // systemd handles the cgroup's memory.events notification on its own schedule: a moment.
    for (let i = 0; i < 5 && !oom; i++) {
      if (i) await sleep(100);
      const log = await command("journalctl", [
        "--quiet",
        "--no-pager",
        "--output=cat",
        `--unit=${meta.systemdScope}`,
      ]);
      oom = !!log?.includes("killed by the OOM killer");
    }
    await Deno.writeTextFile(oom ? f.oom : `${f.oom}-checked`, "").catch(() => {});
    return oom;
  }

  /**
   * Resolves when the container has exited, with conmon's exit code (also at once for an
   * already-exited container). A monitor that died without an exit file yields 255, as CRI-O
   * reports it. `signal` aborts the wait.
   */
  /**
   * What ends when the container does: its conmon, which writes the exit file and then leaves
   * (so the file is there once it has gone), or the init itself when conmon is gone already.
   * Undefined where the kernel has no pidfds.
   */
  async #exitOf(initPid: number, dir: string): Promise<{ exited: Promise<void> } | undefined> {
    // Wrapped: an async function returning the promise itself would wait for the exit.
    const conmon = await readPidFile(containerFiles(dir).conmonPid);
    const pid = conmon && await isConmonAlive(conmon, dir) ? conmon : initPid;
    const exited = this.#exits.exited(pid);
    return exited && { exited };
  }

  /** One poll per container however many callers wait on it (the CRI and events both do). */
  #waits = new Map<string, Promise<ExitStatus>>();

  wait(id: string, namespace = "default", signal?: AbortSignal): Promise<ExitStatus> {
    if (signal) return this.#poll(id, namespace, signal);
    const dir = this.containerDir(id, namespace);
    let p = this.#waits.get(dir);
    if (!p) {
      p = this.#poll(id, namespace).finally(() => this.#waits.delete(dir));
      this.#waits.set(dir, p);
    }
    return p;
  }

  async #poll(id: string, namespace: string, signal?: AbortSignal): Promise<ExitStatus> {
    const meta = await this.#meta(id, namespace);
    const dir = this.containerDir(id, namespace);
    const f = containerFiles(dir);
    let delay = 20;
    for (let round = 0;; round++) {
      // The same process still alive is the cheap answer (no failed read of a missing file).
      if (meta.pid && this.#stillRunning(dir, meta)) {
        signal?.throwIfAborted();
        const exited = (await this.#exitOf(meta.pid, dir))?.exited;
        if (exited) {
          // Forgotten in the same microtask run as the exit is seen, before any later state().
          this.#watched.add(dir);
          exited.then(() => this.#watched.delete(dir));
          await settledOrAborted(exited, EXIT_SAFETY_NET_MS, signal);
          continue;
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 500);
        continue;
      }
      const exit = await this.#exit(dir, meta.id);
      if (exit) {
        return {
          exitCode: exit.code,
          finishedAt: exit.at,
          oomKilled: await this.#oomKilled(meta, f, exit.code),
        };
      }
      if (!await exists(dir)) throw new NotFoundError(`container "${id}" (deleted while waiting)`);
      if (round % 10 === 9 && !await isConmonAlive(await readPidFile(f.conmonPid), dir)) {
        const last = await this.#exit(dir, meta.id);
        if (last) continue;
        // No monitor: the process may still live (recovered without conmon); ask runc.
        const rs = await this.#runc(meta).state(id).catch(() => undefined);
        if (!rs || rs.status === "stopped") {
          return { exitCode: 255, finishedAt: new Date(), oomKilled: await exists(f.oom) };
        }
      }
      signal?.throwIfAborted();
      await sleep(delay);
      delay = Math.min(delay * 2, 500);
    }
  }

  /**
   * Sends a signal to the container's init (or, with `all`, to every process in it). A
   * container that is not running fails with FailedPrecondition naming it.
   */
  async kill(
    id: string,
    signal: string | number = "SIGTERM",
    opts: { all?: boolean; namespace?: string } = {},
  ): Promise<void> {
    const namespace = opts.namespace ?? "default";
    const meta = await this.#meta(id, namespace);
    const n = signalNumber(signal);
    const st = await this.state(id, namespace);
    if (st.status === "stopped" || st.status === "unknown") {
      throw new FailedPreconditionError(
        `cannot kill container "${id}": it is not running (${st.status}${
          st.exitCode !== undefined ? `, exit code ${st.exitCode}` : ""
        })`,
      );
    }
    if (this.#signalInit(meta, n, opts.all ?? false)) return;
    await this.#runc(meta).kill(id, n, { all: opts.all });
  }

  /**
   * Signals the container's init through a pidfd instead of a `runc kill` process (~10 ms, on
   * every stop): when only init is meant, or all processes and init is the PID namespace's
   * init (the kernel kills the rest when it dies). Only for the very init seen running (its
   * start time checked after the pidfd is open, so a reused pid is never signalled) and not
   * paused (a frozen cgroup needs runc). False when runc has to do it.
   */
  #signalInit(meta: Meta, signal: number, all: boolean): boolean {
    const dir = this.containerDir(meta.id, meta.namespace);
    const seen = this.#running.get(dir);
    if (!meta.pid || meta.paused || seen?.pid !== meta.pid) return false;
    if (all && !(meta.ownPidNamespace && signal === SIGKILL)) return false;
    let fd: number;
    try {
      fd = pidfdOpen(meta.pid);
    } catch {
      return false; // gone (runc says so in its words), or no pidfds here
    }
    try {
      if (processStart(meta.pid) !== seen.start) return false;
      pidfdSendSignal(fd, signal);
      return true;
    } catch {
      return false;
    } finally {
      closeFd(fd);
    }
  }

  /**
   * Deletes the container: runc's state, conmon (which leaves once the container is gone), the
   * attach symlink and the state directory. A live container needs `force` (it is killed).
   * The second delete of the same id fails with NotFound.
   */
  async delete(id: string, opts: { force?: boolean; namespace?: string } = {}): Promise<void> {
    const namespace = opts.namespace ?? "default";
    const meta = await this.#meta(id, namespace);
    const dir = this.containerDir(id, namespace);
    const st = await this.state(id, namespace);
    if (!opts.force && (st.status === "running" || st.status === "paused")) {
      throw new FailedPreconditionError(
        `cannot delete container "${id}": it is ${st.status} (stop it or force)`,
      );
    }
    const runc = this.#runc(meta);
    try {
      await runc.delete(id, { force: true });
    } catch (e) {
      if (!isKind(e, "not-found")) throw e;
    }
    await this.#cleanup(dir, meta, runc, true);
    this.#log?.debug("container deleted", { id, namespace });
  }

  /** Freezes every process of the container. */
  async pause(id: string, namespace = "default"): Promise<void> {
    const meta = await this.#meta(id, namespace);
    await this.#runc(meta).pause(id);
    meta.paused = true;
    await this.#writeMeta(this.containerDir(id, namespace), meta);
  }

  /** Thaws a paused container. */
  async resume(id: string, namespace = "default"): Promise<void> {
    const meta = await this.#meta(id, namespace);
    await this.#runc(meta).resume(id);
    meta.paused = false;
    await this.#writeMeta(this.containerDir(id, namespace), meta);
  }

  /** Host pids of the container's processes. */
  async ps(id: string, namespace = "default"): Promise<number[]> {
    return await this.#runc(await this.#meta(id, namespace)).ps(id);
  }

  /** Applies new `linux.resources` to a live container (`runc update`). */
  async update(id: string, resources: LinuxResources, namespace = "default"): Promise<void> {
    await this.#runc(await this.#meta(id, namespace)).update(id, resources);
  }

  /** One cgroup statistics sample (`runc events --stats`). */
  async stats(id: string, namespace = "default"): Promise<Record<string, unknown>> {
    return await this.#runc(await this.#meta(id, namespace)).stats(id);
  }

  /** Sends one line to conmon's control FIFO; FailedPrecondition when conmon is gone. */
  async #ctl(id: string, namespace: string, line: string, what: string): Promise<void> {
    await this.#meta(id, namespace);
    const f = containerFiles(this.containerDir(id, namespace));
    if (!await writeFifo(f.ctl, line)) {
      throw new FailedPreconditionError(
        `cannot ${what} for container "${id}": its conmon is not running`,
      );
    }
  }

  /**
   * Makes conmon close and reopen the log file at logPath (the kubelet renames the file when it
   * rotates logs, then asks for this): message type 2 on the ctl FIFO.
   */
  async reopenLog(id: string, namespace = "default"): Promise<void> {
    await this.#ctl(id, namespace, "2 0 0\n", "reopen the log");
  }

  /** Resizes the container's terminal: message type 1 ("1 <height> <width>") on the ctl FIFO. */
  async resize(
    id: string,
    size: { width: number; height: number },
    namespace = "default",
  ): Promise<void> {
    const meta = await this.#meta(id, namespace);
    if (!meta.tty) {
      throw new FailedPreconditionError(`cannot resize container "${id}": it has no terminal`);
    }
    await this.#ctl(
      id,
      namespace,
      `1 ${Math.trunc(size.height)} ${Math.trunc(size.width)}\n`,
      "resize the terminal",
    );
  }

  /** The exec process spec: the container's process with the caller's overrides. */
  async #execSpec(dir: string, o: ExecOptions): Promise<Record<string, unknown>> {
    // (terminal follows o.tty: runc then makes the console and hands it over)
    const config = JSON.parse(await Deno.readTextFile(containerFiles(dir).config)) as {
      process?: Record<string, unknown>;
    };
    const base = { ...(config.process ?? {}) };
    const env = [...((base.env as string[] | undefined) ?? []), ...(o.env ?? [])];
    const spec: Record<string, unknown> = {
      ...base,
      args: o.args,
      env,
      terminal: o.tty === true,
    };
    if (o.cwd) spec.cwd = o.cwd;
    if (o.user) {
      spec.user = {
        uid: o.user.uid,
        gid: o.user.gid,
        additionalGids: o.user.additionalGids ?? [],
      };
    }
    // The exec'd process inherits the container's limits; a score below ours is refused here.
    delete spec.oomScoreAdj;
    return spec;
  }

  /**
   * Runs a process inside a running container (`runc exec --process`, in the foreground so
   * runc's exit status is the process's). Without a terminal stdio are pipes. With `tty`, runc
   * 1.1 refuses `--console-socket` unless it detaches (and a detached exec's exit status would
   * be lost), so the driver opens a pty of its own and gives its slave to runc as stdin and
   * stdout: runc puts it in raw mode and copies between it and the container's console, and
   * forwards our window size on SIGWINCH. stdout is the pty master, stdin writes to it, stderr
   * is empty, and `resize` sets the master's size and signals runc.
   */
  async exec(id: string, o: ExecOptions, namespace = "default"): Promise<ExecProcess> {
    if (!o.args.length) throw new InvalidArgumentError(`exec in "${id}": no command given`);
    const meta = await this.#meta(id, namespace);
    const st = await this.state(id, namespace);
    if (st.status !== "running") {
      throw new FailedPreconditionError(
        `cannot exec in container "${id}": it is ${st.status}, not running`,
      );
    }
    const dir = this.containerDir(id, namespace);
    const tag = randomHex(6);
    const processFile = `${dir}/exec-${tag}.json`;
    const pidFile = `${dir}/exec-${tag}.pid`;
    const logFile = `${dir}/exec-${tag}.log`;
    await Deno.writeTextFile(processFile, JSON.stringify(await this.#execSpec(dir, o)));
    const runc = this.#runc(meta);
    closeOnExecAll();
    if (o.tty) {
      return this.#execTty(id, meta, runc, { processFile, pidFile, logFile, stdin: o.stdin });
    }
    const child = runc.execCommand(id, { processFile, pidFile, stdin: o.stdin }, logFile);
    const readPid = () => readPidFile(pidFile);
    let knownPid: number | undefined;
    const pidWatch = (async () => {
      for (let i = 0; i < 200 && knownPid === undefined; i++) {
        knownPid = await readPid();
        if (knownPid) break;
        await sleep(10);
      }
    })();
    const exitCode = child.status.then(async (s) => {
      knownPid ??= await readPid();
      const err = s.code !== 0 ? await runc.execError(id, logFile) : undefined;
      await Promise.all(
        [processFile, pidFile, logFile].map((p) => Deno.remove(p).catch(() => {})),
      );
      if (err) throw err;
      return s.signal ? 128 + signalNumber(s.signal) : s.code;
    });
    exitCode.catch(() => {}); // the caller may only look at the streams
    return {
      pid: async () => {
        await Promise.race([pidWatch, exitCode.catch(() => {})]);
        return knownPid;
      },
      stdin: o.stdin ? child.stdin : undefined,
      stdout: child.stdout,
      stderr: child.stderr,
      exitCode,
      kill: async (sig: string | number = "SIGKILL") => {
        await Promise.race([pidWatch, exitCode.catch(() => {})]);
        if (knownPid) killPid(knownPid, signalNumber(sig));
      },
    };
  }

  /** The TTY half of {@link exec}: see there. */
  #execTty(
    id: string,
    meta: Meta,
    runc: Runc,
    f: { processFile: string; pidFile: string; logFile: string; stdin?: boolean },
  ): ExecProcess {
    const pty = openPty();
    // Our own slave descriptor keeps the master from reading EIO before runc opened the slave;
    // it is closed once runc exits, after which the master drains and then reads end-of-file.
    let slave = -1;
    let child: Deno.ChildProcess;
    try {
      setNonblocking(pty.master);
      setWinsize(pty.master, 24, 80);
      slave = openFd(pty.slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC);
      const args = [
        ...runc.globalArgs(f.logFile),
        "exec",
        "--process",
        f.processFile,
        "--pid-file",
        f.pidFile,
        id,
      ];
      child = new Deno.Command("/bin/sh", {
        args: ["-c", 'exec "$0" "$@" <"$K8SC_PTY" >"$K8SC_PTY"', meta.runtimePath, ...args],
        env: { K8SC_PTY: pty.slavePath },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      if (slave >= 0) closeFd(slave);
      closeFd(pty.master);
      throw e;
    }
    const runcStderr = new Response(child.stderr).text().catch(() => "");
    let refs = 2; // the output reader and the exit watcher
    const release = () => {
      if (--refs === 0) closeFd(pty.master);
    };
    let knownPid: number | undefined;
    const readPid = () => readPidFile(f.pidFile);
    const pidWatch = (async () => {
      for (let i = 0; i < 200 && knownPid === undefined; i++) {
        knownPid = await readPid();
        if (knownPid) break;
        await sleep(10);
      }
    })();
    const exitCode = child.status.then(async (s) => {
      closeFd(slave);
      knownPid ??= await readPid();
      const err = s.code !== 0 ? await runc.execError(id, f.logFile) : undefined;
      await runcStderr;
      await Promise.all(
        [f.processFile, f.pidFile, f.logFile].map((p) => Deno.remove(p).catch(() => {})),
      );
      release();
      if (err) throw err;
      return s.signal ? 128 + signalNumber(s.signal) : s.code;
    });
    exitCode.catch(() => {});
    const ac = new AbortController();
    let reading: Promise<unknown> | undefined;
    let ended = false;
    const stdout = new ReadableStream<Uint8Array>({
      async pull(c) {
        const buf = new Uint8Array(32 * 1024);
        try {
          reading = readAsync(pty.master, buf, { signal: ac.signal });
          const n = await reading as number;
          if (n > 0) {
            c.enqueue(buf.slice(0, n));
            return;
          }
        } catch (e) {
          if (!ac.signal.aborted) c.error(e);
        }
        if (!ended) {
          ended = true;
          if (!ac.signal.aborted) c.close();
          release();
        }
      },
      async cancel() {
        ac.abort();
        await reading?.catch(() => {});
        if (!ended) {
          ended = true;
          release();
        }
      },
    }, { highWaterMark: 0 });
    const stdin = f.stdin
      ? new WritableStream<Uint8Array>({
        async write(chunk) {
          if (refs > 0) await writeAsync(pty.master, chunk, { signal: ac.signal });
        },
      })
      : undefined;
    const stderr = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    return {
      pid: async () => {
        await Promise.race([pidWatch, exitCode.catch(() => {})]);
        return knownPid;
      },
      stdin,
      stdout,
      stderr,
      exitCode,
      kill: async (sig: string | number = "SIGKILL") => {
        await Promise.race([pidWatch, exitCode.catch(() => {})]);
        if (knownPid) killPid(knownPid, signalNumber(sig));
      },
      resize: (width: number, height: number) => {
        if (refs > 0) {
          setWinsize(pty.master, height, width);
          // runc copies its console's size to the container's on SIGWINCH.
          try {
            child.kill("SIGWINCH");
          } catch { /* runc already exited */ }
        }
        return Promise.resolve();
      },
    };
  }

  /**
   * Runs a command to completion and collects its output (CRI ExecSync): after `timeoutMs` the
   * process is killed and a DeadlineExceeded error names the command; output past `maxOutput`
   * bytes per stream is dropped and reported as truncated.
   */
  async execSync(
    id: string,
    args: string[],
    opts: {
      timeoutMs?: number;
      maxOutput?: number;
      namespace?: string;
      env?: string[];
      cwd?: string;
      user?: ExecUser;
      /** Bytes written to the command's stdin, which is then closed. */
      stdin?: Uint8Array;
      /** Called once the process runs (for exec-started events). */
      onStart?: (pid: number | undefined) => void;
    } = {},
  ): Promise<ExecSyncResult> {
    const max = opts.maxOutput ?? 16 * 1024 * 1024;
    const p = await this.exec(
      id,
      { args, env: opts.env, cwd: opts.cwd, user: opts.user, stdin: opts.stdin !== undefined },
      opts.namespace ?? "default",
    );
    opts.onStart?.(await p.pid());
    if (p.stdin) {
      const w = p.stdin.getWriter();
      if (opts.stdin?.length) await w.write(opts.stdin).catch(() => {});
      await w.close().catch(() => {});
    }
    let truncated = false;
    const collect = async (s: ReadableStream<Uint8Array>) => {
      const parts: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of s) {
        const room = max - size;
        if (room <= 0) {
          truncated = true;
          continue;
        }
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        if (part.length < chunk.length) truncated = true;
        parts.push(part);
        size += part.length;
      }
      const out = new Uint8Array(size);
      let off = 0;
      for (const part of parts) {
        out.set(part, off);
        off += part.length;
      }
      return out;
    };
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (opts.timeoutMs && opts.timeoutMs > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        p.kill("SIGKILL").catch(() => {});
      }, opts.timeoutMs);
    }
    try {
      const [stdout, stderr, exitCode] = await Promise.all([
        collect(p.stdout),
        collect(p.stderr),
        p.exitCode,
      ]);
      if (timedOut) {
        throw new DeadlineExceededError(
          `exec ${JSON.stringify(args)} in container "${id}" timed out after ${opts.timeoutMs} ms`,
        );
      }
      return { exitCode, stdout, stderr, truncated };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Attaches to the container's output (and stdin) through conmon's attach socket,
   * `<stateDir>/attach/<cuuid>/attach` (`SOCK_SEQPACKET`): every packet conmon sends is one
   * byte naming the pipe (2 stdout, 3 stderr; a terminal's output is stdout) and the data;
   * what the client writes is the container's stdin, and shutting down the write side ends it
   * (conmon closes the container's stdin unless it runs with --leave-stdin-open, i.e. unless
   * stdinOnce is false).
   *
   * Fallback when the socket cannot be reached: output is the tail of the CRI log file (lines
   * as conmon wrote them, from now on; partial lines joined), and stdin (non-TTY containers
   * created with stdin) is the container init's stdin pipe opened through /proc/<pid>/fd/0.
   */
  async attach(id: string, namespace = "default"): Promise<AttachStreams> {
    const meta = await this.#meta(id, namespace);
    const st = await this.state(id, namespace);
    if (st.status === "stopped" || st.status === "unknown") {
      throw new FailedPreconditionError(`cannot attach to container "${id}": it is ${st.status}`);
    }
    const dir = this.containerDir(id, namespace);
    const sockPath = `${this.stateDir}/attach/${meta.cuuid}/attach`;
    if (await exists(sockPath)) {
      try {
        return attachSocket(sockPath, meta.stdin);
      } catch (e) {
        this.#log?.warn("attach socket unusable, tailing the log", { id, error: String(e) });
      }
    }
    let stdin: WritableStream<Uint8Array> | undefined;
    if (meta.stdin && !meta.tty && st.pid > 0) {
      const file = await Deno.open(`/proc/${st.pid}/fd/0`, { write: true });
      // FsFile.writable was seen to hold small writes on a pipe until close: write directly.
      stdin = new WritableStream<Uint8Array>({
        async write(chunk) {
          for (let off = 0; off < chunk.length;) off += await file.write(chunk.subarray(off));
        },
        close() {
          file.close();
        },
        abort() {
          file.close();
        },
      });
    }
    // Position at the end before returning, so nothing written after attach() is missed.
    const log = await Deno.open(meta.logPath, { read: true });
    const ino = (await log.stat()).ino;
    await log.seek(0, Deno.SeekMode.End);
    const output = tailLog(
      meta.logPath,
      log,
      ino,
      () => Promise.resolve(this.#exit(dir, id) !== undefined),
    );
    return { stdin, output };
  }

  /**
   * Rebuilds the driver's view after a daemon restart. Containers whose conmon lives (or that
   * exited and left an exit file) are reported as they are; half-created ones (no conmon and no
   * exit file, runc state missing or stuck in "created") are cleaned up and reported "removed".
   * Nothing running is ever stopped.
   */
  async recover(): Promise<RecoveredContainer[]> {
    const out: RecoveredContainer[] = [];
    let namespaces: string[] = [];
    try {
      for await (const e of Deno.readDir(this.stateDir)) {
        if (e.isDirectory && e.name !== "attach" && !(e.name in this.handlers)) {
          namespaces.push(e.name);
        }
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    namespaces = namespaces.sort();
    for (const namespace of namespaces) {
      for await (const e of Deno.readDir(`${this.stateDir}/${namespace}`)) {
        if (!e.isDirectory) continue;
        const id = e.name;
        const dir = this.containerDir(id, namespace);
        const f = containerFiles(dir);
        let meta: Meta;
        try {
          meta = JSON.parse(await Deno.readTextFile(f.meta)) as Meta;
        } catch {
          // No record: a create that died before writing it. Nothing of ours can run there.
          this.#log?.warn("removing container state without meta.json", { id, namespace });
          this.#forget(dir);
          await Deno.remove(dir, { recursive: true }).catch(() => {});
          out.push({ id, namespace, status: "removed" });
          continue;
        }
        const exit = await this.#exit(dir, id);
        if (exit) {
          out.push({ id, namespace, status: "stopped", exitCode: exit.code });
          continue;
        }
        const conmonPid = await readPidFile(f.conmonPid);
        const conmonAlive = await isConmonAlive(conmonPid, dir);
        const halfCreated = meta.pid === undefined || !await exists(f.pid);
        if (halfCreated && conmonAlive) {
          // A create cut short while conmon ran `runc create`: its caller never got the pid,
          // so nothing may keep the container. runc must be done first (a delete racing a
          // create in flight leaves the container behind), then it is undone like any other.
          await this.#createSettled(conmonPid, dir);
          this.#log?.warn("undoing a container whose create was cut short", { id, namespace });
          await this.#cleanup(dir, meta, this.#runc(meta));
          out.push({ id, namespace, status: "removed" });
          continue;
        }
        if (!conmonAlive) {
          let st: ContainerState | undefined;
          try {
            st = await this.state(id, namespace);
          } catch { /* treated as gone */ }
          if (st && !halfCreated && (st.status === "running" || st.status === "paused")) {
            // The process lives without its monitor: keep it (never stop a container because
            // we restarted); wait() will report 255 once it is gone.
            this.#log?.warn("container running without conmon", { id, namespace });
            out.push({ id, namespace, status: st.status, pid: st.pid });
            continue;
          }
          if (st?.status === "stopped" && st.exitCode !== undefined) {
            out.push({ id, namespace, status: "stopped", exitCode: st.exitCode });
            continue;
          }
          this.#log?.warn("cleaning up half-created container", { id, namespace });
          await this.#cleanup(dir, meta, this.#runc(meta));
          out.push({ id, namespace, status: "removed" });
          continue;
        }
        const st = await this.state(id, namespace);
        out.push({ id, namespace, status: st.status, pid: st.pid, exitCode: st.exitCode });
      }
    }
    return out;
  }
}

/** The largest stdin packet sent to conmon (it reads at most 32 KiB - 1 per packet). */
const ATTACH_STDIN_PACKET = 4096;

/** Connects to conmon's attach socket; see {@link ConmonRuntime.attach}. */
function attachSocket(path: string, withStdin: boolean): AttachStreams {
  const fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK);
  try {
    connectUnix(fd, path);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  let refs = withStdin ? 2 : 1;
  const release = () => {
    if (--refs === 0) closeFd(fd);
  };
  const ac = new AbortController();
  let reading: Promise<number> | undefined;
  let outputDone = false;
  const finishOutput = () => {
    if (outputDone) return;
    outputDone = true;
    release();
  };
  const output = new ReadableStream<AttachChunk>({
    async pull(c) {
      const buf = new Uint8Array(32 * 1024);
      for (;;) {
        let n: number;
        try {
          reading = readAsync(fd, buf, { signal: ac.signal });
          n = await reading;
        } catch (e) {
          if (!ac.signal.aborted) c.error(e);
          finishOutput();
          return;
        }
        if (n === 0) {
          c.close();
          finishOutput();
          return;
        }
        if (n === 1) continue;
        c.enqueue({ stream: buf[0] === 3 ? "stderr" : "stdout", data: buf.slice(1, n) });
        return;
      }
    },
    async cancel() {
      ac.abort();
      await reading?.catch(() => {});
      finishOutput();
    },
  }, { highWaterMark: 0 });
  let stdinDone = false;
  const endStdin = () => {
    if (stdinDone) return;
    stdinDone = true;
    try {
      shutdown(fd, SHUT_WR);
    } catch { /* conmon already gone */ }
    release();
  };
  const stdin = withStdin
    ? new WritableStream<Uint8Array>({
      async write(chunk) {
        for (let off = 0; off < chunk.length; off += ATTACH_STDIN_PACKET) {
          await writeAsync(fd, chunk.subarray(off, off + ATTACH_STDIN_PACKET));
        }
      },
      close: endStdin,
      abort: endStdin,
    })
    : undefined;
  return { stdin, output };
}

/** Sends a signal by number to a host pid, ignoring a process that already left. */
function killPid(pid: number, sig: number): void {
  try {
    Deno.kill(pid, signalName(sig) as Deno.Signal);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * One parsed line of a CRI log file: `<RFC3339Nano> <stream> <F|P> <content>`.
 *
 * @example
 * ```ts
 * import { parseCriLogLine } from "./driver.ts";
 * parseCriLogLine("2024-01-01T00:00:00.000000000Z stdout F hello");
 * // { time: "2024-01-01T00:00:00.000000000Z", stream: "stdout", partial: false, content: "hello" }
 * ```
 */
export function parseCriLogLine(
  line: string,
): { time: string; stream: "stdout" | "stderr"; partial: boolean; content: string } | undefined {
  const m = /^(\S+) (stdout|stderr) ([PF]) ?(.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1], stream: m[2] as "stdout" | "stderr", partial: m[3] === "P", content: m[4] };
}

/**
 * Follows a CRI log file from the position of `opened`, emitting each line's content (a newline added
 * after full lines) until `isDone` says the writer finished and the file is drained. Reopens
 * the path when it was replaced (log rotation).
 */
function tailLog(
  path: string,
  opened: Deno.FsFile,
  openedIno: number | null,
  isDone: () => Promise<boolean>,
): ReadableStream<AttachChunk> {
  const enc = new TextEncoder();
  let file: Deno.FsFile | undefined = opened;
  let ino = openedIno;
  let pending = "";
  let stopped = false;
  const buf = new Uint8Array(64 * 1024);
  const dec = new TextDecoder();
  return new ReadableStream<AttachChunk>({
    async pull(controller) {
      for (;;) {
        if (stopped || !file) return;
        const n = await file.read(buf);
        if (n) {
          pending += dec.decode(buf.subarray(0, n), { stream: true });
          let emitted = false;
          let nl: number;
          while ((nl = pending.indexOf("\n")) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            const rec = parseCriLogLine(line);
            if (!rec) continue;
            controller.enqueue({
              stream: rec.stream,
              data: enc.encode(rec.partial ? rec.content : rec.content + "\n"),
            });
            emitted = true;
          }
          if (emitted) return;
          continue;
        }
        // At the end: rotated? finished? else wait for more.
        try {
          const st = await Deno.stat(path);
          if (st.ino !== ino) {
            file.close();
            file = await Deno.open(path, { read: true });
            ino = (await file.stat()).ino;
            continue;
          }
        } catch { /* between rename and reopen */ }
        if (await isDone()) {
          // conmon drains stdio before writing the exit file: one last read, then end.
          const last = await file.read(buf);
          if (last) {
            pending += dec.decode(buf.subarray(0, last), { stream: true });
            continue;
          }
          stopped = true;
          file.close();
          controller.close();
          return;
        }
        await sleep(100);
      }
    },
    cancel() {
      stopped = true;
      file?.close();
    },
  });
}
