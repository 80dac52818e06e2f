/**
 * The OCI runtime spec builder: everything known about a container in, the config.json object
 * runc / crun consume out. PURE: no file, process or kernel is touched here. Whatever depends
 * on the host (the image's /etc/passwd text, device numbers, the daemon's own oom_score_adj,
 * capabilities and rlimits, whether AppArmor exists) is read by the caller and passed in, so
 * each rule is a unit test and the runtime driver stays small (CRI-O's split).
 *
 * @example
 * ```ts
 * import { buildSpec } from "./builder.ts";
 * const spec = buildSpec({
 *   id: "c1",
 *   rootfs: { path: "/run/k8scontainerd/c1/rootfs" },
 *   image: { Entrypoint: ["/bin/sh"], Cmd: ["-c", "id"], Env: ["PATH=/bin"] },
 *   cgroupsPath: "/k8scontainerd/c1",
 *   resources: { memory: { limit: 64 << 20 } },
 * });
 * await Deno.writeTextFile("/run/k8scontainerd/c1/config.json", JSON.stringify(spec));
 * ```
 */

import { FailedPreconditionError, InvalidArgumentError } from "../../errdefs/errors.ts";
import type { ImageConfig } from "../../images/oci.ts";
import {
  ALL_CAPABILITIES,
  applyCapabilityChanges,
  DEFAULT_CAPABILITIES,
  normalizeCapability,
  sortCapabilities,
} from "./capabilities.ts";
import { defaultSeccompProfile, type SeccompArch } from "./seccomp.ts";
import type {
  Hook,
  Hooks,
  LinuxDevice,
  LinuxDeviceCgroup,
  LinuxIdMapping,
  LinuxNamespace,
  LinuxResources,
  LinuxSeccomp,
  Mount,
  NamespaceType,
  Rlimit,
  Spec,
} from "./types.ts";
import { resolveUser, type UserRequest } from "./user.ts";

/**
 * The runtime-spec version written into config.json (what runc 1.1 and crun 1.8 implement).
 *
 * @example
 * ```ts
 * import { OCI_VERSION } from "./builder.ts";
 * OCI_VERSION; // "1.0.2"
 * ```
 */
export const OCI_VERSION = "1.0.2";

/**
 * PATH for containers whose image sets none (Docker's and containerd's default).
 *
 * @example
 * ```ts
 * import { DEFAULT_PATH } from "./builder.ts";
 * `PATH=${DEFAULT_PATH}`;
 * ```
 */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Resource limits when the caller gives none: RLIMIT_NOFILE soft 1024, hard 524288.
 *
 * Why these numbers: 1024 keeps select(2)-based programs safe and stops runtimes that size
 * tables by the soft limit (older Java, Erlang, some Go/Python daemons) from allocating for a
 * million fds; 524288 lets programs that need more raise it themselves. It is what containerd
 * 2.x containers get (systemd's default) instead of the older 1048576:1048576 inherited from a
 * `LimitNOFILE=infinity` unit. A daemon without CAP_SYS_RESOURCE cannot hand out a hard limit
 * above its own: pass `rlimitCeiling` and the values are lowered to it.
 *
 * @example
 * ```ts
 * import { DEFAULT_RLIMITS } from "./builder.ts";
 * DEFAULT_RLIMITS[0]; // { type: "RLIMIT_NOFILE", soft: 1024, hard: 524288 }
 * ```
 */
export const DEFAULT_RLIMITS: readonly Rlimit[] = [
  { type: "RLIMIT_NOFILE", soft: 1024, hard: 524288 },
];

/**
 * Paths the runtime hides (bind of /dev/null or an empty read-only tmpfs): kernel interfaces
 * that leak host information or allow host-wide effects (containerd's defaults).
 *
 * @example
 * ```ts
 * import { DEFAULT_MASKED_PATHS } from "./builder.ts";
 * DEFAULT_MASKED_PATHS.includes("/proc/kcore"); // true
 * ```
 */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/sys/firmware",
  "/proc/scsi",
  "/sys/devices/virtual/powercap",
];

/**
 * Paths the runtime remounts read-only: host-wide kernel tunables (containerd's defaults).
 *
 * @example
 * ```ts
 * import { DEFAULT_READONLY_PATHS } from "./builder.ts";
 * DEFAULT_READONLY_PATHS.includes("/proc/sys"); // true
 * ```
 */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/**
 * The namespace kinds a container may configure.
 *
 * @example
 * ```ts
 * import type { NamespaceKind } from "./builder.ts";
 * const k: NamespaceKind = "ipc";
 * ```
 */
export type NamespaceKind = "pid" | "ipc" | "uts" | "network" | "mount" | "cgroup" | "user";

/**
 * How a container gets a namespace: "new" (its own), "host" (the runtime's, i.e. omitted
 * from the spec) or an absolute path to join (/run/netns/x, /proc/<pid>/ns/ipc).
 *
 * @example
 * ```ts
 * import type { NamespaceMode } from "./builder.ts";
 * const m: NamespaceMode = "/proc/4242/ns/net";
 * ```
 */
export type NamespaceMode = "new" | "host" | string;

/**
 * A mount the user asked for (CRI Mount, or a tmpfs), applied after the default mounts.
 * Propagation names follow CRI: rprivate (PROPAGATION_PRIVATE), rslave (HOST_TO_CONTAINER),
 * rshared (BIDIRECTIONAL).
 *
 * @example
 * ```ts
 * import type { UserMount } from "./builder.ts";
 * const m: UserMount = { destination: "/data", source: "/srv/data", readonly: true };
 * const t: UserMount = { destination: "/scratch", type: "tmpfs", options: ["size=16m"] };
 * ```
 */
