/**
 * The content index: which namespaces hold which blobs. The bytes live once in the content
 * store (src/content/store.ts); a row here is a namespace's claim on a blob, with labels
 * (the garbage collector follows `containerd.io/gc.ref.*` labels from here). A blob's file
 * is freed by GC once no namespace holds it.
 *
 * List filters (see filters.ts) know `digest`, `size` and `labels.<key>`.
 *
 * @example
 * ```ts
 * import { ContentIndex } from "./content.ts";
 * const index = new ContentIndex(db);
 * index.add("default", { digest, size }, { "containerd.io/gc.ref.content.l.0": layerDigest });
 * index.namespacesOf(digest); // ["default"]
 * ```
 */
import { parseDigest } from "../content/digest.ts";
import { InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import type { MetadataDB } from "./db.ts";
import { parseFilters } from "./filters.ts";
import { formatLabels, type Labels, mergeLabels, parseLabels, validateLabels } from "./labels.ts";
import { NamespaceStore } from "./namespaces.ts";

/** A namespace's record of a blob. */
export interface ContentRecord {
  /** The blob's digest. */
  digest: string;
  /** The blob's size in bytes. */
  size: number;
  /** Labels, including `containerd.io/gc.*` ones GC follows. */
  labels: Labels;
  /** When the namespace first recorded the blob. */
  createdAt: Date;
  /** When the record last changed. */
  updatedAt: Date;
}

interface Row {
  digest: string;
  size: number;
  labels: string;
  created_at: number;
  updated_at: number;
}

const COLUMNS = "digest, size, labels, created_at, updated_at";

function toRecord(r: Row): ContentRecord {
  return {
    digest: r.digest,
    size: Number(r.size),
    labels: parseLabels(r.labels),
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
  };
}

/**
 * Per-namespace content records in the metadata database.
 *
 * @example
 * ```ts
 * const index = new ContentIndex(db);
 * index.setLabels("k8s.io", configDigest, { "containerd.io/gc.ref.snapshot.overlayfs": chainId });
 * index.list("k8s.io", ["labels.\"containerd.io/gc.root\""]);
 * ```
 */
export class ContentIndex {
  readonly #namespaces: NamespaceStore;

  /** A store over the open metadata database. */
  constructor(
    /** The open metadata database. */
    readonly db: MetadataDB,
  ) {
    this.#namespaces = new NamespaceStore(db);
  }

  /**
   * Records that `namespace` holds the blob (creating the namespace if new). Idempotent:
   * for a blob already held, `labels` are merged in (an empty value deletes a label).
   * InvalidArgumentError when the size disagrees with the recorded one.
   */
  add(
    namespace: string,
    blob: { digest: string; size: number },
    labels: Labels = {},
  ): ContentRecord {
    parseDigest(blob.digest);
    if (!Number.isSafeInteger(blob.size) || blob.size < 0) {
      throw new InvalidArgumentError(`content ${blob.digest}: size ${blob.size} is invalid`);
    }
    validateLabels(labels, `content ${blob.digest}`);
    return this.db.transaction(() => {
      this.#namespaces.ensure(namespace);
      const now = Date.now();
      const row = this.#row(namespace, blob.digest);
      if (!row) {
        this.db.prepare(`INSERT INTO content (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`)
          .run(namespace, blob.digest, blob.size, formatLabels(mergeLabels({}, labels)), now, now);
        return this.get(namespace, blob.digest);
      }
      if (Number(row.size) !== blob.size) {
        throw new InvalidArgumentError(
          `content ${blob.digest}: size ${blob.size} differs from the recorded ${row.size}`,
        );
      }
      if (Object.keys(labels).length > 0) this.#setLabels(namespace, toRecord(row), labels, now);
      return this.get(namespace, blob.digest);
    });
  }

  #row(namespace: string, digest: string): Row | undefined {
    return this.db.prepare(`SELECT ${COLUMNS} FROM content WHERE namespace = ? AND digest = ?`)
      .get(namespace, digest) as Row | undefined;
  }

  /** The namespace's record of the blob; NotFoundError `content <digest>` when absent. */
  get(namespace: string, digest: string): ContentRecord {
    const row = this.#row(namespace, digest);
    if (!row) throw new NotFoundError(`content ${digest}`);
    return toRecord(row);
  }

  /** The namespace's blobs, by digest, that match `filters` (see filters.ts). */
  list(namespace: string, filters: string | readonly string[] = []): ContentRecord[] {
    const filter = parseFilters(
      filters,
      (p) =>
        (p[0] === "labels" && p.length === 2) ||
        (p.length === 1 && (p[0] === "digest" || p[0] === "size")),
    );
    const rows = this.db.prepare(
      `SELECT ${COLUMNS} FROM content WHERE namespace = ? ORDER BY digest`,
    ).all(namespace) as unknown as Row[];
    return rows.map(toRecord).filter((c) =>
      filter.match((p) =>
        p[0] === "labels" ? c.labels[p[1]] : p[0] === "digest" ? c.digest : String(c.size)
      )
    );
  }

  /** Merges labels into the record (an empty value deletes); NotFoundError when absent. */
  setLabels(namespace: string, digest: string, labels: Labels): ContentRecord {
    validateLabels(labels, `content ${digest}`);
    return this.db.transaction(() => {
      this.#setLabels(namespace, this.get(namespace, digest), labels, Date.now());
      return this.get(namespace, digest);
    });
  }

  #setLabels(namespace: string, rec: ContentRecord, labels: Labels, now: number): void {
    this.db.prepare(
      "UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
    )
      .run(formatLabels(mergeLabels(rec.labels, labels)), now, namespace, rec.digest);
  }

  /**
   * Drops the namespace's claim on the blob; NotFoundError when it has none. The file stays
   * until GC finds no namespace holding it.
   */
  remove(namespace: string, digest: string): void {
    const r = this.db.prepare("DELETE FROM content WHERE namespace = ? AND digest = ?")
      .run(namespace, digest);
    if (Number(r.changes) === 0) throw new NotFoundError(`content ${digest}`);
  }

  /** The namespaces that hold the blob, by name. */
  namespacesOf(digest: string): string[] {
    return (this.db.prepare("SELECT namespace FROM content WHERE digest = ? ORDER BY namespace")
      .all(digest) as { namespace: string }[]).map((r) => r.namespace);
  }
}
