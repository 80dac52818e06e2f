import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import {
  InvalidNetworkConfigError,
  listConfigFiles,
  NetworkConfigLoader,
  NoNetworkConfigError,
  parseNetworkConfig,
} from "./config.ts";

const conflist = (name: string) =>
  JSON.stringify({
    cniVersion: "1.0.0",
    name,
    plugins: [{ type: "bridge", bridge: "cni0" }, {
      type: "portmap",
      capabilities: { portMappings: true },
    }],
  });

describe("network config loading", () => {
  let dir = "";
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-cniconf-" });
  });
  afterEach(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("reports a missing or empty directory as 'no network config found in DIR'", async () => {
    const missing = new NetworkConfigLoader(`${dir}/nope`);
    await expect(missing.load()).rejects.toThrow(`no network config found in ${dir}/nope`);
    const empty = new NetworkConfigLoader(dir);
    const err = await empty.load().catch((e) => e);
    expect(err).toBeInstanceOf(NoNetworkConfigError);
    expect(err.kind).toBe("failed-precondition");
    expect(err.dir).toBe(dir);
  });

  it("picks the lexically first .conflist/.conf/.json and ignores other files", async () => {
    await Deno.writeTextFile(`${dir}/05-notes.txt`, "not a config");
    await Deno.writeTextFile(`${dir}/00-backup.conflist.bak`, "{");
    await Deno.mkdir(`${dir}/01-dir.conf`);
    await Deno.writeTextFile(`${dir}/20-b.conf`, conflist("b"));
    await Deno.writeTextFile(`${dir}/10-a.conflist`, conflist("a"));
    await Deno.writeTextFile(`${dir}/30-c.json`, conflist("c"));
    expect(await listConfigFiles(dir)).toEqual([
      `${dir}/10-a.conflist`,
      `${dir}/20-b.conf`,
      `${dir}/30-c.json`,
    ]);
    const list = await new NetworkConfigLoader(dir).load();
    expect(list.name).toBe("a");
    expect(list.source).toBe(`${dir}/10-a.conflist`);
    expect(list.plugins.map((p) => p.type)).toEqual(["bridge", "portmap"]);
  });

  it("wraps a single-plugin .conf into a one-plugin list", async () => {
    await Deno.writeTextFile(
      `${dir}/10-lo.conf`,
      JSON.stringify({ cniVersion: "0.4.0", name: "lo", type: "loopback" }),
    );
    const list = await new NetworkConfigLoader(dir).load();
    expect(list).toMatchObject({ name: "lo", cniVersion: "0.4.0", disableCheck: false });
    expect(list.plugins).toHaveLength(1);
    expect(list.plugins[0].type).toBe("loopback");
  });

  it("rejects invalid configs with an error naming the file and the problem", () => {
    const f = "/etc/cni/net.d/10-x.conflist";
    const bad: [string, string][] = [
      ["{", "not JSON"],
      ["[]", "not a JSON object"],
      [JSON.stringify({ cniVersion: "1.0.0", plugins: [{ type: "a" }] }), `no "name"`],
      [JSON.stringify({ name: "n", plugins: [{ type: "a" }] }), `no "cniVersion"`],
      [
        JSON.stringify({ name: "n", cniVersion: "9.9.9", plugins: [{ type: "a" }] }),
        `unsupported cniVersion "9.9.9"`,
      ],
      [JSON.stringify({ name: "n", cniVersion: "1.0.0", plugins: [] }), `"plugins" must be`],
      [JSON.stringify({ name: "n", cniVersion: "1.0.0" }), `"plugins" must be`],
      [
        JSON.stringify({ name: "n", cniVersion: "1.0.0", plugins: [{ type: "a" }, {}] }),
        `plugins[1] has no "type"`,
      ],
      [
        JSON.stringify({ name: "n", cniVersion: "1.0.0", plugins: [{ type: "../sh" }] }),
        "invalid type",
      ],
      [
        JSON.stringify({ name: "bad/name", cniVersion: "1.0.0", plugins: [{ type: "a" }] }),
        "invalid network name",
      ],
    ];
    for (const [text, why] of bad) {
      let err: unknown;
      try {
        parseNetworkConfig(f, text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidNetworkConfigError);
      expect((err as Error).message).toContain(f);
      expect((err as Error).message).toContain(why);
    }
    // A .conf without a type is a single plugin missing its type.
    expect(() =>
      parseNetworkConfig("/d/1.conf", JSON.stringify({ name: "n", cniVersion: "1.0.0" }))
    ).toThrow(`/d/1.conf: the config has no "type"`);
  });

  it("does not skip a broken first file in favour of a later one", async () => {
    await Deno.writeTextFile(`${dir}/10-broken.conflist`, "{not json");
    await Deno.writeTextFile(`${dir}/20-good.conflist`, conflist("good"));
    await expect(new NetworkConfigLoader(dir).load()).rejects.toThrow(
      `${dir}/10-broken.conflist`,
    );
  });

  it("caches the parsed file until its mtime or size changes, and sees new files", async () => {
    const loader = new NetworkConfigLoader(dir);
    await Deno.writeTextFile(`${dir}/10-a.conflist`, conflist("a"));
    const first = await loader.load();
    expect(await loader.load()).toBe(first);
    await Deno.writeTextFile(`${dir}/10-a.conflist`, conflist("a2"));
    // Same second is possible: set an explicit, different mtime.
    await Deno.utime(`${dir}/10-a.conflist`, new Date(), new Date(Date.now() + 5000));
    const second = await loader.load();
    expect(second).not.toBe(first);
    expect(second.name).toBe("a2");
    await Deno.writeTextFile(`${dir}/05-z.conflist`, conflist("z"));
    expect((await loader.load()).name).toBe("z");
  });
});
