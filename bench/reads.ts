/**
 * Read RPCs through the CRI, k8scontainerd vs containerd 1.6's CRI plugin, the same grpc-js
 * client (one channel, sequential calls) for both: ListContainers and ListPodSandbox at each
 * size of the matrix, and ContainerStatus, PodSandboxStatus, ImageStatus, ListImages and
 * Version, p50 and p99 of `--samples` calls each (after a warm-up).
 *
 * Pods and containers carry the labels and annotations the kubelet sets. The node at size N:
 * pods with one running busybox container each, up to 100 of them; past
 * 100, the extra containers are created (not started) in those pods and the extra sandboxes
 * run and stopped (NOTREADY), so neither runtime holds more than 100 pods' processes (1000
 * containerd shims would take ~13 GB here).
 *
 * Run: scripts/deno run -A bench/reads.ts [--sizes 10,100,1000] [--samples 200]
 *      [--only ours|containerd] [--grpc-server native|grpc-js] [--direct SOCKET-NAME] (ours also through a second socket in
 *      its state dir, for profiling) [--profile HOST:PORT] (ours runs under that V8 inspector:
 *      K8SC_DENO=a wrapper adding --inspect=HOST:PORT after `run`; CPU profiles printed)
 */
import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import { call, ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";
import { ImageSpec, PullImageRequest } from "../src/gen/runtime/v1/api.ts";
import { cleanUpCriRun, median, netnsNames, percentile } from "./lib.ts";
import { containerConfig, podConfig } from "./pods.ts";
import { startCriDaemon } from "./cri_daemons.ts";
import { cpuProfile } from "./cpu_profile.ts";

/** The read RPCs timed at every size. */
export const READ_RPCS = [
  "ListContainers",
  "ListPodSandbox",
  "ContainerStatus",
  "PodSandboxStatus",
  "ImageStatus",
  "ListImages",
  "Version",
] as const;
export type ReadRpc = typeof READ_RPCS[number];

/** Pods past this many are stopped, containers past it only created (see the module doc). */
export const RUNNING_PODS = 100;

/** The labels the kubelet puts on a pod (and its containers), so the lists weigh what a node's do. */
function podLabels(name: string): Record<string, string> {
  return {
    "io.kubernetes.pod.name": name,
    "io.kubernetes.pod.namespace": "bench",
    "io.kubernetes.pod.uid": `0c6d3e1a-5b7f-4e2a-9d41-${name.padStart(12, "0")}`,
  };
}

/** Pause between populating a size and timing it. */
export const SETTLE_MS = 3000;

/** Milliseconds per call, by runtime, size and RPC. */
export interface ReadBench {
  sizes: number[];
  samples: number;
  ms: Record<"ours" | "containerd", Record<number, Partial<Record<ReadRpc, number[]>>>>;
}

export async function benchReads(
  o: {
    sizes: number[];
    samples: number;
    only?: "ours" | "containerd";
    /** Profiling: also time ours through this socket (a path under its state dir). */
    direct?: string;
    /** Profiling: ours runs under this V8 inspector (see cpu_profile.ts); profile the calls. */
    profile?: string;
    /** Ours: `[grpc] server` ("native" or "grpc-js"); the config default when unset. */
    grpcServer?: string;
  },
): Promise<ReadBench> {
  const registry = await startRegistry();
  const image = `${registry.address}/busybox:latest`;
  const pause = `${registry.address}/pause:latest`;
  const res: ReadBench = { sizes: o.sizes, samples: o.samples, ms: { ours: {}, containerd: {} } };
  try {
    await pushFixtures(registry.address, ["busybox", "pause"]);
    for (
      const [who, subnet] of [["ours", "10.233.0.0/16"], ["containerd", "10.234.0.0/16"]] as const
    ) {
      if (o.only && o.only !== who) continue;
      const netnsBefore = await netnsNames();
      const work = await Deno.makeTempDir({ prefix: `bench-reads-${who}-` });
      const bridge = who === "ours" ? "k8scread0" : "ctrdread0";
      const d = await startCriDaemon(who, {
        work,
        pause,
        registry: registry.address,
        network: { name: `reads-${who}`, bridge, subnet },
        oursToml: (o.direct ? `[metrics]\naddress = "127.0.0.1:19464"\n` : "") +
          (o.grpcServer ? `[grpc]\nserver = "${o.grpcServer}"\n` : ""),
      });
      const rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
      const img = new ImageServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
      const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
        call<Req, Res>(d.socket, "k8s.io", fn, req, 120_000);
      const pods: string[] = [];
      const stoppedPods: string[] = [];
      const containers: string[] = [];
      try {
        const ref = await r(
          img.pullImage.bind(img),
          PullImageRequest.fromPartial({ image: { image } }),
        );
        const imageRef = ref.imageRef || image;
        const run = async (name: string) => {
          const logDir = `${work}/logs/${name}`;
          await Deno.mkdir(logDir, { recursive: true });
          const config = podConfig(name, logDir);
          config.labels = podLabels(name);
          config.annotations = {
            "kubernetes.io/config.seen": "2026-12-02T14:00:00.000000000Z",
            "kubernetes.io/config.source": "api",
          };
          const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), {
            config,
            runtimeHandler: "",
          });
          return { podSandboxId, config };
        };
        const configs = new Map<string, ReturnType<typeof podConfig>>();
        const create = async (pod: string, name: string) => {
          const cfg = containerConfig(imageRef);
          cfg.metadata = { name, attempt: 0 };
          const pcfg = configs.get(pod)!;
          cfg.labels = { ...podLabels(pcfg.metadata!.name), "io.kubernetes.container.name": name };
          cfg.annotations = {
            "io.kubernetes.container.hash": "8f2c4a1e",
            "io.kubernetes.container.restartCount": "0",
            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
            "io.kubernetes.container.terminationMessagePolicy": "File",
            "io.kubernetes.pod.terminationGracePeriod": "30",
          };
          const { containerId } = await r(rt.createContainer.bind(rt), {
            podSandboxId: pod,
            config: cfg,
            sandboxConfig: configs.get(pod)!,
          });
          containers.push(containerId);
          return containerId;
        };
        for (const size of o.sizes) {
          while (pods.length + stoppedPods.length < size) {
            const i = pods.length + stoppedPods.length;
            const { podSandboxId, config } = await run(`p${i}`);
            configs.set(podSandboxId, config);
            if (pods.length < RUNNING_PODS) {
              pods.push(podSandboxId);
              const id = await create(podSandboxId, "c");
              await r(rt.startContainer.bind(rt), { containerId: id });
            } else {
              await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
              stoppedPods.push(podSandboxId);
            }
          }
          while (containers.length < size) {
            const pod = pods[containers.length % pods.length];
            await create(pod, `x${containers.length}`);
          }
          const byRpc: Partial<Record<ReadRpc, number[]>> = {};
          res.ms[who][size] = byRpc;
          const calls: Record<ReadRpc, (i: number) => Promise<unknown>> = {
            ListContainers: () => r(rt.listContainers.bind(rt), { filter: undefined }),
            ListPodSandbox: () => r(rt.listPodSandbox.bind(rt), { filter: undefined }),
            ContainerStatus: (i) =>
              r(rt.containerStatus.bind(rt), {
                containerId: containers[i % Math.min(containers.length, RUNNING_PODS)],
                verbose: false,
              }),
            PodSandboxStatus: (i) =>
              r(rt.podSandboxStatus.bind(rt), {
                podSandboxId: pods[i % pods.length],
                verbose: false,
              }),
            ImageStatus: () =>
              r(img.imageStatus.bind(img), {
                image: ImageSpec.fromPartial({ image: imageRef }),
                verbose: false,
              }),
            ListImages: () => r(img.listImages.bind(img), { filter: undefined }),
            Version: () => r(rt.version.bind(rt), { version: "v1" }),
          };
          // Let the daemons finish what the last pod starts set off (exit watches, GC).
          await new Promise((res) => setTimeout(res, SETTLE_MS));
          const check = await r(rt.listContainers.bind(rt), { filter: undefined });
          if (check.containers.length !== size) {
            throw new Error(`${who}: ${check.containers.length} containers listed, ${size} made`);
          }
          for (const rpc of READ_RPCS) {
            for (let i = 0; i < 20; i++) await calls[rpc](i);
            const xs: number[] = [];
            for (let i = 0; i < o.samples; i++) {
              const t = performance.now();
              await calls[rpc](i);
              xs.push(performance.now() - t);
            }
            byRpc[rpc] = xs;
            if (o.profile && who === "ours") {
              const report = await cpuProfile(o.profile, async () => {
                for (let i = 0; i < o.samples; i++) await calls[rpc](i);
              });
              console.error(`  CPU profile of the daemon, ${o.samples} × ${rpc}:\n${report}`);
            }
            if (o.direct && who === "ours" && (rpc === "ListContainers" || rpc === "Version")) {
              await profileDirect(`${d.dir}/state/${o.direct}`, rpc, o.samples);
            }
            console.error(
              `${who} n=${size} ${rpc}: p50 ${median(xs).toFixed(3)} ms, p99 ${
                percentile(xs, 99).toFixed(3)
              } ms`,
            );
          }
        }
        for (const id of [...pods, ...stoppedPods]) {
          await r(rt.stopPodSandbox.bind(rt), { podSandboxId: id }).catch(() => {});
          await r(rt.removePodSandbox.bind(rt), { podSandboxId: id }).catch(() => {});
        }
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

/**
 * Profiling aid: the same RPC through another socket of ours (e.g. grpc-js's own where one is bound
 * beside the edge), and the handler's own mean time from /v1/metrics.
 */
const directClients = new Map<string, RuntimeServiceClient>();
async function profileDirect(socket: string, rpc: ReadRpc, samples: number): Promise<void> {
  // Never closed: a client's GOAWAY straight to Deno's HTTP/2 server can abort the daemon
  // (denoland/deno#36788); the edge's rewriter drops it.
  let rt = directClients.get(socket);
  if (!rt) {
    rt = new RuntimeServiceClient(`unix://${socket}`, grpc.credentials.createInsecure());
    directClients.set(socket, rt);
  }
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    call<Req, Res>(socket, "k8s.io", fn, req, 120_000);
  const metric = async () => {
    const text = await (await fetch("http://127.0.0.1:19464/v1/metrics")).text();
    const get = (what: string) =>
      Number(
        new RegExp(
          `k8scontainerd_grpc_request_duration_seconds_${what}\\{method="/runtime.v1.RuntimeService/${rpc}"\\} ([0-9.e+-]+)`,
        ).exec(text)?.[1] ?? NaN,
      );
    return { sum: get("sum"), count: get("count") };
  };
  {
    const fn = rpc === "Version"
      ? () => r(rt.version.bind(rt), { version: "v1" })
      : () => r(rt.listContainers.bind(rt), { filter: undefined });
    for (let i = 0; i < 20; i++) await fn();
    const before = await metric();
    const xs: number[] = [];
    for (let i = 0; i < samples; i++) {
      const t = performance.now();
      await fn();
      xs.push(performance.now() - t);
    }
    const after = await metric();
    const handler = (after.sum - before.sum) / (after.count - before.count) * 1000;
    console.error(
      `  direct ${socket}: ${rpc} p50 ${median(xs).toFixed(3)} ms, p99 ${
        percentile(xs, 99).toFixed(3)
      } ms; handler mean ${handler.toFixed(3)} ms`,
    );
  }
}

/** The matrix as a Markdown table: p50 and p99 for each runtime, and their ratios. */
export function reportReads(b: ReadBench): string {
  const lines = [
    "| RPC | objects | ours p50 ms | containerd p50 ms | p50 ratio | ours p99 ms | containerd p99 ms | p99 ratio |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const size of b.sizes) {
    for (const rpc of READ_RPCS) {
      const sized = rpc === "ListContainers" || rpc === "ListPodSandbox";
      if (size !== b.sizes[b.sizes.length - 1] && !sized) continue;
      const ours = b.ms.ours[size]?.[rpc];
      const theirs = b.ms.containerd[size]?.[rpc];
      const cell = (xs: number[] | undefined, f: (xs: number[]) => number) =>
        xs ? f(xs).toFixed(3) : "–";
      const ratio = (f: (xs: number[]) => number) =>
        ours && theirs ? (f(ours) / f(theirs)).toFixed(2) : "–";
      const p99 = (xs: number[]) => percentile(xs, 99);
      lines.push(
        `| ${rpc} | ${sized ? size : "–"} | ${cell(ours, median)} | ${cell(theirs, median)} | ${
          ratio(median)
        } | ${cell(ours, p99)} | ${cell(theirs, p99)} | ${ratio(p99)} |`,
      );
    }
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string" },
      samples: { type: "string" },
      only: { type: "string" },
      direct: { type: "string" },
      profile: { type: "string" },
      "grpc-server": { type: "string" },
    },
  });
  const b = await benchReads({
    sizes: (values.sizes ?? "10,100,1000").split(",").map(Number),
    samples: Number(values.samples ?? 200),
    only: values.only as "ours" | "containerd" | undefined,
    direct: values.direct,
    profile: values.profile,
    grpcServer: values["grpc-server"],
  });
  console.log(reportReads(b));
}
