/**
 * CDI device names: a fully qualified name is `vendor/class=name` (`nvidia.com/gpu=0`), where
 * `vendor/class` is the spec file's `kind`. The character rules are the CDI library's
 * (tags.cncf.io/container-device-interface/pkg/parser).
 *
 * @example
 * ```ts
 * import { parseQualifiedName } from "./name.ts";
 * parseQualifiedName("vendor.com/device=foo"); // { vendor: "vendor.com", class: "device", name: "foo", kind: "vendor.com/device" }
 * ```
 */
import { InvalidArgumentError } from "../errdefs/errors.ts";

/**
 * A parsed qualified device name.
 *
 * @example
 * ```ts
 * import type { QualifiedName } from "./name.ts";
 * const q: QualifiedName = { vendor: "vendor.com", class: "device", name: "foo", kind: "vendor.com/device" };
 * ```
 */
export interface QualifiedName {
  vendor: string;
  class: string;
  name: string;
  /** `vendor/class`, the spec's kind. */
  kind: string;
}

const VENDOR = /^[A-Za-z](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const CLASS = /^[A-Za-z](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$/;
const DEVICE = /^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$/;

/**
 * Why `vendor` is not a valid CDI vendor name, or undefined when it is: it starts with a
 * letter, ends with a letter or digit, and holds letters, digits, `.`, `_` and `-`.
 *
 * @example
 * ```ts
 * import { vendorNameProblem } from "./name.ts";
 * vendorNameProblem("vendor.com"); // undefined
 * vendorNameProblem("-x"); // "vendor \"-x\" must start with a letter, end with a letter or digit, ..."
 * ```
 */
export function vendorNameProblem(vendor: string): string | undefined {
  if (VENDOR.test(vendor)) return undefined;
  return `vendor ${
    JSON.stringify(vendor)
  } must start with a letter, end with a letter or digit, and hold only letters, digits, ".", "_" and "-"`;
}

/**
 * Why `cls` is not a valid CDI class name, or undefined when it is: like a vendor name
 * without `.`.
 *
 * @example
 * ```ts
 * import { classNameProblem } from "./name.ts";
 * classNameProblem("gpu"); // undefined
 * ```
 */
export function classNameProblem(cls: string): string | undefined {
  if (CLASS.test(cls)) return undefined;
  return `class ${
    JSON.stringify(cls)
  } must start with a letter, end with a letter or digit, and hold only letters, digits, "_" and "-"`;
}

/**
 * Why `name` is not a valid CDI device name, or undefined when it is: it starts and ends with
 * a letter or digit and holds letters, digits, `_`, `-`, `.` and `:`.
 *
 * @example
 * ```ts
 * import { deviceNameProblem } from "./name.ts";
 * deviceNameProblem("0"); // undefined
 * deviceNameProblem("a b"); // "device name \"a b\" must ..."
 * ```
 */
export function deviceNameProblem(name: string): string | undefined {
  if (DEVICE.test(name)) return undefined;
  return `device name ${
    JSON.stringify(name)
  } must start and end with a letter or digit and hold only letters, digits, "_", "-", "." and ":"`;
}

/**
 * Splits a kind (`vendor/class`), or says why it is malformed.
 *
 * @example
 * ```ts
 * import { parseKind } from "./name.ts";
 * parseKind("vendor.com/device"); // { vendor: "vendor.com", class: "device" }
 * parseKind("nokind"); // { problem: "..." }
 * ```
 */
export function parseKind(
  kind: string,
): { vendor: string; class: string } | { problem: string } {
  const slash = kind.indexOf("/");
  if (slash < 0) return { problem: `kind ${JSON.stringify(kind)} is not of the form vendor/class` };
  const vendor = kind.slice(0, slash);
  const cls = kind.slice(slash + 1);
  const problem = vendorNameProblem(vendor) ?? classNameProblem(cls);
  return problem ? { problem: `kind ${JSON.stringify(kind)}: ${problem}` } : { vendor, class: cls };
}

/**
 * Parses a fully qualified CDI device name.
 *
 * @throws InvalidArgumentError naming the device and what is wrong with it.
 * @example
 * ```ts
 * import { parseQualifiedName } from "./name.ts";
 * parseQualifiedName("nvidia.com/gpu=all").kind; // "nvidia.com/gpu"
 * ```
 */
export function parseQualifiedName(device: string): QualifiedName {
  const eq = device.indexOf("=");
  if (eq < 0) {
    throw new InvalidArgumentError(
      `CDI device ${JSON.stringify(device)} is not a qualified name (vendor.com/class=name)`,
    );
  }
  const kind = parseKind(device.slice(0, eq));
  const problem = "problem" in kind ? kind.problem : deviceNameProblem(device.slice(eq + 1));
  if (problem) {
    throw new InvalidArgumentError(
      `CDI device ${JSON.stringify(device)} is not a valid qualified name: ${problem}`,
    );
  }
  const k = kind as { vendor: string; class: string };
  return {
    vendor: k.vendor,
    class: k.class,
    name: device.slice(eq + 1),
    kind: `${k.vendor}/${k.class}`,
  };
}
