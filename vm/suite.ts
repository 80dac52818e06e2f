/**
 * The VM end-to-end run: build (or reuse) the guest image, boot it with this repository shared
 * in, let the guest install k8scontainerd as a systemd service and run the CRI e2e suite
 * against it (systemd cgroup driver, cgroup v2), shut it down cleanly with a pod running, boot
 * the same disk again and check what the service reports. Each phase is
 * vm/guest/job.sh inside the guest; it writes one JSON line per step to the shared job
 * directory, which is what this returns.
 *
 * @example
 * ```ts
 * import { runVmSuite } from "./suite.ts";
 * const report = await runVmSuite({ log: console.log });
 * for (const b of report.boots) for (const s of b.steps) console.log(b.phase, s.step, s.ok);
 * ```
 */
import { buildGuestImage, type GuestArch } from "./guest_image.ts";
import { type BootResult, GuestMachine } from "./qemu.ts";

/** One step the guest reported. */
export interface StepResult {
  step: string;
  ok: boolean;
  seconds: number;
  detail: string;
}

/** One boot of the guest and the steps it reported. */
export interface BootReport extends BootResult {
  phase: string;
  steps: StepResult[];
  /** The last lines of the serial console, for failure messages. */
  consoleTail: string;
}

/** What a run did. */
export interface VmReport {
  arch: GuestArch;
  imageCached: boolean;
  imageSeconds: number;
  boots: BootReport[];
  /** Where the job directory (results, logs, journals) was kept. */
  jobDir: string;
}

/** Options for {@link runVmSuite}. */
export interface VmSuiteOptions {
  arch?: GuestArch;
  /** The repository shared into the guest. */
  projectDir?: string;
  /** Per-boot limit. */
  bootTimeoutMs?: number;
  log?: (line: string) => void;
}

/** The phases, in order; each is one boot of the same disk. */
export const PHASES = ["install-and-test", "after-reboot"] as const;

async function readSteps(file: string): Promise<StepResult[]> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    try {
      return JSON.parse(l) as StepResult;
    } catch {
      return { step: "unparsable-result", ok: false, seconds: 0, detail: l };
    }
  });
}

/** Runs every phase; never throws for a failing guest step (the report says), only for setup. */
export async function runVmSuite(o: VmSuiteOptions = {}): Promise<VmReport> {
  const log = o.log ?? (() => {});
  const projectDir = o.projectDir ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const t0 = Date.now();
  const image = await buildGuestImage({ arch: o.arch, log });
  const imageSeconds = (Date.now() - t0) / 1000;
  const jobDir = await Deno.makeTempDir({ prefix: "k8sc-vm-job-" });
  const machine = await GuestMachine.create({
    image,
    shares: [
      { tag: "project", path: projectDir, readonly: true },
      { tag: "job", path: jobDir, readonly: false },
    ],
  });
  const boots: BootReport[] = [];
  try {
    for (const phase of PHASES) {
      await Deno.writeTextFile(
        `${jobDir}/run.sh`,
        `#!/bin/sh\nexec sh /opt/k8scontainerd/vm/guest/job.sh ${phase}\n`,
      );
      log(`vm ${image.arch}: boot for phase ${phase}`);
      const res = await machine.boot({ timeoutMs: o.bootTimeoutMs ?? 30 * 60_000 });
      const consoleText = await Deno.readTextFile(res.consoleLog).catch(() => "");
      await Deno.writeTextFile(`${jobDir}/${phase}.console`, consoleText);
      const steps = await readSteps(`${jobDir}/${phase}.results`);
      const boot: BootReport = {
        ...res,
        consoleLog: `${jobDir}/${phase}.console`,
        phase,
        steps,
        consoleTail: consoleText.split("\n").slice(-40).join("\n"),
      };
      boots.push(boot);
      log(
        `vm ${image.arch}: phase ${phase} ended after ${res.seconds.toFixed(0)} s` +
          (res.timedOut ? " (timed out)" : ` (qemu exit ${res.code})`) +
          `: ${steps.map((s) => `${s.step}=${s.ok ? "ok" : "FAIL"}`).join(" ")}`,
      );
      // A phase that did not finish leaves nothing sensible for the next one to check.
      if (!steps.some((s) => s.step === "done")) break;
    }
  } finally {
    await machine.cleanup();
  }
  return { arch: image.arch, imageCached: image.cached, imageSeconds, boots, jobDir };
}
