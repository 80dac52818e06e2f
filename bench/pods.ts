/**
 * Pods through the CRI, k8scontainerd vs containerd 1.6's CRI plugin, both driven by the same
 * client (grpc-js + our runtime.v1 types) in the same run, each on its own CNI bridge:
 *   - pod start: RunPodSandbox + CreateContainer + StartContainer, and teardown
 *     (StopPodSandbox + RemovePodSandbox): N in sequence and C at once, p50 and p99;
 *   - ListContainers and ContainerStatus latency with K containers;
 *   - memory with M pods running, read 10 s after the M-th started: daemon PSS and node memory
 *     (daemon + monitors).
 *
 * Run: scripts/deno run -A bench/pods.ts [--pods 30] [--concurrent 10] [--list 100] [--memory 50]
 *      [--only ours|containerd]
 */
import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import {
  type ContainerConfig,
  ImageSpec,
  type PodSandboxConfig,
  PullImageRequest,
} from "../src/gen/runtime/v1/api.ts";
import { call, ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";
import { startCriDaemon } from "./cri_daemons.ts";
import { cleanUpCriRun, median, mib, monitorsPss, netnsNames, percentile, pss } from "./lib.ts";

export interface PodBench {
  start: { ours: number[]; containerd: number[] };
  teardown: { ours: number[]; containerd: number[] };
  /** Wall time of C pods started at once, and each one's start and teardown latency. */
  concurrent: {
    n: number;
    ours: number;
    containerd: number;
    start: { ours: number[]; containerd: number[] };
    teardown: { ours: number[]; containerd: number[] };
  };
  list: {
    n: number;
    ours: { listMs: number[]; statusMs: number[] };
    containerd: { listMs: number[]; statusMs: number[] };
  };
  memory: {
    n: number;
    ours: { daemon: number; node: number };
    containerd: { daemon: number; node: number };
  };
}

/** Bursts of C pods at once per runtime (the wall time reported is their median). */
export const CONCURRENT_ROUNDS = 3;
/** ListContainers and ContainerStatus calls timed per runtime. */
export const LIST_SAMPLES = 100;

/** How long after the M-th pod started its memory is read. */
export const MEMORY_SETTLE_MS = 10_000;

export function podConfig(name: string, logDir: string): PodSandboxConfig {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: "bench", attempt: 0 },
    hostname: name,
    logDirectory: logDir,
    dnsConfig: undefined,
    portMappings: [],
    labels: {},
    annotations: {},
    linux: undefined,
    windows: undefined,
  };
}

export function containerConfig(image: string): ContainerConfig {
  return {
    metadata: { name: "c", attempt: 0 },
    image: ImageSpec.fromPartial({ image }),
    command: ["sleep", "3600"],
    args: [],
    workingDir: "",
    envs: [],
    mounts: [],
    devices: [],
    labels: {},
    annotations: {},
    logPath: "c.log",
    stdin: false,
    stdinOnce: false,
    tty: false,
    linux: undefined,
    windows: undefined,
    CDIDevices: [],
    stopSignal: 0,
  };
}

