/**
 * The OCI runtime spec builder, in one import: `buildSpec` and its options, user resolution,
 * capabilities, seccomp profiles and the spec types.
 *
 * @example
 * ```ts
 * import { buildSpec, seccompFromJson } from "./mod.ts";
 * const spec = buildSpec({
 *   id: "c1",
 *   rootfs: { path: "rootfs" },
 *   command: ["/bin/sh"],
 *   seccomp: { type: "Localhost", profile: seccompFromJson('{"defaultAction":"SCMP_ACT_ALLOW"}') },
 * });
 * ```
 */
export * from "./builder.ts";
export * from "./capabilities.ts";
export * from "./seccomp.ts";
export * from "./user.ts";
export type * from "./types.ts";
