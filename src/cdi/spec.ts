/**
 * CDI spec files: parsing (JSON, or YAML, which JSON is a subset of) and validation of the
 * fields k8scontainerd applies. A spec names a `kind` (`vendor.com/class`), the devices of that
 * kind, and container edits (env, device nodes, mounts, hooks, additional GIDs) for the spec
 * as a whole and for each device. Fields the spec format has and we do not apply (annotations)
 * are accepted and ignored; edits we cannot apply (intelRdt, netDevices) are refused when a
 * device that needs them is asked for (see edits.ts), not here.
 *
 * @example
 * ```ts
 * import { parseSpec } from "./spec.ts";
 * const spec = parseSpec(
 *   '{"cdiVersion":"0.6.0","kind":"vendor.com/device","devices":[{"name":"foo","containerEdits":{"env":["FOO=1"]}}]}',
 *   "/etc/cdi/vendor.json",
 * );
 * spec.devices[0].name; // "foo"
 * ```
 */
import { parse as parseYaml } from "yaml";
import { InvalidArgumentError } from "../errdefs/errors.ts";
import { deviceNameProblem, parseKind } from "./name.ts";

/**
 * CDI spec versions this parser reads (the CDI library's list up to 1.1.0).
 *
 * @example
 * ```ts
 * import { CDI_VERSIONS } from "./spec.ts";
 * CDI_VERSIONS.includes("0.6.0"); // true
 * ```
 */
export const CDI_VERSIONS: readonly string[] = [
  "0.3.0",
  "0.4.0",
  "0.5.0",
  "0.6.0",
  "0.7.0",
  "0.8.0",
  "1.0.0",
  "1.1.0",
];

/**
 * A device node to create in the container. `type`, `major` and `minor` may be left out: they
 * are then read from `hostPath` (or `path`) on the host.
 *
 * @example
 * ```ts
 * import type { CdiDeviceNode } from "./spec.ts";
 * const n: CdiDeviceNode = { path: "/dev/foo", hostPath: "/dev/null", permissions: "rw" };
 * ```
 */
export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: "c" | "b" | "p" | "u";
  major?: number;
  minor?: number;
  fileMode?: number;
  /** A subset of "rwm" for the device cgroup; default "rwm". */
  permissions?: string;
  uid?: number;
  gid?: number;
}

/**
 * A mount into the container.
 *
 * @example
 * ```ts
 * import type { CdiMount } from "./spec.ts";
 * const m: CdiMount = { hostPath: "/usr/lib/libfoo.so", containerPath: "/usr/lib/libfoo.so", options: ["ro", "bind"] };
 * ```
 */
export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string;
  options?: string[];
}

/**
 * The OCI hook points a CDI hook may name.
 *
 * @example
 * ```ts
 * import { HOOK_NAMES } from "./spec.ts";
 * HOOK_NAMES.includes("createContainer"); // true
 * ```
 */
export const HOOK_NAMES = [
  "prestart",
  "createRuntime",
  "createContainer",
  "startContainer",
  "poststart",
  "poststop",
] as const;

/**
 * One OCI hook point name.
 *
 * @example
 * ```ts
 * import type { HookName } from "./spec.ts";
 * const h: HookName = "poststop";
 * ```
 */
export type HookName = typeof HOOK_NAMES[number];

/**
 * An OCI hook to add.
 *
 * @example
 * ```ts
 * import type { CdiHook } from "./spec.ts";
 * const h: CdiHook = { hookName: "createContainer", path: "/usr/bin/vendor-hook", args: ["vendor-hook", "setup"] };
 * ```
 */
export interface CdiHook {
  hookName: HookName;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

/**
 * The changes a spec or a device makes to a container.
 *
 * @example
 * ```ts
 * import type { ContainerEdits } from "./spec.ts";
 * const e: ContainerEdits = { env: ["FOO=1"], deviceNodes: [{ path: "/dev/foo" }] };
 * ```
 */
export interface ContainerEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
  /** Edits k8scontainerd does not apply, by field name (a device using them is refused). */
  unsupported?: string[];
}

/**
 * One device of a spec.
 *
 * @example
 * ```ts
 * import type { CdiDevice } from "./spec.ts";
 * const d: CdiDevice = { name: "foo", containerEdits: { env: ["FOO=1"] } };
 * ```
 */
export interface CdiDevice {
  name: string;
  containerEdits: ContainerEdits;
}

/**
 * A parsed, validated spec file.
 *
 * @example
 * ```ts
 * import type { CdiSpec } from "./spec.ts";
 * const s: CdiSpec = { cdiVersion: "0.6.0", kind: "vendor.com/device", devices: [], containerEdits: {} };
 * ```
 */
export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: CdiDevice[];
  /** Applied once for any number of this spec's devices. */
  containerEdits: ContainerEdits;
}

