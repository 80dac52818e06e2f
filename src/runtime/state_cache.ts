/**
 * What the driver remembers between calls about the containers in its state directory: each
 * container's meta.json record (parsed once: state() is polled constantly — the kubelet lists
 * every container every second), which directories have no record, and which containers were
 * seen running with which init process. Only the driver writes meta.json, through
 * {@link StateCache.writeMeta}, so the cache never goes stale behind its back; the daemon's
 * restart empties it and everything is read again from the files.
 *
 * @example
 * ```ts
 * import { StateCache } from "./state_cache.ts";
 * const cache = new StateCache();
 * const meta = await cache.meta("/run/k8scontainerd/runtime/default/c1", "c1", "default");
 * meta.paused = true;
 * await cache.writeMeta("/run/k8scontainerd/runtime/default/c1", meta);
 * ```
 *
 * @module
 */
import { NotFoundError } from "../errdefs/errors.ts";
import { containerFiles } from "./conmon.ts";
import { processStart } from "./process_start.ts";
import type { ContainerState } from "./runtime.ts";

/** The driver-owned record in meta.json. */
export interface ContainerMeta {
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

/** An init process seen alive: its pid and its start time in /proc (tells a reused pid). */
export interface SeenProcess {
  pid: number;
  start: string;
}

/**
 * Parsed meta files and what was seen running, by container directory. Lifecycle: filled as
 * containers are looked at; {@link forget} drops a directory when its container is deleted.
 */
export class StateCache {
  #meta = new Map<string, ContainerMeta>();
  /**
   * Container dirs found without a meta.json (no task: a CRI container created, never started)
   * and not written since. The kubelet lists every container every second; each of these cost a
   * failed file read and a thrown NotFoundError per list (49 ms p50 for ListContainers with 900
   * created containers). Only this daemon writes meta.json, through writeMeta, which clears it.
   */
  #absent = new Set<string>();
  /**
   * Containers this daemon has seen running: their init's pid and start time. While /proc still
   * shows that very process, the container runs and its exit file cannot exist yet (conmon
   * writes it after reaping the process), so state() and the exit watch skip reading it. Only
   * ever filled by a full check (exit file absent, process alive), so it starts empty after a
   * restart and a container that exited meanwhile is found by its exit file.
   */
  #running = new Map<string, SeenProcess>();
  /**
   * Containers whose end a pidfd is watching right now (see the driver's wait()): until it
   * fires they run, and state() need not even read /proc (ListContainers asks for every
   * container at once).
   */
  #watched = new Set<string>();
  /**
   * Containers seen created (not started) by a full check, with their init: while that very
   * process lives and nothing has written the record since (start() does), they are still
   * created. The kubelet lists them every second while pods start, and each full check costs a
   * failed exit-file read and a stat of runc's exec.fifo.
   */
  #created = new Map<string, SeenProcess>();
  /**
   * The final state of containers whose exit was recorded (conmon's exit file read, the OOM
   * verdict made): an exit never changes, so it is answered from here until the record is
   * written again or the container deleted. Frozen: handed to every caller.
   */
  #stopped = new Map<string, Readonly<ContainerState>>();
  /**
   * The last running or created answer per container, with the record it was made from (the
   * record is replaced on every write): a list of 1000 then builds nothing per entry, and its
   * callers can tell an unchanged answer by identity.
   */
  #shared = new Map<string, { meta: ContainerMeta; state: Readonly<ContainerState> }>();

  /** The container's record, a copy the caller may change and write back; NotFound without one. */
  async meta(dir: string, id: string, namespace: string): Promise<ContainerMeta> {
    const hit = this.#meta.get(dir);
    // A copy: callers change it and then write it back through writeMeta.
    if (hit) return structuredClone(hit);
    try {
      const meta = JSON.parse(await Deno.readTextFile(containerFiles(dir).meta)) as ContainerMeta;
      this.#meta.set(dir, structuredClone(meta));
      return meta;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        // Unless a write landed while this read was in flight.
        if (!this.#meta.has(dir)) this.#absent.add(dir);
        throw new NotFoundError(`container "${id}" in namespace "${namespace}"`);
      }
      throw e;
    }
  }

