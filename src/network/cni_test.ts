import { afterAll, beforeAll, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { buildPluginConfig, Cni, CniPluginError, parseResult } from "./cni.ts";
import type { NetworkConfigList } from "./config.ts";

// Fake plugins: shell scripts that record their env and stdin under log/ and print the
// canned response resp/<name>.<COMMAND> (exit status from resp/<name>.<COMMAND>.exit).
const FAKE = `#!/bin/sh
n=$(basename "$0")
d=$(dirname "$0")/..
cat > "$d/log/$n.$CNI_COMMAND.stdin"
env | grep '^CNI_' | sort > "$d/log/$n.$CNI_COMMAND.env"
echo "$n $CNI_COMMAND" >> "$d/log/order"
[ -f "$d/resp/$n.$CNI_COMMAND.sleep" ] && sleep "$(cat "$d/resp/$n.$CNI_COMMAND.sleep")"
[ -f "$d/resp/$n.$CNI_COMMAND" ] && cat "$d/resp/$n.$CNI_COMMAND"
[ -f "$d/resp/$n.$CNI_COMMAND.exit" ] && exit "$(cat "$d/resp/$n.$CNI_COMMAND.exit")"
exit 0
`;

const RESULT_A = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "br0", mac: "aa:bb:cc:dd:ee:01" }, {
    name: "eth0",
    mac: "aa:bb:cc:dd:ee:02",
    sandbox: "/run/netns/x",
  }],
  ips: [{ address: "10.9.0.7/24", gateway: "10.9.0.1", interface: 1 }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

function list(...types: (string | Record<string, unknown>)[]): NetworkConfigList {
  return {
    name: "fakenet",
    cniVersion: "1.0.0",
    disableCheck: false,
    plugins: types.map((t) => typeof t === "string" ? { type: t } : t as { type: string }),
    source: "test",
  };
}

describe("CNI plugin invocation", () => {
  let root = "";
  let bin = "";
  const read = (f: string) => Deno.readTextFileSync(`${root}/log/${f}`);
  const env = (f: string) =>
    Object.fromEntries(
      read(f).trim().split("\n").map((
        l,
      ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
  const respond = (name: string, text: string, exit?: number, sleep?: number) => {
    Deno.writeTextFileSync(`${root}/resp/${name}`, text);
    if (exit !== undefined) Deno.writeTextFileSync(`${root}/resp/${name}.exit`, String(exit));
    if (sleep !== undefined) Deno.writeTextFileSync(`${root}/resp/${name}.sleep`, String(sleep));
  };
  const cni = () => new Cni({ binDirs: [`${root}/empty`, bin], cacheDir: `${root}/cache` });

  beforeAll(async () => {
    root = await Deno.makeTempDir({ prefix: "k8sc-cni-" });
    bin = `${root}/bin`;
    await Deno.mkdir(bin);
    for (const n of ["a", "b", "slow"]) {
      await Deno.writeTextFile(`${bin}/${n}`, FAKE, { mode: 0o755 });
    }
  });
  afterAll(async () => {
    await Deno.remove(root, { recursive: true });
  });
  beforeEach(async () => {
    for (const d of ["log", "resp", "cache"]) {
      await Deno.remove(`${root}/${d}`, { recursive: true }).catch(() => {});
      await Deno.mkdir(`${root}/${d}`);
    }
  });

  const rt = {
    containerId: "c0ffee",
    netns: "/proc/self/ns/net",
    args: [["K8S_POD_NAME", "web"], ["IgnoreUnknown", "1"]] as [string, string][],
    capabilityArgs: { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: "tcp" }] },
  };

  it("ADD runs plugins in order with CNI_* env, prevResult chaining and declared runtimeConfig", async () => {
    respond("a.ADD", JSON.stringify(RESULT_A));
    respond("b.ADD", JSON.stringify({ ...RESULT_A, dns: { nameservers: ["10.9.0.1"] } }));
    const net = list({ type: "a", mtu: 1400 }, {
      type: "b",
      capabilities: { portMappings: true, bandwidth: true },
    });
    const result = await cni().add(net, rt);
    expect(read("order")).toBe("a ADD\nb ADD\n");
    expect(env("a.ADD.env")).toEqual({
      CNI_ARGS: "K8S_POD_NAME=web;IgnoreUnknown=1",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c0ffee",
      CNI_IFNAME: "eth0",
      CNI_NETNS: "/proc/self/ns/net",
      CNI_PATH: `${root}/empty:${bin}`,
    });
    const aIn = JSON.parse(read("a.ADD.stdin"));
    expect(aIn).toEqual({ type: "a", mtu: 1400, name: "fakenet", cniVersion: "1.0.0" });
    const bIn = JSON.parse(read("b.ADD.stdin"));
    expect(bIn.prevResult).toEqual(RESULT_A);
    // Only declared capabilities with a value: bandwidth is declared but was not given.
    expect(bIn.runtimeConfig).toEqual({ portMappings: rt.capabilityArgs.portMappings });
    expect(result.ips).toEqual([{
      address: "10.9.0.7/24",
      gateway: "10.9.0.1",
      interface: 1,
      version: "4",
    }]);
    expect(result.dns.nameservers).toEqual(["10.9.0.1"]);
    const cached = await cni().cachedAttachment("fakenet", "c0ffee", "eth0");
    expect(cached?.result).toEqual(result.raw);
    expect(cached?.capabilityArgs).toEqual(rt.capabilityArgs);
  });

  it("DEL runs in reverse with the cached result, from a fresh instance, and is idempotent", async () => {
    respond("a.ADD", JSON.stringify(RESULT_A));
    await cni().add(list("a", { type: "b", capabilities: { portMappings: true } }), rt);
    // A "restarted daemon" whose config changed meanwhile: DEL must use what ADD used.
    const fresh = cni();
    await fresh.del(list("a"), { containerId: "c0ffee", netns: "/run/netns/gone-k8sc-test" });
    expect(read("order")).toBe("a ADD\nb ADD\nb DEL\na DEL\n");
    const bDel = JSON.parse(read("b.DEL.stdin"));
    expect(bDel.prevResult).toEqual(RESULT_A);
    expect(bDel.runtimeConfig).toEqual({ portMappings: rt.capabilityArgs.portMappings });
    // The namespace is gone: plugins get an empty CNI_NETNS; the cached CNI_ARGS are reused.
    expect(env("b.DEL.env").CNI_NETNS).toBe("");
    expect(env("b.DEL.env").CNI_ARGS).toBe("K8S_POD_NAME=web;IgnoreUnknown=1");
    expect(await fresh.cachedAttachment("fakenet", "c0ffee")).toBeUndefined();
    // Again: no cache, no prevResult, still fine.
    await fresh.del(list("a"), { containerId: "c0ffee", netns: "" });
    expect(JSON.parse(read("a.DEL.stdin")).prevResult).toBeUndefined();
  });

  it("surfaces the plugin's error object with plugin, command, msg, details and code", async () => {
    respond(
      "b.ADD",
      JSON.stringify({ cniVersion: "1.0.0", code: 7, msg: "bad bridge", details: "no such mtu" }),
      1,
    );
    respond("a.ADD", JSON.stringify(RESULT_A));
    const err = await cni().add(list("a", "b"), rt).catch((e) => e);
    expect(err).toBeInstanceOf(CniPluginError);
    expect(err.message).toBe(
      `CNI plugin "b" failed ADD on network "fakenet": bad bridge: no such mtu (CNI error code 7)`,
    );
    expect(err.code).toBe(7);
    expect(err.plugin).toBe("b");
    // What ADD got so far, for the caller's undo.
    expect(err.prevResult).toEqual(RESULT_A);
    expect(await cni().cachedAttachment("fakenet", "c0ffee")).toBeUndefined();
  });

  it("falls back to stderr when a plugin fails without the error object", async () => {
    await Deno.writeTextFile(`${bin}/crash`, "#!/bin/sh\necho 'panic: oops' >&2\nexit 2\n", {
      mode: 0o755,
    });
    await expect(cni().add(list("crash"), rt)).rejects.toThrow(
      `CNI plugin "crash" failed ADD on network "fakenet": panic: oops`,
    );
  });

  it("names a plugin whose binary is missing", async () => {
    const err = await cni().add(list("a", "nosuchplugin"), rt).catch((e) => e);
    expect(err.message).toContain(`CNI plugin "nosuchplugin" failed ADD`);
    expect(err.message).toContain(`not found in ${root}/empty, ${bin}`);
    expect(err.kind).toBe("failed-precondition");
  });

  it("kills a plugin that runs past the timeout", async () => {
    respond("slow.ADD", "", undefined, 5);
    const quick = new Cni({ binDirs: [bin], cacheDir: `${root}/cache`, timeoutMs: 300 });
    const t0 = performance.now();
    const err = await quick.add(list("slow"), rt).catch((e) => e);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(err.kind).toBe("deadline-exceeded");
    expect(err.message).toContain(`CNI plugin "slow" failed ADD`);
    expect(err.message).toContain("timed out after 300 ms");
  });

  it("rejects a result that is not a CNI result, naming the plugin", async () => {
    respond("a.ADD", JSON.stringify({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.1" }] }));
    await expect(cni().add(list("a"), rt)).rejects.toThrow(
      `CNI plugin "a" failed ADD on network "fakenet": invalid result: an ip has no CIDR "address"`,
    );
  });

  it("CHECK runs in order against the cached result; 0.3.x networks skip it", async () => {
    respond("a.ADD", JSON.stringify(RESULT_A));
    const c = cni();
    const net = list("a", "b");
    await c.add(net, rt);
    await c.check(net, rt);
    expect(read("order")).toBe("a ADD\nb ADD\na CHECK\nb CHECK\n");
    expect(JSON.parse(read("b.CHECK.stdin")).prevResult).toEqual(RESULT_A);
    await c.check({ ...net, cniVersion: "0.3.1" }, rt);
    expect(read("order")).toBe("a ADD\nb ADD\na CHECK\nb CHECK\n");
    await expect(c.check(net, { ...rt, containerId: "other" })).rejects.toThrow("no cached result");
  });

  it("refuses container ids that would escape the cache dir", async () => {
    await expect(cni().add(list("a"), { ...rt, containerId: "../x" })).rejects.toThrow(
      "invalid CNI container id",
    );
  });
});

describe("CNI results", () => {
  it("reads 0.4.0 results (with ip versions)", () => {
    const r = parseResult({
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", sandbox: "/run/netns/p" }],
      ips: [{ version: "4", address: "10.1.0.5/16", gateway: "10.1.0.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
      dns: { nameservers: ["1.1.1.1"], search: ["svc"] },
    });
    expect(r.cniVersion).toBe("0.4.0");
    expect(r.interfaces).toEqual([{
      name: "eth0",
      mac: undefined,
      mtu: undefined,
      sandbox: "/run/netns/p",
    }]);
    expect(r.ips[0]).toEqual({
      address: "10.1.0.5/16",
      gateway: "10.1.0.1",
      interface: 0,
      version: "4",
    });
    expect(r.routes).toEqual([{ dst: "0.0.0.0/0", gw: "10.1.0.1" }]);
    expect(r.dns.search).toEqual(["svc"]);
  });

  it("reads 1.0.0 results (no ip versions) and the legacy 0.2.0 shape", () => {
    const r = parseResult({ cniVersion: "1.0.0", ips: [{ address: "fd00::2/64" }] });
    expect(r.ips[0].version).toBe("6");
    const legacy = parseResult({
      cniVersion: "0.2.0",
      ip4: { ip: "10.2.0.3/24", gateway: "10.2.0.1", routes: [{ dst: "0.0.0.0/0" }] },
    });
    expect(legacy.ips).toEqual([{ address: "10.2.0.3/24", gateway: "10.2.0.1", version: "4" }]);
    expect(legacy.routes).toHaveLength(1);
    expect(() => parseResult("nope")).toThrow("not a JSON object");
  });

  it("builds plugin stdin without leaking undeclared capabilities", () => {
    const net = list({ type: "bridge", prevResult: { stale: true } });
    const conf = buildPluginConfig(net, net.plugins[0], { portMappings: [1] });
    expect(conf).toEqual({ type: "bridge", name: "fakenet", cniVersion: "1.0.0" });
  });
});
