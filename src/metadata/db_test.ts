import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { MetadataDB } from "./db.ts";
import { MIGRATIONS } from "./migrations.ts";

describe("metadata db", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await Deno.makeTempDir();
  });
  afterEach(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("creates the schema in WAL mode at the newest version", () => {
    const db = MetadataDB.open(`${dir}/m.db`);
    expect(db.version).toBe(MIGRATIONS.at(-1)!.version);
    expect(db.sql.prepare("PRAGMA journal_mode").get()).toMatchObject({ journal_mode: "wal" });
    const tables = db.sql.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((
      r,
    ) => r.name);
    expect(tables).toEqual(
      expect.arrayContaining([
        "namespaces",
        "images",
        "content",
        "snapshots",
        "leases",
        "lease_resources",
      ]),
    );
    db.close();
  });

  it("reopens without re-running migrations and keeps data", () => {
    const a = MetadataDB.open(`${dir}/m.db`);
    a.prepare("INSERT INTO namespaces (name, created_at) VALUES (?, ?)").run("default", 1);
    a.close();
    const b = MetadataDB.open(`${dir}/m.db`);
    expect(b.prepare("SELECT name FROM namespaces").all()).toEqual([
      expect.objectContaining({ name: "default" }),
    ]);
    b.close();
  });

  it("rolls back a failed transaction entirely, nested savepoints too", () => {
    const db = MetadataDB.open(`${dir}/m.db`);
    const ins = (n: string) =>
      db.prepare("INSERT INTO namespaces (name, created_at) VALUES (?, 1)").run(n);
    expect(() =>
      db.transaction(() => {
        ins("a");
        db.transaction(() => ins("b"));
        throw new Error("boom");
      })
    ).toThrow("boom");
    db.transaction(() => {
      ins("c");
      expect(() => db.transaction(() => ins("c"))).toThrow(/UNIQUE/);
    });
    expect(db.prepare("SELECT name FROM namespaces ORDER BY name").all().map((r) => r.name))
      .toEqual(["c"]);
    db.close();
  });

  it("refuses a database from a newer schema", () => {
    const db = MetadataDB.open(`${dir}/m.db`);
    db.sql.exec("PRAGMA user_version = 999");
    db.close();
    expect(() => MetadataDB.open(`${dir}/m.db`)).toThrow(/schema version 999 is newer/);
  });

  it("keeps the previous version when a migration fails midway", () => {
    const bad = [...MIGRATIONS, {
      version: 99,
      name: "broken",
      sql: "CREATE TABLE x (a); INSERT INTO nope VALUES (1);",
    }];
    expect(() => MetadataDB.open(`${dir}/m.db`, bad)).toThrow(/no such table: nope/);
    const db = MetadataDB.open(`${dir}/m.db`);
    expect(db.version).toBe(MIGRATIONS.at(-1)!.version);
    expect(db.sql.prepare("SELECT name FROM sqlite_master WHERE name = 'x'").all()).toEqual([]);
    db.close();
  });
});