export async function benchPods(
  o: { pods: number; concurrent: number; list: number; memory: number; only?: string },
): Promise<PodBench> {
  const registry = await startRegistry();
  const image = `${registry.address}/busybox:latest`;
  const pause = `${registry.address}/pause:latest`;
  const res: PodBench = {
    start: { ours: [], containerd: [] },
    teardown: { ours: [], containerd: [] },
    concurrent: {
      n: o.concurrent,
      ours: 0,
      containerd: 0,
      start: { ours: [], containerd: [] },
      teardown: { ours: [], containerd: [] },
    },
    list: {
      n: o.list,
      ours: { listMs: [], statusMs: [] },
      containerd: { listMs: [], statusMs: [] },
    },
    memory: { n: o.memory, ours: { daemon: 0, node: 0 }, containerd: { daemon: 0, node: 0 } },
  };
  try {
    await pushFixtures(registry.address, ["busybox", "pause"]);
    for (
      const [who, subnet] of [["ours", "10.231.0.0/16"], ["containerd", "10.232.0.0/16"]] as const
    ) {
      if (o.only && o.only !== who) continue;
      const netnsBefore = await netnsNames();
      const work = await Deno.makeTempDir({ prefix: `bench-pods-${who}-` });
      const bridge = who === "ours" ? "k8scbench0" : "ctrdbench0";
      const d = await startCriDaemon(who, {
        work,
        pause,
        registry: registry.address,
        network: { name: `bench-${who}`, bridge, subnet },
      });
      const rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
      const img = new ImageServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
      const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
        call<Req, Res>(d.socket, "k8s.io", fn, req, 120_000);
      try {
        const ref = await r(
          img.pullImage.bind(img),
          PullImageRequest.fromPartial({ image: { image } }),
        );
        const startPod = async (name: string) => {
          const logDir = `${work}/logs/${name}`;
          await Deno.mkdir(logDir, { recursive: true });
          const config = podConfig(name, logDir);
          const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), {
            config,
            runtimeHandler: "",
          });
          const { containerId } = await r(rt.createContainer.bind(rt), {
            podSandboxId,
            config: containerConfig(ref.imageRef || image),
            sandboxConfig: config,
          });
          await r(rt.startContainer.bind(rt), { containerId });
          return podSandboxId;
        };
        const stopPod = async (id: string) => {
          await r(rt.stopPodSandbox.bind(rt), { podSandboxId: id });
          await r(rt.removePodSandbox.bind(rt), { podSandboxId: id });
        };
        await stopPod(await startPod("warmup"));
        for (let i = 0; i < o.pods; i++) {
          let t = performance.now();
          const id = await startPod(`seq${i}`);
          res.start[who].push((performance.now() - t) / 1000);
          t = performance.now();
          await stopPod(id);
          res.teardown[who].push((performance.now() - t) / 1000);
        }
        const timedPod = async <T>(fn: () => Promise<T>, into: number[]) => {
          const t0 = performance.now();
          const v = await fn();
          into.push((performance.now() - t0) / 1000);
          return v;
        };
        // One burst is a single sample of a noisy figure: CONCURRENT_ROUNDS bursts, the
        // median wall time reported, every pod's latency kept.
        const walls: number[] = [];
        let t = 0;
        for (let round = 0; round < CONCURRENT_ROUNDS; round++) {
          t = performance.now();
          const ids = await Promise.all(
            Array.from(
              { length: o.concurrent },
              (_, i) => timedPod(() => startPod(`par${round}-${i}`), res.concurrent.start[who]),
            ),
          );
          walls.push((performance.now() - t) / 1000);
          await Promise.all(
            ids.map((id) => timedPod(() => stopPod(id), res.concurrent.teardown[who])),
          );
        }
        res.concurrent[who] = median(walls);

        // Memory with M pods, then list/status latency with enough containers.
        const running: string[] = [];
        for (let i = 0; i < Math.max(o.memory, o.list); i++) {
          running.push(await startPod(`mem${i}`));
          if (running.length === o.memory) {
            // Steady state, not the aftermath of the burst: both daemons get time to hand freed
            // memory back (Go's scavenger; our periodic malloc_trim and V8's memory reducer).
            await new Promise((res) => setTimeout(res, MEMORY_SETTLE_MS));
            const daemon = await pss(d.pid);
            res.memory[who] = { daemon, node: daemon + (await monitorsPss(d.dir)) };
          }
        }
        const { containers } = await r(rt.listContainers.bind(rt), { filter: undefined });
        for (let i = 0; i < LIST_SAMPLES; i++) {
          t = performance.now();
          await r(rt.listContainers.bind(rt), { filter: undefined });
          res.list[who].listMs.push(performance.now() - t);
          t = performance.now();
          await r(rt.containerStatus.bind(rt), {
            containerId: containers[i % containers.length].id,
            verbose: false,
          });
          res.list[who].statusMs.push(performance.now() - t);
        }
        for (const id of running) await stopPod(id);
      } finally {
        rt.close();
        img.close();
        await d.stop();
        await cleanUpCriRun(d, bridge, work, netnsBefore);
      }
    }
    return res;
  } finally {
    await registry.stop();
  }
}

