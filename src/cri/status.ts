/**
 * CRI `Status`, `RuntimeConfig` and `UpdateRuntimeConfig`: the runtime's health and settings
 * as the kubelet polls them.
 *
 * - Status: `RuntimeReady` is true while the daemon serves. `NetworkReady` is false, with
 *   containerd's reason "NetworkPluginNotReady" and message "Network plugin returns error: cni
 *   plugin not initialized", until a CNI network config (`*.conf`, `*.conflist`, `*.json`)
 *   exists in the CNI config directory (default /etc/cni/net.d) — the kubelet keeps the node
 *   NotReady until then. A caller may replace that check (`networkStatus`). With `verbose`,
 *   `info` carries "config" (our CRI settings as JSON), "cniconfig" (the directory and the
 *   network files found) and "lastCNILoadStatus" ("OK" or why not), the keys containerd uses.
 *   `runtime_handlers` lists the default handler ("", the first named one's features) and
 *   each named one, with recursive read-only mounts and user namespaces as probed at start
 *   (src/runtime/features.ts); `features.supplemental_groups_policy` is true (Merge and
 *   Strict are both implemented). The verbose config carries `stateDir`, where critest looks
 *   for idmapped-mount support.
 * - RuntimeConfig: the cgroup driver the kubelet must match: CGROUPFS unless configured
 *   systemd.
 * - UpdateRuntimeConfig: remembers the node's pod CIDR (shown in Status's verbose config);
 *   kept in memory only, as the kubelet sends it again after a runtime restart.
 *
 * @example
 * ```ts
 * server.add(RuntimeServiceService, { ...runtimeStatusHandlers({ cniConfDir: "/etc/cni/net.d" }) });
 * ```
 */
import {
  CgroupDriver,
  type RuntimeConfigResponse,
  type StatusRequest,
  type StatusResponse,
  type UpdateRuntimeConfigRequest,
  type UpdateRuntimeConfigResponse,
} from "../gen/runtime/v1/api.ts";
import type { Logger } from "../log/logger.ts";
import type { HandlerFeatures } from "../runtime/features.ts";

/** Where CNI network configs are looked for by default. */
export const DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d";
/** containerd's NetworkReady reason and message while no CNI config is loaded. */
export const NETWORK_NOT_READY_REASON = "NetworkPluginNotReady";
export const NETWORK_NOT_READY_MESSAGE = "Network plugin returns error: cni plugin not initialized";
const CNI_EXTENSIONS = [".conf", ".conflist", ".json"];

/** The network's state as Status reports it. */
export interface NetworkStatus {
  ready: boolean;
  /** Why not, when not ready. */
  reason?: string;
  message?: string;
  /** Network config files found (verbose info). */
  files?: string[];
}

/** What the status RPCs need; every field has a default. */
export interface RuntimeStatusDeps {
  /** CNI config directory (default /etc/cni/net.d). */
  cniConfDir?: string;
  /** Replaces the CNI config directory check (e.g. once a network plugin layer exists). */
  networkStatus?: () => Promise<NetworkStatus>;
  /** The cgroup driver containers are created with (default "cgroupfs"). */
  cgroupDriver?: "systemd" | "cgroupfs";
  /** Named runtime handlers (default ["runc"]); the first is the default handler. */
  runtimeHandlers?: string[];
  /** What each named handler can do; a handler missing here claims nothing. */
  handlerFeatures?: Record<string, HandlerFeatures>;
  /** Extra settings shown in Status's verbose "config" (sandbox image, snapshotter …). */
  config?: Record<string, unknown>;
  log?: Logger;
}

/**
 * Looks for CNI network configs in `dir`: ready once one exists.
 *
 * @example
 * ```ts
 * const s = await cniDirStatus("/etc/cni/net.d"); // { ready: false, reason: "NetworkPluginNotReady", … }
 * ```
 */
export async function cniDirStatus(dir: string): Promise<NetworkStatus> {
  const files: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isFile && !e.isSymlink) continue;
      if (CNI_EXTENSIONS.some((x) => e.name.endsWith(x))) files.push(e.name);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  files.sort();
  if (files.length === 0) {
    return {
      ready: false,
      reason: NETWORK_NOT_READY_REASON,
      message: NETWORK_NOT_READY_MESSAGE,
      files,
    };
  }
  return { ready: true, files };
}

/** The three handlers, sharing the pod CIDR the kubelet pushed. */
export function runtimeStatusHandlers(deps: RuntimeStatusDeps = {}): {
  status: (req: StatusRequest) => Promise<StatusResponse>;
  runtimeConfig: () => Promise<RuntimeConfigResponse>;
  updateRuntimeConfig: (req: UpdateRuntimeConfigRequest) => Promise<UpdateRuntimeConfigResponse>;
} {
  const cniConfDir = deps.cniConfDir ?? DEFAULT_CNI_CONF_DIR;
  const cgroupDriver = deps.cgroupDriver ?? "cgroupfs";
  const handlers = deps.runtimeHandlers ?? ["runc"];
  let podCIDR = "";
  const network = deps.networkStatus ?? (() => cniDirStatus(cniConfDir));

  return {
    async status(req) {
      let net: NetworkStatus;
      try {
        net = await network();
      } catch (e) {
        net = {
          ready: false,
          reason: NETWORK_NOT_READY_REASON,
          message: `Network plugin returns error: ${e instanceof Error ? e.message : e}`,
        };
      }
      const info: Record<string, string> = {};
      if (req.verbose) {
        info.config = JSON.stringify({
          cniConfDir,
          cgroupDriver,
          runtimeHandlers: handlers,
          podCIDR,
          ...deps.config,
        });
        info.cniconfig = JSON.stringify({ confDir: cniConfDir, networks: net.files ?? [] });
        info.lastCNILoadStatus = net.ready ? "OK" : (net.message ?? "not ready");
      }
      const none: HandlerFeatures = { recursiveReadOnlyMounts: false, userNamespaces: false };
      const features = (name: string) => ({ ...(deps.handlerFeatures?.[name] ?? none) });
      return {
        status: {
          conditions: [
            { type: "RuntimeReady", status: true, reason: "", message: "" },
            {
              type: "NetworkReady",
              status: net.ready,
              reason: net.ready ? "" : (net.reason ?? NETWORK_NOT_READY_REASON),
              message: net.ready ? "" : (net.message ?? ""),
            },
          ],
        },
        info,
        runtimeHandlers: ["", ...handlers].map((name) => ({
          name,
          features: features(name === "" ? handlers[0] : name),
        })),
        features: { supplementalGroupsPolicy: true, userNamespacesHostNetwork: false },
      };
    },
    runtimeConfig() {
      return Promise.resolve({
        linux: {
          cgroupDriver: cgroupDriver === "systemd" ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS,
        },
      });
    },
    updateRuntimeConfig(req) {
      const cidr = req.runtimeConfig?.networkConfig?.podCidr ?? "";
      if (cidr !== "" && cidr !== podCIDR) {
        deps.log?.info("pod CIDR updated", { podCIDR: cidr, previous: podCIDR });
        podCIDR = cidr;
      }
      return Promise.resolve({});
    },
  };
}
