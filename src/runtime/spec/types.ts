/**
 * The subset of the OCI runtime spec (1.0.2) that k8scontainerd writes into a bundle's
 * config.json for runc / crun. Field names are the spec's JSON names, so a `Spec` is
 * serialised with a plain `JSON.stringify`. Only what the builder emits is modelled; the rest
 * of the spec (Windows, VM, …) is left out on purpose so a reader sees what we use.
 *
 * @example
 * ```ts
 * import type { Spec } from "./types.ts";
 * const spec: Spec = {
 *   ociVersion: "1.0.2",
 *   process: { cwd: "/", args: ["sh"], user: { uid: 0, gid: 0 } },
 *   root: { path: "rootfs" },
 * };
 * ```
 */

/**
 * The whole config.json.
 *
 * @example
 * ```ts
 * import type { Spec } from "./types.ts";
 * const s: Spec = { ociVersion: "1.0.2", root: { path: "rootfs" } };
 * ```
 */
export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  mounts?: Mount[];
  /** Lifecycle hooks; only CDI devices bring any (see src/cdi). */
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
}

/**
 * The container's init process.
 *
 * @example
 * ```ts
 * import type { Process } from "./types.ts";
 * const p: Process = { cwd: "/", args: ["id"], env: ["PATH=/bin"], user: { uid: 1000, gid: 1000 } };
 * ```
 */
export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: User;
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: Capabilities;
  rlimits?: Rlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}

/**
 * The numeric identity the process runs as (names are resolved before, see user.ts).
 *
 * @example
 * ```ts
 * import type { User } from "./types.ts";
 * const u: User = { uid: 1000, gid: 1000, additionalGids: [1000, 2000] };
 * ```
 */
export interface User {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
}

/**
 * The capability sets (names like "CAP_CHOWN").
 *
 * @example
 * ```ts
 * import type { Capabilities } from "./types.ts";
 * const c: Capabilities = { bounding: ["CAP_KILL"], effective: ["CAP_KILL"], permitted: ["CAP_KILL"] };
 * ```
 */
export interface Capabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

/**
 * One POSIX resource limit, applied with setrlimit in the container's init.
 *
 * @example
 * ```ts
 * import type { Rlimit } from "./types.ts";
 * const r: Rlimit = { type: "RLIMIT_NOFILE", soft: 1024, hard: 524288 };
 * ```
 */
export interface Rlimit {
  type: string;
  soft: number;
  hard: number;
}

/**
 * The root filesystem: a path (absolute, or relative to the bundle) and whether it is read-only.
 *
 * @example
 * ```ts
 * import type { Root } from "./types.ts";
 * const r: Root = { path: "/run/k8scontainerd/c1/rootfs", readonly: true };
 * ```
 */
export interface Root {
  path: string;
  readonly?: boolean;
}

/**
 * One mount, applied by the runtime in array order (parents before children).
 *
 * @example
 * ```ts
 * import type { Mount } from "./types.ts";
 * const m: Mount = { destination: "/data", type: "bind", source: "/srv/data", options: ["rbind", "rprivate", "ro"] };
 * ```
 */
export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/**
 * A lifecycle hook: a program the runtime runs on the host, with the container's state on stdin.
 *
 * @example
 * ```ts
 * import type { Hook } from "./types.ts";
 * const h: Hook = { path: "/usr/bin/true" };
 * ```
 */
export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

/**
 * Lifecycle hooks by point (createRuntime/createContainer/startContainer are runtime-spec 1.0.2).
 *
 * @example
 * ```ts
 * import type { Hooks } from "./types.ts";
 * const h: Hooks = { poststop: [{ path: "/usr/bin/true" }] };
 * ```
 */
