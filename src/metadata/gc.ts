/**
 * Garbage collection, mark and sweep after containerd's (metadata/gc.go), per namespace.
 *
 * Roots (in each namespace):
 * - every image's target;
 * - every resource of a lease that has not expired (expired leases are deleted first);
 * - every snapshot of kind "active" or "view" (containers own those);
 * - content rows and snapshots labelled `containerd.io/gc.root`.
 *
 * References:
 * - content → content: the children of a manifest or index, read from the content store when
 *   the media type (from the image target or the parent's descriptor) says manifest/index —
 *   index → manifests, manifest → config and layers; and labels
 *   `containerd.io/gc.ref.content.<anything>` = digest;
 * - content → snapshot: labels `containerd.io/gc.ref.snapshot.<snapshotter>` = key (the pull
 *   labels an image's config blob with its top layer's chain ID this way);
 * - snapshot → snapshot: its parent chain (and the same labels as on content).
 *
 * Sweep: unmarked content rows are deleted (in the same transaction as the mark, so the
 * database never shows half a collection); then blob files no namespace row references are
 * deleted, and unmarked snapshots are removed children first through the snapshotter.
 *
 * Concurrent pulls are safe when they hold a lease: a lease's `content` resources protect
 * both the row and the file (even before the row exists), ingests under way keep their
 * expected blob, and each file or snapshot removal re-checks references synchronously
 * just before it happens.
 *
 * @example
 * ```ts
 * import { collectGarbage } from "./gc.ts";
 * const r = await collectGarbage({ db, content: cs, snapshotters: new Map([["overlayfs", sn]]) });
 * log.info("gc", { blobs: r.blobsDeleted.length, snapshots: r.snapshotsRemoved.length, ms: r.durationMs });
 * ```
 */
import type { ContentStore } from "../content/store.ts";
import { type Descriptor, isIndex, isManifest } from "../images/oci.ts";
import type { Logger } from "../log/logger.ts";
import type { MetadataDB } from "./db.ts";
import { type Labels, parseLabels } from "./labels.ts";
import { LeaseStore } from "./leases.ts";

/** Marks content or a snapshot as a root that GC must keep. */
export const LABEL_GC_ROOT = "containerd.io/gc.root";
/** Prefix of labels whose value is a digest the labelled object keeps alive. */
export const LABEL_GC_REF_CONTENT = "containerd.io/gc.ref.content.";
/** Prefix (followed by the snapshotter name) of labels whose value is a snapshot key kept alive. */
export const LABEL_GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.";

/** Manifests and indexes bigger than this are not parsed (callers cap them at 4 MiB too). */
const MAX_MANIFEST = 4 << 20;
/**
 * A blob with no row at all, committed by this process less than this long ago, is spared:
 * a pull may be between `commit` and adding its row. Orphans from before a restart go.
 */
const ORPHAN_GRACE_MS = 10 * 60_000;

/** The one thing GC needs from a snapshotter. */
export interface SnapshotRemover {
  /** Removes the snapshot and its row; fails for a snapshot that still has children. */
  remove(namespace: string, key: string): Promise<void>;
}

/** What `collectGarbage` needs. */
export interface GCOptions {
  /** The metadata database (images, content rows, snapshots, leases). */
  db: MetadataDB;
  /** The blob store whose files are freed. */
  content: ContentStore;
  /** By snapshotter name ("overlayfs", "native"); rows of others are left alone. */
  snapshotters: Map<string, SnapshotRemover>;
  /** Where to say what was collected (info) and what could not be (warn). */
  log?: Logger;
  /** The time leases expire against (tests pass one). */
  now?: Date;
}

/** What one collection removed. */
export interface GCResult {
  /** Content rows deleted, as "<namespace>/<digest>". */
  contentRemoved: string[];
  /** Blob files deleted from the content store. */
  blobsDeleted: string[];
  /** Snapshots removed, in the order they went (children before parents). */
  snapshotsRemoved: { snapshotter: string; namespace: string; key: string }[];
  /** How long the whole collection took. */
  durationMs: number;
}

interface SnapshotRow {
  snapshotter: string;
  namespace: string;
  key: string;
  kind: string;
  parent: string | null;
  labels: Labels;
}

type Node =
  | { kind: "content"; ns: string; digest: string; mediaType?: string }
  | { kind: "snapshot"; snapshotter: string; ns: string; key: string };

