import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import { parseKind, parseQualifiedName } from "./name.ts";

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
}

describe("CDI names", () => {
  it("parses qualified names into vendor, class, name and kind", () => {
    expect(parseQualifiedName("vendor.com/device=foo")).toEqual({
      vendor: "vendor.com",
      class: "device",
      name: "foo",
      kind: "vendor.com/device",
    });
    expect(parseQualifiedName("nvidia.com/gpu=GPU-0:1.a_b").name).toBe("GPU-0:1.a_b");
  });

  it("refuses malformed names with InvalidArgument naming the device", () => {
    for (
      const bad of [
        "foo",
        "vendor.com=foo",
        "vendor.com/=foo",
        "/device=foo",
        "vendor.com/device=",
        "vendor.com/device=-x",
        "vendor.com/dev.ice=foo",
        "1vendor.com/device=foo",
        "vendor.com/device=a b",
      ]
    ) {
      const e = thrown(() => parseQualifiedName(bad));
      expect(isKind(e, "invalid-argument")).toBe(true);
      expect(e.message).toContain(JSON.stringify(bad));
    }
  });

  it("checks kinds", () => {
    expect(parseKind("a.b/c")).toEqual({ vendor: "a.b", class: "c" });
    expect("problem" in parseKind("abc")).toBe(true);
    expect("problem" in parseKind("a_/c")).toBe(true);
  });
});
