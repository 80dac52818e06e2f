import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import { requestedDevices } from "./request.ts";

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
}

describe("CDI requests", () => {
  it("takes CDI_devices first, then cdi.k8s.io/ annotations by key, each device once", () => {
    expect(requestedDevices({
      CDIDevices: [{ name: "v.com/d=a" }, { name: "v.com/d=a" }],
      annotations: {
        "cdi.k8s.io/z": "v.com/d=c",
        "cdi.k8s.io/b": " v.com/d=b , v.com/d=a,",
        "other/x": "not-a-device",
      },
    })).toEqual(["v.com/d=a", "v.com/d=b", "v.com/d=c"]);
    expect(requestedDevices({})).toEqual([]);
  });

  it("names the annotation a malformed device comes from", () => {
    const e = thrown(() => requestedDevices({ annotations: { "cdi.k8s.io/gpu": "nope" } }));
    expect(isKind(e, "invalid-argument")).toBe(true);
    expect(e.message).toContain("annotation cdi.k8s.io/gpu");
    expect(e.message).toContain('"nope"');
    expect(thrown(() => requestedDevices({ CDIDevices: [{ name: "x" }] })).message)
      .toContain("CDI_devices[0]");
  });
});
