/**
 * Prometheus metrics: counters and histograms with labels, rendered in the text exposition
 * format. One registry per daemon; later capabilities register their own series (pull bytes,
 * pod start latency) on it.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 * const reg = new MetricsRegistry();
 * const calls = reg.counter("k8scontainerd_grpc_requests_total", "gRPC requests", ["method", "code"]);
 * calls.inc({ method: "/runtime.v1.RuntimeService/Version", code: "OK" });
 * console.log(reg.render());
 * ```
 */

type Labels = Record<string, string>;

/** Default latency buckets in seconds, from 0.5 ms to 10 s. */
export const LATENCY_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function labelText(names: readonly string[], labels: Labels, extra?: [string, string]): string {
  const parts = names.map((n) => `${n}="${escapeLabel(labels[n] ?? "")}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function keyOf(names: readonly string[], labels: Labels): string {
  return names.map((n) => labels[n] ?? "").join("\u0000");
}

function checkLabels(metric: string, names: readonly string[], labels: Labels): void {
  for (const k of Object.keys(labels)) {
    if (!names.includes(k)) throw new Error(`metric ${metric}: unknown label "${k}"`);
  }
}

interface Metric {
  render(): string;
}

/** A monotonically increasing count per label set. */
export class Counter implements Metric {
  #values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    checkLabels(this.name, this.labelNames, labels);
    const k = keyOf(this.labelNames, labels);
    const cur = this.#values.get(k);
    if (cur) cur.value += by;
    else this.#values.set(k, { labels: { ...labels }, value: by });
  }

  get(labels: Labels = {}): number {
    return this.#values.get(keyOf(this.labelNames, labels))?.value ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.#values.values()) {
      lines.push(`${this.name}${labelText(this.labelNames, labels)} ${value}`);
    }
    return lines.join("\n");
  }
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram implements Metric {
  #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {}

  observe(labels: Labels, value: number): void {
    checkLabels(this.name, this.labelNames, labels);
    const k = keyOf(this.labelNames, labels);
    let s = this.#series.get(k);
    if (!s) {
      s = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  /** Number of observations for a label set. */
  count(labels: Labels = {}): number {
    return this.#series.get(keyOf(this.labelNames, labels))?.count ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) =>
        lines.push(
          `${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", String(b)])} ${
            s.counts[i]
          }`,
        )
      );
      lines.push(
        `${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", "+Inf"])} ${s.count}`,
      );
      lines.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
    return lines.join("\n");
  }
}

/** Holds every metric of a daemon; names are unique. */
export class MetricsRegistry {
  #metrics = new Map<string, Metric>();

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(name, new Counter(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets?: readonly number[],
  ): Histogram {
    return this.#add(name, new Histogram(name, help, labelNames, buckets));
  }

  #add<M extends Metric>(name: string, m: M): M {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new Error(`invalid metric name "${name}"`);
    if (this.#metrics.has(name)) throw new Error(`metric ${name} registered twice`);
    this.#metrics.set(name, m);
    return m;
  }

  /** The text exposition format (version 0.0.4). */
  render(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join("\n") + "\n";
  }
}
