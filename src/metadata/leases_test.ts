import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import { digestOf } from "../content/digest.ts";
import { MetadataDB } from "./db.ts";
import { LeaseStore } from "./leases.ts";

describe("leases", () => {
  let dir: string;
  let db: MetadataDB;
  let leases: LeaseStore;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "leases-test-" });
    db = MetadataDB.open(`${dir}/meta.db`);
    leases = new LeaseStore(db);
  });
  afterEach(async () => {
    db.close();
    await Deno.remove(dir, { recursive: true });
  });

  it("creates with a given or random id, lists, and deletes with its resources", () => {
    const a = leases.create("default", "pull-1", { labels: { why: "pull" } });
    expect(a).toMatchObject({ id: "pull-1", labels: { why: "pull" } });
    expect(a.expiresAt).toBeUndefined();
    const b = leases.create("default");
    expect(b.id).toMatch(/^\d+-[0-9a-f]{12}$/);
    expect(() => leases.create("default", "pull-1")).toThrow(AlreadyExistsError);
    expect(() => leases.create("default", "bad id")).toThrow(InvalidArgumentError);
    expect(leases.list("default").map((l) => l.id).sort()).toEqual([b.id, "pull-1"].sort());

    const d = digestOf("x");
    leases.addResource("default", "pull-1", { type: "content", ref: d });
    leases.addResource("default", "pull-1", { type: "content", ref: d }); // idempotent
    leases.addResource("default", "pull-1", { type: "ingests", ref: "layer-x" });
    leases.addResource("default", "pull-1", { type: "snapshots/overlayfs", ref: "extract-1" });
    expect(leases.resources("default", "pull-1")).toEqual([
      { type: "content", ref: d },
      { type: "ingests", ref: "layer-x" },
      { type: "snapshots/overlayfs", ref: "extract-1" },
    ]);
    expect(() => leases.addResource("default", "pull-1", { type: "images", ref: "x" })).toThrow(
      /invalid lease resource type "images"/,
    );
    expect(() => leases.addResource("default", "pull-1", { type: "content", ref: "nope" })).toThrow(
      InvalidArgumentError,
    );
    expect(() => leases.addResource("default", "nope", { type: "ingests", ref: "r" })).toThrow(
      "lease nope: not found",
    );
    leases.removeResource("default", "pull-1", { type: "ingests", ref: "layer-x" });
    expect(leases.resources("default", "pull-1").length).toBe(2);

    leases.delete("default", "pull-1");
    expect(() => leases.get("default", "pull-1")).toThrow(NotFoundError);
    expect(() => leases.delete("default", "pull-1")).toThrow(NotFoundError);
    expect(db.prepare("SELECT COUNT(*) AS n FROM lease_resources").get()).toEqual({ n: 0 });
  });

  it("deletes expired leases only", () => {
    const now = Date.now();
    leases.create("default", "old", { expiresAt: new Date(now - 1000) });
    leases.create("default", "young", { expiresAt: new Date(now + 60_000) });
    leases.create("default", "forever");
    leases.addResource("default", "old", { type: "ingests", ref: "r" });
    expect(leases.get("default", "young").expiresAt!.getTime()).toBe(now + 60_000);
    expect(leases.deleteExpired(new Date(now))).toEqual([{ namespace: "default", id: "old" }]);
    expect(leases.list("default").map((l) => l.id).sort()).toEqual(["forever", "young"]);
    expect(leases.deleteExpired(new Date(now + 120_000))).toEqual([
      { namespace: "default", id: "young" },
    ]);
  });

  it("withLease deletes the lease after success and after an error", async () => {
    let seen = "";
    const out = await leases.withLease("default", (l) => {
      seen = l.id;
      expect(leases.get("default", l.id).expiresAt).toBeInstanceOf(Date);
      return Promise.resolve(42);
    }, { expiresIn: 60_000 });
    expect(out).toBe(42);
    expect(() => leases.get("default", seen)).toThrow(NotFoundError);

    await expect(leases.withLease("default", async (l) => {
      seen = l.id;
      leases.addResource("default", l.id, { type: "ingests", ref: "r" });
      await Promise.resolve();
      throw new Error("pull failed");
    })).rejects.toThrow("pull failed");
    expect(() => leases.get("default", seen)).toThrow(NotFoundError);
    expect(leases.list("default")).toEqual([]);
  });
});
