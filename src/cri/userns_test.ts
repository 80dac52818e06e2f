import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import { Mount, NamespaceMode, PodSandboxConfig } from "../gen/runtime/v1/api.ts";
import { mountIdmapped, podUsernsMappings } from "./userns.ts";

const yes = { name: "runc", features: { userNamespaces: true, recursiveReadOnlyMounts: true } };
const map = [{ containerId: 0, hostId: 65536, length: 65536 }];

function pod(mode: NamespaceMode, extra: { network?: NamespaceMode; uids?: typeof map } = {}) {
  return PodSandboxConfig.fromPartial({
    linux: {
      securityContext: {
        namespaceOptions: {
          network: extra.network ?? NamespaceMode.POD,
          usernsOptions: { mode, uids: extra.uids ?? map, gids: map },
        },
      },
    },
  });
}

function refused(fn: () => unknown, kind: string): string {
  try {
    fn();
  } catch (e) {
    expect(isKind(e, kind as "invalid-argument")).toBe(true);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

describe("pod user namespaces", () => {
  it("NODE or no userns_options: the host's", () => {
    expect(podUsernsMappings(pod(NamespaceMode.NODE), yes)).toBeUndefined();
    expect(podUsernsMappings(PodSandboxConfig.fromPartial({}), yes)).toBeUndefined();
  });

  it("POD: the kubelet's mappings in OCI form", () => {
    expect(podUsernsMappings(pod(NamespaceMode.POD), yes)).toEqual({
      uids: [{ containerID: 0, hostID: 65536, size: 65536 }],
      gids: [{ containerID: 0, hostID: 65536, size: 65536 }],
    });
  });

  it("refuses CONTAINER and TARGET, host networking, bad mappings, a handler without userns", () => {
    expect(refused(() => podUsernsMappings(pod(NamespaceMode.CONTAINER), yes), "invalid-argument"))
      .toContain("userns_options.mode CONTAINER is not supported");
    expect(refused(() => podUsernsMappings(pod(NamespaceMode.TARGET), yes), "invalid-argument"))
      .toContain("TARGET");
    expect(
      refused(
        () => podUsernsMappings(pod(NamespaceMode.POD, { network: NamespaceMode.NODE }), yes),
        "invalid-argument",
      ),
    ).toContain("host networking");
    expect(
      refused(
        () => podUsernsMappings(pod(NamespaceMode.POD, { uids: [...map, ...map] }), yes),
        "invalid-argument",
      ),
    ).toContain("userns_options.uids: exactly one mapping");
    const no = {
      name: "crun",
      features: { userNamespaces: false, recursiveReadOnlyMounts: false },
    };
    expect(refused(() => podUsernsMappings(pod(NamespaceMode.POD), no), "failed-precondition"))
      .toContain('runtime handler "crun" does not support user namespaces');
  });

  it("a volume's own mappings must be the pod's", () => {
    const p = podUsernsMappings(pod(NamespaceMode.POD), yes);
    const m = (uidMappings = map) =>
      Mount.fromPartial({ containerPath: "/d", hostPath: "/srv", uidMappings, gidMappings: map });
    expect(mountIdmapped(Mount.fromPartial({ containerPath: "/d" }), 0, p)).toBe(false);
    expect(mountIdmapped(m(), 0, p)).toBe(true);
    expect(
      refused(
        () => mountIdmapped(m([{ containerId: 0, hostId: 1, length: 5 }]), 2, p),
        "invalid-argument",
      ),
    )
      .toBe("mounts[2].uid_mappings/gid_mappings must equal the pod's user namespace mappings");
    expect(refused(() => mountIdmapped(m(), 1, undefined), "invalid-argument"))
      .toContain("need a pod with its own user namespace");
  });
});
