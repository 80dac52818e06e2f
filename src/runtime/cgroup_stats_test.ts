import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import {
  cgroupDirsOf,
  parseBlkioV1,
  parseIoStat,
  parseSingle,
  readV1Stats,
  readV2Stats,
} from "./cgroup_stats.ts";
import { errorKind } from "../errdefs/errors.ts";

const MAX_U64 = 18446744073709551615;
let tmp = "";

async function writeTree(dir: string, files: Record<string, string>) {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
}

describe("cgroup stats from the cgroup files", () => {
  beforeAll(async () => {
    tmp = await Deno.makeTempDir({ prefix: "k8sc-cgstats-" });
  });
  afterAll(async () => {
    await Deno.remove(tmp, { recursive: true });
  });

  it("finds the v2 directory on a unified host and each controller's on v1/hybrid", () => {
    expect(cgroupDirsOf("0::/kubepods.slice/k8scontainerd-abc.scope\n", "/cg")).toEqual({
      v2: "/cg/kubepods.slice/k8scontainerd-abc.scope",
    });
    const v1 = cgroupDirsOf(
      "9:name=systemd:/x\n4:memory:/kubepods/pod1/c1\n2:cpu,cpuacct:/kubepods/pod1/c1\n0::/\n",
      "/cg",
    );
    expect("v1" in v1 && Object.fromEntries(v1.v1)).toEqual({
      memory: "/cg/memory/kubepods/pod1/c1",
      cpu: "/cg/cpu/kubepods/pod1/c1",
      cpuacct: "/cg/cpuacct/kubepods/pod1/c1",
    });
  });

  it("v2: cpu.stat in microseconds becomes nanoseconds; swap is reported as memory+swap", async () => {
    const dir = `${tmp}/v2`;
    await writeTree(dir, {
      "cpu.stat":
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n",
      "memory.current": "1048576\n",
      "memory.max": "4194304\n",
      "memory.stat": "anon 524288\nfile 262144\ninactive_file 131072\npgfault 77\n",
      "memory.swap.current": "4096\n",
      "memory.swap.max": "max\n",
      "pids.current": "3\n",
      "pids.max": "max\n",
      "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    });
    const s = await readV2Stats(dir);
    expect(s.cpu?.usage).toEqual({ total: 1_500_000, user: 1_000_000, kernel: 500_000 });
    expect(s.cpu?.throttling).toEqual({ periods: 4, throttledPeriods: 1, throttledTime: 20_000 });
    expect(s.memory?.usage).toEqual({ usage: 1048576, limit: 4194304, max: undefined });
    expect(s.memory?.cache).toBe(262144);
    expect(s.memory?.raw?.inactive_file).toBe(131072);
    expect(s.memory?.swap).toEqual({ usage: 1048576 + 4096, limit: MAX_U64 });
    expect(s.pids).toEqual({ current: 3, limit: 0 });
    expect(s.blkio?.ioServiceBytesRecursive).toEqual([
      { major: 8, minor: 0, op: "Read", value: 4096 },
      { major: 8, minor: 0, op: "Write", value: 8192 },
    ]);
    expect(s.blkio?.ioServicedRecursive?.map((e) => e.value)).toEqual([1, 2]);
  });

  it("v2 without swap accounting has no swap; no memory.max means no limit", async () => {
    const dir = `${tmp}/v2-noswap`;
    await writeTree(dir, { "cpu.stat": "usage_usec 1\n", "memory.current": "10\n" });
    const s = await readV2Stats(dir);
    expect(s.memory?.swap).toBeUndefined();
    expect(s.memory?.usage?.limit).toBe(MAX_U64);
    expect(s.pids).toBeUndefined();
  });

  it("v1: cpuacct ticks become nanoseconds; memsw and kmem read; throttle blkio files", async () => {
    const root = `${tmp}/v1`;
    await writeTree(`${root}/cpuacct/c`, {
      "cpuacct.usage": "123456789\n",
      "cpuacct.stat": "user 12\nsystem 3\n",
    });
    await writeTree(`${root}/cpu/c`, {
      "cpu.stat": "nr_periods 5\nnr_throttled 2\nthrottled_time 999\n",
    });
    await writeTree(`${root}/memory/c`, {
      "memory.usage_in_bytes": "2000\n",
      "memory.limit_in_bytes": "9223372036854771712\n",
      "memory.max_usage_in_bytes": "3000\n",
      "memory.failcnt": "0\n",
      "memory.stat": "cache 100\nrss 1900\ntotal_inactive_file 50\n",
      "memory.memsw.usage_in_bytes": "2100\n",
      "memory.memsw.limit_in_bytes": "9223372036854771712\n",
    });
    await writeTree(`${root}/pids/c`, { "pids.current": "1\n", "pids.max": "50\n" });
    await writeTree(`${root}/blkio/c`, {
      "blkio.throttle.io_service_bytes_recursive": "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
      "blkio.throttle.io_serviced_recursive": "8:0 Read 1\nTotal 1\n",
    });
    const dirs = cgroupDirsOf(
      "8:pids:/c\n7:blkio:/c\n4:memory:/c\n2:cpuacct:/c\n1:cpu:/c\n0::/\n",
      root,
    );
    if (!("v1" in dirs)) throw new Error("expected v1 directories");
    const s = await readV1Stats(dirs.v1);
    expect(s.cpu?.usage).toEqual({ total: 123456789, user: 120_000_000, kernel: 30_000_000 });
    expect(s.cpu?.throttling?.throttledTime).toBe(999);
    expect(s.memory?.usage).toEqual({
      usage: 2000,
      limit: 9223372036854771712,
      max: 3000,
      failcnt: 0,
    });
    expect(s.memory?.cache).toBe(100);
    expect(s.memory?.swap?.usage).toBe(2100);
    expect(s.memory?.kernel).toBeUndefined();
    expect(s.pids).toEqual({ current: 1, limit: 50 });
    expect(s.blkio?.ioServiceBytesRecursive?.map((e) => `${e.op}=${e.value}`)).toEqual([
      "Read=10",
      "Write=20",
    ]);
  });

  it("a cgroup that is gone is FailedPrecondition naming it", async () => {
    const e = await readV2Stats(`${tmp}/nope`).catch((e) => e);
    expect(errorKind(e)).toBe("failed-precondition");
    expect(String(e.message)).toContain(`${tmp}/nope`);
    const e1 = await readV1Stats(new Map([["memory", `${tmp}/nope1`]])).catch((e) => e);
    expect(errorKind(e1)).toBe("failed-precondition");
  });

  it("parsers skip what they do not understand", () => {
    expect(parseSingle("max")).toBe(MAX_U64);
    expect(parseSingle("")).toBeUndefined();
    expect(parseSingle("-1")).toBeUndefined();
    expect(parseIoStat("garbage\n8:1 rbytes=x\n").ioServiceBytesRecursive).toEqual([]);
    expect(parseBlkioV1("Total 5\n8:0 Read\n")).toEqual([]);
  });
});
