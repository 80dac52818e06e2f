/**
 * CRI `Version`: the first call the kubelet and crictl make. `version` is the kubelet↔runtime
 * API version (always "0.1.0" in CRI v1, as containerd and CRI-O answer); runtime_api_version
 * names the CRI API we serve.
 */
import type { VersionRequest, VersionResponse } from "../gen/runtime/v1/api.ts";
import { RUNTIME_NAME, VERSION } from "../version.ts";

export const KUBELET_API_VERSION = "0.1.0";
export const CRI_API_VERSION = "v1";

export function version(_req: VersionRequest): Promise<VersionResponse> {
  return Promise.resolve({
    version: KUBELET_API_VERSION,
    runtimeName: RUNTIME_NAME,
    runtimeVersion: VERSION,
    runtimeApiVersion: CRI_API_VERSION,
  });
}
