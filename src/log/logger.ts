/**
 * Structured, levelled logging: one JSON object per line on stderr (or a given sink), with
 * `time`, `level`, `msg` and any fields. Child loggers carry fields such as `component`.
 *
 * @example
 * ```ts
 * import { createLogger } from "./logger.ts";
 * const log = createLogger({ level: "info" }).child({ component: "cri" });
 * log.info("pod started", { pod: "p1", ms: 12 });
 * // {"time":"…","level":"info","msg":"pod started","component":"cri","pod":"p1","ms":12}
 * ```
 */

export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
export type Level = typeof LEVELS[number];

export type Fields = Record<string, unknown>;

/** Where formatted lines go; defaults to stderr. */
export type Sink = (line: string) => void;

export interface Logger {
  level: Level;
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  fatal(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Fields): Logger;
  enabled(level: Level): boolean;
}

const encoder = new TextEncoder();
const stderrSink: Sink = (line) => Deno.stderr.writeSync(encoder.encode(line + "\n"));

/** Parses a level name, naming the bad value and the allowed ones. */
export function parseLevel(value: string): Level {
  if ((LEVELS as readonly string[]).includes(value)) return value as Level;
  throw new Error(`invalid log level "${value}": expected one of ${LEVELS.join(", ")}`);
}

function serialise(value: unknown): unknown {
  if (value instanceof Error) {
    const out: Fields = { message: value.message, name: value.name };
    for (const [k, v] of Object.entries(value)) out[k] = v;
    return out;
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** Creates a root logger. */
export function createLogger(opts: { level?: Level; sink?: Sink; fields?: Fields } = {}): Logger {
  const state = { level: opts.level ?? "info" };
  const sink = opts.sink ?? stderrSink;
  const make = (base: Fields): Logger => {
    const emit = (level: Level, msg: string, fields?: Fields) => {
      if (LEVELS.indexOf(level) < LEVELS.indexOf(state.level)) return;
      const rec: Fields = { time: new Date().toISOString(), level, msg, ...base };
      if (fields) { for (const [k, v] of Object.entries(fields)) rec[k] = serialise(v); }
      sink(JSON.stringify(rec, (_k, v) => typeof v === "bigint" ? v.toString() : v));
    };
    return {
      get level() {
        return state.level;
      },
      set level(l: Level) {
        state.level = l;
      },
      trace: (m, f) => emit("trace", m, f),
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      fatal: (m, f) => emit("fatal", m, f),
      child: (fields) => make({ ...base, ...fields }),
      enabled: (l) => LEVELS.indexOf(l) >= LEVELS.indexOf(state.level),
    };
  };
  return make(opts.fields ?? {});
}
