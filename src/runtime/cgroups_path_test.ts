import { describe, expect, it } from "../testing/bdd.ts";
import { cgroupsPath, systemdBooted } from "./cgroups_path.ts";
import { InvalidArgumentError } from "../errdefs/errors.ts";

describe("cgroupsPath", () => {
  it("nests a container under the kubelet's cgroupfs parent, or the default one", () => {
    expect(cgroupsPath("cgroupfs", "/kubepods/burstable/pod1/", "c1", "/k8sc/pods"))
      .toBe("/kubepods/burstable/pod1/c1");
    expect(cgroupsPath("cgroupfs", "", "c1", "/k8sc/pods")).toBe("/k8sc/pods/c1");
  });

  it("asks systemd for a scope in the kubelet's slice, or system.slice", () => {
    expect(cgroupsPath("systemd", "kubepods-besteffort-pod1.slice", "c1", "/x"))
      .toBe("kubepods-besteffort-pod1.slice:k8scontainerd:c1");
    expect(cgroupsPath("systemd", "/kubepods.slice/kubepods-pod2.slice", "c2", "/x"))
      .toBe("kubepods-pod2.slice:k8scontainerd:c2");
    expect(cgroupsPath("systemd", undefined, "c3", "/x")).toBe("system.slice:k8scontainerd:c3");
  });

  it("refuses a parent written for the other driver, naming the mismatch", () => {
    expect(() => cgroupsPath("systemd", "/kubepods/besteffort/pod1", "c", "/x")).toThrow(
      InvalidArgumentError,
    );
    expect(() => cgroupsPath("systemd", "/kubepods/besteffort/pod1", "c", "/x")).toThrow(
      /not a systemd slice.*cgroup_driver = "systemd"/,
    );
    expect(() => cgroupsPath("cgroupfs", "kubepods-pod1.slice", "c", "/x")).toThrow(
      /not a cgroupfs path.*cgroup_driver = "cgroupfs"/,
    );
  });

  it("knows whether systemd is the init system", async () => {
    const comm = (await Deno.readTextFile("/proc/1/comm")).trim();
    expect(await systemdBooted()).toBe(comm === "systemd");
  });
});
