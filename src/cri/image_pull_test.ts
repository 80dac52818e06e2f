/**
 * PullImage against a real daemon and registry: by tag, by digest, through the registry.k8s.io
 * mirror, re-pulling a moved tag, AuthConfig credentials checked by a Basic-auth proxy, and the
 * errors a caller sees for bad requests.
 */
import { status as code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import {
  AuthConfig,
  ImageStatusRequest,
  ListImagesRequest,
  PullImageRequest,
} from "../gen/runtime/v1/api.ts";
import { codeOf, type CriEnv, spec, startCriEnv } from "./test_helpers.ts";
import { pullCredentials } from "./image_pull.ts";

/** A proxy in front of the registry that demands Basic `user:secret` on every request. */
function basicAuthProxy(upstream: string) {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const auth = req.headers.get("authorization") ?? "";
    seen.push(auth);
    if (auth !== `Basic ${btoa("user:secret")}`) {
      return new Response(
        '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
        {
          status: 401,
          headers: {
            "www-authenticate": 'Basic realm="cri-test"',
            "content-type": "application/json",
          },
        },
      );
    }
    const headers = new Headers(req.headers);
    headers.delete("authorization");
    const res = await fetch(`${upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      redirect: "follow",
    });
    return new Response(res.body, { status: res.status, headers: res.headers });
  });
  return {
    address: `127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    seen,
    close: () => server.shutdown(),
  };
}

describe("pullCredentials", () => {
  const a = (p: Partial<AuthConfig>) => AuthConfig.fromPartial(p);
  it("uses the request's credentials for the image's registry only", () => {
    expect(pullCredentials(a({ username: "u", password: "p" }), "ghcr.io")).toEqual({
      username: "u",
      password: "p",
    });
    expect(
      pullCredentials(a({ auth: btoa("u:p"), serverAddress: "https://ghcr.io/v2/" }), "ghcr.io"),
    )
      .toEqual({ username: "u", password: "p" });
    expect(
      pullCredentials(a({ username: "u", password: "p", serverAddress: "quay.io" }), "ghcr.io"),
    )
      .toBeUndefined();
    expect(
      pullCredentials(
        a({ username: "u", password: "p", serverAddress: "https://index.docker.io/v1/" }),
        "docker.io",
      ),
    ).toEqual({ username: "u", password: "p" });
    expect(pullCredentials(a({ registryToken: "tok" }), "ghcr.io")).toEqual({
      registryToken: "tok",
    });
    expect(pullCredentials(a({}), "ghcr.io")).toBeUndefined();
    expect(pullCredentials(undefined, "ghcr.io")).toBeUndefined();
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("CRI PullImage", () => {
  let env: CriEnv;
  const pull = (image: string, auth?: Partial<AuthConfig>) =>
    env.images(
      env.image.pullImage,
      PullImageRequest.fromPartial({ image: { image }, ...(auth ? { auth } : {}) }),
    );
  const status = (image: string) =>
    env.images(env.image.imageStatus, ImageStatusRequest.fromPartial({ image: spec(image) }));

  beforeAll(async () => {
    env = await startCriEnv(["busybox", "pause", "user-uid"]);
  });
  afterAll(async () => {
    await env?.close();
  });

  it("pulls by tag and answers the image id (the config digest)", async () => {
    const bb = env.fixtures.busybox!;
    const { imageRef } = await pull(`${env.reg}/busybox:latest`);
    expect(imageRef).toBe(bb.manifests[0].config.digest);
    const { image } = await status(`${env.reg}/busybox:latest`);
    expect(image?.id).toBe(imageRef);
    expect(image?.repoTags).toEqual([`${env.reg}/busybox:latest`]);
    expect(image?.repoDigests).toEqual([`${env.reg}/busybox@${bb.digest}`]);
    // The id is a name too, so the image is found by id.
    expect((await status(imageRef)).image?.repoTags).toEqual([`${env.reg}/busybox:latest`]);
  });

  it("pulls by digest: a repo digest and no tag", async () => {
    const uid = env.fixtures["user-uid"]!;
    const { imageRef } = await pull(`${env.reg}/user-uid@${uid.digest}`);
    expect(imageRef).toBe(uid.manifests[0].config.digest);
    const { image } = await status(imageRef);
    expect(image?.repoTags).toEqual([]);
    expect(image?.repoDigests).toEqual([`${env.reg}/user-uid@${uid.digest}`]);
  });

  it("normalises names and resolves registry.k8s.io through the hosts.toml mirror", async () => {
    const { imageRef } = await pull("registry.k8s.io/pause");
    expect(imageRef).toBe(env.fixtures.pause!.manifests[0].config.digest);
    const { image } = await status("registry.k8s.io/pause:latest");
    expect(image?.repoTags).toEqual(["registry.k8s.io/pause:latest"]);
  });

  it("concurrent pulls of one image, and of two names sharing its blobs, all succeed", async () => {
    // What a kubelet does when two pods start at once: each RunPodSandbox pulls the pause image,
    // a Deployment's replicas pull their image side by side. One pull holding a blob's ingest
    // makes the others wait for it (containerd's content.OpenWriter), not fail "is locked".
    await env.push("busybox", "together", "a");
    await env.push("busybox", "together", "b");
    const refs = await Promise.all([
      pull(`${env.reg}/together:a`),
      pull(`${env.reg}/together:a`),
      pull(`${env.reg}/together:a`),
      pull(`${env.reg}/together:b`),
    ]);
    const id = env.fixtures.busybox!.manifests[0].config.digest;
    expect(refs.map((r) => r.imageRef)).toEqual([id, id, id, id]);
  });

  it("re-pulling a tag that moved repoints it; the old image keeps its id and digest", async () => {
    const first = await env.push("busybox", "moving", "v1");
    const a = await pull(`${env.reg}/moving:v1`);
    const second = await env.push("user-uid", "moving", "v1");
    expect(second).not.toBe(first);
    const b = await pull(`${env.reg}/moving:v1`);
    expect(b.imageRef).not.toBe(a.imageRef);
    expect((await status(`${env.reg}/moving:v1`)).image?.id).toBe(b.imageRef);
    const old = (await status(a.imageRef)).image;
    expect(old?.repoTags).not.toContain(`${env.reg}/moving:v1`);
    expect(old?.repoDigests).toContain(`${env.reg}/moving@${first}`);
    // Pulling the same name again is harmless.
    expect((await pull(`${env.reg}/moving:v1`)).imageRef).toBe(b.imageRef);
  });

  it("sends AuthConfig credentials to a registry that demands them", async () => {
    const proxy = basicAuthProxy(env.registry.url);
    try {
      const ref = `${proxy.address}/busybox:latest`;
      const anonymous = await codeOf(pull(ref));
      expect(anonymous.code).toBe(code.FAILED_PRECONDITION);
      expect(anonymous.message).toMatch(/unauthorized/);
      const wrong = await codeOf(pull(ref, { username: "user", password: "nope" }));
      expect(wrong.code).toBe(code.FAILED_PRECONDITION);
      // Credentials for another registry are not sent.
      const elsewhere = await codeOf(
        pull(ref, { username: "user", password: "secret", serverAddress: "quay.io" }),
      );
      expect(elsewhere.code).toBe(code.FAILED_PRECONDITION);
      expect((await pull(ref, { username: "user", password: "secret" })).imageRef).toBe(
        env.fixtures.busybox!.manifests[0].config.digest,
      );
      expect(proxy.seen).toContain(`Basic ${btoa("user:secret")}`);
      // base64 `auth`, scoped to this registry by server_address.
      const r = await pull(`${proxy.address}/pause:latest`, {
        auth: btoa("user:secret"),
        serverAddress: `http://${proxy.address}`,
      });
      expect(r.imageRef).toBe(env.fixtures.pause!.manifests[0].config.digest);
    } finally {
      await proxy.close();
    }
  });

  it("refuses an empty image with INVALID_ARGUMENT naming the field", async () => {
    const e = await codeOf(pull(""));
    expect(e.code).toBe(code.INVALID_ARGUMENT);
    expect(e.message).toMatch(/PullImageRequest\.image\.image/);
    const noSpec = await codeOf(env.images(env.image.pullImage, PullImageRequest.fromPartial({})));
    expect(noSpec.code).toBe(code.INVALID_ARGUMENT);
    const bad = await codeOf(pull("UPPER/Case:latest"));
    expect(bad.code).toBe(code.INVALID_ARGUMENT);
    expect(bad.message).toMatch(/UPPER\/Case/);
  });

  it("answers NOT_FOUND for an image the registry does not have, and lists nothing new", async () => {
    const before = await env.images(env.image.listImages, ListImagesRequest.fromPartial({}));
    const e = await codeOf(pull(`${env.reg}/no-such-image:latest`));
    expect(e.code).toBe(code.NOT_FOUND);
    expect(e.message).toMatch(/no-such-image/);
    const after = await env.images(env.image.listImages, ListImagesRequest.fromPartial({}));
    expect(after.images.length).toBe(before.images.length);
  });
});
