/**
 * The metadata database: one SQLite file (node:sqlite) under the root, in WAL mode so readers
 * never wait for a writer, with foreign keys on and versioned migrations applied at open.
 * Every multi-step change goes through `transaction()`, so a crash leaves either all of a
 * change or none of it.
 *
 * @example
 * ```ts
 * import { MetadataDB } from "./db.ts";
 * const db = MetadataDB.open("/var/lib/k8scontainerd/metadata.db");
 * db.transaction(() => {
 *   db.sql.prepare("INSERT INTO namespaces (name, created_at) VALUES (?, ?)").run("default", Date.now());
 * });
 * db.close();
 * ```
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { type Migration, MIGRATIONS } from "./migrations.ts";

export class MetadataDB {
  #depth = 0;
  #statements = new Map<string, StatementSync>();

  private constructor(readonly sql: DatabaseSync, readonly path: string) {}

  /** Opens (creating if needed) and migrates to the newest schema. */
  static open(path: string, migrations: readonly Migration[] = MIGRATIONS): MetadataDB {
    const sql = new DatabaseSync(path);
    const db = new MetadataDB(sql, path);
    try {
      sql.exec("PRAGMA journal_mode = WAL");
      sql.exec("PRAGMA synchronous = NORMAL"); // WAL + NORMAL: durable across process crashes
      sql.exec("PRAGMA foreign_keys = ON");
      sql.exec("PRAGMA busy_timeout = 5000");
      db.#migrate(migrations);
    } catch (e) {
      sql.close();
      throw new Error(`metadata database ${path}: ${(e as Error).message}`, { cause: e });
    }
    return db;
  }

  /** The schema version this database is at. */
  get version(): number {
    return Number(
      (this.sql.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
    );
  }

  #migrate(migrations: readonly Migration[]): void {
    const have = this.version;
    const newest = migrations.at(-1)?.version ?? 0;
    if (have > newest) {
      throw new Error(
        `schema version ${have} is newer than this build knows (${newest}): refusing to run an older k8scontainerd on it`,
      );
    }
    for (const m of migrations) {
      if (m.version <= have) continue;
      this.transaction(() => {
        this.sql.exec(m.sql);
        this.sql.exec(`PRAGMA user_version = ${m.version}`);
      });
    }
  }

  /** A cached prepared statement. */
  prepare(query: string): StatementSync {
    let st = this.#statements.get(query);
    if (!st) {
      st = this.sql.prepare(query);
      this.#statements.set(query, st);
    }
    return st;
  }

  /**
   * Runs `fn` in a transaction (BEGIN IMMEDIATE, so writers queue rather than fail midway);
   * nested calls become savepoints. `fn` must be synchronous: an await would let other work
   * interleave inside the transaction.
   */
  transaction<T>(fn: () => T): T {
    const depth = this.#depth++;
    const sp = `sp${depth}`;
    this.sql.exec(depth === 0 ? "BEGIN IMMEDIATE" : `SAVEPOINT ${sp}`);
    try {
      const out = fn();
      if (out instanceof Promise) {
        throw new Error("transaction(): the function must be synchronous");
      }
      this.sql.exec(depth === 0 ? "COMMIT" : `RELEASE ${sp}`);
      return out;
    } catch (e) {
      this.sql.exec(depth === 0 ? "ROLLBACK" : `ROLLBACK TO ${sp}; RELEASE ${sp}`);
      throw e;
    } finally {
      this.#depth--;
    }
  }

  close(): void {
    this.#statements.clear();
    this.sql.close();
  }
}
