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
import {
  AT_SYMLINK_NOFOLLOW,
  CGROUP2_SUPER_MAGIC,
  CGROUP_SUPER_MAGIC,
  cgroupMode,
  close,
  flock,
  fsync,
  lchown,
  LOCK_EX,
  LOCK_NB,
  LOCK_SH,
  LOCK_UN,
  lutimes,
  majorMinor,
  makedev,
  mknod,
  mkWhiteout,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_RDONLY,
  O_WRONLY,
  open,
  S_IFCHR,
  S_IFIFO,
  statfs,
  TMPFS_MAGIC,
  utimensat,
} from "./fs.ts";
import { mountInfo } from "./mount.ts";

let dir = "";

describe("fs", () => {
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "ffi-fs-" });
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("uses the O_* values of this machine", () => {
    if (Deno.build.arch === "aarch64") {
      expect([O_DIRECTORY, O_NOFOLLOW]).toEqual([0o40000, 0o100000]);
    } else {
      expect([O_DIRECTORY, O_NOFOLLOW]).toEqual([0o200000, 0o400000]);
    }
    // And the kernel agrees: O_DIRECTORY on a file is ENOTDIR, O_NOFOLLOW on a link is ELOOP.
    Deno.writeTextFileSync(`${dir}/file`, "x");
    Deno.symlinkSync(`${dir}/file`, `${dir}/link`);
    expect(() => open(`${dir}/file`, O_RDONLY | O_DIRECTORY)).toThrow(/ENOTDIR/);
    expect(() => open(`${dir}/link`, O_RDONLY | O_NOFOLLOW)).toThrow(/ELOOP/);
    close(open(`${dir}`, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  });

  it("opens, creates exclusively, fsyncs and closes raw descriptors", () => {
    const fd = open(`${dir}/new`, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600);
    expect(fd).toBeGreaterThan(2);
    fsync(fd);
    close(fd);
    expect(Deno.statSync(`${dir}/new`).mode! & 0o777).toBe(0o600 & ~Deno.umask());
    expect(() => open(`${dir}/new`, O_WRONLY | O_CREAT | O_EXCL, 0o600)).toThrow(/EEXIST/);
    let caught: unknown;
    try {
      open(`${dir}/missing`, O_RDONLY);
    } catch (e) {
      caught = e;
    }
    expect(isErrno(caught, "ENOENT")).toBe(true);
    expect((caught as SyscallError).path).toBe(`${dir}/missing`);
    // A descriptor number far above any open one: EBADF (re-closing `fd` could hit a reused fd).
    expect(() => close(1 << 20)).toThrow(/close: EBADF/);
  });

  it("makedev encodes like glibc, and decodes /dev/null's rdev", () => {
    expect(makedev(1, 3)).toBe(259n);
    expect(makedev(0, 0)).toBe(0n);
    expect(majorMinor(makedev(4095, 1048575))).toEqual({ major: 4095, minor: 1048575 });
    expect(majorMinor(makedev(259, 300))).toEqual({ major: 259, minor: 300 });
    expect(majorMinor(Deno.lstatSync("/dev/null").rdev!)).toEqual({ major: 1, minor: 3 });
  });

  it("makes a FIFO with mknod", () => {
    mknod(`${dir}/fifo`, S_IFIFO | 0o644);
    expect(Deno.lstatSync(`${dir}/fifo`).isFifo).toBe(true);
    expect(() => mknod(`${dir}/fifo`, S_IFIFO | 0o644)).toThrow(/mknod .*fifo: EEXIST/);
  });

  it.skipIf(!isRoot, ROOT_REASON)("makes device nodes and 0/0 whiteouts", () => {
    mknod(`${dir}/null`, S_IFCHR | 0o666, makedev(1, 3));
    const st = Deno.lstatSync(`${dir}/null`);
    expect(st.isCharDevice).toBe(true);
    expect(majorMinor(st.rdev!)).toEqual({ major: 1, minor: 3 });
    mkWhiteout(`${dir}/wh`);
    const wh = Deno.lstatSync(`${dir}/wh`);
    expect(wh.isCharDevice).toBe(true);
    expect(wh.rdev).toBe(0);
  });

  it.skipIf(!isRoot, ROOT_REASON)("lchown changes the symlink, not its target", () => {
    Deno.writeTextFileSync(`${dir}/target`, "t");
    Deno.symlinkSync(`${dir}/target`, `${dir}/own-link`);
    lchown(`${dir}/own-link`, 1234, 4321);
    const l = Deno.lstatSync(`${dir}/own-link`);
    expect([l.uid, l.gid]).toEqual([1234, 4321]);
    const t = Deno.statSync(`${dir}/target`);
    expect([t.uid, t.gid]).toEqual([0, 0]);
    lchown(`${dir}/own-link`, -1, 99); // -1 keeps the uid
    const l2 = Deno.lstatSync(`${dir}/own-link`);
    expect([l2.uid, l2.gid]).toEqual([1234, 99]);
  });

  it("sets a symlink's own times with utimensat AT_SYMLINK_NOFOLLOW", () => {
    Deno.writeTextFileSync(`${dir}/t2`, "t");
    Deno.symlinkSync(`${dir}/t2`, `${dir}/time-link`);
    const targetBefore = Deno.statSync(`${dir}/t2`).mtime!.getTime();
    const when = new Date("2001-02-03T04:05:06.789Z");
    utimensat(`${dir}/time-link`, when, when, AT_SYMLINK_NOFOLLOW);
    expect(Deno.lstatSync(`${dir}/time-link`).mtime!.getTime()).toBe(when.getTime());
    expect(Deno.statSync(`${dir}/t2`).mtime!.getTime()).toBe(targetBefore);
    // Seconds (as Deno.utime takes), exact pairs, and "omit".
    lutimes(`${dir}/time-link`, "omit", 1_000_000_000.5);
    expect(Deno.lstatSync(`${dir}/time-link`).mtime!.getTime()).toBe(1_000_000_000_500);
    expect(Deno.lstatSync(`${dir}/time-link`).atime!.getTime()).toBe(when.getTime());
    lutimes(`${dir}/time-link`, { sec: 5, nsec: 0 }, { sec: 7, nsec: 250_000_000 });
    const st = Deno.lstatSync(`${dir}/time-link`);
    expect([st.atime!.getTime(), st.mtime!.getTime()]).toEqual([5000, 7250]);
    // Without the flag it follows the link.
    utimensat(`${dir}/time-link`, when, when);
    expect(Deno.statSync(`${dir}/t2`).mtime!.getTime()).toBe(when.getTime());
    expect(() => lutimes(`${dir}/nope`, "now", "now")).toThrow(/utimensat .*nope: ENOENT/);
  });

  it("statfs of / agrees with stat -f", async () => {
    const s = statfs("/");
    const out = await new Deno.Command("stat", {
      args: ["-f", "-c", "%t %s %S %b %c %l", "/"],
      stdout: "piped",
    }).output();
    const [type, bsize, frsize, blocks, files, namelen] = new TextDecoder().decode(out.stdout)
      .trim().split(" ");
    expect(s.type).toBe(parseInt(type, 16));
    expect(s.bsize).toBe(Number(bsize));
    expect(s.frsize).toBe(Number(frsize));
    expect(s.blocks).toBe(Number(blocks));
    expect(s.files).toBe(Number(files));
    expect(s.namelen).toBe(Number(namelen));
    expect(s.bfree).toBeLessThanOrEqual(s.blocks);
    expect(s.bavail).toBeLessThanOrEqual(s.bfree);
    expect(() => statfs("/does/not/exist")).toThrow(/statfs \/does\/not\/exist: ENOENT/);
  });

  it("detects the cgroup mode from statfs like the doctor will", () => {
    const mode = cgroupMode();
    // Cross-check with mountinfo.
    const mounts = mountInfo();
    const at = (p: string) => mounts.findLast((m) => m.mountPoint === p)?.fsType;
    const root = at("/sys/fs/cgroup");
    if (root === "cgroup2") {
      expect(mode).toBe("v2");
      expect(statfs("/sys/fs/cgroup").type).toBe(CGROUP2_SUPER_MAGIC);
    } else if (root === "tmpfs") {
      expect(statfs("/sys/fs/cgroup").type).toBe(TMPFS_MAGIC);
      expect(mode).toBe(at("/sys/fs/cgroup/unified") === "cgroup2" ? "hybrid" : "v1");
      const v1 = mounts.find((m) =>
        m.fsType === "cgroup" && m.mountPoint.startsWith("/sys/fs/cgroup/")
      );
      if (v1) expect(statfs(v1.mountPoint).type).toBe(CGROUP_SUPER_MAGIC);
    } else {
      expect(mode).toBe("none");
    }
    expect(cgroupMode(`${dir}/no-cgroup`)).toBe("none");
  });

  it("flock LOCK_EX|LOCK_NB: a second process gets EAGAIN until the holder closes", async () => {
    const lockFile = `${dir}/lock`;
    Deno.writeTextFileSync(lockFile, "");
    const fsUrl = import.meta.resolve("./fs.ts");
    const child = async () => {
      const code = `
        import { open, flock, close, O_RDONLY, O_CLOEXEC, LOCK_EX, LOCK_NB } from ${
        JSON.stringify(fsUrl)
      };
        const fd = open(${JSON.stringify(lockFile)}, O_RDONLY | O_CLOEXEC);
        try { flock(fd, LOCK_EX | LOCK_NB); console.log("locked"); }
        catch (e) { console.log(e.code); }
        finally { close(fd); }`;
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--no-lock", code],
        stdout: "piped",
        stderr: "piped",
      }).output();
      expect(new TextDecoder().decode(out.stderr)).toBe("");
      return new TextDecoder().decode(out.stdout).trim();
    };
    const fd = open(lockFile, O_RDONLY | O_CLOEXEC);
    let closed = false;
    try {
      flock(fd, LOCK_EX | LOCK_NB);
      expect(await child()).toBe("EAGAIN");
      // In-process, a second open file description conflicts too.
      const fd2 = open(lockFile, O_RDONLY | O_CLOEXEC);
      try {
        let caught: unknown;
        try {
          flock(fd2, LOCK_SH | LOCK_NB);
        } catch (e) {
          caught = e;
        }
        expect(isErrno(caught, "EWOULDBLOCK")).toBe(true);
        expect((caught as SyscallError).code).toBe("EAGAIN");
      } finally {
        close(fd2);
      }
      close(fd);
      closed = true;
      expect(await child()).toBe("locked");
    } finally {
      if (!closed) close(fd);
    }
    // LOCK_UN releases without closing.
    const fd3 = open(lockFile, O_RDONLY | O_CLOEXEC);
    try {
      flock(fd3, LOCK_EX | LOCK_NB);
      flock(fd3, LOCK_UN);
      expect(await child()).toBe("locked");
    } finally {
      close(fd3);
    }
  });
});

describe("close-on-exec", () => {
  for (const walk of [false, true]) {
    it(
      `marks descriptors so a child process does not inherit them (${
        walk ? "walking /proc/self/fd" : "close_range"
      })`,
      async () => {
        const { open, close, closeOnExecAll, O_RDONLY } = await import("./fs.ts");
        const fd = open("/etc/hostname", O_RDONLY); // no O_CLOEXEC: a child would inherit it
        try {
          const inherited = async () => {
            const out = await new Deno.Command("sh", { args: ["-c", `ls /proc/self/fd`] }).output();
            return new TextDecoder().decode(out.stdout).split("\n").includes(String(fd));
          };
          expect(await inherited()).toBe(true);
          closeOnExecAll({ walk });
          expect(await inherited()).toBe(false);
          // Still open here: marked, not closed.
          expect(Deno.readLinkSync(`/proc/self/fd/${fd}`)).toBe("/etc/hostname");
        } finally {
          close(fd);
        }
      },
    );
  }
});
