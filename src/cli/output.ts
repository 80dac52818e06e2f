/**
 * How listings print: an aligned table by default, one id per line with --quiet, or JSON
 * with --format json (for scripts).
 *
 * @example
 * ```ts
 * import { printList } from "./output.ts";
 * printList([{ name: "busybox", size: 1024 }], { columns: [["REF", (r) => r.name]], id: (r) => r.name });
 * ```
 */
import { UsageError } from "./usage_error.ts";

export interface ListOptions<T> {
  columns: [string, (row: T) => string][];
  /** What --quiet prints per row. */
  id: (row: T) => string;
  quiet?: boolean;
  format?: string;
  /** The JSON shape per row (defaults to the row). */
  json?: (row: T) => unknown;
}

export function printList<T>(rows: T[], opts: ListOptions<T>): void {
  if (opts.format === "json") {
    console.log(
      JSON.stringify(
        rows.map(opts.json ?? ((r) => r)),
        (_k, v) => typeof v === "bigint" ? Number(v) : v,
        2,
      ),
    );
    return;
  }
  if (opts.format !== undefined && opts.format !== "table") {
    throw new UsageError(`invalid --format "${opts.format}": expected table or json`);
  }
  if (opts.quiet) {
    for (const r of rows) console.log(opts.id(r));
    return;
  }
  const cells = [
    opts.columns.map(([h]) => h),
    ...rows.map((r) => opts.columns.map(([, f]) => f(r))),
  ];
  const widths = opts.columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  for (const row of cells) {
    console.log(
      row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join("   ").trimEnd(),
    );
  }
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number | bigint): string {
  let v = Number(n), u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** Nanoseconds since the epoch → "3 minutes ago". */
export function formatAge(unixNanos: number | bigint, now = Date.now()): string {
  const ms = Number(BigInt(unixNanos) / 1_000_000n);
  if (!ms) return "-";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  const steps: [number, string][] = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  for (const [size, name] of steps) {
    if (s >= size) {
      const n = Math.floor(s / size);
      return `${n} ${name}${n === 1 ? "" : "s"} ago`;
    }
  }
  return "just now";
}

/** "k=v,k2=v2" labels for a table cell. */
export function formatLabels(labels: Record<string, string>): string {
  const e = Object.entries(labels);
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(",") : "-";
}

/** Parses repeated `--label k=v` flags. */
export function parseLabels(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid --label "${v}": expected key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}
