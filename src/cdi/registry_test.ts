import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import { createLogger } from "../log/logger.ts";
import { CdiRegistry, type SpecSource } from "./registry.ts";

const DIRS = ["/etc/cdi", "/var/run/cdi"];

function spec(kind: string, devices: Record<string, string>, specEnv?: string): string {
  return JSON.stringify({
    cdiVersion: "0.6.0",
    kind,
    ...(specEnv ? { containerEdits: { env: [specEnv] } } : {}),
    devices: Object.entries(devices).map(([name, env]) => ({
      name,
      containerEdits: { env: [env] },
    })),
  });
}

function src(path: string, text: string): SpecSource {
  return { path, dirIndex: path.startsWith("/var/run/cdi/") ? 1 : 0, text };
}

function error(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
}

describe("CDI registry", () => {
  it("resolves devices: spec edits once per spec, then each device's, in request order", () => {
    const reg = CdiRegistry.fromSources(DIRS, [
      src("/etc/cdi/v.json", spec("v.com/d", { a: "A=1", b: "B=1" }, "SPEC=1")),
      src("/etc/cdi/w.json", spec("w.com/d", { c: "C=1" })),
    ]);
    expect(reg.devices()).toEqual(["v.com/d=a", "v.com/d=b", "w.com/d=c"]);
    const out = reg.resolve(["v.com/d=b", "w.com/d=c", "v.com/d=a", "v.com/d=b"]);
    expect(out.map((g) => g.edits.env)).toEqual([["SPEC=1"], ["B=1"], ["C=1"], ["A=1"]]);
    expect(out[1].source).toBe('CDI device "v.com/d=b" (/etc/cdi/v.json)');
  });

  it("lets a later directory win, and refuses a device two files of one directory define", () => {
    const reg = CdiRegistry.fromSources(DIRS, [
      src("/etc/cdi/a.json", spec("v.com/d", { x: "FROM=etc", y: "Y=etc1" })),
      src("/etc/cdi/b.json", spec("v.com/d", { y: "Y=etc2", z: "Z=etc1" })),
      src("/var/run/cdi/c.json", spec("v.com/d", { x: "FROM=run", z: "Z=run" })),
    ]);
    expect(reg.resolve(["v.com/d=x"])[0].edits.env).toEqual(["FROM=run"]);
    expect(reg.sourceOf("v.com/d=x")).toBe("/var/run/cdi/c.json");
    // The conflict in /etc/cdi is settled by /var/run/cdi's copy.
    expect(reg.resolve(["v.com/d=z"])[0].edits.env).toEqual(["Z=run"]);
    const e = error(() => reg.resolve(["v.com/d=y"]));
    expect(isKind(e, "failed-precondition")).toBe(true);
    expect(e.message).toContain("/etc/cdi/a.json, /etc/cdi/b.json");
  });

  it("refuses unknown devices with NotFound naming the device and the directories", () => {
    const reg = CdiRegistry.fromSources(DIRS, [
      src("/etc/cdi/v.json", spec("v.com/d", { a: "A=1" })),
    ]);
    const e = error(() => reg.resolve(["v.com/d=a", "vendor.com/device=bar"]));
    expect(isKind(e, "not-found")).toBe(true);
    expect(e.message).toBe(
      'CDI device "vendor.com/device=bar" in /etc/cdi, /var/run/cdi: not found',
    );
    expect(isKind(error(() => reg.resolve(["bad name"])), "invalid-argument")).toBe(true);
  });

  it("skips a broken file (logged), keeps the others, and names it for its devices", () => {
    const lines: string[] = [];
    const log = createLogger({ sink: (l) => lines.push(l) });
    const reg = CdiRegistry.fromSources(DIRS, [
      src("/etc/cdi/good.json", spec("v.com/d", { a: "A=1" })),
      src("/etc/cdi/bad.json", JSON.stringify({ kind: "v.com/d", devices: [{ name: "b" }] })),
      src("/etc/cdi/garbage.yaml", "kind: [unclosed"),
    ], log);
    expect(reg.resolve(["v.com/d=a"])[0].edits.env).toEqual(["A=1"]);
    expect(reg.broken.map((b) => b.path)).toEqual(["/etc/cdi/bad.json", "/etc/cdi/garbage.yaml"]);
    expect(lines.filter((l) => l.includes('"level":"warn"')).length).toBe(2);
    expect(lines[0]).toContain("/etc/cdi/bad.json");
    const e = error(() => reg.resolve(["v.com/d=b"]));
    expect(isKind(e, "failed-precondition")).toBe(true);
    expect(e.message).toContain("defined only in /etc/cdi/bad.json, which was skipped");
    expect(e.message).toContain("cdiVersion is required");
    // A device of no readable file: not found, with the undecodable file named as a hint.
    const nf = error(() => reg.resolve(["v.com/d=c"]));
    expect(isKind(nf, "not-found")).toBe(true);
    expect(nf.message).toContain("/etc/cdi/garbage.yaml is not valid YAML");
  });

  it("refuses a device whose edits it cannot apply", () => {
    const reg = CdiRegistry.fromSources(DIRS, [src(
      "/etc/cdi/rdt.json",
      JSON.stringify({
        cdiVersion: "0.6.0",
        kind: "v.com/d",
        devices: [{ name: "r", containerEdits: { intelRdt: { closID: "x" } } }],
      }),
    )]);
    const e = error(() => reg.resolve(["v.com/d=r"]));
    expect(isKind(e, "failed-precondition")).toBe(true);
    expect(e.message).toContain("intelRdt");
  });

  it("reads JSON and YAML files of directories in order, skipping missing ones", async () => {
    const root = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${root}/a`);
      await Deno.mkdir(`${root}/b`);
      await Deno.writeTextFile(`${root}/a/one.json`, spec("v.com/d", { x: "X=a", j: "J=1" }));
      await Deno.writeTextFile(
        `${root}/b/two.yaml`,
        'cdiVersion: "0.6.0"\nkind: v.com/d\ndevices:\n  - name: x\n    containerEdits:\n      env: [X=b]\n',
      );
      await Deno.writeTextFile(
        `${root}/b/three.yml`,
        "cdiVersion: 0.6.0\nkind: v.com/e\ndevices:\n  - name: y\n    containerEdits:\n      env: [Y=1]\n",
      );
      await Deno.writeTextFile(`${root}/b/notes.txt`, "not a spec");
      await Deno.symlink(`${root}/nowhere`, `${root}/b/dangling.json`);
      const reg = await CdiRegistry.read([`${root}/a`, `${root}/missing`, `${root}/b`]);
      expect(reg.devices()).toEqual(["v.com/d=j", "v.com/d=x", "v.com/e=y"]);
      expect(reg.resolve(["v.com/d=x"])[0].edits.env).toEqual(["X=b"]);
      expect(reg.broken).toEqual([]);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
});
