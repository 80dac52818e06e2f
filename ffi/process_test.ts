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
  threadCpuMs,
} from "./process.ts";
import process from "node:process";

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

  it("threadCpuMs counts this thread's CPU, not a busy worker's", async () => {
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end) { /* burn */ }
    };
    let t0 = threadCpuMs();
    spin(100);
    expect(threadCpuMs() - t0).toBeGreaterThan(50);

    // A worker burns 300 ms of CPU while this thread sleeps: the process's CPU time grows by
    // that much, this thread's hardly at all.
    const src = "const end = performance.now() + 300; while (performance.now() < end) {} " +
      "postMessage(0);";
    const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
    const worker = new Worker(url, { type: "module" });
    const before = process.cpuUsage();
    t0 = threadCpuMs();
    await new Promise((r) => worker.onmessage = r);
    const thread = threadCpuMs() - t0;
    const proc = process.cpuUsage(before);
    worker.terminate();
    URL.revokeObjectURL(url);
    expect((proc.user + proc.system) / 1000).toBeGreaterThan(150);
    expect(thread).toBeLessThan(100);
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
