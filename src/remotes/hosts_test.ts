import { afterAll, beforeAll, describe, expect, it } from "../testing/bdd.ts";
import { join } from "node:path";
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { isLoopbackHost, loadHosts, parseHostsToml } from "./hosts.ts";

/** The exact file the critest harness writes. */
const CRITEST_HOSTS = `server = "http://127.0.0.1:5000"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
`;

describe("loadHosts", () => {
  let dir = "";
  const write = async (host: string, text: string, file = "hosts.toml") => {
    await Deno.mkdir(join(dir, host), { recursive: true });
    await Deno.writeTextFile(join(dir, host, file), text);
  };
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8scontainerd-hosts-" });
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("without configuration: the registry itself over HTTPS, docker.io → registry-1", async () => {
    expect(await loadHosts(undefined, "registry.k8s.io")).toEqual([{
      host: "registry.k8s.io",
      url: "https://registry.k8s.io/v2",
      capabilities: ["pull", "resolve", "push"],
      headers: {},
      skipVerify: false,
      caPath: undefined,
      clientCerts: undefined,
      overridePath: false,
    }]);
    expect((await loadHosts(dir, "docker.io"))[0].url).toBe("https://registry-1.docker.io/v2");
    expect((await loadHosts(dir, "ghcr.io:443"))[0].url).toBe("https://ghcr.io/v2"); // URL drops the default port;
  });

  it("loopback hosts and plainHttp hosts use plain HTTP", async () => {
    expect((await loadHosts(dir, "127.0.0.1:5000"))[0].url).toBe("http://127.0.0.1:5000/v2");
    expect((await loadHosts(dir, "localhost"))[0].url).toBe("http://localhost/v2");
    expect((await loadHosts(dir, "[::1]:5000"))[0].url).toBe("http://[::1]:5000/v2");
    expect((await loadHosts(dir, "127.1.2.3"))[0].url).toBe("http://127.1.2.3/v2");
    const opts = { plainHttp: ["reg.lan:5000", "other.lan"] };
    expect((await loadHosts(dir, "reg.lan:5000", opts))[0].url).toBe("http://reg.lan:5000/v2");
    expect((await loadHosts(dir, "other.lan:8080", opts))[0].url).toBe(
      "http://other.lan:8080/v2",
    );
    expect((await loadHosts(dir, "reg.lan", opts))[0].url).toBe("https://reg.lan/v2");
    expect(isLoopbackHost("128.0.0.1")).toBe(false);
  });

  it("reads the critest hosts.toml: registry.k8s.io served by the local registry", async () => {
    await write("registry.k8s.io", CRITEST_HOSTS);
    const hosts = await loadHosts(dir, "registry.k8s.io");
    expect(hosts.map((h) => [h.url, h.capabilities])).toEqual([
      ["http://127.0.0.1:5000/v2", ["pull", "resolve"]],
      ["http://127.0.0.1:5000/v2", ["pull", "resolve", "push"]],
    ]);
    expect(hosts.every((h) => h.host === "127.0.0.1:5000")).toBe(true);
  });

  it("keeps mirrors in file order before the server; per-host settings", async () => {
    await write(
      "example.com",
      `server = "https://upstream.example.com"
capabilities = ["pull", "resolve"]
ca = "upstream-ca.crt"

[host."https://z-mirror.example.com"]
  capabilities = ["pull"]
  header = { x-team = "infra", x-multi = ["a", "b"] }
  client = [["client.cert", "client.key"]]
  skip_verify = true

[host."http://a-mirror.example.com:8080/custom/api"]
  override_path = true
  ca = ["/etc/ca1.pem", "ca2.pem"]

[host."b-mirror.example.com/sub"]
`,
    );
    const hosts = await loadHosts(dir, "example.com");
    const base = join(dir, "example.com");
    expect(hosts).toEqual([
      {
        host: "z-mirror.example.com",
        url: "https://z-mirror.example.com/v2",
        capabilities: ["pull"],
        headers: { "x-team": "infra", "x-multi": "a, b" },
        skipVerify: true,
        caPath: undefined,
        clientCerts: [{ cert: join(base, "client.cert"), key: join(base, "client.key") }],
        overridePath: false,
      },
      {
        host: "a-mirror.example.com:8080",
        url: "http://a-mirror.example.com:8080/custom/api",
        capabilities: ["pull", "resolve", "push"],
        headers: {},
        skipVerify: false,
        caPath: ["/etc/ca1.pem", join(base, "ca2.pem")],
        clientCerts: undefined,
        overridePath: true,
      },
      {
        host: "b-mirror.example.com",
        url: "https://b-mirror.example.com/sub/v2",
        capabilities: ["pull", "resolve", "push"],
        headers: {},
        skipVerify: false,
        caPath: undefined,
        clientCerts: undefined,
        overridePath: false,
      },
      {
        host: "upstream.example.com",
        url: "https://upstream.example.com/v2",
        capabilities: ["pull", "resolve"],
        headers: {},
        skipVerify: false,
        caPath: [join(base, "upstream-ca.crt")],
        clientCerts: undefined,
        overridePath: false,
      },
    ]);
  });

  it("a file without server keeps the registry as the last host", async () => {
    await write("noserver.io", `[host."http://127.0.0.1:9999"]\n`);
    expect((await loadHosts(dir, "noserver.io")).map((h) => h.url)).toEqual([
      "http://127.0.0.1:9999/v2",
      "https://noserver.io/v2",
    ]);
  });

  it("looks in <host>:<port>, <host>_<port>_, then _default", async () => {
    await write("127.0.0.1:6000", `server = "http://127.0.0.1:6001"\n`);
    expect((await loadHosts(dir, "127.0.0.1:6000"))[0].url).toBe("http://127.0.0.1:6001/v2");
    await write("127.0.0.1_6000_", `server = "http://127.0.0.1:6002"\n`);
    expect((await loadHosts(dir, "127.0.0.1:6000"))[0].url).toBe("http://127.0.0.1:6002/v2");
    // No directory for the host: _default applies, its missing server meaning the host itself.
    expect((await loadHosts(dir, "quay.io"))[0].url).toBe("https://quay.io/v2");
    await write("_default", `[host."http://127.0.0.1:7000"]\n  capabilities = ["pull"]\n`);
    expect((await loadHosts(dir, "quay.io")).map((h) => h.url)).toEqual([
      "http://127.0.0.1:7000/v2",
      "https://quay.io/v2",
    ]);
  });

  it("a host directory without hosts.toml: docker-style *.crt and *.cert/*.key", async () => {
    await write("certs.example", "pem", "ca.crt");
    await write("certs.example", "pem", "client.cert");
    await write("certs.example", "pem", "client.key");
    const [h] = await loadHosts(dir, "certs.example");
    expect(h.url).toBe("https://certs.example/v2");
    expect(h.caPath).toEqual([join(dir, "certs.example", "ca.crt")]);
    expect(h.clientCerts).toEqual([{
      cert: join(dir, "certs.example", "client.cert"),
      key: join(dir, "certs.example", "client.key"),
    }]);
  });

  it("bad TOML names the file and the position", async () => {
    await write("broken.io", `server = "http://x"\n[host."http://y"\n`);
    const file = join(dir, "broken.io", "hosts.toml");
    const err = await loadHosts(dir, "broken.io").catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/line 2/);
  });
});

