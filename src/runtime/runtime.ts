/**
 * The container runtime the services depend on: a small interface over one OCI runtime with a
 * monitor per container. `ConmonRuntime` (driver.ts) implements it with conmon and runc;
 * a service test may pass a fake of its own where the test is about the service's rules.
 *
 * Lifecycle of one container, named by its id within a namespace:
 *
 * ```
 * create ──► created ──start──► running ──(exit, kill)──► stopped ──delete──► gone
 *                                  │ ▲
 *                            pause │ │ resume
 *                                  ▼ │
 *                                paused
 * ```
 *
 * `create` returns once the container's init exists (waiting: the user process has not run);
 * `start` runs the user process; `wait` resolves when it has exited (at once when it already
 * has); `kill` signals it; `delete` removes everything the runtime kept for it (a live
 * container only with `force`). `exec`, `execSync` and `attach` need a running container;
 * `state` answers at every step until `delete`, then fails with NotFound. Containers outlive
 * the daemon: after a restart `recover` reports what is still there and cleans up what a
 * killed create left half done.
 *
 * @example
 * ```ts
 * import type { ContainerRuntime } from "./runtime.ts";
 * async function runToCompletion(rt: ContainerRuntime, id: string, bundle: string) {
 *   await rt.create({ id, bundle, logPath: `/var/log/${id}.log`, tty: false, stdin: false,
 *     stdinOnce: false });
 *   await rt.start(id);
 *   const { exitCode } = await rt.wait(id);
 *   await rt.delete(id);
 *   return exitCode;
 * }
 * ```
 *
 * @module
 */
import type { LinuxResources } from "./runc.ts";

/** What {@link ContainerRuntime.create} needs. */
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

/** What {@link ContainerRuntime.wait} resolves to. */
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

/** What {@link ContainerRuntime.exec} runs. */
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

/** What {@link ContainerRuntime.execSync} returns. */
export interface ExecSyncResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Output beyond `maxOutput` was dropped. */
  truncated: boolean;
}

/** One chunk read by {@link ContainerRuntime.attach}. */
export interface AttachChunk {
  stream: "stdout" | "stderr";
  data: Uint8Array;
}

/** What {@link ContainerRuntime.attach} returns. */
export interface AttachStreams {
  /**
   * Present when the container was created with stdin. Closing it ends the container's stdin
   * when the container was created with stdinOnce (conmon closes it as the client leaves).
   */
  stdin?: WritableStream<Uint8Array>;
  /** The container's output from now on; ends after the container exited. */
  output: ReadableStream<AttachChunk>;
}

/** One container found by {@link ContainerRuntime.recover}. */
export interface RecoveredContainer {
  id: string;
  namespace: string;
  /** "removed": it was half-created and has been cleaned up. */
  status: ContainerStatus | "removed";
  exitCode?: number;
  pid?: number;
}

/** What {@link ContainerRuntime.execSync} takes besides the command. */
export interface ExecSyncOptions {
  /** Kill the process after this long and fail with DeadlineExceeded. */
  timeoutMs?: number;
  /** Bytes kept per stream (default 16 MiB); the rest is dropped and reported as truncated. */
  maxOutput?: number;
  namespace?: string;
  env?: string[];
  cwd?: string;
  user?: ExecUser;
  /** Bytes written to the command's stdin, which is then closed. */
  stdin?: Uint8Array;
  /** Called once the process runs (for exec-started events). */
  onStart?: (pid: number | undefined) => void;
}

/**
 * Runs containers from OCI bundles and keeps track of them. Every method takes the container
 * id and its namespace (default "default"); ids are unique per namespace. Errors are typed
 * (errdefs): NotFound for an unknown container, FailedPrecondition for one in the wrong state
 * (naming the state), InvalidArgument for a bad request.
 */
export interface ContainerRuntime {
  /** Creates the container from `opts.bundle`; resolves with its init's host pid. */
  create(opts: CreateOptions): Promise<{ pid: number }>;
  /** Starts the user process of a created container. */
  start(id: string, namespace?: string): Promise<void>;
  /** The container's state: status, pid, and once stopped its exit code, time and reason. */
  state(id: string, namespace?: string): Promise<ContainerState>;
  /**
   * True when the container is known to have no task here (state() would throw NotFound):
   * a cheap check for callers that ask about many containers; false means "look".
   */
  knownAbsent(id: string, namespace?: string): boolean;
  /**
   * The state without waiting for anything, when it is known: the container was seen running
   * (or created) and the same init still lives, or its exit was recorded. Undefined means "ask
   * state()". For callers that ask about many containers at once (a list of 1000 spent its
   * time in one promise chain per entry). The answer may be shared: do not change it.
   */
  knownState(id: string, namespace?: string): Readonly<ContainerState> | undefined;
  /** Resolves once the container has exited (at once if it has); `signal` aborts the wait. */
  wait(id: string, namespace?: string, signal?: AbortSignal): Promise<ExitStatus>;
  /** Signals the container's init, or with `all` every process in it. */
  kill(
    id: string,
    signal?: string | number,
    opts?: { all?: boolean; namespace?: string },
  ): Promise<void>;
  /** Removes the container and everything kept for it; a live one needs `force`. */
  delete(id: string, opts?: { force?: boolean; namespace?: string }): Promise<void>;
  /** Freezes every process of the container. */
  pause(id: string, namespace?: string): Promise<void>;
  /** Thaws a paused container. */
  resume(id: string, namespace?: string): Promise<void>;
  /** Host pids of the container's processes. */
  ps(id: string, namespace?: string): Promise<number[]>;
  /** Applies new `linux.resources` to a live container. */
  update(id: string, resources: LinuxResources, namespace?: string): Promise<void>;
  /** One cgroup statistics sample, in runc's `events --stats` shape (read from the cgroup files). */
  stats(id: string, namespace?: string): Promise<Record<string, unknown>>;
  /** Closes and reopens the container's log file (after the kubelet rotated it). */
  reopenLog(id: string, namespace?: string): Promise<void>;
  /** Resizes the terminal of a container created with `tty`. */
  resize(id: string, size: { width: number; height: number }, namespace?: string): Promise<void>;
  /** Runs a process in a running container, its stdio as web streams. */
  exec(id: string, o: ExecOptions, namespace?: string): Promise<ExecProcess>;
  /** Runs a command to completion and collects its output (CRI ExecSync). */
  execSync(id: string, args: string[], opts?: ExecSyncOptions): Promise<ExecSyncResult>;
  /** Attaches to the container's output (and stdin, when created with it) from now on. */
  attach(id: string, namespace?: string): Promise<AttachStreams>;
  /** After a daemon restart: what is still there; half-created containers are cleaned up. */
  recover(): Promise<RecoveredContainer[]>;
}
