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
import { FailedPreconditionError } from "../errdefs/errors.ts";

/** SQLite's words for a file that is not a usable database (SQLITE_NOTADB, SQLITE_CORRUPT). */
const DAMAGED =
  /file is not a database|database disk image is malformed|malformed database schema/i;

/**
 * Reads `path` through a read-only connection and runs SQLite's quick_check; throws a
 * FailedPreconditionError naming the file and what to do when it is damaged (garbage,
 * truncated). Read-only, and before anything else touches the file: a damaged database is
 * never written to (no journal-mode change, no migration, no checkpoint on close), so it stays
 * as it was for whoever will inspect or restore it. A missing or empty file is a new database.
 */
function refuseDamaged(path: string): void {
  try {
    if (Deno.statSync(path).size === 0) return;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  let why: string | undefined;
  let ro: DatabaseSync | undefined;
  try {
    ro = new DatabaseSync(path, { readOnly: true });
    const rows = ro.prepare("PRAGMA quick_check(5)").all() as { quick_check: string }[];
    const problems = rows.map((r) => r.quick_check).filter((r) => r !== "ok");
    if (problems.length) why = problems.join("; ");
  } catch (e) {
    const msg = (e as Error).message;
    // Anything else (permissions, a locked file) is reported by the regular open below.
    if (DAMAGED.test(msg)) why = msg;
  } finally {
    ro?.close();
  }
  if (why === undefined) return;
  throw new FailedPreconditionError(
    `metadata database ${path} is damaged (${why}): refusing to start on it; it was left as it is. ` +
      `Restore it from a backup, or, to start over with empty metadata, move it aside ` +
      `(with any ${path}-wal and ${path}-shm beside it), e.g. mv ${path} ${path}.damaged — ` +
      `images must then be pulled and containers created again (any still running are stopped ` +
      `at that start), and that start frees the content and snapshots the old file referred to`,
  );
}

export class MetadataDB {
  #depth = 0;
  #statements = new Map<string, StatementSync>();

  private constructor(readonly sql: DatabaseSync, readonly path: string) {}

  /**
   * Opens (creating if needed) and migrates to the newest schema. A damaged file (garbage,
   * truncated) is refused with a FailedPreconditionError that says what to do, untouched.
   */
  static open(path: string, migrations: readonly Migration[] = MIGRATIONS): MetadataDB {
    refuseDamaged(path);
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
