/**
 * Pod networking for the CRI sandbox lifecycle: a named network namespace per pod, wired up by
 * the CNI network from the configuration directory, and undone again without leaks.
 *
 * Lifecycle, as RunPodSandbox / StopPodSandbox drive it:
 * - {@link PodNetwork.setUp}: create `/run/netns/k8sc-<id prefix>`, bring `lo` up (an
 *   ioctl from inside the namespace, not the loopback plugin containerd runs: one Go process
 *   less per pod start and per stop), run the network's ADD. Any failure undoes what was
 *   done (DEL, namespace removed) before the error is thrown.
 * - {@link PodNetwork.tearDown}: DEL (from the cached ADD, so it works after a daemon restart
 *   and after the config file changed), then remove the namespace. Both steps are idempotent;
 *   when DEL fails the namespace and the cache stay, so a retried StopPodSandbox can finish.
 * - {@link PodNetwork.status}: the CRI NetworkReady condition.
 * - {@link PodNetwork.ipsOf}: a pod's IPs from the cache (PodSandboxStatus after a restart).
 *
 * @example
 * ```ts
 * import { PodNetwork } from "./pod_network.ts";
 * const net = new PodNetwork({ cacheDir: "/var/lib/k8scontainerd/cni" });
 * const podId = "4f1c0a9e8b7d6c5b4a3928171615141312111009";
 * if ((await net.status()).ready) {
 *   const { netnsPath, ips } = await net.setUp({ podId, podName: "web", podNamespace: "default" });
 *   // … start the sandbox with netnsPath …
 *   await net.tearDown({ podId, netnsPath, podName: "web", podNamespace: "default" });
 * }
 * ```
 *
 * @module
 */

import {
  createNetns,
  deleteNetns,
  isErrno,
  NETNS_RUN_DIR,
  setLinkUp,
  withNetns,
} from "../../ffi/mod.ts";
import { AlreadyExistsError, InvalidArgumentError } from "../errdefs/errors.ts";
import type { Logger } from "../log/logger.ts";
import {
  type CachedAttachment,
  Cni,
  type CniInterface,
  CniPluginError,
  type CniResult,
  DEFAULT_CNI_BIN_DIRS,
  parseResult,
  type RuntimeConf,
} from "./cni.ts";
import {
  DEFAULT_CNI_CONF_DIR,
  type NetworkConfigList,
  NetworkConfigLoader,
  NoNetworkConfigError,
} from "./config.ts";

/** Prefix of the network namespaces this runtime creates (`ip netns list` shows them). */
export const NETNS_PREFIX = "k8sc-";

/** The interface CNI creates in the pod, as in every Kubernetes runtime. */
export const POD_IFNAME = "eth0";

/** The network name under which the loopback attachment is cached (containerd's name). */
export const LOOPBACK_NETWORK = "cni-loopback";

/** The CRI condition reason for a network that is not ready (what containerd reports). */
export const NETWORK_NOT_READY_REASON = "NetworkPluginNotReady";

/** A CRI PortMapping of the pod (protocol as the CRI spells it: TCP, UDP, SCTP). */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

