/**
 * A vitest-style test API (describe / it / expect / hooks) on top of `Deno.test`.
 *
 * Each top-level `describe` becomes one `Deno.test`; nested suites and cases become steps, so
 * `deno test` reports every case by name. Hooks run in vitest order: beforeAll once per suite,
 * beforeEach/afterEach around every case of the suite and its children, afterAll once.
 *
 * @example
 * ```ts
 * import { describe, it, expect } from "../testing/bdd.ts";
 * describe("math", () => {
 *   it("adds", () => expect(1 + 1).toBe(2));
 *   it.skipIf(Deno.uid() !== 0, "needs root")("mounts", () => {});
 * });
 * ```
 */
export { expect } from "expect";

type Fn = () => void | Promise<void>;

interface Case {
  kind: "case";
  name: string;
  fn: Fn;
  skip?: string;
}

interface Suite {
  kind: "suite";
  name: string;
  children: (Case | Suite)[];
  beforeAll: Fn[];
  afterAll: Fn[];
  beforeEach: Fn[];
  afterEach: Fn[];
  skip?: string;
}

let current: Suite | undefined;

function newSuite(name: string, skip?: string): Suite {
  return {
    kind: "suite",
    name,
    children: [],
    beforeAll: [],
    afterAll: [],
    beforeEach: [],
    afterEach: [],
    skip,
  };
}

/**
 * `K8SC_TEST_CASE=text[|text…]`: run only the cases whose name contains one (the rest are reported
 * skipped; suites' hooks still run), to try one case of a long e2e file.
 */
const CASE_FILTER = Deno.env.get("K8SC_TEST_CASE")?.split("|").filter((f) => f) || undefined;

async function runSuite(t: Deno.TestContext, suite: Suite, each: { before: Fn[]; after: Fn[] }) {
  const before = [...each.before, ...suite.beforeEach];
  const after = [...suite.afterEach, ...each.after];
  for (const fn of suite.beforeAll) await fn();
  try {
    for (const child of suite.children) {
      const reason = child.skip ??
        (child.kind !== "suite" && CASE_FILTER && !CASE_FILTER.some((f) => child.name.includes(f))
          ? `not matched by K8SC_TEST_CASE`
          : undefined);
      if (reason !== undefined) {
        if (child.skip !== undefined) console.log(`  skipped: ${child.name}: ${reason}`);
        await t.step({ name: `${child.name} (skipped: ${reason})`, ignore: true, fn: () => {} });
        continue;
      }
      await t.step({
        name: child.name,
        sanitizeOps: false,
        sanitizeResources: false,
        sanitizeExit: false,
        fn: async (st) => {
          if (child.kind === "suite") return await runSuite(st, child, { before, after });
          for (const fn of before) await fn();
          try {
            await child.fn();
          } finally {
            for (const fn of after) await fn();
          }
        },
      });
    }
  } finally {
    for (const fn of suite.afterAll) await fn();
  }
}

function define(name: string, body: () => void, skip?: string): void {
  const suite = newSuite(name, skip);
  const parent = current;
  if (parent) {
    parent.children.push(suite);
    current = suite;
    try {
      body();
    } finally {
      current = parent;
    }
    return;
  }
  current = suite;
  try {
    body();
  } finally {
    current = undefined;
  }
  if (skip !== undefined) console.log(`skipped suite: ${name}: ${skip}`);
  Deno.test({
    name,
    ignore: skip !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    sanitizeExit: false,
    fn: (t) => runSuite(t, suite, { before: [], after: [] }),
  });
}

/** Declares a suite of cases; suites nest. */
export const describe = Object.assign(define, {
  /** A suite that is reported as skipped, with the reason printed. */
  skip: (name: string, body: () => void, reason = "skipped") => define(name, body, reason),
  /** Returns `describe`, or a skipping one that prints `reason` when `cond` holds. */
  skipIf: (cond: boolean, reason: string) => (name: string, body: () => void) =>
    define(name, body, cond ? reason : undefined),
});

function addCase(name: string, fn: Fn, skip?: string): void {
  if (!current) {
    // A bare `it` at top level: its own Deno.test.
    define(name, () => addCase(name, fn, skip));
    return;
  }
  current.children.push({ kind: "case", name, fn, skip });
}

/** Declares one case of the enclosing suite. */
export const it = Object.assign(addCase, {
  /** A case reported as skipped, with the reason printed. */
  skip: (name: string, fn: Fn, reason = "skipped") => addCase(name, fn, reason),
  /** Returns `it`, or a skipping one that prints `reason` when `cond` holds. */
  skipIf: (cond: boolean, reason: string) => (name: string, fn: Fn) =>
    addCase(name, fn, cond ? reason : undefined),
});
export const test = it;

function hook(kind: "beforeAll" | "afterAll" | "beforeEach" | "afterEach", fn: Fn): void {
  if (!current) throw new Error(`${kind} must be called inside describe()`);
  current[kind].push(fn);
}

/** Runs once before the suite's first case. */
export const beforeAll = (fn: Fn) => hook("beforeAll", fn);
/** Runs once after the suite's last case, also when a case failed. */
export const afterAll = (fn: Fn) => hook("afterAll", fn);
/** Runs before every case of the suite and of its nested suites. */
export const beforeEach = (fn: Fn) => hook("beforeEach", fn);
/** Runs after every case of the suite and of its nested suites, also when it failed. */
export const afterEach = (fn: Fn) => hook("afterEach", fn);

/** True when running as root: root-only tests use `it.skipIf(!isRoot, ROOT_REASON)`. */
export const isRoot = Deno.uid() === 0;
export const ROOT_REASON = "needs root (CI runs as root)";

/**
 * The user-mode emulator the suite runs under, or undefined when it runs natively:
 * `scripts/deno-aarch64` sets `K8SC_EMULATED=qemu-user` when it runs the aarch64 Deno through
 * qemu-aarch64-static on an x86_64 host. The few tests that cannot work there (a call qemu-user
 * does not translate) skip with `it.skipIf(isEmulated, "qemu-user: …why…")`.
 *
 * @example
 * ```ts
 * import { isEmulated } from "./bdd.ts";
 * if (isEmulated) console.log("Deno runs under qemu-user");
 * ```
 */
export const emulator: string | undefined = Deno.env.get("K8SC_EMULATED") || undefined;
/** True under user-mode emulation (see {@link emulator}). */
export const isEmulated = emulator !== undefined;