export interface UserMount {
  destination: string;
  /** Host path for a bind; ignored for tmpfs. */
  source?: string;
  /** Default "bind". */
  type?: "bind" | "tmpfs";
  readonly?: boolean;
  /**
   * Read-only all the way down (CRI `recursive_read_only`): submounts of the source are made
   * read-only too (runc's `rro`, mount_setattr with AT_RECURSIVE). Needs `readonly` and
   * private propagation: a submount arriving later by propagation would not be read-only.
   */
  recursiveReadonly?: boolean;
  /** Default "rprivate"; binds only. */
  propagation?: "rprivate" | "rslave" | "rshared";
  /** Extra mount options (e.g. "size=16m", "mode=1777" for tmpfs). */
  options?: string[];
  /**
   * Bind the source idmapped through the container's user namespace (CRI mount uid/gid
   * mappings). The containers service does it before the spec is built; the builder ignores it.
   */
  idmap?: boolean;
}

/**
 * A device the caller resolved on the host (stat of hostPath), to create at `path` inside
 * the container and allow in the device cgroup with `permissions` (a subset of "rwm").
 *
 * @example
 * ```ts
 * import type { ResolvedDevice } from "./builder.ts";
 * const d: ResolvedDevice = { path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, permissions: "rwm" };
 * ```
 */
export interface ResolvedDevice {
  path: string;
  /**
   * The node on the host (default `path`). In a user namespace nodes cannot be created, so
   * the device is bound from here instead (runc would bind from `path` on the host).
   */
  hostPath?: string;
  type: "c" | "b" | "p" | "u";
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
  /** Default "rwm". */
  permissions?: string;
}

/**
 * The seccomp profile to apply: RuntimeDefault (the built-in allowlist), Unconfined (no
 * filter) or Localhost (a profile the caller parsed with `seccompFromJson`).
 *
 * @example
 * ```ts
 * import type { SeccompChoice } from "./builder.ts";
 * const s: SeccompChoice = { type: "RuntimeDefault" };
 * ```
 */
export type SeccompChoice =
  | { type: "RuntimeDefault" }
  | { type: "Unconfined" }
  | { type: "Localhost"; profile: LinuxSeccomp };

/**
 * CPU, memory, pids, hugetlb and blkio settings (CRI LinuxContainerResources, by name).
 *
 * @example
 * ```ts
 * import type { ResourceOptions } from "./builder.ts";
 * const r: ResourceOptions = { cpu: { shares: 512, quota: 50000, period: 100000 }, memory: { limit: 128 << 20 } };
 * ```
 */
export interface ResourceOptions {
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  /**
   * Bytes. `swap` is memory+swap (cgroup v1 memsw meaning). When `limit` is set and `swap`
   * is not, swap = limit (the container cannot swap), as containerd does on hosts with swap
   * accounting; set `swapAccounting: false` on hosts without it (the runtime would reject
   * the setting there), and `swap: -1` for unlimited swap.
   */
  memory?: { limit?: number; swap?: number; reservation?: number };
  pids?: { limit: number };
  hugepageLimits?: { pageSize: string; limit: number }[];
  blockIO?: { weight?: number };
  /** cgroup v2 files written verbatim (CRI `unified`). */
  unified?: Record<string, string>;
}

/**
 * Everything about a container that ends up in its config.json.
 *
 * @example
 * ```ts
 * import type { SpecOptions } from "./builder.ts";
 * const o: SpecOptions = {
 *   id: "c1",
 *   rootfs: { path: "rootfs", readonly: true },
 *   image: { Cmd: ["sleep", "60"], User: "app" },
 *   passwd: "app:x:1000:1000::/home/app:/bin/sh\n",
 *   namespaces: { network: "/run/netns/cni-1" },
 * };
 * ```
 */