/** Traffic shaping for the `bandwidth` capability (bits per second and bits). */
export interface Bandwidth {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** DNS for the `dns` capability. */
export interface DnsConfig {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

/** Construction options of {@link PodNetwork}. */
export interface PodNetworkOptions {
  /** CNI config dir (default /etc/cni/net.d). */
  confDir?: string;
  /** Plugin dirs (default /opt/cni/bin, /usr/lib/cni). */
  binDirs?: readonly string[];
  /** Where ADD results are cached; must survive daemon restarts for as long as pods do. */
  cacheDir: string;
  /** Where pod network namespaces are bind-mounted (default /run/netns). */
  netnsDir?: string;
  /** Per-plugin-invocation timeout. */
  pluginTimeoutMs?: number;
  log?: Logger;
}

/** The CRI NetworkReady condition. */
export interface NetworkStatus {
  ready: boolean;
  /** CamelCase CRI reason when not ready. */
  reason?: string;
  /** Human-readable cause when not ready (names the directory or file at fault). */
  message?: string;
}

/** What RunPodSandbox knows about the pod's networking. */
export interface SetUpRequest {
  /** Sandbox id: the CNI container id and the source of the namespace name. */
  podId: string;
  podName: string;
  podNamespace: string;
  podUid?: string;
  portMappings?: PortMapping[];
  bandwidth?: Bandwidth;
  dns?: DnsConfig;
  /** Host-network pods get no namespace and no CNI. */
  hostNetwork?: boolean;
}

/** Options of {@link PodNetwork.setUp}. */
export interface SetUpOptions {
  /**
   * Told the namespace's path as soon as it exists, before the CNI plugins run: the pod's
   * pause container needs only the namespace, so its creation can overlap the attachment.
   */
  onNamespace?: (netnsPath: string) => void;
  /**
   * Name this existing network namespace (/proc/<pid>/ns/net) instead of creating one: a
   * user-namespaced pod's netns must belong to its user namespace (or the pod cannot mount
   * /sys), so it is made by a process in that user namespace.
   */
  netnsFrom?: string;
}

/** A pod's network after set-up. */
export interface SetUpResult {
  /** The namespace path for the OCI spec ("" for host-network pods). */
  netnsPath: string;
  /** The pod's IPs without prefix length, IPv4 first (CRI PodSandboxStatus order). */
  ips: string[];
  /** Interfaces reported by the network's plugins. */
  interfaces: CniInterface[];
  /** The full parsed result (undefined for host-network pods). */
  result?: CniResult;
}

/** What StopPodSandbox passes; everything but `podId` may be missing after a restart. */
export interface TearDownRequest {
  podId: string;
  netnsPath?: string;
  podName?: string;
  podNamespace?: string;
  podUid?: string;
  portMappings?: PortMapping[];
  hostNetwork?: boolean;
}

// Sandbox ids are hex; anything else must at least be a safe file name component.
const POD_ID = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;

/**
 * The pod IPs of a result: those on the pod interface (or on no named interface), without
 * prefix length, IPv4 first.
 *
 * @example
 * ```ts
 * import { podIps } from "./pod_network.ts";
 * import { parseResult } from "./cni.ts";
 * podIps(parseResult({ cniVersion: "1.0.0", ips: [{ address: "fd00::5/64" }, { address: "10.1.0.5/24" }] }));
 * // ["10.1.0.5", "fd00::5"]
 * ```
 */
export function podIps(result: CniResult, ifName = POD_IFNAME): string[] {
  const chosen = result.ips.filter((ip) => {
    if (ip.interface === undefined) return true;
    const itf = result.interfaces[ip.interface];
    return itf === undefined || itf.name === ifName;
  });
  const v4 = chosen.filter((ip) => ip.version === "4");
  const v6 = chosen.filter((ip) => ip.version === "6");
  return [...v4, ...v6].map((ip) => ip.address.split("/")[0]);
}

/**
 * The CNI capability arguments for a pod, in the shapes the reference plugins read:
 * `portMappings` with lower-case protocols (ports with hostPort 0 are not mapped, as in
 * containerd), `bandwidth`, `dns`.
 *
 * @example
 * ```ts
 * import { capabilityArgs } from "./pod_network.ts";
 * capabilityArgs({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "TCP" }] });
 * // { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] }
 * ```
 */
export function capabilityArgs(
  req: { portMappings?: PortMapping[]; bandwidth?: Bandwidth; dns?: DnsConfig },
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const ports = (req.portMappings ?? []).filter((p) => p.hostPort > 0).map((p) => {
    const m: Record<string, unknown> = {
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: (p.protocol ?? "TCP").toLowerCase(),
    };
    if (p.hostIP) m.hostIP = p.hostIP;
    return m;
  });
  if (ports.length > 0) out.portMappings = ports;
  if (req.bandwidth) out.bandwidth = req.bandwidth;
  if (req.dns) out.dns = req.dns;
  return out;
}

/**
 * The netns name for a pod: {@link NETNS_PREFIX} and the first 16 characters of its id
 * (64 bits of a random sandbox id: unique on a node, short enough to read).
 *
 * @example
 * ```ts
 * import { netnsName } from "./pod_network.ts";
 * netnsName("0123456789abcdef0123"); // "k8sc-0123456789abcdef"
 * ```
 */
export function netnsName(podId: string): string {
  return NETNS_PREFIX + podId.slice(0, 16);
}

/**
 * Pod network set-up and tear-down over CNI. One instance per daemon; a new instance over the
 * same cacheDir (a restarted daemon) can tear down pods an earlier one set up.
 *
 * @example
 * ```ts
 * import { PodNetwork } from "./pod_network.ts";
 * const net = new PodNetwork({ confDir: "/etc/cni/net.d", cacheDir: "/var/lib/k8scontainerd/cni" });
 * await net.status(); // { ready: false, reason: "NetworkPluginNotReady", message: "… no network config found in /etc/cni/net.d" }
 * ```
 */
export class PodNetwork {
  readonly netnsDir: string;
  readonly loader: NetworkConfigLoader;
  readonly cni: Cni;
  readonly #log?: Logger;
  // Set-up and tear-down of one pod must not interleave (kubelet may retry a Stop while a
  // Run is still undoing); different pods proceed in parallel.
  readonly #busy = new Map<string, Promise<unknown>>();

