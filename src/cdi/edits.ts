/**
 * CDI container edits → the spec builder's pieces: env entries, resolved device nodes (each
 * added to the device cgroup allow list by the builder), mounts and OCI hooks. The only host
 * access is the device stat for a node whose type or numbers the spec leaves out; it is
 * injected, so the rest is plain data transformation and the builder itself stays pure.
 *
 * Conflicts follow the CDI library: a later device node on the same container path, or a
 * later mount on the same container path, replaces the earlier one; a later env entry of the
 * same key wins; hooks add up.
 *
 * @example
 * ```ts
 * import { editsToInjection } from "./edits.ts";
 * const inj = await editsToInjection([{ source: "CDI device \"a.com/b=c\"", edits: { env: ["A=1"] } }]);
 * inj.env; // ["A=1"]
 * ```
 */
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import { cleanPath, type ResolvedDevice, type UserMount } from "../runtime/spec/builder.ts";
import type { Hooks } from "../runtime/spec/types.ts";
import type { SourcedEdits } from "./registry.ts";
import type { CdiDeviceNode, CdiMount } from "./spec.ts";
import { type DeviceStat, type HostDevice, hostDeviceStat } from "../runtime/devices.ts";

export { type DeviceStat, type HostDevice, hostDeviceStat, splitDevT } from "../runtime/devices.ts";

/**
 * What a set of CDI devices adds to a container, in the builder's terms.
 *
 * @example
 * ```ts
 * import type { CdiInjection } from "./edits.ts";
 * const i: CdiInjection = { env: [], devices: [], mounts: [], additionalGids: [] };
 * ```
 */
export interface CdiInjection {
  /** `KEY=VALUE`, to add after the container's own env (a CDI value wins). */
  env: string[];
  devices: ResolvedDevice[];
  mounts: UserMount[];
  /** Undefined when no device has hooks. */
  hooks?: Hooks;
  additionalGids: number[];
}

/**
 * Fills a device node's missing type and numbers from the host (hostPath, else path), as the
 * CDI library does: a node with a type and a non-zero major (or type "p") is taken as given.
 *
 * @throws FailedPreconditionError naming `source` when the host device is missing, is not a
 * device, or is of another type than the spec says.
 * @example
 * ```ts
 * import { resolveDeviceNode } from "./edits.ts";
 * await resolveDeviceNode({ path: "/dev/foo", hostPath: "/dev/null" }, "CDI device \"a.com/b=c\"");
 * // { path: "/dev/foo", type: "c", major: 1, minor: 3, fileMode: 438, permissions: "rwm" }
 * ```
 */
export async function resolveDeviceNode(
  node: CdiDeviceNode,
  source: string,
  stat: DeviceStat = hostDeviceStat,
): Promise<ResolvedDevice> {
  const out: ResolvedDevice = {
    path: node.path,
    hostPath: node.hostPath ?? node.path,
    type: node.type ?? "c",
    major: node.major ?? 0,
    minor: node.minor ?? 0,
    permissions: node.permissions ?? "rwm",
  };
  if (node.fileMode !== undefined) out.fileMode = node.fileMode;
  if (node.uid !== undefined) out.uid = node.uid;
  if (node.gid !== undefined) out.gid = node.gid;
  if (node.type !== undefined && (node.major || node.type === "p")) return out;
  const host = node.hostPath ?? node.path;
  let info: HostDevice;
  try {
    info = await stat(host);
  } catch (e) {
    throw new FailedPreconditionError(
      `${source}: device node ${node.path}: host device ${host} cannot be used: ${
        (e as Error).message
      }`,
    );
  }
  if (
    node.type !== undefined && node.type !== info.type && !(node.type === "u" && info.type === "c")
  ) {
    throw new FailedPreconditionError(
      `${source}: device node ${node.path} is of type ${node.type}, but host device ${host} is of type ${info.type}`,
    );
  }
  if (node.type === undefined) out.type = info.type;
  if (!node.major && out.type !== "p") {
    out.major = info.major;
    out.minor = info.minor;
  }
  if (out.fileMode === undefined) out.fileMode = info.mode;
  return out;
}

const PROPAGATION: Record<string, UserMount["propagation"]> = {
  private: "rprivate",
  rprivate: "rprivate",
  slave: "rslave",
  rslave: "rslave",
  shared: "rshared",
  rshared: "rshared",
};

/**
 * A CDI mount as a builder mount: binds (type "bind", or a "bind"/"rbind" option, or no type)
 * and tmpfs. "ro" makes it read-only and propagation options set its propagation; other
 * options (nosuid, nodev, noexec, …) are passed on. Binds are always recursive.
 *
 * @throws InvalidArgumentError naming `source` for another mount type or a relative bind source.
 * @example
 * ```ts
 * import { cdiMountToUserMount } from "./edits.ts";
 * cdiMountToUserMount({ hostPath: "/lib/libfoo.so", containerPath: "/lib/libfoo.so", options: ["ro", "nosuid", "bind"] }, "x");
 * // { destination: "/lib/libfoo.so", source: "/lib/libfoo.so", type: "bind", readonly: true, options: ["nosuid"] }
 * ```
 */
