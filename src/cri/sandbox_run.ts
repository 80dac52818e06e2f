/**
 * CRI `RunPodSandbox`: reserve the pod's name, make sure the pause image is present, set up
 * the pod network (a named netns + CNI ADD), write the pod's hostname / hosts / resolv.conf,
 * mount its /dev/shm, and run the pause container that holds the pod's namespaces. Any failure
 * undoes every step, so a failed sandbox leaves no netns, IP, mount or container behind; a
 * daemon killed mid-way leaves the record marked as building, and the next start undoes the
 * rest (sandbox_recover.ts).
 */
import type {
  PodSandboxConfig,
  RunPodSandboxRequest,
  RunPodSandboxResponse,
} from "../gen/runtime/v1/api.ts";
import { NamespaceMode, Protocol } from "../gen/runtime/v1/api.ts";
import { type PodIdMappings, podUsernsMappings } from "./userns.ts";
import type { PodUserns } from "../services/sandboxes/userns.ts";
import { FailedPreconditionError, InvalidArgumentError } from "../errdefs/errors.ts";
import { CRI_NAMESPACE, type CriContext, featuresOf, newId, sandboxDir } from "./context.ts";
import type { PortMapping, SetUpResult } from "../services/sandboxes/service.ts";
import { sandboxAppArmorProfile } from "./apparmor.ts";

const PROTOCOLS: Record<number, string> = {
  [Protocol.TCP]: "tcp",
  [Protocol.UDP]: "udp",
  [Protocol.SCTP]: "sctp",
};

export function sandboxNameKey(c: PodSandboxConfig): string {
  const m = c.metadata;
  if (!m?.name || !m.namespace || !m.uid) {
    throw new InvalidArgumentError("sandbox config metadata must have name, namespace and uid");
  }
  return `${m.name}_${m.namespace}_${m.uid}_${m.attempt}`;
}

export function portMappings(c: PodSandboxConfig): PortMapping[] {
  return c.portMappings.filter((p) => p.hostPort > 0).map((p) => ({
    hostPort: p.hostPort,
    containerPort: p.containerPort,
    protocol: PROTOCOLS[p.protocol] ?? "tcp",
    hostIP: p.hostIp || undefined,
  }));
}

export function hostNetwork(c: PodSandboxConfig): boolean {
  return c.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.NODE;
}

/** /etc/resolv.conf for the pod: the DNS config the kubelet sent, or the host's. */
async function resolvConf(c: PodSandboxConfig): Promise<string> {
  const dns = c.dnsConfig;
  if (!dns || (!dns.servers.length && !dns.searches.length && !dns.options.length)) {
    return await Deno.readTextFile("/etc/resolv.conf").catch(() => "");
  }
  const lines = [];
  if (dns.searches.length) lines.push(`search ${dns.searches.join(" ")}`);
  for (const s of dns.servers) lines.push(`nameserver ${s}`);
  if (dns.options.length) lines.push(`options ${dns.options.join(" ")}`);
  return lines.join("\n") + "\n";
}

// Sandboxes whose RunPodSandbox is running in this process, each with a promise of its end. A
// record marked as building but not in here was left by a killed daemon: Stop then has to tear
// down what it built.
const inFlight = new Map<string, Promise<void>>();

/** Whether this process is still running RunPodSandbox for `id`. */
export function runInFlight(id: string): boolean {
  return inFlight.has(id);
}

/**
 * Resolves once RunPodSandbox for `id` has ended, either way (at once when none runs). The
 * pause task starts before the pod is ready (CNI ADD may still run): the pod's STARTED event
 * waits for this, so the kubelet never hears of a started pod that is not ready yet.
 */
export function runSettled(id: string): Promise<void> {
  return inFlight.get(id) ?? Promise.resolve();
}