  constructor(opts: PodNetworkOptions) {
    this.netnsDir = (opts.netnsDir ?? NETNS_RUN_DIR).replace(/\/+$/, "");
    this.loader = new NetworkConfigLoader(opts.confDir ?? DEFAULT_CNI_CONF_DIR);
    this.#log = opts.log;
    this.cni = new Cni({
      binDirs: opts.binDirs ?? DEFAULT_CNI_BIN_DIRS,
      cacheDir: opts.cacheDir,
      timeoutMs: opts.pluginTimeoutMs,
      log: opts.log,
    });
  }

  /**
   * NetworkReady for the CRI Status: ready when a valid config exists and every plugin it
   * names is found in the bin dirs.
   */
  async status(): Promise<NetworkStatus> {
    let list: NetworkConfigList;
    try {
      list = await this.loader.load();
    } catch (e) {
      return {
        ready: false,
        reason: NETWORK_NOT_READY_REASON,
        message: `cni config load failed: ${e instanceof Error ? e.message : e}`,
      };
    }
    // No loopback plugin is needed: set-up brings lo up itself.
    for (const type of new Set(list.plugins.map((p) => p.type))) {
      if (await this.cni.findPlugin(type) === undefined) {
        return {
          ready: false,
          reason: NETWORK_NOT_READY_REASON,
          message: `CNI plugin "${type}" of network "${list.name}" (${list.source}) not found in ${
            this.cni.binDirs.join(", ")
          }`,
        };
      }
    }
    return { ready: true };
  }

  /**
   * Creates the pod's network namespace and attaches it to the CNI network. Throws
   * NoNetworkConfigError (failed-precondition) before touching anything when there is no
   * config, AlreadyExistsError when the namespace exists, and the plugin's error (a
   * {@link CniPluginError} naming the plugin) after undoing a failed ADD.
   */
  setUp(req: SetUpRequest, opts: SetUpOptions = {}): Promise<SetUpResult> {
    checkPodId(req.podId);
    return this.#serial(req.podId, () => this.#setUp(req, opts));
  }

  async #setUp(req: SetUpRequest, opts: SetUpOptions): Promise<SetUpResult> {
    if (req.hostNetwork) return { netnsPath: "", ips: [], interfaces: [] };
    for (const [k, v] of [["podName", req.podName], ["podNamespace", req.podNamespace]]) {
      // CNI_ARGS is `K=V;K=V` with no escaping.
      if (/[;=]/.test(v)) throw new InvalidArgumentError(`${k} ${JSON.stringify(v)}: has ; or =`);
    }
    const list = await this.loader.load();
    const name = netnsName(req.podId);
    let netnsPath: string;
    try {
      netnsPath = createNetns(name, this.netnsDir, opts.netnsFrom);
    } catch (e) {
      if (isErrno(e, "EEXIST")) {
        throw new AlreadyExistsError(`network namespace ${this.netnsDir}/${name}`, { cause: e });
      }
      throw e;
    }
    opts.onNamespace?.(netnsPath);
    const rt = this.#runtimeConf(req, netnsPath);
    const log = this.#log?.child({ pod: req.podId, netns: netnsPath });
    let stage = "loopback";
    try {
      withNetns(netnsPath, () => setLinkUp("lo"));
      stage = "add";
      const result = await this.cni.add(list, rt);
      const ips = podIps(result);
      log?.info("pod network set up", { network: list.name, ips });
      return { netnsPath, ips, interfaces: result.interfaces, result };
    } catch (e) {
      log?.warn("pod network set-up failed; undoing", { stage, error: e });
      if (stage === "add") {
        const prevResult = e instanceof CniPluginError ? e.prevResult : undefined;
        await this.cni.del(list, rt, { prevResult }).catch((err) =>
          log?.warn("undo: CNI DEL failed", { error: err })
        );
      }
      try {
        deleteNetns(name, this.netnsDir);
      } catch (err) {
        log?.error("undo: cannot remove network namespace", { error: err });
      }
      throw e;
    }
  }

  /**
   * Detaches the pod from the network (DEL) and removes its namespace. Idempotent: a pod
   * torn down already, or never set up, is fine. DEL uses the cached ADD when there is one,
   * falling back to the current config and the request's port mappings.
   */
  tearDown(req: TearDownRequest): Promise<void> {
    checkPodId(req.podId);
    return this.#serial(req.podId, () => this.#tearDown(req));
  }

