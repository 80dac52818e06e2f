import { describe, expect, it } from "../testing/bdd.ts";
import { interfaceUsage, swapFromStats } from "./stats.ts";

describe("swapFromStats", () => {
  it("is the memory+swap counter minus memory, with what the limits leave", () => {
    const s = swapFromStats({
      memory: { usage: { usage: 1000, limit: 4000 }, swap: { usage: 1300, limit: 6000 } },
    }, 5n);
    expect(s).toEqual({
      timestamp: 5n,
      swapUsageBytes: { value: 300n },
      swapAvailableBytes: { value: 1700n },
    });
  });
  it("has no available bytes when swap is unlimited", () => {
    const s = swapFromStats({
      memory: { usage: { usage: 1000, limit: 2 ** 63 }, swap: { usage: 1000, limit: 2 ** 63 } },
    }, 1n);
    expect(s?.swapUsageBytes).toEqual({ value: 0n });
    expect(s?.swapAvailableBytes).toBeUndefined();
  });
  it("is undefined without swap accounting", () => {
    expect(swapFromStats({ memory: { usage: { usage: 1 } } }, 1n)).toBeUndefined();
  });
});

describe("interfaceUsage", () => {
  it("maps /proc/net/dev counters to the CRI's", () => {
    expect(interfaceUsage("eth0", {
      rxBytes: 1,
      rxPackets: 2,
      rxErrors: 3,
      rxDropped: 4,
      txBytes: 5,
      txPackets: 6,
      txErrors: 7,
      txDropped: 8,
    })).toEqual({
      name: "eth0",
      rxBytes: { value: 1n },
      rxErrors: { value: 3n },
      txBytes: { value: 5n },
      txErrors: { value: 7n },
    });
  });
});
