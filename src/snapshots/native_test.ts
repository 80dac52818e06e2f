import {
  afterEach,
  beforeEach,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../testing/bdd.ts";
import { lgetxattr, lsetxattr, majorMinor, makedev, mknod, S_IFCHR } from "../../ffi/mod.ts";
import { NativeSnapshotter } from "./native.ts";
import { type Scratch, scratch } from "./test_helpers.ts";

const NS = "default";

describe.skipIf(!isRoot, ROOT_REASON)("NativeSnapshotter", () => {
  let s: Scratch;
  let sn: NativeSnapshotter;
  beforeEach(async () => {
    s = await scratch("native-");
    sn = new NativeSnapshotter(`${s.dir}/root`, s.db);
  });
  afterEach(() => s.dispose());

  it("prepare copies the parent's tree with owners, modes, xattrs, links, devices and times", async () => {
    await sn.prepare(NS, "a");
    const fs = sn.upperDir(NS, "a");
    Deno.writeTextFileSync(`${fs}/f`, "f");
    Deno.chmodSync(`${fs}/f`, 0o4751);
    Deno.chownSync(`${fs}/f`, 1000, 2000);
    Deno.chmodSync(`${fs}/f`, 0o4751);
    Deno.linkSync(`${fs}/f`, `${fs}/g`);
    Deno.symlinkSync("/nowhere", `${fs}/l`);
    mknod(`${fs}/null`, S_IFCHR | 0o666, makedev(1, 3));
    lsetxattr(`${fs}/f`, "trusted.t", new TextEncoder().encode("v"));
    Deno.utimeSync(`${fs}/f`, 1000, 1_000_000);
    expect(await sn.prepare(NS, "nope", "a").catch((e) => e.kind)).toBe("failed-precondition");
    await sn.commit(NS, "base", "a");
    expect(sn.mounts(NS, "base")).toEqual([
      { type: "bind", source: fs, options: ["ro", "rbind"] },
    ]);
    const [m] = await sn.prepare(NS, "b", "base");
    expect(m.options).toEqual(["rw", "rbind"]);
    const copy = m.source;
    expect(copy).not.toBe(fs);
    const st = Deno.lstatSync(`${copy}/f`);
    expect([st.mode! & 0o7777, st.uid, st.gid, st.nlink, st.mtime?.getTime()]).toEqual([
      0o4751,
      1000,
      2000,
      2,
      1_000_000_000,
    ]);
    expect(Deno.lstatSync(`${copy}/g`).ino).toBe(st.ino);
    expect(Deno.lstatSync(`${copy}/g`).ino).not.toBe(Deno.lstatSync(`${fs}/g`).ino);
    expect(Deno.readLinkSync(`${copy}/l`)).toBe("/nowhere");
    expect(majorMinor(Deno.lstatSync(`${copy}/null`).rdev!)).toEqual({ major: 1, minor: 3 });
    expect(lgetxattr(`${copy}/f`, "trusted.t")).toEqual(new TextEncoder().encode("v"));
    // Changing the copy leaves the parent alone.
    Deno.writeTextFileSync(`${copy}/f2`, "new");
    expect(() => Deno.lstatSync(`${fs}/f2`)).toThrow();
    await expect(sn.remove(NS, "base")).rejects.toThrow(`snapshot "base" has children: b`);
  });
});
