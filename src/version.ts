/** The release this source tree builds; `k8scontainerd version` and both Version RPCs report it. */
export const VERSION = "0.1.0";

/**
 * Source revision: set at build time through K8SCONTAINERD_REVISION (scripts/compile.ts embeds
 * it); "unknown" when run from a source tree without it.
 */
export const REVISION = Deno.env.get("K8SCONTAINERD_REVISION") ?? "unknown";

/** The name CRI clients see as runtime_name. */
export const RUNTIME_NAME = "k8scontainerd";
