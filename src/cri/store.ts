/**
 * The CRI's own records in the metadata database: pod sandboxes and the kubelet's view of each
 * container. The kubelet requires names to be unique per pod attempt, so a name key is reserved
 * with the record; releasing it is removing the record.
 *
 * @example
 * ```ts
 * const store = new CriStore(db);
 * store.addSandbox({ id, nameKey: "web_default_uid_0", config, handler: "runc", netnsPath: "", ips: [], state: "notready", building: true });
 * ```
 */
import type { MetadataDB } from "../metadata/db.ts";
import { AlreadyExistsError, NotFoundError } from "../errdefs/errors.ts";

export interface SandboxRecord {
  id: string;
  nameKey: string;
  /** The PodSandboxConfig as the kubelet sent it (proto JSON-ish object). */
  config: unknown;
  handler: string;
  netnsPath: string;
  ips: string[];
  state: "ready" | "notready";
  /**
   * RunPodSandbox has not finished: set with the record, cleared when the pod runs. Still set
   * at daemon start means the daemon was killed mid-way (see sandbox_recover.ts).
   */
  building: boolean;
  createdAt: Date;
}

export interface ContainerRecord {
  id: string;
  sandboxId: string;
  nameKey: string;
  config: unknown;
  imageRef: string;
  imageId: string;
  logPath: string;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  exitCode?: number;
  reason: string;
  message: string;
}

interface SandboxRow {
  id: string;
  name_key: string;
  config: string;
  handler: string;
  netns_path: string;
  ips: string;
  state: "ready" | "notready";
  building: number;
  created_at: number;
}

interface ContainerRow {
  id: string;
  sandbox_id: string;
  name_key: string;
  config: string;
  image_ref: string;
  image_id: string;
  log_path: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  reason: string;
  message: string;
}

/** bigints (int64 proto fields) survive as strings in stored configs. */
function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x));
}

