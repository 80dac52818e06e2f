/**
 * The VM suite (vm/): a Debian bookworm guest with systemd as PID 1 and cgroup v2, booted
 * under QEMU (TCG here). In it k8scontainerd runs as the systemd service the project ships
 * (Type=notify, systemd cgroup driver), the CRI e2e suite passes against it, and after a clean
 * shutdown and a second boot of the same disk the service is back by itself, reports the
 * earlier pod as NOTREADY with its container EXITED, and releases its IP on removal. The guest
 * boots with AppArmor on, so the CRI AppArmor suite (cri_apparmor_test.ts) runs its
 * enabled-host checks there.
 *
 * Slow (minutes): the guest image build (~2 min, cached under .cache/vm) and two boots under
 * emulation. `K8SC_VM=0` skips it, saying so.
 */
import { afterAll, describe, expect, isRoot, it, ROOT_REASON } from "../src/testing/bdd.ts";
import { critestDirProblem, kubeDirProblem, runVmSuite, type VmReport } from "../vm/suite.ts";

function missingTools(): string[] {
  const need = ["qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4"];
  if (Deno.build.arch === "aarch64") need[0] = "qemu-system-aarch64";
  return need.filter((t) =>
    !new Deno.Command("sh", { args: ["-c", `command -v ${t}`], stdout: "null" }).outputSync()
      .success
  );
}

const missing = isRoot ? missingTools() : [];
const skipReason = !isRoot
  ? ROOT_REASON
  : Deno.env.get("K8SC_VM") === "0"
  ? "K8SC_VM=0 asks to skip the VM suite"
  : missing.length
  ? `missing ${missing.join(", ")} (scripts/setup.sh --test installs them)`
  : "";

