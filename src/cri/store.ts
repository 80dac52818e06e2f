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
   * Every container record in creation order, as last read; dropped on any change to a
   * container (they all go through this class, the table's only writer). ListContainers and
   * the per-pod lookups then read no rows at all between changes.
   */
  #all: readonly ContainerRecord[] | undefined;
  /**
   * Every sandbox record in creation order, frozen (config included), as last read; dropped on
   * any change to a sandbox. ListPodSandbox (the kubelet's relist) then parses no rows.
   */
  #allSandboxes: readonly SandboxRecord[] | undefined;
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

  addSandbox(s: Omit<SandboxRecord, "createdAt">): SandboxRecord {
    this.#allSandboxes = undefined;
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
    return this.sandbox(s.id);
  }

  sandbox(id: string): SandboxRecord {
    const r = this.#sql("SELECT * FROM cri_sandboxes WHERE id = ?").get(id) as
      | SandboxRow
      | undefined;
    if (!r) throw new NotFoundError(`pod sandbox "${id}"`);
    return sandbox(r);
  }

  /** Full id, or an unambiguous prefix (as crictl allows). */
  resolveSandbox(idOrPrefix: string): SandboxRecord {
    const rows = this.#sql("SELECT * FROM cri_sandboxes WHERE id LIKE ? || '%' LIMIT 2").all(
      idOrPrefix,
    ) as unknown as SandboxRow[];
    if (rows.length !== 1 || !idOrPrefix) throw new NotFoundError(`pod sandbox "${idOrPrefix}"`);
    return sandbox(rows[0]);
  }

  /** Every sandbox, in creation order: shared, frozen records (read them, do not change them). */
  sandboxes(): SandboxRecord[] {
    this.#allSandboxes ??= (this.#sql("SELECT * FROM cri_sandboxes ORDER BY created_at")
      .all() as unknown as SandboxRow[]).map((r) => deepFreeze(sandbox(r)));
    return [...this.#allSandboxes];
  }

  setSandboxState(id: string, state: "ready" | "notready"): void {
    this.#allSandboxes = undefined;
    this.#sql("UPDATE cri_sandboxes SET state = ? WHERE id = ?").run(state, id);
  }

  /** RunPodSandbox finished: the pod runs, on this network. */
  /**
   * The pod's network was torn down (CNI DEL done, netns removed): its netns path is cleared so
   * later stops (the kubelet repeats them, Remove stops too) do not run CNI DEL again. Not
   * inferred from what is on disk: after a reboot the netns and the CNI cache (tmpfs) are gone
   * while an IPAM lease may still be held.
   */
  markNetworkDown(id: string): void {
    this.#allSandboxes = undefined;
    this.#sql("UPDATE cri_sandboxes SET netns_path = '' WHERE id = ?").run(id);
  }

  markSandboxReady(id: string, netnsPath: string, ips: string[]): void {
    this.#allSandboxes = undefined;
    this.#sql(
      "UPDATE cri_sandboxes SET netns_path = ?, ips = ?, state = 'ready', building = 0 WHERE id = ?",
    ).run(netnsPath, JSON.stringify(ips), id);
  }

  /** What an interrupted RunPodSandbox built is undone: the pod stays, NOTREADY. */
  markSandboxUndone(id: string): void {
    this.#allSandboxes = undefined;
    this.#sql(
      "UPDATE cri_sandboxes SET state = 'notready', building = 0 WHERE id = ?",
    ).run(id);
  }

  removeSandbox(id: string): void {
    this.#allSandboxes = undefined;
    this.#sql("DELETE FROM cri_sandboxes WHERE id = ?").run(id);
  }

  addContainer(c: Omit<ContainerRecord, "createdAt" | "reason" | "message">): ContainerRecord {
    this.#all = undefined;
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
    return this.container(c.id);
  }

  container(id: string): ContainerRecord {
    const r = this.#sql("SELECT * FROM cri_containers WHERE id = ?").get(id) as
      | ContainerRow
      | undefined;
    if (!r) throw new NotFoundError(`container "${id}"`);
    return this.#container(r);
  }

  resolveContainer(idOrPrefix: string): ContainerRecord {
    const rows = this.#sql("SELECT * FROM cri_containers WHERE id LIKE ? || '%' LIMIT 2").all(
      idOrPrefix,
    ) as unknown as ContainerRow[];
    if (rows.length !== 1 || !idOrPrefix) throw new NotFoundError(`container "${idOrPrefix}"`);
    return this.#container(rows[0]);
  }

  containers(sandboxId?: string): ContainerRecord[] {
    this.#all ??= (this.#sql("SELECT * FROM cri_containers ORDER BY created_at, rowid")
      .all() as unknown as ContainerRow[]).map((r) => Object.freeze(this.#container(r)));
    return sandboxId === undefined
      ? [...this.#all]
      : this.#all.filter((c) => c.sandboxId === sandboxId);
  }

  /** StartContainer ran the container's process (at `at`, default now). */
  markStarted(id: string, at: Date = new Date()): void {
    this.#all = undefined;
    this.#sql("UPDATE cri_containers SET started_at = ? WHERE id = ?").run(at.getTime(), id);
  }

  markFinished(id: string, exitCode: number, finishedAt: Date, reason: string, message = ""): void {
    this.#all = undefined;
    this.#sql(
      "UPDATE cri_containers SET finished_at = ?, exit_code = ?, reason = ?, message = ? WHERE id = ? AND finished_at IS NULL",
    ).run(finishedAt.getTime(), exitCode, reason, message, id);
  }

  removeContainer(id: string): void {
    this.#all = undefined;
    this.#sql("DELETE FROM cri_containers WHERE id = ?").run(id);
    this.#configs.delete(id);
  }
}
