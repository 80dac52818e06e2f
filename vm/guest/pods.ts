/**
 * The pod that lives through a guest reboot, driven through the CRI the way the kubelet would
 * (in the guest, against the systemd-run daemon):
 *
 *   pods.ts create <state.json>   pull, run a pod in a kubelet-style systemd slice, start a
 *                                 container, check its scope and stats; save the ids and IP
 *   pods.ts check <state.json>    after the reboot: the pod is listed NOTREADY and its container
 *                                 EXITED, stop + remove release its IP, a new pod runs
 *   pods.ts image <state.json>    only pull the busybox fixture into the node's store and save
 *                                 its name (the kubeadm phase's workload, when run on its own)
 *
 * Exits non-zero with a message naming the first expectation that failed.
 */
import * as grpc from "@grpc/grpc-js";
import { parse, stringify } from "smol-toml";
import {
  ContainerState,
  type PodSandboxConfig,
  PodSandboxState,
} from "../../src/gen/runtime/v1/api.ts";
import { call } from "../../src/grpc/clients.ts";
import { containerConfig, podConfig } from "../../e2e/cri_requests.ts";
import { pullCriImage } from "../../e2e/cri_env.ts";
import { startRegistry } from "../../scripts/fixtures/registry.ts";
import { pushFixtures } from "../../scripts/fixtures/images.ts";
import { RuntimeServiceClient } from "../../src/grpc/clients.ts";

const SOCKET = "/run/k8scontainerd/k8scontainerd.sock";
const CONFIG = "/etc/k8scontainerd/config.toml";
const NETWORK = "k8sc-vm";
const IPAM_DIR = `/var/lib/cni/networks/${NETWORK}`;
const SLICE = "kubepods-besteffort-podvm1.slice";

interface Saved {
  podSandboxId: string;
  containerId: string;
  ip: string;
  busybox: string;
}

const rt = new RuntimeServiceClient(`unix://${SOCKET}`, grpc.credentials.createInsecure());
const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
  call<Req, Res>(SOCKET, "k8s.io", fn, req, 120_000);

function expectThat(ok: boolean, what: string): void {
  if (!ok) throw new Error(`expected ${what}`);
  console.log(`ok: ${what}`);
}

function sh(cmd: string, ...args: string[]): string {
  const o = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const out = new TextDecoder().decode(o.stdout).trim();
  if (!o.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
  }
  return out;
}

function podPlan(name: string): PodSandboxConfig {
  return podConfig(name, {
    namespace: "vm",
    logDirectory: `/var/log/pods/vm_${name}`,
    labels: { app: name },
    linux: { cgroupParent: SLICE },
  });
}

async function runPod(name: string, image: string, command: string[]) {
  const config = podPlan(name);
  await Deno.mkdir(config.logDirectory, { recursive: true });
  const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
  const status = await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false });
  const { containerId } = await r(rt.createContainer.bind(rt), {
    podSandboxId,
    config: containerConfig("app", image, command),
    sandboxConfig: config,
  });
  await r(rt.startContainer.bind(rt), { containerId });
  return { podSandboxId, containerId, ip: status.status!.network!.ip };
}

async function create(stateFile: string): Promise<void> {
  // A registry in the guest, and the daemon configured for it and for a CNI bridge.
  const registry = await startRegistry();
  await pushFixtures(registry.address, ["busybox", "pause"]);
  await Deno.mkdir("/etc/cni/net.d", { recursive: true });
  await Deno.writeTextFile(
    "/etc/cni/net.d/10-k8sc-vm.conflist",
    JSON.stringify({
      cniVersion: "1.0.0",
      name: NETWORK,
      plugins: [{
        type: "bridge",
        bridge: "k8scvm0",
        isGateway: true,
        ipam: { type: "host-local", ranges: [[{ subnet: "10.89.0.0/24" }]] },
      }, { type: "portmap", capabilities: { portMappings: true } }],
    }),
  );
  const config = parse(await Deno.readTextFile(CONFIG)) as Record<string, Record<string, unknown>>;
  config.cri = {
    ...config.cri,
    sandbox_image: `${registry.address}/pause:latest`,
    cni_conf_dir: "/etc/cni/net.d",
    cgroup_driver: "systemd",
  };
  await Deno.writeTextFile(CONFIG, stringify(config) + "\n");
  sh("systemctl", "restart", "k8scontainerd");

  const busybox = `${registry.address}/busybox:latest`;
  await pullCriImage(SOCKET, busybox);
  const pod = await runPod("survivor", busybox, ["sh", "-c", "echo before reboot; sleep 100000"]);
  expectThat(pod.ip.startsWith("10.89.0."), `the pod got an IP on the bridge (${pod.ip})`);

  // runc asked systemd for a scope in the kubelet's slice (systemd expands the slice path).
  const scope = `k8scontainerd-${pod.containerId}.scope`;
  const cgroup = sh("systemctl", "show", "-p", "ControlGroup", "--value", scope);
  expectThat(
    cgroup ===
      `/kubepods.slice/kubepods-besteffort.slice/${SLICE}/${scope}`,
    `the container runs in systemd scope ${scope} under ${SLICE} (got ${cgroup})`,
  );
  const procs = (await Deno.readTextFile(`/sys/fs/cgroup${cgroup}/cgroup.procs`)).trim();
  expectThat(procs.length > 0, `the scope's cgroup.procs lists the container (${procs})`);
  const stats = await r(rt.containerStats.bind(rt), { containerId: pod.containerId });
  const mem = Number(stats.stats?.memory?.workingSetBytes?.value ?? 0);
  expectThat(mem > 0, `ContainerStats reads cgroup v2 memory through the scope (${mem} bytes)`);
  await registry.stop();
  const saved: Saved = { ...pod, busybox };
  await Deno.writeTextFile(stateFile, JSON.stringify(saved));
}

