/**
 * Labels: the free-form string maps every metadata object carries, stored as JSON text.
 * Shared rules (containerd's): keys are non-empty, and a key with its value is at most
 * 4096 bytes. When labels are merged, an empty value deletes the key.
 *
 * @example
 * ```ts
 * import { mergeLabels, validateLabels } from "./labels.ts";
 * validateLabels({ "io.cri.image": "managed" });
 * mergeLabels({ a: "1", b: "2" }, { b: "" }); // { a: "1" }
 * ```
 */
import { InvalidArgumentError } from "../errdefs/errors.ts";

/** A label map. */
export type Labels = Record<string, string>;

const MAX_LABEL_BYTES = 4096;
const enc = new TextEncoder();

/**
 * Throws InvalidArgumentError naming the first bad label.
 *
 * @example
 * ```ts
 * validateLabels({ "": "x" }); // throws: label key must not be empty
 * ```
 */
export function validateLabels(labels: Labels, what = "labels"): Labels {
  if (labels === null || typeof labels !== "object" || Array.isArray(labels)) {
    throw new InvalidArgumentError(`${what}: must be a map of strings`);
  }
  for (const [k, v] of Object.entries(labels)) {
    if (k === "") throw new InvalidArgumentError(`${what}: label key must not be empty`);
    if (typeof v !== "string") {
      throw new InvalidArgumentError(`${what}: label "${k}" must have a string value`);
    }
    const n = enc.encode(k).length + enc.encode(v).length;
    if (n > MAX_LABEL_BYTES) {
      throw new InvalidArgumentError(
        `${what}: label "${k}" is ${n} bytes with its value, over the ${MAX_LABEL_BYTES}-byte limit`,
      );
    }
  }
  return labels;
}

/**
 * `base` updated by `changes`, where an empty value deletes the key.
 *
 * @example
 * ```ts
 * mergeLabels({ a: "1" }, { b: "2", a: "" }); // { b: "2" }
 * ```
 */
export function mergeLabels(base: Labels, changes: Labels): Labels {
  const out: Labels = { ...base };
  for (const [k, v] of Object.entries(changes)) {
    if (v === "") delete out[k];
    else out[k] = v;
  }
  return out;
}

/**
 * Parses a labels column (JSON text), tolerating NULL and damage as "no labels".
 *
 * @example
 * ```ts
 * parseLabels('{"a":"1"}'); // { a: "1" }
 * ```
 */
export function parseLabels(text: unknown): Labels {
  if (typeof text !== "string" || text === "") return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? v as Labels : {};
  } catch {
    return {};
  }
}

/**
 * Serialises labels for a labels column, keys sorted so equal maps store equal text.
 *
 * @example
 * ```ts
 * formatLabels({ b: "2", a: "1" }); // '{"a":"1","b":"2"}'
 * ```
 */
export function formatLabels(labels: Labels): string {
  const sorted: Labels = {};
  for (const k of Object.keys(labels).sort()) sorted[k] = labels[k];
  return JSON.stringify(sorted);
}
