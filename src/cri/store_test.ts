import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { MetadataDB } from "../metadata/db.ts";
import { MIGRATIONS } from "../metadata/migrations.ts";
import { CriStore } from "./store.ts";

describe("cri store: sandboxes being built", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await Deno.makeTempDir();
  });
  afterEach(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  const pod = (id: string) => ({
    id,
    nameKey: `web_default_${id}_0`,
    config: { metadata: { name: "web", namespace: "default", uid: id, attempt: 0 } },
    handler: "runc",
    netnsPath: "",
    ips: [],
    state: "notready" as const,
    building: true,
  });

  it("pods that ran before the upgrade are not taken for half-built ones", () => {
    const v3 = MetadataDB.open(`${dir}/m.db`, MIGRATIONS.filter((m) => m.version <= 3));
    v3.prepare(
      "INSERT INTO cri_sandboxes (id, name_key, config, handler, netns_path, ips, state, created_at) VALUES ('old', 'k', '{}', 'runc', '/run/netns/k8sc-old', '[\"10.0.0.2\"]', 'ready', 1)",
    ).run();
    v3.close();
    const store = new CriStore(MetadataDB.open(`${dir}/m.db`));
    expect(store.sandbox("old")).toMatchObject({ state: "ready", building: false });
    store.db.close();
  });

  it("a pod is building until it runs, or until what it built is undone", () => {
    const store = new CriStore(MetadataDB.open(`${dir}/m.db`));
    store.addSandbox(pod("a"));
    store.addSandbox(pod("b"));
    expect(store.sandboxes().map((s) => [s.id, s.state, s.building])).toEqual([
      ["a", "notready", true],
      ["b", "notready", true],
    ]);
    store.markSandboxReady("a", "/run/netns/k8sc-a", ["10.0.0.5"]);
    store.markSandboxUndone("b");
    expect(store.sandbox("a")).toMatchObject({
      state: "ready",
      building: false,
      netnsPath: "/run/netns/k8sc-a",
      ips: ["10.0.0.5"],
    });
    expect(store.sandbox("b")).toMatchObject({ state: "notready", building: false, ips: [] });
    store.db.close();
  });
});

describe("cri store: lookups from the cached records", () => {
  let dir: string;
  let store: CriStore;
  beforeEach(async () => {
    dir = await Deno.makeTempDir();
    store = new CriStore(MetadataDB.open(`${dir}/m.db`));
  });
  afterEach(async () => {
    store.db.close();
    await Deno.remove(dir, { recursive: true });
  });

  const pod = (id: string) => ({
    id,
    nameKey: `p_${id}`,
    config: { metadata: { name: id } },
    handler: "runc",
    netnsPath: "",
    ips: [],
    state: "notready" as const,
    building: true,
  });
  const ctr = (id: string, sandboxId: string) => ({
    id,
    sandboxId,
    nameKey: `c_${id}`,
    config: { metadata: { name: id } },
    imageRef: "busybox",
    imageId: "sha256:1",
    logPath: "",
  });

  it("finds by full id or unambiguous prefix, literally (no LIKE wildcards, case kept)", () => {
    store.addSandbox(pod("abc1"));
    store.addSandbox(pod("abd2"));
    store.addContainer(ctr("ff01", "abc1"));
    store.addContainer(ctr("ff02", "abc1"));
    store.addContainer(ctr("e_x", "abd2"));
    expect(store.resolveSandbox("abc").id).toBe("abc1");
    expect(store.resolveSandbox("abd2").id).toBe("abd2");
    expect(() => store.resolveSandbox("ab")).toThrow('pod sandbox "ab"'); // two match
    expect(() => store.resolveSandbox("")).toThrow("not found");
    expect(() => store.resolveSandbox("a%")).toThrow("not found");
    expect(() => store.resolveSandbox("ABC")).toThrow("not found");
    expect(store.resolveContainer("ff01").id).toBe("ff01");
    expect(() => store.resolveContainer("ff0")).toThrow('container "ff0"');
    expect(() => store.resolveContainer("e%")).toThrow("not found");
    expect(() => store.resolveContainer("_")).toThrow("not found");
    expect(store.resolveContainer("e_").id).toBe("e_x");
  });

  it("every reader sees each change: state updates in place, adds and removes", () => {
    store.addSandbox(pod("s1"));
    store.addContainer(ctr("c1", "s1"));
    // Load the caches, then change what they hold.
    expect(store.containers().map((c) => c.id)).toEqual(["c1"]);
    expect(store.resolveSandbox("s1").state).toBe("notready");
    store.markSandboxReady("s1", "/run/netns/x", ["10.0.0.9"]);
    store.markStarted("c1", new Date(5000));
    expect(store.resolveSandbox("s1")).toMatchObject({ state: "ready", ips: ["10.0.0.9"] });
    expect(store.sandboxes()[0].state).toBe("ready");
    expect(store.resolveContainer("c1").startedAt).toEqual(new Date(5000));
    expect(store.containers("s1")[0].startedAt).toEqual(new Date(5000));
    store.markFinished("c1", 3, new Date(6000), "Error");
    store.markFinished("c1", 9, new Date(7000), "Later"); // the first exit stays
    expect(store.container("c1")).toMatchObject({ exitCode: 3, reason: "Error" });
    store.addContainer(ctr("c2", "s1"));
    expect(store.containers("s1").map((c) => c.id)).toEqual(["c1", "c2"]);
    store.removeContainer("c1");
    expect(() => store.container("c1")).toThrow('container "c1"');
    expect(store.resolveContainer("c").id).toBe("c2");
    store.setSandboxState("s1", "notready");
    store.markNetworkDown("s1");
    expect(store.sandbox("s1")).toMatchObject({ state: "notready", netnsPath: "" });
    // What a fresh store reads from the database is what the cache said.
    const again = new CriStore(store.db);
    expect(again.container("c2")).toEqual(store.container("c2"));
    expect(again.sandbox("s1")).toEqual(store.sandbox("s1"));
    // The records are shared: frozen, so no reader can change another's view.
    expect(Object.isFrozen(store.container("c2"))).toBe(true);
    expect(Object.isFrozen(store.sandbox("s1").ips)).toBe(true);
    store.removeContainer("c2");
    store.removeSandbox("s1");
    expect(store.sandboxes()).toEqual([]);
    expect(store.containers()).toEqual([]);
  });
});
