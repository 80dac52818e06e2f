/**
 * `deno task bench`: every side-by-side benchmark against containerd 1.6 from Debian, in one
 * run, written to bench/REPORT.md as ratios (ours / containerd; below 1 is better for us), with
 * the latency distributions drawn in bench/latency.png.
 *
 * Flags: --quick (fewer runs, for a smoke check); --reads-only (only the read-RPC matrix of
 * reads.ts: its section of REPORT.md is replaced, the rest kept from the last full run).
 *
 * The pod density benchmark under a kubelet (kube_density.ts) runs last, when `K8SC_KUBE_DIR`
 * names the Kubernetes binaries (and as root); otherwise it is skipped, saying why, and the
 * density section of the previous REPORT.md is kept (CI has no Kubernetes binaries). The same
 * goes for memory after critest runs (critest_memory.ts), which needs `K8SC_CRITEST_DIR`.
 */
import { benchPull, type PullResult, reportPull } from "./pull.ts";
import { benchContainers, type ContainerBench, reportContainers } from "./containers.ts";
import { benchPods, type PodBench, reportPods } from "./pods.ts";
import { CONTAINERD, OURS, type Panel, renderStripChart } from "./chart.ts";
import { benchReads, type ReadBench, reportReads } from "./reads.ts";
import {
  benchDensity,
  DENSITY_HEADING,
  densitySkipReason,
  isComplete,
  reportDensity,
} from "./kube_density.ts";
import {
  benchCritestMemory,
  CRITEST_MEMORY_HEADING,
  critestMemorySkipReason,
  reportCritestMemory,
} from "./critest_memory.ts";
import { datedSections, replaceSection, sectionOf } from "./lib.ts";

/** The latency chart of one run: every sample of each distribution, p50 and p99 marked. */
export function latencyChart(
  started: Date,
  pull: PullResult[],
  containers: ContainerBench,
  pods: PodBench,
  reads?: ReadBench,
): Uint8Array {
  const pair = (title: string, unit: string, ours: number[], containerd: number[]): Panel => ({
    title,
    unit,
    rows: [
      { label: "k8scontainerd", color: OURS, samples: ours },
      { label: "containerd 1.6", color: CONTAINERD, samples: containerd },
    ],
  });
  const ms = (xs: number[]) => xs.map((x) => x * 1000);
  return renderStripChart(
    `Latency, k8scontainerd vs containerd 1.6 (${started.toISOString().slice(0, 10)})`,
    [
      pair(
        `Pod start through the CRI, ${pods.start.ours.length} in sequence`,
        "ms",
        ms(pods.start.ours),
        ms(pods.start.containerd),
      ),
      pair(
        `Pod start, ${pods.concurrent.n} at once (each pod)`,
        "ms",
        ms(pods.concurrent.start.ours),
        ms(pods.concurrent.start.containerd),
      ),
      pair(
        `Pod teardown, ${pods.teardown.ours.length} in sequence`,
        "ms",
        ms(pods.teardown.ours),
        ms(pods.teardown.containerd),
      ),
      pair(
        `Pod teardown, ${pods.concurrent.n} at once (each pod)`,
        "ms",
        ms(pods.concurrent.teardown.ours),
        ms(pods.concurrent.teardown.containerd),
      ),
      pair(
        `ListContainers, ${pods.list.n} containers`,
        "ms",
        pods.list.ours.listMs,
        pods.list.containerd.listMs,
      ),
      pair(
        `ContainerStatus, ${pods.list.n} containers`,
        "ms",
        pods.list.ours.statusMs,
        pods.list.containerd.statusMs,
      ),
      ...(reads
        ? (["ListContainers", "ListPodSandbox"] as const).map((rpc) => {
          const n = reads.sizes[reads.sizes.length - 1];
          return pair(
            `${rpc}, ${n} objects (read matrix)`,
            "ms",
            reads.ms.ours[n]?.[rpc] ?? [],
            reads.ms.containerd[n]?.[rpc] ?? [],
          );
        })
        : []),
      pair(
        "run --rm true, whole CLI invocation (k8scontainerd from source / ctr)",
        "ms",
        ms(containers.sequential.ours),
        ms(containers.sequential.containerd),
      ),
      ...pull.map((p) =>
        pair(`Cold pull + unpack of ${p.fixture}, CLI`, "s", p.ours.seconds, p.containerd.seconds)
      ),
    ],
    "Each dot is one sample; thick bar p50, thin bar p99 (nearest rank). Axes start at 0.",
  );
}

