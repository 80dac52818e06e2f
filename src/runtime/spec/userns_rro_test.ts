/**
 * The spec rules of user namespaces, recursive read-only mounts and the supplemental groups
 * policy (CRI features of Kubernetes 1.30+).
 */
import { describe, expect, it } from "../../testing/bdd.ts";
import { isKind } from "../../errdefs/errors.ts";
import { buildSpec, checkIdMappings, type SpecOptions } from "./builder.ts";

const PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
const GROUP = "root:x:0:\napp:x:1000:\nimage-group:x:50000:app\n";
const MAP = [{ containerID: 0, hostID: 65536, size: 65536 }];

function opts(extra: Partial<SpecOptions> = {}): SpecOptions {
  return {
    id: "c1",
    rootfs: { path: "rootfs" },
    image: { Cmd: ["sh"] },
    passwd: PASSWD,
    group: GROUP,
    ...extra,
  };
}

function invalidMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isKind(e, "invalid-argument")).toBe(true);
    return (e as Error).message;
  }
  throw new Error("expected an InvalidArgumentError");
}

describe("user namespaces", () => {
  it("a new user namespace comes first and carries the mappings", () => {
    const s = buildSpec(
      opts({ namespaces: { user: "new" }, idMappings: { uids: MAP, gids: MAP } }),
    );
    expect(s.linux!.namespaces![0]).toEqual({ type: "user" });
    expect(s.linux!.uidMappings).toEqual(MAP);
    expect(s.linux!.gidMappings).toEqual(MAP);
  });

  it("joining the pod's user namespace by path keeps the mappings for the runtime", () => {
    const s = buildSpec(opts({
      namespaces: { user: "/run/k8scontainerd/cri/sandboxes/ab/userns" },
      idMappings: { uids: MAP, gids: MAP },
    }));
    expect(s.linux!.namespaces).toContainEqual({
      type: "user",
      path: "/run/k8scontainerd/cri/sandboxes/ab/userns",
    });
    expect(s.linux!.uidMappings).toEqual(MAP);
  });

  it("the host's user namespace by default: no user namespace, no mappings", () => {
    const s = buildSpec(opts({ idMappings: { uids: MAP, gids: MAP } }));
    expect(s.linux!.namespaces!.some((n) => n.type === "user")).toBe(false);
    expect(s.linux!.uidMappings).toBeUndefined();
  });

  it("devices in a user namespace are bound from their host path, and still allowed", () => {
    const s = buildSpec(opts({
      namespaces: { user: "/pod/userns" },
      idMappings: { uids: MAP, gids: MAP },
      devices: [{ path: "/dev/foo", hostPath: "/dev/null", type: "c", major: 1, minor: 3 }],
    }));
    expect(s.linux!.devices).toBeUndefined();
    expect(s.mounts!.at(-1)).toEqual({
      destination: "/dev/foo",
      type: "bind",
      source: "/dev/null",
      options: ["rbind", "rprivate", "rw"],
    });
    expect(s.linux!.resources!.devices!.at(-1)).toEqual({
      allow: true,
      type: "c",
      major: 1,
      minor: 3,
      access: "rwm",
    });
    // Without a user namespace the node is created as usual.
    const plain = buildSpec(opts({
      devices: [{ path: "/dev/foo", hostPath: "/dev/null", type: "c", major: 1, minor: 3 }],
    }));
    expect(plain.linux!.devices).toEqual([{ path: "/dev/foo", type: "c", major: 1, minor: 3 }]);
  });

  it("a new user namespace without mappings is refused", () => {
    expect(invalidMessage(() => buildSpec(opts({ namespaces: { user: "new" } })))).toContain(
      "idMappings",
    );
  });

  it("mappings: one range, container id 0 mapped, no host root, within 32 bits", () => {
    checkIdMappings(MAP, "uid");
    expect(invalidMessage(() => checkIdMappings([...MAP, ...MAP], "uid", "userns_options.uids")))
      .toBe("userns_options.uids: exactly one mapping is supported, got 2");
    expect(invalidMessage(() => checkIdMappings([], "gid"))).toContain("got 0");
    expect(
      invalidMessage(() => checkIdMappings([{ containerID: 1, hostID: 1000, size: 10 }], "uid")),
    )
      .toContain("container uid 0 must be mapped");
    expect(
      invalidMessage(() => checkIdMappings([{ containerID: 0, hostID: 0, size: 65536 }], "gid")),
    )
      .toContain("host gid 0");
    expect(
      invalidMessage(() => checkIdMappings([{ containerID: 0, hostID: 1000, size: 0 }], "uid")),
    )
      .toContain("size");
    expect(
      invalidMessage(() =>
        checkIdMappings([{ containerID: 0, hostID: 0xffff0000, size: 0x20000 }], "uid")
      ),
    ).toContain("2^32");
  });
});

describe("recursive read-only mounts", () => {
  it("become runc's rro on a private bind", () => {
    const s = buildSpec(opts({
      mounts: [{ destination: "/data", source: "/srv", readonly: true, recursiveReadonly: true }],
    }));
    const m = s.mounts!.find((x) => x.destination === "/data")!;
    expect(m.options).toEqual(["rbind", "rprivate", "rro"]);
  });

  it("are refused when not read-only, or with propagation", () => {
    expect(
      invalidMessage(() =>
        buildSpec(
          opts({ mounts: [{ destination: "/d", source: "/srv", recursiveReadonly: true }] }),
        )
      ),
    ).toBe("mounts[0]: a recursive read-only mount must also be read-only");
    for (const propagation of ["rslave", "rshared"] as const) {
      expect(invalidMessage(() =>
        buildSpec(opts({
          mounts: [{
            destination: "/d",
            source: "/srv",
            readonly: true,
            recursiveReadonly: true,
            propagation,
          }],
        }))
      )).toContain(`needs private propagation (got ${propagation})`);
    }
  });

  it("a plain read-only mount stays ro", () => {
    const s = buildSpec(opts({ mounts: [{ destination: "/d", source: "/srv", readonly: true }] }));
    expect(s.mounts!.find((x) => x.destination === "/d")!.options).toEqual([
      "rbind",
      "rprivate",
      "ro",
    ]);
  });
});

describe("supplemental groups policy", () => {
  it("Merge (default) adds the image's /etc/group memberships", () => {
    const s = buildSpec(opts({ user: "1000", supplementalGroups: [1234] }));
    expect(s.process!.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 50000, 1234] });
  });

  it("Strict leaves them out", () => {
    const s = buildSpec(opts({
      user: "1000",
      supplementalGroups: [1234],
      supplementalGroupsPolicy: "Strict",
    }));
    expect(s.process!.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 1234] });
  });
});
