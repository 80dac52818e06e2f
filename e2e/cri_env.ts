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
import { call } from "../src/grpc/clients.ts";
import { startTestDaemon, type TestDaemon } from "./harness.ts";
import { type Registry, startRegistry } from "../scripts/fixtures/registry.ts";
import { type FixtureName, pushFixtures } from "../scripts/fixtures/images.ts";
import { ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";

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

/** What {@link startCriSuite} sets up; `stop()` undoes all of it. */
export interface CriSuite {
  registry: Registry;
  daemon: TestDaemon;
  /** The suite's temp dir (CNI config, daemon config, whatever the suite writes). */
  dir: string;
  rt: RuntimeServiceClient;
  img: ImageServiceClient;
  /** `<registry>/<fixture>:latest`. */
  image(fixture: string): string;
  /** A unary CRI call on the daemon's socket (60 s deadline). */
  call: <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) => Promise<Res>;
  stop(extraCleanUp?: string): Promise<void>;
}

/**
 * The set-up every CRI e2e suite shares: a registry with `fixtures` (pause always), a temp dir
 * (mode 0711, so user-namespaced pods reach their bundles) with a CNI bridge network, a daemon
 * whose config names both (plus `extraCri` lines, written after `prepare(dir)` ran), both CRI
 * clients, and `pull` images pulled into k8s.io.
 *
 * @example
 * ```ts
 * const s = await startCriSuite({ name: "cdi", bridge: "k8scdi1", subnet: "10.223.77.0/24", fixtures: ["busybox"] });
 * await s.call(s.rt.version.bind(s.rt), { version: "" });
 * await s.stop();
 * ```
 */
export async function startCriSuite(o: {
  name: string;
  bridge: string;
  subnet: string;
  fixtures: FixtureName[];
  pull?: FixtureName[];
  extraCri?: (dir: string) => string;
  prepare?: (dir: string) => Promise<void>;
}): Promise<CriSuite> {
  const registry = await startRegistry();
  await pushFixtures(registry.address, [...new Set<FixtureName>(["pause", ...o.fixtures])]);
  const image = (f: string) => `${registry.address}/${f}:latest`;
  const dir = await Deno.makeTempDir({ prefix: `k8sc-cri-${o.name}-`, dir: "/var/tmp" });
  await Deno.chmod(dir, 0o711);
  await writeCniConf(dir, { name: o.name, bridge: o.bridge, subnet: o.subnet });
  await o.prepare?.(dir);
  const configToml = await writeCriConfig(dir, {
    sandboxImage: image("pause"),
    extraCri: o.extraCri?.(dir),
  });
  const daemon = await startTestDaemon({ args: ["--config", configToml] });
  const rt = new RuntimeServiceClient(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
  const img = new ImageServiceClient(`unix://${daemon.socket}`, grpc.credentials.createInsecure());
  for (const f of o.pull ?? []) await pullCriImage(daemon.socket, image(f));
  return {
    registry,
    daemon,
    dir,
    rt,
    img,
    image,
    call: (fn, req) => call(daemon.socket, "k8s.io", fn, req, 60_000),
    async stop(extra = "") {
      rt.close();
      img.close();
      await cleanUpAfterDaemon(daemon, o.bridge, extra);
      await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
