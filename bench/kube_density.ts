/**
 * Pod density under a real kubelet: N pods (110 by default, the kubelet's default maxPods) from
 * one Deployment on a one-node cluster whose processes run on this host (../e2e/kube_cluster.ts),
 * driven by the same kubelet binary and configuration once against k8scontainerd and once
 * against containerd 1.6's CRI plugin, in the same run, each runtime on its own CNI bridge and a
 * fresh cluster of its own. Per runtime:
 *   - the time from `kubectl apply` of the Deployment to all N pods Running (polled with
 *     `kubectl get pods -o json` once a second), the first pod seen Running, the median pod;
 *   - the memory of the runtime with all N pods running, read 10 s after the last one was seen
 *     Running: PSS of the daemon plus every monitor (ours: the daemon and its conmon processes,
 *     one per container; containerd: containerd and its containerd-shim-runc-v2 processes, one
 *     per pod), and the runtime's CPU time (daemon and monitors) from apply to all Running;
 *   - the time from `kubectl delete deployment` to no pod left in the API (teardown).
 * The images (busybox and pause, from the test registry) are pulled through the CRI before the
 * clock starts, and the pods' imagePullPolicy is IfNotPresent: the figure is pod start, not pull.
 *
 * Needs root and `K8SC_KUBE_DIR` (as e2e/kube_host_test.ts); without them it says why and skips.
 * The machine is shared: run it under `flock -o /tmp/k8sc-heavy.lock`.
 *
 * Run: K8SC_KUBE_DIR=/opt/kube/bin scripts/deno run -A bench/kube_density.ts [--pods 110]
 * (writes its section of bench/REPORT.md, keeping the rest; `--no-report` only prints it).
 * For finding where the time goes: `--only ours|containerd` runs one runtime (prints its
 * figures, writes no report), `--daemon-log FILE` runs ours at debug level (one line per RPC
 * with its duration) and writes its log there.
 */
import { parseArgs } from "node:util";
import { type Registry, startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import { pullCriImage } from "../e2e/cri_env.ts";
import {
  kubeBinaries,
  type KubeBins,
  type KubeCluster,
  sh,
  sleep,
  startKubeCluster,
  waitFor,
} from "../e2e/kube_cluster.ts";
import {
  cleanUpCriRun,
  cpuSeconds,
  type Daemon,
  median,
  monitorPids,
  netnsNames,
  pss,
  replaceSection,
} from "./lib.ts";
import { type CriDaemon, startCriDaemon } from "./cri_daemons.ts";

/** How long after the last pod was seen Running the memory is read (as in pods.ts). */
export const DENSITY_SETTLE_MS = 10_000;

/** The heading of this benchmark's section in REPORT.md. */
export const DENSITY_HEADING = "## Pod density under a kubelet";

/** One runtime's figures. */
export interface DensityRun {
  /** Seconds from `kubectl apply` to all pods Running. */
  allRunning: number;
  /** Seconds from apply to the first pod seen Running. */
  firstRunning: number;
  /** Seconds from apply to each pod seen Running (1 s polling). */
  seenRunning: number[];
  /** Per pod: its container's startedAt minus the pod's creationTimestamp (1 s resolution). */
  createdToStarted: number[];
  /** Seconds from `kubectl delete deployment` to no pod left. */
  teardown: number;
  /** PSS in bytes with all pods running. */
  daemonPss: number;
  monitorsPss: number;
  monitors: number;
  /** CPU seconds of daemon + monitors (and the children they reaped), apply → all Running. */
  cpu: number;
  /** What was found left behind after the run (empty when clean). */
  leftovers: string[];
}

/** A run of one runtime only (`only`), or of both. */
export type PartialDensityBench = Partial<DensityBench> & Omit<DensityBench, "ours" | "containerd">;

/** Whether both runtimes ran (what the report needs). */
export function isComplete(b: PartialDensityBench): b is DensityBench {
  return b.ours !== undefined && b.containerd !== undefined;
}

export interface DensityBench {
  pods: number;
  started: Date;
  versions: { kubelet: string; containerd: string; runc: string; conmon: string };
  ours: DensityRun;
  containerd: DensityRun;
}

/** Why the benchmark cannot run here, or undefined when it can. */
export function densitySkipReason(): string | undefined {
  if (Deno.uid() !== 0) return "needs root";
  const found = kubeBinaries();
  return "problem" in found ? found.problem : undefined;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output()
    .catch(() => undefined);
  if (!out) return "?";
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return text.split("\n")[0].trim();
}

/** The Deployment: `pods` replicas of busybox `sleep 3600`, no requests, 1 s grace. */
export function densityDeployment(image: string, pods: number) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "density" },
    spec: {
      replicas: pods,
      selector: { matchLabels: { app: "density" } },
      template: {
        metadata: { labels: { app: "density" } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: "sleep",
            image,
            imagePullPolicy: "IfNotPresent",
            command: ["sleep", "3600"],
          }],
        },
      },
    },
  };
}

