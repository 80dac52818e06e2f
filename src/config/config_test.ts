import { parse } from "smol-toml";
import { describe, expect, it } from "../testing/bdd.ts";
import {
  defaultConfig,
  loadConfig,
  parseConfig,
  parseHostPort,
  renderDefaultConfig,
} from "./config.ts";

describe("config", () => {
  it("prints every default and parses its own output back to the defaults", () => {
    const text = renderDefaultConfig();
    for (const key of ["root", "state", "[grpc]", "address", "[log]", "level", "[metrics]"]) {
      expect(text).toContain(key);
    }
    expect(parseConfig(text)).toEqual(defaultConfig());
  });

  it("overlays file values on the defaults", () => {
    const cfg = parseConfig('root = "/data/k8s"\n[log]\nlevel = "debug"\n');
    expect(cfg.root).toBe("/data/k8s");
    expect(cfg.log.level).toBe("debug");
    expect(cfg.state).toBe(defaultConfig().state);
  });

  it("rejects unknown keys naming the dotted key and the file", () => {
    expect(() => parseConfig('[grpc]\nadress = "/x"\n', "/etc/k.toml"))
      .toThrow('config: /etc/k.toml: unknown key "grpc.adress"');
    expect(() => parseConfig("[nope]\na = 1\n")).toThrow('unknown key "nope"');
  });

  it("rejects bad values naming key, value and what was expected", () => {
    expect(() => parseConfig('root = "relative/dir"')).toThrow(
      'invalid value "relative/dir" for "root": expected an absolute path',
    );
    expect(() => parseConfig('[log]\nlevel = "loud"')).toThrow('for "log.level": expected one of');
    expect(() => parseConfig("[grpc]\nuid = -1")).toThrow('for "grpc.uid"');
    expect(() => parseConfig('grpc = "x"')).toThrow('for "grpc": expected a table');
    expect(() => parseConfig("version = 2")).toThrow('for "version"');
    expect(() => parseConfig('[metrics]\naddress = "nohost"')).toThrow('"metrics.address"');
  });

  it("reports TOML syntax errors with the file name", () => {
    expect(() => parseConfig("root = ", "/etc/k.toml")).toThrow("/etc/k.toml is not valid TOML");
  });

  it("lets flags win over the file and validates them too", async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/config.toml`;
      await Deno.writeTextFile(path, 'root = "/from/file"\nstate = "/state/file"\n');
      const cfg = await loadConfig({
        path,
        overrides: { root: "/from/flag", address: "/tmp/x.sock" },
      });
      expect(cfg.root).toBe("/from/flag");
      expect(cfg.state).toBe("/state/file");
      expect(cfg.grpc.address).toBe("/tmp/x.sock");
      await expect(loadConfig({ path, overrides: { logLevel: "chatty" } })).rejects.toThrow(
        'flags: invalid value "chatty" for "log.level"',
      );
      await expect(loadConfig({ path: `${dir}/missing.toml` })).rejects.toThrow("no such file");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  it("accepts registry credentials per host and rejects unknown fields in them", () => {
    const cfg = parseConfig('[registry.auths."r.example.com"]\nusername = "u"\npassword = "p"\n');
    expect(cfg.registry.auths["r.example.com"]).toEqual({ username: "u", password: "p" });
    expect(() => parseConfig('[registry.auths."r.example.com"]\nuser = "u"\n')).toThrow(
      'unknown key "registry.auths."r.example.com".user"',
    );
    expect(() => parseConfig('[images]\nsnapshotter = "zfs"')).toThrow(
      '"images.snapshotter": expected "overlayfs" or "native"',
    );
    expect(() => parseConfig("[registry]\nplain_http_hosts = [1]")).toThrow("a list of strings");
  });

  it("has CDI on by default with containerd's spec dirs, and validates both settings", () => {
    const d = defaultConfig();
    expect(d.cri.enable_cdi).toBe(true);
    expect(d.cri.cdi_spec_dirs).toEqual(["/etc/cdi", "/var/run/cdi"]);
    expect(renderDefaultConfig()).toContain('cdi_spec_dirs = [ "/etc/cdi", "/var/run/cdi" ]');
    const cfg = parseConfig('[cri]\nenable_cdi = false\ncdi_spec_dirs = ["/opt/cdi"]\n');
    expect(cfg.cri.enable_cdi).toBe(false);
    expect(cfg.cri.cdi_spec_dirs).toEqual(["/opt/cdi"]);
    expect(() => parseConfig('[cri]\nenable_cdi = "yes"')).toThrow(
      '"cri.enable_cdi": expected true or false',
    );
    expect(() => parseConfig('[cri]\ncdi_spec_dirs = ["etc/cdi"]')).toThrow(
      '"cri.cdi_spec_dirs": expected a list of absolute paths',
    );
  });

  it("parses host:port including IPv6", () => {
    expect(parseHostPort("127.0.0.1:9100")).toEqual({ hostname: "127.0.0.1", port: 9100 });
    expect(parseHostPort("[::1]:80")).toEqual({ hostname: "::1", port: 80 });
    expect(parseHostPort("host:99999")).toBeNull();
  });

  it("is what README's config reference shows (every key, every default)", async () => {
    const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
    const block = readme.split("## Config reference\n")[1]?.split("```toml\n")[1]?.split(
      "```\n",
    )[0];
    const shown = parseConfig(block ?? "", "README.md");
    // The README shows an example credentials table; the default has none.
    shown.registry.auths = {};
    expect(shown).toEqual(defaultConfig());
    // And no key is left out (a missing one would parse to its default).
    const keys = (o: object, at = ""): string[] =>
      Object.entries(o).flatMap(([k, v]) =>
        v && typeof v === "object" && !Array.isArray(v) && k !== "auths"
          ? keys(v, `${at}${k}.`)
          : [`${at}${k}`]
      );
    expect(keys(parse(block ?? "")).sort()).toEqual(keys(defaultConfig()).sort());
  });
});
