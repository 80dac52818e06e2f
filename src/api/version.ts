/**
 * Management API: Version service (k8scontainerd.services.version.v1), answered by the daemon
 * so `k8scontainerd version` can show client and daemon side by side.
 */
import type { VersionResponse } from "../gen/k8scontainerd/services/version/v1/version.ts";
import { REVISION, VERSION } from "../version.ts";

/** Implementation registered on the GrpcServer. */
export const versionService = {
  version: (): Promise<VersionResponse> =>
    Promise.resolve({ version: VERSION, revision: REVISION, runtime: `deno ${Deno.version.deno}` }),
};
