/**
 * Linux capability names and the add/drop rules CRI asks for. Pure data and set arithmetic.
 *
 * @example
 * ```ts
 * import { applyCapabilityChanges, DEFAULT_CAPABILITIES } from "./capabilities.ts";
 * applyCapabilityChanges(DEFAULT_CAPABILITIES, { add: ["NET_ADMIN"], drop: ["CAP_KILL"] });
 * ```
 */

import { InvalidArgumentError } from "../../errdefs/errors.ts";

/**
 * Every capability the kernel defines up to Linux 5.9, indexed by its bit number
 * (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40).
 *
 * @example
 * ```ts
 * import { ALL_CAPABILITIES } from "./capabilities.ts";
 * ALL_CAPABILITIES.indexOf("CAP_SYS_ADMIN"); // 21
 * ```
 */
export const ALL_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/**
 * The capabilities a non-privileged container gets (containerd's and Docker's default set).
 *
 * @example
 * ```ts
 * import { DEFAULT_CAPABILITIES } from "./capabilities.ts";
 * DEFAULT_CAPABILITIES.includes("CAP_NET_ADMIN"); // false
 * ```
 */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/**
 * Normalises "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" to "CAP_NET_ADMIN"; "ALL" stays "ALL".
 * `field` names the input in the error for an unknown name.
 *
 * @throws InvalidArgumentError for a name the kernel does not define.
 * @example
 * ```ts
 * import { normalizeCapability } from "./capabilities.ts";
 * normalizeCapability("sys_admin", "capabilities.add[0]"); // "CAP_SYS_ADMIN"
 * ```
 */
export function normalizeCapability(name: string, field: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === "ALL") return "ALL";
  const full = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (!ALL_CAPABILITIES.includes(full)) {
    throw new InvalidArgumentError(`${field}: unknown capability ${JSON.stringify(name)}`);
  }
  return full;
}

/**
 * Capability names from a hex mask as /proc/<pid>/status prints it (CapEff, CapBnd), so the
 * daemon can tell the builder which capabilities it can hand out at all.
 *
 * @example
 * ```ts
 * import { capabilitiesFromMask } from "./capabilities.ts";
 * capabilitiesFromMask("0000000000000021"); // ["CAP_CHOWN", "CAP_KILL"]
 * ```
 */
export function capabilitiesFromMask(hex: string): string[] {
  const clean = hex.trim();
  if (!/^[0-9a-fA-F]+$/.test(clean)) {
    throw new InvalidArgumentError(`capability mask must be hex: got ${JSON.stringify(hex)}`);
  }
  const mask = BigInt(`0x${clean}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/**
 * Applies CRI add/drop lists to a base set, in containerd's order so that combinations work:
 * add "ALL" first, then drop "ALL", then individual adds, then individual drops (a name in
 * both lists ends up dropped). `all` is what "ALL" means (the capabilities the daemon holds).
 * The result is sorted by bit number so the spec is stable.
 *
 * @throws InvalidArgumentError naming the field for an unknown capability.
 * @example
 * ```ts
 * import { applyCapabilityChanges, DEFAULT_CAPABILITIES } from "./capabilities.ts";
 * applyCapabilityChanges(DEFAULT_CAPABILITIES, { add: ["ALL"], drop: ["CHOWN"] }).includes("CAP_CHOWN"); // false
 * ```
 */
export function applyCapabilityChanges(
  base: readonly string[],
  changes: { add?: readonly string[]; drop?: readonly string[] },
  all: readonly string[] = ALL_CAPABILITIES,
): string[] {
  const add = (changes.add ?? []).map((c, i) => normalizeCapability(c, `capabilities.add[${i}]`));
  const drop = (changes.drop ?? []).map((c, i) =>
    normalizeCapability(c, `capabilities.drop[${i}]`)
  );
  let set = new Set(base);
  if (add.includes("ALL")) set = new Set(all);
  if (drop.includes("ALL")) set.clear();
  for (const c of add) if (c !== "ALL") set.add(c);
  for (const c of drop) if (c !== "ALL") set.delete(c);
  return sortCapabilities(set);
}

/**
 * Sorts capability names by bit number (unknown names last, alphabetically).
 *
 * @example
 * ```ts
 * import { sortCapabilities } from "./capabilities.ts";
 * sortCapabilities(["CAP_KILL", "CAP_CHOWN"]); // ["CAP_CHOWN", "CAP_KILL"]
 * ```
 */
export function sortCapabilities(caps: Iterable<string>): string[] {
  const rank = (c: string) => {
    const i = ALL_CAPABILITIES.indexOf(c);
    return i < 0 ? ALL_CAPABILITIES.length : i;
  };
  return [...new Set(caps)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}
