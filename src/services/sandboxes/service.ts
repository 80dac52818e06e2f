/**
 * Pod sandboxes: the pod-level resources the CRI needs beyond containers — the pod's network
 * (a named netns attached by CNI), its /dev/shm mount and port-forward relays into its network
 * namespace — kept behind one service so the CRI layer calls services only, never the network,
 * mount or process drivers. The pod's records stay with the CRI (its store); this service
 * holds no state of its own beyond the CNI result cache, so it has nothing to recover at start:
 * what a killed daemon leaves behind (a netns with an IP lease, a mounted /dev/shm) is released
 * through {@link SandboxService.tearDownNetwork} and {@link SandboxService.unmountShm} by the
 * CRI's recovery of half-built pods.
 *
 * @example
 * ```ts
 * import { SandboxService } from "./service.ts";
 * const sandboxes = new SandboxService({ network: { cacheDir: "/run/k8scontainerd/cni" } });
 * if ((await sandboxes.networkStatus()).ready) {
 *   const { netnsPath } = await sandboxes.setUpNetwork({ podId, podName: "web", podNamespace: "default" });
 *   await sandboxes.mountShm(`${podDir}/shm`);
 *   await sandboxes.portForward({ netnsPath, port: 80, stream, podId });
 *   sandboxes.unmountShm(`${podDir}/shm`);
 *   await sandboxes.tearDownNetwork({ podId, netnsPath });
 * }
 * ```
 *
 * @module
 */
import { mountPodShm, unmountPodShm } from "./shm.ts";
import { createPodUserns, type IdRange, type PodUserns, releasePodUserns } from "./userns.ts";
import { type PortForwardRequest, relayPortForward } from "./port_forward.ts";
import {
  type NetworkStatus,
  PodNetwork,
  type PodNetworkOptions,
  type SetUpOptions,
  type SetUpRequest,
  type SetUpResult,
  type TearDownRequest,
} from "../../network/pod_network.ts";

export type { PortForwardRequest } from "./port_forward.ts";
export type {
  NetworkStatus,
  PodNetworkOptions,
  PortMapping,
  SetUpOptions,
  SetUpRequest,
  SetUpResult,
  TearDownRequest,
} from "../../network/pod_network.ts";

/** Where the CNI result cache lives unless told otherwise (the daemon's default state dir). */
export const DEFAULT_CNI_CACHE_DIR = "/run/k8scontainerd/cni";

/** Construction options of {@link SandboxService}. */
export interface SandboxServiceOptions {
  /** The pod network: CNI config and plugin dirs, the result cache (see PodNetworkOptions). */
  network?: PodNetworkOptions;
}

export class SandboxService {
  readonly #network: PodNetwork;

  constructor(opts: SandboxServiceOptions = {}) {
    this.#network = new PodNetwork(opts.network ?? { cacheDir: DEFAULT_CNI_CACHE_DIR });
  }

  /**
   * The CRI NetworkReady condition: ready when a valid CNI config exists and every plugin it
   * names is found.
   *
   * @example
   * ```ts
   * const { ready, message } = await sandboxes.networkStatus();
   * ```
   */
  networkStatus(): Promise<NetworkStatus> {
    return this.#network.status();
  }

  /**
   * Creates the pod's network namespace and attaches it to the CNI network; a failure undoes
   * what was done before it is thrown. `opts.onNamespace` hears of the namespace before the
   * plugins run, so the pod's pause container can be created meanwhile.
   *
   * @example
   * ```ts
   * const { netnsPath, ips } = await sandboxes.setUpNetwork({ podId, podName, podNamespace });
   * ```
   */
  setUpNetwork(req: SetUpRequest, opts?: SetUpOptions): Promise<SetUpResult> {
    return this.#network.setUp(req, opts);
  }

  /**
   * Detaches the pod from the CNI network (from the cached ADD, so it works after a restart)
   * and removes its namespace; idempotent. When DEL fails, the namespace stays for a retry.
   *
   * @example
   * ```ts
   * await sandboxes.tearDownNetwork({ podId, netnsPath });
   * ```
   */
  tearDownNetwork(req: TearDownRequest): Promise<void> {
    return this.#network.tearDown(req);
  }

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
   * Creates the pod's own user namespace with the kubelet's mappings, persisted at `path`;
   * with `withNet` also a network namespace it owns, for the pod network to name
   * (`netnsFrom`). See userns.ts.
   *
   * @example
   * ```ts
   * const u = await sandboxes.createUserns(`${podDir}/userns`, map, map, true);
   * ```
   */
  createUserns(path: string, uids: IdRange, gids: IdRange, withNet: boolean): Promise<PodUserns> {
    return createPodUserns(path, uids, gids, withNet);
  }

  /**
   * Releases a pod's user namespace at `path`; idempotent.
   *
   * @example
   * ```ts
   * new SandboxService().releaseUserns(`${podDir}/userns`);
   * ```
   */
  releaseUserns(path: string): void {
    releasePodUserns(path);
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