const snapId = (snapshotter: string, ns: string, key: string) => `${snapshotter}\0${ns}\0${key}`;

/** Nodes the labels of an object reference. */
function labelRefs(ns: string, labels: Labels): Node[] {
  const out: Node[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith(LABEL_GC_REF_CONTENT)) {
      out.push({ kind: "content", ns, digest: v });
    } else if (k.startsWith(LABEL_GC_REF_SNAPSHOT)) {
      const snapshotter = k.slice(LABEL_GC_REF_SNAPSHOT.length).split("/")[0];
      if (snapshotter) out.push({ kind: "snapshot", snapshotter, ns, key: v });
    }
  }
  return out;
}

interface Plan {
  contentRemoved: string[];
  /** Digests whose last row (in some namespace) went, or that have no row at all. */
  blobCandidates: Set<string>;
  /** Unmarked snapshots, children first. */
  snapshots: SnapshotRow[];
  expiredLeases: number;
}

/**
 * Runs one collection. The mark and the deletion of content rows are one transaction; file
 * and snapshot removal follow. Failures to remove one snapshot or blob are logged and
 * skipped, so one stuck object does not block the rest.
 *
 * @example
 * ```ts
 * images.delete("default", "docker.io/library/busybox:latest");
 * const { blobsDeleted } = await collectGarbage({ db, content, snapshotters });
 * ```
 */
export async function collectGarbage(opts: GCOptions): Promise<GCResult> {
  const t0 = performance.now();
  const { db, content, log } = opts;
  const now = opts.now ?? new Date();
  // Every blob file, listed before the mark: a blob committed after this point is not a
  // candidate this round, which is what a concurrent pull needs.
  const onDisk: string[] = [];
  await content.walk((i) => {
    onDisk.push(i.digest);
  });
  const plan = db.transaction(() => markAndSweepRows(db, content, now, onDisk, log));

  // Blob files. Ingests under way keep the blob they are writing.
  const ingesting = new Set(
    (await content.listStatuses()).map((s) => s.expected).filter((d) => d !== ""),
  );
  const rowRef = db.prepare("SELECT 1 FROM content WHERE digest = ? LIMIT 1");
  const leaseRef = db.prepare(
    `SELECT 1 FROM lease_resources r JOIN leases l ON l.namespace = r.namespace AND l.id = r.lease
     WHERE r.type = 'content' AND r.ref = ? AND (l.expires_at IS NULL OR l.expires_at > ?) LIMIT 1`,
  );
  const blobsDeleted: string[] = [];
  const removedDigests = new Set(plan.contentRemoved.map((c) => c.slice(c.indexOf("/") + 1)));
  for (const digest of [...plan.blobCandidates].sort()) {
    // Re-checked synchronously with the delete, so nothing can add a reference in between.
    if (ingesting.has(digest) || rowRef.get(digest) || leaseRef.get(digest, now.getTime())) {
      continue;
    }
    const committed = content.committedRecently(digest);
    if (
      !removedDigests.has(digest) && committed !== undefined &&
      Date.now() - committed < ORPHAN_GRACE_MS
    ) {
      continue;
    }
    try {
      if (content.deleteSync(digest)) blobsDeleted.push(digest);
    } catch (e) {
      log?.warn("gc: cannot delete blob", { digest, error: e });
    }
  }

  // Snapshots, children first.
  const snapshotsRemoved: GCResult["snapshotsRemoved"] = [];
  for (const s of plan.snapshots) {
    const sn = opts.snapshotters.get(s.snapshotter);
    if (!sn) continue;
    if (snapshotReferenced(db, s, now)) {
      log?.debug("gc: snapshot referenced since the mark, keeping it", {
        snapshotter: s.snapshotter,
        key: s.key,
      });
      continue;
    }
    try {
      await sn.remove(s.namespace, s.key);
      snapshotsRemoved.push({ snapshotter: s.snapshotter, namespace: s.namespace, key: s.key });
    } catch (e) {
      log?.warn("gc: cannot remove snapshot", {
        snapshotter: s.snapshotter,
        namespace: s.namespace,
        key: s.key,
        error: e,
      });
    }
  }

  const result: GCResult = {
    contentRemoved: plan.contentRemoved,
    blobsDeleted,
    snapshotsRemoved,
    durationMs: Math.round((performance.now() - t0) * 10) / 10,
  };
  log?.debug("gc: done", {
    expiredLeases: plan.expiredLeases,
    contentRemoved: result.contentRemoved.length,
    blobsDeleted: blobsDeleted.length,
    snapshotsRemoved: snapshotsRemoved.length,
    ms: result.durationMs,
  });
  return result;
}

