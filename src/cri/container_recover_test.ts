/**
 * recoverContainers against a real CRI store and a stand-in containers service: what a killed
 * CreateContainer or StartContainer leaves is settled the way the kubelet needs.
 */
import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { MetadataDB } from "../metadata/db.ts";
import { createLogger } from "../log/logger.ts";
import { NotFoundError } from "../errdefs/errors.ts";
import type { ContainerService, TaskView } from "../services/containers/service.ts";
import type { CriContext } from "./context.ts";
import { CriStore } from "./store.ts";
import { recoverContainers } from "./container_recover.ts";

describe("cri: container records at daemon start", () => {
  let dir: string;
  let store: CriStore;
  let logged: string[];
  // The containers service as the CRI sees it: which containers exist, and their tasks.
  let existing: Set<string>;
  let tasks: Map<string, Partial<TaskView>>;
  let deletedTasks: string[];

  beforeEach(async () => {
    dir = await Deno.makeTempDir();
    store = new CriStore(MetadataDB.open(`${dir}/m.db`));
    store.addSandbox({
      id: "pod",
      nameKey: "web_default_uid_0",
      config: {},
      handler: "runc",
      netnsPath: "",
      ips: [],
      state: "ready",
      building: false,
    });
    logged = [];
    existing = new Set();
    tasks = new Map();
    deletedTasks = [];
  });
  afterEach(async () => {
    store.db.close();
    await Deno.remove(dir, { recursive: true });
  });

  const ctx = (): CriContext => {
    const containers = {
      get(_ns: string, id: string) {
        if (!existing.has(id)) throw new NotFoundError(`container "${id}"`);
        return { id };
      },
      task(_ns: string, id: string) {
        const t = tasks.get(id);
        return t ? Promise.resolve(t) : Promise.reject(new NotFoundError(`task of "${id}"`));
      },
      deleteTask(_ns: string, id: string) {
        deletedTasks.push(id);
        tasks.delete(id);
        return Promise.resolve({ exitCode: 0 });
      },
    } as unknown as ContainerService;
    return {
      containers,
      store,
      log: createLogger({ level: "debug", sink: (l) => logged.push(l) }),
    } as unknown as CriContext;
  };
  const add = (id: string) =>
    store.addContainer({
      id,
      sandboxId: "pod",
      nameKey: `${id}_web_default_uid_0`,
      config: {},
      imageRef: "busybox",
      imageId: "sha256:1",
      logPath: "",
    });

  it("drops records of containers never created below, freeing their names", async () => {
    add("orphan");
    add("kept");
    existing.add("kept");
    await recoverContainers(ctx());
    expect(store.containers().map((c) => c.id)).toEqual(["kept"]);
    expect(logged.join("\n")).toContain("CreateContainer cut short");
    add("orphan"); // the name is free again
  });

  it("deletes a created, never started task: CREATED again", async () => {
    add("c");
    existing.add("c");
    tasks.set("c", { status: "created" });
    await recoverContainers(ctx());
    expect(deletedTasks).toEqual(["c"]);
    expect(store.container("c").startedAt).toBeUndefined();
  });

  it("records a start that happened, and an exit since", async () => {
    add("up");
    add("gone");
    add("fresh");
    for (const id of ["up", "gone", "fresh"]) existing.add(id);
    const at = new Date(1_700_000_000_000);
    tasks.set("up", { status: "running", startedAt: at });
    tasks.set("gone", {
      status: "stopped",
      startedAt: at,
      exitCode: 3,
      finishedAt: new Date(at.getTime() + 1000),
      oomKilled: false,
    });
    await recoverContainers(ctx());
    expect(deletedTasks).toEqual([]);
    expect(store.container("up")).toMatchObject({ startedAt: at, finishedAt: undefined });
    expect(store.container("gone")).toMatchObject({ startedAt: at, exitCode: 3, reason: "Error" });
    // No task at all: a plain CREATED container, left as it is.
    expect(store.container("fresh").startedAt).toBeUndefined();
  });
});
