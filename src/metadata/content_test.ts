import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import { digestOf } from "../content/digest.ts";
import { MetadataDB } from "./db.ts";
import { ContentIndex } from "./content.ts";

describe("content index", () => {
  let dir: string;
  let db: MetadataDB;
  let index: ContentIndex;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "cindex-test-" });
    db = MetadataDB.open(`${dir}/meta.db`);
    index = new ContentIndex(db);
  });
  afterEach(async () => {
    db.close();
    await Deno.remove(dir, { recursive: true });
  });

  it("adds idempotently, merging labels, per namespace", () => {
    const d = digestOf("blob");
    const a = index.add("default", { digest: d, size: 4 }, { a: "1" });
    expect(a).toMatchObject({ digest: d, size: 4, labels: { a: "1" } });
    const b = index.add("default", { digest: d, size: 4 }, { b: "2" });
    expect(b.labels).toEqual({ a: "1", b: "2" });
    expect(index.add("default", { digest: d, size: 4 }).labels).toEqual({ a: "1", b: "2" });
    index.add("k8s.io", { digest: d, size: 4 });
    expect(index.namespacesOf(d)).toEqual(["default", "k8s.io"]);
    expect(index.get("k8s.io", d).labels).toEqual({});
    expect(() => index.add("default", { digest: d, size: 5 })).toThrow(InvalidArgumentError);
    expect(() => index.add("default", { digest: "sha256:nope", size: 1 })).toThrow(
      /invalid digest/,
    );
  });

  it("gets, lists with filters, labels and removes", () => {
    const d1 = digestOf("1"), d2 = digestOf("2");
    index.add("default", { digest: d1, size: 1 }, { "containerd.io/gc.root": "x" });
    index.add("default", { digest: d2, size: 22 });
    expect(index.list("default").map((c) => c.digest)).toEqual([d1, d2].sort());
    expect(index.list("default", 'labels."containerd.io/gc.root"').map((c) => c.digest)).toEqual([
      d1,
    ]);
    expect(index.list("default", "size==22").map((c) => c.digest)).toEqual([d2]);
    expect(index.list("default", `digest==${d1}`).map((c) => c.digest)).toEqual([d1]);
    expect(() => index.list("default", "bogus==1")).toThrow(InvalidArgumentError);
    expect(index.setLabels("default", d1, { "containerd.io/gc.root": "", k: "v" }).labels).toEqual({
      k: "v",
    });
    expect(() => index.setLabels("default", digestOf("3"), {})).toThrow(NotFoundError);
    index.remove("default", d1);
    expect(() => index.get("default", d1)).toThrow(`content ${d1}: not found`);
    expect(() => index.remove("default", d1)).toThrow(NotFoundError);
    expect(index.namespacesOf(d1)).toEqual([]);
  });
});
