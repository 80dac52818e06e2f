/**
 * Memory after work: each daemon fresh (idle PSS, read after a settle), then after whole critest
 * runs against it, then with P pods running — k8scontainerd beside containerd 1.6 in one run, so
 * that memory a daemon keeps from the work it did (caches, leaks, fragmentation) shows up, which
 * a fresh daemon's figures cannot show.
 *
 * Needs root, the steering repo's conformance harness (`shared/conformance/critest`, beside this
 * repository) and `K8SC_CRITEST_DIR`: a directory holding `critest` and `crictl` (cri-tools
 * v1.32, built outside this repository). Without them it is skipped, saying why.
 *
 * Run: scripts/deno run -A bench/critest_memory.ts [--runs 2] [--pods 30]
 */
import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { call, ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";
import { REPO } from "../e2e/harness.ts";
import { PullImageRequest } from "../src/gen/runtime/v1/api.ts";
import { startCriDaemon, type Who } from "./cri_daemons.ts";
import { cleanUpCriRun, mib, monitorsPss, netnsNames, pss } from "./lib.ts";
import { containerConfig, MEMORY_SETTLE_MS, podConfig } from "./pods.ts";

export const CRITEST_MEMORY_HEADING = "## Memory after critest runs";

const HARNESS = `${REPO}../shared/conformance/critest`;
/** The busybox critest itself uses, from the harness's registry through the mirror files. */
const IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.29-2";
const PAUSE = "registry.k8s.io/pause:3.9";

export interface RuntimeMemory {
  /** Daemon PSS of the fresh daemon, bytes. */
  idle: number;
  /** Daemon PSS after the critest runs, with nothing running, bytes. */
  afterRuns: number;
  /** Daemon PSS, and daemon + monitors, with the pods running after the runs, bytes. */
  withPods: { daemon: number; node: number };
  /** Each run's "critest: N passed, M failed, K skipped" line. */
  results: string[];
}

export interface CritestMemory {
  runs: number;
  pods: number;
  ours: RuntimeMemory;
  containerd: RuntimeMemory;
}

/** Why this benchmark cannot run here, or undefined when it can. */
export function critestMemorySkipReason(): string | undefined {
  if (Deno.uid() !== 0) return "needs root";
  const dir = Deno.env.get("K8SC_CRITEST_DIR");
  if (!dir) return "K8SC_CRITEST_DIR is not set (a directory with critest and crictl)";
  for (const f of [`${dir}/critest`, `${dir}/crictl`, `${HARNESS}/run.sh`]) {
    try {
      Deno.statSync(f);
    } catch {
      return `${f} is missing`;
    }
  }
  return undefined;
}

async function run(cmd: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed (${out.code}):\n${text.slice(-2000)}`);
  return text;
}

const settle = () => new Promise((r) => setTimeout(r, MEMORY_SETTLE_MS));

async function measure(
  who: Who,
  o: { runs: number; pods: number; critestDir: string; hostsDir: string },
  log: (s: string) => void,
): Promise<RuntimeMemory> {
  const netnsBefore = await netnsNames();
  const work = await Deno.makeTempDir({ prefix: `bench-critest-${who}-` });
  const bridge = who === "ours" ? "k8sccrit0" : "ctrdcrit0";
  const subnet = who === "ours" ? "10.233.0.0/16" : "10.234.0.0/16";
  // critest's host-port specs need portmap; both runtimes get the same network.
  const d = await startCriDaemon(who, {
    work,
    pause: PAUSE,
    hostsDir: o.hostsDir,
    network: {
      name: `crit-${who}`,
      bridge,
      subnet,
      after: [{ type: "portmap", capabilities: { portMappings: true } }],
    },
  });
  const rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
  const img = new ImageServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    call<Req, Res>(d.socket, "k8s.io", fn, req, 120_000);
  try {
    await settle();
    const idle = await pss(d.pid);
    log(`${who}: idle ${mib(idle)} MiB`);
    const results: string[] = [];
    for (let i = 0; i < o.runs; i++) {
      const out = await run(["bash", `${HARNESS}/run.sh`, d.socket, `${work}/critest-${i}`], {
        CRITEST: `${o.critestDir}/critest`,
        CRICTL: `${o.critestDir}/crictl`,
      }).catch((e) => String(e));
      const line = /critest: \d+ passed.*/.exec(out)?.[0] ?? `critest run ${i + 1}: no summary`;
      results.push(line);
      log(`${who}: run ${i + 1}: ${line}`);
    }
    await settle();
    const afterRuns = await pss(d.pid);
    const ref = await r(
      img.pullImage.bind(img),
      PullImageRequest.fromPartial({ image: { image: IMAGE } }),
    );
    const pods: string[] = [];
    for (let i = 0; i < o.pods; i++) {
      const config = podConfig(`after${i}`, `${work}/logs/after${i}`);
      await Deno.mkdir(config.logDirectory, { recursive: true });
      const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
      const { containerId } = await r(rt.createContainer.bind(rt), {
        podSandboxId,
        config: containerConfig(ref.imageRef || IMAGE),
        sandboxConfig: config,
      });
      await r(rt.startContainer.bind(rt), { containerId });
      pods.push(podSandboxId);
    }
    await settle();
    const daemon = await pss(d.pid);
    const withPods = { daemon, node: daemon + (await monitorsPss(d.dir)) };
    log(`${who}: after runs ${mib(afterRuns)} MiB, with ${o.pods} pods ${mib(daemon)} MiB`);
    for (const id of pods) {
      await r(rt.stopPodSandbox.bind(rt), { podSandboxId: id });
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: id });
    }
    return { idle, afterRuns, withPods, results };
  } finally {
    rt.close();
    img.close();
    await d.stop();
    await cleanUpCriRun(d, bridge, work, netnsBefore);
  }
}

export async function benchCritestMemory(
  o: { runs: number; pods: number; only?: "ours" | "containerd" },
  log: (s: string) => void = console.error,
): Promise<CritestMemory> {
  const critestDir = Deno.env.get("K8SC_CRITEST_DIR")!;
  const hostsDir = await Deno.makeTempDir({ prefix: "bench-critest-hosts-" });
  try {
    // The harness's images in its registry, and mirror files mapping the upstream hosts to it.
    await run(["bash", `${HARNESS}/setup-images.sh`], { HOSTS_DIR: hostsDir });
    const each = (who: Who) =>
      o.only && o.only !== who ? undefined : measure(who, { ...o, critestDir, hostsDir }, log);
    const ours = await each("ours");
    const containerd = await each("containerd");
    return { runs: o.runs, pods: o.pods, ours: ours!, containerd: containerd! };
  } finally {
    await Deno.remove(hostsDir, { recursive: true }).catch(() => {});
  }
}

export function reportCritestMemory(b: CritestMemory): string {
  const row = (name: string, x: number, y: number) =>
    `| ${name} | ${mib(x)} MiB | ${mib(y)} MiB | ${(x / y).toFixed(2)} |`;
  return [
    CRITEST_MEMORY_HEADING,
    "",
    `Each daemon fresh, then after ${b.runs} whole critest v1.32 runs against it, then with ` +
    `${b.pods} pods (busybox sleeping) started after the runs; PSS read ` +
    `${MEMORY_SETTLE_MS / 1000} s after each step.`,
    "",
    "| figure | k8scontainerd | containerd 1.6 | ratio |",
    "|---|---|---|---|",
    row("daemon PSS, fresh and idle", b.ours.idle, b.containerd.idle),
    row(`daemon PSS after ${b.runs} critest runs, idle`, b.ours.afterRuns, b.containerd.afterRuns),
    row(
      `daemon PSS after the runs, ${b.pods} pods`,
      b.ours.withPods.daemon,
      b.containerd.withPods.daemon,
    ),
    row(
      `daemon + monitors after the runs, ${b.pods} pods`,
      b.ours.withPods.node,
      b.containerd.withPods.node,
    ),
    "",
    "critest results:",
    "",
    ...b.ours.results.map((l, i) => `- k8scontainerd, run ${i + 1}: ${l}`),
    ...b.containerd.results.map((l, i) => `- containerd 1.6, run ${i + 1}: ${l}`),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string", default: "2" },
      pods: { type: "string", default: "30" },
      only: { type: "string" },
    },
  });
  const skip = critestMemorySkipReason();
  if (skip) {
    console.log(`skipped: ${skip}`);
  } else {
    const o = { runs: Number(values.runs), pods: Number(values.pods) };
    if (values.only === "ours" || values.only === "containerd") {
      // One runtime's figures alone (for trying a change): logged, no report.
      await benchCritestMemory({ ...o, only: values.only });
    } else {
      console.log(reportCritestMemory(await benchCritestMemory(o)));
    }
  }
}