export interface SpecOptions {
  /** Container id; used in error messages only (the runtime takes it on its command line). */
  id: string;
  /** The root filesystem: absolute, or relative to the bundle directory. */
  rootfs: { path: string; readonly?: boolean };
  /** Set in the spec only with a new UTS namespace; always exported as $HOSTNAME. */
  hostname?: string;
  /** The image config's `config` section (Entrypoint, Cmd, Env, WorkingDir, User). */
  image?: ImageConfig["config"];
  /** CRI `command`: replaces the image Entrypoint, and drops the image Cmd. */
  command?: string[];
  /** CRI `args`: replaces the image Cmd. */
  args?: string[];
  /** Environment overrides, applied after the image's (same key replaces). */
  env?: { key: string; value: string }[];
  /** Overrides the image WorkingDir; default "/". */
  workingDir?: string;
  /** Overrides the image User. */
  user?: UserRequest;
  /** /etc/passwd and /etc/group text from the image rootfs (undefined: file absent). */
  passwd?: string;
  group?: string;
  /** CRI supplemental_groups, added after the image's groups. */
  supplementalGroups?: number[];
  /**
   * CRI SupplementalGroupsPolicy: "Merge" (default) adds the groups /etc/group of the image
   * lists the user in; "Strict" only the primary gid and `supplementalGroups`.
   */
  supplementalGroupsPolicy?: "Merge" | "Strict";
  terminal?: boolean;
  /** Default DEFAULT_RLIMITS; [] for none (inherit the runtime's). */
  rlimits?: Rlimit[];
  /** Per-type highest value the daemon can grant (its own hard limits without CAP_SYS_RESOURCE). */
  rlimitCeiling?: Record<string, number>;
  noNewPrivileges?: boolean;
  /** CRI add/drop lists; "CAP_X", "X" and "ALL" accepted. Ignored when privileged. */
  capabilities?: { add?: string[]; drop?: string[] };
  /**
   * The capabilities the daemon holds (its bounding set, see `capabilitiesFromMask`): what
   * "ALL" and privileged mean. Default: every capability known. Defaults outside it are left
   * out; an explicit add outside it is an error.
   */
  hostCapabilities?: readonly string[];
  privileged?: boolean;
  /** Passed only when the host has AppArmor (the caller checks). */
  apparmorProfile?: string;
  /** SELinux process label and mount label, passed only when the host has SELinux. */
  selinuxLabel?: string;
  mountLabel?: string;
  /** Default RuntimeDefault. Privileged containers never get a filter. */
  seccomp?: SeccompChoice;
  /** For the seccomp architectures; default this host's. */
  arch?: SeccompArch;
  /** Mounts after the defaults; one on the same destination (or a parent of it) replaces a default. */
  mounts?: UserMount[];
  /** The pod's /dev/shm on the host: bound instead of a private tmpfs (shared IPC). */
  shmPath?: string;
  /**
   * A user namespace's id mappings (with `namespaces.user` "new", or a path to the pod's: the
   * runtime wants them either way). Checked by {@link checkIdMappings}.
   */
  idMappings?: { uids: LinuxIdMapping[]; gids: LinuxIdMapping[] };
  /** Defaults: pid, ipc, uts, network, mount "new"; cgroup, user "host" (see `cgroupV2`). */
  namespaces?: Partial<Record<NamespaceKind, NamespaceMode>>;
  /**
   * The host runs cgroup v2 (unified): the container gets its own cgroup namespace unless
   * `namespaces.cgroup` says otherwise, as containerd does there, so it sees its own cgroup as
   * /sys/fs/cgroup (its limits in memory.max, cpu.max …) and not the host's tree.
   */
  cgroupV2?: boolean;
  /** Replace the defaults (an empty list unmasks everything, CRI procMount Unmasked). */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  /** "/k8scontainerd/<id>" (cgroupfs) or "slice:prefix:name" (systemd). */
  cgroupsPath?: string;
  resources?: ResourceOptions;
  /** Whether the host has swap accounting (memsw / memory.swap.max); default true. */
  swapAccounting?: boolean;
  devices?: ResolvedDevice[];
  sysctls?: Record<string, string>;
  /** Wanted oom_score_adj (-1000..1000). */
  oomScoreAdj?: number;
  /** The daemon's own oom_score_adj: the value is raised to it (see clampOomScoreAdj). */
  oomScoreAdjFloor?: number;
  annotations?: Record<string, string>;
  /**
   * OCI lifecycle hooks (CDI devices bring them), run by the runtime on the host: each `path`
   * absolute, `args` starting with the program name, `env` KEY=VALUE, `timeout` in seconds.
   */
  hooks?: Hooks;
}

/**
 * Checks a user namespace's id mapping as the kubelet's pod userns contract has it: exactly
 * one range (the kubelet allots one per pod), container id 0 mapped (the image's root must be
 * someone), a positive size, and ids within 32 bits. Throws InvalidArgumentError naming the
 * field and what is wrong.
 *
 * @example
 * ```ts
 * import { checkIdMappings } from "./builder.ts";
 * checkIdMappings([{ containerID: 0, hostID: 65536, size: 65536 }], "uid"); // fine
 * checkIdMappings([{ containerID: 1, hostID: 65536, size: 65536 }], "uid"); // throws
 * ```
 */
export function checkIdMappings(
  maps: readonly LinuxIdMapping[],
  kind: "uid" | "gid",
  f = `${kind}Mappings`,
): void {
  if (maps.length !== 1) {
    invalid(`${f}: exactly one mapping is supported, got ${maps.length}`);
  }
  const m = maps[0];
  requireInt(m.containerID, `${f}[0].containerID`, 0, 0xffffffff);
  requireInt(m.hostID, `${f}[0].hostID`, 0, 0xffffffff);
  requireInt(m.size, `${f}[0].size`, 1, 0xffffffff);
  if (m.containerID !== 0) {
    invalid(`${f}[0]: container ${kind} 0 must be mapped (starts at ${m.containerID})`);
  }
  if (m.hostID + m.size > 0x100000000) invalid(`${f}[0]: host ${kind}s run past 2^32`);
  if (m.hostID === 0) {
    invalid(`${f}[0]: host ${kind} 0 (the node's root) must not be mapped into a pod`);
  }
}

/**
 * Raises a wanted oom_score_adj to what the daemon may set: a process cannot lower it below
 * its own value without CAP_SYS_RESOURCE, and runc would fail the whole container. Returns
 * the value to use and whether it was raised, so the caller can log that once.
 *
 * @example
 * ```ts
 * import { clampOomScoreAdj } from "./builder.ts";
 * clampOomScoreAdj(-999, 0); // { value: 0, clamped: true }
 * clampOomScoreAdj(1000, -500); // { value: 1000, clamped: false }
 * ```
 */
export function clampOomScoreAdj(
  wanted: number,
  daemonCurrent: number,
): { value: number; clamped: boolean } {
  return wanted < daemonCurrent
    ? { value: daemonCurrent, clamped: true }
    : { value: wanted, clamped: false };
}

