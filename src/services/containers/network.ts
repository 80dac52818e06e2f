/**
 * CNI networking for containers the management API creates (`run --net cni`, `run -p`): the
 * same machinery as a CRI pod's network (a named netns, CNI ADD with the portmap capability,
 * DEL from the cached result), keyed by a container instead of a sandbox.
 *
 * Lifecycle, as the container service drives it:
 * - at container create, {@link ContainerNetworks.requireConfig} refuses a container whose
 *   network cannot be set up (no config), and {@link ContainerNetworks.netnsPath} is what the
 *   OCI spec joins (the path is fixed by the container's namespace and id);
 * - at task create, {@link ContainerNetworks.attach} creates the netns and runs ADD;
 * - at task delete and container delete, {@link ContainerNetworks.detach} runs DEL and removes
 *   the netns (idempotent);
 * - at daemon start, {@link ContainerNetworks.sweep} detaches every cached attachment whose
 *   container no longer has a live task (what a killed daemon left behind).
 *
 * The CNI results are cached apart from the CRI's (`cacheDir`), so neither side's recovery
 * sees the other's attachments.
 *
 * @example
 * ```ts
 * import { ContainerNetworks } from "./network.ts";
 * const nets = new ContainerNetworks({ cacheDir: "/run/k8scontainerd/cni-containers" });
 * await nets.requireConfig();
 * const ips = await nets.attach("default", "web", [{ hostPort: 8080, containerPort: 80 }]);
 * await nets.detach("default", "web");
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  netnsName,
  PodNetwork,
  type PodNetworkOptions,
  type PortMapping,
} from "../../network/pod_network.ts";
import { NoNetworkConfigError } from "../../network/config.ts";
import { FailedPreconditionError } from "../../errdefs/errors.ts";
import type { Logger } from "../../log/logger.ts";

export type { PortMapping } from "../../network/pod_network.ts";

/** The host address a published port binds to when the user names none (safe by default). */
export const DEFAULT_HOST_IP = "127.0.0.1";

/**
 * The CNI container id of a management container: hex, like a sandbox id, derived from the
 * namespace and id (two namespaces may both have a "web").
 *
 * @example
 * ```ts
 * cniContainerId("default", "web").length; // 64
 * ```
 */
export function cniContainerId(ns: string, id: string): string {
  return createHash("sha256").update(`${ns}/${id}`).digest("hex");
}

/** CNI attachments of management containers; one per daemon. */
export class ContainerNetworks {
  readonly #net: PodNetwork;
  readonly #cacheDir: string;
  readonly #confDir: string;
  readonly #log?: Logger;

  constructor(opts: PodNetworkOptions) {
    this.#net = new PodNetwork(opts);
    this.#cacheDir = opts.cacheDir;
    this.#confDir = this.#net.loader.dir;
    this.#log = opts.log;
  }

  /** The netns a container joins: fixed by its namespace and id. */
  netnsPath(ns: string, id: string): string {
    return `${this.#net.netnsDir}/${netnsName(cniContainerId(ns, id))}`;
  }

  /** Throws FailedPreconditionError naming the config dir when there is no usable network. */
  async requireConfig(what: string): Promise<void> {
    try {
      await this.#net.loader.load();
    } catch (e) {
      if (e instanceof NoNetworkConfigError) {
        throw new FailedPreconditionError(
          `${what} needs a CNI network, and there is no network config in ${this.#confDir} ([cri] cni_conf_dir of the daemon's config)`,
          { cause: e },
        );
      }
      throw e;
    }
  }

  /** Creates the container's netns and attaches it; returns its IPs (IPv4 first). */
  async attach(ns: string, id: string, ports: PortMapping[]): Promise<string[]> {
    const podId = cniContainerId(ns, id);
    const r = await this.#net.setUp({
      podId,
      podName: id,
      podNamespace: ns,
      portMappings: ports.map((p) => ({ ...p, hostIP: p.hostIP || DEFAULT_HOST_IP })),
    });
    return r.ips;
  }

  /** CNI DEL and the netns removed; a container never attached (or detached) is fine. */
  async detach(ns: string, id: string): Promise<void> {
    await this.#net.tearDown({
      podId: cniContainerId(ns, id),
      netnsPath: this.netnsPath(ns, id),
      podName: id,
      podNamespace: ns,
    });
  }

  /** The IPs of a container's attachment, [] when it has none. */
  async ips(ns: string, id: string): Promise<string[]> {
    return await this.#net.ipsOf(cniContainerId(ns, id));
  }

  /**
   * At daemon start: detaches every cached attachment whose CNI container id is not in `keep`
   * (the containers with a live task); returns the ids detached.
   */
  async sweep(keep: Set<string>): Promise<string[]> {
    const ids = new Set<string>();
    try {
      for await (const e of Deno.readDir(`${this.#cacheDir}/results`)) {
        if (!e.isFile || e.name.includes(".tmp-")) continue;
        try {
          const v = JSON.parse(await Deno.readTextFile(`${this.#cacheDir}/results/${e.name}`));
          if (typeof v?.containerId === "string") ids.add(v.containerId);
        } catch { /* unreadable: PodNetwork logs it when it reads it */ }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const done: string[] = [];
    for (const podId of ids) {
      if (keep.has(podId)) continue;
      try {
        await this.#net.tearDown({ podId });
        done.push(podId);
      } catch (e) {
        this.#log?.warn("cannot detach a container network left behind", { podId, err: e });
      }
    }
    return done;
  }
}
