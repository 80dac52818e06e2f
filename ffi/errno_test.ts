import { describe, expect, it } from "../src/testing/bdd.ts";
import { ERRNO, ERRNO_NAMES, errnoName, isErrno, SyscallError } from "./errno.ts";
import { close } from "./fs.ts";
import { strerror } from "./libc.ts";

describe("errno", () => {
  it("maps the common errno numbers to their names and back", () => {
    const expected: [string, number][] = [
      ["EPERM", 1],
      ["ENOENT", 2],
      ["ESRCH", 3],
      ["EINTR", 4],
      ["EIO", 5],
      ["EBADF", 9],
      ["EAGAIN", 11],
      ["ENOMEM", 12],
      ["EACCES", 13],
      ["EBUSY", 16],
      ["EEXIST", 17],
      ["EXDEV", 18],
      ["ENODEV", 19],
      ["ENOTDIR", 20],
      ["EISDIR", 21],
      ["EINVAL", 22],
      ["ENFILE", 23],
      ["EMFILE", 24],
      ["ENOSPC", 28],
      ["EROFS", 30],
      ["EMLINK", 31],
      ["ENAMETOOLONG", 36],
      ["ENOSYS", 38],
      ["ENOTEMPTY", 39],
      ["ELOOP", 40],
      ["ENODATA", 61],
      ["EOPNOTSUPP", 95],
    ];
    for (const [name, num] of expected) {
      expect(ERRNO[name as keyof typeof ERRNO]).toBe(num);
      expect(ERRNO_NAMES[num]).toBe(name);
    }
  });

  it("maps aliases to the canonical name", () => {
    expect(ERRNO.EWOULDBLOCK).toBe(ERRNO.EAGAIN);
    expect(ERRNO.ENOTSUP).toBe(ERRNO.EOPNOTSUPP);
    expect(errnoName(11)).toBe("EAGAIN");
    expect(errnoName(95)).toBe("EOPNOTSUPP");
    expect(errnoName(4095)).toBe("E4095");
  });

  it("formats SyscallError like `mount /x: EPERM (Operation not permitted)`", () => {
    const e = new SyscallError("mount", 1, "/x");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("SyscallError");
    expect(e.message).toBe("mount /x: EPERM (Operation not permitted)");
    expect(e.syscall).toBe("mount");
    expect(e.path).toBe("/x");
    expect(e.errno).toBe(1);
    expect(e.code).toBe("EPERM");
    expect(new SyscallError("setns", 13).message).toBe("setns: EACCES (Permission denied)");
  });

  it("matches errors by name, alias or number with isErrno", () => {
    const e = new SyscallError("flock", 11);
    expect(isErrno(e, "EAGAIN")).toBe(true);
    expect(isErrno(e, "EWOULDBLOCK")).toBe(true);
    expect(isErrno(e, 11)).toBe(true);
    expect(isErrno(e, "ENOENT")).toBe(false);
    expect(isErrno(new Error("EAGAIN"), "EAGAIN")).toBe(false);
    expect(isErrno(undefined, "EAGAIN")).toBe(false);
  });

  it("reads errno from libc right after a real failing call", () => {
    // close(-1) fails with EBADF for anyone.
    let caught: unknown;
    try {
      close(-1);
    } catch (e) {
      caught = e;
    }
    expect(isErrno(caught, "EBADF")).toBe(true);
    expect((caught as SyscallError).message).toBe("close: EBADF (Bad file descriptor) [fd -1]");
  });

  it("uses the C library's strerror text", () => {
    expect(strerror(2)).toBe("No such file or directory");
  });
});
