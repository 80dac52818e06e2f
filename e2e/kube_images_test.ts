/**
 * scripts/kube_images.ts end to end: control-plane images built offline from binaries on this
 * host, imported with our own `images import`, and run. CI has no Kubernetes binaries, so
 * static stand-ins take their names (catatonit as kube-apiserver and kube-proxy); etcd is
 * Debian's real etcd-server binary and kube-proxy carries the host's real iptables, so the
 * dynamic-library and extension-module parts are exercised for real.
 */
import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../src/testing/bdd.ts";
import { REPO, runCli, startTestDaemon, type TestDaemon } from "./harness.ts";

const ETCD = "/usr/bin/etcd";
const hasEtcd = (() => {
  try {
    return Deno.statSync(ETCD).isFile;
  } catch {
    return false;
  }
})();

describe.skipIf(!isRoot, ROOT_REASON)("control-plane images from binaries", () => {
  let d: TestDaemon;
  let dir = "";
  const cli = (...args: string[]) => runCli(["--address", d.socket, "-n", "k8s.io", ...args]);
  const script = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-check", `${REPO}/scripts/kube_images.ts`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output().then((o) => ({
      code: o.code,
      stdout: new TextDecoder().decode(o.stdout),
      stderr: new TextDecoder().decode(o.stderr),
    }));

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-kube-images-" });
    await Deno.mkdir(`${dir}/bin`);
    for (const name of ["kube-apiserver", "kube-proxy"]) {
      await Deno.copyFile("/usr/bin/catatonit", `${dir}/bin/${name}`);
      await Deno.chmod(`${dir}/bin/${name}`, 0o755);
    }
    // What `kubeadm config images list` prints for v1.32 (kubeadm itself is not in CI).
    await Deno.writeTextFile(
      `${dir}/list`,
      [
        "registry.k8s.io/kube-apiserver:v1.32.13",
        "registry.k8s.io/kube-proxy:v1.32.13",
        "registry.k8s.io/coredns/coredns:v1.11.3",
        "registry.k8s.io/pause:3.10",
        ...(hasEtcd ? ["registry.k8s.io/etcd:3.5.16-0"] : []),
        "",
      ].join("\n"),
    );
    d = await startTestDaemon();
  });
  afterAll(async () => {
    if (d) {
      await d.stop();
      await d.cleanup();
    }
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  it("builds one tarball per image found and says which it skipped", async () => {
    const r = await script("--bin", `${dir}/bin`, "--list", `${dir}/list`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^registry\.k8s\.io\/kube-apiserver:v1\.32\.13: .*kube-apiserver\.tar/m,
    );
    expect(r.stdout).toContain(
      "registry.k8s.io/coredns/coredns:v1.11.3: skipped (no coredns binary; skip kubeadm's addon/coredns phase)",
    );
    const tars = [...Deno.readDirSync(`${dir}/bin/images`)].map((e) => e.name).sort();
    expect(tars).toEqual(
      ["kube-apiserver.tar", "kube-proxy.tar", "pause.tar", ...(hasEtcd ? ["etcd.tar"] : [])]
        .sort(),
    );
  });

  it("the tarballs import under kubeadm's names", async () => {
    for (const t of Deno.readDirSync(`${dir}/bin/images`)) {
      const r = await cli("images", "import", `${dir}/bin/images/${t.name}`);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
    const ls = await cli("images", "ls", "-q");
    expect(ls.stdout.split("\n").filter(Boolean).sort()).toEqual(
      [
        "registry.k8s.io/kube-apiserver:v1.32.13",
        "registry.k8s.io/kube-proxy:v1.32.13",
        "registry.k8s.io/pause:3.10",
        ...(hasEtcd ? ["registry.k8s.io/etcd:3.5.16-0"] : []),
      ].sort(),
    );
  });

  it("components run by name from PATH, as kubeadm's static pods call them", async () => {
    const r = await cli(
      "run",
      "--rm",
      "registry.k8s.io/kube-apiserver:v1.32.13",
      "api1",
      "kube-apiserver",
      "--version",
    );
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/catatonit/i);
  });

  it("kube-proxy's image carries working iptables (nft and legacy)", async () => {
    for (const tool of ["iptables", "iptables-legacy", "ip6tables-restore"]) {
      const r = await cli(
        "run",
        "--rm",
        "registry.k8s.io/kube-proxy:v1.32.13",
        `proxy-${tool}`,
        tool,
        "--version",
      );
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^ip6?tables(-restore)? v\d+\.\d+\.\d+/);
    }
  });

  it.skipIf(
    !hasEtcd,
    `${ETCD} is missing (Debian's etcd-server; scripts/setup.sh --test installs it)`,
  )(
    "etcd's image runs Debian's etcd with its libraries",
    async () => {
      const r = await cli(
        "run",
        "--rm",
        "registry.k8s.io/etcd:3.5.16-0",
        "etcd1",
        "etcd",
        "--version",
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/etcd Version: 3\.\d+\.\d+/);
    },
  );

  it("refuses a list line that is not NAME:TAG, naming it", async () => {
    await Deno.writeTextFile(`${dir}/bad`, "registry.k8s.io/kube-apiserver\n");
    const r = await script("--bin", `${dir}/bin`, "--list", `${dir}/bad`, "--out", `${dir}/o`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`"registry.k8s.io/kube-apiserver" is not a NAME:TAG reference`);
  });
});
