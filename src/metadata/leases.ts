/**
 * Leases protect what an operation is still building from garbage collection: a pull takes a
 * lease, adds every blob, ingest and snapshot it creates as a resource, and deletes the lease
 * once the image record points at the result (which then keeps it alive). A lease with an
 * `expiresAt` in the past protects nothing; GC deletes it.
 *
 * Resource types, as in containerd: `content` (ref = digest), `ingests` (ref = ingest ref)
 * and `snapshots/<snapshotter>` (ref = snapshot key).
 *
 * @example
 * ```ts
 * import { LeaseStore } from "./leases.ts";
 * const leases = new LeaseStore(db);
 * await leases.withLease("k8s.io", async (lease) => {
 *   leases.addResource("k8s.io", lease.id, { type: "content", ref: digest });
 *   // … fetch, unpack, create the image …
 * }, { expiresIn: 3600_000 });
 * ```
 */
import { parseDigest } from "../content/digest.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import type { MetadataDB } from "./db.ts";
import { formatLabels, type Labels, parseLabels, validateLabels } from "./labels.ts";
import { NamespaceStore } from "./namespaces.ts";

/** A lease. */
export interface Lease {
  /** Unique within the namespace. */
  id: string;
  /** Free-form labels. */
  labels: Labels;
  /** When the lease was taken. */
  createdAt: Date;
  /** When it stops protecting anything; absent for a lease that never expires. */
  expiresAt?: Date;
}

/** Something a lease protects. */
export interface LeaseResource {
  /** "content", "ingests" or "snapshots/<snapshotter>". */
  type: string;
  /** A digest, an ingest ref or a snapshot key, by type. */
  ref: string;
}

interface Row {
  id: string;
  labels: string;
  created_at: number;
  expires_at: number | null;
}

const ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

function toLease(r: Row): Lease {
  const lease: Lease = {
    id: r.id,
    labels: parseLabels(r.labels),
    createdAt: new Date(Number(r.created_at)),
  };
  if (r.expires_at !== null) lease.expiresAt = new Date(Number(r.expires_at));
  return lease;
}

function validateResource(r: LeaseResource): LeaseResource {
  if (r.type === "content") {
    parseDigest(r.ref);
  } else if (r.type === "ingests" || /^snapshots\/[A-Za-z0-9._-]+$/.test(r.type)) {
    if (typeof r.ref !== "string" || r.ref === "") {
      throw new InvalidArgumentError(`lease resource ${r.type}: ref must not be empty`);
    }
  } else {
    throw new InvalidArgumentError(
      `invalid lease resource type ${
        JSON.stringify(r.type)
      }: expected content, ingests or snapshots/<snapshotter>`,
    );
  }
  return r;
}

