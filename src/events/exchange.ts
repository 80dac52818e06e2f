/**
 * The events exchange: services publish what happened (task created / started / exited /
 * deleted / oom, exec started / exited, image and container changes) and subscribers — the
 * `events` CLI, the CRI GetContainerEvents stream — receive them in order. A slow subscriber
 * never blocks a publisher: its queue is bounded and it is dropped when it overflows.
 *
 * @example
 * ```ts
 * const ex = new Exchange();
 * const sub = ex.subscribe({ namespace: "default" });
 * ex.publish("default", "/tasks/exit", { containerId: "web", exitStatus: 0 });
 * for await (const e of sub) console.log(e.topic);
 * ```
 */

export interface Envelope {
  timestamp: Date;
  namespace: string;
  /** e.g. "/tasks/exit", "/containers/create", "/images/delete". */
  topic: string;
  event: Record<string, unknown>;
}

export interface SubscribeOptions {
  namespace?: string;
  /** Topic prefixes to keep, e.g. ["/tasks/"]; empty keeps all. */
  topics?: string[];
  signal?: AbortSignal;
  /** Events queued for a slow subscriber before it is dropped. */
  maxQueue?: number;
}

interface Subscriber {
  opts: SubscribeOptions;
  queue: Envelope[];
  wake?: () => void;
  closed: boolean;
  error?: Error;
}

export class Exchange {
  #subs = new Set<Subscriber>();

  publish(namespace: string, topic: string, event: Record<string, unknown>): void {
    const env: Envelope = { timestamp: new Date(), namespace, topic, event };
    for (const s of this.#subs) {
      if (s.opts.namespace && s.opts.namespace !== namespace) continue;
      if (s.opts.topics?.length && !s.opts.topics.some((t) => topic.startsWith(t))) continue;
      if (s.queue.length >= (s.opts.maxQueue ?? 1024)) {
        s.error = new Error(
          `event subscriber fell behind by more than ${
            s.opts.maxQueue ?? 1024
          } events and was dropped`,
        );
        this.#close(s);
        continue;
      }
      s.queue.push(env);
      s.wake?.();
    }
  }

  #close(s: Subscriber): void {
    s.closed = true;
    this.#subs.delete(s);
    s.wake?.();
  }

  /** An async stream of events; ends when `signal` aborts or `return()` is called. */
  subscribe(opts: SubscribeOptions = {}): AsyncIterableIterator<Envelope> {
    const s: Subscriber = { opts, queue: [], closed: false };
    this.#subs.add(s);
    opts.signal?.addEventListener("abort", () => this.#close(s), { once: true });
    const next = async (): Promise<IteratorResult<Envelope>> => {
      while (!s.queue.length && !s.closed) await new Promise<void>((r) => (s.wake = r));
      s.wake = undefined;
      if (s.queue.length) return { value: s.queue.shift()!, done: false };
      if (s.error) throw s.error;
      return { value: undefined, done: true };
    };
    const it: AsyncIterableIterator<Envelope> = {
      next,
      return: () => {
        this.#close(s);
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  get subscribers(): number {
    return this.#subs.size;
  }
}
