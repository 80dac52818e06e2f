import { describe, expect, it } from "../testing/bdd.ts";
import { MetricType } from "../gen/runtime/v1/api.ts";
import {
  blkioMetrics,
  cgroupMetrics,
  deviceFromMountinfo,
  listMetricDescriptors,
  METRIC_DESCRIPTORS,
  MetricsBuilder,
  networkMetrics,
} from "./pod_metrics.ts";

const LABELS = ["web", "default", "app", "c1", "busybox:latest"];
const values = (m: MetricsBuilder) =>
  Object.fromEntries(
    m.out.map((x) => [[x.name, ...x.labelValues.slice(5)].join("/"), Number(x.value!.value)]),
  );

describe("metric descriptors", () => {
  it("are unique, cAdvisor-named, with containerd's label keys", async () => {
    const { descriptors } = await listMetricDescriptors();
    const names = descriptors.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    for (
      const n of [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_usage_bytes",
        "container_network_receive_bytes_total",
        "container_network_transmit_bytes_total",
        "container_fs_usage_bytes",
        "container_spec_memory_limit_bytes",
      ]
    ) expect(names).toContain(n);
    const by = new Map(descriptors.map((d) => [d.name, d.labelKeys]));
    expect(by.get("container_cpu_usage_seconds_total")).toEqual([
      "pod",
      "namespace",
      "container",
      "id",
      "image",
    ]);
    expect(by.get("container_network_receive_bytes_total")?.at(-1)).toBe("interface");
    expect(by.get("container_fs_usage_bytes")?.at(-1)).toBe("device");
  });
});

describe("cgroupMetrics", () => {
  it("reads runc's cgroup v1 stats (total_* keys, memsw swap)", () => {
    const m = new MetricsBuilder(LABELS, 0n);
    cgroupMetrics(m, {
      cpu: {
        usage: { total: 3_500_000_000, user: 2_100_000_000, kernel: 1_000_000_000 },
        throttling: { periods: 10, throttledPeriods: 2, throttledTime: 4_000_000_000 },
      },
      memory: {
        cache: 300,
        usage: { usage: 1000, max: 2000, failcnt: 1, limit: 4096 },
        swap: { usage: 1500, limit: 8192 },
        kernel: { usage: 50 },
        raw: {
          total_rss: 600,
          total_inactive_file: 100,
          total_active_file: 200,
          total_mapped_file: 30,
          total_pgfault: 9,
          total_pgmajfault: 1,
        },
      },
    });
    const v = values(m);
    expect(v).toMatchObject({
      "container_cpu_usage_seconds_total": 3,
      "container_cpu_user_seconds_total": 2,
      "container_cpu_system_seconds_total": 1,
      "container_cpu_cfs_periods_total": 10,
      "container_cpu_cfs_throttled_periods_total": 2,
      "container_cpu_cfs_throttled_seconds_total": 4,
      "container_memory_usage_bytes": 1000,
      "container_memory_working_set_bytes": 900,
      "container_memory_max_usage_bytes": 2000,
      "container_memory_cache": 300,
      "container_memory_rss": 600,
      "container_memory_mapped_file": 30,
      "container_memory_swap": 500,
      "container_memory_kernel_usage": 50,
      "container_memory_failures_total/pgfault/container": 9,
      "container_memory_failures_total/pgmajfault/hierarchy": 1,
    });
    const cpu = m.out.find((x) => x.name === "container_cpu_usage_seconds_total")!;
    expect(cpu.metricType).toBe(MetricType.COUNTER);
    expect(cpu.labelValues).toEqual(LABELS);
    expect(m.out.find((x) => x.name === "container_memory_usage_bytes")!.metricType).toBe(
      MetricType.GAUGE,
    );
  });
  it("reads runc's cgroup v2 stats (anon, file, file_mapped)", () => {
    const m = new MetricsBuilder(LABELS, 0n);
    cgroupMetrics(m, {
      cpu: { usage: { total: 1_000_000_000, user: 0, kernel: 0 } },
      memory: {
        usage: { usage: 5000 },
        raw: { anon: 4000, file: 800, file_mapped: 20, inactive_file: 500, active_file: 300 },
      },
    });
    expect(values(m)).toMatchObject({
      "container_memory_working_set_bytes": 4500,
      "container_memory_rss": 4000,
      "container_memory_cache": 800,
      "container_memory_mapped_file": 20,
      "container_memory_total_inactive_file_bytes": 500,
    });
    expect(values(m)["container_memory_swap"]).toBeUndefined();
  });
});

describe("network and block I/O metrics", () => {
  it("label each link with its interface", () => {
    const m = new MetricsBuilder(["web", "default", "", "pod1", ""], 0n);
    networkMetrics(m, "eth0", {
      rxBytes: 10,
      rxPackets: 1,
      rxErrors: 0,
      rxDropped: 0,
      txBytes: 20,
      txPackets: 2,
      txErrors: 0,
      txDropped: 0,
    });
    expect(values(m)).toMatchObject({
      "container_network_receive_bytes_total/eth0": 10,
      "container_network_transmit_bytes_total/eth0": 20,
    });
    expect(m.out[0].labelValues).toEqual(["web", "default", "", "pod1", "", "eth0"]);
  });
  it("sum runc's blkio entries per device and operation", async () => {
    const m = new MetricsBuilder(LABELS, 0n);
    await blkioMetrics(m, {
      blkio: {
        ioServiceBytesRecursive: [
          { major: 4095, minor: 9, op: "Read", value: 100 },
          { major: 4095, minor: 9, op: "Write", value: 50 },
          { major: 4095, minor: 9, op: "Total", value: 150 },
        ],
        ioServicedRecursive: [{ major: 4095, minor: 9, op: "Read", value: 3 }],
      },
    });
    expect(values(m)).toEqual({
      "container_fs_reads_bytes_total/4095:9": 100,
      "container_fs_writes_bytes_total/4095:9": 50,
      "container_fs_reads_total/4095:9": 3,
      "container_fs_writes_total/4095:9": 0,
    });
  });
  it("every metric the builders make has a descriptor", () => {
    const names = new Set(METRIC_DESCRIPTORS.map((d) => d.name));
    const m = new MetricsBuilder(LABELS, 0n);
    expect(() => m.add("container_made_up_total", 1)).toThrow(/no descriptor/);
    expect(names.size).toBe(METRIC_DESCRIPTORS.length);
  });
});

describe("deviceFromMountinfo", () => {
  const info = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" +
    "30 22 0:26 / /var/lib/k8s rw shared:5 - xfs /dev/vdb rw\n" +
    "31 22 0:27 / /var/lib/k8sother rw shared:6 - tmpfs tmpfs rw\n";
  it("names the source of the longest mount point holding the path", () => {
    expect(deviceFromMountinfo(info, "/var/lib/k8s/snapshots/5/fs")).toBe("/dev/vdb");
    expect(deviceFromMountinfo(info, "/tmp/x")).toBe("/dev/sda1");
    expect(deviceFromMountinfo(info, "/var/lib/k8sother2/a")).toBe("/dev/sda1");
  });
});
