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
import { statfs, TMPFS_MAGIC } from "./fs.ts";
import { MNT_DETACH, mount, umount2 } from "./mount.ts";
import {
  lgetxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  OVERLAY_OPAQUE_XATTR,
  XATTR_CREATE,
  XATTR_REPLACE,
} from "./xattr.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("xattr", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "ffi-xattr-" });
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("round-trips user.* attributes: set, get, list, remove", () => {
    const f = `${dir}/file`;
    Deno.writeTextFileSync(f, "x");
    expect(lgetxattr(f, "user.k8scd.test")).toBeNull();
    lsetxattr(f, "user.k8scd.test", enc.encode("hello"));
    lsetxattr(f, "user.k8scd.empty", new Uint8Array(0));
    expect(dec.decode(lgetxattr(f, "user.k8scd.test")!)).toBe("hello");
    expect(lgetxattr(f, "user.k8scd.empty")).toEqual(new Uint8Array(0));
    expect(llistxattr(f)).toEqual(expect.arrayContaining(["user.k8scd.test", "user.k8scd.empty"]));
    // Binary values survive, including NULs; a large one needs the size probe.
    const big = Uint8Array.from({ length: 3000 }, (_, i) => i % 256);
    lsetxattr(f, "user.k8scd.test", big, XATTR_REPLACE);
    expect(lgetxattr(f, "user.k8scd.test")).toEqual(big);
    lremovexattr(f, "user.k8scd.test");
    lremovexattr(f, "user.k8scd.empty");
    expect(lgetxattr(f, "user.k8scd.test")).toBeNull();
    expect(llistxattr(f).filter((n) => n.startsWith("user."))).toEqual([]);
  });

  it("reports flag and missing-attribute errors with their errno names", () => {
    const f = `${dir}/flags`;
    Deno.writeTextFileSync(f, "x");
    expect(isErrno(caught(() => lsetxattr(f, "user.a", enc.encode("1"), XATTR_REPLACE)), "ENODATA"))
      .toBe(true);
    lsetxattr(f, "user.a", enc.encode("1"), XATTR_CREATE);
    const exists = caught(() => lsetxattr(f, "user.a", enc.encode("2"), XATTR_CREATE));
    expect((exists as SyscallError).code).toBe("EEXIST");
    expect((exists as SyscallError).message).toBe(
      `lsetxattr ${f}: EEXIST (File exists) [user.a]`,
    );
    lremovexattr(f, "user.a");
    expect(isErrno(caught(() => lremovexattr(f, "user.a")), "ENODATA")).toBe(true);
    expect(isErrno(caught(() => lgetxattr(`${dir}/missing`, "user.a")), "ENOENT")).toBe(true);
    expect(isErrno(caught(() => llistxattr(`${dir}/missing`)), "ENOENT")).toBe(true);
  });

  it("acts on a symlink itself: user.* on a link is EPERM, even for root", () => {
    // The kernel allows user.* attributes only on regular files and directories
    // (fs/xattr.c xattr_permission), so this is an EPERM root cannot bypass.
    Deno.writeTextFileSync(`${dir}/target`, "x");
    Deno.symlinkSync(`${dir}/target`, `${dir}/link`);
    const err = caught(() => lsetxattr(`${dir}/link`, "user.a", enc.encode("1")));
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe("EPERM");
    expect((err as SyscallError).message).toBe(
      `lsetxattr ${dir}/link: EPERM (Operation not permitted) [user.a]`,
    );
    // ...and reading goes to the link, not the target.
    lsetxattr(`${dir}/target`, "user.a", enc.encode("1"));
    expect(lgetxattr(`${dir}/link`, "user.a")).toBeNull();
  });

  it.skipIf(!isRoot, ROOT_REASON)("sets trusted.* (overlay opaque) on tmpfs as root", () => {
    const m = `${dir}/tmpfs`;
    Deno.mkdirSync(m);
    mount("tmpfs", m, "tmpfs", 0, "size=1m");
    try {
      expect(statfs(m).type).toBe(TMPFS_MAGIC);
      Deno.mkdirSync(`${m}/d`);
      lsetxattr(`${m}/d`, OVERLAY_OPAQUE_XATTR, enc.encode("y"));
      expect(dec.decode(lgetxattr(`${m}/d`, OVERLAY_OPAQUE_XATTR)!)).toBe("y");
      expect(llistxattr(`${m}/d`)).toContain(OVERLAY_OPAQUE_XATTR);
      // user.* on tmpfs needs kernel >= 6.6; on older kernels tmpfs says EOPNOTSUPP.
      try {
        lsetxattr(`${m}/d`, "user.x", enc.encode("1"));
        expect(llistxattr(`${m}/d`).sort()).toEqual([OVERLAY_OPAQUE_XATTR, "user.x"].sort());
      } catch (e) {
        if (!isErrno(e, "EOPNOTSUPP")) throw e;
      }
      lremovexattr(`${m}/d`, OVERLAY_OPAQUE_XATTR);
      expect(lgetxattr(`${m}/d`, OVERLAY_OPAQUE_XATTR)).toBeNull();
    } finally {
      umount2(m, MNT_DETACH);
    }
  });
});
