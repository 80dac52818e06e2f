/**
 * Either runtime set up alike for a CRI benchmark: the same pause image, a CNI bridge network
 * of its own (`<work>/net.d`, IPs in `<work>/ipam`), and registries reached through one hosts
 * directory (containerd's `config_path` layout) that both daemons read.
 *
 * @example
 * ```ts
 * import { startCriDaemon } from "./cri_daemons.ts";
 * const d = await startCriDaemon("ours", {
 *   work, pause: `${registry.address}/pause:latest`, registry: registry.address,
 *   network: { name: "bench-ours", bridge: "k8scbench0", subnet: "10.231.0.0/16" },
 * });
 * ```
 */
import { type CniNetwork, writeCniConf } from "../e2e/cri_env.ts";
import type { TestDaemon } from "../e2e/harness.ts";
import { type Daemon, startContainerd, startOurs } from "./lib.ts";

/** The two runtimes a benchmark compares. */
export type Who = "ours" | "containerd";

/** A started runtime; ours also has its test handle (its log, say). */
export type CriDaemon = Daemon & { daemon?: TestDaemon };

/** What both runtimes of a CRI benchmark are given. */
export interface CriBenchSetup {
  /** The run's scratch directory (CNI config, IPAM, hosts, our config.toml). */
  work: string;
  /** The sandbox (pause) image. */
  pause: string;
  network: CniNetwork;
  /** A hosts directory to use as it is (the critest harness's mirrors). */
  hostsDir?: string;
  /** Without `hostsDir`: the registry (host:port) reached over plain HTTP, via `<work>/certs.d`. */
  registry?: string;
  /** More of our config.toml: whole tables ([metrics], [grpc] …). */
  oursToml?: string;
  /** More arguments of our daemon. */
  oursArgs?: string[];
}

/** Writes `<hostsDir>/<registry>/hosts.toml`: pull and resolve over plain HTTP. */
export async function writePlainHttpHosts(hostsDir: string, registry: string): Promise<void> {
  await Deno.mkdir(`${hostsDir}/${registry}`, { recursive: true });
  await Deno.writeTextFile(
    `${hostsDir}/${registry}/hosts.toml`,
    `server = "http://${registry}"\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
}

/** Starts `who` on a private root with the setup's network, pause image and registries. */
export async function startCriDaemon(who: Who, s: CriBenchSetup): Promise<CriDaemon> {
  await writeCniConf(s.work, s.network);
  const confDir = `${s.work}/net.d`;
  let hostsDir = s.hostsDir;
  if (!hostsDir) {
    hostsDir = `${s.work}/certs.d`;
    await Deno.mkdir(hostsDir, { recursive: true });
    if (s.registry) await writePlainHttpHosts(hostsDir, s.registry);
  }
  if (who === "ours") {
    await Deno.writeTextFile(
      `${s.work}/config.toml`,
      `[registry]\nconfig_path = "${hostsDir}"\n` +
        `[cri]\nsandbox_image = "${s.pause}"\ncni_conf_dir = "${confDir}"\n` + (s.oursToml ?? ""),
    );
    return await startOurs(["--config", `${s.work}/config.toml`, ...(s.oursArgs ?? [])]);
  }
  return await startContainerd({
    extra: [
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = "${s.pause}"`,
      "  restrict_oom_score_adj = true",
      '[plugins."io.containerd.grpc.v1.cri".cni]',
      '  bin_dir = "/usr/lib/cni"',
      `  conf_dir = "${confDir}"`,
      '[plugins."io.containerd.grpc.v1.cri".registry]',
      `  config_path = "${hostsDir}"`,
    ],
  });
}
