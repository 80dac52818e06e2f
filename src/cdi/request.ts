/**
 * Which CDI devices a CRI container asks for: `ContainerConfig.CDIDevices` (the kubelet's
 * field since Kubernetes 1.28) and, the older path, annotations `cdi.k8s.io/<anything>` whose
 * value is a comma-separated list of qualified device names. containerd honours both; so do we,
 * the field's devices first, then the annotations' by key, each device once.
 *
 * @example
 * ```ts
 * import { requestedDevices } from "./request.ts";
 * requestedDevices({
 *   CDIDevices: [{ name: "vendor.com/device=foo" }],
 *   annotations: { "cdi.k8s.io/extra": "vendor.com/device=bar,vendor.com/device=foo" },
 * }); // ["vendor.com/device=foo", "vendor.com/device=bar"]
 * ```
 */
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { parseQualifiedName } from "./name.ts";

/**
 * The annotation key prefix of the older request form.
 *
 * @example
 * ```ts
 * import { CDI_ANNOTATION_PREFIX } from "./request.ts";
 * `${CDI_ANNOTATION_PREFIX}gpu`; // "cdi.k8s.io/gpu"
 * ```
 */
export const CDI_ANNOTATION_PREFIX = "cdi.k8s.io/";

/**
 * The device names a container config asks for, validated and without duplicates.
 *
 * @throws InvalidArgumentError naming a malformed device (and the annotation it came from).
 * @example
 * ```ts
 * import { requestedDevices } from "./request.ts";
 * requestedDevices({ CDIDevices: [], annotations: {} }); // []
 * ```
 */
export function requestedDevices(config: {
  CDIDevices?: { name: string }[];
  annotations?: Record<string, string>;
}): string[] {
  const out: string[] = [];
  const add = (name: string, from: string) => {
    try {
      parseQualifiedName(name);
    } catch (e) {
      throw new InvalidArgumentError(`${from}: ${(e as Error).message}`);
    }
    if (!out.includes(name)) out.push(name);
  };
  for (const [i, d] of (config.CDIDevices ?? []).entries()) add(d.name, `CDI_devices[${i}]`);
  const keys = Object.keys(config.annotations ?? {})
    .filter((k) => k.startsWith(CDI_ANNOTATION_PREFIX))
    .sort();
  for (const k of keys) {
    for (const part of config.annotations![k].split(",")) {
      const name = part.trim();
      if (name) add(name, `annotation ${k}`);
    }
  }
  return out;
}
