import { describe, expect, it } from "../testing/bdd.ts";
import { errorKind } from "../errdefs/errors.ts";
import { type DeepPartial, Mount } from "../gen/runtime/v1/api.ts";
import {
  checkImageMount,
  imageVolumes,
  isImageVolume,
  refuseIfImageVolume,
} from "./image_volumes.ts";
import type { ResolvedImage } from "./image_view.ts";

const ID = `sha256:${"a".repeat(64)}`;
const view = {
  resolve: (ref: string) =>
    Promise.resolve(
      ref === ID || ref === "reg/data:1"
        ? {
          id: ID,
          references: ["reg/data:1", `reg/data@sha256:${"b".repeat(64)}`],
        } as ResolvedImage
        : undefined,
    ),
};
const mount = (o: DeepPartial<Mount>) => Mount.fromPartial(o);

async function failure(
  p: Promise<unknown>,
): Promise<{ kind: string; message: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return { kind: errorKind(e), message: (e as Error).message };
  }
}

describe("CRI image volumes", () => {
  it("picks the image mounts and resolves their images to a name", async () => {
    const mounts = [
      mount({ containerPath: "/host", hostPath: "/tmp" }),
      mount({ containerPath: "/data", image: { image: ID }, imageSubPath: "sub/dir" }),
      mount({ containerPath: "/all", image: { image: "reg/data:1" } }),
    ];
    expect(mounts.map(isImageVolume)).toEqual([false, true, true]);
    expect(await imageVolumes(view, mounts)).toEqual([
      { image: "reg/data:1", destination: "/data", subPath: "sub/dir", field: "mounts[1]" },
      { image: "reg/data:1", destination: "/all", subPath: "", field: "mounts[2]" },
    ]);
  });

  it("refuses an absent image (not found) and bad mounts (invalid argument), naming the field", async () => {
    expect(
      await failure(
        imageVolumes(view, [mount({ containerPath: "/d", image: { image: "reg/x:2" } })]),
      ),
    )
      .toEqual({
        kind: "not-found",
        message: expect.stringContaining('mounts[0].image: image "reg/x:2"'),
      });
    for (
      const [m, field] of [
        [{ containerPath: "/d", imageSubPath: "../etc" }, "mounts[0].image_sub_path"],
        [{ containerPath: "/d", imageSubPath: "/etc" }, "mounts[0].image_sub_path"],
        [{ containerPath: "d" }, "mounts[0].container_path"],
        [{ containerPath: "/d", hostPath: "/tmp" }, "host_path and image"],
      ] as const
    ) {
      const f = await failure(imageVolumes(view, [mount({ ...m, image: { image: ID } })]));
      expect({ field, kind: f?.kind }).toEqual({ field, kind: "invalid-argument" });
      expect(f?.message).toContain(field);
    }
    expect(() => checkImageMount({ containerPath: "/d", hostPath: "", imageSubPath: "a/b" }, 0))
      .not.toThrow();
  });

  it("refuses to remove an image a container mounts, naming the container", () => {
    expect(() => refuseIfImageVolume("reg/data:1", ID, () => [])).not.toThrow();
    let err: unknown;
    try {
      refuseIfImageVolume("reg/data:1", ID, (id) => id === ID ? ["c1"] : []);
    } catch (e) {
      err = e;
    }
    expect(errorKind(err)).toBe("failed-precondition");
    expect((err as Error).message).toBe(
      `image "reg/data:1" (${ID}) is in use as an image volume by container c1: remove it first`,
    );
  });
});
