/**
 * Images as an operator meets them, through the CLI against a real daemon and a real registry
 * (Debian's docker-registry with the project's fixture images): pull with progress, mirrors
 * from hosts.toml, platforms, listing, tags, removal and garbage collection, export/import
 * (OCI layout and docker-archive), and every kind of bad input ending in a clear error with
 * nothing half-visible left behind — including a daemon killed mid-pull.
 */
import { pack } from "tar-stream";
import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../src/testing/bdd.ts";
import { type Registry, startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import {
  buildImage,
  buildLayer,
  layerFromTar,
  pushImage,
  sha256Digest,
} from "../scripts/fixtures/oci.ts";
import { runCli, startTestDaemon, type TestDaemon } from "./harness.ts";
import { startFaultProxy } from "./faults.ts";

/** A tar written entry by entry, so tests can say things a well-behaved builder would not. */
async function tarOf(entries: { name: string; body?: string }[]): Promise<Uint8Array> {
  const p = pack();
  for (const e of entries) p.entry({ name: e.name, mode: 0o644 }, e.body ?? "x");
  p.finalize();
  const parts: Uint8Array[] = [];
  for await (const c of p) parts.push(new Uint8Array(c as Uint8Array));
  const out = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
  parts.reduce((off, c) => (out.set(c, off), off + c.length), 0);
  return out;
}

describe.skipIf(!isRoot, ROOT_REASON)("images", () => {
  let registry: Registry;
  let d: TestDaemon;
  let dir: string;
  let reg: string;
  const cli = (...args: string[]) => runCli(["--address", d.socket, ...args]);
  const listJson = async (ns = "default") =>
    JSON.parse(
      (await runCli(["--address", d.socket, "-n", ns, "images", "ls", "--format", "json"])).stdout,
    ) as {
      name: string;
      size: number;
      unpacked: boolean;
      target: { digest: string; mediaType: string };
    }[];

  beforeAll(async () => {
    registry = await startRegistry();
    reg = registry.address;
    await pushFixtures(reg, ["busybox", "layers", "multiarch", "docker-schema2", "zstd"]);
    dir = await Deno.makeTempDir({ prefix: "k8sc-images-e2e-" });
    // A containerd-style mirror, exactly as the critest harness writes it.
    await Deno.mkdir(`${dir}/certs.d/registry.k8s.io`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/certs.d/registry.k8s.io/hosts.toml`,
      `server = "http://${reg}"\n[host."http://${reg}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    await Deno.writeTextFile(`${dir}/config.toml`, `[registry]\nconfig_path = "${dir}/certs.d"\n`);
    d = await startTestDaemon({ args: ["--config", `${dir}/config.toml`] });
  });
  afterAll(async () => {
    await d?.kill();
    await new Deno.Command("sh", {
      args: [
        "-c",
        `grep -o ' ${d?.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l`,
      ],
    }).output();
    await d?.cleanup();
    await registry?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  it("pulls an image with progress, unpacked, and lists it", async () => {
    const r = await cli("images", "pull", `${reg}/busybox:latest`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    // Not a terminal: one plain line per state change, then the summary.
    expect(r.stdout).toMatch(/layer-sha256:[0-9a-f]{12}: downloading/);
    expect(r.stdout).toMatch(/layer-sha256:[0-9a-f]{12}: unpacking/);
    expect(r.stdout).toMatch(
      new RegExp(`${reg}/busybox:latest: sha256:[0-9a-f]{64} \\(1\\.\\d MiB\\) pulled in`),
    );
    const img = (await listJson()).find((i) => i.name === `${reg}/busybox:latest`)!;
    expect(img.unpacked).toBe(true);
    expect(img.size).toBeGreaterThan(1_000_000);
    expect(img.target.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    const check = await cli("images", "check", `${reg}/busybox:latest`);
    expect(check.stdout).toMatch(/complete\s+1\.\d MiB\/1\.\d MiB\s+true/);
  });

  it("resolves registry.k8s.io through the hosts.toml mirror, never the internet", async () => {
    const r = await cli("images", "pull", "--quiet", "registry.k8s.io/busybox:latest");
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("registry.k8s.io/busybox:latest");
    const names = (await listJson()).map((i) => i.name);
    expect(names).toContain("registry.k8s.io/busybox:latest");
  });

  it("normalises familiar names and refuses malformed references", async () => {
    const bad = await cli("images", "pull", "UPPER/case:latest");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/UPPER\/case:latest/);
    const missing = await cli("images", "pull", `${reg}/no-such-image:latest`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no-such-image:latest.*not found/);
    expect((await listJson()).map((i) => i.name)).not.toContain(`${reg}/no-such-image:latest`);
  });

  it("pulls every media type: docker schema2, zstd layers, multi-layer with whiteouts", async () => {
    for (const name of ["docker-schema2", "zstd", "layers"]) {
      const r = await cli("images", "pull", "--quiet", `${reg}/${name}:latest`);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    }
    const imgs = await listJson();
    expect(imgs.find((i) => i.name.endsWith("/docker-schema2:latest"))!.target.mediaType)
      .toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(imgs.filter((i) => !i.unpacked).map((i) => i.name)).toEqual([]);
  });

  it("selects the platform from a multi-arch index", async () => {
    const host = await cli("images", "pull", "--quiet", `${reg}/multiarch:latest`);
    expect(host.code).toBe(0);
    const other = await cli(
      "-n",
      "arm",
      "images",
      "pull",
      "--quiet",
      "--platform",
      "linux/arm64",
      `${reg}/multiarch:latest`,
    );
    expect(other.stderr).toBe("");
    const wrong = await cli(
      "images",
      "pull",
      "--platform",
      "linux/s390x",
      `${reg}/multiarch:latest`,
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /no manifest for platform linux\/s390x .*it has: linux\/amd64, linux\/arm64\/v8/,
    );
    const bad = await cli("images", "pull", "--platform", "linux", `${reg}/multiarch:latest`);
    expect(bad.stderr).toMatch(/invalid platform "linux"/);
  });

  it("tags, exports and imports an OCI layout into another namespace", async () => {
    expect((await cli("images", "tag", `${reg}/busybox:latest`, "example.com/tools/bb:1")).code)
      .toBe(0);
    const tar = `${dir}/bb.tar`;
    const ex = await cli("images", "export", tar, "example.com/tools/bb:1");
    expect(ex.stderr).toBe("");
    const im = await cli("-n", "imported", "images", "import", tar);
    expect(im.stderr).toBe("");
    const [img] = await listJson("imported");
    const [orig] = (await listJson()).filter((i) => i.name === "example.com/tools/bb:1");
    expect(img).toMatchObject({
      name: "example.com/tools/bb:1",
      unpacked: true,
      target: { digest: orig.target.digest },
    });
  });

  it("imports a docker-archive (docker save) tarball written by skopeo", async () => {
    const tar = `${dir}/saved.tar`;
    const sk = await new Deno.Command("skopeo", {
      args: [
        "copy",
        "--src-tls-verify=false",
        `docker://${reg}/busybox:latest`,
        `docker-archive:${tar}:example.com/saved:1`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    expect(new TextDecoder().decode(sk.stderr)).toBe("");
    const im = await cli("-n", "saved", "images", "import", tar);
    expect(im.stderr).toBe("");
    const [img] = await listJson("saved");
    expect(img).toMatchObject({ name: "example.com/saved:1", unpacked: true });
    expect(img.target.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
  });

  it("refuses an import that is not an image archive, leaving nothing", async () => {
    const tar = `${dir}/junk.tar`;
    await Deno.writeFile(tar, await tarOf([{ name: "hello.txt", body: "hi" }]));
    const r = await cli("-n", "junk", "images", "import", tar);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/neither an OCI image layout .* nor a docker save archive/);
    expect(await listJson("junk")).toEqual([]);
  });

  it("removes images and collects their content and snapshots", async () => {
    const ns = "gc-test";
    expect((await cli("-n", ns, "images", "pull", "--quiet", `${reg}/layers:latest`)).code).toBe(0);
    expect((await cli("-n", ns, "content", "ls", "--quiet")).stdout.trim().split("\n").length)
      .toBeGreaterThan(3);
    expect((await cli("-n", ns, "snapshots", "ls", "--quiet")).stdout.trim().split("\n").length)
      .toBeGreaterThanOrEqual(5);
    const rm = await cli("-n", ns, "images", "rm", "--sync", `${reg}/layers:latest`);
    expect(rm.code).toBe(0);
    expect((await cli("-n", ns, "content", "ls", "--quiet")).stdout.trim()).toBe("");
    expect((await cli("-n", ns, "snapshots", "ls", "--quiet")).stdout.trim()).toBe("");
    // Other namespaces keep theirs.
    expect((await cli("content", "ls", "--quiet")).stdout.trim()).not.toBe("");
    const again = await cli("-n", ns, "images", "rm", `${reg}/layers:latest`);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not found/);
  });

  it("refuses a blob whose bytes do not match its digest, keeping nothing", async () => {
    const img = buildImage({
      layers: [
        await buildLayer([{ type: "file", path: "/corrupt-me", content: "payload ".repeat(5000) }]),
      ],
    });
    await pushImage(reg, "corrupt", "latest", img);
    const proxy = startFaultProxy(registry.url, { corruptBlob: img.layers[0].digest });
    try {
      const r = await cli("-n", "bad", "images", "pull", `${proxy.address}/corrupt:latest`);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`digest mismatch: expected ${img.layers[0].digest}`));
    } finally {
      await proxy.close();
    }
    expect(await listJson("bad")).toEqual([]);
    await cli("-n", "bad", "leases", "ls", "--quiet").then((l) => expect(l.stdout.trim()).toBe(""));
    const content = (await cli("-n", "bad", "content", "ls", "--quiet")).stdout;
    expect(content).not.toContain(img.layers[0].digest);
  });

  it("refuses a truncated gzip layer and removes the half-unpacked snapshot", async () => {
    const good = await buildLayer([{
      type: "file",
      path: "/big",
      content: crypto.getRandomValues(new Uint8Array(60000)),
    }]);
    const data = good.data.slice(0, Math.floor(good.data.length / 2));
    const truncated = { ...good, data, digest: sha256Digest(data), size: data.length };
    await pushImage(reg, "truncated", "latest", buildImage({ layers: [truncated] }));
    const r = await cli("-n", "trunc", "images", "pull", `${reg}/truncated:latest`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unexpected end of file|truncated/i);
    expect(await listJson("trunc")).toEqual([]);
    expect((await cli("-n", "trunc", "snapshots", "ls", "--quiet")).stdout.trim()).toBe("");
  });

  it("refuses a hostile layer entry that escapes the root, touching nothing outside", async () => {
    const marker = `/tmp/k8sc-escape-${crypto.randomUUID()}`;
    const tar = await tarOf([{ name: `../../../../../../..${marker}`, body: "owned" }]);
    await pushImage(reg, "hostile", "latest", buildImage({ layers: [layerFromTar(tar)] }));
    const r = await cli("-n", "hostile", "images", "pull", `${reg}/hostile:latest`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/escapes the root/);
    await expect(Deno.stat(marker)).rejects.toThrow(Deno.errors.NotFound);
    expect(await listJson("hostile")).toEqual([]);
    expect((await cli("-n", "hostile", "snapshots", "ls", "--quiet")).stdout.trim()).toBe("");
  });

  it("says so when the registry refuses the credentials", async () => {
    const proxy = startFaultProxy(registry.url, { unauthorized: true });
    try {
      const r = await cli(
        "-n",
        "auth",
        "images",
        "pull",
        "--user",
        "me:wrong",
        `${proxy.address}/busybox:latest`,
      );
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/unauthori[sz]ed/i);
      expect(r.stderr).toContain("busybox");
      // Bounded: the client gave up after a retry, it did not loop.
      expect(proxy.requests.length).toBeLessThan(10);
    } finally {
      await proxy.close();
    }
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("images: daemon killed mid-pull", () => {
  it("leaves no half-visible image; the next start collects the leftovers and a new pull works", async () => {
    const registry = await startRegistry();
    const proxy = startFaultProxy(registry.url, { slowBlobsMs: 1500 });
    let d = await startTestDaemon();
    try {
      await pushFixtures(registry.address, ["busybox"]);
      const pulling = runCli([
        "--address",
        d.socket,
        "images",
        "pull",
        `${proxy.address}/busybox:latest`,
      ]);
      // Wait until blobs are being fetched, then kill the daemon.
      const deadline = Date.now() + 10_000;
      while (!proxy.requests.some((r) => r.includes("/blobs/")) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 200));
      await d.kill();
      expect((await pulling).code).not.toBe(0);

      d = await startTestDaemon({ dir: d.dir });
      const cli = (...a: string[]) =>
        runCli(["--address", d.socket, ...a]).then((r) => r.stdout.trim());
      expect(await cli("images", "ls", "--quiet")).toBe("");
      expect(await cli("leases", "ls", "--quiet")).toBe("");
      expect(await cli("content", "ls", "--quiet")).toBe("");
      expect(await cli("snapshots", "ls", "--quiet")).toBe("");
      expect(d.log()).toContain("dropped the lease of an unfinished pull");
      // Nothing stuck: the same pull now succeeds.
      const again = await runCli([
        "--address",
        d.socket,
        "images",
        "pull",
        "--quiet",
        `${registry.address}/busybox:latest`,
      ]);
      expect(again.stderr).toBe("");
      expect(again.code).toBe(0);
    } finally {
      await d.kill();
      await new Deno.Command("sh", {
        args: [
          "-c",
          `grep -o ' ${d.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l`,
        ],
      }).output();
      await d.cleanup();
      await proxy.close();
      await registry.stop();
    }
  });
});
