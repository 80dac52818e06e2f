import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { MetadataDB } from "./db.ts";
import { MIGRATIONS } from "./migrations.ts";
import { errorKind } from "../errdefs/errors.ts";

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

  it("refuses a damaged file (garbage, truncated) with what to do, and leaves it untouched", () => {
    const files = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    const garbage = crypto.getRandomValues(new Uint8Array(8192));
    Deno.writeFileSync(`${dir}/g.db`, garbage);
    expect(() => MetadataDB.open(`${dir}/g.db`)).toThrow(
      new RegExp(
        `metadata database ${dir}/g\\.db is damaged \\(file is not a database\\): ` +
          "refusing to start on it; it was left as it is\\. Restore it from a backup, or",
      ),
    );
    expect(Deno.readFileSync(`${dir}/g.db`)).toEqual(garbage);
    expect(files()).toEqual(["g.db"]);

    // A real database cut in half: SQLite's header is intact, the pages it points to are not.
    const db = MetadataDB.open(`${dir}/t.db`);
    const add = db.prepare("INSERT INTO namespaces (name, labels, created_at) VALUES (?, ?, ?)");
    db.transaction(() => {
      for (let i = 0; i < 2000; i++) add.run(`ns${i}`, JSON.stringify({ l: "x".repeat(100) }), i);
    });
    db.close();
    Deno.truncateSync(`${dir}/t.db`, Deno.statSync(`${dir}/t.db`).size >> 1);
    const cut = Deno.readFileSync(`${dir}/t.db`);
    let err: unknown;
    try {
      MetadataDB.open(`${dir}/t.db`);
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe("failed-precondition");
    expect((err as Error).message).toMatch(/t\.db is damaged \(database disk image is malformed\)/);
    expect(Deno.readFileSync(`${dir}/t.db`)).toEqual(cut);
    // A read-only look at a WAL database may leave an empty -wal and an -shm beside it.
    expect(files().filter((f) => !/^t\.db-(wal|shm)$/.test(f))).toEqual(["g.db", "t.db"]);
    expect(Deno.statSync(`${dir}/t.db-wal`).size).toBe(0);
  });
});