// deno-lint-ignore no-explicit-any
type PodList = { items: any[] };

async function listPods(c: KubeCluster): Promise<PodList> {
  return await c.getJson(["pods", "-n", "default"]);
}

/** Lines describing what a runtime's run left on the host (processes, mounts, netns, bridge). */
async function leftovers(
  d: Daemon,
  c: KubeCluster,
  bridge: string,
  netnsBefore: Set<string>,
): Promise<string[]> {
  const out = await sh(`
    ps -eo pid,args | grep -E '[c]onmon|[c]ontainerd-shim' | grep -F '${d.dir}' || true
    grep -oE ' (${d.dir}|${c.dir})/[^ ]*' /proc/self/mountinfo || true
    ip link show ${bridge} 2>/dev/null | head -1 || true
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do [ -d "$h${c.cgroupRoot}" ] && echo "$h${c.cgroupRoot}"; done; true
  `);
  const lines = out.split("\n").filter((l) => l.trim());
  for (const n of await netnsNames()) {
    if (!netnsBefore.has(n) && /^(k8sc-|cni-)/.test(n)) lines.push(`netns ${n}`);
  }
  return lines;
}

/** Runs one runtime's pass: its cluster, the Deployment up and down, its figures. */
async function runOne(o: {
  who: "ours" | "containerd";
  bins: KubeBins;
  registry: Registry;
  pods: number;
  log: (s: string) => void;
  /** Ours at debug level, its log written here after the run. */
  daemonLog?: string;
}): Promise<DensityRun> {
  const { who, registry, pods, log } = o;
  const pause = `${registry.address}/pause:latest`;
  const busybox = `${registry.address}/busybox:latest`;
  const bridge = who === "ours" ? "k8sdens1" : "k8sdens2";
  const subnet = who === "ours" ? "10.223.100.0/24" : "10.223.101.0/24";
  const netnsBefore = await netnsNames();
  const work = await Deno.makeTempDir({ prefix: `bench-density-${who}-`, dir: "/var/tmp" });
  await Deno.chmod(work, 0o711);
  let d: CriDaemon | undefined;
  let c: KubeCluster | undefined;
  let result: DensityRun | undefined;
  try {
    d = await startCriDaemon(who, {
      work,
      pause,
      registry: registry.address,
      network: { name: `density-${who}`, bridge, subnet },
      oursArgs: o.daemonLog ? ["--log-level", "debug"] : [],
    });
    for (const image of [pause, busybox]) await pullCriImage(d.socket, image);

    c = await startKubeCluster({
      bins: o.bins,
      dir: `${work}/cluster`,
      runtimeSocket: d.socket,
      podInfraImage: pause,
      maxPods: Math.max(110, pods),
      serviceCidr: "10.223.102.0/24",
      name: `density-${who}`,
    });
    await c.waitNodeReady();
    // The Deployment's pods need the default ServiceAccount (the controller-manager makes it).
    const cluster = c;
    await waitFor(
      "the default ServiceAccount",
      async () => {
        const r = await cluster.kubectl(["get", "serviceaccount", "default"], { allowFail: true });
        return r.code === 0 ? true : undefined;
      },
      60_000,
      1000,
    );
    log(`${who}: node Ready; applying ${pods} replicas`);

    const cpu0 = await cpuSeconds(d.pid);
    const t0 = performance.now();
    await c.apply(densityDeployment(busybox, pods));
    const seen = new Map<string, number>();
    // deno-lint-ignore no-explicit-any
    let last: any[] = [];
    const deadline = t0 + Math.max(300_000, pods * 6_000);
    while (seen.size < pods) {
      if (performance.now() > deadline) {
        const phases = last.map((p) => p.status?.phase).join(",");
        throw new Error(`${who}: ${seen.size}/${pods} pods Running after ${pods * 6} s: ${phases}`);
      }
      const list = await listPods(c);
      const now = (performance.now() - t0) / 1000;
      last = list.items;
      for (const p of list.items) {
        if (p.status?.phase === "Running" && !seen.has(p.metadata.name)) {
          seen.set(p.metadata.name, now);
        }
      }
      if (seen.size < pods) await sleep(1000);
    }
    const allRunning = Math.max(...seen.values());
    // The runtime's CPU to this point: the daemon's, and every monitor's (all started since).
    let cpu = await cpuSeconds(d.pid) - cpu0;
    for (const pid of await monitorPids(d.dir)) cpu += await cpuSeconds(pid).catch(() => 0);
    log(`${who}: all ${pods} Running after ${allRunning.toFixed(1)} s`);

    const createdToStarted = last.map((p) =>
      (Date.parse(p.status.containerStatuses?.[0]?.state?.running?.startedAt) -
        Date.parse(p.metadata.creationTimestamp)) / 1000
    ).filter((x) => Number.isFinite(x));

    await sleep(DENSITY_SETTLE_MS);
    const daemonPss = await pss(d.pid);
    const mons = await monitorPids(d.dir);
    let monitorsPss = 0;
    for (const pid of mons) monitorsPss += await pss(pid).catch(() => 0);
    log(
      `${who}: PSS daemon ${(daemonPss / 1048576).toFixed(1)} MiB + ${mons.length} monitors ${
        (monitorsPss / 1048576).toFixed(1)
      } MiB`,
    );

    const t1 = performance.now();
    await c.kubectl(["delete", "deployment", "density", "--wait=false"]);
    const gone = t1 + Math.max(300_000, pods * 6_000);
    while ((await listPods(c)).items.length > 0) {
      if (performance.now() > gone) throw new Error(`${who}: pods still there after delete`);
      await sleep(1000);
    }
    const teardown = (performance.now() - t1) / 1000;
    log(`${who}: all pods gone ${teardown.toFixed(1)} s after the delete`);

    const times = [...seen.values()];
    result = {
      allRunning,
      firstRunning: Math.min(...times),
      seenRunning: times,
      createdToStarted,
      teardown,
      daemonPss,
      monitorsPss,
      monitors: mons.length,
      cpu,
      leftovers: [],
    };
    return result;
  } finally {
    // The kubelet first (it would restart what the runtime's end kills), then the runtime,
    // then whatever either left: mounts and cgroups under the cluster, monitors, netns, bridge.
    await c?.stop();
    await d?.stop();
    if (o.daemonLog && d?.daemon) await Deno.writeTextFile(o.daemonLog, d.daemon.log());
    await c?.cleanup();
    const keep = Deno.env.get("K8SC_KUBE_KEEP") !== undefined;
    // cleanUpCriRun removes the dir it is given: with K8SC_KUBE_KEEP, one that does not exist.
    if (d) await cleanUpCriRun(d, bridge, keep ? `${work}/not-kept` : work, netnsBefore);
    if (keep) console.error(`kept ${work}`);
    if (d && c) {
      const left = await leftovers(d, c, bridge, netnsBefore);
      if (left.length) console.error(`${who}: left behind:\n  ${left.join("\n  ")}`);
      if (result) result.leftovers = left;
    }
  }
}