export function reportPods(b: PodBench): string {
  const row = (name: string, x: number, y: number, unit: string, digits = 3) =>
    `| ${name} | ${x.toFixed(digits)} ${unit} | ${y.toFixed(digits)} ${unit} | ${
      (x / y).toFixed(2)
    } |`;
  const mib = (n: number) => n / 1048576;
  return [
    "| measure | k8scontainerd | containerd 1.6 CRI | ratio |",
    "|---|---|---|---|",
    row(
      `pod start p50 (${b.start.ours.length} in sequence)`,
      median(b.start.ours),
      median(b.start.containerd),
      "s",
    ),
    row("pod start p99", percentile(b.start.ours, 99), percentile(b.start.containerd, 99), "s"),
    row("pod teardown p50", median(b.teardown.ours), median(b.teardown.containerd), "s"),
    row(
      "pod teardown p99",
      percentile(b.teardown.ours, 99),
      percentile(b.teardown.containerd, 99),
      "s",
    ),
    row(
      `${b.concurrent.n} pods at once, wall (median of ${CONCURRENT_ROUNDS} bursts)`,
      b.concurrent.ours,
      b.concurrent.containerd,
      "s",
    ),
    row(
      `${b.concurrent.n} pods at once, each pod's start p50`,
      median(b.concurrent.start.ours),
      median(b.concurrent.start.containerd),
      "s",
    ),
    row(
      `${b.concurrent.n} pods at once, each pod's teardown p50`,
      median(b.concurrent.teardown.ours),
      median(b.concurrent.teardown.containerd),
      "s",
    ),
    row(
      `ListContainers p50 (${b.list.n} containers)`,
      median(b.list.ours.listMs),
      median(b.list.containerd.listMs),
      "ms",
      2,
    ),
    row(
      "ContainerStatus p50",
      median(b.list.ours.statusMs),
      median(b.list.containerd.statusMs),
      "ms",
      2,
    ),
    row(
      `daemon PSS, ${b.memory.n} pods (read ${MEMORY_SETTLE_MS / 1000} s after the last started)`,
      mib(b.memory.ours.daemon),
      mib(b.memory.containerd.daemon),
      "MiB",
      1,
    ),
    row(
      `node memory (daemon + monitors), ${b.memory.n} pods`,
      mib(b.memory.ours.node),
      mib(b.memory.containerd.node),
      "MiB",
      1,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pods: { type: "string" },
      concurrent: { type: "string" },
      list: { type: "string" },
      memory: { type: "string" },
      // One runtime alone, for trying a change: its own figures, no ratios.
      only: { type: "string" },
    },
  });
  const b = await benchPods({
    pods: Number(values.pods ?? 30),
    concurrent: Number(values.concurrent ?? 10),
    list: Number(values.list ?? 100),
    memory: Number(values.memory ?? 50),
    only: values.only,
  });
  if (values.only === "ours" || values.only === "containerd") {
    const w = values.only;
    const ms = (xs: number[], p: number) => (percentile(xs, p) * 1000).toFixed(1);
    console.log([
      `${w}: pod start p50 ${ms(b.start[w], 50)} ms, p99 ${ms(b.start[w], 99)} ms`,
      `${w}: teardown p50 ${ms(b.teardown[w], 50)} ms`,
      `${w}: ${b.concurrent.n} at once, wall ${(b.concurrent[w] * 1000).toFixed(0)} ms`,
      `${w}: ListContainers p50 ${median(b.list[w].listMs).toFixed(2)} ms, ContainerStatus p50 ${
        median(b.list[w].statusMs).toFixed(2)
      } ms`,
      `${w}: daemon PSS, ${b.memory.n} pods ${mib(b.memory[w].daemon)} MiB`,
    ].join("\n"));
  } else {
    console.log(reportPods(b));
  }
}
