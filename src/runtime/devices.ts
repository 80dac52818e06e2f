/**
 * Host device nodes: stat(2) of a device on the host (type, major/minor, mode), shared by CDI
 * device edits (src/cdi/edits.ts) and the CRI's `ContainerConfig.devices` (src/cri/devices.ts).
 *
 * @example
 * ```ts
 * import { hostDeviceStat } from "./devices.ts";
 * await hostDeviceStat("/dev/null"); // { type: "c", major: 1, minor: 3, mode: 438 }
 * ```
 *
 * @module
 */

/**
 * A host device's type, numbers and permission bits.
 *
 * @example
 * ```ts
 * import type { HostDevice } from "./devices.ts";
 * const d: HostDevice = { type: "c", major: 1, minor: 3, mode: 0o666 };
 * ```
 */
export interface HostDevice {
  type: "c" | "b" | "p";
  major: number;
  minor: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
}

/**
 * Looks a device up on the host; throws when it is missing or not a device.
 *
 * @example
 * ```ts
 * import type { DeviceStat } from "./devices.ts";
 * const fake: DeviceStat = () => Promise.resolve({ type: "c", major: 1, minor: 3, mode: 0o666 });
 * ```
 */
export type DeviceStat = (path: string) => Promise<HostDevice>;

/**
 * Splits a Linux dev_t (glibc's encoding: 12-bit major, 20-bit minor) into its numbers.
 *
 * @example
 * ```ts
 * import { splitDevT } from "./devices.ts";
 * splitDevT(0x103); // { major: 1, minor: 3 }
 * ```
 */
export function splitDevT(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/**
 * The real {@link DeviceStat}: stat(2) of the path (symlinks followed, as /dev/dri/by-path
 * entries are links).
 *
 * @example
 * ```ts
 * import { hostDeviceStat } from "./devices.ts";
 * await hostDeviceStat("/dev/null"); // { type: "c", major: 1, minor: 3, mode: 438 }
 * ```
 */
export const hostDeviceStat: DeviceStat = async (path) => {
  const st = await Deno.stat(path);
  const type = st.isCharDevice ? "c" : st.isBlockDevice ? "b" : st.isFifo ? "p" : undefined;
  if (!type) throw new Error("not a device node");
  const { major, minor } = type === "p" ? { major: 0, minor: 0 } : splitDevT(st.rdev ?? 0);
  return { type, major, minor, mode: (st.mode ?? 0) & 0o7777 };
};
