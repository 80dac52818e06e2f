import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { ContentStore } from "../content/store.ts";
import { type Descriptor, MEDIA_TYPES } from "../images/oci.ts";
import { FailedPreconditionError } from "../errdefs/errors.ts";
import { MetadataDB } from "./db.ts";
import { ContentIndex } from "./content.ts";
import { ImageStore } from "./images.ts";
import { LeaseStore } from "./leases.ts";
import { NamespaceStore } from "./namespaces.ts";
import { collectGarbage, type GCResult, LABEL_GC_REF_SNAPSHOT, LABEL_GC_ROOT } from "./gc.ts";

const te = new TextEncoder();

describe("garbage collection", () => {
  let dir: string;
  let db: MetadataDB;
  let cs: ContentStore;
  let index: ContentIndex;
  let images: ImageStore;
  let leases: LeaseStore;
  let removed: string[];
  let nextId: number;
  let snapshotters: Map<string, { remove(ns: string, key: string): Promise<void> }>;

  /** Writes a blob through the content store and records it in `ns`, like a pull does. */
  async function put(
    ns: string,
    mediaType: string,
    data: Uint8Array | object,
    labels: Record<string, string> = {},
  ): Promise<Descriptor> {
    const bytes = data instanceof Uint8Array ? data : te.encode(JSON.stringify(data));
    const digest = await cs.writeBlob(`ref-${crypto.randomUUID()}`, bytes);
    index.add(ns, { digest, size: bytes.length }, labels);
    return { mediaType, digest, size: bytes.length };
  }

  function layer(ns: string, name: string): Promise<Descriptor> {
    return put(ns, MEDIA_TYPES.ociLayerGzip, te.encode(`layer ${name} ${"x".repeat(100)}`));
  }

  function manifest(ns: string, config: Descriptor, layers: Descriptor[]): Promise<Descriptor> {
    return put(ns, MEDIA_TYPES.ociManifest, {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config,
      layers,
    });
  }

  function snapshot(ns: string, key: string, kind: string, parent?: string, labels = {}): void {
    new NamespaceStore(db).ensure(ns);
    db.prepare(
      `INSERT INTO snapshots (snapshotter, namespace, key, id, kind, parent, labels, created_at, updated_at)
       VALUES ('overlayfs', ?, ?, ?, ?, ?, ?, 1, 1)`,
    ).run(ns, key, nextId++, kind, parent ?? null, JSON.stringify(labels));
  }

  const snapshotKeys = (ns = "default") =>
    (db.prepare("SELECT key FROM snapshots WHERE namespace = ? ORDER BY key").all(ns) as {
      key: string;
    }[]).map((r) => r.key);

  const gc = (now?: Date): Promise<GCResult> =>
    collectGarbage({ db, content: cs, snapshotters, now });

  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "gc-test-" });
    db = MetadataDB.open(`${dir}/meta.db`);
    cs = new ContentStore(`${dir}/content`);
    index = new ContentIndex(db);
    images = new ImageStore(db);
    leases = new LeaseStore(db);
    removed = [];
    nextId = 1;
    // A recording snapshotter that behaves like the real one: removes the row, and refuses
    // to remove a snapshot that still has children.
    snapshotters = new Map([["overlayfs", {
      remove(ns: string, key: string) {
        const child = db.prepare(
          "SELECT key FROM snapshots WHERE snapshotter = 'overlayfs' AND namespace = ? AND parent = ?",
        ).get(ns, key);
        if (child) {
          return Promise.reject(new FailedPreconditionError(`snapshot ${key} has children`));
        }
        db.prepare(
          "DELETE FROM snapshots WHERE snapshotter = 'overlayfs' AND namespace = ? AND key = ?",
        )
          .run(ns, key);
        removed.push(`${ns}/${key}`);
        return Promise.resolve();
      },
    }]]);
  });
  afterEach(async () => {
    db.close();
    await Deno.remove(dir, { recursive: true });
  });

  /** Two images in "default": `app` (an index of two manifests) and `other` sharing a layer. */
  async function buildImages() {
    const l1 = await layer("default", "1"), l2 = await layer("default", "2");
    const l3 = await layer("default", "3"), l4 = await layer("default", "4");
    const c1 = await put("default", MEDIA_TYPES.ociConfig, { arch: "amd64" }, {
      [`${LABEL_GC_REF_SNAPSHOT}overlayfs`]: "chain-2",
    });
    const c2 = await put("default", MEDIA_TYPES.ociConfig, { arch: "arm64" });
    const m1 = await manifest("default", c1, [l1, l2]);
    const m2 = await manifest("default", c2, [l1, l3]);
    const idx = await put("default", MEDIA_TYPES.ociIndex, {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [m1, m2],
    });
    images.create("default", { name: "example.com/app:1", target: idx });

    const c3 = await put("default", MEDIA_TYPES.ociConfig, { arch: "amd64", other: true }, {
      [`${LABEL_GC_REF_SNAPSHOT}overlayfs`]: "other-1",
    });
    const m3 = await manifest("default", c3, [l2, l4]);
    images.create("default", { name: "example.com/other:1", target: m3 });

    // chain-1 ← chain-2 for app; other-1 for other; an active container snapshot on base-1;
    // and an unreferenced chain.
    snapshot("default", "chain-1", "committed");
    snapshot("default", "chain-2", "committed", "chain-1");
    snapshot("default", "other-1", "committed");
    snapshot("default", "base-1", "committed");
    snapshot("default", "container-rw", "active", "base-1");
    snapshot("default", "orphan-1", "committed");
    snapshot("default", "orphan-2", "committed", "orphan-1");
    snapshot("default", "orphan-3", "committed", "orphan-2");
    return { l1, l2, l3, l4, c1, c2, c3, m1, m2, m3, idx };
  }

  it("keeps everything images reference, removes unreferenced snapshots children first", async () => {
    const g = await buildImages();
    const r = await gc();
    expect(r.contentRemoved).toEqual([]);
    expect(r.blobsDeleted).toEqual([]);
    expect(removed).toEqual(["default/orphan-3", "default/orphan-2", "default/orphan-1"]);
    expect(r.snapshotsRemoved.map((s) => s.key)).toEqual(["orphan-3", "orphan-2", "orphan-1"]);
    expect(snapshotKeys()).toEqual(["base-1", "chain-1", "chain-2", "container-rw", "other-1"]);
    for (const d of Object.values(g)) expect(await cs.exists(d.digest)).toBe(true);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("deleting an image frees its content rows, blobs and snapshots; shared content survives", async () => {
    const g = await buildImages();
    await gc();
    removed = [];
    images.delete("default", "example.com/app:1");
    const r = await gc();

    const gone = [g.idx, g.m1, g.m2, g.c1, g.c2, g.l1, g.l3].map((d) => d.digest).sort();
    expect(r.contentRemoved.sort()).toEqual(gone.map((d) => `default/${d}`));
    expect(r.blobsDeleted.sort()).toEqual(gone);
    for (const d of gone) {
      expect(await cs.exists(d)).toBe(false);
      expect(index.namespacesOf(d)).toEqual([]);
    }
    // Shared with `other`: the layer l2, and everything of `other` itself.
    for (const d of [g.l2, g.l4, g.c3, g.m3]) {
      expect(await cs.exists(d.digest)).toBe(true);
      expect(index.namespacesOf(d.digest)).toEqual(["default"]);
    }
    expect(removed).toEqual(["default/chain-2", "default/chain-1"]);
    // The active snapshot and its parent survive: containers own them.
    expect(snapshotKeys()).toEqual(["base-1", "container-rw", "other-1"]);

    // A second run finds nothing more to do.
    const again = await gc();
    expect([again.contentRemoved, again.blobsDeleted, again.snapshotsRemoved]).toEqual([
      [],
      [],
      [],
    ]);
  });

  it("an image volume's view keeps its image's snapshot chain, until the view goes", async () => {
    const g = await buildImages();
    // What the container service makes for an image volume of `app`: a view of chain-2.
    snapshot("default", "c1-imagevolume-0", "view", "chain-2", {
      "io.k8scontainerd.image-volume": "c1",
    });
    images.delete("default", "example.com/app:1");
    removed = [];
    const r = await gc();
    // The image's content goes (the CRI refuses RemoveImage while it is mounted; the
    // management API does not), but the layers the view shows stay.
    expect(r.contentRemoved).toContain(`default/${g.idx.digest}`);
    expect(removed).toEqual(["default/orphan-3", "default/orphan-2", "default/orphan-1"]);
    expect(snapshotKeys()).toContain("chain-1");
    expect(snapshotKeys()).toContain("chain-2");
    // The container's delete removes the view: the chain is collected next.
    await snapshotters.get("overlayfs")!.remove("default", "c1-imagevolume-0");
    removed = [];
    await gc();
    expect(removed).toEqual(["default/chain-2", "default/chain-1"]);
  });

  it("a lease protects a blob no image references; an expired lease does not", async () => {
    const kept = await put("default", MEDIA_TYPES.ociLayerGzip, te.encode("leased"));
    const loose = await put("default", MEDIA_TYPES.ociLayerGzip, te.encode("expired lease"));
    leases.create("default", "live", { expiresAt: new Date(Date.now() + 3600_000) });
    leases.addResource("default", "live", { type: "content", ref: kept.digest });
    leases.create("default", "stale", { expiresAt: new Date(Date.now() - 1000) });
    leases.addResource("default", "stale", { type: "content", ref: loose.digest });

    const r = await gc();
    expect(r.contentRemoved).toEqual([`default/${loose.digest}`]);
    expect(r.blobsDeleted).toEqual([loose.digest]);
    expect(await cs.exists(kept.digest)).toBe(true);
    expect(leases.list("default").map((l) => l.id)).toEqual(["live"]);

    // Once the lease goes (a pull finished without making an image), so does the blob.
    leases.delete("default", "live");
    expect((await gc()).blobsDeleted).toEqual([kept.digest]);
  });

  it("a lease protects a blob file before its row exists (a pull between commit and index)", async () => {
    const digest = await cs.writeBlob("mid-pull", te.encode("just committed"));
    leases.create("default", "pull");
    leases.addResource("default", "pull", { type: "content", ref: digest });
    await gc();
    expect(await cs.exists(digest)).toBe(true);
    // Without a lease, a blob this process committed moments ago is still spared once…
    leases.delete("default", "pull");
    await gc();
    expect(await cs.exists(digest)).toBe(true);
    // …but an orphan found after a restart (a fresh ContentStore) goes.
    cs = new ContentStore(`${dir}/content`);
    expect((await gc()).blobsDeleted).toEqual([digest]);
  });

  it("blobs referenced in another namespace survive; lease snapshots and gc.root survive", async () => {
    const shared = await put("default", MEDIA_TYPES.ociLayerGzip, te.encode("shared layer"));
    const cfg = await put("k8s.io", MEDIA_TYPES.ociConfig, { k8s: true });
    index.add("k8s.io", { digest: shared.digest, size: shared.size });
    const m = await manifest("k8s.io", cfg, [shared]);
    images.create("k8s.io", { name: "registry.k8s.io/pause:3.10", target: m });
    const rooted = await put("default", MEDIA_TYPES.ociLayerGzip, te.encode("rooted"), {
      [LABEL_GC_ROOT]: "yes",
    });
    const refd = await put("default", MEDIA_TYPES.ociLayerGzip, te.encode("referenced by label"));
    index.setLabels("default", rooted.digest, { "containerd.io/gc.ref.content.x": refd.digest });
    snapshot("default", "leased-1", "committed");
    snapshot("default", "leased-2", "committed", "leased-1");
    leases.create("default", "unpack");
    leases.addResource("default", "unpack", { type: "snapshots/overlayfs", ref: "leased-2" });
    snapshot("default", "root-snap", "committed", undefined, { [LABEL_GC_ROOT]: "1" });
    snapshot("default", "view-1", "view", "root-snap");

    const r = await gc();
    // default's row for the shared layer goes (nothing in default uses it) but the file stays.
    expect(r.contentRemoved).toEqual([`default/${shared.digest}`]);
    expect(r.blobsDeleted).toEqual([]);
    expect(await cs.exists(shared.digest)).toBe(true);
    expect(index.namespacesOf(shared.digest)).toEqual(["k8s.io"]);
    expect(await cs.exists(rooted.digest)).toBe(true);
    expect(await cs.exists(refd.digest)).toBe(true);
    expect(removed).toEqual([]);
    expect(snapshotKeys()).toEqual(["leased-1", "leased-2", "root-snap", "view-1"]);

    // Removing the k8s.io image frees the shared blob at last.
    images.delete("k8s.io", "registry.k8s.io/pause:3.10");
    const r2 = await gc();
    expect(r2.blobsDeleted.sort()).toEqual([shared.digest, cfg.digest, m.digest].sort());
  });

  it("keeps the blob an ingest under way is writing, and skips unknown snapshotters", async () => {
    const data = te.encode("being written again");
    const d = await put("default", MEDIA_TYPES.ociLayerGzip, data);
    index.remove("default", d.digest);
    const w = await cs.writer("again", { expected: d.digest });
    await w.write(data.subarray(0, 3));
    await w.close();
    new NamespaceStore(db).ensure("default");
    db.prepare(
      `INSERT INTO snapshots (snapshotter, namespace, key, id, kind, labels, created_at, updated_at)
       VALUES ('native', 'default', 'n-1', 99, 'committed', '{}', 1, 1)`,
    ).run();
    cs = new ContentStore(`${dir}/content`); // no grace from a recent commit
    const r = await gc();
    expect(r.blobsDeleted).toEqual([]);
    expect(await cs.exists(d.digest)).toBe(true);
    expect(r.snapshotsRemoved).toEqual([]);
    await cs.abort("again");
    expect((await gc()).blobsDeleted).toEqual([d.digest]);
  });
});