describe("parseHostsToml errors name the file and the key", () => {
  const bad: [string, RegExp][] = [
    [`server = 5`, /key "server": expected a URL string/],
    [`capabilities = ["pull", "fly"]`, /key "capabilities": unknown capability "fly"/],
    [`[host."http://m"]\n  capabilities = "pull,resolve"`, /unknown capability "pull,resolve"/],
    [`[host."http://m"]\n  skip_verify = "yes"`, /key "host."http:\/\/m".skip_verify": expected/],
    [`[host."http://m"]\n  override_path = 1`, /key "host."http:\/\/m".override_path"/],
    [`[host."http://m"]\n  header = "x"`, /key "host."http:\/\/m".header": expected a table/],
    [`[host."http://m"]\n  header = { a = 1 }`, /key "host."http:\/\/m".header.a"/],
    [`[host."http://m"]\n  ca = 3`, /key "host."http:\/\/m".ca"/],
    [`[host."http://m"]\n  client = 3`, /key "host."http:\/\/m".client"/],
    [`host = "x"`, /key "host": expected tables/],
    [`[host."http://m?x=1"]`, /query and fragment are not allowed/],
    [`[host."https://"]`, /key "host."https:\/\/"": "https:\/\/" is not a URL/],
  ];
  for (const [text, problem] of bad) {
    it(JSON.stringify(text), () => {
      let err: unknown;
      try {
        parseHostsToml(text, "reg.io", "/etc/certs.d/reg.io/hosts.toml");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(/^\/etc\/certs\.d\/reg\.io\/hosts\.toml: /);
      expect((err as Error).message).toMatch(problem);
    });
  }
});
