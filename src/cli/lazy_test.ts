import { describe, expect, it } from "../testing/bdd.ts";
import { LAZY_MODULE_URLS, LAZY_MODULES, load } from "./lazy.ts";

const source = await Deno.readTextFile(new URL("./lazy.ts", import.meta.url));

describe("lazy modules", () => {
  it("names each module with the same path in its type and in LAZY_MODULES", () => {
    const typed = Object.fromEntries(
      [...source.matchAll(/^\s+(\w+): typeof import\("([^"]+)"\);$/gm)].map((m) => [m[1], m[2]]),
    );
    expect(typed).toEqual(LAZY_MODULES);
    expect(LAZY_MODULE_URLS).toHaveLength(Object.keys(LAZY_MODULES).length);
  });

  it("loads every one of them", async () => {
    for (const name of Object.keys(LAZY_MODULES) as (keyof typeof LAZY_MODULES)[]) {
      const m = await load(name);
      expect({ name, exports: Object.keys(m).length > 0 }).toEqual({ name, exports: true });
    }
  });

  it("is the only way the CLI imports on demand (a literal import() is read at start-up)", async () => {
    const dir = new URL("./", import.meta.url);
    const offenders: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.endsWith(".ts") || e.name.endsWith("_test.ts") || e.name === "lazy.ts") continue;
      const text = await Deno.readTextFile(new URL(e.name, dir));
      // `typeof import("…")` in a type position loads nothing; a call does.
      for (const m of text.matchAll(/(?<!typeof )\bimport\(\s*["'`]/g)) {
        offenders.push(`${e.name}:${text.slice(0, m.index).split("\n").length}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});