/** Both runtimes in turn (ours first), same kubelet binary and configuration. */
export async function benchDensity(
  o: {
    pods: number;
    log?: (s: string) => void;
    only?: "ours" | "containerd";
    daemonLog?: string;
  },
): Promise<PartialDensityBench> {
  const found = kubeBinaries();
  if ("problem" in found) throw new Error(found.problem);
  const log = o.log ?? ((s: string) => console.error(s));
  const started = new Date();
  const versions = {
    kubelet: await firstLine(found.bins.kubelet, ["--version"]),
    containerd: await firstLine("containerd", ["--version"]),
    runc: await firstLine("runc", ["--version"]),
    conmon: await firstLine("conmon", ["--version"]),
  };
  const registry = await startRegistry();
  try {
    await pushFixtures(registry.address, ["busybox", "pause"]);
    const res: Partial<Record<"ours" | "containerd", DensityRun>> = {};
    for (const who of ["ours", "containerd"] as const) {
      if (o.only && o.only !== who) continue;
      res[who] = await runOne({
        who,
        bins: found.bins,
        registry,
        pods: o.pods,
        log,
        daemonLog: o.daemonLog,
      });
    }
    return { pods: o.pods, started, versions, ours: res.ours, containerd: res.containerd };
  } finally {
    await registry.stop();
  }
}

