/**
 * ContainerService.recover against a real overlay snapshotter, real bundles with their rootfs
 * mounted, and real runc + conmon (root only): what a create cut short by a killed daemon
 * leaves — before the container record is written — is undone at the next start, a delete cut
 * short is finished, and nothing that belongs to a recorded container, a lease or a client's
 * own snapshot is touched.
 *
 * One rule needs no runc at all, and is tested against a fake {@link ContainerRuntime}: a live
 * task is deleted only with force.
 */
import {
  afterEach,
  beforeEach,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../../testing/bdd.ts";
import { type Scratch, scratch } from "../../snapshots/test_helpers.ts";
import { OverlaySnapshotter } from "../../snapshots/overlay.ts";
import { mountAll, unmountAll } from "../../snapshots/mount.ts";
import { ContainerStore } from "../../metadata/containers.ts";
import { NamespaceStore } from "../../metadata/namespaces.ts";
import { LeaseStore } from "../../metadata/leases.ts";
import { ConmonRuntime } from "../../runtime/driver.ts";
import type { ContainerRuntime, ContainerState } from "../../runtime/runtime.ts";
import { errorKind, NotFoundError } from "../../errdefs/errors.ts";
import { Runc } from "../../runtime/runc.ts";
import { buildSpec } from "../../runtime/spec/builder.ts";
import { Exchange } from "../../events/exchange.ts";
import { createLogger } from "../../log/logger.ts";
import type { ImageService } from "../images/service.ts";
import type { ContentStore } from "../../content/store.ts";
import type { ContentIndex } from "../../metadata/content.ts";
import {
  CONTAINER_SNAPSHOT_LABEL,
  ContainerService,
  DELETING_LABEL,
  IMAGE_VOLUMES_LABEL,
} from "./service.ts";
import { IMAGE_VOLUME_SNAPSHOT_LABEL } from "./image_volumes.ts";

const NS = "default";
// Per process: two runs side by side must not remove each other's parent.
const CGROUP_PARENT = `k8scontainerd-service-test-${Deno.pid}`;

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((l) => l.split(" ")[4])
    .filter((m) => m && m.startsWith(`${dir}/`));
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function conmonsFor(text: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.split("\0")[0].endsWith("conmon") && cmd.includes(text)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

describe.skipIf(!isRoot, ROOT_REASON)(
  "ContainerService.recover: creates and deletes cut short",
  () => {
    let s: Scratch;
    let sn: OverlaySnapshotter;
    let rt: ConmonRuntime;
    let svc: ContainerService;
    let store: ContainerStore;
    let leases: LeaseStore;
    let state: string;
    const logs: string[] = [];

    beforeEach(async () => {
      s = await scratch("k8sc-svc-recover-");
      state = `${s.dir}/state`;
      sn = new OverlaySnapshotter(`${s.dir}/snapshots`, s.db);
      // An image layer: busybox with sh and sleep.
      await sn.prepare(NS, "extract-base", undefined);
      const fs = sn.upperDir(NS, "extract-base");
      for (const d of ["bin", "etc", "proc", "sys", "dev", "tmp"]) await Deno.mkdir(`${fs}/${d}`);
      await Deno.copyFile("/bin/busybox", `${fs}/bin/busybox`);
      await Deno.chmod(`${fs}/bin/busybox`, 0o755);
      for (const tool of ["sh", "sleep"]) await Deno.symlink("busybox", `${fs}/bin/${tool}`);
      await sn.commit(NS, "base", "extract-base");
      rt = new ConmonRuntime({ stateDir: `${state}/runtime` });
      store = new ContainerStore(s.db);
      leases = new LeaseStore(s.db);
      logs.length = 0;
      svc = new ContainerService({
        containers: store,
        namespaces: new NamespaceStore(s.db),
        leases,
        // recover() reads neither images nor content.
        images: undefined as unknown as ImageService,
        content: undefined as unknown as ContentStore,
        contentIndex: undefined as unknown as ContentIndex,
        snapshotters: new Map([["overlayfs", sn]]),
        defaultSnapshotter: "overlayfs",
        runtime: rt,
        handlers: ["runc"],
        stateDir: state,
        rootDir: `${s.dir}/root`,
        events: new Exchange(),
        log: createLogger({ level: "info", sink: (l) => logs.push(l) }),
        daemonOomScoreAdj: 0,
      });
    });

    afterEach(async () => {
      const runc = new Runc({ binary: "/usr/bin/runc", root: `${state}/runtime/runc/${NS}` });
      for (const c of await runc.list().catch(() => [])) {
        await runc.delete(c.id, { force: true }).catch(() => {});
      }
      for (const pid of conmonsFor(s.dir)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
        const parent = `/sys/fs/cgroup/${e.name}/${CGROUP_PARENT}`;
        try {
          for (const c of Deno.readDirSync(parent)) {
            if (c.isDirectory) await Deno.remove(`${parent}/${c.name}`).catch(() => {});
          }
          await Deno.remove(parent).catch(() => {});
        } catch { /* not there */ }
      }
      await s.dispose();
    });

    /**
     * What ContainerService.create does up to its failpoint "container-create-before-record":
     * the labelled root snapshot, mounted at <bundle>/rootfs, and config.json. `task` adds what a
     * kill after `runc create` leaves: conmon and runc's state (status "created").
     */
    async function halfCreate(
      id: string,
      o: { task?: boolean; record?: boolean; volume?: boolean } = {},
    ) {
      const bundle = svc.bundleDir(NS, id);
      await Deno.mkdir(`${bundle}/rootfs`, { recursive: true });
      mountAll(
        await sn.prepare(NS, id, "base", { [CONTAINER_SNAPSHOT_LABEL]: id }),
        `${bundle}/rootfs`,
      );
      // An image volume: a view of the image mounted read-only under the bundle.
      const volumes = [{ n: 0, image: "img", imageId: "sha256:x", key: `${id}-imagevolume-0` }];
      if (o.volume) {
        await Deno.mkdir(`${bundle}/imagevolumes/0`, { recursive: true });
        mountAll(
          await sn.view(NS, volumes[0].key, "base", { [IMAGE_VOLUME_SNAPSHOT_LABEL]: id }),
          `${bundle}/imagevolumes/0`,
        );
      }
      const spec = buildSpec({
        id,
        rootfs: { path: "rootfs" },
        args: ["sleep", "60"],
        cgroupsPath: `/${CGROUP_PARENT}/${id}`,
        rlimits: [], // inherit: the test runner's own limits may be lower than the defaults
      });
      await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(spec));
      if (o.record) {
        store.create(NS, {
          id,
          runtime: "runc",
          spec,
          snapshotter: "overlayfs",
          snapshotKey: id,
          labels: o.volume ? { [IMAGE_VOLUMES_LABEL]: JSON.stringify(volumes) } : {},
        });
      }
      if (o.task) {
        await rt.create({
          id,
          namespace: NS,
          bundle,
          logPath: `${s.dir}/logs/${id}.log`,
          tty: false,
          stdin: false,
          stdinOnce: false,
        });
      }
      return bundle;
    }

    it("removes the mount, bundle and root snapshot of a container that has no record", async () => {
      const bundle = await halfCreate("c1");
      expect(mountsUnder(state)).toEqual([`${bundle}/rootfs`]);

      const undone = await svc.recover();

      expect(undone).toEqual({
        deletes: [],
        runtime: [],
        bundles: ["default/c1"],
        snapshots: ["default/overlayfs/c1"],
      });
      expect(mountsUnder(state)).toEqual([]);
      expect(exists(bundle)).toBe(false);
      expect(sn.walk(NS).map((i) => i.key)).toEqual(["base"]);
      // The snapshot's directory went too, not only its row.
      expect([...Deno.readDirSync(`${s.dir}/snapshots/snapshots`)].map((e) => e.name)).toEqual([
        "1",
      ]);
      expect(logs.some((l) => l.includes("bundle of a container create cut short"))).toBe(true);
      // The same id can be created again.
      await halfCreate("c1", { record: true });
      expect(mountsUnder(state)).toEqual([`${bundle}/rootfs`]);
    });

    it("unmounts and removes the image volumes of a container that has no record", async () => {
      const bundle = await halfCreate("c1", { volume: true });
      expect(mountsUnder(state)).toEqual([`${bundle}/rootfs`, `${bundle}/imagevolumes/0`]);
      const undone = await svc.recover();
      expect(undone.bundles).toEqual(["default/c1"]);
      expect(undone.snapshots.sort()).toEqual([
        "default/overlayfs/c1",
        "default/overlayfs/c1-imagevolume-0",
      ]);
      expect(mountsUnder(state)).toEqual([]);
      expect(exists(bundle)).toBe(false);
      expect(sn.walk(NS).map((i) => i.key)).toEqual(["base"]);
      // The image's layer was never touched.
      expect(exists(`${s.dir}/snapshots/snapshots/1/fs/bin/busybox`)).toBe(true);
    });

    it("remounts a recorded container's image volumes lost with a reboot, removes a deleted one's", async () => {
      const kept = await halfCreate("kept", { record: true, volume: true });
      const marked = await halfCreate("marked", { record: true, volume: true });
      store.setLabels(NS, "marked", { [DELETING_LABEL]: "true" });
      // A reboot: nothing of kept is mounted any more.
      unmountAll(`${kept}/rootfs`);
      unmountAll(`${kept}/imagevolumes/0`);
      const undone = await svc.recover();
      expect(undone.deletes).toEqual(["default/marked"]);
      expect(exists(marked)).toBe(false);
      expect(mountsUnder(state)).toEqual([`${kept}/rootfs`, `${kept}/imagevolumes/0`]);
      expect(exists(`${kept}/imagevolumes/0/bin/busybox`)).toBe(true);
      expect(sn.walk(NS).map((i) => i.key)).toEqual(["base", "kept", "kept-imagevolume-0"]);
    });

    it("also removes the runc state and conmon of a create killed after `runc create`", async () => {
      const bundle = await halfCreate("c2", { task: true });
      expect(conmonsFor(s.dir).length).toBe(1);
      const runc = new Runc({ binary: "/usr/bin/runc", root: `${state}/runtime/runc/${NS}` });
      expect((await runc.list()).map((c) => [c.id, c.status])).toEqual([["c2", "created"]]);

      const undone = await svc.recover();

      expect(undone).toEqual({
        deletes: [],
        runtime: ["default/c2"],
        bundles: ["default/c2"],
        snapshots: ["default/overlayfs/c2"],
      });
      expect(await runc.list()).toEqual([]);
      for (let i = 0; i < 40 && conmonsFor(s.dir).length; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(conmonsFor(s.dir)).toEqual([]);
      expect(exists(`${state}/runtime/${NS}/c2`)).toBe(false);
      expect(mountsUnder(state)).toEqual([]);
      expect(exists(bundle)).toBe(false);
      expect(sn.walk(NS).map((i) => i.key)).toEqual(["base"]);
    });

    it("finishes deletes cut short: a record marked deleting goes with its mount, snapshot and bundle", async () => {
      const kept = await halfCreate("kept", { record: true });
      // Killed just after the delete marked the record: everything is still there.
      const marked = await halfCreate("marked", { record: true });
      store.setLabels(NS, "marked", { [DELETING_LABEL]: "true" });
      // Killed at "container-delete-snapshot-removed": unmounted, snapshot gone, bundle left.
      const halfway = await halfCreate("halfway", { record: true });
      store.setLabels(NS, "halfway", { [DELETING_LABEL]: "true" });
      unmountAll(`${halfway}/rootfs`);
      await sn.remove(NS, "halfway");

      const undone = await svc.recover();

      expect(undone).toEqual({
        deletes: ["default/halfway", "default/marked"],
        runtime: [],
        bundles: [],
        snapshots: [],
      });
      expect(store.all().map((r) => r.container.id)).toEqual(["kept"]);
      expect(mountsUnder(state)).toEqual([`${kept}/rootfs`]);
      expect([exists(marked), exists(halfway), exists(kept)]).toEqual([false, false, true]);
      expect(sn.walk(NS).map((i) => i.key)).toEqual(["base", "kept"]);
      expect(logs.filter((l) => l.includes("finished the delete of a container cut short")).length)
        .toBe(2);
    });

    it("keeps what a record, a lease or a client owns", async () => {
      // A complete container: record written; its rootfs stays mounted.
      const kept = await halfCreate("kept", { record: true });
      // A labelled root snapshot a live lease protects (someone's create in progress).
      await sn.prepare(NS, "leased", "base", { [CONTAINER_SNAPSHOT_LABEL]: "leased" });
      leases.create(NS, "l1");
      leases.addResource(NS, "l1", { type: "snapshots/overlayfs", ref: "leased" });
      // A labelled root snapshot whose lease has expired is not protected any more.
      await sn.prepare(NS, "expired", "base", { [CONTAINER_SNAPSHOT_LABEL]: "expired" });
      leases.create(NS, "l2", { expiresAt: new Date(Date.now() - 1000) });
      leases.addResource(NS, "l2", { type: "snapshots/overlayfs", ref: "expired" });
      // A client's own active snapshot (snapshots prepare): not the service's to judge.
      await sn.prepare(NS, "client", "base", { "app": "x" });
      // A GC root stays whatever else it says.
      await sn.prepare(NS, "pinned", "base", {
        [CONTAINER_SNAPSHOT_LABEL]: "pinned",
        "containerd.io/gc.root": "2024-01-01T00:00:00Z",
      });

      const undone = await svc.recover();

      expect(undone).toEqual({
        deletes: [],
        runtime: [],
        bundles: [],
        snapshots: ["default/overlayfs/expired"],
      });
      expect(mountsUnder(state)).toEqual([`${kept}/rootfs`]);
      expect(exists(`${kept}/config.json`)).toBe(true);
      expect(sn.walk(NS).map((i) => i.key)).toEqual(["base", "client", "kept", "leased", "pinned"]);
    });
  },
);

/**
 * A runtime holding the tasks the test puts in `tasks` (by `ns/id`) and recording deletes; every
 * other method fails, as the rule under test must not need it.
 */
function fakeRuntime(
  tasks: Map<string, ContainerState>,
  deleted: { id: string; force?: boolean }[],
): ContainerRuntime {
  const unused = (name: string) => () =>
    Promise.reject(new Error(`fake runtime: ${name} is not part of this test`));
  return {
    create: unused("create"),
    start: unused("start"),
    state(id, namespace = "default") {
      const t = tasks.get(`${namespace}/${id}`);
      return t ? Promise.resolve(structuredClone(t)) : Promise.reject(new NotFoundError(id));
    },
    knownAbsent: () => false,
    knownState: () => undefined,
    wait: unused("wait"),
    kill: unused("kill"),
    delete(id, opts = {}) {
      deleted.push({ id, force: opts.force });
      tasks.delete(`${opts.namespace ?? "default"}/${id}`);
      return Promise.resolve();
    },
    pause: unused("pause"),
    resume: unused("resume"),
    ps: unused("ps"),
    update: unused("update"),
    stats: unused("stats"),
    reopenLog: unused("reopenLog"),
    resize: unused("resize"),
    exec: unused("exec"),
    execSync: unused("execSync"),
    attach: unused("attach"),
    recover: unused("recover"),
  };
}

describe("ContainerService.deleteTask (fake runtime)", () => {
  let s: Scratch;
  let svc: ContainerService;
  let tasks: Map<string, ContainerState>;
  let deleted: { id: string; force?: boolean }[];
  let topics: string[];

  beforeEach(async () => {
    s = await scratch("k8sc-svc-delete-task-");
    tasks = new Map();
    deleted = [];
    topics = [];
    const events = new Exchange();
    const publish = events.publish.bind(events);
    events.publish = (ns, topic, e) => {
      topics.push(topic);
      publish(ns, topic, e);
    };
    const containers = new ContainerStore(s.db);
    containers.create(NS, { id: "web", runtime: "runc", spec: {} });
    svc = new ContainerService({
      containers,
      namespaces: new NamespaceStore(s.db),
      leases: new LeaseStore(s.db),
      images: undefined as unknown as ImageService,
      content: undefined as unknown as ContentStore,
      contentIndex: undefined as unknown as ContentIndex,
      snapshotters: new Map(),
      defaultSnapshotter: "overlayfs",
      runtime: fakeRuntime(tasks, deleted),
      handlers: ["runc"],
      stateDir: `${s.dir}/state`,
      rootDir: `${s.dir}/root`,
      events,
      log: createLogger({ level: "error", sink: () => {} }),
      daemonOomScoreAdj: 0,
    });
  });

  afterEach(async () => {
    await s.dispose();
  });

  function task(status: ContainerState["status"], exitCode?: number): ContainerState {
    return {
      id: "web",
      namespace: NS,
      status,
      pid: status === "stopped" ? 0 : 4242,
      exitCode,
      createdAt: new Date(0),
      finishedAt: status === "stopped" ? new Date(1000) : undefined,
      oomKilled: false,
      logPath: `${s.dir}/web.log`,
      handler: "runc",
      labels: {},
    };
  }

  it("refuses a live task without force and names its state; force deletes it", async () => {
    for (const status of ["running", "paused", "created"] as const) {
      tasks.set(`${NS}/web`, task(status));
      const err = await svc.deleteTask(NS, "web", false).catch((e) => e);
      expect(errorKind(err)).toBe("failed-precondition");
      expect((err as Error).message).toContain(`is ${status}`);
    }
    expect(deleted).toEqual([]);
    expect(topics).toEqual([]);

    expect(await svc.deleteTask(NS, "web", true)).toEqual({ exitCode: 0, finishedAt: undefined });
    expect(deleted).toEqual([{ id: "web", force: true }]);
    expect(topics).toEqual(["/tasks/delete"]);
  });

  it("deletes a stopped task without force and reports its exit", async () => {
    tasks.set(`${NS}/web`, task("stopped", 3));
    expect(await svc.deleteTask(NS, "web", false)).toEqual({
      exitCode: 3,
      finishedAt: new Date(1000),
    });
    expect(deleted).toEqual([{ id: "web", force: false }]);
    const err = await svc.deleteTask(NS, "web", false).catch((e) => e);
    expect(errorKind(err)).toBe("not-found");
  });
});
