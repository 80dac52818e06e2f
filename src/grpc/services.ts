/**
 * The management gRPC services (the CLI's; the CRI's are in cri_services.ts) as method tables
 * (rpc_service.ts). The daemon's edge and the grpc-js clients of tests and benches take them
 * from here; the CLI builds only the tables a command calls (src/cli/client.ts).
 *
 * @example
 * ```ts
 * import { VersionService } from "./services.ts";
 * VersionService.version.path; // "/k8scontainerd.services.version.v1.Version/Version"
 * ```
 */
import { VersionDefinition } from "../gen/k8scontainerd/services/version/v1/version.ts";
import { NamespacesDefinition } from "../gen/k8scontainerd/services/namespaces/v1/namespace.ts";
import { ImagesDefinition } from "../gen/k8scontainerd/services/images/v1/images.ts";
import { ContentDefinition } from "../gen/k8scontainerd/services/content/v1/content.ts";
import { SnapshotsDefinition } from "../gen/k8scontainerd/services/snapshots/v1/snapshots.ts";
import { LeasesDefinition } from "../gen/k8scontainerd/services/leases/v1/leases.ts";
import { ContainersDefinition } from "../gen/k8scontainerd/services/containers/v1/containers.ts";
import { TasksDefinition } from "../gen/k8scontainerd/services/tasks/v1/tasks.ts";
import { EventsDefinition } from "../gen/k8scontainerd/services/events/v1/events.ts";
import { rpcService } from "./rpc_service.ts";

export const VersionService = rpcService(VersionDefinition);
export const NamespacesService = rpcService(NamespacesDefinition);
export const ImagesService = rpcService(ImagesDefinition);
export const ContentService = rpcService(ContentDefinition);
export const SnapshotsService = rpcService(SnapshotsDefinition);
export const LeasesService = rpcService(LeasesDefinition);
export const ContainersService = rpcService(ContainersDefinition);
export const TasksService = rpcService(TasksDefinition);
export const EventsService = rpcService(EventsDefinition);
