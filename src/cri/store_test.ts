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