/**
 * Lexically cleans an absolute path ("/a//b/../c/" → "/a/c") so mounts on the same place
 * compare equal however they are spelled.
 *
 * @example
 * ```ts
 * import { cleanPath } from "./builder.ts";
 * cleanPath("/dev//shm/"); // "/dev/shm"
 * ```
 */
export function cleanPath(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

function invalid(msg: string): never {
  throw new InvalidArgumentError(msg);
}

function requireAbsolute(p: unknown, field: string): string {
  if (typeof p !== "string" || !p.startsWith("/")) {
    invalid(`${field} must be absolute: got ${JSON.stringify(p)}`);
  }
  return p;
}

function requireInt(v: number, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    invalid(`${field} must be an integer in ${min}..${max}: got ${v}`);
  }
  return v;
}

function checkStrings(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    invalid(`${field} must be a list of strings`);
  }
  return v as string[];
}

/** The process arguments, CRI semantics. */
function processArgs(o: SpecOptions): string[] {
  const img = o.image ?? {};
  const command = o.command === undefined ? [] : checkStrings(o.command, "command");
  const args = o.args === undefined ? [] : checkStrings(o.args, "args");
  let out: string[];
  // A command replaces the whole image invocation: the image Cmd was written as arguments for
  // the image Entrypoint and makes no sense after another program.
  if (command.length > 0) out = [...command, ...args];
  else if (args.length > 0) out = [...(img.Entrypoint ?? []), ...args];
  else out = [...(img.Entrypoint ?? []), ...(img.Cmd ?? [])];
  if (out.length === 0) {
    invalid(
      `container ${o.id}: no command specified: the image has no Entrypoint or Cmd and none was given`,
    );
  }
  if (out[0] === "") {
    invalid(`container ${o.id}: the command's first element (the program) is empty`);
  }
  return out;
}

/** Image env, then overrides; later values of a key replace earlier ones in place. */
function processEnv(o: SpecOptions, home: string): string[] {
  const env = new Map<string, string>();
  const set = (entry: string) => {
    const eq = entry.indexOf("=");
    const key = eq < 0 ? entry : entry.slice(0, eq);
    if (key === "") return;
    env.set(key, entry); // an existing key keeps its place, as containerd replaces in place
  };
  // HOSTNAME first so an image or the user can still override it (containerd's order).
  if (o.hostname) set(`HOSTNAME=${o.hostname}`);
  for (const e of o.image?.Env ?? []) set(e);
  for (const [i, kv] of (o.env ?? []).entries()) {
    if (typeof kv?.key !== "string" || kv.key === "" || kv.key.includes("=")) {
      invalid(`env[${i}].key must be a non-empty name without "=": got ${JSON.stringify(kv?.key)}`);
    }
    if (typeof kv.value !== "string") invalid(`env[${i}].value must be a string`);
    set(`${kv.key}=${kv.value}`);
  }
  if (!env.has("PATH")) env.set("PATH", `PATH=${DEFAULT_PATH}`);
  if (!env.has("HOME")) env.set("HOME", `HOME=${home}`);
  return [...env.values()];
}

const DEFAULT_NAMESPACES: Record<NamespaceKind, NamespaceMode> = {
  pid: "new",
  ipc: "new",
  uts: "new",
  network: "new",
  mount: "new",
  // A cgroup namespace is only worth it on cgroup v2; on v1 (this project's dev hosts)
  // containerd shares the host's, and the caller opts in.
  cgroup: "host",
  // The host's unless a pod asks for its own (CRI userns_options POD): see `idMappings`.
  user: "host",
};

function namespaces(
  o: SpecOptions,
): { list: LinuxNamespace[]; modes: Record<NamespaceKind, NamespaceMode> } {
  const modes = { ...DEFAULT_NAMESPACES, ...(o.cgroupV2 ? { cgroup: "new" as const } : {}) };
  for (const [k, v] of Object.entries(o.namespaces ?? {})) {
    if (!(k in DEFAULT_NAMESPACES)) invalid(`namespaces.${k}: unknown namespace kind`);
    if (v === undefined) continue;
    if (v !== "new" && v !== "host") requireAbsolute(v, `namespaces.${k}`);
    modes[k as NamespaceKind] = v;
  }
  if (modes.mount === "host") {
    invalid(
      "namespaces.mount cannot be host: the container's rootfs needs its own mount namespace",
    );
  }
  const list: LinuxNamespace[] = [];
  if (modes.user === "new" && !o.idMappings) {
    invalid("namespaces.user is new: idMappings (uids and gids) are required");
  }
  for (const k of ["user", "pid", "ipc", "uts", "network", "mount", "cgroup"] as const) {
    const m = modes[k];
    if (m === "host") continue;
    const type: NamespaceType = k;
    list.push(m === "new" ? { type } : { type, path: m });
  }
  return { list, modes };
}

function defaultMounts(o: SpecOptions, privileged: boolean): Mount[] {
  const shm: Mount = o.shmPath !== undefined
    ? {
      destination: "/dev/shm",
      type: "bind",
      source: requireAbsolute(o.shmPath, "shmPath"),
      options: ["rbind", "rprivate", "rw"],
    }
    : {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    };
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    shm,
    {
      destination: "/dev/mqueue",
      type: "mqueue",
      source: "mqueue",
      options: ["nosuid", "noexec", "nodev"],
    },
    {
      destination: "/sys",
      type: "sysfs",
      source: "sysfs",
      options: ["nosuid", "noexec", "nodev", privileged ? "rw" : "ro"],
    },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"],
    },
  ];
}

