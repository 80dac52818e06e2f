/**
 * Process exits without polling: one pidfd per watched process and a single poll(2) over all of
 * them on one worker thread, so an exit is seen the moment it happens, however many processes
 * are watched, and nothing wakes up while they all run. (Polling /proc with back-off left the
 * CRI up to half a second late on every stop, and woke up for every container twice a second.)
 * An eventfd wakes the poll when the set changes. On kernels without pidfds (before 5.3)
 * {@link ProcessExits.exited} returns undefined and callers keep polling.
 *
 * @example
 * ```ts
 * import { ProcessExits } from "./process_exits.ts";
 * const exits = new ProcessExits();
 * await exits.exited(4242); // resolves once pid 4242 has exited (at once if it is gone)
 * ```
 *
 * @module
 */
import {
  close,
  eventfd,
  eventfdDrain,
  eventfdSignal,
  isErrno,
  pidfdOpen,
  POLLIN,
  pollMany,
} from "../../ffi/mod.ts";

/** A safety net only: the poll returns on any change anyway, and re-arms after this. */
const POLL_SLICE_MS = 30_000;

interface Watch {
  pidfd: number;
  done: Promise<void>;
  resolve: () => void;
}

export class ProcessExits {
  /** Watched processes by pid; one pidfd and one promise each, however many callers wait. */
  readonly #byPid = new Map<number, Watch>();
  #wake = -1;
  #looping = false;
  #unsupported = false;

  /**
   * Resolves once process `pid` has exited (a zombie has exited; it need not be reaped), at
   * once when there is no such process. Undefined when this kernel has no pidfds: poll then.
   * The caller must know `pid` is the process it means (pids are reused): the pidfd is bound
   * to whatever process has that pid now.
   */
  exited(pid: number): Promise<void> | undefined {
    if (this.#unsupported) return undefined;
    const known = this.#byPid.get(pid);
    if (known) return known.done;
    let pidfd: number;
    try {
      pidfd = pidfdOpen(pid);
    } catch (e) {
      if (isErrno(e, "ESRCH")) return Promise.resolve();
      if (isErrno(e, "ENOSYS") || isErrno(e, "EPERM")) {
        this.#unsupported = true;
        return undefined;
      }
      throw e;
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#byPid.set(pid, { pidfd, done: promise, resolve });
    if (this.#looping) this.#poke();
    else void this.#loop();
    return promise;
  }

  /** How many processes are being watched (for tests and diagnostics). */
  get size(): number {
    return this.#byPid.size;
  }

  #poke(): void {
    eventfdSignal(this.#wake);
  }

  async #loop(): Promise<void> {
    if (this.#wake < 0) this.#wake = eventfd();
    this.#looping = true;
    try {
      while (this.#byPid.size > 0) {
        const watches = [...this.#byPid.entries()];
        const revents = await pollMany(
          [
            { fd: this.#wake, events: POLLIN },
            ...watches.map(([, w]) => ({ fd: w.pidfd, events: POLLIN })),
          ],
          POLL_SLICE_MS,
        );
        // Closed only here, between polls: never while the worker thread polls them.
        if (revents[0]) eventfdDrain(this.#wake);
        watches.forEach(([pid, w], i) => {
          if (!revents[i + 1]) return;
          this.#byPid.delete(pid);
          close(w.pidfd);
          w.resolve();
        });
      }
    } finally {
      this.#looping = false;
    }
  }
}
