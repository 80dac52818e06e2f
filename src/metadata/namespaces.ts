/**
 * Namespaces isolate images, content references, snapshots and leases; CRI works in
 * `k8s.io`, the CLI in `default`. Stores that create objects call `ensure()` so a namespace
 * comes into being on first use, as in containerd. A namespace can be deleted only once
 * nothing in it is left.
 *
 * @example
 * ```ts
 * import { MetadataDB } from "./db.ts";
 * import { NamespaceStore } from "./namespaces.ts";
 * const namespaces = new NamespaceStore(MetadataDB.open("/var/lib/k8scontainerd/metadata.db"));
 * namespaces.ensure("k8s.io");
 * namespaces.setLabels("k8s.io", { team: "node" });
 * ```
 */
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../errdefs/errors.ts";
import type { MetadataDB } from "./db.ts";
import { formatLabels, type Labels, mergeLabels, parseLabels, validateLabels } from "./labels.ts";

/** A namespace and its labels. */
export interface Namespace {
  /** The namespace's name, e.g. `k8s.io`. */
  name: string;
  /** Free-form labels. */
  labels: Labels;
  /** When the namespace was created. */
  createdAt: Date;
}

const NAME = /^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$/;
const MAX_NAME = 76;

/**
 * Throws InvalidArgumentError unless `name` is a valid namespace name (letters, digits,
 * `.`, `_`, `-`; starting and ending alphanumeric; at most 76 characters).
 *
 * @example
 * ```ts
 * validateNamespace("k8s.io"); // ok
 * validateNamespace("-bad"); // throws
 * ```
 */
export function validateNamespace(name: string): string {
  if (typeof name !== "string" || name.length > MAX_NAME || !NAME.test(name)) {
    throw new InvalidArgumentError(
      `invalid namespace name ${JSON.stringify(name)}: must be 1-${MAX_NAME} letters, digits, ` +
        `'.', '_' or '-', starting and ending with a letter or digit`,
    );
  }
  return name;
}

interface Row {
  name: string;
  labels: string;
  created_at: number;
}

function toNamespace(r: Row): Namespace {
  return { name: r.name, labels: parseLabels(r.labels), createdAt: new Date(Number(r.created_at)) };
}

/**
 * Namespace records in the metadata database.
 *
 * @example
 * ```ts
 * const ns = new NamespaceStore(db);
 * ns.create("team-a", { owner: "me" });
 * ns.list().map((n) => n.name); // ["team-a"]
 * ```
 */
export class NamespaceStore {
  /** A store over the open metadata database. */
  constructor(
    /** The open metadata database. */
    readonly db: MetadataDB,
  ) {}

  /** Creates a namespace; AlreadyExistsError when it exists. */
  create(name: string, labels: Labels = {}): Namespace {
    validateNamespace(name);
    validateLabels(labels, `namespace "${name}"`);
    return this.db.transaction(() => {
      if (this.#row(name)) throw new AlreadyExistsError(`namespace "${name}"`);
      const now = Date.now();
      this.db.prepare("INSERT INTO namespaces (name, labels, created_at) VALUES (?, ?, ?)")
        .run(name, formatLabels(labels), now);
      return { name, labels: { ...labels }, createdAt: new Date(now) };
    });
  }

  /** Creates the namespace unless it exists (idempotent), returning it. */
  ensure(name: string): Namespace {
    validateNamespace(name);
    return this.db.transaction(() => {
      const row = this.#row(name);
      if (row) return toNamespace(row);
      const now = Date.now();
      this.db.prepare("INSERT INTO namespaces (name, labels, created_at) VALUES (?, '{}', ?)")
        .run(name, now);
      return { name, labels: {}, createdAt: new Date(now) };
    });
  }

  #row(name: string): Row | undefined {
    return this.db.prepare("SELECT name, labels, created_at FROM namespaces WHERE name = ?")
      .get(name) as Row | undefined;
  }

  /** The namespace; NotFoundError `namespace "x"` when absent. */
  get(name: string): Namespace {
    const row = this.#row(name);
    if (!row) throw new NotFoundError(`namespace "${name}"`);
    return toNamespace(row);
  }

  /** All namespaces, by name. */
  list(): Namespace[] {
    return (this.db.prepare("SELECT name, labels, created_at FROM namespaces ORDER BY name")
      .all() as unknown as Row[]).map(toNamespace);
  }

  /** Merges `labels` into the namespace's (an empty value deletes that label). */
  setLabels(name: string, labels: Labels): Namespace {
    validateLabels(labels, `namespace "${name}"`);
    return this.db.transaction(() => {
      const ns = this.get(name);
      ns.labels = mergeLabels(ns.labels, labels);
      this.db.prepare("UPDATE namespaces SET labels = ? WHERE name = ?")
        .run(formatLabels(ns.labels), name);
      return ns;
    });
  }

  /**
   * Deletes an empty namespace. FailedPreconditionError naming what is left when images,
   * content, snapshots or leases still live in it; NotFoundError when absent.
   */
  delete(name: string): void {
    this.db.transaction(() => {
      this.get(name);
      const left: string[] = [];
      for (const table of ["images", "containers", "content", "snapshots", "leases"]) {
        if (this.db.prepare(`SELECT 1 FROM ${table} WHERE namespace = ? LIMIT 1`).get(name)) {
          left.push(table);
        }
      }
      if (left.length > 0) {
        throw new FailedPreconditionError(
          `namespace "${name}" is not empty: has ${left.join(", ")}`,
        );
      }
      this.db.prepare("DELETE FROM namespaces WHERE name = ?").run(name);
    });
  }
}
