import { describe, expect, it } from "../testing/bdd.ts";
import { chunked, streamOf } from "./chunked.ts";

describe("chunked", () => {
  it("splits into pages of the given size, the last one shorter", () => {
    expect([...chunked([1, 2, 3, 4, 5], 2)]).toEqual([[1, 2], [3, 4], [5]]);
  });
  it("sends nothing for an empty list (the stream just ends)", () => {
    expect([...chunked([], 100)]).toEqual([]);
  });
  it("puts every item in exactly one page", () => {
    const items = Array.from({ length: 250 }, (_, i) => i);
    const pages = [...chunked(items, 100)];
    expect(pages.map((p) => p.length)).toEqual([100, 100, 50]);
    expect(pages.flat()).toEqual(items);
  });
  it("treats a size below 1 as 1", () => {
    expect([...chunked(["a", "b"], 0)]).toEqual([["a"], ["b"]]);
  });
});

describe("streamOf", () => {
  it("streams the list's items in pages wrapped in the stream response", async () => {
    const stream = streamOf(
      (n: number) => Promise.resolve({ items: Array.from({ length: n }, (_, i) => i) }),
      (r) => r.items,
      (page) => ({ page }),
      () => 3,
    );
    const got = [];
    for await (const m of stream(7)) got.push(m);
    expect(got).toEqual([{ page: [0, 1, 2] }, { page: [3, 4, 5] }, { page: [6] }]);
  });
  it("stops when the client has gone", async () => {
    const ac = new AbortController();
    ac.abort();
    const stream = streamOf(() => Promise.resolve([1, 2]), (r) => r, (p) => p, () => 1);
    const got = [];
    for await (const m of stream(undefined, { signal: ac.signal })) got.push(m);
    expect(got).toEqual([]);
  });
});
