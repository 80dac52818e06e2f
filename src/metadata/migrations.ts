/**
 * The metadata schema, as an ordered list of migrations. A migration is never edited once
 * released: change the schema by appending one. `PRAGMA user_version` records how far a
 * database has come; each migration runs in its own transaction, so a crash mid-migration
 * leaves the previous version intact.
 */

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "namespaces, images, content, snapshots, leases",
    sql: `
      -- Namespaces isolate images, content references, snapshots and leases (CRI uses k8s.io).
      CREATE TABLE namespaces (
        name       TEXT PRIMARY KEY,
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL
      );

      -- An image is a name pointing at a root descriptor (manifest or index) in the content store.
      CREATE TABLE images (
        namespace  TEXT NOT NULL REFERENCES namespaces(name),
        name       TEXT NOT NULL,
        media_type TEXT NOT NULL,
        digest     TEXT NOT NULL,
        size       INTEGER NOT NULL,
        annotations TEXT NOT NULL DEFAULT '{}',
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, name)
      );
      CREATE INDEX images_by_digest ON images(namespace, digest);

      -- Which namespaces hold a committed blob; the bytes live once in the content store.
      CREATE TABLE content (
        namespace  TEXT NOT NULL REFERENCES namespaces(name),
        digest     TEXT NOT NULL,
        size       INTEGER NOT NULL,
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, digest)
      );
      CREATE INDEX content_by_digest ON content(digest);

      -- Snapshots: key is the caller's name (a chain ID for committed layers); id names the
      -- directory under the snapshotter's root, allocated from a counter so keys can be any text.
      CREATE TABLE snapshots (
        snapshotter TEXT NOT NULL,
        namespace   TEXT NOT NULL REFERENCES namespaces(name),
        key         TEXT NOT NULL,
        id          INTEGER NOT NULL UNIQUE,
        kind        TEXT NOT NULL CHECK (kind IN ('view', 'active', 'committed')),
        parent      TEXT,
        labels      TEXT NOT NULL DEFAULT '{}',
        size        INTEGER,
        inodes      INTEGER,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        PRIMARY KEY (snapshotter, namespace, key)
      );
      CREATE INDEX snapshots_by_parent ON snapshots(snapshotter, namespace, parent);
      CREATE TABLE snapshot_ids (next INTEGER NOT NULL);
      INSERT INTO snapshot_ids VALUES (1);

      -- Leases protect what an operation is still building (a pull) from garbage collection.
      CREATE TABLE leases (
        namespace  TEXT NOT NULL REFERENCES namespaces(name),
        id         TEXT NOT NULL,
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (namespace, id)
      );
      CREATE TABLE lease_resources (
        namespace TEXT NOT NULL,
        lease     TEXT NOT NULL,
        type      TEXT NOT NULL, -- "content", "snapshots/<snapshotter>", "ingests"
        ref       TEXT NOT NULL,
        PRIMARY KEY (namespace, lease, type, ref),
        FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
      );
    `,
  },
  {
    version: 2,
    name: "containers",
    sql: `
      -- A container is metadata: its image, runtime, OCI spec and root snapshot. Its running
      -- process (the task) lives in the runtime's state, not here.
      CREATE TABLE containers (
        namespace    TEXT NOT NULL REFERENCES namespaces(name),
        id           TEXT NOT NULL,
        image        TEXT NOT NULL DEFAULT '',
        runtime      TEXT NOT NULL,
        spec         TEXT NOT NULL,
        snapshotter  TEXT NOT NULL DEFAULT '',
        snapshot_key TEXT NOT NULL DEFAULT '',
        labels       TEXT NOT NULL DEFAULT '{}',
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
      );
    `,
  },
  {
    version: 3,
    name: "cri sandboxes and containers",
    sql: `
      -- What the CRI adds on top of containers: pod sandboxes and the kubelet's view of each
      -- container (its config, names, times). name_key enforces the kubelet's name uniqueness.
      CREATE TABLE cri_sandboxes (
        id          TEXT PRIMARY KEY,
        name_key    TEXT NOT NULL UNIQUE,
        config      TEXT NOT NULL,
        handler     TEXT NOT NULL,
        netns_path  TEXT NOT NULL DEFAULT '',
        ips         TEXT NOT NULL DEFAULT '[]',
        state       TEXT NOT NULL CHECK (state IN ('ready', 'notready')),
        created_at  INTEGER NOT NULL
      );
      CREATE TABLE cri_containers (
        id          TEXT PRIMARY KEY,
        sandbox_id  TEXT NOT NULL REFERENCES cri_sandboxes(id),
        name_key    TEXT NOT NULL UNIQUE,
        config      TEXT NOT NULL,
        image_ref   TEXT NOT NULL,
        image_id    TEXT NOT NULL,
        log_path    TEXT NOT NULL DEFAULT '',
        created_at  INTEGER NOT NULL,
        started_at  INTEGER,
        finished_at INTEGER,
        exit_code   INTEGER,
        reason      TEXT NOT NULL DEFAULT '',
        message     TEXT NOT NULL DEFAULT ''
      );
      CREATE INDEX cri_containers_by_sandbox ON cri_containers(sandbox_id);
    `,
  },
  {
    version: 4,
    name: "cri sandboxes being built",
    sql: `
      -- 1 from the moment RunPodSandbox reserves the name until the pod runs: a daemon killed
      -- in between leaves it set, and the next start undoes what was half built.
      ALTER TABLE cri_sandboxes ADD COLUMN building INTEGER NOT NULL DEFAULT 0;
    `,
  },
];
