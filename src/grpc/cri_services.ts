/**
 * The CRI's two gRPC services as method tables (rpc_service.ts): apart from the management
 * services so that the CLI, which never speaks the CRI, does not load the CRI's generated code.
 *
 * @example
 * ```ts
 * import { RuntimeServiceService } from "./cri_services.ts";
 * RuntimeServiceService.version.path; // "/runtime.v1.RuntimeService/Version"
 * ```
 */
import { ImageServiceDefinition, RuntimeServiceDefinition } from "../gen/runtime/v1/api.ts";
import { rpcService } from "./rpc_service.ts";

export const RuntimeServiceService = rpcService(RuntimeServiceDefinition);
export const ImageServiceService = rpcService(ImageServiceDefinition);
