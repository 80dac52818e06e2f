/**
 * Keeps the layers of DESIGN.md apart: reads every module's source, pulls out its import
 * specifiers with a regex (no type checker, no `deno info`, so it runs in milliseconds) and
 * fails naming the first file and import that crosses a line it must not. Only the
 * line-anchored statements count, so the `import` lines of JSDoc examples are not imports.
 */
import { describe, expect, it } from "./testing/bdd.ts";

const SRC = new URL("./", import.meta.url).pathname.replace(/\/$/, "");
const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** The folders under src/ a folder must never import, each with why. */
const FORBIDDEN: Record<string, { folders: string[]; why: string }> = {
  api: { folders: ["cri"], why: "the management API and the CRI are siblings" },
  cri: { folders: ["api"], why: "the CRI and the management API are siblings" },
  grpc: { folders: ["api", "cri"], why: "the gRPC edge knows no services" },
  streaming: { folders: ["api", "cri", "grpc"], why: "the streaming server sits below both APIs" },
};
const BELOW_THE_APIS = ["api", "cri", "grpc", "daemon", "cli"];
for (
  const layer of [
    "services",
    "runtime",
    "metadata",
    "content",
    "snapshots",
    "network",
    "events",
    "remotes",
    "archive",
  ]
) {
  FORBIDDEN[layer] = { folders: BELOW_THE_APIS, why: "data flows one way, top to bottom" };
}

/** Every .ts file under `dir`, skipping dot folders, node_modules and the names in `skip`. */
async function sourceFiles(dir: string, skip: string[] = []): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) {
      if (e.name.startsWith(".") || e.name === "node_modules" || skip.includes(e.name)) continue;
      out.push(...await sourceFiles(path, skip));
    } else if (e.isFile && e.name.endsWith(".ts")) {
      out.push(path);
    }
  }
  return out.sort();
}

/**
 * The specifiers of a module's static imports and re-exports (at the start of a line, as
 * deno fmt leaves them) and of its dynamic imports of a string literal.
 */
export function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^(?:import\b|export\s+(?:type\s+)?[*{])[^;]*?\bfrom\s*["']([^"']+)["']/gm,
    /^import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) found.push(m[1]);
  return found;
}

/** The src/ folder a file lives in ("" for src/ itself, undefined outside src/). */
function folderOf(path: string): string | undefined {
  if (!path.startsWith(`${SRC}/`)) return undefined;
  const rest = path.slice(SRC.length + 1);
  const slash = rest.indexOf("/");
  return slash < 0 ? "" : rest.slice(0, slash);
}

/** Each import of src/ that crosses a forbidden line, as `file: import "spec" (why)`. */
async function layeringViolations(): Promise<string[]> {
  const bad: string[] = [];
  for (const file of await sourceFiles(SRC)) {
    const rule = FORBIDDEN[folderOf(file) ?? ""];
    if (!rule) continue;
    for (const spec of importSpecifiers(await Deno.readTextFile(file))) {
      if (!spec.startsWith(".")) continue;
      const target = new URL(spec, `file://${file}`).pathname;
      const to = folderOf(target);
      if (to !== undefined && rule.folders.includes(to)) {
        bad.push(
          `${file.slice(ROOT.length + 1)}: import "${spec}" reaches src/${to}/ (${rule.why})`,
        );
      }
    }
  }
  return bad;
}

describe("layering", () => {
  it("finds import specifiers and ignores JSDoc examples", () => {
    const src = [
      "/**",
      ' * import { x } from "../cri/x.ts";',
      " */",
      "import {",
      "  a,",
      '} from "../grpc/server.ts";',
      'import type { B } from "./b.ts";',
      'export * from "./c.ts";',
      'const d = () => import("./d.ts");',
    ].join("\n");
    expect(importSpecifiers(src)).toEqual([
      "../grpc/server.ts",
      "./b.ts",
      "./c.ts",
      "./d.ts",
    ]);
  });

  it("no layer imports one it must not (api and cri never import each other)", async () => {
    expect(await layeringViolations()).toEqual([]);
  });

  it("only ffi/ calls Deno.dlopen", async () => {
    const self = new URL(import.meta.url).pathname;
    const bad: string[] = [];
    for (const file of await sourceFiles(ROOT, ["ffi"])) {
      if (file === self) continue;
      const lines = (await Deno.readTextFile(file)).split("\n");
      lines.forEach((line, i) => {
        if (/\bDeno\s*\.\s*dlopen\b/.test(line)) {
          bad.push(`${file.slice(ROOT.length + 1)}:${i + 1}`);
        }
      });
    }
    expect(bad).toEqual([]);
  });
});
