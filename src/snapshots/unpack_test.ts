import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { layers } from "../../scripts/fixtures/images.ts";
import { layoutSource } from "../../scripts/fixtures/oci.ts";
import type { Fixture } from "../../scripts/fixtures/images.ts";
import { OverlaySnapshotter } from "./overlay.ts";
import { NativeSnapshotter } from "./native.ts";
import { chainIDs, unpackLayer } from "./unpack.ts";
import { mountAll, unmountAll } from "./mount.ts";
import type { Snapshotter } from "./snapshotter.ts";
import {
  assertRootfs,
  gzip,
  type RawEntry,
  rawTar,
  type Scratch,
  scratch,
  sha256,
  streamOf,
} from "./test_helpers.ts";

const NS = "default";

async function unpackFixture(sn: Snapshotter, f: Fixture): Promise<string> {
  const src = layoutSource(f.layout);
  const layerList = f.manifests[0].layers;
  const chain = chainIDs(layerList.map((l) => l.diffID));
  let parent: string | undefined;
  for (const [i, l] of layerList.entries()) {
    const r = await unpackLayer({
      snapshotter: sn,
      namespace: NS,
      parentChainID: parent,
      chainID: chain[i],
      diffID: l.diffID,
      stream: streamOf(await src.read(l.digest)),
      compression: "auto",
      labels: { "test/layer": String(i) },
    });
    expect(r).toMatchObject({ chainID: chain[i], applied: true });
    parent = chain[i];
  }
  return parent!;
}

function leftovers(sn: Snapshotter): string[] {
  return sn.walk(NS).filter((i) => i.kind !== "committed").map((i) => i.key);
}

/** Unpacks a hostile tar as a base layer and returns the error. */
async function unpackHostile(
  sn: Snapshotter,
  entries: RawEntry[],
  opts: { allowDevices?: boolean } = {},
): Promise<Error> {
  const tar = await rawTar(entries);
  const diffID = sha256(tar);
  const err = await unpackLayer({
    snapshotter: sn,
    namespace: NS,
    chainID: diffID,
    diffID,
    stream: streamOf(gzip(tar)),
    compression: "gzip",
    allowDevices: opts.allowDevices,
  }).then(() => undefined, (e) => e as Error);
  if (!err) throw new Error("expected the unpack to fail");
  return err;
}

