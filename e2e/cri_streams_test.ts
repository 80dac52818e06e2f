/**
 * The CRI RPCs of Kubernetes 1.36 that containerd 2.2 serves, through the project's own CRI
 * client against a real daemon (real registry, a CNI bridge of its own): every Stream* call
 * returns what its List call returns, in pages of `[cri] stream_batch_size` (2 here, so five
 * containers take three messages, and an empty result none); the cAdvisor metric descriptors
 * and a running pod's metrics; UpdatePodSandboxResources changing the pod cgroup's limit files
 * as /sys/fs/cgroup shows them.
 */
import * as grpc from "@grpc/grpc-js";
import {
  afterAll,
  beforeAll,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../src/testing/bdd.ts";
import {
  LinuxContainerResources,
  type Metric,
  type PodSandboxConfig,
} from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/grpc/clients.ts";
import { containerConfig, podConfig } from "./cri_requests.ts";
import { type CriSuite, startCriSuite } from "./cri_env.ts";
import { cgroupMode } from "../ffi/fs.ts";
import { unifiedRoot } from "../src/cri/cgroup_files.ts";
import { ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";

const bridge = "k8sstr1";
const subnet = "10.223.78.0/24";
const BATCH = 2;
/** The pod cgroup parent's top directory, removed after the suite. */
const cgTop = `k8sstr1-${Date.now().toString(36)}`;
const v2 = cgroupMode() === "v2";

/** Reads a server stream to its end. */
async function collect<T>(s: grpc.ClientReadableStream<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of s) out.push(m as T);
  return out;
}

const byId = <T extends { id: string }>(xs: T[]) =>
  [...xs].sort((a, b) => a.id.localeCompare(b.id));

describe.skipIf(!isRoot, ROOT_REASON)("cri streams, metrics and pod resize", () => {
  let s: CriSuite;
  let dir: string;
  let rt: RuntimeServiceClient;
  let img: ImageServiceClient;
  let busybox: string;
  let podA: string, podB: string;
  let configA: PodSandboxConfig;
  const running: string[] = [];
  const all: string[] = [];
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    s.call<Req, Res>(fn, req);

  beforeAll(async () => {
    s = await startCriSuite({
      name: "streams",
      bridge,
      subnet,
      fixtures: ["busybox"],
      pull: ["busybox"],
      extraCri: () => `stream_batch_size = ${BATCH}\n`,
    });
    ({ dir, rt, img } = s);
    busybox = s.image("busybox");

    configA = podConfig("alpha", {
      labels: { app: "alpha" },
      logDirectory: `${dir}/logs/alpha`,
      linux: { cgroupParent: `/${cgTop}/podalpha` },
    });
    await Deno.mkdir(`${dir}/logs/alpha`, { recursive: true });
    podA = (await r(rt.runPodSandbox.bind(rt), { config: configA, runtimeHandler: "" }))
      .podSandboxId;
    const configB = podConfig("beta", { labels: { app: "beta" } });
    podB = (await r(rt.runPodSandbox.bind(rt), { config: configB, runtimeHandler: "" }))
      .podSandboxId;
    // Five containers in pod alpha (three running), none in beta.
    for (let i = 0; i < 5; i++) {
      const { containerId } = await r(rt.createContainer.bind(rt), {
        podSandboxId: podA,
        config: containerConfig(`c${i}`, busybox, ["sleep", "1000"], { labels: { n: `${i}` } }),
        sandboxConfig: configA,
      });
      all.push(containerId);
      if (i < 3) {
        await r(rt.startContainer.bind(rt), { containerId });
        running.push(containerId);
      }
    }
  });
  afterAll(async () => {
    for (const id of [podA, podB]) {
      if (!id) continue;
      await r(rt.stopPodSandbox.bind(rt), { podSandboxId: id }).catch(() => {});
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: id }).catch(() => {});
    }
    await s?.stop(
      `for c in /sys/fs/cgroup/*/${cgTop} /sys/fs/cgroup/${cgTop}; do
        [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \\; 2>/dev/null; done;`,
    );
  });

  it("StreamContainers returns ListContainers' containers, in pages, for the same filter", async () => {
    const list = await r(rt.listContainers.bind(rt), { filter: undefined });
    const pages = await collect(rt.streamContainers({ filter: undefined }));
    expect(pages.map((p) => p.containers.length)).toEqual([2, 2, 1]);
    expect(byId(pages.flatMap((p) => p.containers))).toEqual(byId(list.containers));
    expect(list.containers.map((c) => c.id).sort()).toEqual([...all].sort());
    // Each container once, with the image the user asked for.
    expect(list.containers[0].image?.userSpecifiedImage).toBe(busybox);

    const filter = {
      id: "",
      podSandboxId: podA,
      labelSelector: { n: "1" },
      state: undefined,
    };
    const one = await collect(rt.streamContainers({ filter }));
    expect(one.flatMap((p) => p.containers).map((c) => c.id)).toEqual([all[1]]);
    // An empty result: the stream ends without a message, as containerd does.
    const none = await collect(
      rt.streamContainers({ filter: { ...filter, podSandboxId: podB, labelSelector: {} } }),
    );
    expect(none).toEqual([]);
  });

  it("StreamPodSandboxes and StreamImages match their List calls", async () => {
    const list = await r(rt.listPodSandbox.bind(rt), { filter: undefined });
    const pages = await collect(rt.streamPodSandboxes({ filter: undefined }));
    expect(pages.every((p) => p.podSandboxes.length > 0 && p.podSandboxes.length <= BATCH))
      .toBe(true);
    expect(byId(pages.flatMap((p) => p.podSandboxes))).toEqual(byId(list.items));
    const beta = await collect(rt.streamPodSandboxes({
      filter: { id: "", state: undefined, labelSelector: { app: "beta" } },
    }));
    expect(beta.flatMap((p) => p.podSandboxes).map((p) => p.id)).toEqual([podB]);

    const images = await r(img.listImages.bind(img), { filter: undefined });
    const imagePages = await collect(img.streamImages({ filter: undefined }));
    expect(byId(imagePages.flatMap((p) => p.images))).toEqual(byId(images.images));
    expect(images.images.length).toBeGreaterThanOrEqual(2); // busybox and pause
  });

  it("StreamContainerStats and StreamPodSandboxStats cover what the List calls cover", async () => {
    const list = await r(rt.listContainerStats.bind(rt), { filter: undefined });
    const pages = await collect(rt.streamContainerStats({ filter: undefined }));
    expect(pages.map((p) => p.containerStats.length)).toEqual([2, 2, 1]);
    const ids = (xs: { attributes?: { id: string } }[]) => xs.map((x) => x.attributes!.id).sort();
    expect(ids(pages.flatMap((p) => p.containerStats))).toEqual(ids(list.stats));
    const live = pages.flatMap((p) => p.containerStats).find((s) =>
      s.attributes!.id === running[0]
    )!;
    expect(live.memory!.workingSetBytes!.value).toBeGreaterThan(0n);

    const pods = await r(rt.listPodSandboxStats.bind(rt), { filter: undefined });
    const podPages = await collect(rt.streamPodSandboxStats({ filter: undefined }));
    expect(ids(podPages.flatMap((p) => p.podSandboxStats))).toEqual(ids(pods.stats));
    const alpha = podPages.flatMap((p) => p.podSandboxStats).find((s) =>
      s.attributes!.id === podA
    )!;
    expect(alpha.linux!.containers.length).toBe(5);
    expect(alpha.linux!.network!.defaultInterface!.name).toBe("eth0");
    // PSI where the unified hierarchy has *.pressure files (v2, or a hybrid host's unified/).
    if (unifiedRoot()) {
      expect(live.cpu!.psi?.Some).toBeDefined();
      expect(alpha.linux!.cpu!.psi?.Some).toBeDefined();
    }
  });

  it("lists cAdvisor metric descriptors and a running pod's metrics", async () => {
    const { descriptors } = await r(rt.listMetricDescriptors.bind(rt), {});
    const keys = new Map(descriptors.map((x) => [x.name, x.labelKeys]));
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
    ) expect(keys.has(n)).toBe(true);

    // Traffic into the pod, so its receive counter moves.
    const st = await r(rt.podSandboxStatus.bind(rt), { podSandboxId: podA, verbose: false });
    await new Deno.Command("busybox", {
      args: ["ping", "-c2", "-W2", st.status!.network!.ip],
      stdout: "null",
    }).output();

    const { podMetrics } = await r(rt.listPodSandboxMetrics.bind(rt), {});
    expect(podMetrics.map((p) => p.podSandboxId).sort()).toEqual([podA, podB].sort());
    const alpha = podMetrics.find((p) => p.podSandboxId === podA)!;
    const check = (m: Metric) => {
      expect(keys.has(m.name)).toBe(true);
      expect(m.labelValues.length).toBe(keys.get(m.name)!.length);
    };
    alpha.metrics.forEach(check);
    const rx = alpha.metrics.find((m) => m.name === "container_network_receive_bytes_total")!;
    expect(rx.labelValues).toEqual(["alpha", "e2e", "", podA, "", "eth0"]);
    expect(rx.value!.value).toBeGreaterThan(0n);

    expect(alpha.containerMetrics.map((c) => c.containerId).sort()).toEqual([...running].sort());
    const c0 = alpha.containerMetrics.find((c) => c.containerId === running[0])!;
    c0.metrics.forEach(check);
    const get = (n: string) => c0.metrics.find((m) => m.name === n);
    expect(get("container_memory_working_set_bytes")!.value!.value).toBeGreaterThan(0n);
    expect(get("container_memory_working_set_bytes")!.value!.value).toBeLessThan(1n << 30n);
    expect(get("container_memory_usage_bytes")!.value!.value).toBeGreaterThan(0n);
    expect(get("container_cpu_usage_seconds_total")).toBeDefined();
    expect(get("container_processes")!.value!.value).toBe(1n);
    // The writable layer's filesystem, labelled with its device as cAdvisor does.
    expect(get("container_fs_usage_bytes")!.labelValues[5]).not.toMatch(/snapshots/);
    expect(get("container_fs_limit_bytes")!.value!.value).toBeGreaterThan(0n);
    const start = Number(get("container_start_time_seconds")!.value!.value);
    expect(Math.abs(start - Date.now() / 1000)).toBeLessThan(600);
    expect(get("container_memory_usage_bytes")!.labelValues).toEqual([
      "alpha",
      "e2e",
      "c0",
      running[0],
      busybox,
    ]);

    const streamed = await collect(rt.streamPodSandboxMetrics({}));
    expect(streamed.flatMap((p) => p.podSandboxMetrics).map((p) => p.podSandboxId).sort())
      .toEqual(podMetrics.map((p) => p.podSandboxId).sort());
  });

  it("UpdatePodSandboxResources writes the pod cgroup's cpu and memory limits", async () => {
    const res = LinuxContainerResources.fromPartial({
      cpuPeriod: 100000n,
      cpuQuota: 50000n,
      cpuShares: 512n,
      memoryLimitInBytes: 128n << 20n,
    });
    const overhead = LinuxContainerResources.fromPartial({ memoryLimitInBytes: 1n << 20n });
    await r(rt.updatePodSandboxResources.bind(rt), {
      podSandboxId: podA,
      overhead,
      resources: res,
    });
    const dirOf = (ctl: string) => `/sys/fs/cgroup${v2 ? "" : `/${ctl}`}/${cgTop}/podalpha`;
    const read = (ctl: string, f: string) => Deno.readTextFile(`${dirOf(ctl)}/${f}`);
    if (v2) {
      expect((await read("cpu", "cpu.max")).trim()).toBe("50000 100000");
      expect((await read("memory", "memory.max")).trim()).toBe(String(129 << 20));
    } else {
      expect((await read("cpu", "cpu.cfs_quota_us")).trim()).toBe("50000");
      expect((await read("cpu", "cpu.cfs_period_us")).trim()).toBe("100000");
      expect((await read("cpu", "cpu.shares")).trim()).toBe("512");
      expect((await read("memory", "memory.limit_in_bytes")).trim()).toBe(String(129 << 20));
    }
    // A resize up later: the files follow.
    await r(rt.updatePodSandboxResources.bind(rt), {
      podSandboxId: podA,
      overhead: undefined,
      resources: { ...res, cpuQuota: 150000n },
    });
    expect((await read("cpu", v2 ? "cpu.max" : "cpu.cfs_quota_us")).trim()).toBe(
      v2 ? "150000 100000" : "150000",
    );

    await expect(r(rt.updatePodSandboxResources.bind(rt), {
      podSandboxId: "nonexistent",
      overhead: undefined,
      resources: res,
    })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(r(rt.updatePodSandboxResources.bind(rt), {
      podSandboxId: podA,
      overhead: undefined,
      resources: { ...res, cpuQuota: 5n },
    })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      message: expect.stringContaining("resources.cpu_quota"),
    });
  });

  it("ContainerStatus reports image_id and user_specified_image", async () => {
    const { status } = await r(rt.containerStatus.bind(rt), {
      containerId: running[0],
      verbose: false,
    });
    expect(status!.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(status!.imageRef).toBe(status!.imageId);
    expect(status!.image!.userSpecifiedImage).toBe(busybox);
    const fs = await r(img.imageFsInfo.bind(img), {});
    expect(fs.containerFilesystems).toEqual([]);
    expect(fs.imageFilesystems.length).toBe(1);
  });
});