/** True when, since the mark, something started referencing the snapshot. */
function snapshotReferenced(db: MetadataDB, s: SnapshotRow, now: Date): boolean {
  const row = db.prepare(
    "SELECT kind, labels FROM snapshots WHERE snapshotter = ? AND namespace = ? AND key = ?",
  ).get(s.snapshotter, s.namespace, s.key) as { kind: string; labels: string } | undefined;
  if (!row) return true; // already gone: nothing to remove
  if (row.kind !== "committed" || LABEL_GC_ROOT in parseLabels(row.labels)) return true;
  if (
    db.prepare(
      "SELECT 1 FROM snapshots WHERE snapshotter = ? AND namespace = ? AND parent = ? LIMIT 1",
    ).get(s.snapshotter, s.namespace, s.key)
  ) return true;
  if (
    db.prepare(
      `SELECT 1 FROM lease_resources r JOIN leases l ON l.namespace = r.namespace AND l.id = r.lease
       WHERE r.namespace = ? AND r.type = ? AND r.ref = ? AND (l.expires_at IS NULL OR l.expires_at > ?)
       LIMIT 1`,
    ).get(s.namespace, `snapshots/${s.snapshotter}`, s.key, now.getTime())
  ) return true;
  // A content label pointing at it (e.g. a pull that found the layers already unpacked).
  const labelled = db.prepare(
    "SELECT labels FROM content WHERE namespace = ? AND labels LIKE ?",
  ).all(s.namespace, `%${LABEL_GC_REF_SNAPSHOT}${s.snapshotter}%`) as { labels: string }[];
  return labelled.some((r) =>
    labelRefs(s.namespace, parseLabels(r.labels)).some((n) =>
      n.kind === "snapshot" && n.snapshotter === s.snapshotter && n.key === s.key
    )
  );
}