function randomId(): string {
  // Time first, so ids sort by creation in listings; random tail for uniqueness.
  const rand = crypto.getRandomValues(new Uint8Array(6));
  return `${Date.now()}-${Array.from(rand, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Lease records, per namespace, in the metadata database.
 *
 * @example
 * ```ts
 * const leases = new LeaseStore(db);
 * const l = leases.create("default", undefined, { expiresAt: new Date(Date.now() + 60_000) });
 * leases.addResource("default", l.id, { type: "snapshots/overlayfs", ref: "extract-1 sha256:…" });
 * leases.delete("default", l.id);
 * ```
 */
export class LeaseStore {
  readonly #namespaces: NamespaceStore;

  /** A store over the open metadata database. */
  constructor(
    /** The open metadata database. */
    readonly db: MetadataDB,
  ) {
    this.#namespaces = new NamespaceStore(db);
  }

  /**
   * Creates a lease (and its namespace, if new) with `id`, or a random one when omitted;
   * AlreadyExistsError when the id is taken.
   */
  create(
    namespace: string,
    id?: string,
    opts: { labels?: Labels; expiresAt?: Date } = {},
  ): Lease {
    const leaseId = id ?? randomId();
    if (leaseId.length > 76 || !ID.test(leaseId)) {
      throw new InvalidArgumentError(
        `invalid lease id ${
          JSON.stringify(leaseId)
        }: letters and digits separated by '.', '_' or '-', at most 76 characters`,
      );
    }
    const labels = validateLabels(opts.labels ?? {}, `lease ${leaseId}`);
    return this.db.transaction(() => {
      this.#namespaces.ensure(namespace);
      if (this.#row(namespace, leaseId)) throw new AlreadyExistsError(`lease ${leaseId}`);
      this.db.prepare(
        "INSERT INTO leases (namespace, id, labels, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      ).run(
        namespace,
        leaseId,
        formatLabels(labels),
        Date.now(),
        opts.expiresAt?.getTime() ?? null,
      );
      return this.get(namespace, leaseId);
    });
  }

  #row(namespace: string, id: string): Row | undefined {
    return this.db.prepare(
      "SELECT id, labels, created_at, expires_at FROM leases WHERE namespace = ? AND id = ?",
    ).get(namespace, id) as Row | undefined;
  }

  /** The lease; NotFoundError `lease <id>` when absent. */
  get(namespace: string, id: string): Lease {
    const row = this.#row(namespace, id);
    if (!row) throw new NotFoundError(`lease ${id}`);
    return toLease(row);
  }

  /** The namespace's leases, oldest first. */
  list(namespace: string): Lease[] {
    return (this.db.prepare(
      "SELECT id, labels, created_at, expires_at FROM leases WHERE namespace = ? ORDER BY created_at, id",
    ).all(namespace) as unknown as Row[]).map(toLease);
  }

  /**
   * Deletes the lease; its resources are released with it (the next GC may free them).
   * NotFoundError when absent.
   */
  delete(namespace: string, id: string): void {
    const r = this.db.prepare("DELETE FROM leases WHERE namespace = ? AND id = ?").run(
      namespace,
      id,
    );
    if (Number(r.changes) === 0) throw new NotFoundError(`lease ${id}`);
  }

  /** Deletes every lease that expired at or before `now`, returning which. GC calls this. */
  deleteExpired(now: Date = new Date()): { namespace: string; id: string }[] {
    return this.db.transaction(() => {
      const expired = this.db.prepare(
        "SELECT namespace, id FROM leases WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY namespace, id",
      ).all(now.getTime()) as { namespace: string; id: string }[];
      const del = this.db.prepare("DELETE FROM leases WHERE namespace = ? AND id = ?");
      for (const l of expired) del.run(l.namespace, l.id);
      return expired.map((l) => ({ namespace: l.namespace, id: l.id }));
    });
  }

  /** Adds a resource to the lease (idempotent); NotFoundError when the lease is absent. */
  addResource(namespace: string, id: string, resource: LeaseResource): void {
    validateResource(resource);
    this.db.transaction(() => {
      this.get(namespace, id);
      this.db.prepare(
        "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, ref) VALUES (?, ?, ?, ?)",
      ).run(namespace, id, resource.type, resource.ref);
    });
  }

  /** Removes a resource from the lease (a no-op when it was not there); NotFoundError for the lease. */
  removeResource(namespace: string, id: string, resource: LeaseResource): void {
    this.db.transaction(() => {
      this.get(namespace, id);
      this.db.prepare(
        "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND ref = ?",
      ).run(namespace, id, resource.type, resource.ref);
    });
  }

  /** The lease's resources, by type then ref; NotFoundError when the lease is absent. */
  resources(namespace: string, id: string): LeaseResource[] {
    this.get(namespace, id);
    return (this.db.prepare(
      "SELECT type, ref FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, ref",
    ).all(namespace, id) as { type: string; ref: string }[]).map((r) => ({
      type: r.type,
      ref: r.ref,
    }));
  }

  /**
   * Creates a lease, runs `fn` with it and deletes the lease afterwards, also when `fn`
   * throws. `expiresIn` (ms) bounds the protection should the process die before the delete.
   *
   * @example
   * ```ts
   * const digest = await leases.withLease("default", async (l) => pull(l.id), { expiresIn: 3600_000 });
   * ```
   */
  async withLease<T>(
    namespace: string,
    fn: (lease: Lease) => Promise<T>,
    opts: { expiresIn?: number; labels?: Labels } = {},
  ): Promise<T> {
    const lease = this.create(namespace, undefined, {
      labels: opts.labels,
      expiresAt: opts.expiresIn === undefined ? undefined : new Date(Date.now() + opts.expiresIn),
    });
    const release = () => {
      try {
        this.delete(namespace, lease.id);
      } catch (e) {
        // Already gone (GC after expiry, or fn deleted it): nothing left to release.
        if (!(e instanceof NotFoundError)) throw e;
      }
    };
    let out: T;
    try {
      out = await fn(lease);
    } catch (e) {
      try {
        release();
      } catch {
        // fn's own error is the one worth reporting.
      }
      throw e;
    }
    release();
    return out;
  }
}
