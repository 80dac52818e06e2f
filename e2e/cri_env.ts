/**
 * What every CRI e2e suite sets up around its daemon: a registry with the test images, a CNI
 * bridge network of its own (bridge name and subnet per suite, host-local leases under
 * `<dir>/ipam/<network>`), a config pointing the daemon at both, and the clean-up that leaves
 * no monitor, mount or bridge behind whatever the test did to the daemon.
 *
 * @example
 * ```ts
 * import { writeCniConf, writeCriConfig } from "./cri_env.ts";
 * await writeCniConf(dir, { name: "e2e", bridge: "k8sce2e1", subnet: "10.223.1.0/24" });
 * await writeCriConfig(dir, { sandboxImage: `${registry.address}/pause:latest` });
 * ```
 */
import * as grpc from "@grpc/grpc-js";
import { ImageServiceClient } from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/cli/client.ts";
import type { TestDaemon } from "./harness.ts";

/** One CNI network for a suite. */
export interface CniNetwork {
  name: string;
  bridge: string;
  subnet: string;
  /** Plugins chained after the bridge (portmap, a test plugin …). */
  after?: Record<string, unknown>[];
}

/** Writes `<dir>/net.d/10-<name>.conflist`: a bridge with host-local IPs in `<dir>/ipam`. */
export async function writeCniConf(dir: string, n: CniNetwork): Promise<void> {
  await Deno.mkdir(`${dir}/net.d`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/net.d/10-${n.name}.conflist`,
    JSON.stringify({
      cniVersion: "1.0.0",
      name: n.name,
      plugins: [
        {
          type: "bridge",
          bridge: n.bridge,
          isGateway: true,
          ipMasq: false,
          ipam: { type: "host-local", ranges: [[{ subnet: n.subnet }]], dataDir: `${dir}/ipam` },
        },
        ...(n.after ?? []),
      ],
    }),
  );
}

/** Writes `<dir>/config.toml` for the daemon: sandbox image, `<dir>/net.d`, extra [cri] lines. */
export async function writeCriConfig(
  dir: string,
  o: { sandboxImage: string; extraCri?: string },
): Promise<string> {
  const path = `${dir}/config.toml`;
  await Deno.writeTextFile(
    path,
    `[cri]\nsandbox_image = "${o.sandboxImage}"\ncni_conf_dir = "${dir}/net.d"\n${
      o.extraCri ?? ""
    }`,
  );
  return path;
}

/** Pulls `image` into the CRI's namespace. */
export async function pullCriImage(socket: string, image: string): Promise<void> {
  const images = new ImageServiceClient(`unix://${socket}`, grpc.credentials.createInsecure());
  try {
    await call(socket, "k8s.io", images.pullImage.bind(images), {
      image: { image, annotations: {}, userSpecifiedImage: "", runtimeHandler: "", imageRef: "" },
      auth: undefined,
      sandboxConfig: undefined,
    }, 60_000);
  } finally {
    images.close();
  }
}

/**
 * After a suite: kills what the daemon's monitors still run, unmounts what it mounted under its
 * dir, deletes the suite's bridge (and runs `extra` shell, e.g. removing a leftover netns).
 * `[c]onmon` so the pattern does not match the shell running it.
 */
export async function cleanUpAfterDaemon(
  d: TestDaemon | undefined,
  bridge: string,
  extra = "",
): Promise<void> {
  await d?.kill();
  // Also what a failed test left running: containers (killing conmon alone orphans them) and
  // the network namespaces the daemon's CNI cache names.
  const rt = `${d?.dir}/state/runtime`;
  await new Deno.Command("sh", {
    args: [
      "-c",
      `pkill -9 -f '[c]onmon.*${d?.dir}'
      for root in ${rt}/*/*; do
        [ -d "$root" ] || continue; bin=$(basename "$(dirname "$root")")
        for id in $($bin --root "$root" list -q 2>/dev/null); do $bin --root "$root" delete -f "$id"; done
      done
      grep -rhoE '/run/netns/k8sc-[0-9a-f]+' ${d?.dir}/state/cni 2>/dev/null | sort -u |
        while read -r ns; do ip netns delete "$(basename "$ns")" 2>/dev/null; done
      grep -o ' ${d?.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l
      ip link del ${bridge} 2>/dev/null; ${extra} true`,
    ],
  }).output();
  await d?.cleanup();
}
