/**
 * containerd's filter language for List calls, small enough to read at a glance:
 *
 * ```
 * filter    := selector ("," selector)*          every selector must match (AND)
 * selector  := fieldpath [op value]              no op: the field is present
 * fieldpath := field ("." field)*                e.g. name, target.digest, labels."a.b"
 * field     := [A-Za-z0-9_-]+ | quoted
 * op        := "==" | "!=" | "~="                 ~= is a regular expression match
 * value     := quoted | /regex/ | bare text up to the next ","
 * quoted    := "…" with \" and \\ escapes
 * ```
 *
 * A list of filters matches when any one of them does (OR), as in containerd. An empty list,
 * or only empty strings, matches everything. Errors are InvalidArgumentError naming the filter.
 *
 * @example
 * ```ts
 * import { parseFilters } from "./filters.ts";
 * const f = parseFilters(['name~=^docker\\.io/,labels."env"==prod']);
 * f.match((path) => path[0] === "name" ? "docker.io/library/busybox" : undefined); // false
 * ```
 */
import { InvalidArgumentError } from "../errdefs/errors.ts";

/** Looks a field path up on the object being filtered; undefined when it has no such field. */
export type FieldGetter = (path: string[]) => string | undefined;

/** Says whether a field path exists for this kind of object (so typos are errors). */
export type FieldCheck = (path: string[]) => boolean;

/** A compiled filter list. */
export interface Filter {
  /** True when the object whose fields `get` looks up matches. */
  match(get: FieldGetter): boolean;
}

interface Selector {
  path: string[];
  op?: "==" | "!=" | "~=";
  value?: string;
  re?: RegExp;
}

class Scanner {
  i = 0;
  constructor(readonly s: string, readonly filter: string) {}

  fail(why: string): never {
    throw new InvalidArgumentError(`invalid filter "${this.filter}": ${why} at offset ${this.i}`);
  }

  get done(): boolean {
    return this.i >= this.s.length;
  }

  skipSpace(): void {
    while (!this.done && /\s/.test(this.s[this.i])) this.i++;
  }

  quoted(close: string): string {
    this.i++; // opening quote
    let out = "";
    while (!this.done && this.s[this.i] !== close) {
      if (this.s[this.i] === "\\" && this.i + 1 < this.s.length) {
        const next = this.s[this.i + 1];
        // In a /regex/ only \/ is an escape; everything else stays for the RegExp.
        if (close === "/" && next !== "/") out += "\\";
        out += next;
        this.i += 2;
        continue;
      }
      out += this.s[this.i++];
    }
    if (this.done) this.fail(`unterminated ${close === "/" ? "regular expression" : "string"}`);
    this.i++;
    return out;
  }

  field(): string {
    if (this.s[this.i] === '"') return this.quoted('"');
    const start = this.i;
    while (!this.done && /[A-Za-z0-9_-]/.test(this.s[this.i])) this.i++;
    if (this.i === start) this.fail("expected a field name");
    return this.s.slice(start, this.i);
  }
}

function parseSelector(sc: Scanner, check?: FieldCheck): Selector {
  sc.skipSpace();
  const path = [sc.field()];
  while (sc.s[sc.i] === ".") {
    sc.i++;
    path.push(sc.field());
  }
  if (check && !check(path)) {
    sc.fail(`unknown field "${path.join(".")}"`);
  }
  sc.skipSpace();
  if (sc.done || sc.s[sc.i] === ",") return { path };
  const op = sc.s.slice(sc.i, sc.i + 2);
  if (op !== "==" && op !== "!=" && op !== "~=") sc.fail(`expected ==, != or ~=`);
  sc.i += 2;
  sc.skipSpace();
  let value: string;
  if (sc.s[sc.i] === '"') value = sc.quoted('"');
  else if (sc.s[sc.i] === "/" && op === "~=") value = sc.quoted("/");
  else {
    const start = sc.i;
    while (!sc.done && sc.s[sc.i] !== ",") sc.i++;
    value = sc.s.slice(start, sc.i).trim();
  }
  sc.skipSpace();
  if (!sc.done && sc.s[sc.i] !== ",") sc.fail(`unexpected "${sc.s[sc.i]}" after the value`);
  if (op !== "~=") return { path, op, value };
  try {
    return { path, op, value, re: new RegExp(value) };
  } catch (e) {
    return sc.fail(`bad regular expression ${JSON.stringify(value)}: ${(e as Error).message}`);
  }
}

function parseOne(filter: string, check?: FieldCheck): Selector[] {
  const sc = new Scanner(filter, filter);
  const out: Selector[] = [];
  for (;;) {
    out.push(parseSelector(sc, check));
    if (sc.done) return out;
    sc.i++; // ","
    sc.skipSpace();
    if (sc.done) sc.fail("expected a selector after ','");
  }
}

function matches(sel: Selector, get: FieldGetter): boolean {
  const v = get(sel.path);
  switch (sel.op) {
    case undefined:
      return v !== undefined;
    case "==":
      return v === sel.value;
    case "!=":
      return v !== sel.value;
    case "~=":
      return v !== undefined && sel.re!.test(v);
  }
}

/**
 * Compiles filters (OR of comma-separated ANDs). `check` rejects unknown field paths.
 *
 * @example
 * ```ts
 * const f = parseFilters(["labels.env==prod", "name==a"], (p) => p[0] === "name" || p[0] === "labels");
 * ```
 */
export function parseFilters(filters: string | readonly string[] = [], check?: FieldCheck): Filter {
  const list = (typeof filters === "string" ? [filters] : filters).filter((f) => f.trim() !== "");
  const compiled = list.map((f) => parseOne(f, check));
  return {
    match: (get) =>
      compiled.length === 0 || compiled.some((and) => and.every((s) => matches(s, get))),
  };
}