/** The read-RPC section of REPORT.md, from its heading to the end of its table. */
export function readsSection(reads: ReadBench, started: Date): string {
  return `## Read RPCs through the CRI (same grpc-js client for both, sequential, ${reads.samples} calls each)

Run ${started.toISOString()}. Pods and containers carry the kubelet's labels and annotations; up
to ${RUNNING_PODS_NOTE}. ListContainers and ListPodSandbox at every size, the rest at the largest.

${reportReads(reads)}
`;
}

const RUNNING_PODS_NOTE =
  "100 pods run one busybox container each; past that the extra containers are created (not started) and the extra sandboxes stopped";

const READS_HEADING = "## Read RPCs through the CRI";

/**
 * The section of a benchmark that needs what CI lacks (a kubelet, critest): this run's, or
 * (skipped) the previous REPORT.md's, or a note saying why there is none.
 */
async function optionalSection(
  name: string,
  heading: string,
  section: string | undefined,
  skipped: string | undefined,
): Promise<string> {
  if (section !== undefined) return section;
  console.error(`${name}: skipped: ${skipped}`);
  const old = await Deno.readTextFile(new URL("./REPORT.md", import.meta.url)).catch(() => "");
  return sectionOf(old, heading) ?? `${heading}\n\nNot run: ${skipped} (see bench/${name}.ts).\n`;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const started = new Date();
  const readSizes = quick ? [10, 100] : [10, 100, 1000];
  if (Deno.args.includes("--reads-only")) {
    const reads = await benchReads({ sizes: readSizes, samples: quick ? 50 : 200 });
    const url = new URL("./REPORT.md", import.meta.url);
    const old = await Deno.readTextFile(url);
    await Deno.writeTextFile(url, replaceSection(old, READS_HEADING, readsSection(reads, started)));
    console.log(readsSection(reads, started));
    Deno.exit(0);
  }
  const pull = await benchPull(["busybox", "big"], quick ? 1 : 3);
  const containers = await benchContainers(quick ? 5 : 50, quick ? 3 : 10, quick ? 5 : 50);
  const pods = await benchPods(
    quick
      ? { pods: 5, concurrent: 3, list: 10, memory: 10 }
      : { pods: 30, concurrent: 10, list: 100, memory: 50 },
  );
  const reads = await benchReads({ sizes: readSizes, samples: quick ? 50 : 200 });
  const skipDensity = densitySkipReason();
  const density = skipDensity ? undefined : await benchDensity({ pods: quick ? 20 : 110 });
  const skipCritest = critestMemorySkipReason();
  const critest = skipCritest
    ? undefined
    : await benchCritestMemory(quick ? { runs: 1, pods: 5 } : { runs: 2, pods: 30 });
  // Hand-written notes of one-off measurements (dated headings) stay, after this run's sections.
  const notes = datedSections(
    await Deno.readTextFile(new URL("./REPORT.md", import.meta.url)).catch(() => ""),
  );
  const png = latencyChart(started, pull, containers, pods, reads);
  await Deno.writeFile(new URL("./latency.png", import.meta.url), png);

  const report = `# Benchmarks: k8scontainerd vs containerd 1.6.20 (Debian), same machine, same run

Run ${started.toISOString()} on ${Deno.osRelease()} ${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs.
Ratios are ours / containerd's: below 1.00 is better for k8scontainerd. Every figure is a whole
CLI invocation (\`k8scontainerd\` run from source with \`deno run\`, \`ctr\` for containerd).

![Latency distributions: pod start and teardown, ListContainers, ContainerStatus, run, pull](latency.png)

## Cold pull + unpack from a local registry (fresh daemon, empty root; median of ${quick ? 1 : 3})

${reportPull(pull)}

## Containers (busybox)

${reportContainers(containers)}

## Pods through the CRI (same client for both runtimes, each on its own CNI bridge)

${reportPods(pods)}

${readsSection(reads, started)}
${await optionalSection(
    "kube_density",
    DENSITY_HEADING,
    density && isComplete(density) ? reportDensity(density) : undefined,
    skipDensity ?? "the run did not complete",
  )}
${await optionalSection(
    "critest_memory",
    CRITEST_MEMORY_HEADING,
    critest && reportCritestMemory(critest),
    skipCritest,
  )}${notes.map((n) => `\n${n}`).join("")}`;
  await Deno.writeTextFile(new URL("./REPORT.md", import.meta.url), report);
  console.log(report);
}