/** The REPORT.md section: heading, what ran, the table of figures and ratios. */
export function reportDensity(b: DensityBench): string {
  const { ours: x, containerd: y } = b;
  const mib = (n: number) => n / 1048576;
  const row = (name: string, a: number, c: number, unit: string, digits: number, goal = "") =>
    `| ${name} | ${a.toFixed(digits)} ${unit} | ${c.toFixed(digits)} ${unit} | ${
      (a / c).toFixed(2)
    }${goal} |`;
  const clean = [...x.leftovers, ...y.leftovers].length === 0
    ? "Nothing was left behind by either run (processes, mounts, netns, bridges, cgroups checked)."
    : `Left behind: ${[...x.leftovers, ...y.leftovers].join("; ")}.`;
  return `${DENSITY_HEADING} (${b.pods} pods from one Deployment, same kubelet)

Run ${b.started.toISOString()}: ${b.versions.kubelet}; containerd ${
    b.versions.containerd.split(" ")[2] ?? b.versions.containerd
  }; ${b.versions.runc}; ${b.versions.conmon}. A one-node cluster on the host (etcd, apiserver,
controller-manager, scheduler, kubelet with the cgroupfs driver; e2e/kube_cluster.ts), fresh for
each runtime, the same kubelet binary and configuration but for its runtime endpoint. One
Deployment of ${b.pods} busybox \`sleep 3600\` pods (no requests, imagePullPolicy IfNotPresent, images
pulled through the CRI first, grace period 1 s); pod state polled with \`kubectl get pods -o json\`
once a second. Memory is PSS read ${
    DENSITY_SETTLE_MS / 1000
  } s after the last pod was seen Running: ours is the daemon (run
from source) plus its conmon processes (one per container, pause included), containerd's is
containerd plus its containerd-shim-runc-v2 processes (one per pod). CPU is the runtime's (daemon
and monitors, with the runc and CNI runs they reaped) from apply to all Running. Goals: time ≤ 0.80,
memory ≤ 0.60. ${clean}

| measure | k8scontainerd | containerd 1.6 CRI | ratio |
|---|---|---|---|
${
    [
      row(
        `kubectl apply → all ${b.pods} Running`,
        x.allRunning,
        y.allRunning,
        "s",
        1,
        " (goal ≤ 0.80)",
      ),
      row("kubectl apply → first pod Running", x.firstRunning, y.firstRunning, "s", 1),
      row(
        "kubectl apply → pod Running, p50",
        median(x.seenRunning),
        median(y.seenRunning),
        "s",
        1,
      ),
      row(
        "pod created → container started, p50 (API timestamps, 1 s resolution)",
        median(x.createdToStarted),
        median(y.createdToStarted),
        "s",
        1,
      ),
      row(
        `kubectl delete deployment → all ${b.pods} pods gone`,
        x.teardown,
        y.teardown,
        "s",
        1,
      ),
      row(`daemon PSS, ${b.pods} pods running`, mib(x.daemonPss), mib(y.daemonPss), "MiB", 1),
      row(
        `monitors PSS (${x.monitors} conmon / ${y.monitors} shims)`,
        mib(x.monitorsPss),
        mib(y.monitorsPss),
        "MiB",
        1,
      ),
      row(
        "daemon + monitors PSS",
        mib(x.daemonPss + x.monitorsPss),
        mib(y.daemonPss + y.monitorsPss),
        "MiB",
        1,
        " (goal ≤ 0.60)",
      ),
      row("runtime CPU, apply → all Running", x.cpu, y.cpu, "s", 1),
    ].join("\n")
  }
`;
}

/** Writes the section into REPORT.md, replacing an older one and keeping every other section. */
export async function writeDensitySection(section: string): Promise<void> {
  const url = new URL("./REPORT.md", import.meta.url);
  const old = await Deno.readTextFile(url).catch(() => "");
  await Deno.writeTextFile(url, replaceSection(old, DENSITY_HEADING, section));
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pods: { type: "string" },
      "no-report": { type: "boolean" },
      only: { type: "string" },
      "daemon-log": { type: "string" },
    },
  });
  const only = values.only as "ours" | "containerd" | undefined;
  if (only !== undefined && only !== "ours" && only !== "containerd") {
    console.error(`kube_density: --only takes ours or containerd, not "${only}"`);
    Deno.exit(2);
  }
  const why = densitySkipReason();
  if (why) {
    console.log(`kube_density: skipped: ${why}`);
    Deno.exit(0);
  }
  const b = await benchDensity({
    pods: Number(values.pods ?? 110),
    only,
    daemonLog: values["daemon-log"],
  });
  if (!isComplete(b)) {
    console.log(JSON.stringify(b.ours ?? b.containerd, null, 1));
  } else {
    const section = reportDensity(b);
    if (!values["no-report"]) await writeDensitySection(section);
    console.log(section);
  }
  console.log(JSON.stringify(b));
}
