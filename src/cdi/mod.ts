/**
 * Container Device Interface (CDI): spec files describing devices (`vendor.com/class=name`)
 * and the container edits each needs, resolved for CRI containers that ask for them.
 *
 * - name.ts: qualified device names
 * - spec.ts: spec file parsing and validation (JSON, YAML)
 * - registry.ts: the spec directories, resolution order and conflicts
 * - edits.ts: edits → spec builder pieces (device nodes stat'ed on the host)
 * - request.ts: the devices a container config asks for (field and annotations)
 * - inject.ts: the one call the CRI makes
 *
 * @example
 * ```ts
 * import { injectCdi } from "./mod.ts";
 * const inj = await injectCdi(undefined, { CDIDevices: [{ name: "vendor.com/device=foo" }] });
 * ```
 */
export * from "./name.ts";
export * from "./spec.ts";
export * from "./registry.ts";
export * from "./edits.ts";
export * from "./request.ts";
export * from "./inject.ts";