function sandbox(r: SandboxRow): SandboxRecord {
  return {
    id: r.id,
    nameKey: r.name_key,
    config: JSON.parse(r.config),
    handler: r.handler,
    netnsPath: r.netns_path,
    ips: JSON.parse(r.ips),
    state: r.state,
    building: r.building === 1,
    createdAt: new Date(r.created_at),
  };
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function container(r: ContainerRow, config: unknown): ContainerRecord {
  return {
    id: r.id,
    sandboxId: r.sandbox_id,
    nameKey: r.name_key,
    config,
    imageRef: r.image_ref,
    imageId: r.image_id,
    logPath: r.log_path,
    createdAt: new Date(r.created_at),
    startedAt: r.started_at === null ? undefined : new Date(r.started_at),
    finishedAt: r.finished_at === null ? undefined : new Date(r.finished_at),
    exitCode: r.exit_code ?? undefined,
    reason: r.reason,
    message: r.message,
  };
}

export class CriStore {
  /**
   * Parsed container configs by id, with the stored text they came from. A config never
   * changes once stored, and the kubelet lists every container every second: parsing each one
   * each time was most of ListContainers. Frozen, as every reader shares them.
   */
  #configs = new Map<string, { raw: string; parsed: unknown }>();
  /**
   * Every container record in creation order, frozen, with an index by id, as last read. The
   * table's only writer is this class: an insert appends its row, an update re-reads its one
   * row in place, a delete drops the record (the kubelet starting 110 pods re-read every row
   * per new pod). ListContainers, the per-pod lookups and ContainerStatus (by id or
   * prefix) then read no rows at all between changes: a `LIKE ? || '%'` lookup could not use
   * the primary key and scanned every row per call (a third of ContainerStatus at 1000).
   */
  #containerCache: RecordCache<ContainerRecord> | undefined;
  /** The same for sandboxes (config included): ListPodSandbox, PodSandboxStatus. */
  #sandboxCache: RecordCache<SandboxRecord> | undefined;
  /** Prepared statements by SQL text: node:sqlite compiles each prepare() anew. */
  readonly #statements = new Map<string, ReturnType<MetadataDB["prepare"]>>();

  constructor(readonly db: MetadataDB) {}

  #sql(text: string): ReturnType<MetadataDB["prepare"]> {
    let st = this.#statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.#statements.set(text, st);
    }
    return st;
  }

  #container(r: ContainerRow): ContainerRecord {
    let hit = this.#configs.get(r.id);
    if (hit?.raw !== r.config) {
      hit = { raw: r.config, parsed: deepFreeze(JSON.parse(r.config)) };
      this.#configs.set(r.id, hit);
    }
    return container(r, hit.parsed);
  }

  #sandboxes(): RecordCache<SandboxRecord> {
    return this.#sandboxCache ??= new RecordCache(
      (this.#sql("SELECT * FROM cri_sandboxes ORDER BY created_at, rowid")
        .all() as unknown as SandboxRow[]).map((r) => deepFreeze(sandbox(r))),
    );
  }

  /** Puts a new or changed sandbox row into the cache (if it is loaded), in its place. */
  #sandboxChanged(id: string): void {
    if (!this.#sandboxCache) return;
    const r = this.#sql("SELECT * FROM cri_sandboxes WHERE id = ?").get(id) as
      | SandboxRow
      | undefined;
    if (r) this.#sandboxCache.put(deepFreeze(sandbox(r)));
    else this.#sandboxCache = undefined;
  }

  addSandbox(s: Omit<SandboxRecord, "createdAt">): SandboxRecord {
    const holder = this.#sql("SELECT id FROM cri_sandboxes WHERE name_key = ?").get(
      s.nameKey,
    ) as { id: string } | undefined;
    if (holder) {
      throw new AlreadyExistsError(`pod sandbox name "${s.nameKey}" is reserved for ${holder.id}`);
    }
    this.#sql(
      "INSERT INTO cri_sandboxes (id, name_key, config, handler, netns_path, ips, state, building, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      s.id,
      s.nameKey,
      toJson(s.config),
      s.handler,
      s.netnsPath,
      JSON.stringify(s.ips),
      s.state,
      s.building ? 1 : 0,
      Date.now(),
    );
    this.#sandboxChanged(s.id);
    return this.sandbox(s.id);
  }

  /** The sandbox with this full id: a shared, frozen record. */
  sandbox(id: string): SandboxRecord {
    const sb = this.#sandboxes().get(id);
    if (!sb) throw new NotFoundError(`pod sandbox "${id}"`);
    return sb;
  }

  /** Full id, or an unambiguous prefix (as crictl allows). */
  resolveSandbox(idOrPrefix: string): SandboxRecord {
    const sb = this.#sandboxes().resolve(idOrPrefix);
    if (!sb) throw new NotFoundError(`pod sandbox "${idOrPrefix}"`);
    return sb;
  }

  /** Every sandbox, in creation order: shared, frozen records (read them, do not change them). */
  sandboxes(): SandboxRecord[] {
    return [...this.#sandboxes().list];
  }

  setSandboxState(id: string, state: "ready" | "notready"): void {
    this.#sql("UPDATE cri_sandboxes SET state = ? WHERE id = ?").run(state, id);
    this.#sandboxChanged(id);
  }

  /** RunPodSandbox finished: the pod runs, on this network. */
  /**
   * The pod's network was torn down (CNI DEL done, netns removed): its netns path is cleared so
   * later stops (the kubelet repeats them, Remove stops too) do not run CNI DEL again. Not
   * inferred from what is on disk: after a reboot the netns and the CNI cache (tmpfs) are gone
   * while an IPAM lease may still be held.
   */
  markNetworkDown(id: string): void {
    this.#sql("UPDATE cri_sandboxes SET netns_path = '' WHERE id = ?").run(id);
    this.#sandboxChanged(id);
  }

  markSandboxReady(id: string, netnsPath: string, ips: string[]): void {
    this.#sql(
      "UPDATE cri_sandboxes SET netns_path = ?, ips = ?, state = 'ready', building = 0 WHERE id = ?",
    ).run(netnsPath, JSON.stringify(ips), id);
    this.#sandboxChanged(id);
  }

  /** What an interrupted RunPodSandbox built is undone: the pod stays, NOTREADY. */
  markSandboxUndone(id: string): void {
    this.#sql(
      "UPDATE cri_sandboxes SET state = 'notready', building = 0 WHERE id = ?",
    ).run(id);
    this.#sandboxChanged(id);
  }

  removeSandbox(id: string): void {
    this.#sql("DELETE FROM cri_sandboxes WHERE id = ?").run(id);
    this.#sandboxCache?.remove(id);
  }

  #containers(): RecordCache<ContainerRecord> {
    return this.#containerCache ??= new RecordCache(
      (this.#sql("SELECT * FROM cri_containers ORDER BY created_at, rowid")
        .all() as unknown as ContainerRow[]).map((r) => Object.freeze(this.#container(r))),
    );
  }

  /** Puts a new or changed container row into the cache (if it is loaded), in its place. */
  #containerChanged(id: string): void {
    if (!this.#containerCache) return;
    const r = this.#sql("SELECT * FROM cri_containers WHERE id = ?").get(id) as
      | ContainerRow
      | undefined;
    if (r) this.#containerCache.put(Object.freeze(this.#container(r)));
    else this.#containerCache = undefined;
  }

  addContainer(c: Omit<ContainerRecord, "createdAt" | "reason" | "message">): ContainerRecord {
    const holder = this.#sql("SELECT id FROM cri_containers WHERE name_key = ?").get(
      c.nameKey,
    ) as { id: string } | undefined;
    if (holder) {
      throw new AlreadyExistsError(`container name "${c.nameKey}" is reserved for ${holder.id}`);
    }
    this.#sql(
      "INSERT INTO cri_containers (id, sandbox_id, name_key, config, image_ref, image_id, log_path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(
      c.id,
      c.sandboxId,
      c.nameKey,
      toJson(c.config),
      c.imageRef,
      c.imageId,
      c.logPath,
      Date.now(),
    );
    this.#containerChanged(c.id);
    return this.container(c.id);
  }

  /** The container with this full id: a shared, frozen record. */
  container(id: string): ContainerRecord {
    const c = this.#containers().get(id);
    if (!c) throw new NotFoundError(`container "${id}"`);
    return c;
  }

  /** Full id, or an unambiguous prefix (as crictl allows). */
  resolveContainer(idOrPrefix: string): ContainerRecord {
    const c = this.#containers().resolve(idOrPrefix);
    if (!c) throw new NotFoundError(`container "${idOrPrefix}"`);
    return c;
  }

  /** Every container (of one sandbox), in creation order: shared, frozen records. */
  containers(sandboxId?: string): ContainerRecord[] {
    const { list } = this.#containers();
    return sandboxId === undefined ? [...list] : list.filter((c) => c.sandboxId === sandboxId);
  }

  /** StartContainer ran the container's process (at `at`, default now). */
  markStarted(id: string, at: Date = new Date()): void {
    this.#sql("UPDATE cri_containers SET started_at = ? WHERE id = ?").run(at.getTime(), id);
    this.#containerChanged(id);
  }

  markFinished(id: string, exitCode: number, finishedAt: Date, reason: string, message = ""): void {
    this.#sql(
      "UPDATE cri_containers SET finished_at = ?, exit_code = ?, reason = ?, message = ? WHERE id = ? AND finished_at IS NULL",
    ).run(finishedAt.getTime(), exitCode, reason, message, id);
    this.#containerChanged(id);
  }

  removeContainer(id: string): void {
    this.#sql("DELETE FROM cri_containers WHERE id = ?").run(id);
    this.#containerCache?.remove(id);
    this.#configs.delete(id);
  }
}

