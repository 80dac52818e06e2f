/**
 * `deno task bench`: every side-by-side benchmark against containerd 1.6 from Debian, in one
 * run, written to bench/REPORT.md as ratios (ours / containerd; below 1 is better for us).
 *
 * Flags: --quick (fewer runs, for a smoke check).
 */
import { benchPull, reportPull } from "./pull.ts";
import { benchContainers, reportContainers } from "./containers.ts";
import { benchPods, reportPods } from "./pods.ts";

const quick = Deno.args.includes("--quick");
const started = new Date();
const pull = await benchPull(["busybox", "big"], quick ? 1 : 3);
const containers = await benchContainers(quick ? 5 : 50, quick ? 3 : 10, quick ? 5 : 50);
const pods = await benchPods(
  quick
    ? { pods: 5, concurrent: 3, list: 10, memory: 10 }
    : { pods: 30, concurrent: 10, list: 100, memory: 50 },
);
const report = `# Benchmarks: k8scontainerd vs containerd 1.6.20 (Debian), same machine, same run

Run ${started.toISOString()} on ${Deno.osRelease()} ${Deno.build.arch}, ${navigator.hardwareConcurrency} CPUs.
Ratios are ours / containerd's: below 1.00 is better for k8scontainerd. Every figure is a whole
CLI invocation (\`k8scontainerd\` run from source with \`deno run\`, \`ctr\` for containerd).

## Cold pull + unpack from a local registry (fresh daemon, empty root; median of ${quick ? 1 : 3})

${reportPull(pull)}

## Containers (busybox)

${reportContainers(containers)}

## Pods through the CRI (same client for both runtimes, each on its own CNI bridge)

${reportPods(pods)}
`;
await Deno.writeTextFile(new URL("./REPORT.md", import.meta.url), report);
console.log(report);
