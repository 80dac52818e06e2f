/**
 * Images: a name in a namespace pointing at a root descriptor (a manifest or an index) in the
 * content store, with labels. Only the target's media type, digest, size and annotations are
 * kept, as in containerd. Deleting an image removes only the name: garbage collection
 * (gc.ts) then frees whatever nothing else references.
 *
 * List filters (see filters.ts) know `name`, `target.digest`, `target.mediatype`,
 * `target.size` and `labels.<key>`.
 *
 * @example
 * ```ts
 * import { ImageStore } from "./images.ts";
 * const images = new ImageStore(db);
 * images.create("default", { name: "docker.io/library/busybox:latest", target: desc });
 * images.list("default", ['name~=^docker\\.io/library/']);
 * ```
 */
import type { Descriptor } from "../images/oci.ts";
import { parseDigest } from "../content/digest.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import type { MetadataDB } from "./db.ts";
import { parseFilters } from "./filters.ts";
import { formatLabels, type Labels, parseLabels, validateLabels } from "./labels.ts";
import { NamespaceStore } from "./namespaces.ts";

/** An image record. */
export interface Image {
  /** The full reference, e.g. `docker.io/library/busybox:latest`. */
  name: string;
  /** The root descriptor: a manifest or an index. */
  target: Descriptor;
  /** Free-form labels (CRI keeps its own here). */
  labels: Labels;
  /** When the record was created. */
  createdAt: Date;
  /** When the record last changed. */
  updatedAt: Date;
}

interface Row {
  name: string;
  media_type: string;
  digest: string;
  size: number;
  annotations: string;
  labels: string;
  created_at: number;
  updated_at: number;
}

const COLUMNS = "name, media_type, digest, size, annotations, labels, created_at, updated_at";

function toImage(r: Row): Image {
  const target: Descriptor = { mediaType: r.media_type, digest: r.digest, size: Number(r.size) };
  const annotations = parseLabels(r.annotations);
  if (Object.keys(annotations).length > 0) target.annotations = annotations;
  return {
    name: r.name,
    target,
    labels: parseLabels(r.labels),
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
  };
}

/**
 * Throws InvalidArgumentError unless `name` is a usable image name (non-empty, no whitespace).
 *
 * @example
 * ```ts
 * validateImageName("docker.io/library/busybox:latest");
 * ```
 */
export function validateImageName(name: string): string {
  if (typeof name !== "string" || name === "" || /\s/.test(name)) {
    throw new InvalidArgumentError(
      `invalid image name ${JSON.stringify(name)}: must be non-empty and contain no whitespace`,
    );
  }
  return name;
}

function validateTarget(name: string, t: Descriptor): Descriptor {
  if (!t || typeof t !== "object") {
    throw new InvalidArgumentError(`image "${name}": target descriptor is required`);
  }
  if (typeof t.mediaType !== "string" || t.mediaType === "") {
    throw new InvalidArgumentError(`image "${name}": target media type must not be empty`);
  }
  try {
    parseDigest(t.digest);
  } catch (e) {
    throw new InvalidArgumentError(`image "${name}": target: ${(e as Error).message}`);
  }
  if (!Number.isSafeInteger(t.size) || t.size < 0) {
    throw new InvalidArgumentError(`image "${name}": target size ${t.size} is invalid`);
  }
  if (t.annotations) validateLabels(t.annotations, `image "${name}" target annotations`);
  return t;
}

const FIELDS = new Set(["name", "target.digest", "target.mediatype", "target.size"]);

/**
 * Writes to the images table per open database, counted by every ImageStore over it (they are
 * its only writers), so readers can keep what they derive from the records until the next one.
 */
const generations = new WeakMap<MetadataDB, number>();

/**
 * Image records, per namespace, in the metadata database.
 *
 * @example
 * ```ts
 * const images = new ImageStore(db);
 * const img = images.get("k8s.io", "registry.k8s.io/pause:3.10");
 * images.update("k8s.io", img.name, { labels: { "io.cri-containerd.pinned": "pinned" } });
 * ```
 */
export class ImageStore {
  readonly #namespaces: NamespaceStore;

  /** A store over the open metadata database. */
  constructor(
    /** The open metadata database. */
    readonly db: MetadataDB,
  ) {
    this.#namespaces = new NamespaceStore(db);
  }