export async function runPodSandbox(
  ctx: CriContext,
  req: RunPodSandboxRequest,
): Promise<RunPodSandboxResponse> {
  const config = req.config;
  if (!config) throw new InvalidArgumentError("sandbox config is required");
  const nameKey = sandboxNameKey(config);
  const id = newId();
  const handler = req.runtimeHandler || "runc";
  // Checked before anything is built: a refused user namespace leaves nothing to undo.
  const userns = podUsernsMappings(config, { name: handler, features: featuresOf(ctx, handler) });
  const log = ctx.log.child({ sandbox: id.slice(0, 12), pod: nameKey });
  const dir = sandboxDir(ctx, id);
  const undo: (() => Promise<unknown>)[] = [];
  // Reserve the name first: a second RunPodSandbox for the same pod attempt fails fast.
  // Marked as being built until the pod runs: a daemon killed before then leaves the mark, and
  // the next start undoes what was built (sandbox_recover.ts).
  ctx.store.addSandbox({
    id,
    nameKey,
    config,
    handler,
    netnsPath: "",
    ips: [],
    state: "notready",
    building: true,
  });
  const settled = Promise.withResolvers<void>();
  inFlight.set(id, settled.promise);
  undo.push(() => Promise.resolve(ctx.store.removeSandbox(id)));
  try {
    await ensureImage(ctx, ctx.sandboxImage);
    await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
    undo.push(() => Deno.remove(dir, { recursive: true }).catch(() => {}));

    const hostNet = hostNetwork(config);
    const netReq = {
      podId: id,
      podName: config.metadata!.name,
      podNamespace: config.metadata!.namespace,
      podUid: config.metadata!.uid,
      portMappings: portMappings(config),
    };
    let netnsPath = "";
    let network: Promise<SetUpResult> | undefined;
    // A pod user namespace comes first: the pod's netns is made inside it (userns.ts).
    let podUserns: PodUserns | undefined;
    if (userns) {
      podUserns = await ctx.sandboxes.createUserns(
        `${dir}/userns`,
        userns.uids[0],
        userns.gids[0],
        true,
      );
      const helper = podUserns;
      undo.push(() => Promise.resolve(ctx.sandboxes.releaseUserns(helper.usernsPath)));
      undo.push(() => helper.helperDone());
    }
    if (!hostNet) {
      const status = await ctx.sandboxes.networkStatus();
      if (!status.ready) {
        throw new FailedPreconditionError(
          `pod network is not ready: ${status.message ?? status.reason ?? "no CNI config"}`,
        );
      }
      // The pause container needs only the namespace: CNI ADD runs while it is created (a
      // third of RunPodSandbox's time), unless a sysctl needs the pod's interfaces in place.
      const named = Promise.withResolvers<string>();
      network = ctx.sandboxes.setUpNetwork(netReq, {
        onNamespace: named.resolve,
        netnsFrom: podUserns?.netnsFrom,
      });
      netnsPath = await Promise.race([named.promise, network.then((n) => n.netnsPath)]);
      if (needsInterfaces(config)) await network;
    }

    // No hostname asked for: the node's, as containerd does (pod names can exceed 63 chars).
    const hostname = config.hostname || Deno.hostname();
    // The netns is named (bind-mounted): the helper that made it may go.
    await podUserns?.helperDone();
    const pause = runPause(ctx, id, config, {
      dir,
      handler,
      hostname,
      netnsPath,
      undo,
      userns: podUserns && userns ? { path: podUserns.usernsPath, ...userns } : undefined,
    });
    // Both run to their end before anything is undone, so the undo sees all either made.
    const [net, paused] = await Promise.allSettled([network ?? Promise.resolve(undefined), pause]);
    if (net.status === "fulfilled" && network) {
      undo.push(() => ctx.sandboxes.tearDownNetwork({ ...netReq, netnsPath }));
    }
    if (net.status === "rejected") throw net.reason;
    if (paused.status === "rejected") throw paused.reason;
    const ips = net.value?.ips ?? [];
    // /etc/hosts is the app containers' (the pause container mounts none): it names the pod's IP.
    await Deno.writeTextFile(
      `${dir}/hosts`,
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${
        ips[0] ? `${ips[0]}\t${hostname}\n` : ""
      }`,
    );

    ctx.store.markSandboxReady(id, netnsPath, ips);
    log.info("pod sandbox running", { ip: ips[0] ?? "", netns: netnsPath });
    return { podSandboxId: id };
  } catch (e) {
    log.warn("pod sandbox failed; undoing", { err: e });
    for (const fn of undo.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn("undo step failed", { err });
      }
    }
    throw e;
  } finally {
    inFlight.delete(id);
    settled.resolve();
  }
}

/**
 * Whether the pod's sysctls name a network interface (`net.ipv4.conf.eth0.…`): runc sets them
 * when it creates the pause container, so the CNI plugins must have made the interface first.
 */
export function needsInterfaces(c: PodSandboxConfig): boolean {
  return Object.keys(c.linux?.sysctls ?? {}).some((k) =>
    /^net\.ipv[46]\.(conf|neigh)\./.test(k) &&
    !/^net\.ipv[46]\.(conf|neigh)\.(all|default|lo)\./.test(k)
  );
}

/**
 * The pod's files (hostname, resolv.conf), its /dev/shm and the running pause container, each
 * step's undo pushed onto `undo` as soon as the step is done.
 */
async function runPause(
  ctx: CriContext,
  id: string,
  config: PodSandboxConfig,
  o: {
    dir: string;
    handler: string;
    hostname: string;
    netnsPath: string;
    undo: (() => Promise<unknown>)[];
    /** The pod's user namespace (persisted at `path`) and its mappings. */
    userns?: PodIdMappings & { path: string };
  },
): Promise<void> {
  const { dir, hostname, netnsPath, undo } = o;
  const hostNet = hostNetwork(config);
  await Deno.writeTextFile(`${dir}/hostname`, `${hostname}\n`);
  await Deno.writeTextFile(`${dir}/resolv.conf`, await resolvConf(config));
  const ns = config.linux?.securityContext?.namespaceOptions;
  const hostIpc = ns?.ipc === NamespaceMode.NODE;
  if (!hostIpc) {
    // One /dev/shm for the whole pod, bind-mounted into each container.
    await ctx.sandboxes.mountShm(`${dir}/shm`);
    undo.push(() => Promise.resolve(ctx.sandboxes.unmountShm(`${dir}/shm`)));
  }
  const sc = config.linux?.securityContext;
  await ctx.containers.create(CRI_NAMESPACE, {
    id,
    image: ctx.sandboxImage,
    runtime: o.handler,
    hostname,
    labels: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": id },
    privileged: !!sc?.privileged,
    cgroupParent: config.linux?.cgroupParent ?? "",
    idmap: o.userns
      ? { usernsPath: o.userns.path, uid: o.userns.uids[0].hostID, gid: o.userns.gids[0].hostID }
      : undefined,
    specOverrides: {
      hostname,
      namespaces: {
        network: hostNet ? "host" : netnsPath,
        ipc: hostIpc ? "host" : "new",
        uts: hostNet ? "host" : "new",
        pid: ns?.pid === NamespaceMode.NODE ? "host" : "new",
        user: o.userns ? o.userns.path : "host",
      },
      idMappings: o.userns ? { uids: o.userns.uids, gids: o.userns.gids } : undefined,
      sysctls: config.linux?.sysctls,
      seccomp: { type: "Unconfined" },
      apparmorProfile: await sandboxAppArmorProfile(ctx, config),
      annotations: {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": id,
        "io.kubernetes.cri.sandbox-name": config.metadata!.name,
        "io.kubernetes.cri.sandbox-namespace": config.metadata!.namespace,
      },
    },
  });
  undo.push(() => ctx.containers.delete(CRI_NAMESPACE, id).catch(() => {}));
  await ctx.containers.createTask(CRI_NAMESPACE, id, { logPath: `${dir}/pause.log` });
  undo.push(() => ctx.containers.deleteTask(CRI_NAMESPACE, id, true).catch(() => {}));
  await ctx.containers.start(CRI_NAMESPACE, id);
}

/** Pulls an image into k8s.io unless present (the pause image on first use). */
export async function ensureImage(ctx: CriContext, name: string): Promise<void> {
  // A record lookup only: reading the image's manifests here cost every RunPodSandbox ~5 ms.
  if (!ctx.images.has(CRI_NAMESPACE, name)) {
    await ctx.images.pull(CRI_NAMESPACE, name, { unpack: true });
  }
}