  /** The cached record itself, for readers that change nothing (no copy, no file read). */
  peek(dir: string): ContainerMeta | undefined {
    return this.#meta.get(dir);
  }

  /** Writes meta.json atomically (temporary file, rename) and caches what was written. */
  async writeMeta(dir: string, meta: ContainerMeta): Promise<void> {
    const f = containerFiles(dir);
    this.#absent.delete(dir);
    await Deno.writeTextFile(`${f.meta}.tmp`, JSON.stringify(meta, null, 2));
    await Deno.rename(`${f.meta}.tmp`, f.meta);
    this.#meta.set(dir, structuredClone(meta));
    this.#absent.delete(dir);
    // What was seen of the old record's task no longer holds (start() clears "created").
    this.#created.delete(dir);
    this.#stopped.delete(dir);
  }

  /** The directory was found without a record and nothing has written one since. */
  knownAbsent(dir: string): boolean {
    return this.#absent.has(dir) && !this.#meta.has(dir);
  }

  /** Remembers the container's init as seen alive by a full check. */
  sawRunning(dir: string, seen: SeenProcess): void {
    this.#running.set(dir, seen);
  }

  /** The init process last seen alive, if any. */
  seenRunning(dir: string): SeenProcess | undefined {
    return this.#running.get(dir);
  }

  /** True when the container was seen running and the same init process still lives. */
  stillRunning(dir: string, meta: ContainerMeta): boolean {
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

  /**
   * Counts the container as running until `exited` settles. Forgotten in the same microtask run
   * as the exit is seen, before any later state().
   */
  watch(dir: string, exited: Promise<void>): void {
    this.#watched.add(dir);
    exited.then(() => this.#watched.delete(dir));
  }

  /** Remembers the container as seen created, with its init alive. */
  sawCreated(dir: string, seen: SeenProcess): void {
    this.#created.set(dir, seen);
  }

  /** True when the container was seen created and, not started since, the same init lives. */
  stillCreated(dir: string, meta: ContainerMeta): boolean {
    const seen = this.#created.get(dir);
    if (!seen) return false;
    if (!meta.startedAt && seen.pid === meta.pid && processStart(seen.pid) === seen.start) {
      return true;
    }
    this.#created.delete(dir);
    return false;
  }

  /** Keeps the container's final state (its exit recorded), frozen. */
  sawStopped(dir: string, state: ContainerState): void {
    this.#running.delete(dir);
    this.#created.delete(dir);
    this.#shared.delete(dir);
    this.#stopped.set(dir, freeze(state));
  }

  /**
   * The shared answer for a running or created container: the last one while it was made from
   * this very record with this status, else `make()`'s, frozen and kept.
   */
  shared(
    dir: string,
    meta: ContainerMeta,
    status: "running" | "created",
    make: () => ContainerState,
  ): Readonly<ContainerState> {
    const hit = this.#shared.get(dir);
    if (hit && hit.meta === meta && hit.state.status === status) return hit.state;
    const state = freeze(make());
    this.#shared.set(dir, { meta, state });
    return state;
  }

  /** The container's final state, when its exit was recorded. */
  seenStopped(dir: string): Readonly<ContainerState> | undefined {
    return this.#stopped.get(dir);
  }

  /** Drops everything known about the directory (its container was deleted). */
  forget(dir: string): void {
    this.#absent.delete(dir);
    this.#meta.delete(dir);
    this.#running.delete(dir);
    this.#created.delete(dir);
    this.#stopped.delete(dir);
    this.#shared.delete(dir);
  }
}

/** A state handed to many callers: frozen, its labels too. */
function freeze(state: ContainerState): Readonly<ContainerState> {
  return Object.freeze({ ...state, labels: Object.freeze({ ...state.labels }) });
}