export interface Hooks {
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

/**
 * The Linux-specific part of the spec.
 *
 * @example
 * ```ts
 * import type { Linux } from "./types.ts";
 * const l: Linux = { namespaces: [{ type: "pid" }, { type: "mount" }], cgroupsPath: "/k8scontainerd/c1" };
 * ```
 */
export interface Linux {
  namespaces?: LinuxNamespace[];
  /** With a user namespace: how its ids map to the host's. */
  uidMappings?: LinuxIdMapping[];
  gidMappings?: LinuxIdMapping[];
  devices?: LinuxDevice[];
  cgroupsPath?: string;
  resources?: LinuxResources;
  rootfsPropagation?: string;
  seccomp?: LinuxSeccomp;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
}

/**
 * One range of a user namespace's id mapping: `size` ids from `containerID` inside are
 * `hostID`… outside.
 *
 * @example
 * ```ts
 * import type { LinuxIdMapping } from "./types.ts";
 * const m: LinuxIdMapping = { containerID: 0, hostID: 65536, size: 65536 };
 * ```
 */
export interface LinuxIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/**
 * The namespace kinds the spec knows.
 *
 * @example
 * ```ts
 * import type { NamespaceType } from "./types.ts";
 * const t: NamespaceType = "network";
 * ```
 */
export type NamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup";

/**
 * A namespace the container gets: a new one (no path) or an existing one joined by path.
 * A kind that is absent from the list means "share the runtime's (host) namespace".
 *
 * @example
 * ```ts
 * import type { LinuxNamespace } from "./types.ts";
 * const n: LinuxNamespace = { type: "network", path: "/run/netns/cni-1234" };
 * ```
 */
export interface LinuxNamespace {
  type: NamespaceType;
  path?: string;
}

/**
 * A device node the runtime creates inside the container's /dev.
 *
 * @example
 * ```ts
 * import type { LinuxDevice } from "./types.ts";
 * const d: LinuxDevice = { path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 };
 * ```
 */
export interface LinuxDevice {
  path: string;
  type: "c" | "b" | "u" | "p";
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/**
 * One device-cgroup rule; `major`/`minor` absent means "any" (`*`).
 *
 * @example
 * ```ts
 * import type { LinuxDeviceCgroup } from "./types.ts";
 * const r: LinuxDeviceCgroup = { allow: true, type: "c", major: 1, minor: 3, access: "rwm" };
 * ```
 */
export interface LinuxDeviceCgroup {
  allow: boolean;
  type?: "a" | "c" | "b";
  major?: number;
  minor?: number;
  access?: string;
}

/**
 * Memory limits in bytes. `swap` is memory+swap (the cgroup v1 memsw meaning; runc converts
 * it for cgroup v2); -1 means unlimited.
 *
 * @example
 * ```ts
 * import type { LinuxMemory } from "./types.ts";
 * const m: LinuxMemory = { limit: 64 << 20, swap: 64 << 20 };
 * ```
 */
export interface LinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
}

/**
 * CPU controls: shares (relative weight), quota/period in microseconds, cpuset lists.
 *
 * @example
 * ```ts
 * import type { LinuxCPU } from "./types.ts";
 * const c: LinuxCPU = { shares: 512, quota: 50000, period: 100000, cpus: "0-1" };
 * ```
 */
export interface LinuxCPU {
  shares?: number;
  quota?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
}

/**
 * The pids controller: the most tasks the cgroup may hold (-1 or absent: unlimited).
 *
 * @example
 * ```ts
 * import type { LinuxPids } from "./types.ts";
 * const p: LinuxPids = { limit: 100 };
 * ```
 */
export interface LinuxPids {
  limit: number;
}

/**
 * A hugetlb limit for one page size ("2MB", "1GB"), in bytes.
 *
 * @example
 * ```ts
 * import type { LinuxHugepageLimit } from "./types.ts";
 * const h: LinuxHugepageLimit = { pageSize: "2MB", limit: 4 << 20 };
 * ```
 */
export interface LinuxHugepageLimit {
  pageSize: string;
  limit: number;
}

/**
 * Block I/O controls (only the proportional weight is used).
 *
 * @example
 * ```ts
 * import type { LinuxBlockIO } from "./types.ts";
 * const b: LinuxBlockIO = { weight: 500 };
 * ```
 */
export interface LinuxBlockIO {
  weight?: number;
  leafWeight?: number;
}

/**
 * The cgroup resources the runtime applies to the container's cgroup.
 *
 * @example
 * ```ts
 * import type { LinuxResources } from "./types.ts";
 * const r: LinuxResources = { memory: { limit: 64 << 20 }, pids: { limit: 50 } };
 * ```
 */
export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
  blockIO?: LinuxBlockIO;
  hugepageLimits?: LinuxHugepageLimit[];
  /** cgroup v2 key/value pairs written verbatim (CRI `unified`). */
  unified?: Record<string, string>;
}

/**
 * A libseccomp action name.
 *
 * @example
 * ```ts
 * import type { SeccompAction } from "./types.ts";
 * const a: SeccompAction = "SCMP_ACT_ERRNO";
 * ```
 */
export type SeccompAction =
  | "SCMP_ACT_KILL"
  | "SCMP_ACT_KILL_PROCESS"
  | "SCMP_ACT_KILL_THREAD"
  | "SCMP_ACT_TRAP"
  | "SCMP_ACT_ERRNO"
  | "SCMP_ACT_TRACE"
  | "SCMP_ACT_ALLOW"
  | "SCMP_ACT_LOG"
  | "SCMP_ACT_NOTIFY";

/**
 * A libseccomp argument comparison operator.
 *
 * @example
 * ```ts
 * import type { SeccompOperator } from "./types.ts";
 * const op: SeccompOperator = "SCMP_CMP_MASKED_EQ";
 * ```
 */
export type SeccompOperator =
  | "SCMP_CMP_NE"
  | "SCMP_CMP_LT"
  | "SCMP_CMP_LE"
  | "SCMP_CMP_EQ"
  | "SCMP_CMP_GE"
  | "SCMP_CMP_GT"
  | "SCMP_CMP_MASKED_EQ";

/**
 * A condition on one syscall argument; all args of a rule must hold for it to match.
 *
 * @example
 * ```ts
 * import type { LinuxSeccompArg } from "./types.ts";
 * const a: LinuxSeccompArg = { index: 0, value: 0, op: "SCMP_CMP_EQ" };
 * ```
 */
export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

/**
 * One seccomp rule: an action for a list of syscall names, optionally conditioned on args.
 *
 * @example
 * ```ts
 * import type { LinuxSyscall } from "./types.ts";
 * const s: LinuxSyscall = { names: ["read", "write"], action: "SCMP_ACT_ALLOW" };
 * ```
 */
export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

/**
 * A seccomp filter: the default action and the rules that override it.
 *
 * @example
 * ```ts
 * import type { LinuxSeccomp } from "./types.ts";
 * const s: LinuxSeccomp = {
 *   defaultAction: "SCMP_ACT_ERRNO",
 *   architectures: ["SCMP_ARCH_X86_64"],
 *   syscalls: [{ names: ["exit"], action: "SCMP_ACT_ALLOW" }],
 * };
 * ```
 */
export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: LinuxSyscall[];
}
