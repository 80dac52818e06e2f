/**
 * Assembles the CRI v1 RuntimeService and ImageService from the per-RPC-family files in this
 * folder and registers them on the shared gRPC server. An RPC not listed here answers
 * UNIMPLEMENTED until its family lands.
 */
import type { GrpcServer } from "../api/server.ts";
import { ImageServiceService, RuntimeServiceService } from "../gen/runtime/v1/api.ts";
import { version } from "./version.ts";

export function registerCri(server: GrpcServer): void {
  server.add(RuntimeServiceService, { version });
  server.add(ImageServiceService, {});
}
