/**
 * CRI user namespaces (`NamespaceOption.userns_options`): NODE (or unset) keeps the host's;
 * POD gives the pod one user namespace of its own with the kubelet's uid and gid mappings,
 * shared by the pause container and every container of the pod. CONTAINER and TARGET are not
 * modes the kubelet uses and are refused, as containerd and CRI-O refuse them.
 *
 * @example
 * ```ts
 * import { podUsernsMappings } from "./userns.ts";
 * podUsernsMappings(config); // undefined (host userns) or { uids, gids }
 * ```
 */
import {
  type IDMapping,
  type Mount,
  NamespaceMode,
  type PodSandboxConfig,
} from "../gen/runtime/v1/api.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import { checkIdMappings } from "../runtime/spec/builder.ts";
import type { LinuxIdMapping } from "../runtime/spec/types.ts";
import type { HandlerFeatures } from "../runtime/features.ts";

/** A pod user namespace's mappings, one range each (OCI shape). */
export interface PodIdMappings {
  uids: LinuxIdMapping[];
  gids: LinuxIdMapping[];
}

const oci = (m: IDMapping): LinuxIdMapping => ({
  containerID: m.containerId,
  hostID: m.hostId,
  size: m.length,
});

/**
 * The pod's user namespace mappings, or undefined for the host's. Throws InvalidArgumentError
 * naming the field for a mode other than NODE/POD, a host-network POD pod, or mappings that
 * are not exactly one range mapping container id 0; FailedPreconditionError when the pod's
 * runtime handler cannot run user namespaces here.
 */
export function podUsernsMappings(
  config: PodSandboxConfig,
  handler: { name: string; features: HandlerFeatures },
): PodIdMappings | undefined {
  const ns = config.linux?.securityContext?.namespaceOptions;
  const u = ns?.usernsOptions;
  if (!u || u.mode === NamespaceMode.NODE) return undefined;
  if (u.mode !== NamespaceMode.POD) {
    throw new InvalidArgumentError(
      `userns_options.mode ${NamespaceMode[u.mode] ?? u.mode} is not supported: use POD or NODE`,
    );
  }
  if (ns?.network === NamespaceMode.NODE) {
    throw new InvalidArgumentError(
      "userns_options.mode POD with host networking is not supported (a user namespace cannot own the node's network namespace)",
    );
  }
  const uids = u.uids.map(oci), gids = u.gids.map(oci);
  checkIdMappings(uids, "uid", "userns_options.uids");
  checkIdMappings(gids, "gid", "userns_options.gids");
  if (!handler.features.userNamespaces) {
    throw new FailedPreconditionError(
      `runtime handler "${handler.name}" does not support user namespaces on this host (idmapped mounts on the snapshot filesystem are needed)`,
    );
  }
  return { uids, gids };
}

/**
 * Checks a CRI mount's own uid/gid mappings against the pod's: the daemon idmaps a volume
 * through the pod's user namespace, so a mount may ask for exactly the pod's mapping (what
 * the kubelet sends) or none. Returns whether the mount is to be idmapped.
 */
export function mountIdmapped(
  m: Mount,
  i: number,
  pod: PodIdMappings | undefined,
): boolean {
  if (m.uidMappings.length === 0 && m.gidMappings.length === 0) return false;
  const f = `mounts[${i}]`;
  if (!pod) {
    throw new InvalidArgumentError(
      `${f}.uid_mappings/gid_mappings need a pod with its own user namespace (userns_options POD)`,
    );
  }
  const same = (a: IDMapping[], b: LinuxIdMapping[]) =>
    a.length === b.length &&
    a.every((x, k) =>
      x.containerId === b[k].containerID && x.hostId === b[k].hostID && x.length === b[k].size
    );
  if (!same(m.uidMappings, pod.uids) || !same(m.gidMappings, pod.gids)) {
    throw new InvalidArgumentError(
      `${f}.uid_mappings/gid_mappings must equal the pod's user namespace mappings`,
    );
  }
  return true;
}
