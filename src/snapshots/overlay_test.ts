import {
  afterEach,
  beforeEach,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../testing/bdd.ts";
import { OverlaySnapshotter } from "./overlay.ts";
import { NativeSnapshotter } from "./native.ts";
import { mountAll, parseMountOptions, unmountAll } from "./mount.ts";
import { type Scratch, scratch } from "./test_helpers.ts";
import { MOUNT_DATA_MAX, MS_BIND, MS_NOSUID, MS_RDONLY, MS_REC } from "../../ffi/mod.ts";

const NS = "default";

/** prepare + write files + commit: a committed layer `name` on `parent`. */
async function layer(
  sn: OverlaySnapshotter | NativeSnapshotter,
  name: string,
  parent: string | undefined,
  files: Record<string, string>,
): Promise<void> {
  await sn.prepare(NS, `tmp-${name}`, parent);
  const fs = sn.upperDir(NS, `tmp-${name}`);
  for (const [p, content] of Object.entries(files)) {
    const dir = `${fs}/${p}`.replace(/\/[^/]*$/, "");
    Deno.mkdirSync(dir, { recursive: true });
    Deno.writeTextFileSync(`${fs}/${p}`, content);
  }
  await sn.commit(NS, name, `tmp-${name}`);
}

describe("OverlaySnapshotter", () => {
  let s: Scratch;
  let sn: OverlaySnapshotter;
  let root: string;
  beforeEach(async () => {
    s = await scratch("overlay-");
    root = `${s.dir}/root`;
    sn = new OverlaySnapshotter(root, s.db);
  });
  afterEach(() => s.dispose());

  it("prepare without parent: a rw bind of fs; with parents: overlay lower/upper/work", async () => {
    expect(await sn.prepare(NS, "base-a")).toEqual([
      { type: "bind", source: `${root}/snapshots/1/fs`, options: ["rw", "rbind"] },
    ]);
    expect(Deno.statSync(`${root}/snapshots/1/work`).isDirectory).toBe(true);
    await sn.commit(NS, "base", "base-a", { "a": "1" });
    expect(() => Deno.statSync(`${root}/snapshots/1/work`)).toThrow(); // dropped at commit
    await layer(sn, "l2", "base", { "x": "x" });
    const m = await sn.prepare(NS, "c1", "l2");
    expect(m).toEqual([{
      type: "overlay",
      source: "overlay",
      options: [
        "index=off",
        `lowerdir=${root}/snapshots/2/fs:${root}/snapshots/1/fs`,
        `upperdir=${root}/snapshots/3/fs`,
        `workdir=${root}/snapshots/3/work`,
      ],
    }]);
    expect(sn.stat(NS, "c1")).toMatchObject({ key: "c1", kind: "active", parent: "l2" });
    expect(sn.stat(NS, "base")).toMatchObject({ kind: "committed", labels: { a: "1" } });
    expect(sn.stat(NS, "base").parent).toBeUndefined();
  });

  it("view: one parent is a ro bind, several a lowerdir-only overlay", async () => {
    await layer(sn, "base", undefined, {});
    expect(await sn.view(NS, "v1", "base")).toEqual([
      { type: "bind", source: `${root}/snapshots/1/fs`, options: ["ro", "rbind"] },
    ]);
    await layer(sn, "l2", "base", {});
    expect(await sn.view(NS, "v2", "l2")).toEqual([{
      type: "overlay",
      source: "overlay",
      options: ["index=off", `lowerdir=${root}/snapshots/3/fs:${root}/snapshots/1/fs`],
    }]);
    expect(sn.stat(NS, "v2").kind).toBe("view");
    await expect(sn.commit(NS, "nope", "v2")).rejects.toThrow(/is view, only an active/);
    expect(() => sn.upperDir(NS, "v2")).toThrow(/not active/);
  });

  it("commit: AlreadyExists when the name is taken, FailedPrecondition when not active", async () => {
    await layer(sn, "base", undefined, {});
    await sn.prepare(NS, "a", "base");
    await expect(sn.commit(NS, "base", "a")).rejects.toMatchObject({ kind: "already-exists" });
    await expect(sn.commit(NS, "x", "base")).rejects.toMatchObject({
      kind: "failed-precondition",
    });
    await expect(sn.commit(NS, "x", "missing")).rejects.toMatchObject({ kind: "not-found" });
    await expect(sn.prepare(NS, "a", "base")).rejects.toMatchObject({ kind: "already-exists" });
    await expect(sn.prepare(NS, "b", "a")).rejects.toMatchObject({ kind: "failed-precondition" });
    await expect(sn.prepare(NS, "b", "missing")).rejects.toMatchObject({ kind: "not-found" });
    // Keys are per namespace.
    await sn.prepare("other", "a");
    expect(sn.walk("other").map((i) => i.key)).toEqual(["a"]);
    expect(sn.walk(NS).map((i) => i.key)).toEqual(["a", "base"]);
  });

  it("remove refuses a snapshot with children, naming them; then removes bottom-up", async () => {
    await layer(sn, "base", undefined, {});
    await layer(sn, "l2", "base", {});
    await sn.prepare(NS, "c1", "base");
    await expect(sn.remove(NS, "base")).rejects.toThrow(
      `snapshot "base" has children: c1, l2`,
    );
    await sn.remove(NS, "c1");
    await sn.remove(NS, "l2");
    await sn.remove(NS, "base");
    expect(sn.walk(NS)).toEqual([]);
    expect([...Deno.readDirSync(`${root}/snapshots`)]).toEqual([]);
    await expect(sn.remove(NS, "base")).rejects.toMatchObject({ kind: "not-found" });
  });

  it("cleanup removes directories without a row and leftovers of interrupted removes", async () => {
    await layer(sn, "base", undefined, { "keep.txt": "k" });
    Deno.mkdirSync(`${root}/snapshots/99/fs/deep`, { recursive: true });
    Deno.writeTextFileSync(`${root}/snapshots/99/fs/deep/f`, "orphan");
    Deno.mkdirSync(`${root}/snapshots/.removed-42/fs`, { recursive: true });
    await sn.cleanup();
    expect([...Deno.readDirSync(`${root}/snapshots`)].map((e) => e.name)).toEqual(["1"]);
    expect(Deno.readTextFileSync(`${root}/snapshots/1/fs/keep.txt`)).toBe("k");
  });

  it("update merges labels (empty value deletes); usage counts hardlinks once", async () => {
    await sn.prepare(NS, "a", undefined, { keep: "1", drop: "2" });
    expect(sn.update(NS, "a", { drop: "", add: "3" }).labels).toEqual({ keep: "1", add: "3" });
    const fs = sn.upperDir(NS, "a");
    Deno.writeFileSync(`${fs}/f`, new Uint8Array(8192).fill(1));
    Deno.linkSync(`${fs}/f`, `${fs}/g`);
    Deno.mkdirSync(`${fs}/d`);
    const u = await sn.usage(NS, "a");
    expect(u.inodes).toBe(3); // fs itself, f (= g), d
    expect(u.size).toBeGreaterThanOrEqual(8192);
    await sn.commit(NS, "c", "a");
    expect(await sn.usage(NS, "c")).toEqual(u);
  });

  it("switches to relative lowerdirs with a cwd when the options exceed the mount data limit", async () => {
    let parent: string | undefined;
    for (let i = 0; i < 120; i++) {
      await sn.prepare(NS, `a${i}`, parent);
      await sn.commit(NS, `l${i}`, `a${i}`);
      parent = `l${i}`;
    }
    const [m] = await sn.prepare(NS, "top", parent);
    expect(m.cwd).toBe(`${root}/snapshots`);
    expect(m.options[1].startsWith("lowerdir=120/fs:119/fs:")).toBe(true);
    expect(m.options.join(",").length + 1).toBeLessThanOrEqual(MOUNT_DATA_MAX);
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("OverlaySnapshotter mounts (root)", () => {
  let s: Scratch;
  let sn: OverlaySnapshotter;
  beforeEach(async () => {
    s = await scratch("overlay-mnt-");
    sn = new OverlaySnapshotter(`${s.dir}/root-${"r".repeat(40)}`, s.db);
  });
  afterEach(() => s.dispose());

  it("120 committed layers: prepare's mount mounts and shows the bottom and top files", async () => {
    let parent: string | undefined;
    for (let i = 0; i < 120; i++) {
      await layer(sn, `layer-${i}`, parent, { [`files/f${i}.txt`]: `layer ${i}\n` });
      parent = `layer-${i}`;
    }
    const mounts = await sn.prepare(NS, "container", parent);
    expect(mounts[0].cwd).toBeDefined();
    const abs = mounts[0].options.join(",").replaceAll(/(\d+)\/(fs|work)/g, `${s.dir}/x/$1/$2`);
    expect(abs.length).toBeGreaterThan(MOUNT_DATA_MAX); // absolute paths would not fit
    const mnt = `${s.dir}/mnt`;
    Deno.mkdirSync(mnt);
    const cwd = Deno.cwd();
    mountAll(mounts, mnt);
    try {
      expect(Deno.cwd()).toBe(cwd);
      expect(Deno.readTextFileSync(`${mnt}/files/f0.txt`)).toBe("layer 0\n");
      expect(Deno.readTextFileSync(`${mnt}/files/f119.txt`)).toBe("layer 119\n");
      expect([...Deno.readDirSync(`${mnt}/files`)].length).toBe(120);
      Deno.writeTextFileSync(`${mnt}/new.txt`, "upper\n");
    } finally {
      unmountAll(mnt);
    }
    expect(Deno.readTextFileSync(`${sn.upperDir(NS, "container")}/new.txt`)).toBe("upper\n");
  });

  it("unmountAll takes down stacked mounts; a plain directory or a missing path is left alone", () => {
    const mnt = `${s.dir}/stacked`;
    Deno.mkdirSync(mnt);
    Deno.writeTextFileSync(`${mnt}/under.txt`, "under");
    const tmpfs = { type: "tmpfs", source: "tmpfs", options: ["nosuid", "size=1m"] };
    for (let i = 0; i < 3; i++) mountAll([tmpfs], mnt);
    const at = () =>
      Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter((l) =>
        l.split(" ")[4] === mnt
      ).length;
    expect(at()).toBe(3);
    unmountAll(mnt);
    expect(at()).toBe(0);
    expect(Deno.readTextFileSync(`${mnt}/under.txt`)).toBe("under");
    unmountAll(mnt);
    unmountAll(`${s.dir}/missing/deeper`);
    unmountAll(`${mnt}/under.txt/below`);
    expect(Deno.readTextFileSync(`${mnt}/under.txt`)).toBe("under");
  });

  it("a ro view cannot be written; mountAll undoes earlier mounts when a later one fails", async () => {
    await layer(sn, "base", undefined, { "a.txt": "a" });
    const mnt = `${s.dir}/mnt`;
    Deno.mkdirSync(mnt);
    mountAll(await sn.view(NS, "v", "base"), mnt);
    try {
      expect(Deno.readTextFileSync(`${mnt}/a.txt`)).toBe("a");
      expect(() => Deno.writeTextFileSync(`${mnt}/b.txt`, "b")).toThrow();
    } finally {
      unmountAll(mnt);
    }
    const before = Deno.readTextFileSync("/proc/self/mountinfo");
    expect(() =>
      mountAll([
        { type: "tmpfs", source: "tmpfs", options: ["nosuid", "size=1m"] },
        { type: "bind", source: `${s.dir}/missing`, target: "sub", options: ["rbind"] },
      ], mnt)
    ).toThrow(/ENOENT/);
    expect(Deno.readTextFileSync("/proc/self/mountinfo")).toBe(before);
  });
});

describe("parseMountOptions", () => {
  it("splits flags, propagation and data", () => {
    expect(parseMountOptions(["ro", "nosuid", "rbind", "rprivate", "index=off", "lowerdir=/a:/b"]))
      .toEqual({
        flags: MS_RDONLY | MS_NOSUID | MS_BIND | MS_REC,
        propagation: [(1 << 18) | MS_REC],
        data: "index=off,lowerdir=/a:/b",
      });
    expect(parseMountOptions(["ro", "rw"]).flags).toBe(0);
  });
});
