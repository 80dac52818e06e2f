/**
 * Containers, k8scontainerd vs containerd 1.6 (`ctr run`) in the same run:
 *   - create + start + wait + remove of a busybox `true`, N in sequence and C at once
 *     (`run --rm` / `ctr run --rm`, each a whole CLI invocation, as an operator types it);
 *   - memory with M containers running `sleep`: daemon PSS, and monitor PSS per container
 *     (conmon for us, containerd-shim-runc-v2 for containerd).
 *
 * Run: scripts/deno run -A bench/containers.ts [--runs 50] [--concurrent 10] [--running 50]
 */
import { parseArgs } from "node:util";
import { startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import {
  type Daemon,
  median,
  mib,
  OUR_CLI,
  percentile,
  pss,
  startContainerd,
  startOurs,
  timed,
} from "./lib.ts";

export interface ContainerBench {
  sequential: { ours: number[]; containerd: number[] };
  concurrent: { ours: number; containerd: number; n: number };
  memory: {
    n: number;
    ours: { daemon: number; perMonitor: number };
    containerd: { daemon: number; perMonitor: number };
  };
}

function runCmd(
  who: "ours" | "containerd",
  d: Daemon,
  image: string,
  id: string,
  args: string[],
  detach = false,
): string[] {
  return who === "ours"
    ? [...OUR_CLI, "--address", d.socket, "run", detach ? "-d" : "--rm", image, id, ...args]
    : ["ctr", "-a", d.socket, "run", detach ? "-d" : "--rm", image, id, ...args];
}

async function childrenPss(daemonDir: string, name: RegExp): Promise<number[]> {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).split("\0");
      if (name.test(cmd[0]) && cmd.some((a) => a.includes(daemonDir))) {
        out.push(await pss(Number(e.name)));
      }
    } catch { /* exited */ }
  }
  return out;
}

export async function benchContainers(
  runs: number,
  concurrent: number,
  running: number,
): Promise<ContainerBench> {
  const registry = await startRegistry();
  const image = `${registry.address}/busybox:latest`;
  const result: ContainerBench = {
    sequential: { ours: [], containerd: [] },
    concurrent: { ours: 0, containerd: 0, n: concurrent },
    memory: {
      n: running,
      ours: { daemon: 0, perMonitor: 0 },
      containerd: { daemon: 0, perMonitor: 0 },
    },
  };
  try {
    await pushFixtures(registry.address, ["busybox"]);
    // containerd's shim keeps runc state in a global root: ids must not repeat across runs.
    const tag = crypto.randomUUID().slice(0, 8);
    for (const who of ["ours", "containerd"] as const) {
      const d = who === "ours" ? await startOurs() : await startContainerd();
      try {
        await timed(
          who === "ours"
            ? [...OUR_CLI, "--address", d.socket, "images", "pull", "--quiet", image]
            : ["ctr", "-a", d.socket, "images", "pull", "--plain-http", image],
        );
        await timed(runCmd(who, d, image, `warmup-${tag}`, ["true"]));
        for (let i = 0; i < runs; i++) {
          result.sequential[who].push(
            await timed(runCmd(who, d, image, `seq${i}-${tag}`, ["true"])),
          );
        }
        const t0 = performance.now();
        await Promise.all(
          Array.from(
            { length: concurrent },
            (_, i) => timed(runCmd(who, d, image, `par${i}-${tag}`, ["true"])),
          ),
        );
        result.concurrent[who] = (performance.now() - t0) / 1000;
        for (let i = 0; i < running; i++) {
          await timed(runCmd(who, d, image, `mem${i}-${tag}`, ["sleep", "1000"], true));
        }
        await new Promise((r) => setTimeout(r, 1000));
        const monitors = await childrenPss(d.dir, who === "ours" ? /conmon$/ : /containerd-shim/);
        result.memory[who] = {
          daemon: await pss(d.pid),
          perMonitor: monitors.reduce((a, b) => a + b, 0) / Math.max(1, running),
        };
        if (monitors.length < running) {
          throw new Error(`${who}: ${monitors.length} monitors for ${running} containers`);
        }
        for (let i = 0; i < running; i++) {
          if (who === "ours") {
            await timed([
              ...OUR_CLI,
              "--address",
              d.socket,
              "tasks",
              "rm",
              "--force",
              `mem${i}-${tag}`,
            ]);
            await timed([...OUR_CLI, "--address", d.socket, "containers", "rm", `mem${i}-${tag}`]);
          } else {
            await timed(["ctr", "-a", d.socket, "tasks", "kill", "-s", "SIGKILL", `mem${i}-${tag}`])
              .catch(
                () => {},
              );
          }
        }
      } finally {
        await d.stop();
        // Monitors of a stopped containerd linger with their containers: reap them.
        await new Deno.Command("sh", {
          args: [
            "-c",
            `pkill -9 -f '[c]ontainerd-shim.*${d.dir}' ; pkill -9 -f '[c]onmon.*${d.dir}'; true`,
          ],
        }).output();
      }
    }
    return result;
  } finally {
    await registry.stop();
  }
}

export function reportContainers(r: ContainerBench): string {
  const a = r.sequential.ours, b = r.sequential.containerd;
  const row = (name: string, x: number, y: number, unit: string, digits = 3) =>
    `| ${name} | ${x.toFixed(digits)} ${unit} | ${y.toFixed(digits)} ${unit} | ${
      (x / y).toFixed(2)
    } |`;
  return [
    "| measure | k8scontainerd | containerd 1.6 | ratio |",
    "|---|---|---|---|",
    row(`run --rm true, p50 of ${a.length}`, median(a), median(b), "s"),
    row(`run --rm true, p99 of ${a.length}`, percentile(a, 99), percentile(b, 99), "s"),
    row(`${r.concurrent.n} at once, wall`, r.concurrent.ours, r.concurrent.containerd, "s"),
    row(
      `daemon PSS, ${r.memory.n} running`,
      Number(mib(r.memory.ours.daemon)),
      Number(mib(r.memory.containerd.daemon)),
      "MiB",
      1,
    ),
    row(
      `monitor PSS per container`,
      Number(mib(r.memory.ours.perMonitor)),
      Number(mib(r.memory.containerd.perMonitor)),
      "MiB",
      2,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string" },
      concurrent: { type: "string" },
      running: { type: "string" },
    },
  });
  const r = await benchContainers(
    Number(values.runs ?? 50),
    Number(values.concurrent ?? 10),
    Number(values.running ?? 50),
  );
  console.log(reportContainers(r));
}