function userMount(m: UserMount, i: number): Mount {
  const f = `mounts[${i}]`;
  const destination = cleanPath(requireAbsolute(m.destination, `${f}.destination`));
  if (destination === "/") invalid(`${f}.destination must not be "/" (that is the rootfs)`);
  const type = m.type ?? "bind";
  const extra = m.options === undefined ? [] : checkStrings(m.options, `${f}.options`);
  const rw = m.readonly ? "ro" : "rw";
  if (type === "tmpfs") {
    if (m.propagation !== undefined) invalid(`${f}.propagation applies to bind mounts only`);
    return {
      destination,
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "nodev", ...extra, rw],
    };
  }
  if (type !== "bind") invalid(`${f}.type must be "bind" or "tmpfs": got ${JSON.stringify(type)}`);
  const source = requireAbsolute(m.source, `${f}.source`);
  const propagation = m.propagation ?? "rprivate";
  if (!["rprivate", "rslave", "rshared"].includes(propagation)) {
    invalid(
      `${f}.propagation must be rprivate, rslave or rshared: got ${JSON.stringify(propagation)}`,
    );
  }
  if (m.recursiveReadonly) {
    if (!m.readonly) invalid(`${f}: a recursive read-only mount must also be read-only`);
    if (propagation !== "rprivate") {
      invalid(
        `${f}: a recursive read-only mount needs private propagation (got ${propagation})`,
      );
    }
    return { destination, type: "bind", source, options: ["rbind", propagation, ...extra, "rro"] };
  }
  return { destination, type: "bind", source, options: ["rbind", propagation, ...extra, rw] };
}

function isUnder(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent === "/" ? "/" : `${parent}/`);
}

function depth(p: string): number {
  return p === "/" ? 0 : p.split("/").length - 1;
}

function mounts(
  o: SpecOptions,
  privileged: boolean,
): { list: Mount[]; rootfsPropagation?: string } {
  const user = (o.mounts ?? []).map(userMount);
  const seen = new Map<string, number>();
  user.forEach((m, i) => {
    const prev = seen.get(m.destination);
    if (prev !== undefined) {
      invalid(`mounts[${i}].destination ${m.destination} duplicates mounts[${prev}]`);
    }
    seen.set(m.destination, i);
  });
  // A user mount on a default's destination, or on a parent of it (e.g. /dev), replaces it:
  // applied later, the user's mount would otherwise hide or be shadowed by the default.
  const defaults = defaultMounts(o, privileged).filter((d) =>
    !user.some((u) => isUnder(d.destination, u.destination))
  );
  // Parents before children, keeping the caller's order otherwise (a stable sort).
  const ordered = [...user].sort((a, b) => depth(a.destination) - depth(b.destination));
  // Propagation into/out of the container needs the rootfs mount itself to propagate.
  let rootfsPropagation: string | undefined;
  const props = user.flatMap((m) => m.options ?? []);
  if (props.includes("rshared")) rootfsPropagation = "rshared";
  else if (props.includes("rslave")) rootfsPropagation = "rslave";
  return { list: [...defaults, ...ordered], rootfsPropagation };
}

/**
 * The device cgroup rules of an unprivileged container: deny everything, then allow mknod
 * of any device (creating a node grants nothing without read/write) and the basic character
 * devices every program expects.
 *
 * @example
 * ```ts
 * import { DEFAULT_DEVICE_RULES } from "./builder.ts";
 * DEFAULT_DEVICE_RULES[0]; // { allow: false, access: "rwm" }
 * ```
 */
export const DEFAULT_DEVICE_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: false, access: "rwm" },
  { allow: true, type: "c", access: "m" },
  { allow: true, type: "b", access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }, // /dev/null
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" }, // /dev/zero
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" }, // /dev/full
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" }, // /dev/random
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" }, // /dev/urandom
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" }, // /dev/tty
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" }, // /dev/ptmx
  { allow: true, type: "c", major: 136, access: "rwm" }, // /dev/pts/*
];

function devices(
  o: SpecOptions,
  privileged: boolean,
  userns: boolean,
): { nodes: LinuxDevice[]; rules: LinuxDeviceCgroup[]; binds: Mount[] } {
  const nodes: LinuxDevice[] = [];
  const binds: Mount[] = [];
  const rules: LinuxDeviceCgroup[] = privileged
    ? [{ allow: true, access: "rwm" }]
    : DEFAULT_DEVICE_RULES.map((r) => ({ ...r }));
  for (const [i, d] of (o.devices ?? []).entries()) {
    const f = `devices[${i}]`;
    const path = cleanPath(requireAbsolute(d.path, `${f}.path`));
    if (!["c", "b", "p", "u"].includes(d.type)) {
      invalid(`${f}.type must be c, b, p or u: got ${JSON.stringify(d.type)}`);
    }
    requireInt(d.major, `${f}.major`, 0, 0xfff);
    requireInt(d.minor, `${f}.minor`, 0, 0xfffff);
    const perms = d.permissions ?? "rwm";
    if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) {
      invalid(`${f}.permissions must be a combination of r, w and m: got ${JSON.stringify(perms)}`);
    }
    const node: LinuxDevice = { path, type: d.type, major: d.major, minor: d.minor };
    if (d.fileMode !== undefined) {
      node.fileMode = requireInt(d.fileMode, `${f}.fileMode`, 0, 0o7777);
    }
    if (d.uid !== undefined) node.uid = requireInt(d.uid, `${f}.uid`, 0, 0xfffffffe);
    if (d.gid !== undefined) node.gid = requireInt(d.gid, `${f}.gid`, 0, 0xfffffffe);
    if (userns) {
      const source = requireAbsolute(d.hostPath ?? path, `${f}.hostPath`);
      binds.push({ destination: path, type: "bind", source, options: ["rbind", "rprivate", "rw"] });
    } else {
      nodes.push(node);
    }
    if (!privileged && (d.type === "c" || d.type === "b")) {
      rules.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: perms });
    }
  }
  return { nodes, rules, binds };
}

