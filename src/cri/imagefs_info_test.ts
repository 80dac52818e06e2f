/**
 * ImageFsInfo against a real daemon: zero before anything is unpacked, the snapshots' bytes and
 * inodes after a pull, the snapshotter root as the mountpoint, a nanosecond timestamp.
 */
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { ImageFsInfoRequest, PullImageRequest } from "../gen/runtime/v1/api.ts";
import { type CriEnv, startCriEnv } from "./test_helpers.ts";

describe.skipIf(!isRoot, ROOT_REASON)("CRI ImageFsInfo", () => {
  let env: CriEnv;
  const info =
    async () => (await env.images(env.image.imageFsInfo, ImageFsInfoRequest.fromPartial({})));

  beforeAll(async () => {
    env = await startCriEnv(["busybox", "layers"]);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("reports nothing used before a pull, on the snapshotter's root", async () => {
    const res = await info();
    expect(res.imageFilesystems.length).toBe(1);
    expect(res.containerFilesystems).toEqual([]);
    const fs = res.imageFilesystems[0];
    expect(fs.usedBytes?.value).toBe(0n);
    expect(fs.inodesUsed?.value).toBe(0n);
    expect(fs.fsId?.mountpoint).toMatch(
      new RegExp(`^${env.daemon.root}/snapshots/(overlayfs|native)$`),
    );
    await Deno.stat(fs.fsId!.mountpoint);
  });

  it("counts the unpacked layers' bytes and inodes after pulls", async () => {
    const before = Date.now();
    await env.images(
      env.image.pullImage,
      PullImageRequest.fromPartial({ image: { image: `${env.reg}/busybox:latest` } }),
    );
    const one = (await info()).imageFilesystems[0];
    // busybox-static is over 1 MB, plus its applet links.
    expect(one.usedBytes!.value).toBeGreaterThan(1_000_000n);
    expect(one.inodesUsed!.value).toBeGreaterThan(100n);
    const ms = Number(one.timestamp / 1_000_000n);
    expect(ms).toBeGreaterThanOrEqual(before - 1000);
    expect(ms).toBeLessThanOrEqual(Date.now());

    await env.images(
      env.image.pullImage,
      PullImageRequest.fromPartial({ image: { image: `${env.reg}/layers:latest` } }),
    );
    const two = (await info()).imageFilesystems[0];
    expect(two.usedBytes!.value).toBeGreaterThan(one.usedBytes!.value);
    expect(two.inodesUsed!.value).toBeGreaterThan(one.inodesUsed!.value);
  });
});
