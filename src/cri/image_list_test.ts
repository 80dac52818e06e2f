/**
 * ListImages against a real daemon: every image with its id, tags, digests, size, user and
 * pinned flag, and the `filter.image` forms (tag, familiar name, digest reference, id, id prefix,
 * nothing).
 */
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import {
  type Image,
  ImageStatusRequest,
  ListImagesRequest,
  PullImageRequest,
  RemoveImageRequest,
} from "../gen/runtime/v1/api.ts";
import { type CriEnv, startCriEnv } from "./test_helpers.ts";
import { imageUser, normalizeRef, splitReferences } from "./image_view.ts";

describe("CRI image helpers", () => {
  it("reads the image user as a uid when numeric, a name otherwise", () => {
    expect(imageUser(undefined)).toEqual({ username: "" });
    expect(imageUser("")).toEqual({ username: "" });
    expect(imageUser("1000")).toEqual({ uid: 1000n, username: "" });
    expect(imageUser("1000:2000")).toEqual({ uid: 1000n, username: "" });
    expect(imageUser("app:staff")).toEqual({ username: "app" });
  });
  it("normalises references like containerd's ParseDockerRef", () => {
    const d = "sha256:" + "a".repeat(64);
    expect(normalizeRef("busybox")).toBe("docker.io/library/busybox:latest");
    expect(normalizeRef(`busybox:1@${d}`)).toBe(`docker.io/library/busybox@${d}`);
    expect(() => normalizeRef("a".repeat(64))).toThrow(/image ID/);
  });
  it("splits references into tags and digests, skipping ids", () => {
    const d = "sha256:" + "b".repeat(64);
    expect(
      splitReferences(["docker.io/library/busybox:latest", `docker.io/library/busybox@${d}`, d]),
    )
      .toEqual({
        tags: ["docker.io/library/busybox:latest"],
        digests: [`docker.io/library/busybox@${d}`],
      });
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("CRI ListImages", () => {
  let env: CriEnv;
  const list = async (image?: string) =>
    (await env.images(
      env.image.listImages,
      ListImagesRequest.fromPartial(image === undefined ? {} : { filter: { image: { image } } }),
    )).images;
  const byId = (images: Image[], id: string) => images.find((i) => i.id === id);

  beforeAll(async () => {
    env = await startCriEnv(["busybox", "pause", "user-uid", "user-name", "multiarch"]);
    await env.push("pause", "pause", "3.9");
    for (
      const image of [
        `${env.reg}/busybox:latest`,
        `${env.reg}/user-uid:latest`,
        `${env.reg}/user-name:latest`,
        `${env.reg}/multiarch:latest`,
        "registry.k8s.io/pause:3.9",
      ]
    ) {
      await env.images(env.image.pullImage, PullImageRequest.fromPartial({ image: { image } }));
    }
  });
  afterAll(async () => {
    await env?.close();
  });

  it("lists every image once, by config digest, with tags, digests and size", async () => {
    const images = await list();
    expect(images.length).toBe(5);
    const bb = env.fixtures.busybox!;
    const img = byId(images, bb.manifests[0].config.digest)!;
    expect(img.repoTags).toEqual([`${env.reg}/busybox:latest`]);
    expect(img.repoDigests).toEqual([`${env.reg}/busybox@${bb.digest}`]);
    // containerd's size: manifest + config + compressed layers of the host platform.
    const m = bb.manifests[0];
    const want = bb.size + m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
    expect(img.size).toBe(BigInt(want));
    expect(img.pinned).toBe(false);
    expect(img.uid).toBeUndefined();
    expect(img.username).toBe("");
  });

  it("reports the repo digest of an index and its host-platform config as the id", async () => {
    const ma = env.fixtures.multiarch!;
    const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
    const m = ma.manifests.find((x) => x.platform.architecture === arch)!;
    const img = byId(await list(), m.config.digest)!;
    expect(img.repoDigests).toEqual([`${env.reg}/multiarch@${ma.digest}`]);
    const want = ma.size + m.size + m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
    expect(img.size).toBe(BigInt(want));
  });

  it("reports the config's user as uid or username", async () => {
    const images = await list();
    const uid = byId(images, env.fixtures["user-uid"]!.manifests[0].config.digest)!;
    expect(uid.uid).toEqual({ value: 1000n });
    expect(uid.username).toBe("");
    const name = byId(images, env.fixtures["user-name"]!.manifests[0].config.digest)!;
    expect(name.uid).toBeUndefined();
    expect(name.username).toBe("app");
  });

  it("pins the sandbox image", async () => {
    const pause = byId(await list(), env.fixtures.pause!.manifests[0].config.digest)!;
    expect(pause.repoTags).toEqual(["registry.k8s.io/pause:3.9"]);
    expect(pause.pinned).toBe(true);
  });

  it("filters by tag, digest reference, id and id prefix", async () => {
    const bb = env.fixtures.busybox!;
    const id = bb.manifests[0].config.digest;
    for (
      const f of [
        `${env.reg}/busybox:latest`,
        `${env.reg}/busybox`,
        `${env.reg}/busybox@${bb.digest}`,
        id,
        id.slice("sha256:".length),
        id.slice("sha256:".length, "sha256:".length + 12),
      ]
    ) {
      const got = await list(f);
      expect({ f, ids: got.map((i) => i.id) }).toEqual({ f, ids: [id] });
    }
    expect((await list("registry.k8s.io/pause:3.9")).map((i) => i.id)).toEqual([
      env.fixtures.pause!.manifests[0].config.digest,
    ]);
  });

  it("a filter that matches nothing (or is no reference at all) lists nothing", async () => {
    expect(await list(`${env.reg}/busybox:nope`)).toEqual([]);
    expect(await list("sha256:" + "0".repeat(64))).toEqual([]);
    expect(await list("Not A Reference")).toEqual([]);
    expect((await list("")).length).toBe(5);
  });

  it("follows every change to the images: a new tag pulled, then removed", async () => {
    // Listed (and kept) first, so a stale listing would show below.
    expect((await list()).length).toBe(5);
    const bb = env.fixtures.busybox!;
    const id = bb.manifests[0].config.digest;
    await env.push("busybox", "busybox", "second");
    const tag = `${env.reg}/busybox:second`;
    await env.images(env.image.pullImage, PullImageRequest.fromPartial({ image: { image: tag } }));
    expect(byId(await list(), id)!.repoTags).toEqual([`${env.reg}/busybox:latest`, tag]);
    const status = await env.images(
      env.image.imageStatus,
      ImageStatusRequest.fromPartial({ image: { image: tag } }),
    );
    expect(status.image?.repoTags).toContain(tag);
    await env.images(
      env.image.removeImage,
      RemoveImageRequest.fromPartial({ image: { image: tag } }),
    );
    expect(byId(await list(), id)!.repoTags).toEqual([`${env.reg}/busybox:latest`]);
    const gone = await env.images(
      env.image.imageStatus,
      ImageStatusRequest.fromPartial({ image: { image: tag } }),
    );
    expect(gone.image).toBeUndefined();
  });
});
