/**
 * Containers: per namespace, an id with its image name, runtime handler, OCI spec (JSON) and
 * root snapshot key, with labels — containerd's container records. The running process is
 * the task's business (runtime state), so a record outlives restarts of its task.
 *
 * @example
 * ```ts
 * const containers = new ContainerStore(db);
 * containers.create("default", { id: "web", image: "docker.io/library/busybox:latest",
 *   runtime: "runc", spec: {}, snapshotter: "overlayfs", snapshotKey: "web" });
 * ```
 */
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import type { MetadataDB } from "./db.ts";
import { type Labels, mergeLabels, validateLabels } from "./labels.ts";
import { NamespaceStore } from "./namespaces.ts";

export interface Container {
  id: string;
  image: string;
  runtime: string;
  /** The OCI runtime spec, as built at creation. */
  spec: unknown;
  snapshotter: string;
  snapshotKey: string;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

interface Row {
  id: string;
  image: string;
  runtime: string;
  spec: string;
  snapshotter: string;
  snapshot_key: string;
  labels: string;
  created_at: number;
  updated_at: number;
}

/** Container ids: what runc and the CRI accept (letters, digits, `_.-`), at most 76. */
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$/;

export function validateContainerId(id: string): string {
  if (!ID.test(id)) {
    throw new InvalidArgumentError(
      `invalid container id ${
        JSON.stringify(id)
      }: letters, digits, '_', '.' and '-', starting with a letter or digit, at most 76 characters`,
    );
  }
  return id;
}

function fromRow(r: Row): Container {
  // The spec (tens of KB with its seccomp profile) is parsed only when someone reads it: state
  // queries such as the kubelet's ListContainers never do.
  let spec: unknown;
  let parsed = false;
  return {
    id: r.id,
    image: r.image,
    runtime: r.runtime,
    get spec() {
      if (!parsed) {
        spec = JSON.parse(r.spec);
        parsed = true;
      }
      return spec;
    },
    snapshotter: r.snapshotter,
    snapshotKey: r.snapshot_key,
    labels: JSON.parse(r.labels),
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}

const COLUMNS =
  "id, image, runtime, spec, snapshotter, snapshot_key, labels, created_at, updated_at";

export class ContainerStore {
  #namespaces: NamespaceStore;
  constructor(readonly db: MetadataDB) {
    this.#namespaces = new NamespaceStore(db);
  }

  get(namespace: string, id: string): Container {
    const r = this.db.prepare(`SELECT ${COLUMNS} FROM containers WHERE namespace = ? AND id = ?`)
      .get(namespace, id) as Row | undefined;
    if (!r) throw new NotFoundError(`container "${id}"`);
    return fromRow(r);
  }

  list(namespace: string): Container[] {
    return (this.db.prepare(`SELECT ${COLUMNS} FROM containers WHERE namespace = ? ORDER BY id`)
      .all(namespace) as unknown as Row[]).map(
        fromRow,
      );
  }

  /** Every container of every namespace, for recovery at start. */
  all(): { namespace: string; container: Container }[] {
    return (this.db.prepare(`SELECT namespace, ${COLUMNS} FROM containers ORDER BY namespace, id`)
      .all() as unknown as (
        Row & { namespace: string }
      )[]).map((r) => ({ namespace: r.namespace, container: fromRow(r) }));
  }

  create(
    namespace: string,
    c: {
      id: string;
      image?: string;
      runtime: string;
      spec: unknown;
      snapshotter?: string;
      snapshotKey?: string;
      labels?: Labels;
    },
  ): Container {
    validateContainerId(c.id);
    const labels = validateLabels(c.labels ?? {}, `container ${c.id}`);
    const now = Date.now();
    return this.db.transaction(() => {
      this.#namespaces.ensure(namespace);
      if (
        this.db.prepare("SELECT 1 FROM containers WHERE namespace = ? AND id = ?").get(
          namespace,
          c.id,
        )
      ) {
        throw new AlreadyExistsError(`container "${c.id}"`);
      }
      this.db.prepare(
        `INSERT INTO containers (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        namespace,
        c.id,
        c.image ?? "",
        c.runtime,
        JSON.stringify(c.spec),
        c.snapshotter ?? "",
        c.snapshotKey ?? "",
        JSON.stringify(labels),
        now,
        now,
      );
      return this.get(namespace, c.id);
    });
  }

  /** Merges labels (an empty value deletes one). */
  setLabels(namespace: string, id: string, labels: Labels): Container {
    return this.db.transaction(() => {
      const cur = this.get(namespace, id);
      const next = validateLabels(mergeLabels(cur.labels, labels), `container ${id}`);
      this.db.prepare(
        "UPDATE containers SET labels = ?, updated_at = ? WHERE namespace = ? AND id = ?",
      ).run(
        JSON.stringify(next),
        Date.now(),
        namespace,
        id,
      );
      return this.get(namespace, id);
    });
  }

  delete(namespace: string, id: string): void {
    const r = this.db.prepare("DELETE FROM containers WHERE namespace = ? AND id = ?").run(
      namespace,
      id,
    );
    if (r.changes === 0) throw new NotFoundError(`container "${id}"`);
  }
}