  async #tearDown(req: TearDownRequest): Promise<void> {
    if (req.hostNetwork) return;
    const cached = await this.cni.cachedAttachmentsOf(req.podId);
    const attachments = cached.filter((c) => c.networkName !== LOOPBACK_NETWORK);
    const defaultPath = `${this.netnsDir}/${netnsName(req.podId)}`;
    const netnsPath = req.netnsPath || attachments[0]?.netns || defaultPath;
    const rt = this.#runtimeConf(
      {
        podId: req.podId,
        podName: req.podName ?? "",
        podNamespace: req.podNamespace ?? "",
        podUid: req.podUid,
        portMappings: req.portMappings,
      },
      netnsPath,
    );
    const log = this.#log?.child({ pod: req.podId, netns: netnsPath });
    if (attachments.length > 0) {
      for (const a of attachments) await this.cni.del(a.config, { ...rt, ifName: a.ifName });
    } else {
      // No cache: set-up crashed before caching, or the pod is gone already. DEL with the
      // current config anyway (DEL of nothing succeeds), so IPs and port rules are not leaked.
      let list: NetworkConfigList | undefined;
      try {
        list = await this.loader.load();
      } catch (e) {
        if (!(e instanceof NoNetworkConfigError)) throw e;
        log?.info("no CNI config and no cached result: nothing to DEL");
      }
      if (list) await this.cni.del(list, rt);
    }
    if (cached.some((c) => c.networkName === LOOPBACK_NETWORK)) {
      // A pod set up by an earlier version, which ran the loopback plugin: DEL drops its cache
      // entry. lo dies with the namespace; a failure must not keep the pod's netns alive.
      await this.cni.del(loopbackList(), { containerId: req.podId, netns: netnsPath, ifName: "lo" })
        .catch((e) => log?.warn("loopback DEL failed", { error: e }));
    }
    // Only namespaces this runtime made are removed (a caller could pass another path).
    const slash = netnsPath.lastIndexOf("/");
    const dir = netnsPath.slice(0, slash), name = netnsPath.slice(slash + 1);
    if (dir === this.netnsDir && name.startsWith(NETNS_PREFIX)) deleteNetns(name, dir);
    log?.info("pod network torn down");
  }

  /**
   * A pod's IPs (IPv4 first) from the cached ADD result; empty when it has none (host
   * network, torn down, never set up).
   *
   * @example
   * ```ts
   * import { PodNetwork } from "./pod_network.ts";
   * const net = new PodNetwork({ cacheDir: "/var/lib/k8scontainerd/cni" });
   * await net.ipsOf("0123456789abcdef…"); // ["10.88.0.5"]
   * ```
   */
  async ipsOf(podId: string): Promise<string[]> {
    checkPodId(podId);
    const cached = await this.cni.cachedAttachmentsOf(podId);
    const a = cached.find((c) => c.networkName !== LOOPBACK_NETWORK && c.ifName === POD_IFNAME) ??
      cached.find((c) => c.networkName !== LOOPBACK_NETWORK);
    return a ? podIps(parseResult(a.result), a.ifName) : [];
  }

  /** The cached attachment of a pod on the pod network, if any (for diagnostics). */
  async attachmentOf(podId: string): Promise<CachedAttachment | undefined> {
    checkPodId(podId);
    const cached = await this.cni.cachedAttachmentsOf(podId);
    return cached.find((c) => c.networkName !== LOOPBACK_NETWORK);
  }

  #runtimeConf(req: SetUpRequest, netnsPath: string): RuntimeConf {
    const args: [string, string][] = [
      ["IgnoreUnknown", "1"],
      ["K8S_POD_NAMESPACE", req.podNamespace],
      ["K8S_POD_NAME", req.podName],
      ["K8S_POD_INFRA_CONTAINER_ID", req.podId],
    ];
    if (req.podUid) args.push(["K8S_POD_UID", req.podUid]);
    return {
      containerId: req.podId,
      netns: netnsPath,
      ifName: POD_IFNAME,
      args,
      capabilityArgs: capabilityArgs(req),
    };
  }

  async #serial<T>(podId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#busy.get(podId) ?? Promise.resolve();
    const run = before.catch(() => {}).then(fn);
    const settled = run.catch(() => {});
    this.#busy.set(podId, settled);
    try {
      return await run;
    } finally {
      if (this.#busy.get(podId) === settled) this.#busy.delete(podId);
    }
  }
}

/**
 * The built-in loopback network. 0.3.1 because every loopback plugin release speaks it
 * (containerd pins the same version for the same reason).
 */
function loopbackList(): NetworkConfigList {
  return {
    name: LOOPBACK_NETWORK,
    cniVersion: "0.3.1",
    disableCheck: true,
    plugins: [{ type: "loopback" }],
    source: "(built-in)",
  };
}

function checkPodId(podId: string): void {
  if (!POD_ID.test(podId)) {
    throw new InvalidArgumentError(`invalid pod sandbox id ${JSON.stringify(podId)}`);
  }
}
