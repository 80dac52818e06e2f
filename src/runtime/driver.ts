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
 * It implements {@link ContainerRuntime} (runtime.ts, where the lifecycle is described), and
 * this file is that lifecycle: {@link ConmonRuntime.create} (conmon runs `runc create`, the pid
 * comes back over the sync pipe) → {@link ConmonRuntime.start} → {@link ConmonRuntime.wait} /
 * {@link ConmonRuntime.kill} → {@link ConmonRuntime.delete}. Containers survive the daemon:
 * on start-up {@link ConmonRuntime.recover} rebuilds the view from this directory. Beside it:
 * state_cache.ts and exit_cache.ts (what is remembered between calls), exec.ts (`runc exec`),
 * attach.ts (conmon's attach socket, or the log), cri_log.ts (the log format), oom_killed.ts.
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
} from "../errdefs/errors.ts";
import type { Logger } from "../log/logger.ts";
import { close as closeFd, closeOnExecAll, pidfdOpen, pidfdSendSignal } from "../../ffi/mod.ts";
import {
  conmonArgs,
  containerFiles,
  isConmonAlive,
  readPidFile,
  spawnConmon,
  writeFifo,
} from "./conmon.ts";
import { execFifoPath, isFifo, speaksExecFifo, startThroughExecFifo } from "./exec_fifo.ts";
import { ProcessExits } from "./process_exits.ts";
import { processStart } from "./process_start.ts";
import {
  type LinuxResources,
  Runc,
  type RuncStatus,
  runtimeMessage,
  signalNumber,
} from "./runc.ts";
import type {
  AttachStreams,
  ContainerRuntime,
  ContainerState,
  CreateOptions,
  ExecOptions,
  ExecProcess,
  ExecSyncOptions,
  ExecSyncResult,
  ExitStatus,
  RecoveredContainer,
} from "./runtime.ts";
import { type ContainerMeta as Meta, StateCache } from "./state_cache.ts";
import { ExitCache, type RecordedExit } from "./exit_cache.ts";
import { oomKilled } from "./oom_killed.ts";
import { cgroupStatsOfPid } from "./cgroup_stats.ts";
import { collectExec, execPiped, execProcessSpec, execTty } from "./exec.ts";
import { attachFromLog, attachSocket } from "./attach.ts";
import { exitWake } from "./cri_log.ts";

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

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** "slice:prefix:name" → "prefix-name.scope", the unit runc asks systemd for. */
function systemdScopeOf(cgroupsPath: string | undefined): string | undefined {
  const parts = cgroupsPath?.split(":");
  return parts?.length === 3 ? `${parts[1]}-${parts[2]}.scope` : undefined;
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

/** How long after an exit its OOM verdict may still change (conmon's oom file coming late). */
const OOM_VERDICT_SETTLED_MS = 2000;

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
export class ConmonRuntime implements ContainerRuntime {
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

  /** Parsed meta files and what was seen running, by container dir (see state_cache.ts). */
  readonly #cache = new StateCache();
  /** conmon's exit files, read once each (see exit_cache.ts). */
  readonly #recordedExits = new ExitCache();

  #forget(dir: string): void {
    this.#cache.forget(dir);
    this.#recordedExits.forget(dir);
  }

  #meta(id: string, namespace: string): Promise<Meta> {
    return this.#cache.meta(this.containerDir(id, namespace), id, namespace);
  }

  /**
   * True when the container is known to have no task here (its state was looked up, found
   * absent, and nothing has created it since): state() would throw not-found. A cheap check
   * for callers that ask about many containers; false means "look".
   */
  knownAbsent(id: string, namespace = "default"): boolean {
    return this.#cache.knownAbsent(this.containerDir(id, namespace));
  }

  knownState(id: string, namespace = "default"): Readonly<ContainerState> | undefined {
    const dir = this.containerDir(id, namespace);
    if (this.#creating.has(dir)) return undefined;
    const meta = this.#cache.peek(dir);
    if (!meta?.pid) return undefined;
    const stopped = this.#cache.seenStopped(dir);
    if (stopped) return stopped;
    if (this.#cache.stillRunning(dir, meta)) return this.#sharedState(dir, meta, "running");
    if (this.#cache.stillCreated(dir, meta)) return this.#sharedState(dir, meta, "created");
    return undefined;
  }

  #sharedState(dir: string, meta: Meta, status: "running" | "created") {
    return this.#cache.shared(dir, meta, status, () => ({
      ...this.#stateBase(meta.id, meta.namespace, meta),
      status,
      pid: meta.pid!,
      oomKilled: false,
    }));
  }

  /** What every state answer carries, from the container's meta. */
  #stateBase(id: string, namespace: string, meta: Meta) {
    return {
      id,
      namespace,
      createdAt: new Date(meta.createdAt),
      startedAt: meta.startedAt ? new Date(meta.startedAt) : undefined,
      logPath: meta.logPath,
      handler: meta.handler,
      labels: { ...meta.labels },
    };
  }

  #writeMeta(dir: string, meta: Meta): Promise<void> {
    return this.#cache.writeMeta(dir, meta);
  }

  #exit(dir: string, id: string): RecordedExit | undefined {
    return this.#recordedExits.read(dir, id);
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
    this.#creating.add(dir);
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
    } finally {
      this.#creating.delete(dir);
    }
  }

  /**
   * Containers whose create runs in this process: they have no task yet. Asked meanwhile,
   * state() answered with a `runc state` and then waited up to 2 s for an exit file from the
   * conmon that was still creating it, once per such container in a list.
   */
  readonly #creating = new Set<string>();

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

  /**
   * The container's state: runc's status while it lives, conmon's exit file once it exited
   * (exit code, finish time, OOM). "unknown" when neither runc nor conmon can tell.
   */
  async state(id: string, namespace = "default"): Promise<ContainerState> {
    const dir = this.containerDir(id, namespace);
    if (this.#creating.has(dir)) {
      throw new NotFoundError(`container "${id}" in namespace "${namespace}" is being created`);
    }
    const final = this.#cache.seenStopped(dir);
    if (final) return { ...final, labels: { ...final.labels } };
    // Read only: the cached meta itself (no copy), as nothing here changes it.
    const meta = this.#cache.peek(dir) ?? await this.#meta(id, namespace);
    const f = containerFiles(dir);
    const base = this.#stateBase(id, namespace, meta);
    // Hottest path (the kubelet lists every container every second): seen running, same process.
    if (meta.pid && this.#cache.stillRunning(dir, meta)) {
      return { ...base, status: "running", pid: meta.pid, oomKilled: false };
    }
    const stopped = async (): Promise<ContainerState | undefined> => {
      const exit = await this.#exit(dir, id);
      if (!exit) return undefined;
      const oom = await oomKilled(f.oom, exit.code, meta.systemdScope);
      const state: ContainerState = {
        ...base,
        status: "stopped",
        pid: 0,
        exitCode: exit.code,
        finishedAt: exit.at,
        oomKilled: oom,
        reason: oom ? "OOMKilled" : exit.code === 0 ? "Completed" : "Error",
      };
      // Kept once final: an OOM verdict of yes, or an exit old enough that conmon's oom file,
      // which may follow the exit file, would be there by now. Not when the record was
      // rewritten meanwhile (a delete and a new create of the id).
      const final = oom || Date.now() - exit.at.getTime() > OOM_VERDICT_SETTLED_MS;
      if (final && this.#cache.peek(dir) === meta) this.#cache.sawStopped(dir, state);
      return state;
    };
    const done = await stopped();
    if (done) return done;
    // Fast path, hot for the kubelet's polling: a started, unpaused container whose init
    // process is alive is running — no `runc state` process needed. conmon writes the exit
    // file as soon as it reaps the process, and that was checked above.
    if (meta.startedAt && meta.pid && !meta.paused) {
      const start = processStart(meta.pid);
      if (start !== undefined) {
        this.#cache.sawRunning(dir, { pid: meta.pid, start });
        return { ...base, status: "running", pid: meta.pid, oomKilled: false };
      }
    }
    // Created, not started: runc's own test (its init alive, its exec.fifo still there, which
    // start removes) without a `runc state` process. Under a kubelet starting 110 pods, the
    // created-but-not-started containers each cost ListContainers a runc run, serially: the
    // kubelet's housekeeping, which lists every container from its main loop, then stalled
    // it for 13 s.
    if (!meta.startedAt && meta.pid && speaksExecFifo(meta.runtimePath)) {
      const start = processStart(meta.pid);
      if (start !== undefined && isFifo(execFifoPath(meta.runtimeRoot, id))) {
        this.#cache.sawCreated(dir, { pid: meta.pid, start });
        return { ...base, status: "created", pid: meta.pid, oomKilled: false };
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

  /**
   * Resolves when the container has exited, with conmon's exit code (also at once for an
   * already-exited container). A monitor that died without an exit file yields 255, as CRI-O
   * reports it. `signal` aborts the wait.
   */
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
      if (meta.pid && this.#cache.stillRunning(dir, meta)) {
        signal?.throwIfAborted();
        const exited = (await this.#exitOf(meta.pid, dir))?.exited;
        if (exited) {
          this.#cache.watch(dir, exited);
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
          oomKilled: await oomKilled(f.oom, exit.code, meta.systemdScope),
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
    const seen = this.#cache.seenRunning(dir);
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

  /**
   * One cgroup statistics sample in runc's `events --stats` shape, read from the cgroup files
   * of the container's init (no runtime process per sample; crun has no `events --stats`).
   * FailedPrecondition when the container is not running.
   */
  async stats(id: string, namespace = "default"): Promise<Record<string, unknown>> {
    const st = await this.state(id, namespace);
    if (!st.pid || (st.status !== "running" && st.status !== "paused" && st.status !== "created")) {
      throw new FailedPreconditionError(`container "${id}" is not running (${st.status})`);
    }
    return { ...await cgroupStatsOfPid(st.pid) };
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

  /**
   * Runs a process inside a running container (`runc exec --process`, in the foreground so
   * runc's exit status is the process's). Without a terminal stdio are pipes; with `tty` a pty
   * of the driver's own stands in for the console runc 1.1 will not hand over (see exec.ts).
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
    const files = {
      processFile: `${dir}/exec-${tag}.json`,
      pidFile: `${dir}/exec-${tag}.pid`,
      logFile: `${dir}/exec-${tag}.log`,
    };
    const spec = await execProcessSpec(containerFiles(dir).config, o);
    await Deno.writeTextFile(files.processFile, JSON.stringify(spec));
    const runc = this.#runc(meta);
    closeOnExecAll();
    return o.tty
      ? execTty(id, meta.runtimePath, runc, { ...files, stdin: o.stdin })
      : execPiped(id, runc, files, o.stdin);
  }

  /**
   * Runs a command to completion and collects its output (CRI ExecSync): after `timeoutMs` the
   * process is killed and a DeadlineExceeded error names the command; output past `maxOutput`
   * bytes per stream is dropped and reported as truncated.
   */
  async execSync(
    id: string,
    args: string[],
    opts: ExecSyncOptions = {},
  ): Promise<ExecSyncResult> {
    const p = await this.exec(
      id,
      { args, env: opts.env, cwd: opts.cwd, user: opts.user, stdin: opts.stdin !== undefined },
      opts.namespace ?? "default",
    );
    return await collectExec(p, id, args, opts);
  }

  /**
   * Attaches to the container's output (and stdin) through conmon's attach socket,
   * `<stateDir>/attach/<cuuid>/attach` (see attach.ts). Closing stdin ends the container's
   * stdin unless it was created with stdinOnce false.
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
    return await attachFromLog(
      meta.logPath,
      meta.stdin && !meta.tty && st.pid > 0 ? st.pid : undefined,
      () => Promise.resolve(this.#exit(dir, id) !== undefined),
      // The shared per-container wait (one however many follow).
      exitWake(this.wait(id, namespace)),
    );
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