/** The synchronous heart of GC: runs inside one transaction. */
function markAndSweepRows(
  db: MetadataDB,
  content: ContentStore,
  now: Date,
  onDisk: string[],
  log?: Logger,
): Plan {
  const expired = new LeaseStore(db).deleteExpired(now);
  for (const l of expired) log?.debug("gc: lease expired", l);

  // Load the graph's rows once.
  const contentRows = new Map<string, Labels>(); // `${ns}\0${digest}` → labels
  for (
    const r of db.prepare("SELECT namespace, digest, labels FROM content").all() as {
      namespace: string;
      digest: string;
      labels: string;
    }[]
  ) contentRows.set(`${r.namespace}\0${r.digest}`, parseLabels(r.labels));

  const snapshots = new Map<string, SnapshotRow>();
  for (
    const r of db.prepare(
      "SELECT snapshotter, namespace, key, kind, parent, labels FROM snapshots",
    ).all() as unknown as (Omit<SnapshotRow, "labels"> & { labels: string })[]
  ) {
    snapshots.set(snapId(r.snapshotter, r.namespace, r.key), {
      ...r,
      labels: parseLabels(r.labels),
    });
  }

  // Roots.
  const work: Node[] = [];
  for (
    const r of db.prepare("SELECT namespace, digest, media_type FROM images").all() as {
      namespace: string;
      digest: string;
      media_type: string;
    }[]
  ) work.push({ kind: "content", ns: r.namespace, digest: r.digest, mediaType: r.media_type });
  for (
    const r of db.prepare("SELECT namespace, type, ref FROM lease_resources").all() as {
      namespace: string;
      type: string;
      ref: string;
    }[]
  ) {
    if (r.type === "content") work.push({ kind: "content", ns: r.namespace, digest: r.ref });
    else if (r.type.startsWith("snapshots/")) {
      work.push({ kind: "snapshot", snapshotter: r.type.slice(10), ns: r.namespace, key: r.ref });
    }
  }
  for (const [id, labels] of contentRows) {
    if (LABEL_GC_ROOT in labels) {
      const [ns, digest] = id.split("\0");
      work.push({ kind: "content", ns, digest });
    }
  }
  for (const s of snapshots.values()) {
    if (s.kind === "active" || s.kind === "view" || LABEL_GC_ROOT in s.labels) {
      work.push({ kind: "snapshot", snapshotter: s.snapshotter, ns: s.namespace, key: s.key });
    }
  }

  // Mark.
  const markedContent = new Set<string>(); // `${ns}\0${digest}`
  const parsedContent = new Set<string>(); // marked and its manifest/index children queued
  const markedSnapshots = new Set<string>();
  const children = new Map<string, Descriptor[]>(); // digest → children; blobs are immutable
  const childrenOf = (digest: string, mediaType: string): Descriptor[] => {
    const cached = children.get(digest);
    if (cached) return cached;
    let c: Descriptor[] = [];
    try {
      const doc = JSON.parse(
        new TextDecoder().decode(content.readAllSync(digest, { maxSize: MAX_MANIFEST })),
      );
      if (isIndex(mediaType)) c = Array.isArray(doc.manifests) ? doc.manifests : [];
      else c = [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])];
      c = c.filter((d) => d && typeof d.digest === "string");
    } catch (e) {
      // Not there yet (a pull under way) or unreadable: nothing more to follow from it.
      log?.debug("gc: cannot read manifest children", { digest, error: (e as Error).message });
    }
    children.set(digest, c);
    return c;
  };

  while (work.length > 0) {
    const n = work.pop()!;
    if (n.kind === "content") {
      const id = `${n.ns}\0${n.digest}`;
      const parse = n.mediaType !== undefined && (isIndex(n.mediaType) || isManifest(n.mediaType));
      if (markedContent.has(id) && (!parse || parsedContent.has(id))) continue;
      if (!markedContent.has(id)) {
        markedContent.add(id);
        const labels = contentRows.get(id);
        if (labels) work.push(...labelRefs(n.ns, labels));
      }
      if (parse) {
        parsedContent.add(id);
        for (const d of childrenOf(n.digest, n.mediaType!)) {
          work.push({ kind: "content", ns: n.ns, digest: d.digest, mediaType: d.mediaType });
        }
      }
    } else {
      const id = snapId(n.snapshotter, n.ns, n.key);
      if (markedSnapshots.has(id)) continue;
      markedSnapshots.add(id);
      const s = snapshots.get(id);
      if (!s) continue;
      if (s.parent) {
        work.push({ kind: "snapshot", snapshotter: s.snapshotter, ns: s.namespace, key: s.parent });
      }
      work.push(...labelRefs(n.ns, s.labels));
    }
  }

  // Sweep content rows.
  const contentRemoved: string[] = [];
  const del = db.prepare("DELETE FROM content WHERE namespace = ? AND digest = ?");
  const stillHeld = new Set<string>();
  for (const id of contentRows.keys()) {
    const [ns, digest] = id.split("\0");
    if (markedContent.has(id)) {
      stillHeld.add(digest);
      continue;
    }
    del.run(ns, digest);
    contentRemoved.push(`${ns}/${digest}`);
  }
  const blobCandidates = new Set<string>();
  for (const c of contentRemoved) {
    const digest = c.slice(c.indexOf("/") + 1);
    if (!stillHeld.has(digest)) blobCandidates.add(digest);
  }
  for (const digest of onDisk) {
    if (!stillHeld.has(digest)) blobCandidates.add(digest);
  }

  // Unmarked snapshots, children first: deeper in a parent chain goes earlier.
  const depth = new Map<string, number>();
  const depthOf = (s: SnapshotRow): number => {
    const id = snapId(s.snapshotter, s.namespace, s.key);
    const known = depth.get(id);
    if (known !== undefined) return known;
    depth.set(id, 0); // guards against a (corrupt) parent cycle
    const parent = s.parent
      ? snapshots.get(snapId(s.snapshotter, s.namespace, s.parent))
      : undefined;
    const d = parent ? depthOf(parent) + 1 : 0;
    depth.set(id, d);
    return d;
  };
  const sweepSnapshots = [...snapshots.entries()]
    .filter(([id]) => !markedSnapshots.has(id))
    .map(([, s]) => s)
    .sort((a, b) => depthOf(b) - depthOf(a) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

  return {
    contentRemoved,
    blobCandidates,
    snapshots: sweepSnapshots,
    expiredLeases: expired.length,
  };
}
