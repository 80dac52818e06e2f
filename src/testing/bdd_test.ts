import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "./bdd.ts";

const order: string[] = [];

describe("bdd harness", () => {
  beforeAll(() => void order.push("beforeAll"));
  beforeEach(() => void order.push("beforeEach"));
  afterEach(() => void order.push("afterEach"));
  afterAll(() => {
    order.push("afterAll");
    // Hooks ran in vitest order around both cases, nested ones included.
    expect(order).toEqual([
      "beforeAll",
      "beforeEach",
      "first",
      "afterEach",
      "beforeEach",
      "nested",
      "afterEach",
      "beforeEach",
      "afterEach", // the async case
      "afterAll",
    ]);
  });
  it("runs cases in order", () => void order.push("first"));
  describe("nested", () => {
    it("inherits beforeEach", () => void order.push("nested"));
  });
  it.skip("is skipped with its reason", () => {
    throw new Error("must not run");
  }, "demonstrates skip");
  it("awaits async cases and sees their failures", async () => {
    await expect(Promise.reject(new Error("boom"))).rejects.toThrow("boom");
  });
});
