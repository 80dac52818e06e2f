/**
 * The restart manager: starts a new task for a container whose task exited when its restart
 * policy says so (`run --restart`), as containerd's restart monitor does from labels and
 * docker/nerdctl users expect.
 *
 * - The policy is a label on the container ({@link RESTART_POLICY_LABEL}: always,
 *   unless-stopped, on-failure or on-failure:N), set when it is created.
 * - On a `/tasks/exit` event the manager decides: always and unless-stopped restart whatever
 *   the exit code, on-failure only after a non-zero one and, with N, at most N times in a row
 *   ({@link RESTART_COUNT_LABEL} counts them; a start by the user resets it).
 * - A stop by the user (kill, task delete, rm) marks the container
 *   ({@link USER_STOPPED_LABEL}) before the signal goes: its exit is not restarted, nor is a
 *   restart waiting out its backoff.
 * - Backoff: 100 ms before the first restart, doubling up to 10 s; a task that ran 10 s or
 *   longer starts the backoff again from 100 ms.
 * - At daemon start ({@link RestartManager.recover}): always and unless-stopped containers
 *   whose task is gone or stopped are started again — always even after a stop by the user
 *   (docker's rule: a daemon restart brings it back), unless-stopped only when not stopped by
 *   the user; on-failure ones whose task stopped with a non-zero exit get their due restart.
 *
 * The new task writes on to the same log (the container service keeps its path).
 *
 * @example
 * ```ts
 * const restarts = new RestartManager(containerService, events, log);
 * restarts.start();          // before the container service's recovery publishes exits
 * await containerService.recover();
 * await restarts.recover();  // tasks that exited while the daemon was down
 * restarts.stop();
 * ```
 *
 * @module
 */
import type { ContainerService } from "./service.ts";
import type { Exchange } from "../../events/exchange.ts";
import type { Logger } from "../../log/logger.ts";
import { InvalidArgumentError, isKind } from "../../errdefs/errors.ts";

/** The container's restart policy as `run --restart` gave it. */
export const RESTART_POLICY_LABEL = "io.k8scontainerd.restart-policy";
/** How many times the manager restarted the container since the user last started it. */
export const RESTART_COUNT_LABEL = "io.k8scontainerd.restart-count";
/** "true": the user stopped the container (kill, task delete); it is not restarted. */
export const USER_STOPPED_LABEL = "io.k8scontainerd.user-stopped";

/** A parsed restart policy. */
export interface RestartPolicy {
  name: "no" | "always" | "unless-stopped" | "on-failure";
  /** on-failure:N: at most N restarts in a row (undefined: no limit). */
  max?: number;
  /** As written, normalised ("on-failure:2"). */
  text: string;
}

/**
 * Parses a restart policy: "" or no, always, unless-stopped, on-failure, on-failure:N.
 *
 * @example
 * ```ts
 * parseRestartPolicy("on-failure:2"); // { name: "on-failure", max: 2, text: "on-failure:2" }
 * ```
 */
export function parseRestartPolicy(s: string): RestartPolicy {
  if (s === "" || s === "no") return { name: "no", text: "no" };
  if (s === "always" || s === "unless-stopped") return { name: s, text: s };
  const m = /^on-failure(?::(\d+))?$/.exec(s);
  if (m) {
    const max = m[1] === undefined ? undefined : Number(m[1]);
    return { name: "on-failure", max, text: s };
  }
  throw new InvalidArgumentError(
    `invalid restart policy "${s}": expected no, always, unless-stopped or on-failure[:N]`,
  );
}

/** First delay before a restart, and the ceiling it doubles up to. */
export const BACKOFF_MIN_MS = 100;
export const BACKOFF_MAX_MS = 10_000;
/** A task that ran this long starts the backoff over. */
const RESET_AFTER_MS = 10_000;

interface Backoff {
  delayMs: number;
  startedAt: number;
}