  /**
   * Changes with every create, update or delete of an image record in this database (any
   * namespace), through any ImageStore: what was read before is stale once it moved.
   */
  get generation(): number {
    return generations.get(this.db) ?? 0;
  }

  #changed(): void {
    generations.set(this.db, this.generation + 1);
  }

  /** The image; NotFoundError `image "name"` when absent. */
  get(namespace: string, name: string): Image {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM images WHERE namespace = ? AND name = ?`)
      .get(namespace, name) as Row | undefined;
    if (!row) throw new NotFoundError(`image "${name}"`);
    return toImage(row);
  }

  /**
   * The namespace's images, by name, that match `filters` (any of them; each a comma-separated
   * AND of selectors). InvalidArgumentError naming a filter that does not parse.
   */
  list(namespace: string, filters: string | readonly string[] = []): Image[] {
    const filter = parseFilters(
      filters,
      (p) => (p[0] === "labels" && p.length === 2) || FIELDS.has(p.join(".")),
    );
    const rows = this.db.prepare(
      `SELECT ${COLUMNS} FROM images WHERE namespace = ? ORDER BY name`,
    ).all(namespace) as unknown as Row[];
    return rows.map(toImage).filter((img) =>
      filter.match((p) => {
        switch (p[0]) {
          case "name":
            return img.name;
          case "labels":
            return img.labels[p[1]];
          case "target":
            return p[1] === "digest"
              ? img.target.digest
              : p[1] === "mediatype"
              ? img.target.mediaType
              : String(img.target.size);
        }
        return undefined;
      })
    );
  }

  /** Creates an image (and its namespace, if new); AlreadyExistsError when the name is taken. */
  create(namespace: string, image: { name: string; target: Descriptor; labels?: Labels }): Image {
    validateImageName(image.name);
    validateTarget(image.name, image.target);
    const labels = validateLabels(image.labels ?? {}, `image "${image.name}"`);
    this.#changed();
    return this.db.transaction(() => {
      this.#namespaces.ensure(namespace);
      if (
        this.db.prepare("SELECT 1 FROM images WHERE namespace = ? AND name = ?").get(
          namespace,
          image.name,
        )
      ) {
        throw new AlreadyExistsError(`image "${image.name}"`);
      }
      const now = Date.now();
      const t = image.target;
      this.db.prepare(
        `INSERT INTO images (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        namespace,
        image.name,
        t.mediaType,
        t.digest,
        t.size,
        formatLabels(t.annotations ?? {}),
        formatLabels(labels),
        now,
        now,
      );
      return this.get(namespace, image.name);
    });
  }

  /**
   * Replaces the given fields (the target, and/or the whole label map) and bumps `updatedAt`;
   * NotFoundError when the image is absent.
   */
  update(
    namespace: string,
    name: string,
    changes: { target?: Descriptor; labels?: Labels },
  ): Image {
    if (changes.target) validateTarget(name, changes.target);
    if (changes.labels) validateLabels(changes.labels, `image "${name}"`);
    this.#changed();
    return this.db.transaction(() => {
      const img = this.get(namespace, name);
      const t = changes.target ?? img.target;
      const labels = changes.labels ?? img.labels;
      // Strictly increasing, so a quick update after create still shows as newer.
      const now = Math.max(Date.now(), img.updatedAt.getTime() + 1);
      this.db.prepare(
        `UPDATE images SET media_type = ?, digest = ?, size = ?, annotations = ?, labels = ?,
           updated_at = ? WHERE namespace = ? AND name = ?`,
      ).run(
        t.mediaType,
        t.digest,
        t.size,
        formatLabels(t.annotations ?? {}),
        formatLabels(labels),
        now,
        namespace,
        name,
      );
      return this.get(namespace, name);
    });
  }

  /** Deletes the image record; NotFoundError when absent. Run GC afterwards to free content. */
  delete(namespace: string, name: string): void {
    this.#changed();
    const r = this.db.prepare("DELETE FROM images WHERE namespace = ? AND name = ?")
      .run(namespace, name);
    if (Number(r.changes) === 0) throw new NotFoundError(`image "${name}"`);
  }
}
