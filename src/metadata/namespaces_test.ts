import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../errdefs/errors.ts";
import { digestOf } from "../content/digest.ts";
import { MetadataDB } from "./db.ts";
import { NamespaceStore, validateNamespace } from "./namespaces.ts";
import { ImageStore } from "./images.ts";
import { ContentIndex } from "./content.ts";
import { LeaseStore } from "./leases.ts";

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

describe("namespaces", () => {
  let dir: string;
  let db: MetadataDB;
  let ns: NamespaceStore;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "ns-test-" });
    db = MetadataDB.open(`${dir}/meta.db`);
    ns = new NamespaceStore(db);
  });
  afterEach(async () => {
    db.close();
    await Deno.remove(dir, { recursive: true });
  });

  it("creates, gets, lists, labels and deletes", () => {
    ns.create("default", { a: "1" });
    ns.create("k8s.io");
    expect(ns.get("default")).toMatchObject({ name: "default", labels: { a: "1" } });
    expect(ns.get("default").createdAt).toBeInstanceOf(Date);
    expect(ns.list().map((n) => n.name)).toEqual(["default", "k8s.io"]);
    expect(ns.setLabels("default", { b: "2", a: "" }).labels).toEqual({ b: "2" });
    expect(ns.get("default").labels).toEqual({ b: "2" });
    expect(() => ns.create("default")).toThrow(AlreadyExistsError);
    ns.delete("default");
    expect(() => ns.get("default")).toThrow('namespace "default": not found');
    expect(() => ns.delete("default")).toThrow(NotFoundError);
  });

  it("validates names, naming the bad one", () => {
    for (const good of ["a", "k8s.io", "a-b_c.d", "A1", "x".repeat(76)]) {
      expect(validateNamespace(good)).toBe(good);
    }
    for (const bad of ["", "-a", "a-", ".a", "a b", "a/b", "ü", "x".repeat(77)]) {
      expect(() => ns.create(bad)).toThrow(InvalidArgumentError);
      expect(() => ns.ensure(bad)).toThrow(`invalid namespace name ${JSON.stringify(bad)}`);
    }
  });

  it("ensure is idempotent and keeps labels", () => {
    ns.create("x", { keep: "me" });
    expect(ns.ensure("x").labels).toEqual({ keep: "me" });
    expect(ns.ensure("y").name).toBe("y");
    expect(ns.ensure("y").name).toBe("y");
    expect(ns.list().length).toBe(2);
  });

  it("refuses to delete a namespace that still holds things, saying what", () => {
    const d = digestOf("x");
    new ImageStore(db).create("busy", {
      name: "img",
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: d, size: 1 },
    });
    new ContentIndex(db).add("busy", { digest: d, size: 1 });
    new LeaseStore(db).create("busy", "l1");
    const err = catchError(() => ns.delete("busy"));
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err.message).toBe('namespace "busy" is not empty: has images, content, leases');
    new ImageStore(db).delete("busy", "img");
    new ContentIndex(db).remove("busy", d);
    expect(() => ns.delete("busy")).toThrow('namespace "busy" is not empty: has leases');
    new LeaseStore(db).delete("busy", "l1");
    ns.delete("busy");
    expect(ns.list()).toEqual([]);
  });
});
