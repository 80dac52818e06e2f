import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { MetadataDB } from "./db.ts";
import { ContainerStore } from "./containers.ts";
import { NamespaceStore } from "./namespaces.ts";

describe("container store", () => {
  let dir: string;
  let db: MetadataDB;
  beforeEach(async () => {
    dir = await Deno.makeTempDir();
    db = MetadataDB.open(`${dir}/m.db`);
  });
  afterEach(async () => {
    db.close();
    await Deno.remove(dir, { recursive: true });
  });

  it("creates, reads back the spec and labels, lists and deletes", () => {
    const s = new ContainerStore(db);
    s.create("default", {
      id: "web",
      image: "docker.io/library/busybox:latest",
      runtime: "runc",
      spec: { ociVersion: "1.0.2" },
      labels: { a: "1" },
    });
    const c = s.get("default", "web");
    expect(c).toMatchObject({
      id: "web",
      runtime: "runc",
      spec: { ociVersion: "1.0.2" },
      labels: { a: "1" },
    });
    expect(s.setLabels("default", "web", { a: "", b: "2" }).labels).toEqual({ b: "2" });
    expect(s.list("default").map((x) => x.id)).toEqual(["web"]);
    expect(s.all()).toEqual([{
      namespace: "default",
      container: expect.objectContaining({ id: "web" }),
    }]);
    s.delete("default", "web");
    expect(() => s.get("default", "web")).toThrow('container "web": not found');
    expect(() => s.delete("default", "web")).toThrow("not found");
  });

  it("refuses duplicate and malformed ids, and keeps namespaces with containers", () => {
    const s = new ContainerStore(db);
    s.create("default", { id: "a", runtime: "runc", spec: {} });
    expect(() => s.create("default", { id: "a", runtime: "runc", spec: {} })).toThrow(
      'container "a": already exists',
    );
    expect(() => s.create("default", { id: "../x", runtime: "runc", spec: {} })).toThrow(
      /invalid container id/,
    );
    expect(() => new NamespaceStore(db).delete("default")).toThrow(/not empty: has containers/);
  });
});