describe.skipIf(skipReason !== "", skipReason)("vm: systemd guest (cgroup v2)", () => {
  let report: VmReport;
  const step = (phase: string, name: string) => {
    const boot = report.boots.find((b) => b.phase === phase);
    if (!boot) throw new Error(`phase ${phase} never booted`);
    const s = boot.steps.find((x) => x.step === name);
    if (!s) {
      throw new Error(
        `phase ${phase}: no step ${name} reported (${boot.steps.map((x) => x.step).join(", ")}); ` +
          `console:\n${boot.consoleTail}`,
      );
    }
    if (!s.ok) throw new Error(`phase ${phase}: step ${name} failed: ${s.detail}`);
    return s;
  };

  afterAll(async () => {
    // Logs, journals and consoles stay for a failed run; a clean one leaves nothing behind.
    const clean = report?.boots.every((b) => !b.timedOut && b.steps.every((s) => s.ok));
    if (clean) await Deno.remove(report.jobDir, { recursive: true });
    else if (report) console.log(`vm: logs kept in ${report.jobDir}`);
  });

  it("builds the guest, boots it twice and collects every step", async () => {
    report = await runVmSuite({ log: (l) => console.log(l) });
    console.log(
      `vm: image ${report.imageCached ? "reused" : "built"} in ${
        report.imageSeconds.toFixed(0)
      } s; ` +
        report.boots.map((b) => `${b.phase} ${b.seconds.toFixed(0)} s`).join(", ") +
        `; logs in ${report.jobDir}`,
    );
    const phases = ["install-and-test", "after-reboot"];
    if (!kubeDirProblem(Deno.env.get("K8SC_KUBE_DIR"))) {
      phases.push("kubeadm", "kubeadm-after-reboot");
    }
    if (!critestDirProblem(Deno.env.get("K8SC_CRITEST_DIR"))) phases.push("critest");
    expect(report.boots.map((b) => [b.phase, b.timedOut])).toEqual(phases.map((p) => [p, false]));
  });

  it("boots systemd as PID 1 with the unified cgroup v2 hierarchy", () => {
    expect(step("install-and-test", "boot").detail).toContain("init=systemd");
    expect(step("install-and-test", "boot").detail).toContain("cgroupfs=cgroup2fs");
  });

  it("installs the shipped unit; systemctl start returns once READY=1 was sent", () => {
    step("install-and-test", "install");
    step("install-and-test", "service-start");
    const ready = step("install-and-test", "service-ready").detail;
    expect(ready).toContain("Type=notify");
    expect(ready).toContain("ActiveState=active");
  });

  it("passes the CRI e2e suite against the systemd service (systemd cgroup driver)", () => {
    expect(step("install-and-test", "cri-e2e").detail).toMatch(/ok \| \d+ passed/);
  });

  it("boots with AppArmor on and passes the CRI AppArmor suite's enabled-host checks", () => {
    // doctor (before any container) sees it on, with the parser.
    expect(step("install-and-test", "doctor").detail).toMatch(
      /\[ ok \] apparmor\s+on; k8scontainerd-default loads with the first container; \/\S*apparmor_parser/,
    );
    const on = step("install-and-test", "apparmor-enabled").detail;
    expect(on).toContain("enabled=Y");
    expect(on).toContain("apparmor");
    // The service confined the CRI suite's containers with its default profile.
    expect(on).toContain("k8scontainerd-default loaded by the service (cri-e2e): 1");
    // K8SC_E2E_APPARMOR=required: the two enabled-host checks ran (they may not skip) and
    // passed; the two host-off ones were skipped because AppArmor is on.
    const e2e = step("install-and-test", "cri-apparmor-e2e").detail;
    expect(e2e).toContain("host-off checks skipped since AppArmor is on: 2");
    expect(e2e).toMatch(/ok \| 1 passed \(2 steps\) \| 0 failed/);
  });

  it("passes the CRI security suite on cgroup v2 (user namespaces, rro, groups, CDI, image volumes)", () => {
    expect(step("install-and-test", "cri-security-e2e").detail).toMatch(
      /ok \| 1 passed \(\d+ steps\)/,
    );
  });

  it("puts containers in systemd scopes under the kubelet's slice", () => {
    step("install-and-test", "pod-before-reboot");
  });

  it("comes back after the reboot and reports the earlier pod correctly", () => {
    step("after-reboot", "service-after-reboot");
    step("after-reboot", "pod-after-reboot");
  });

  const critestProblem = critestDirProblem(Deno.env.get("K8SC_CRITEST_DIR"));
  it.skipIf(critestProblem !== undefined, `critest phase: ${critestProblem}`)(
    "critest against the systemd service: only the digest-pinned image fails (runc), crun too",
    () => {
      step("critest", "critest-setup");
      for (const s of ["critest-runc", "critest-crun"]) {
        console.log(`vm ${s}: ${step("critest", s).detail}`);
      }
    },
  );

  const kubeProblem = kubeDirProblem(Deno.env.get("K8SC_KUBE_DIR"));
  it.skipIf(kubeProblem !== undefined, `kubeadm phase: ${kubeProblem}`)(
    "kubeadm: init against our socket, node Ready, a pod with exec, logs, port-forward, delete; limits, stats, OOM, init containers, volumes, probes on cgroup v2, exec -it, attach, graceful delete, error reasons",
    () => {
      for (
        const s of [
          "kube-install",
          "kube-images",
          "kube-runtime-config",
          "kubeadm-init",
          "node-ready",
          "kube-pod",
          "kube-exec",
          "kube-logs",
          "kube-port-forward",
          "kube-delete",
          "kube-limits-stats-oom",
          "kube-init-volumes-probe",
          "kube-tty-attach",
          "kube-graceful-delete",
          "kube-errors",
          "kube-keeper",
        ]
      ) step("kubeadm", s);
      expect(step("kubeadm", "kube-limits-stats-oom").detail).toContain("OOMKilled");
      expect(step("kubeadm", "kube-graceful-delete").detail).toContain("up prestop TERM");
    },
  );
  it.skipIf(kubeProblem !== undefined, `kubeadm phase: ${kubeProblem}`)(
    "kubeadm: the runtime killed -9 under the kubelet comes back by systemd, pods untouched",
    () => {
      expect(step("kubeadm", "kube-runtime-killed").detail).toContain("exec-after-kill");
    },
  );
  it.skipIf(kubeProblem !== undefined, `kubeadm phase: ${kubeProblem}`)(
    "kubeadm: after a reboot the control plane and the Deployment's pods come back by themselves",
    () => {
      step("kubeadm-after-reboot", "kube-back");
      expect(step("kubeadm-after-reboot", "kube-pods-back").detail).toContain("exec-after-reboot");
    },
  );
});
