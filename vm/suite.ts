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
  /** Why the kubeadm phase did not run (undefined when it ran). */
  kubeadmSkipped?: string;
  /** Why the critest phase did not run (undefined when it ran). */
  critestSkipped?: string;
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
  /**
   * A directory with kubeadm, kubelet, kubectl and images/*.tar (`K8SC_KUBE_DIR`): adds the
   * kubeadm phase.
   */
  kubeDir?: string;
  /**
   * A directory with critest, crictl, run.sh and registry-data/ (`K8SC_CRITEST_DIR`): adds the
   * critest phase (see vm/guest/critest.sh).
   */
  critestDir?: string;
  /**
   * Only these phases (`K8SC_VM_PHASES`, comma-separated), e.g. ["critest"] to rerun critest
   * alone; default every phase whose inputs are given.
   */
  only?: string[];
  log?: (line: string) => void;
}

/** The phases, in order; each is one boot of the same disk. */
export const PHASES = ["install-and-test", "after-reboot"] as const;

/** Why a kube dir cannot drive the kubeadm phase, or undefined when it can. */
export function kubeDirProblem(dir: string | undefined): string | undefined {
  if (!dir) {
    return "K8SC_KUBE_DIR is not set (a directory with kubeadm, kubelet, kubectl and images/*.tar)";
  }
  for (const f of ["kubeadm", "kubelet", "kubectl"]) {
    try {
      if (!Deno.statSync(`${dir}/${f}`).isFile) return `${dir}/${f} is not a file`;
    } catch {
      return `${dir}/${f} is missing`;
    }
  }
  try {
    if (![...Deno.readDirSync(`${dir}/images`)].some((e) => e.name.endsWith(".tar"))) {
      return `${dir}/images holds no .tar image archives`;
    }
  } catch {
    return `${dir}/images is missing`;
  }
  return undefined;
}

/** Why a directory cannot drive the critest phase, or undefined when it can. */
export function critestDirProblem(dir: string | undefined): string | undefined {
  if (!dir) {
    return "K8SC_CRITEST_DIR is not set (a directory with critest, crictl, run.sh and registry-data/)";
  }
  for (const f of ["critest", "crictl", "run.sh"]) {
    try {
      if (!Deno.statSync(`${dir}/${f}`).isFile) return `${dir}/${f} is not a file`;
    } catch {
      return `${dir}/${f} is missing`;
    }
  }
  try {
    if (!Deno.statSync(`${dir}/registry-data/docker`).isDirectory) {
      return `${dir}/registry-data holds no registry data (docker/)`;
    }
  } catch {
    return `${dir}/registry-data/docker is missing (copy the conformance registry's data dir)`;
  }
  return undefined;
}

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
  const envArch = Deno.env.get("K8SC_VM_ARCH");
  if (envArch && envArch !== "amd64" && envArch !== "arm64") {
    throw new Error(`K8SC_VM_ARCH=${envArch}: expected amd64 or arm64`);
  }
  const image = await buildGuestImage({ arch: o.arch ?? (envArch as GuestArch | undefined), log });
  const imageSeconds = (Date.now() - t0) / 1000;
  const jobDir = await Deno.makeTempDir({ prefix: "k8sc-vm-job-" });
  const kubeDir = o.kubeDir ?? Deno.env.get("K8SC_KUBE_DIR");
  const kubeadmSkipped = kubeDirProblem(kubeDir);
  const critestDir = o.critestDir ?? Deno.env.get("K8SC_CRITEST_DIR");
  const critestSkipped = critestDirProblem(critestDir);
  const only = o.only ?? Deno.env.get("K8SC_VM_PHASES")?.split(",").filter((p) => p);
  const phases: string[] = [
    ...PHASES,
    ...(kubeadmSkipped ? [] : ["kubeadm", "kubeadm-after-reboot"]),
    ...(critestSkipped ? [] : ["critest"]),
  ].filter((p) => !only?.length || only.includes(p));
  const machine = await GuestMachine.create({
    image,
    shares: [
      { tag: "project", path: projectDir, readonly: true },
      { tag: "job", path: jobDir, readonly: false },
      ...(kubeadmSkipped ? [] : [{ tag: "kube", path: kubeDir!, readonly: true }]),
      ...(critestSkipped ? [] : [{ tag: "critest", path: critestDir!, readonly: true }]),
    ],
    restrictedNic: !kubeadmSkipped,
    // The control plane needs more room than the CRI suite.
    memoryMiB: kubeadmSkipped ? 2048 : 4096,
  });
  if (kubeadmSkipped) log(`vm: kubeadm phase skipped: ${kubeadmSkipped}`);
  if (critestSkipped) log(`vm: critest phase skipped: ${critestSkipped}`);
  const boots: BootReport[] = [];
  try {
    for (const phase of phases) {
      await Deno.writeTextFile(
        `${jobDir}/run.sh`,
        `#!/bin/sh\nexec sh /opt/k8scontainerd/vm/guest/job.sh ${phase}\n`,
      );
      log(`vm ${image.arch}: boot for phase ${phase}`);
      // kubeadm init under TCG waits minutes for each Go component to start.
      const defaultMin = phase === "kubeadm" ? 60 : 30;
      const res = await machine.boot({ timeoutMs: o.bootTimeoutMs ?? defaultMin * 60_000 });
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
  return {
    arch: image.arch,
    kubeadmSkipped,
    critestSkipped,
    imageCached: image.cached,
    imageSeconds,
    boots,
    jobDir,
  };
}
