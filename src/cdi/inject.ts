/**
 * The one call the CRI makes for CDI: the devices a container config asks for, resolved
 * against the spec directories and turned into what the spec builder adds (env, device nodes,
 * mounts, hooks, additional GIDs). Nothing is read when no device is asked for, or CDI is off.
 *
 * @example
 * ```ts
 * import { injectCdi } from "./inject.ts";
 * const inj = await injectCdi(
 *   { enabled: true, specDirs: ["/etc/cdi", "/var/run/cdi"] },
 *   { CDIDevices: [{ name: "vendor.com/device=foo" }], annotations: {} },
 * );
 * console.log(inj.env, inj.devices, inj.mounts, inj.hooks);
 * ```
 */
import type { Logger } from "../log/logger.ts";
import { type CdiInjection, type DeviceStat, editsToInjection, hostDeviceStat } from "./edits.ts";
import { CdiRegistry } from "./registry.ts";
import { requestedDevices } from "./request.ts";

/**
 * CDI settings (config `[cri] enable_cdi` and `cdi_spec_dirs`).
 *
 * @example
 * ```ts
 * import { DEFAULT_CDI_SPEC_DIRS, type CdiOptions } from "./inject.ts";
 * const o: CdiOptions = { enabled: true, specDirs: [...DEFAULT_CDI_SPEC_DIRS] };
 * ```
 */
export interface CdiOptions {
  enabled: boolean;
  /** Read in order; a later directory wins for a device both define. */
  specDirs: string[];
}

/**
 * The spec directories containerd and CRI-O read by default.
 *
 * @example
 * ```ts
 * import { DEFAULT_CDI_SPEC_DIRS } from "./inject.ts";
 * DEFAULT_CDI_SPEC_DIRS; // ["/etc/cdi", "/var/run/cdi"]
 * ```
 */
export const DEFAULT_CDI_SPEC_DIRS: readonly string[] = ["/etc/cdi", "/var/run/cdi"];

/**
 * An injection that adds nothing.
 *
 * @example
 * ```ts
 * import { emptyInjection } from "./inject.ts";
 * emptyInjection().devices; // []
 * ```
 */
export function emptyInjection(): CdiInjection {
  return { env: [], devices: [], mounts: [], additionalGids: [] };
}

/**
 * Resolves the CDI devices of one container config. `opts` undefined means the defaults
 * (enabled, the default directories).
 *
 * @throws InvalidArgumentError for a malformed device name; NotFoundError for an unknown
 * device; FailedPreconditionError for one that cannot be used (see CdiRegistry.resolve and
 * resolveDeviceNode).
 * @example
 * ```ts
 * import { injectCdi } from "./inject.ts";
 * const inj = await injectCdi(undefined, {
 *   annotations: { "cdi.k8s.io/gpu": "nvidia.com/gpu=0" },
 * });
 * ```
 */
export async function injectCdi(
  opts: CdiOptions | undefined,
  config: { CDIDevices?: { name: string }[]; annotations?: Record<string, string> },
  log?: Logger,
  stat: DeviceStat = hostDeviceStat,
): Promise<CdiInjection> {
  const o = opts ?? { enabled: true, specDirs: [...DEFAULT_CDI_SPEC_DIRS] };
  if (!o.enabled) return emptyInjection();
  const names = requestedDevices(config);
  if (names.length === 0) return emptyInjection();
  const registry = await CdiRegistry.read(o.specDirs, log);
  const inj = await editsToInjection(registry.resolve(names), stat);
  log?.debug("CDI devices injected", { devices: names });
  return inj;
}
