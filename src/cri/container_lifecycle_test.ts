/** CRI resources → spec options: what the kubelet sends, and what a host cannot apply. */
import { describe, expect, it } from "../testing/bdd.ts";
import { LinuxContainerResources } from "../gen/runtime/v1/api.ts";
import { resourceOptions } from "./container_lifecycle.ts";

describe("resourceOptions", () => {
  // The kubelet sends a 0-byte limit per huge page size of the machine with every container.
  const kubelet = LinuxContainerResources.fromPartial({
    cpuShares: 2n,
    hugepageLimits: [{ pageSize: "2MB", limit: 0n }, { pageSize: "1GB", limit: 0n }],
  });

  it("keeps hugepage limits where the hugetlb controller is mounted", () => {
    expect(resourceOptions(kubelet, true)!.hugepageLimits).toEqual([
      { pageSize: "2MB", limit: 0 },
      { pageSize: "1GB", limit: 0 },
    ]);
  });

  it("drops them where it is not (runc would fail: cannot set hugetlb limit)", () => {
    const r = resourceOptions(kubelet, false)!;
    expect(r.hugepageLimits).toEqual([]);
    expect(r.cpu!.shares).toBe(2);
  });
});