type Doc = Record<string, unknown>;

function fail(msg: string): never {
  throw new InvalidArgumentError(msg);
}

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function str(v: unknown, field: string, required = false): string | undefined {
  if (v === undefined || v === null) {
    if (required) fail(`${field} is required`);
    return undefined;
  }
  if (typeof v !== "string") fail(`${field} must be a string: got ${JSON.stringify(v)}`);
  if (required && v === "") fail(`${field} must not be empty`);
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(`${field} must be an integer in ${min}..${max}: got ${JSON.stringify(v)}`);
  }
  return v;
}

function strings(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    fail(`${field} must be a list of strings`);
  }
  return v as string[];
}

function list(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${field} must be a list`);
  return v;
}

function env(v: unknown, field: string): string[] | undefined {
  const out = strings(v, field);
  out?.forEach((e, i) => {
    if (e.indexOf("=") <= 0) fail(`${field}[${i}] must be KEY=VALUE: got ${JSON.stringify(e)}`);
  });
  return out;
}

function absolute(v: unknown, field: string): string {
  const s = str(v, field, true)!;
  if (!s.startsWith("/")) fail(`${field} must be an absolute path: got ${JSON.stringify(s)}`);
  return s;
}

function deviceNode(v: unknown, f: string): CdiDeviceNode {
  if (!isObject(v)) fail(`${f} must be an object`);
  const node: CdiDeviceNode = { path: absolute(v.path, `${f}.path`) };
  if (v.hostPath !== undefined && v.hostPath !== "") {
    node.hostPath = absolute(v.hostPath, `${f}.hostPath`);
  }
  const type = str(v.type, `${f}.type`);
  if (type !== undefined && type !== "") {
    if (!["c", "b", "p", "u"].includes(type)) {
      fail(`${f}.type must be one of c, b, p, u: got ${JSON.stringify(type)}`);
    }
    node.type = type as CdiDeviceNode["type"];
  }
  const major = int(v.major, `${f}.major`, 0, 0xfff);
  const minor = int(v.minor, `${f}.minor`, 0, 0xfffff);
  if (major !== undefined) node.major = major;
  if (minor !== undefined) node.minor = minor;
  const mode = int(v.fileMode, `${f}.fileMode`, 0, 0o7777);
  if (mode !== undefined) node.fileMode = mode;
  const perms = str(v.permissions, `${f}.permissions`);
  if (perms !== undefined && perms !== "") {
    if (!/^[rwm]{1,3}$/.test(perms) || new Set(perms).size !== perms.length) {
      fail(`${f}.permissions must be a combination of r, w and m: got ${JSON.stringify(perms)}`);
    }
    node.permissions = perms;
  }
  const uid = int(v.uid, `${f}.uid`, 0, 0xfffffffe);
  const gid = int(v.gid, `${f}.gid`, 0, 0xfffffffe);
  if (uid !== undefined) node.uid = uid;
  if (gid !== undefined) node.gid = gid;
  return node;
}

function mount(v: unknown, f: string): CdiMount {
  if (!isObject(v)) fail(`${f} must be an object`);
  const m: CdiMount = {
    hostPath: str(v.hostPath, `${f}.hostPath`, true)!,
    containerPath: absolute(v.containerPath, `${f}.containerPath`),
  };
  const type = str(v.type, `${f}.type`);
  if (type) m.type = type;
  const options = strings(v.options, `${f}.options`);
  if (options) m.options = options;
  return m;
}

function hook(v: unknown, f: string): CdiHook {
  if (!isObject(v)) fail(`${f} must be an object`);
  const name = str(v.hookName, `${f}.hookName`, true)!;
  if (!(HOOK_NAMES as readonly string[]).includes(name)) {
    fail(`${f}.hookName must be one of ${HOOK_NAMES.join(", ")}: got ${JSON.stringify(name)}`);
  }
  const h: CdiHook = { hookName: name as HookName, path: absolute(v.path, `${f}.path`) };
  const args = strings(v.args, `${f}.args`);
  if (args) h.args = args;
  const e = env(v.env, `${f}.env`);
  if (e) h.env = e;
  const timeout = int(v.timeout, `${f}.timeout`, 1, 2 ** 31 - 1);
  if (timeout !== undefined) h.timeout = timeout;
  return h;
}

const UNSUPPORTED_EDITS = ["intelRdt", "netDevices"];

function containerEdits(v: unknown, f: string): ContainerEdits {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) fail(`${f} must be an object`);
  const out: ContainerEdits = {};
  const e = env(v.env, `${f}.env`);
  if (e?.length) out.env = e;
  const nodes = list(v.deviceNodes, `${f}.deviceNodes`).map((n, i) =>
    deviceNode(n, `${f}.deviceNodes[${i}]`)
  );
  if (nodes.length) out.deviceNodes = nodes;
  const mounts = list(v.mounts, `${f}.mounts`).map((m, i) => mount(m, `${f}.mounts[${i}]`));
  if (mounts.length) out.mounts = mounts;
  const hooks = list(v.hooks, `${f}.hooks`).map((h, i) => hook(h, `${f}.hooks[${i}]`));
  if (hooks.length) out.hooks = hooks;
  // The CDI library spells it additionalGIDs in JSON; accept both spellings.
  const gidsRaw = v.additionalGIDs ?? v.additionalGids;
  const gids = list(gidsRaw, `${f}.additionalGIDs`).map((g, i) =>
    int(g, `${f}.additionalGIDs[${i}]`, 0, 0xfffffffe)!
  );
  if (gids.length) out.additionalGids = gids;
  const unsupported = UNSUPPORTED_EDITS.filter((k) => v[k] !== undefined && v[k] !== null);
  if (unsupported.length) out.unsupported = unsupported;
  return out;
}

function isEmpty(e: ContainerEdits): boolean {
  return Object.keys(e).length === 0;
}

/**
 * Validates a decoded spec document (the object a JSON or YAML file holds).
 *
 * @throws InvalidArgumentError naming the field and what is wrong with it.
 * @example
 * ```ts
 * import { validateSpec } from "./spec.ts";
 * validateSpec({ cdiVersion: "0.5.0", kind: "a.com/b", devices: [{ name: "x", containerEdits: { env: ["A=1"] } }] });
 * ```
 */
export function validateSpec(doc: unknown): CdiSpec {
  if (!isObject(doc)) fail("the spec must be an object");
  const version = str(doc.cdiVersion, "cdiVersion", true)!;
  if (!CDI_VERSIONS.includes(version)) {
    fail(`cdiVersion ${JSON.stringify(version)} is not supported (${CDI_VERSIONS.join(", ")})`);
  }
  const kind = str(doc.kind, "kind", true)!;
  const k = parseKind(kind);
  if ("problem" in k) fail(k.problem);
  const edits = containerEdits(doc.containerEdits, "containerEdits");
  const rawDevices = list(doc.devices, "devices");
  if (rawDevices.length === 0) fail("devices must list at least one device");
  const seen = new Set<string>();
  const devices = rawDevices.map((d, i): CdiDevice => {
    const f = `devices[${i}]`;
    if (!isObject(d)) fail(`${f} must be an object`);
    const name = str(d.name, `${f}.name`, true)!;
    const problem = deviceNameProblem(name);
    if (problem) fail(`${f}.name: ${problem}`);
    if (seen.has(name)) fail(`${f}.name ${JSON.stringify(name)} is defined twice`);
    seen.add(name);
    const e = containerEdits(d.containerEdits, `${f}.containerEdits`);
    if (isEmpty(e)) fail(`${f} (${JSON.stringify(name)}) has no containerEdits`);
    return { name, containerEdits: e };
  });
  return { cdiVersion: version, kind, devices, containerEdits: edits };
}

/**
 * Parses a spec file's text (`.json`, `.yaml` or `.yml`; YAML is a superset of JSON, so one
 * parser reads both) and validates it.
 *
 * @throws InvalidArgumentError naming the file and why it is refused.
 * @example
 * ```ts
 * import { parseSpec } from "./spec.ts";
 * const spec = parseSpec(
 *   "cdiVersion: 0.6.0\nkind: vendor.com/device\ndevices:\n- name: foo\n  containerEdits:\n    env: [FOO=1]\n",
 *   "/etc/cdi/vendor.yaml",
 * );
 * spec.kind; // "vendor.com/device"
 * ```
 */
export function parseSpec(text: string, path: string): CdiSpec {
  const doc = decodeSpec(text, path);
  try {
    return validateSpec(doc);
  } catch (e) {
    if (e instanceof InvalidArgumentError) {
      throw new InvalidArgumentError(`CDI spec ${path} is invalid: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Decodes a spec file's text without validating it (JSON or YAML by extension).
 *
 * @throws InvalidArgumentError naming the file when it is not valid JSON / YAML.
 * @example
 * ```ts
 * import { decodeSpec } from "./spec.ts";
 * decodeSpec('{"kind":"a.com/b"}', "/etc/cdi/a.json"); // { kind: "a.com/b" }
 * ```
 */
export function decodeSpec(text: string, path: string): unknown {
  const json = path.endsWith(".json");
  try {
    // "core" schema: YAML 1.2 scalars (no yes/no booleans, no sexagesimal numbers).
    return json ? JSON.parse(text) : parseYaml(text, { schema: "core", uniqueKeys: true });
  } catch (e) {
    throw new InvalidArgumentError(
      `CDI spec ${path} is not valid ${json ? "JSON" : "YAML"}: ${(e as Error).message}`,
    );
  }
}