async function check(stateFile: string): Promise<void> {
  const saved = JSON.parse(await Deno.readTextFile(stateFile)) as Saved;
  const pods = (await r(rt.listPodSandbox.bind(rt), { filter: undefined })).items;
  const pod = pods.find((p) => p.id === saved.podSandboxId);
  expectThat(!!pod, `the pod from before the reboot is listed (${pods.length} pods)`);
  expectThat(
    pod!.state === PodSandboxState.SANDBOX_NOTREADY,
    `it is NOTREADY (got ${PodSandboxState[pod!.state]})`,
  );
  const c = (await r(rt.containerStatus.bind(rt), {
    containerId: saved.containerId,
    verbose: false,
  })).status!;
  expectThat(
    c.state === ContainerState.CONTAINER_EXITED,
    `its container is EXITED (got ${ContainerState[c.state]}, reason ${c.reason})`,
  );
  const logs = await Deno.readTextFile(`/var/log/pods/vm_survivor/app.log`);
  expectThat(logs.includes("stdout F before reboot"), "its log from before the reboot is kept");
  const leases = () => [...Deno.readDirSync(IPAM_DIR)].map((e) => e.name);
  expectThat(
    leases().includes(saved.ip),
    `its IP ${saved.ip} is held until the kubelet removes it`,
  );
  await r(rt.stopPodSandbox.bind(rt), { podSandboxId: saved.podSandboxId });
  await r(rt.removePodSandbox.bind(rt), { podSandboxId: saved.podSandboxId });
  expectThat(!leases().includes(saved.ip), `stop + remove released ${saved.ip} (CNI DEL)`);
  const left = (await r(rt.listContainers.bind(rt), { filter: undefined })).containers;
  expectThat(left.length === 0, `no containers are left (${left.length})`);

  // The node works after the reboot: a new pod from the images already in the store.
  const again = await runPod("after", saved.busybox, ["sleep", "100000"]);
  const out = await r(rt.execSync.bind(rt), {
    containerId: again.containerId,
    cmd: ["cat", "/proc/self/cgroup"],
    timeout: 30n,
  });
  const cg = new TextDecoder().decode(out.stdout).trim();
  expectThat(cg === "0::/", `a new pod runs, exec works, cgroup namespace private (${cg})`);
  await r(rt.stopPodSandbox.bind(rt), { podSandboxId: again.podSandboxId });
  await r(rt.removePodSandbox.bind(rt), { podSandboxId: again.podSandboxId });
}

/** The busybox fixture pulled through the CRI from a registry of its own, which then stops. */
async function image(stateFile: string): Promise<void> {
  const registry = await startRegistry();
  try {
    await pushFixtures(registry.address, ["busybox"]);
    const busybox = `${registry.address}/busybox:latest`;
    await pullCriImage(SOCKET, busybox);
    await Deno.writeTextFile(stateFile, JSON.stringify({ busybox }));
  } finally {
    await registry.stop();
  }
}

const [verb, stateFile] = Deno.args;
try {
  if (verb === "create") await create(stateFile);
  else if (verb === "check") await check(stateFile);
  else if (verb === "image") await image(stateFile);
  else throw new Error(`usage: pods.ts create|check|image <state.json> (got ${verb})`);
} catch (e) {
  console.error(`FAILED: ${e instanceof Error ? e.message : e}`);
  Deno.exitCode = 1;
} finally {
  rt.close();
}
