import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../../testing/bdd.ts";
import { errorKind } from "../../errdefs/errors.ts";
import {
  checkSubPath,
  parseImageVolumes,
  resolveSubPath,
  unmountImageVolumes,
} from "./image_volumes.ts";
import { mountAll } from "../../snapshots/mount.ts";

const F = "mounts[1].image_sub_path";

/** The error kind and message a call throws (undefined when it returns). */
function failure(fn: () => unknown): { kind: string; message: string } | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return { kind: errorKind(e), message: (e as Error).message };
  }
}

describe("image volume sub paths", () => {
  let root: string;
  beforeAll(async () => {
    // An "image": data/keep.txt, and links of every kind.
    const top = await Deno.makeTempDir({ prefix: "k8sc-subpath-" });
    root = `${top}/image`;
    await Deno.mkdir(`${root}/data/sub`, { recursive: true });
    await Deno.mkdir(`${root}/etc`);
    await Deno.writeTextFile(`${root}/data/keep.txt`, "keep\n");
    // Outside the image root, where an escaping link would land on the host.
    await Deno.mkdir(`${top}/host-secret`);
    await Deno.mkdir(`${root}/links`);
    await Deno.symlink("../data", `${root}/links/rel`);
    await Deno.symlink("/data/sub", `${root}/links/abs`);
    await Deno.symlink("/etc", `${root}/links/etc`); // the image's /etc, not the host's
    await Deno.symlink("../../host-secret", `${root}/links/escape`);
    await Deno.symlink("/../host-secret", `${root}/links/abs-escape`);
    await Deno.symlink("loop2", `${root}/links/loop1`);
    await Deno.symlink("loop1", `${root}/links/loop2`);
    await Deno.symlink("/nonexistent", `${root}/links/dangling`);
    await Deno.symlink("keep.txt", `${root}/data/file-link`);
  });
  afterAll(async () => {
    await Deno.remove(root.replace(/\/image$/, ""), { recursive: true });
  });

  it("refuses absolute paths and '..' lexically, naming the field", () => {
    expect(checkSubPath("", F)).toEqual([]);
    expect(checkSubPath("./data//sub/", F)).toEqual(["data", "sub"]);
    for (const p of ["/etc", "..", "../x", "data/../../x", "data/.."]) {
      const f = failure(() => checkSubPath(p, F));
      expect({ p, kind: f?.kind }).toEqual({ p, kind: "invalid-argument" });
      expect(f?.message).toContain(F);
    }
    expect(failure(() => checkSubPath("a\0b", F))?.kind).toBe("invalid-argument");
  });

  it("resolves plain paths and symlinks inside the image root", () => {
    expect(resolveSubPath(root, "", F)).toBe("");
    expect(resolveSubPath(root, "data/sub", F)).toBe("data/sub");
    expect(resolveSubPath(root, "links/rel", F)).toBe("data");
    expect(resolveSubPath(root, "links/rel/sub", F)).toBe("data/sub");
    // An absolute target starts over at the image root, never at the host's.
    expect(resolveSubPath(root, "links/abs", F)).toBe("data/sub");
    expect(resolveSubPath(root, "links/etc", F)).toBe("etc");
    // A file may be mounted too, also through a link.
    expect(resolveSubPath(root, "data/file-link", F)).toBe("data/keep.txt");
  });

  it("refuses a symlink that climbs out of the image, loops, or is dangling", () => {
    for (const p of ["links/escape", "links/abs-escape"]) {
      const f = failure(() => resolveSubPath(root, p, F));
      expect({ p, kind: f?.kind }).toEqual({ p, kind: "invalid-argument" });
      expect(f?.message).toContain(`${F} "${p}" escapes the image root`);
    }
    const loop = failure(() => resolveSubPath(root, "links/loop1", F));
    expect(loop?.kind).toBe("invalid-argument");
    expect(loop?.message).toContain("too many levels of symlinks");
    const dangling = failure(() => resolveSubPath(root, "links/dangling", F));
    expect(dangling).toEqual({
      kind: "not-found",
      message: expect.stringContaining(`${F} "links/dangling": /nonexistent does not exist`),
    });
    expect(failure(() => resolveSubPath(root, "nope", F))?.kind).toBe("not-found");
    const notDir = failure(() => resolveSubPath(root, "data/keep.txt/x", F));
    expect(notDir?.kind).toBe("invalid-argument");
    expect(notDir?.message).toContain("/data/keep.txt is not a directory");
  });

  it("never looks outside the root while resolving", () => {
    const seen: string[] = [];
    const fs = {
      lstat: (p: string) => {
        seen.push(p);
        return p === "/r/a" ? { isSymlink: true } as Deno.FileInfo : undefined;
      },
      readLink: () => "/../../etc/passwd",
    };
    expect(failure(() => resolveSubPath("/r", "a", F, fs))?.kind).toBe("invalid-argument");
    expect(seen).toEqual(["/r/a"]);
  });

  it("reads the records a container label holds, ignoring a broken one", () => {
    const rec = { n: 0, image: "a", imageId: "sha256:1", key: "c-imagevolume-0" };
    expect(parseImageVolumes(JSON.stringify([rec]))).toEqual([rec]);
    expect(parseImageVolumes(undefined)).toEqual([]);
    expect(parseImageVolumes("{not json")).toEqual([]);
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("unmountImageVolumes", () => {
  it("unmounts every image volume of a bundle and leaves nothing behind", async () => {
    const bundle = await Deno.makeTempDir({ prefix: "k8sc-ivol-bundle-" });
    const layer = await Deno.makeTempDir({ prefix: "k8sc-ivol-layer-" });
    try {
      await Deno.writeTextFile(`${layer}/f`, "x");
      for (const n of [0, 1]) {
        await Deno.mkdir(`${bundle}/imagevolumes/${n}`, { recursive: true });
        mountAll(
          [{ type: "bind", source: layer, options: ["ro", "rbind"] }],
          `${bundle}/imagevolumes/${n}`,
        );
      }
      // Read-only: a recursive delete through it cannot touch the layer.
      await expect(Deno.remove(`${bundle}/imagevolumes/0/f`)).rejects.toThrow();
      unmountImageVolumes(bundle);
      const info = await Deno.readTextFile("/proc/self/mountinfo");
      expect(info.includes(bundle)).toBe(false);
      expect(await Deno.stat(`${bundle}/imagevolumes`).catch(() => undefined)).toBeUndefined();
      expect(await Deno.readTextFile(`${layer}/f`)).toBe("x");
      unmountImageVolumes(bundle); // harmless with none
    } finally {
      await Deno.remove(bundle, { recursive: true }).catch(() => {});
      await Deno.remove(layer, { recursive: true });
    }
  });
});
