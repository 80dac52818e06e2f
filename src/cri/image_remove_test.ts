/**
 * RemoveImage against a real daemon: a tag of an image with two tags goes alone, the last tag
 * takes the whole image, an id takes every name, removing what is not there succeeds, and
 * garbage collection gives the disk back.
 */
import { status as code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import {
  ImageFsInfoRequest,
  ImageStatusRequest,
  ListImagesRequest,
  PullImageRequest,
  RemoveImageRequest,
} from "../gen/runtime/v1/api.ts";
import { runCli } from "../../e2e/harness.ts";
import { codeOf, type CriEnv, startCriEnv } from "./test_helpers.ts";

describe.skipIf(!isRoot, ROOT_REASON)("CRI RemoveImage", () => {
  let env: CriEnv;
  const pull = async (image: string) =>
    (await env.images(env.image.pullImage, PullImageRequest.fromPartial({ image: { image } })))
      .imageRef;
  const status = async (image: string) =>
    (await env.images(env.image.imageStatus, ImageStatusRequest.fromPartial({ image: { image } })))
      .image;
  const remove = (image: string) =>
    env.images(env.image.removeImage, RemoveImageRequest.fromPartial({ image: { image } }));
  const count = async () =>
    (await env.images(env.image.listImages, ListImagesRequest.fromPartial({}))).images.length;
  /** Names in k8s.io as the management API sees them. */
  const mgmt = async (...args: string[]) => {
    const r = await runCli(["--address", env.daemon.socket, "-n", "k8s.io", ...args]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return r.stdout.split("\n").filter(Boolean);
  };
  const names = () => mgmt("images", "ls", "-q");

  beforeAll(async () => {
    env = await startCriEnv(["busybox", "user-name"]);
    await env.push("busybox", "busybox", "other");
  });
  afterAll(async () => {
    await env?.close();
  });

  it("removes only the given tag while another tag remains, then the whole image", async () => {
    const id = await pull(`${env.reg}/busybox:latest`);
    expect(await pull(`${env.reg}/busybox:other`)).toBe(id);
    expect((await status(id))?.repoTags).toEqual([
      `${env.reg}/busybox:latest`,
      `${env.reg}/busybox:other`,
    ]);
    await remove(`${env.reg}/busybox:latest`);
    expect(await status(`${env.reg}/busybox:latest`)).toBeUndefined();
    const left = await status(id);
    expect(left?.repoTags).toEqual([`${env.reg}/busybox:other`]);
    expect(left?.repoDigests).toEqual([`${env.reg}/busybox@${env.fixtures.busybox!.digest}`]);
    // The last tag takes the repo digest and the id record with it.
    await remove(`${env.reg}/busybox:other`);
    expect(await status(id)).toBeUndefined();
    expect(await names()).toEqual([]);
  });

  it("removes every name of an image given its id, and collects its content", async () => {
    const id = await pull(`${env.reg}/busybox:latest`);
    await pull(`${env.reg}/busybox:other`);
    const fs = async () =>
      (await env.images(env.image.imageFsInfo, ImageFsInfoRequest.fromPartial({})))
        .imageFilesystems[0].usedBytes!.value;
    expect(await fs()).toBeGreaterThan(0n);
    expect((await names()).length).toBe(4);
    await remove(id);
    expect(await status(id)).toBeUndefined();
    expect(await names()).toEqual([]);
    expect(await count()).toBe(0);
    // Garbage collection ran before the call returned: snapshots and blobs are gone.
    expect(await fs()).toBe(0n);
    expect(await mgmt("content", "ls", "-q")).toEqual([]);
  });

  it("removes by digest reference and by id prefix", async () => {
    const id = await pull(`${env.reg}/user-name:latest`);
    await remove(`${env.reg}/user-name@${env.fixtures["user-name"]!.digest}`);
    // Tags remain, so only the digest name went.
    expect((await status(id))?.repoDigests).toEqual([]);
    expect((await status(id))?.repoTags).toEqual([`${env.reg}/user-name:latest`]);
    await remove(id.slice(7, 19));
    expect(await status(id)).toBeUndefined();
  });

  it("succeeds for an image that is not there (idempotent)", async () => {
    await remove(`${env.reg}/busybox:latest`);
    await remove(`${env.reg}/never-pulled:1`);
    await remove("sha256:" + "2".repeat(64));
    const e = await codeOf(remove(""));
    expect(e.code).toBe(code.INVALID_ARGUMENT);
    expect(e.message).toMatch(/RemoveImageRequest\.image\.image/);
  });
});