/** Restarts exited tasks by their containers' policies; one per daemon. */
export class RestartManager {
  readonly #svc: ContainerService;
  readonly #events: Exchange;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #backoff = new Map<string, Backoff>();
  readonly #pending = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(svc: ContainerService, events: Exchange, log: Logger) {
    this.#svc = svc;
    this.#events = events;
    this.#log = log.child({ component: "restart" });
  }

  /** Subscribes to task exits; call before the container service's recovery. */
  start(): void {
    const sub = this.#events.subscribe({
      topics: ["/tasks/exit"],
      signal: this.#abort.signal,
      maxQueue: 1 << 16,
    });
    (async () => {
      for await (const e of sub) {
        const id = String(e.event.containerId ?? "");
        if (id) this.#onExit(e.namespace, id, Number(e.event.exitStatus ?? 0), false);
      }
    })().catch((e) => this.#log.error("restart manager stopped hearing exits", { err: e }));
  }

  /** Stops listening and cancels restarts waiting out their backoff. */
  stop(): void {
    this.#abort.abort();
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
  }

  /** At daemon start: containers whose task stopped or went while the daemon was down. */
  async recover(): Promise<void> {
    for (const { namespace, container: c } of this.#svc.all()) {
      const policy = policyOf(c.labels);
      if (policy.name === "no") continue;
      let st;
      try {
        st = await this.#svc.taskState(namespace, c.id);
      } catch (e) {
        this.#log.warn("cannot read a task's state", { namespace, id: c.id, err: e });
        continue;
      }
      if (st && st.status !== "stopped") continue;
      if (policy.name === "always" && c.labels[USER_STOPPED_LABEL]) {
        this.#svc.setDaemonLabels(namespace, c.id, { [USER_STOPPED_LABEL]: "" });
      }
      this.#onExit(namespace, c.id, st?.exitCode ?? 0, !st);
    }
  }

  /** Decides on one exit and, when the policy says so, schedules the restart. */
  #onExit(ns: string, id: string, exitCode: number, noTask: boolean): void {
    const key = `${ns}/${id}`;
    if (this.#pending.has(key) || this.#abort.signal.aborted) return;
    if (!this.#due(ns, id, exitCode, noTask)) return;
    const now = Date.now();
    const b = this.#backoff.get(key);
    const delayMs = !b || now - b.startedAt >= RESET_AFTER_MS
      ? BACKOFF_MIN_MS
      : Math.min(b.delayMs * 2, BACKOFF_MAX_MS);
    this.#backoff.set(key, { delayMs, startedAt: b?.startedAt ?? now });
    this.#log.info("restarting the container after its exit", {
      namespace: ns,
      id,
      exitCode,
      delayMs,
    });
    this.#pending.set(
      key,
      setTimeout(() => {
        this.#pending.delete(key);
        void this.#restart(ns, id, exitCode, noTask, delayMs);
      }, delayMs),
    );
  }

  /** Whether the container's policy (and the user) want it restarted after this exit. */
  #due(ns: string, id: string, exitCode: number, noTask: boolean): boolean {
    let labels: Record<string, string>;
    try {
      labels = this.#svc.get(ns, id).labels;
    } catch (e) {
      if (!isKind(e, "not-found")) this.#log.warn("cannot read a container", { id, err: e });
      return false;
    }
    const policy = policyOf(labels);
    if (policy.name === "no" || labels[USER_STOPPED_LABEL]) return false;
    if (policy.name !== "on-failure") return true;
    if (exitCode === 0 && !noTask) return false;
    const count = Number(labels[RESTART_COUNT_LABEL] || 0);
    return policy.max === undefined || count < policy.max;
  }

  async #restart(
    ns: string,
    id: string,
    exitCode: number,
    noTask: boolean,
    delayMs: number,
  ): Promise<void> {
    const key = `${ns}/${id}`;
    // The user may have stopped or removed it while the backoff ran.
    if (this.#abort.signal.aborted || !this.#due(ns, id, exitCode, noTask)) return;
    try {
      const st = await this.#svc.taskState(ns, id);
      if (st && st.status !== "stopped") return; // started by someone else meanwhile
      const count = Number(this.#svc.get(ns, id).labels[RESTART_COUNT_LABEL] || 0) + 1;
      this.#svc.setDaemonLabels(ns, id, { [RESTART_COUNT_LABEL]: String(count) });
      this.#backoff.set(key, { delayMs, startedAt: Date.now() });
      const { pid } = await this.#svc.start(ns, id, { restart: true });
      this.#log.info("restarted the container", { namespace: ns, id, pid, count });
    } catch (e) {
      if (isKind(e, "not-found")) return;
      this.#log.warn("restarting the container failed", { namespace: ns, id, err: e });
      // A failed start is an exit of its own: tried again after a longer backoff.
      this.#onExit(ns, id, 1, noTask);
    }
  }
}

function policyOf(labels: Record<string, string>): RestartPolicy {
  try {
    return parseRestartPolicy(labels[RESTART_POLICY_LABEL] ?? "");
  } catch {
    return { name: "no", text: "no" };
  }
}