for (const kind of ["overlayfs", "native"] as const) {
  describe.skipIf(!isRoot, ROOT_REASON)(`unpackLayer with ${kind}`, () => {
    let s: Scratch;
    let sn: Snapshotter;
    let fixture: Fixture;
    beforeAll(async () => {
      s = await scratch(`unpack-${kind}-`);
      sn = kind === "overlayfs"
        ? new OverlaySnapshotter(`${s.dir}/root`, s.db)
        : new NativeSnapshotter(`${s.dir}/root`, s.db);
      fixture = await layers();
    });
    afterAll(() => s.dispose());

    it("applies the layers fixture; the top snapshot shows the expected rootfs", async () => {
      const top = await unpackFixture(sn, fixture);
      expect(leftovers(sn)).toEqual([]);
      expect(sn.stat(NS, top)).toMatchObject({ kind: "committed", labels: { "test/layer": "4" } });
      if (kind === "overlayfs") {
        const mnt = `${s.dir}/view`;
        Deno.mkdirSync(mnt);
        mountAll(await sn.view(NS, "view", top), mnt);
        try {
          assertRootfs(mnt);
        } finally {
          unmountAll(mnt);
          await sn.remove(NS, "view");
        }
      } else {
        assertRootfs(sn.mounts(NS, top)[0].source);
      }
    });

    it("skips a layer whose chain ID is committed already (and cancels its stream)", async () => {
      const l = fixture.manifests[0].layers[0];
      let canceled = false;
      const stream = new ReadableStream<Uint8Array>({ cancel: () => void (canceled = true) });
      const r = await unpackLayer({
        snapshotter: sn,
        namespace: NS,
        chainID: l.diffID,
        diffID: l.diffID,
        stream,
        compression: "gzip",
      });
      expect(r.applied).toBe(false);
      expect(canceled).toBe(true);
    });

    it("two concurrent unpacks of one chain ID: one applies, both succeed", async () => {
      const tar = await rawTar([{ header: { name: "same.txt", type: "file" }, body: "same\n" }]);
      const diffID = sha256(tar);
      const run = () =>
        unpackLayer({
          snapshotter: sn,
          namespace: NS,
          chainID: diffID,
          diffID,
          stream: streamOf(gzip(tar)),
          compression: "gzip",
        });
      const rs = await Promise.all([run(), run()]);
      expect(rs.map((r) => r.applied).sort()).toEqual([false, true]);
      expect(leftovers(sn)).toEqual([]);
      await sn.remove(NS, diffID);
    });

    it("refuses ../escape, naming the entry; nothing is left behind", async () => {
      const err = await unpackHostile(sn, [{
        header: { name: "../escape", type: "file" },
        body: "x",
      }]);
      expect(err.message).toContain(`layer entry "../escape": path escapes the root`);
      expect(err.name).toBe("InvalidArgumentError");
      expect(leftovers(sn)).toEqual([]);
      expect(() => Deno.lstatSync(`${s.dir}/root/escape`)).toThrow();
      expect(() => Deno.lstatSync(`${s.dir}/escape`)).toThrow();
    });

    it("takes /abs/path relative to the root", async () => {
      const tar = await rawTar([{ header: { name: "/abs/path", type: "file" }, body: "inside\n" }]);
      const diffID = sha256(tar);
      await unpackLayer({
        snapshotter: sn,
        namespace: NS,
        chainID: diffID,
        diffID,
        stream: streamOf(tar),
        compression: "auto",
      });
      const fs = sn.mounts(NS, diffID)[0].source;
      expect(Deno.readTextFileSync(`${fs}/abs/path`)).toBe("inside\n");
      await sn.remove(NS, diffID);
    });

    it("a symlink evil -> /etc then evil/passwd lands inside the root, never in the host's /etc", async () => {
      const before = Deno.readFileSync("/etc/passwd");
      const tar = await rawTar([
        { header: { name: "evil", type: "symlink", linkname: "/etc" } },
        { header: { name: "evil/passwd", type: "file" }, body: "pwned\n" },
        { header: { name: "rel", type: "symlink", linkname: "../../../../../../etc" } },
        { header: { name: "rel/shadow-ish", type: "file" }, body: "pwned\n" },
      ]);
      const diffID = sha256(tar);
      await unpackLayer({
        snapshotter: sn,
        namespace: NS,
        chainID: diffID,
        diffID,
        stream: streamOf(tar),
        compression: "none",
      });
      expect(Deno.readFileSync("/etc/passwd")).toEqual(before);
      expect(() => Deno.lstatSync("/etc/shadow-ish")).toThrow();
      const fs = sn.mounts(NS, diffID)[0].source;
      expect(Deno.readTextFileSync(`${fs}/etc/passwd`)).toBe("pwned\n");
      expect(Deno.readTextFileSync(`${fs}/etc/shadow-ish`)).toBe("pwned\n");
      expect(Deno.readLinkSync(`${fs}/evil`)).toBe("/etc");
      await sn.remove(NS, diffID);
    });

    it("refuses a hardlink to ../../etc/shadow", async () => {
      const err = await unpackHostile(sn, [
        { header: { name: "shadow", type: "link", linkname: "../../etc/shadow" } },
      ]);
      expect(err.message).toContain(
        `layer entry "shadow": hardlink target "../../etc/shadow" is outside the layer root`,
      );
      expect(leftovers(sn)).toEqual([]);
    });

    it("refuses a device entry when allowDevices is false", async () => {
      const err = await unpackHostile(sn, [
        { header: { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0 } },
      ], { allowDevices: false });
      expect(err.message).toContain(`layer entry "dev/sda": device nodes are not allowed`);
      expect(leftovers(sn)).toEqual([]);
    });

    it("a truncated gzip layer fails with unexpected end of file; nothing is left behind", async () => {
      const tar = await rawTar([
        {
          header: { name: "big.bin", type: "file" },
          body: crypto.getRandomValues(new Uint8Array(60000)),
        },
      ]);
      const gz = gzip(tar);
      const diffID = sha256(tar);
      const err = await unpackLayer({
        snapshotter: sn,
        namespace: NS,
        chainID: diffID,
        diffID,
        stream: streamOf(gz.subarray(0, gz.length - 200)),
        compression: "gzip",
      }).then(() => undefined, (e) => e as Error);
      expect(err?.message).toContain("gzip layer: unexpected end of file");
      expect(leftovers(sn)).toEqual([]);
      expect(() => sn.stat(NS, diffID)).toThrow(/not found/);
    });

    it("a diffID mismatch fails naming both digests; nothing is left behind", async () => {
      const tar = await rawTar([{ header: { name: "a.txt", type: "file" }, body: "a\n" }]);
      const claimed = sha256("something else");
      const err = await unpackLayer({
        snapshotter: sn,
        namespace: NS,
        chainID: claimed,
        diffID: claimed,
        stream: streamOf(gzip(tar)),
        compression: "gzip",
      }).then(() => undefined, (e) => e as Error);
      expect(err?.message).toBe(
        `layer ${claimed}: diffID mismatch: config says ${claimed}, content gives ${sha256(tar)}`,
      );
      expect(leftovers(sn)).toEqual([]);
    });
  });
}

describe("chainIDs", () => {
  it("follows the OCI definition", () => {
    const d = ["sha256:" + "a".repeat(64), "sha256:" + "b".repeat(64), "sha256:" + "c".repeat(64)];
    const c1 = sha256(`${d[0]} ${d[1]}`);
    const c2 = sha256(`${c1} ${d[2]}`);
    expect(chainIDs(d)).toEqual([d[0], c1, c2]);
    expect(chainIDs([])).toEqual([]);
  });

  it("matches a known value", () => {
    // sha256("sha256:aaa… sha256:bbb…") computed independently with sha256sum.
    const d = ["sha256:" + "a".repeat(64), "sha256:" + "b".repeat(64)];
    expect(chainIDs(d)[1]).toBe(KNOWN);
  });
});

const KNOWN = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c";
