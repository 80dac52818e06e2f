/**
 * ImageStatus against a real daemon: a present image by every name it has, a missing one (an
 * empty answer, not an error, as the kubelet expects), verbose info, and a bad request.
 */
import { status as code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { ImageStatusRequest, PullImageRequest } from "../gen/runtime/v1/api.ts";
import { chainIDs } from "../snapshots/unpack.ts";
import { codeOf, type CriEnv, startCriEnv } from "./test_helpers.ts";

describe.skipIf(!isRoot, ROOT_REASON)("CRI ImageStatus", () => {
  let env: CriEnv;
  let id: string;
  const status = (image: string, verbose = false) =>
    env.images(
      env.image.imageStatus,
      ImageStatusRequest.fromPartial({ image: { image }, verbose }),
    );

  beforeAll(async () => {
    env = await startCriEnv(["user-uidgid"]);
    id = (await env.images(
      env.image.pullImage,
      PullImageRequest.fromPartial({ image: { image: `${env.reg}/user-uidgid:latest` } }),
    )).imageRef;
  });
  afterAll(async () => {
    await env?.close();
  });

  it("describes a present image by tag, digest reference, id and id prefix", async () => {
    const f = env.fixtures["user-uidgid"]!;
    for (
      const name of [
        `${env.reg}/user-uidgid:latest`,
        `${env.reg}/user-uidgid`,
        `${env.reg}/user-uidgid@${f.digest}`,
        id,
        id.slice(7, 20),
      ]
    ) {
      const res = await status(name);
      expect({ name, id: res.image?.id }).toEqual({ name, id });
      expect(res.info).toEqual({});
    }
    const { image } = await status(id);
    expect(image?.repoTags).toEqual([`${env.reg}/user-uidgid:latest`]);
    expect(image?.repoDigests).toEqual([`${env.reg}/user-uidgid@${f.digest}`]);
    expect(image?.uid).toEqual({ value: 1000n });
    expect(image?.size).toBeGreaterThan(1_000_000n);
  });

  it("answers an empty status, not an error, for a missing image", async () => {
    for (
      const name of [`${env.reg}/user-uidgid:nope`, "sha256:" + "1".repeat(64), "docker.io/x/y"]
    ) {
      const res = await status(name, true);
      expect(res.image).toBeUndefined();
      expect(res.info).toEqual({});
    }
  });

  it("verbose: info holds the image config and chain id", async () => {
    const f = env.fixtures["user-uidgid"]!;
    const res = await status(`${env.reg}/user-uidgid:latest`, true);
    const info = JSON.parse(res.info.info);
    expect(info.imageSpec.config.User).toBe("1000:2000");
    expect(info.imageSpec.rootfs.diff_ids).toEqual(f.manifests[0].layers.map((l) => l.diffID));
    expect(info.chainID).toBe(chainIDs(f.manifests[0].layers.map((l) => l.diffID)).at(-1));
    expect(info.manifestDigest).toBe(f.digest);
    expect(info.references).toContain(id);
  });

  it("refuses a request without an image with INVALID_ARGUMENT", async () => {
    const e = await codeOf(env.images(env.image.imageStatus, ImageStatusRequest.fromPartial({})));
    expect(e.code).toBe(code.INVALID_ARGUMENT);
    expect(e.message).toMatch(/ImageStatusRequest\.image\.image/);
  });
});
