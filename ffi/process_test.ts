import { describe, expect, isEmulated, it } from "../src/testing/bdd.ts";
import {
  getpid,
  gettid,
  isChildSubreaper,
  mallocTrim,
  PR_GET_PDEATHSIG,
  prctl,
  setChildSubreaper,
  setPdeathsig,
} from "./process.ts";

describe("process", () => {
  it("getpid is Deno.pid", () => {
    expect(getpid()).toBe(Deno.pid);
  });

  it("mallocTrim hands memory back without disturbing live data", async () => {
    const live = new Uint8Array(1 << 20).fill(7);
    let garbage: Uint8Array[] | undefined = Array.from({ length: 64 }, () => new Uint8Array(65536));
    garbage = undefined;
    expect(typeof await mallocTrim()).toBe("boolean");
    expect(garbage).toBe(undefined);
    expect(live.every((b) => b === 7)).toBe(true);
  });

  it("gettid is the JS thread, the one /proc/thread-self names", () => {
    expect(Deno.readLinkSync("/proc/thread-self")).toBe(`${Deno.pid}/task/${gettid()}`);
  });

  // qemu-user (7.2) answers PR_SET/PR_GET_CHILD_SUBREAPER with EINVAL: it does not forward them.
  it.skipIf(isEmulated, "qemu-user does not forward prctl(PR_*_CHILD_SUBREAPER): EINVAL")(
    "turns the child subreaper flag on and off",
    () => {
      const before = isChildSubreaper();
      try {
        setChildSubreaper(true);
        expect(isChildSubreaper()).toBe(true);
        setChildSubreaper(false);
        expect(isChildSubreaper()).toBe(false);
      } finally {
        setChildSubreaper(before);
      }
    },
  );

  it("sets the parent-death signal", () => {
    const sig = new Int32Array(1);
    const ptr = () => Deno.UnsafePointer.value(Deno.UnsafePointer.of(sig));
    prctl(PR_GET_PDEATHSIG, ptr());
    const before = sig[0];
    try {
      setPdeathsig(10);
      prctl(PR_GET_PDEATHSIG, ptr());
      expect(sig[0]).toBe(10);
    } finally {
      setPdeathsig(before);
    }
  });

  it("reports prctl failures as SyscallError EINVAL", () => {
    expect(() => prctl(-1)).toThrow(/prctl: EINVAL/);
  });
});