const HOOK_POINTS = [
  "prestart",
  "createRuntime",
  "createContainer",
  "startContainer",
  "poststart",
  "poststop",
] as const;

function hooks(o: SpecOptions): Hooks | undefined {
  if (o.hooks === undefined) return undefined;
  const out: Hooks = {};
  for (const [point, list] of Object.entries(o.hooks)) {
    if (!(HOOK_POINTS as readonly string[]).includes(point)) {
      invalid(`hooks.${point}: unknown hook point (${HOOK_POINTS.join(", ")})`);
    }
    if (list === undefined) continue;
    if (!Array.isArray(list)) invalid(`hooks.${point} must be a list`);
    out[point as keyof Hooks] = list.map((h, i): Hook => {
      const f = `hooks.${point}[${i}]`;
      const hook: Hook = { path: cleanPath(requireAbsolute(h?.path, `${f}.path`)) };
      if (h.args !== undefined) hook.args = [...checkStrings(h.args, `${f}.args`)];
      if (h.env !== undefined) {
        hook.env = [...checkStrings(h.env, `${f}.env`)];
        hook.env.forEach((e, j) => {
          if (e.indexOf("=") <= 0) {
            invalid(`${f}.env[${j}] must be KEY=VALUE: got ${JSON.stringify(e)}`);
          }
        });
      }
      if (h.timeout !== undefined) hook.timeout = requireInt(h.timeout, `${f}.timeout`, 1);
      return hook;
    });
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

const CPUSET = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
const PAGE_SIZE = /^\d+(KB|MB|GB|TB|PB)$/;

function resources(o: SpecOptions): LinuxResources {
  const r = o.resources ?? {};
  const out: LinuxResources = {};
  if (r.cpu) {
    const c = r.cpu;
    const cpu: NonNullable<LinuxResources["cpu"]> = {};
    // Kernel ranges (v1 cpu.shares 2..262144, CFS period 1ms..1s, quota >= 1ms or -1), checked
    // here so the user gets the field name instead of a write error from runc.
    if (c.shares !== undefined && c.shares !== 0) {
      cpu.shares = requireInt(c.shares, "resources.cpu.shares", 2, 262144);
    }
    if (c.period !== undefined && c.period !== 0) {
      cpu.period = requireInt(c.period, "resources.cpu.period", 1000, 1000000);
    }
    if (c.quota !== undefined && c.quota !== 0) {
      if (c.quota !== -1) requireInt(c.quota, "resources.cpu.quota", 1000);
      cpu.quota = c.quota;
    }
    if (c.cpus !== undefined && c.cpus !== "") {
      if (!CPUSET.test(c.cpus)) {
        invalid(
          `resources.cpu.cpus must be a cpu list like "0-2,4": got ${JSON.stringify(c.cpus)}`,
        );
      }
      cpu.cpus = c.cpus;
    }
    if (c.mems !== undefined && c.mems !== "") {
      if (!CPUSET.test(c.mems)) {
        invalid(`resources.cpu.mems must be a node list like "0-1": got ${JSON.stringify(c.mems)}`);
      }
      cpu.mems = c.mems;
    }
    if (Object.keys(cpu).length > 0) out.cpu = cpu;
  }
  if (r.memory) {
    const m = r.memory;
    const mem: NonNullable<LinuxResources["memory"]> = {};
    if (m.limit !== undefined && m.limit !== 0) {
      if (m.limit !== -1) requireInt(m.limit, "resources.memory.limit", 1);
      mem.limit = m.limit;
    }
    if (m.reservation !== undefined && m.reservation !== 0) {
      mem.reservation = requireInt(m.reservation, "resources.memory.reservation", 1);
    }
    if (m.swap !== undefined && m.swap !== 0) {
      if (m.swap !== -1) {
        requireInt(m.swap, "resources.memory.swap", 1);
        if (mem.limit === undefined || mem.limit === -1) {
          invalid("resources.memory.swap needs resources.memory.limit (swap is memory+swap)");
        }
        if (m.swap < mem.limit) {
          invalid(
            `resources.memory.swap (${m.swap}) must be >= resources.memory.limit (${mem.limit}): it counts memory+swap`,
          );
        }
      }
      mem.swap = m.swap;
    } else if (mem.limit !== undefined && mem.limit > 0 && o.swapAccounting !== false) {
      // No swap asked for: memory+swap = memory, so the limit is a real limit (containerd).
      mem.swap = mem.limit;
    }
    if (Object.keys(mem).length > 0) out.memory = mem;
  }
  if (r.pids && r.pids.limit !== 0) {
    if (r.pids.limit !== -1) requireInt(r.pids.limit, "resources.pids.limit", 1);
    out.pids = { limit: r.pids.limit };
  }
  if (r.hugepageLimits && r.hugepageLimits.length > 0) {
    out.hugepageLimits = r.hugepageLimits.map((h, i) => {
      if (typeof h.pageSize !== "string" || !PAGE_SIZE.test(h.pageSize)) {
        invalid(
          `resources.hugepageLimits[${i}].pageSize must look like "2MB" or "1GB": got ${
            JSON.stringify(h.pageSize)
          }`,
        );
      }
      return {
        pageSize: h.pageSize,
        limit: requireInt(h.limit, `resources.hugepageLimits[${i}].limit`, 0),
      };
    });
  }
  if (r.blockIO?.weight !== undefined && r.blockIO.weight !== 0) {
    out.blockIO = { weight: requireInt(r.blockIO.weight, "resources.blockIO.weight", 10, 1000) };
  }
  if (r.unified && Object.keys(r.unified).length > 0) {
    for (const [k, v] of Object.entries(r.unified)) {
      if (k === "" || k.includes("/") || typeof v !== "string") {
        invalid(
          `resources.unified[${JSON.stringify(k)}] must be a cgroup file name with a string value`,
        );
      }
    }
    out.unified = { ...r.unified };
  }
  return out;
}

/** runc refuses namespaced sysctls for a namespace the container shares with the host. */
function sysctls(
  o: SpecOptions,
  modes: Record<NamespaceKind, NamespaceMode>,
): Record<string, string> | undefined {
  if (!o.sysctls || Object.keys(o.sysctls).length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.sysctls)) {
    if (!/^[a-z0-9_]+([./][a-zA-Z0-9_\-:+*]+)+$/.test(k)) {
      invalid(`sysctls[${JSON.stringify(k)}]: not a sysctl name`);
    }
    if (typeof v !== "string") invalid(`sysctls[${JSON.stringify(k)}] must be a string`);
    const need = k.startsWith("net.")
      ? "network"
      : /^(kernel\.(msg|sem|shm)|fs\.mqueue\.)/.test(k)
      ? "ipc"
      : /^kernel\.(hostname|domainname)$/.test(k)
      ? "uts"
      : undefined;
    if (need && modes[need] === "host") {
      invalid(
        `sysctls[${
          JSON.stringify(k)
        }] needs a private ${need} namespace (namespaces.${need} is host)`,
      );
    }
    out[k] = v;
  }
  return out;
}

function rlimits(o: SpecOptions): Rlimit[] {
  const list = o.rlimits ?? DEFAULT_RLIMITS;
  const seen = new Set<string>();
  return list.map((r, i) => {
    const f = `rlimits[${i}]`;
    if (typeof r.type !== "string" || !/^RLIMIT_[A-Z]+$/.test(r.type)) {
      invalid(`${f}.type must be an RLIMIT_* name: got ${JSON.stringify(r.type)}`);
    }
    if (seen.has(r.type)) invalid(`${f}.type ${r.type} is given twice`);
    seen.add(r.type);
    requireInt(r.soft, `${f}.soft`, 0);
    requireInt(r.hard, `${f}.hard`, 0);
    if (r.soft > r.hard) invalid(`${f}: soft (${r.soft}) must be <= hard (${r.hard})`);
    const ceiling = o.rlimitCeiling?.[r.type];
    if (ceiling === undefined) return { type: r.type, soft: r.soft, hard: r.hard };
    return { type: r.type, soft: Math.min(r.soft, ceiling), hard: Math.min(r.hard, ceiling) };
  });
}

function capabilitySet(o: SpecOptions, privileged: boolean): string[] {
  const host = o.hostCapabilities === undefined
    ? ALL_CAPABILITIES
    : o.hostCapabilities.map((c, i) => normalizeCapability(c, `hostCapabilities[${i}]`));
  if (privileged) return sortCapabilities(host);
  const hostSet = new Set(host);
  const added = (o.capabilities?.add ?? []).map((c, i) =>
    normalizeCapability(c, `capabilities.add[${i}]`)
  );
  for (const c of added) {
    if (c !== "ALL" && !hostSet.has(c)) {
      throw new FailedPreconditionError(
        `capabilities: cannot add ${c}: the daemon does not hold it`,
      );
    }
  }
  const caps = applyCapabilityChanges(DEFAULT_CAPABILITIES, o.capabilities ?? {}, host);
  // A default the daemon lacks is left out quietly: runc could not grant it either.
  return caps.filter((c) => hostSet.has(c));
}

/**
 * Builds the runtime spec (config.json) for one container. Validates every input and throws
 * InvalidArgumentError naming the field (`mounts[2].destination must be absolute`, …).
 *
 * Rules, in short: args follow CRI (command replaces Entrypoint and drops Cmd; args alone
 * replace Cmd); env is image then overrides with PATH and HOME filled in; the user is resolved
 * from the passwd/group texts; capabilities are the default set with add/drop, or all held
 * ones when privileged; privileged also means no seccomp, no masked/readonly paths, every
 * device allowed and rw /sys and cgroup; user mounts replace defaults on the same place.
 *
 * @throws InvalidArgumentError for invalid options; FailedPreconditionError when a capability
 * to add is not held by the daemon.
 * @example
 * ```ts
 * import { buildSpec } from "./builder.ts";
 * const spec = buildSpec({
 *   id: "web",
 *   rootfs: { path: "rootfs", readonly: true },
 *   hostname: "web-0",
 *   image: { Entrypoint: ["nginx"], Cmd: ["-g", "daemon off;"], User: "www" },
 *   passwd: "www:x:33:33::/var/www:/bin/false\n",
 *   capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] },
 *   cgroupsPath: "/k8scontainerd/web",
 *   oomScoreAdj: -999,
 *   oomScoreAdjFloor: 0,
 * });
 * spec.process!.user; // { uid: 33, gid: 33, additionalGids: [33] }
 * ```
 */
export function buildSpec(o: SpecOptions): Spec {
  if (typeof o.id !== "string" || o.id === "") invalid("id must be a non-empty string");
  if (typeof o.rootfs?.path !== "string" || o.rootfs.path === "") {
    invalid("rootfs.path must be a non-empty path");
  }
  const privileged = o.privileged === true;

  const requested: UserRequest = o.user ?? o.image?.User ?? "";
  const user = resolveUser(
    requested,
    o.passwd,
    o.group,
    o.supplementalGroups ?? [],
    o.supplementalGroupsPolicy === "Strict",
  );
  const cwd = o.workingDir || o.image?.WorkingDir || "/";
  requireAbsolute(cwd, o.workingDir ? "workingDir" : "image WorkingDir");

  const caps = capabilitySet(o, privileged);
  const ns = namespaces(o);
  const mnt = mounts(o, privileged);
  const dev = devices(o, privileged, ns.modes.user !== "host");
  const res = resources(o);
  res.devices = dev.rules;

  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: o.terminal === true,
      user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
      args: processArgs(o),
      env: processEnv(o, user.home),
      cwd,
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      rlimits: rlimits(o),
      noNewPrivileges: o.noNewPrivileges === true,
    },
    root: { path: o.rootfs.path, readonly: o.rootfs.readonly === true },
    mounts: [...mnt.list, ...dev.binds],
    linux: { namespaces: ns.list, resources: res },
  };
  const proc = spec.process!;
  const linux = spec.linux!;

  if (o.hostname !== undefined && o.hostname !== "") {
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(o.hostname)) {
      invalid(
        `hostname ${JSON.stringify(o.hostname)} must be at most 63 letters, digits, "-" or "."`,
      );
    }
    // Only a container with its own UTS namespace may set it; one joining the sandbox's
    // inherits the name, and one on the host's must not rename the node.
    if (ns.modes.uts === "new") spec.hostname = o.hostname;
  }
  if (o.apparmorProfile) proc.apparmorProfile = o.apparmorProfile;
  if (o.selinuxLabel) proc.selinuxLabel = o.selinuxLabel;
  if (o.mountLabel) linux.mountLabel = o.mountLabel;
  if (o.oomScoreAdj !== undefined) {
    requireInt(o.oomScoreAdj, "oomScoreAdj", -1000, 1000);
    proc.oomScoreAdj = o.oomScoreAdjFloor === undefined ? o.oomScoreAdj : clampOomScoreAdj(
      o.oomScoreAdj,
      requireInt(o.oomScoreAdjFloor, "oomScoreAdjFloor", -1000, 1000),
    ).value;
  }
  if (o.cgroupsPath !== undefined && o.cgroupsPath !== "") {
    // cgroupfs paths are absolute; the systemd driver's form is "slice:prefix:name".
    if (!o.cgroupsPath.startsWith("/") && o.cgroupsPath.split(":").length !== 3) {
      invalid(
        `cgroupsPath must be absolute ("/k8scontainerd/<id>") or "slice:prefix:name": got ${
          JSON.stringify(o.cgroupsPath)
        }`,
      );
    }
    linux.cgroupsPath = o.cgroupsPath;
  }
  if (dev.nodes.length > 0) linux.devices = dev.nodes;
  if (o.idMappings && ns.modes.user !== "host") {
    checkIdMappings(o.idMappings.uids, "uid");
    checkIdMappings(o.idMappings.gids, "gid");
    linux.uidMappings = o.idMappings.uids.map((m) => ({ ...m }));
    linux.gidMappings = o.idMappings.gids.map((m) => ({ ...m }));
  }
  if (mnt.rootfsPropagation) linux.rootfsPropagation = mnt.rootfsPropagation;
  const sys = sysctls(o, ns.modes);
  if (sys) linux.sysctl = sys;

  if (!privileged) {
    linux.maskedPaths = (o.maskedPaths === undefined
      ? [...DEFAULT_MASKED_PATHS]
      : checkStrings(o.maskedPaths, "maskedPaths"))
      .map((p, i) =>
        requireAbsolute(p, `maskedPaths[${i}]`)
      );
    linux.readonlyPaths = (o.readonlyPaths === undefined
      ? [...DEFAULT_READONLY_PATHS]
      : checkStrings(o.readonlyPaths, "readonlyPaths"))
      .map((p, i) => requireAbsolute(p, `readonlyPaths[${i}]`));
    const choice = o.seccomp ?? { type: "RuntimeDefault" };
    if (choice.type === "RuntimeDefault") {
      const arch = o.arch ?? (Deno.build.arch === "aarch64" ? "arm64" : "amd64");
      linux.seccomp = defaultSeccompProfile(arch, caps);
    } else if (choice.type === "Localhost") {
      linux.seccomp = choice.profile;
    } else if (choice.type !== "Unconfined") {
      invalid(
        `seccomp.type must be RuntimeDefault, Unconfined or Localhost: got ${
          JSON.stringify((choice as { type: unknown }).type)
        }`,
      );
    }
  }
  const hk = hooks(o);
  if (hk) spec.hooks = hk;
  if (o.annotations && Object.keys(o.annotations).length > 0) {
    spec.annotations = { ...o.annotations };
  }
  return spec;
}
