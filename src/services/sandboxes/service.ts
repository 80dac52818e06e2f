/**
 * Pod sandboxes: the pod-level resources the CRI needs beyond containers — the pod's
 * /dev/shm mount and port-forward relays into its network namespace — kept behind one service
 * so the CRI layer calls services only, never the mount or process drivers. The pod's records
 * stay with the CRI (its store); this service holds no state of its own, so it has nothing to
 * recover at start: what a killed daemon leaves mounted is unmounted through
 * {@link SandboxService.unmountShm} by the CRI's recovery of half-built pods.
 *
 * @example
 * ```ts
 * import { SandboxService } from "./service.ts";
 * const sandboxes = new SandboxService();
 * await sandboxes.mountShm(`${podDir}/shm`);
 * await sandboxes.portForward({ netnsPath, port: 80, stream, podId });
 * sandboxes.unmountShm(`${podDir}/shm`);
 * ```
 *
 * @module
 */
import { mountPodShm, unmountPodShm } from "./shm.ts";
import { type PortForwardRequest, relayPortForward } from "./port_forward.ts";

export type { PortForwardRequest } from "./port_forward.ts";

export class SandboxService {
  /**
   * Mounts a fresh tmpfs for the pod's /dev/shm at `path`, which must not exist yet.
   *
   * @example
   * ```ts
   * await new SandboxService().mountShm(`${podDir}/shm`);
   * ```
   */
  async mountShm(path: string): Promise<void> {
    await mountPodShm(path);
  }

  /**
   * Unmounts the pod's /dev/shm at `path`; idempotent (nothing mounted is fine).
   *
   * @example
   * ```ts
   * new SandboxService().unmountShm(`${podDir}/shm`);
   * ```
   */
  unmountShm(path: string): void {
    unmountPodShm(path);
  }

  /**
   * Relays one port-forward connection to `127.0.0.1:port` inside the pod's network
   * namespace, until the pod side closes it.
   *
   * @example
   * ```ts
   * await new SandboxService().portForward({ netnsPath, port: 80, stream, podId });
   * ```
   */
  async portForward(r: PortForwardRequest): Promise<void> {
    await relayPortForward(r);
  }
}
