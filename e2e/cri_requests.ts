/**
 * CRI request bodies as the kubelet fills them, for the suites that drive the CRI (e2e, the VM
 * guest, the benchmarks): every field a test does not care about gets its protobuf default,
 * and what it does care about is passed in.
 *
 * @example
 * ```ts
 * import { containerConfig, podConfig } from "./cri_requests.ts";
 * const pod = podConfig("web", { logDirectory: "/var/log/pods/web" });
 * const app = containerConfig("app", "127.0.0.1:5000/busybox:latest", ["sleep", "60"]);
 * ```
 */
import { ContainerConfig, type DeepPartial, PodSandboxConfig } from "../src/gen/runtime/v1/api.ts";

/** A pod named `name` (uid `uid-<name>`, namespace "e2e" unless given), hostname `name`. */
export function podConfig(
  name: string,
  o: DeepPartial<PodSandboxConfig> & { namespace?: string } = {},
): PodSandboxConfig {
  const { namespace, ...rest } = o;
  return PodSandboxConfig.fromPartial({
    metadata: { name, uid: `uid-${name}`, namespace: namespace ?? "e2e", attempt: 0 },
    hostname: name,
    ...rest,
  });
}

/** A container `name` running `command` from `image`, logging to `<name>.log`. */
export function containerConfig(
  name: string,
  image: string,
  command: string[],
  o: DeepPartial<ContainerConfig> = {},
): ContainerConfig {
  return ContainerConfig.fromPartial({
    metadata: { name, attempt: 0 },
    image: { image, userSpecifiedImage: image },
    command,
    logPath: `${name}.log`,
    ...o,
  });
}