export function cdiMountToUserMount(m: CdiMount, source: string): UserMount {
  const opts = m.options ?? [];
  const bind = m.type === undefined || m.type === "" || m.type === "bind" ||
    opts.includes("bind") || opts.includes("rbind");
  if (!bind && m.type !== "tmpfs") {
    throw new InvalidArgumentError(
      `${source}: mount on ${m.containerPath} is of type ${
        JSON.stringify(m.type)
      }: only bind and tmpfs mounts are supported`,
    );
  }
  const out: UserMount = { destination: m.containerPath, type: bind ? "bind" : "tmpfs" };
  if (bind) {
    if (!m.hostPath.startsWith("/")) {
      throw new InvalidArgumentError(
        `${source}: bind mount on ${m.containerPath} needs an absolute hostPath: got ${
          JSON.stringify(m.hostPath)
        }`,
      );
    }
    out.source = m.hostPath;
  }
  const extra: string[] = [];
  for (const o of opts) {
    if (o === "ro") out.readonly = true;
    else if (o === "rw" || o === "bind" || o === "rbind") continue;
    else if (bind && PROPAGATION[o]) out.propagation = PROPAGATION[o];
    else extra.push(o);
  }
  if (extra.length) out.options = extra;
  return out;
}

/**
 * Applies edit groups in order and returns what they add to a container.
 *
 * @throws as {@link resolveDeviceNode} and {@link cdiMountToUserMount}.
 * @example
 * ```ts
 * import { editsToInjection } from "./edits.ts";
 * const inj = await editsToInjection([
 *   { source: "CDI device \"vendor.com/device=foo\"", edits: {
 *     env: ["FOO=1"],
 *     deviceNodes: [{ path: "/dev/foo", hostPath: "/dev/null" }],
 *     hooks: [{ hookName: "createContainer", path: "/usr/bin/true" }],
 *   } },
 * ]);
 * inj.devices[0]; // { path: "/dev/foo", type: "c", major: 1, minor: 3, permissions: "rwm", fileMode: 438 }
 * inj.hooks; // { createContainer: [{ path: "/usr/bin/true" }] }
 * ```
 */
export async function editsToInjection(
  groups: SourcedEdits[],
  stat: DeviceStat = hostDeviceStat,
): Promise<CdiInjection> {
  const env: string[] = [];
  const devices = new Map<string, ResolvedDevice>();
  const mounts = new Map<string, UserMount>();
  let hooks: Hooks | undefined;
  const gids: number[] = [];
  for (const { source, edits } of groups) {
    env.push(...(edits.env ?? []));
    for (const n of edits.deviceNodes ?? []) {
      const d = await resolveDeviceNode(n, source, stat);
      const key = cleanPath(d.path);
      devices.delete(key); // a replacement goes last, as the CDI library re-adds it
      devices.set(key, d);
    }
    for (const m of edits.mounts ?? []) {
      const u = cdiMountToUserMount(m, source);
      const key = cleanPath(u.destination);
      mounts.delete(key);
      mounts.set(key, u);
    }
    for (const h of edits.hooks ?? []) {
      hooks ??= {};
      const list = hooks[h.hookName] ??= [];
      const hook: NonNullable<Hooks["prestart"]>[number] = { path: h.path };
      if (h.args) hook.args = [...h.args];
      if (h.env) hook.env = [...h.env];
      if (h.timeout !== undefined) hook.timeout = h.timeout;
      list.push(hook);
    }
    for (const g of edits.additionalGids ?? []) if (!gids.includes(g)) gids.push(g);
  }
  return {
    env,
    devices: [...devices.values()],
    mounts: [...mounts.values()],
    hooks,
    additionalGids: gids,
  };
}

/**
 * Adds CDI mounts to a container's mounts: one on the same destination replaces the
 * container's (CDI edits are applied last, as containerd does).
 *
 * @example
 * ```ts
 * import { mergeMounts } from "./edits.ts";
 * mergeMounts([{ destination: "/a", source: "/x" }], [{ destination: "/a/", source: "/y" }]);
 * // [{ destination: "/a/", source: "/y" }]
 * ```
 */
export function mergeMounts(base: UserMount[], cdi: UserMount[]): UserMount[] {
  const taken = new Set(cdi.map((m) => cleanPath(m.destination)));
  return [...base.filter((m) => !taken.has(cleanPath(m.destination))), ...cdi];
}
