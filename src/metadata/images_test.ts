import { afterEach, beforeEach, describe, expect, it } from "../testing/bdd.ts";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../errdefs/errors.ts";
import { digestOf } from "../content/digest.ts";
import { MEDIA_TYPES } from "../images/oci.ts";
import { MetadataDB } from "./db.ts";
import { ImageStore } from "./images.ts";
import { parseFilters } from "./filters.ts";

const dA = digestOf("a"), dB = digestOf("b"), dC = digestOf("c");

describe("images", () => {
  let dir: string;
  let db: MetadataDB;
  let images: ImageStore;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "images-test-" });
    db = MetadataDB.open(`${dir}/meta.db`);
    images = new ImageStore(db);
    images.create("default", {
      name: "docker.io/library/busybox:latest",
      target: { mediaType: MEDIA_TYPES.ociIndex, digest: dA, size: 10, annotations: { x: "y" } },
      labels: { env: "prod", "io.cri.managed": "yes" },
    });
    images.create("default", {
      name: "docker.io/library/alpine:3",
      target: { mediaType: MEDIA_TYPES.dockerManifest, digest: dB, size: 20 },
      labels: { env: "dev" },
    });
    images.create("default", {
      name: "registry.k8s.io/pause:3.10",
      target: { mediaType: MEDIA_TYPES.ociManifest, digest: dC, size: 30 },
    });
    images.create("other", {
      name: "docker.io/library/busybox:latest",
      target: { mediaType: MEDIA_TYPES.ociManifest, digest: dC, size: 30 },
    });
  });
  afterEach(async () => {
    db.close();
    await Deno.remove(dir, { recursive: true });
  });

  const names = (filters?: string | string[]) => images.list("default", filters).map((i) => i.name);

  it("creates, gets, updates and deletes", () => {
    const img = images.get("default", "docker.io/library/busybox:latest");
    expect(img.target).toEqual({
      mediaType: MEDIA_TYPES.ociIndex,
      digest: dA,
      size: 10,
      annotations: { x: "y" },
    });
    expect(img.labels).toEqual({ env: "prod", "io.cri.managed": "yes" });
    expect(() => images.create("default", { name: img.name, target: img.target })).toThrow(
      AlreadyExistsError,
    );
    const up = images.update("default", img.name, {
      target: { mediaType: MEDIA_TYPES.ociManifest, digest: dB, size: 20 },
    });
    expect(up.target).toEqual({ mediaType: MEDIA_TYPES.ociManifest, digest: dB, size: 20 });
    expect(up.labels).toEqual(img.labels);
    expect(up.updatedAt.getTime()).toBeGreaterThan(img.updatedAt.getTime());
    expect(up.createdAt).toEqual(img.createdAt);
    expect(images.update("default", img.name, { labels: { only: "this" } }).labels).toEqual({
      only: "this",
    });
    images.delete("default", img.name);
    expect(() => images.get("default", img.name)).toThrow(
      'image "docker.io/library/busybox:latest": not found',
    );
    expect(() => images.delete("default", img.name)).toThrow(NotFoundError);
    expect(() => images.update("default", img.name, { labels: {} })).toThrow(NotFoundError);
    // The same name in another namespace is untouched.
    expect(images.get("other", img.name).target.digest).toBe(dC);
  });

  it("validates names and targets", () => {
    const target = { mediaType: MEDIA_TYPES.ociManifest, digest: dA, size: 1 };
    expect(() => images.create("default", { name: "", target })).toThrow(InvalidArgumentError);
    expect(() => images.create("default", { name: "a b", target })).toThrow(/invalid image name/);
    expect(() =>
      images.create("default", { name: "x", target: { ...target, digest: "sha256:zz" } })
    )
      .toThrow(/invalid digest/);
    expect(() => images.create("default", { name: "x", target: { ...target, size: -1 } })).toThrow(
      /size -1 is invalid/,
    );
    expect(() => images.create("bad ns", { name: "x", target })).toThrow(/invalid namespace/);
  });

  it("lists all by name with no filter", () => {
    expect(names()).toEqual([
      "docker.io/library/alpine:3",
      "docker.io/library/busybox:latest",
      "registry.k8s.io/pause:3.10",
    ]);
    expect(names([])).toEqual(names(""));
  });

  it("filters with ==, !=, ~= and presence", () => {
    expect(names("name==registry.k8s.io/pause:3.10")).toEqual(["registry.k8s.io/pause:3.10"]);
    expect(names('name=="docker.io/library/alpine:3"')).toEqual(["docker.io/library/alpine:3"]);
    expect(names("name!=registry.k8s.io/pause:3.10")).toEqual([
      "docker.io/library/alpine:3",
      "docker.io/library/busybox:latest",
    ]);
    expect(names("name~=^docker\\.io/")).toEqual([
      "docker.io/library/alpine:3",
      "docker.io/library/busybox:latest",
    ]);
    expect(names("name~=/pause:3\\.\\d+$/")).toEqual(["registry.k8s.io/pause:3.10"]);
    expect(names("labels.env==prod")).toEqual(["docker.io/library/busybox:latest"]);
    expect(names('labels."io.cri.managed"==yes')).toEqual(["docker.io/library/busybox:latest"]);
    expect(names("labels.env")).toEqual([
      "docker.io/library/alpine:3",
      "docker.io/library/busybox:latest",
    ]);
    expect(names(`target.digest==${dC}`)).toEqual(["registry.k8s.io/pause:3.10"]);
    expect(names(`target.mediatype==${MEDIA_TYPES.dockerManifest}`)).toEqual([
      "docker.io/library/alpine:3",
    ]);
  });

  it("ANDs selectors within a filter and ORs filters", () => {
    expect(names("name~=^docker,labels.env==dev")).toEqual(["docker.io/library/alpine:3"]);
    expect(names("name~=^docker, labels.env==nope")).toEqual([]);
    expect(names(["labels.env==dev", `target.digest==${dC}`])).toEqual([
      "docker.io/library/alpine:3",
      "registry.k8s.io/pause:3.10",
    ]);
  });

  it("rejects a bad filter with InvalidArgument naming it", () => {
    for (
      const bad of ["name=x", "name==x,", "labels.", "name~=(", 'name=="open', "nosuch==1", "==x"]
    ) {
      let err: unknown;
      try {
        images.list("default", bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toContain(`invalid filter "${bad}"`);
    }
  });

  it("filter language: quoting and escapes", () => {
    const f = parseFilters(['labels."a\\"b"=="v,1"']);
    expect(f.match((p) => (p[1] === 'a"b' ? "v,1" : undefined))).toBe(true);
    expect(f.match(() => "v")).toBe(false);
  });
});
