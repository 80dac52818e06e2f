import { describe, expect, it } from "../testing/bdd.ts";
import { cgroupParentDir, parseNetDev, parsePsi, unifiedPathOf } from "./cgroup_files.ts";

describe("parsePsi", () => {
  it("reads some and full lines, total µs → ns", () => {
    const psi = parsePsi(
      "some avg10=1.50 avg60=0.25 avg300=0.01 total=123456\n" +
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=42\n",
    );
    expect(psi).toEqual({
      Some: { Total: 123456000n, Avg10: 1.5, Avg60: 0.25, Avg300: 0.01 },
      Full: { Total: 42000n, Avg10: 0, Avg60: 0, Avg300: 0 },
    });
  });
  it("takes a cpu.pressure with only a some line (kernels before 5.13)", () => {
    const psi = parsePsi("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n");
    expect(psi?.Some?.Total).toBe(7000n);
    expect(psi?.Full).toBeUndefined();
  });
  it("is undefined for empty or foreign text", () => {
    expect(parsePsi("")).toBeUndefined();
    expect(parsePsi("garbage\n")).toBeUndefined();
  });
});

describe("unifiedPathOf", () => {
  it("finds the 0:: line of /proc/<pid>/cgroup (v2 or hybrid)", () => {
    const text = "12:memory:/k/pod1/c1\n1:name=systemd:/k/pod1/c1\n0::/k/pod1/c1\n";
    expect(unifiedPathOf(text)).toBe("/k/pod1/c1");
    expect(unifiedPathOf("12:memory:/x\n")).toBeUndefined();
  });
});

describe("parseNetDev", () => {
  it("reads each link's counters, skipping the headers", () => {
    const text = "Inter-|   Receive                                                |  Transmit\n" +
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
      "    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n" +
      "  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0\n";
    const links = parseNetDev(text);
    expect([...links.keys()]).toEqual(["lo", "eth0"]);
    expect(links.get("eth0")).toEqual({
      rxBytes: 5000,
      rxPackets: 40,
      rxErrors: 1,
      rxDropped: 2,
      txBytes: 3000,
      txPackets: 30,
      txErrors: 3,
      txDropped: 4,
    });
  });
});

describe("cgroupParentDir", () => {
  it("keeps a cgroupfs path", () => {
    expect(cgroupParentDir("cgroupfs", "/kubepods/burstable/pod1/")).toBe(
      "/kubepods/burstable/pod1",
    );
  });
  it("expands a systemd slice into systemd's nesting", () => {
    expect(cgroupParentDir("systemd", "kubepods-burstable-pod1.slice")).toBe(
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
    );
    expect(cgroupParentDir("systemd", "/kubepods.slice/kubepods-pod2.slice")).toBe(
      "/kubepods.slice/kubepods-pod2.slice",
    );
  });
  it("refuses a parent of the other driver, or one that climbs out", () => {
    expect(() => cgroupParentDir("cgroupfs", "kubepods.slice")).toThrow(/not a cgroupfs path/);
    expect(() => cgroupParentDir("cgroupfs", "/kubepods/../../etc")).toThrow(/cgroupfs/);
    expect(() => cgroupParentDir("systemd", "/kubepods/pod1")).toThrow(/not a systemd slice/);
  });
});
