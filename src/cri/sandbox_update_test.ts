import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { LinuxContainerResources } from "../gen/runtime/v1/api.ts";
import { applyCgroupWrites, podCgroupWrites, podLimits, sharesToWeight } from "./sandbox_update.ts";

const res = (o: Partial<LinuxContainerResources>) => LinuxContainerResources.fromPartial(o);

describe("podLimits", () => {
  it("adds the overhead to the containers' sum", () => {
    const l = podLimits(
      res({ cpuQuota: 10000n, cpuPeriod: 100000n, cpuShares: 10n, memoryLimitInBytes: 1000n }),
      res({
        cpuQuota: 50000n,
        cpuPeriod: 100000n,
        cpuShares: 512n,
        memoryLimitInBytes: 64n << 20n,
      }),
    );
    expect(l).toEqual({
      cpuPeriod: 100000,
      cpuQuota: 60000,
      cpuShares: 522,
      memoryLimit: (64 << 20) + 1000,
    });
  });
  it("scales the overhead's quota to the resources' period", () => {
    const l = podLimits(
      res({ cpuQuota: 5000n, cpuPeriod: 50000n }),
      res({ cpuQuota: 20000n, cpuPeriod: 100000n }),
    );
    expect(l.cpuQuota).toBe(30000);
  });
  it("limits nothing the containers do not limit (an overhead alone, or no request)", () => {
    expect(podLimits(res({ memoryLimitInBytes: 1000n }), undefined)).toEqual({});
    expect(podLimits(undefined, res({}))).toEqual({});
  });
  it("keeps -1 as no quota and passes cpusets through", () => {
    expect(podLimits(undefined, res({ cpuQuota: -1n, cpusetCpus: "0-1" }))).toEqual({
      cpuPeriod: 100000,
      cpuQuota: -1,
      cpusetCpus: "0-1",
    });
  });
  it("refuses out-of-range values, naming the field", () => {
    expect(() => podLimits(undefined, res({ cpuQuota: 5n }))).toThrow(/resources\.cpu_quota/);
    expect(() => podLimits(res({ cpuPeriod: 10n }), undefined)).toThrow(/overhead\.cpu_period/);
    expect(() => podLimits(undefined, res({ cpuShares: 1_000_000n }))).toThrow(
      /resources\.cpu_shares/,
    );
    expect(() => podLimits(undefined, res({ memoryLimitInBytes: -5n }))).toThrow(
      /resources\.memory_limit_in_bytes/,
    );
    expect(() => podLimits(undefined, res({ cpusetCpus: "0-1;rm" }))).toThrow(
      /resources\.cpuset_cpus/,
    );
  });
});

describe("podCgroupWrites", () => {
  const limits = { cpuPeriod: 100000, cpuQuota: 50000, cpuShares: 1024, memoryLimit: 4096 };
  it("writes the v1 controllers' files under each hierarchy", () => {
    expect(podCgroupWrites("v1", "/kubepods/pod1", limits, "/cg")).toEqual([
      { file: "/cg/cpu/kubepods/pod1/cpu.cfs_period_us", value: "100000" },
      { file: "/cg/cpu/kubepods/pod1/cpu.cfs_quota_us", value: "50000" },
      { file: "/cg/cpu/kubepods/pod1/cpu.shares", value: "1024" },
      { file: "/cg/memory/kubepods/pod1/memory.limit_in_bytes", value: "4096" },
    ]);
  });
  it("writes cpu.max, cpu.weight and memory.max on v2", () => {
    expect(podCgroupWrites("v2", "/kubepods/pod1", { ...limits, memorySwapLimit: 8192 }, "/cg"))
      .toEqual([
        { file: "/cg/kubepods/pod1/cpu.max", value: "50000 100000" },
        { file: "/cg/kubepods/pod1/cpu.weight", value: "39" },
        { file: "/cg/kubepods/pod1/memory.max", value: "4096" },
        { file: "/cg/kubepods/pod1/memory.swap.max", value: "4096" },
      ]);
    expect(podCgroupWrites("v2", "/p", { cpuQuota: -1, cpuPeriod: 100000 }, "/cg")).toEqual([
      { file: "/cg/p/cpu.max", value: "max 100000" },
    ]);
  });
  it("writes hugepage limits and v2 unified files; refuses unified on v1", () => {
    const l = podLimits(
      undefined,
      res({
        hugepageLimits: [{ pageSize: "2MB", limit: 4194304n }],
        unified: { "memory.high": "1000000" },
      }),
    );
    expect(podCgroupWrites("v2", "/p", l, "/cg")).toEqual([
      { file: "/cg/p/hugetlb.2MB.max", value: "4194304" },
      { file: "/cg/p/memory.high", value: "1000000" },
    ]);
    expect(() => podCgroupWrites("v1", "/p", l, "/cg")).toThrow(/resources\.unified/);
    expect(() => podLimits(undefined, res({ unified: { "../x": "1" } }))).toThrow(/unified/);
    expect(() => podLimits(undefined, res({ hugepageLimits: [{ pageSize: "huge", limit: 1n }] })))
      .toThrow(/hugepage_limits\.page_size/);
  });
  it("converts shares to weight as runc does", () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(262144)).toBe(10000);
    expect(sharesToWeight(1024)).toBe(39);
  });
});

describe("applyCgroupWrites", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await Deno.makeTempDir();
  });
  afterEach(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("writes existing files, and refuses to create a controller file that is not there", async () => {
    await Deno.mkdir(`${dir}/cpu/pod1`, { recursive: true });
    await Deno.writeTextFile(`${dir}/cpu/pod1/cpu.cfs_quota_us`, "-1");
    await applyCgroupWrites([{ file: `${dir}/cpu/pod1/cpu.cfs_quota_us`, value: "50000" }]);
    expect(await Deno.readTextFile(`${dir}/cpu/pod1/cpu.cfs_quota_us`)).toBe("50000");
    await expect(
      applyCgroupWrites([{ file: `${dir}/memory/pod1/memory.limit_in_bytes`, value: "1" }]),
    ).rejects.toThrow(/does not exist/);
    // memsw is absent without swap accounting: skipped.
    await applyCgroupWrites([{ file: `${dir}/cpu/pod1/memory.memsw.limit_in_bytes`, value: "1" }]);
  });
});
