/**
 * Cold pull + unpack from a local registry, k8scontainerd vs containerd 1.6 (`ctr images pull
 * --plain-http`), in the same run, alternating, each on a fresh daemon and empty root; peak
 * daemon RSS during the pull. Fixtures: busybox (small) and big (~200 MB in 5 layers).
 *
 * Run: scripts/deno run -A bench/pull.ts [--runs N] [--fixtures busybox,big]
 */
import { parseArgs } from "node:util";
import { startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import { median, mib, OUR_CLI, peakRss, startContainerd, startOurs, timed } from "./lib.ts";

export interface PullResult {
  fixture: string;
  ours: { seconds: number[]; peakRss: number[] };
  containerd: { seconds: number[]; peakRss: number[] };
}

export async function benchPull(fixtures: string[], runs: number): Promise<PullResult[]> {
  const registry = await startRegistry();
  try {
    await pushFixtures(registry.address, fixtures as never);
    const results: PullResult[] = [];
    for (const fixture of fixtures) {
      const ref = `${registry.address}/${fixture}:latest`;
      const r: PullResult = {
        fixture,
        ours: { seconds: [], peakRss: [] },
        containerd: { seconds: [], peakRss: [] },
      };
      for (let i = 0; i < runs; i++) {
        const ours = await startOurs();
        try {
          r.ours.seconds.push(
            await timed([...OUR_CLI, "--address", ours.socket, "images", "pull", "--quiet", ref]),
          );
          r.ours.peakRss.push(await peakRss(ours.pid));
        } finally {
          await ours.stop();
        }
        const ctrd = await startContainerd();
        try {
          r.containerd.seconds.push(
            await timed(["ctr", "-a", ctrd.socket, "images", "pull", "--plain-http", ref]),
          );
          r.containerd.peakRss.push(await peakRss(ctrd.pid));
        } finally {
          await ctrd.stop();
        }
      }
      results.push(r);
    }
    return results;
  } finally {
    await registry.stop();
  }
}

export function reportPull(results: PullResult[]): string {
  const lines = [
    "| fixture | k8scontainerd median s | containerd median s | time ratio | our peak RSS MiB | containerd peak RSS MiB | RSS ratio |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    const a = median(r.ours.seconds), b = median(r.containerd.seconds);
    const ra = median(r.ours.peakRss), rb = median(r.containerd.peakRss);
    lines.push(
      `| ${r.fixture} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(a / b).toFixed(2)} | ${mib(ra)} | ${
        mib(rb)
      } | ${(ra / rb).toFixed(2)} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { runs: { type: "string" }, fixtures: { type: "string" } },
  });
  const results = await benchPull(
    (values.fixtures ?? "busybox,big").split(","),
    Number(values.runs ?? 3),
  );
  console.log(reportPull(results));
}
