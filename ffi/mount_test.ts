import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../src/testing/bdd.ts";
import { isErrno, SyscallError } from "./errno.ts";
import { close, mkWhiteout, O_CREAT, O_WRONLY, open, statfs, TMPFS_MAGIC } from "./fs.ts";
import {
  bindMount,
  isMountPoint,
  makePrivate,
  MNT_DETACH,
  mount,
  MountDataTooLongError,
  mountInfo,
  mountOverlay,
  MS_NODEV,
  MS_NOSUID,
  overlayOptions,
  parseMountInfo,
  umount2,
  unescapeMountField,
} from "./mount.ts";
import { lgetxattr, lsetxattr, OVERLAY_OPAQUE_XATTR } from "./xattr.ts";

const enc = new TextEncoder();

/** Unmounts everything at or below `dir` (deepest first), ignoring what is already gone. */
function unmountAll(dir: string): void {
  const mine = mountInfo()
    .filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`))
    .map((m) => m.mountPoint)
    .sort((a, b) => b.length - a.length);
  for (const m of mine) {
    try {
      umount2(m, MNT_DETACH);
    } catch (e) {
      if (!isErrno(e, "EINVAL") && !isErrno(e, "ENOENT")) throw e;
    }
  }
}

describe("mountinfo parsing", () => {
  it("parses fields, optional tags and octal escapes", () => {
    const text = [
      "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue",
      "22 27 0:21 / /proc rw,relatime - proc proc rw",
      "",
    ].join("\n");
    const [a, b] = parseMountInfo(text);
    expect(a).toEqual({
      id: 36,
      parent: 35,
      major: 98,
      minor: 0,
      root: "/mnt1",
      mountPoint: "/mnt/with space",
      options: ["rw", "noatime"],
      optional: ["master:1", "shared:7"],
      shared: 7,
      master: 1,
      fsType: "ext3",
      source: "/dev/root",
      superOptions: ["rw", "errors=continue"],
    });
    expect(b.optional).toEqual([]);
    expect(b.shared).toBeUndefined();
    expect(unescapeMountField("a\\011b\\012c\\134d")).toBe("a\tb\nc\\d");
  });

  it("reads this process's mounts, / and /proc included", () => {
    const mounts = mountInfo();
    expect(mounts.some((m) => m.mountPoint === "/")).toBe(true);
    expect(mounts.find((m) => m.mountPoint === "/proc")?.fsType).toBe("proc");
    expect(isMountPoint("/proc")).toBe(true);
    expect(isMountPoint("/proc/self")).toBe(false);
    expect(isMountPoint("/does/not/exist")).toBe(false);
  });
});

describe("overlay options", () => {
  it("joins lowers top-most first and adds upper, work and extras", () => {
    expect(overlayOptions({
      lower: ["/l2", "/l1"],
      upper: "/u",
      work: "/w",
      target: "/m",
      extra: ["index=off"],
    })).toBe("lowerdir=/l2:/l1,upperdir=/u,workdir=/w,index=off");
    expect(overlayOptions({ lower: ["/a", "/b"], target: "/m" })).toBe("lowerdir=/a:/b");
  });

  it("refuses options over the 4096-byte page limit with an error naming the limit", () => {
    const lower = Array.from(
      { length: 60 },
      (_, i) => `/var/lib/k8scontainerd/snapshots/${i}/fs`.padEnd(80, "x"),
    );
    let caught: unknown;
    try {
      mountOverlay({ lower, upper: "/u", work: "/w", target: "/mnt/too-long" });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(MountDataTooLongError);
    const err = caught as MountDataTooLongError;
    expect(err.limit).toBe(4096);
    expect(err.length).toBeGreaterThan(4096);
    expect(err.message).toContain("4096-byte");
    expect(err.message).toContain("/mnt/too-long");
    // Exactly at the limit still passes the check: 4095 characters plus the NUL.
    const fits = "x".repeat(4095 - "lowerdir=/".length);
    expect(overlayOptions({ lower: [`/${fits}`], target: "/m" }).length).toBe(4095);
    expect(() => overlayOptions({ lower: [`/${fits}x`], target: "/m" })).toThrow(
      MountDataTooLongError,
    );
  });

  it("rejects paths with ':' or ',' and upper without work", () => {
    expect(() => overlayOptions({ lower: ["/a:b"], target: "/m" })).toThrow(/':' or ','/);
    expect(() => overlayOptions({ lower: ["/a"], upper: "/u", target: "/m" })).toThrow(TypeError);
    expect(() => overlayOptions({ lower: [], target: "/m" })).toThrow(TypeError);
  });
});

describe("mounts (root)", () => {
  let dir = "";
  beforeAll(async () => {
    if (!isRoot) return;
    dir = await Deno.makeTempDir({ prefix: "ffi-mount-" });
    // A private tmpfs as the playground, so nothing we mount propagates to the host.
    mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=0755");
    makePrivate(dir);
  });
  afterAll(async () => {
    if (!dir) return;
    unmountAll(dir);
    await Deno.remove(dir, { recursive: true });
  });

  it.skipIf(!isRoot, ROOT_REASON)(
    "mounts a tmpfs, shows it in mountinfo and statfs, unmounts",
    () => {
      const target = `${dir}/tmpfs`;
      Deno.mkdirSync(target);
      mount("tmpfs", target, "tmpfs", MS_NOSUID, "size=1m");
      try {
        Deno.writeTextFileSync(`${target}/hello`, "hi");
        const entry = mountInfo().findLast((m) => m.mountPoint === target);
        expect(entry?.fsType).toBe("tmpfs");
        expect(entry?.options).toContain("nosuid");
        expect(entry?.superOptions.some((o) => o.startsWith("size="))).toBe(true);
        expect(statfs(target).type).toBe(TMPFS_MAGIC);
        expect(isMountPoint(target)).toBe(true);
      } finally {
        umount2(target);
      }
      expect(isMountPoint(target)).toBe(false);
      expect(() => Deno.statSync(`${target}/hello`)).toThrow(Deno.errors.NotFound);
    },
  );

  it.skipIf(!isRoot, ROOT_REASON)(
    "overlays two lowers with an upper: reads, copy-up, whiteouts, opaque dirs",
    () => {
      const o = `${dir}/ovl`;
      for (const d of ["l1/dir", "l2/dir", "l1/opaq", "upper/opaq", "work", "merged"]) {
        Deno.mkdirSync(`${o}/${d}`, { recursive: true });
      }
      Deno.writeTextFileSync(`${o}/l1/from-l1`, "one");
      Deno.writeTextFileSync(`${o}/l2/from-l2`, "two");
      Deno.writeTextFileSync(`${o}/l1/shadowed`, "bottom");
      Deno.writeTextFileSync(`${o}/l2/shadowed`, "top");
      Deno.writeTextFileSync(`${o}/l1/hidden-by-whiteout`, "x");
      Deno.writeTextFileSync(`${o}/l1/deleted-later`, "x");
      Deno.writeTextFileSync(`${o}/l1/opaq/lower-only`, "x");
      Deno.writeTextFileSync(`${o}/upper/opaq/upper-only`, "y");
      // Prepared in the upper before mounting, as unpacking a layer would.
      mkWhiteout(`${o}/upper/hidden-by-whiteout`);
      lsetxattr(`${o}/upper/opaq`, OVERLAY_OPAQUE_XATTR, enc.encode("y"));

      const m = `${o}/merged`;
      mountOverlay({
        lower: [`${o}/l2`, `${o}/l1`],
        upper: `${o}/upper`,
        work: `${o}/work`,
        target: m,
      });
      try {
        expect(mountInfo().findLast((e) => e.mountPoint === m)?.fsType).toBe("overlay");
        expect(Deno.readTextFileSync(`${m}/from-l1`)).toBe("one");
        expect(Deno.readTextFileSync(`${m}/from-l2`)).toBe("two");
        expect(Deno.readTextFileSync(`${m}/shadowed`)).toBe("top"); // first lower wins
        // Writes land in the upper.
        Deno.writeTextFileSync(`${m}/new`, "written");
        expect(Deno.readTextFileSync(`${o}/upper/new`)).toBe("written");
        // A whiteout made with mkWhiteout hides the lower file.
        expect(() => Deno.statSync(`${m}/hidden-by-whiteout`)).toThrow(Deno.errors.NotFound);
        // Deleting a lower file through the overlay leaves a 0/0 char device in the upper.
        Deno.removeSync(`${m}/deleted-later`);
        const wh = Deno.lstatSync(`${o}/upper/deleted-later`);
        expect(wh.isCharDevice).toBe(true);
        expect(wh.rdev).toBe(0);
        // The opaque upper dir hides the lower dir's contents.
        expect([...Deno.readDirSync(`${m}/opaq`)].map((e) => e.name)).toEqual(["upper-only"]);
        expect(lgetxattr(`${o}/upper/opaq`, OVERLAY_OPAQUE_XATTR)).toEqual(enc.encode("y"));
        // The lowers are untouched.
        expect(Deno.readTextFileSync(`${o}/l1/deleted-later`)).toBe("x");
      } finally {
        umount2(m);
      }
    },
  );

  it.skipIf(!isRoot, ROOT_REASON)("bind-mounts read-only: writes fail with EROFS", () => {
    const src = `${dir}/bind-src`;
    const dst = `${dir}/bind-dst`;
    Deno.mkdirSync(src);
    Deno.mkdirSync(dst);
    Deno.writeTextFileSync(`${src}/f`, "data");
    bindMount(src, dst, { readonly: true });
    try {
      expect(Deno.readTextFileSync(`${dst}/f`)).toBe("data");
      const entry = mountInfo().findLast((m) => m.mountPoint === dst);
      expect(entry?.options).toContain("ro");
      // The playground's nosuid/nodev survive the read-only remount.
      expect(entry?.options).toContain("nosuid");
      expect(entry?.options).toContain("nodev");
      expect(() => Deno.writeTextFileSync(`${dst}/g`, "x")).toThrow(/Read-only file system/);
      let caught: unknown;
      try {
        close(open(`${dst}/g`, O_WRONLY | O_CREAT, 0o644));
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(SyscallError);
      expect((caught as SyscallError).code).toBe("EROFS");
      expect((caught as SyscallError).message).toBe(
        `open ${dst}/g: EROFS (Read-only file system)`,
      );
      expect(() => mkWhiteout(`${dst}/wh`)).toThrow(/mknod .*: EROFS/);
      // The source itself stays writable.
      Deno.writeTextFileSync(`${src}/g`, "ok");
    } finally {
      umount2(dst);
    }
  });

  it.skipIf(!isRoot, ROOT_REASON)("bind-mounts recursively, submounts included", () => {
    const src = `${dir}/rec-src`;
    const dst = `${dir}/rec-dst`;
    Deno.mkdirSync(`${src}/sub`, { recursive: true });
    Deno.mkdirSync(dst);
    mount("tmpfs", `${src}/sub`, "tmpfs", 0, "size=1m");
    try {
      Deno.writeTextFileSync(`${src}/sub/inner`, "in");
      bindMount(src, dst, { recursive: true });
      try {
        expect(Deno.readTextFileSync(`${dst}/sub/inner`)).toBe("in");
        expect(isMountPoint(`${dst}/sub`)).toBe(true);
      } finally {
        umount2(dst, MNT_DETACH);
      }
    } finally {
      umount2(`${src}/sub`);
    }
  });

  it.skipIf(!isRoot, ROOT_REASON)("fails on a missing target with ENOENT and the path", () => {
    const target = `${dir}/no/such/dir`;
    let caught: unknown;
    try {
      mount("tmpfs", target, "tmpfs", 0);
    } catch (e) {
      caught = e;
    }
    expect(isErrno(caught, "ENOENT")).toBe(true);
    const err = caught as SyscallError;
    expect(err.syscall).toBe("mount");
    expect(err.path).toBe(target);
    expect(err.message).toBe(`mount ${target}: ENOENT (No such file or directory)`);
    // umount2 of something that is not a mount point: EINVAL.
    expect(() => umount2(dir + "/bind-src")).toThrow(/umount2 .*: EINVAL/);
  });
});