/**
 * Records in creation order with an index by id. Ids are 64 hex digits (prefixes are looked up
 * rarely, by hand with crictl), so the prefix lookup scans; an exact id does not.
 */
class RecordCache<T extends { id: string }> {
  readonly list: T[];
  readonly #byId = new Map<string, number>();

  constructor(list: T[]) {
    this.list = list;
    list.forEach((r, i) => this.#byId.set(r.id, i));
  }

  get(id: string): T | undefined {
    const i = this.#byId.get(id);
    return i === undefined ? undefined : this.list[i];
  }

  /** The record with this id, or the only one whose id starts with it. */
  resolve(idOrPrefix: string): T | undefined {
    if (!idOrPrefix) return undefined;
    const exact = this.get(idOrPrefix);
    if (exact) return exact;
    let found: T | undefined;
    for (const r of this.list) {
      if (!r.id.startsWith(idOrPrefix)) continue;
      if (found) return undefined; // ambiguous
      found = r;
    }
    return found;
  }

  /**
   * Puts a re-read record where its old one was (its place in creation order is unchanged), or
   * a new one last (the newest).
   */
  put(r: T): void {
    const i = this.#byId.get(r.id);
    if (i !== undefined) {
      this.list[i] = r;
      return;
    }
    this.#byId.set(r.id, this.list.length);
    this.list.push(r);
  }

  /** Drops a record; the ones after it move up. */
  remove(id: string): void {
    const i = this.#byId.get(id);
    if (i === undefined) return;
    this.list.splice(i, 1);
    this.#byId.delete(id);
    for (let j = i; j < this.list.length; j++) this.#byId.set(this.list[j].id, j);
  }
}
