/**
 * A real Kubernetes node on this host: etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler and a kubelet whose container runtime is a k8scontainerd daemon, all on
 * 127.0.0.1 with free ports and everything under one temp dir (the cluster itself is
 * ./kube_cluster.ts). The checks are what a node operator does with kubectl: the node is
 * Ready, a Deployment's pods run with pod IPs, logs, exec, init containers, a liveness probe,
 * volumes, graceful deletion, a missing image, and nothing left behind once the pods are gone.
 *
 * Needs root and `K8SC_KUBE_DIR`: a directory with kubelet, kube-apiserver,
 * kube-controller-manager, kube-scheduler and kubectl (etcd in it or on PATH). The README's
 * "A kubelet on the host" says how to build them.
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
import { type Registry, startRegistry } from "../scripts/fixtures/registry.ts";
import { pushFixtures } from "../scripts/fixtures/images.ts";
import { call } from "../src/grpc/clients.ts";
import { runCli, startTestDaemon, type TestDaemon } from "./harness.ts";
import { cleanUpAfterDaemon, writeCniConf, writeCriConfig } from "./cri_env.ts";
import {
  kubeBinaries,
  type KubeCluster,
  type KubectlResult,
  NODE,
  sh,
  sleep,
  startKubeCluster,
  waitFor,
} from "./kube_cluster.ts";
import { RuntimeServiceClient } from "../src/grpc/clients.ts";

const BRIDGE = "k8skube1";
const SUBNET_PREFIX = "10.223.90.";

const found = kubeBinaries();
const skipReason = !isRoot ? ROOT_REASON : "problem" in found ? found.problem : undefined;

describe.skipIf(skipReason !== undefined, skipReason ?? "")("a kubelet on the host", () => {
  const bins = "bins" in found ? found.bins : {};
  let registry: Registry;
  let d: TestDaemon;
  let dir: string;
  let reg: string;
  let cluster: KubeCluster;
  let adminKubeconfig: string;
  let kubeletPort: number;
  let configToml: string;

  /** kubectl as the cluster admin; rejects on a non-zero exit unless `allowFail`. */
  const kubectl = (
    args: string[],
    o: { stdin?: string; allowFail?: boolean } = {},
  ): Promise<KubectlResult> => cluster.kubectl(args, o);

  const apply = (obj: unknown) => cluster.apply(obj);

  // deno-lint-ignore no-explicit-any
  const getJson = (args: string[]): Promise<any> => cluster.getJson(args);

  // deno-lint-ignore no-explicit-any
  function simplePod(name: string, spec: Record<string, any>) {
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels: { e2e: "kube-host" } },
      spec: { terminationGracePeriodSeconds: 5, ...spec },
    };
  }

  const busybox = () => `${reg}/busybox:latest`;

  // deno-lint-ignore no-explicit-any
  async function waitPod(name: string, ok: (p: any) => boolean, what: string, ms = 120_000) {
    // deno-lint-ignore no-explicit-any
    let last: any;
    try {
      return await waitFor(
        `pod ${name} ${what}`,
        async () => {
          last = await getJson(["pod", name]);
          return ok(last) ? last : undefined;
        },
        ms,
        1000,
      );
    } catch (e) {
      throw new Error(`${e}\nlast status: ${JSON.stringify(last?.status)}`);
    }
  }

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-kube-e2e-" });
    await Deno.chmod(dir, 0o711);
    await Deno.mkdir(`${dir}/logs`);
    registry = await startRegistry();
    reg = registry.address;
    await pushFixtures(reg, ["busybox", "pause", "user-uid"]);

    // The runtime: its own CNI bridge and the test registry's pause image.
    // A chained plugin that refuses ADD for the pod named cni-fail and passes every other
    // attachment through (our CNI layer puts prevResult last in the config it pipes in).
    await Deno.mkdir(`${dir}/cni-bin`);
    await Deno.writeTextFile(
      `${dir}/cni-bin/e2e-failadd`,
      `#!/bin/sh
input=$(cat)
case "$CNI_COMMAND" in
ADD)
  case ";$CNI_ARGS;" in *";K8S_POD_NAME=cni-fail;"*)
    echo '{"cniVersion":"1.0.0","code":11,"msg":"ADD refused by the e2e plugin"}'
    exit 1 ;;
  esac
  printf '%s' "$input" | sed -e 's/.*,"prevResult"://' -e 's/}$//' ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`,
      { mode: 0o755 },
    );
    await writeCniConf(dir, {
      name: "kube-e2e",
      bridge: BRIDGE,
      subnet: `${SUBNET_PREFIX}0/24`,
      after: [{ type: "e2e-failadd" }],
    });
    configToml = await writeCriConfig(dir, {
      sandboxImage: `${reg}/pause:latest`,
      extraCri: `cni_bin_dirs = ["${dir}/cni-bin", "/usr/lib/cni", "/opt/cni/bin"]\n`,
    });
    await Deno.mkdir(`${dir}/k8sc`);
    d = await startTestDaemon({ args: ["--config", configToml], dir: `${dir}/k8sc` });

    cluster = await startKubeCluster({
      bins,
      dir,
      runtimeSocket: d.socket,
      podInfraImage: `${reg}/pause:latest`,
    });
    adminKubeconfig = cluster.adminKubeconfig;
    kubeletPort = cluster.kubeletPort;
  });

  afterAll(async () => {
    // Pods first, while the kubelet still runs, so it stops them through the runtime.
    if (cluster) {
      await kubectl(["delete", "deployment,pod,configmap,secret", "--all", "--wait=false"], {
        allowFail: true,
      }).catch(() => {});
      await cluster.stop();
    }
    await d?.stop();
    if (d) await Deno.writeTextFile(`${dir}/logs/k8scontainerd.log`, d.log());
    await cleanUpAfterDaemon(d, BRIDGE);
    // The kubelet's mounts and its cgroup root.
    await cluster?.cleanup();
    await registry?.stop();
    if (Deno.env.get("K8SC_KUBE_KEEP")) console.log(`kept ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  it("the node registers and becomes Ready", async () => {
    await cluster.waitNodeReady();
    const node = await getJson(["node", NODE]);
    expect(node.status.nodeInfo.containerRuntimeVersion).toMatch(/^k8scontainerd:\/\//);
    expect(node.status.addresses).toContainEqual({ type: "Hostname", address: NODE });
  });

  it("a Deployment's pods run with pod IPs on the runtime's bridge", async () => {
    await apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web" },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: {
            terminationGracePeriodSeconds: 5,
            containers: [{
              name: "web",
              image: busybox(),
              command: ["sh", "-c", "echo started on $(hostname); exec sleep 3600"],
            }],
          },
        },
      },
    });
    await kubectl(["rollout", "status", "deployment/web", "--timeout=180s"]);
    const pods = await getJson(["pods", "-l", "app=web"]);
    expect(pods.items.length).toBe(2);
    for (const p of pods.items) {
      expect(p.status.phase).toBe("Running");
      expect(p.status.podIP).toMatch(new RegExp(`^${SUBNET_PREFIX.replaceAll(".", "\\.")}\\d+$`));
      const ping = await new Deno.Command("busybox", {
        args: ["ping", "-c1", "-W2", p.status.podIP],
        stdout: "null",
      }).output();
      expect(ping.success).toBe(true);
    }
  });

  it("kubectl logs shows the container's output", async () => {
    const pods = await getJson(["pods", "-l", "app=web"]);
    const name = pods.items[0].metadata.name;
    const out = await kubectl(["logs", name]);
    expect(out.stdout).toBe(`started on ${name}\n`);
  });

  it("kubectl exec feeds stdin and returns the exit code", async () => {
    const pods = await getJson(["pods", "-l", "app=web"]);
    const name = pods.items[0].metadata.name;
    const r = await kubectl(["exec", "-i", name, "--", "sh", "-c", "tr a-z A-Z; exit 3"], {
      stdin: "hello kubelet\n",
      allowFail: true,
    });
    expect(r.stdout).toBe("HELLO KUBELET\n");
    expect(r.code).toBe(3);
    const ok = await kubectl(["exec", name, "--", "hostname"]);
    expect(ok.stdout).toBe(`${name}\n`);
  });

  it("kubectl exec -t gives a terminal and returns the exit code", async () => {
    const name = Object.keys(await webContainers())[0];
    // A real pty for kubectl (script from util-linux), as an operator's terminal would be. Five
    // times: the container's console once got its size only after the process had started.
    for (let i = 0; i < 5; i++) await execTty(name);
  });

  async function execTty(name: string) {
    // script's stdin stays open and silent: at its end script would type an end-of-file into
    // kubectl's terminal, which kubectl passes on (the container's terminal echoed it as ^@).
    const child = new Deno.Command("script", {
      args: [
        "-qec",
        `${bins.kubectl} --kubeconfig ${adminKubeconfig} exec -it ${name} -- sh -c 'tty; stty size; exit 4'`,
        "/dev/null",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = await child.output();
    await child.stdin.close().catch(() => {});
    const text = new TextDecoder().decode(out.stdout);
    // Whole, so that a failure shows what the terminal printed. Line ends come as \r\n, or as
    // \r\r\n when script's own terminal also maps the container terminal's \n (its mode is
    // kubectl's to set, and the output may beat it).
    expect({ text, code: out.code }).toEqual({
      text: expect.stringMatching(/\/dev\/pts\/\d+\r*\n\d+ \d+/),
      code: 4,
    });
  }

  it("kubectl attach reaches a running container's stdin and stdout", async () => {
    await apply(simplePod("attachee", {
      containers: [{
        name: "app",
        image: busybox(),
        stdin: true,
        command: ["sh", "-c", 'echo ready; while read l; do echo "echo:$l"; done'],
      }],
    }));
    await waitPod("attachee", (p) => p.status.phase === "Running", "Running");
    const child = new Deno.Command(bins.kubectl, {
      args: ["--kubeconfig", adminKubeconfig, "attach", "-i", "attachee", "-c", "app"],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const w = child.stdin.getWriter();
    let seen = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const deadline = Date.now() + 60_000;
    try {
      while (!seen.includes("echo:through attach") && Date.now() < deadline) {
        await w.write(new TextEncoder().encode("through attach\n"));
        const r = await Promise.race([reader.read(), sleep(2000).then(() => undefined)]);
        if (r?.value) seen += r.value;
        if (r?.done) break;
      }
    } finally {
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
    }
    expect(seen).toContain("echo:through attach");
    // The attach went through the container's own stdout: the log has it too.
    expect((await kubectl(["logs", "attachee"])).stdout).toContain("echo:through attach");
    await kubectl(["delete", "pod", "attachee", "--wait=true", "--timeout=60s"]);
  });

  it("init containers run to completion, in order, before the app", async () => {
    await apply(simplePod("init", {
      volumes: [{ name: "work", emptyDir: {} }],
      initContainers: [
        {
          name: "one",
          image: busybox(),
          command: ["sh", "-c", "echo one > /work/order"],
          volumeMounts: [{ name: "work", mountPath: "/work" }],
        },
        {
          name: "two",
          image: busybox(),
          command: ["sh", "-c", "echo two >> /work/order"],
          volumeMounts: [{ name: "work", mountPath: "/work" }],
        },
      ],
      containers: [{
        name: "app",
        image: busybox(),
        command: ["sh", "-c", "cat /work/order; exec sleep 3600"],
        volumeMounts: [{ name: "work", mountPath: "/work" }],
      }],
    }));
    const p = await waitPod("init", (p) => p.status.phase === "Running", "Running");
    expect(
      p.status.initContainerStatuses.map((s: { state: { terminated?: { exitCode: number } } }) =>
        s.state.terminated?.exitCode
      ),
    ).toEqual([0, 0]);
    await waitFor("init logs", async () => {
      const out = await kubectl(["logs", "init", "-c", "app"]);
      return out.stdout === "one\ntwo\n" ? true : undefined;
    }, 30_000);
  });

  it("a failing liveness exec probe restarts the container", async () => {
    await apply(simplePod("live", {
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "echo run $(cat /proc/uptime); touch /tmp/healthy; sleep 4; rm /tmp/healthy; exec sleep 3600",
        ],
        livenessProbe: {
          exec: { command: ["cat", "/tmp/healthy"] },
          initialDelaySeconds: 1,
          periodSeconds: 2,
          failureThreshold: 1,
          timeoutSeconds: 2,
        },
      }],
    }));
    const p = await waitPod(
      "live",
      (p) => (p.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
      "restarted by its liveness probe",
      150_000,
    );
    expect(p.status.containerStatuses[0].lastState.terminated).toBeDefined();
    const events = await kubectl([
      "get",
      "events",
      "--field-selector",
      "involvedObject.name=live",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(events.stdout).toMatch(/Unhealthy/);
    expect(events.stdout).toMatch(/Killing/);
  });

  it("kubectl logs --previous shows the restarted container's earlier run", async () => {
    await waitPod(
      "live",
      (p) => p.status.containerStatuses?.[0]?.state?.running !== undefined,
      "running again",
      60_000,
    );
    const prev = await kubectl(["logs", "live", "--previous"]);
    const now = await kubectl(["logs", "live"]);
    expect(prev.stdout).toMatch(/^run \d/);
    expect(now.stdout).toMatch(/^run \d/);
    expect(prev.stdout).not.toBe(now.stdout);
    await kubectl(["delete", "pod", "live", "--wait=false"]);
  });

  it("emptyDir, configMap and secret volumes", async () => {
    await apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "cfg" },
      data: { greeting: "hello from a configMap" },
    });
    await apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "sec" },
      stringData: { password: "s3cret" },
    });
    await apply(simplePod("vols", {
      restartPolicy: "Never",
      volumes: [
        { name: "scratch", emptyDir: {} },
        { name: "mem", emptyDir: { medium: "Memory" } },
        { name: "cfg", configMap: { name: "cfg" } },
        { name: "sec", secret: { secretName: "sec", defaultMode: 0o400 } },
      ],
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "cat /cfg/greeting; echo; cat /sec/password; echo; stat -Lc %a /sec/password; " +
          "echo scratch > /scratch/f && cat /scratch/f; grep -c ' /mem tmpfs' /proc/mounts; " +
          "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo token",
        ],
        volumeMounts: [
          { name: "scratch", mountPath: "/scratch" },
          { name: "mem", mountPath: "/mem" },
          { name: "cfg", mountPath: "/cfg" },
          { name: "sec", mountPath: "/sec" },
        ],
      }],
    }));
    const p = await waitPod(
      "vols",
      (p) => ["Succeeded", "Failed"].includes(p.status.phase),
      "done",
    );
    const logs = (await kubectl(["logs", "vols"])).stdout;
    expect(p.status.phase).toBe("Succeeded");
    expect(logs).toBe("hello from a configMap\ns3cret\n400\nscratch\n1\ntoken\n");
  });

  it("hostPath and projected volumes (configMap, secret, downward API, token)", async () => {
    const host = `${dir}/hostpath`;
    await Deno.mkdir(host, { recursive: true });
    await Deno.writeTextFile(`${host}/from-host`, "written on the node\n");
    await apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "proj-cfg" },
      data: { a: "from the configMap" },
    });
    await apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "proj-sec" },
      stringData: { b: "from the secret" },
    });
    await apply(simplePod("projected", {
      restartPolicy: "Never",
      volumes: [
        { name: "host", hostPath: { path: host, type: "Directory" } },
        {
          name: "all",
          projected: {
            sources: [
              { configMap: { name: "proj-cfg" } },
              { secret: { name: "proj-sec" } },
              {
                downwardAPI: {
                  items: [{ path: "podname", fieldRef: { fieldPath: "metadata.name" } }],
                },
              },
              { serviceAccountToken: { path: "token", expirationSeconds: 3600 } },
            ],
          },
        },
      ],
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "cat /host/from-host; echo back > /host/from-pod; cat /all/a; echo; cat /all/b; echo; " +
          "cat /all/podname; echo; test -s /all/token && echo token",
        ],
        volumeMounts: [
          { name: "host", mountPath: "/host" },
          { name: "all", mountPath: "/all" },
        ],
      }],
    }));
    const p = await waitPod(
      "projected",
      (p) => ["Succeeded", "Failed"].includes(p.status.phase),
      "done",
    );
    expect((await kubectl(["logs", "projected"])).stdout).toBe(
      "written on the node\nfrom the configMap\nfrom the secret\nprojected\ntoken\n",
    );
    expect(p.status.phase).toBe("Succeeded");
    expect(await Deno.readTextFile(`${host}/from-pod`)).toBe("back\n");
    await kubectl(["delete", "pod", "projected", "--wait=true", "--timeout=60s"]);
  });

  it("kubectl delete pod stops it gracefully (SIGTERM, then gone)", async () => {
    const out = `${dir}/graceful`;
    await Deno.mkdir(out);
    await apply(simplePod("graceful", {
      terminationGracePeriodSeconds: 30,
      volumes: [{ name: "out", hostPath: { path: out } }],
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "trap 'echo TERM > /out/signal; exit 0' TERM; echo up > /out/signal; " +
          "while true; do sleep 1; done",
        ],
        volumeMounts: [{ name: "out", mountPath: "/out" }],
      }],
    }));
    await waitPod("graceful", (p) => p.status.phase === "Running", "Running");
    await waitFor(
      "the container started",
      async () =>
        (await Deno.readTextFile(`${out}/signal`).catch(() => "")) === "up\n" ? true : undefined,
      30_000,
    );
    const t0 = Date.now();
    await kubectl(["delete", "pod", "graceful", "--wait=true", "--timeout=60s"]);
    const took = Date.now() - t0;
    expect(await Deno.readTextFile(`${out}/signal`)).toBe("TERM\n");
    // Well under the 30 s grace period: the trap ran, nobody waited for SIGKILL.
    expect(took).toBeLessThan(20_000);
  });

  it("kubectl port-forward reaches a server in the pod", async () => {
    await apply(simplePod("pf", {
      containers: [{
        name: "web",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "mkdir /www; echo hello through port-forward > /www/index.html; exec httpd -f -p 8080 -h /www",
        ],
        ports: [{ containerPort: 8080 }],
      }],
    }));
    await waitPod("pf", (p) => p.status.phase === "Running", "Running");
    const child = new Deno.Command(bins.kubectl, {
      args: [
        "--kubeconfig",
        adminKubeconfig,
        "port-forward",
        "--address",
        "127.0.0.1",
        "pod/pf",
        ":8080",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      const port = await waitFor(
        "kubectl port-forward to listen",
        async () => {
          const { value, done } = await reader.read();
          if (done) throw new Error(`port-forward exited: ${seen}`);
          seen += value;
          return seen.match(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/)?.[1];
        },
        30_000,
        0,
      );
      // A few tries: the server may still be binding.
      const body = await waitFor(
        "an answer through the forward",
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/`, {
            signal: AbortSignal.timeout(5000),
          });
          return res.ok ? await res.text() : undefined;
        },
        20_000,
        500,
      );
      expect(body).toBe("hello through port-forward\n");
      reader.releaseLock();
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
    }
    await kubectl(["delete", "pod", "pf", "--wait=false"]);
  });

  it("resources and security context: memory limit in the pod's cgroup, runAsUser, OOMKilled", async () => {
    await apply(simplePod("limits", {
      containers: [{
        name: "app",
        image: busybox(),
        command: ["sh", "-c", "exec sleep 3600"],
        resources: {
          limits: { memory: "64Mi", cpu: "250m" },
          requests: { memory: "64Mi", cpu: "250m" },
        },
        securityContext: { runAsUser: 1234, runAsGroup: 2345, allowPrivilegeEscalation: false },
      }],
    }));
    const p = await waitPod("limits", (p) => p.status.phase === "Running", "Running");
    expect(p.status.qosClass).toBe("Guaranteed");
    const ids = await kubectl(["exec", "limits", "--", "id"]);
    expect(ids.stdout).toMatch(/^uid=1234 gid=2345/);
    const v2 = (await kubectl(["exec", "limits", "--", "cat", "/sys/fs/cgroup/memory.max"], {
      allowFail: true,
    })).stdout.trim();
    const limit = v2 || (await kubectl([
      "exec",
      "limits",
      "--",
      "cat",
      "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ])).stdout.trim();
    expect(limit).toBe(String(64 << 20));

    await apply(simplePod("oom", {
      containers: [{
        name: "hog",
        image: busybox(),
        // dd, the container's only process, fills one 100 MiB buffer: far over the limit.
        command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
        resources: { limits: { memory: "32Mi" } },
      }],
    }));
    const o = await waitPod(
      "oom",
      (p) => {
        const s = p.status.containerStatuses?.[0];
        return s?.lastState?.terminated || s?.state?.terminated;
      },
      "OOM-killed",
      90_000,
    );
    const s = o.status.containerStatuses[0];
    const t = s.lastState.terminated ?? s.state.terminated;
    expect(t.reason).toBe("OOMKilled");
    expect(t.exitCode).toBe(137);
  });

  it("the kubelet's stats summary has the node, the pods and their containers", async () => {
    // The kubelet combines the runtime's ListPodSandboxStats / ListContainerStats with cAdvisor.
    // deno-lint-ignore no-explicit-any
    const summary: any = await waitFor(
      "stats for the limits pod",
      async () => {
        // Straight to the kubelet: the apiserver's node proxy refuses a loopback node address.
        const r = await kubectl([
          "--server",
          `https://127.0.0.1:${kubeletPort}`,
          "get",
          "--raw",
          "/stats/summary",
        ]);
        const j = JSON.parse(r.stdout);
        // deno-lint-ignore no-explicit-any
        const pod = j.pods?.find((p: any) => p.podRef.name === "limits");
        return pod?.containers?.[0]?.memory?.workingSetBytes > 0 ? j : undefined;
      },
      90_000,
      3000,
    );
    expect(summary.node.nodeName).toBe(NODE);
    expect(summary.node.memory.workingSetBytes).toBeGreaterThan(0);
    // deno-lint-ignore no-explicit-any
    const pod = summary.pods.find((p: any) => p.podRef.name === "limits");
    expect(pod.containers[0].name).toBe("app");
    expect(pod.containers[0].cpu.usageCoreNanoSeconds).toBeGreaterThan(0);
    expect(pod.containers[0].rootfs).toBeDefined();
    const node = await getJson(["node", NODE]);
    // deno-lint-ignore no-explicit-any
    const names = node.status.images.flatMap((i: any) => i.names);
    expect(names).toContain(busybox());
    // A figure for the README: the daemon's memory with this many pods under a kubelet.
    const rss = (await Deno.readTextFile(`/proc/${d.process!.pid}/status`)).match(/VmRSS:\s+(\d+)/)
      ?.[1];
    console.log(
      `  k8scontainerd RSS ${Math.round(Number(rss) / 1024)} MB with ${summary.pods.length} pods`,
    );
  });

  /** The web Deployment's containers: pod name → container id and restart count. */
  async function webContainers(): Promise<Record<string, string>> {
    const pods = await getJson(["pods", "-l", "app=web"]);
    return Object.fromEntries(
      // deno-lint-ignore no-explicit-any
      pods.items.map((p: any) => [
        p.metadata.name,
        `${p.status.containerStatuses[0].containerID} restarts=${
          p.status.containerStatuses[0].restartCount
        } running=${p.status.containerStatuses[0].state.running !== undefined}`,
      ]),
    );
  }

  it("restarting k8scontainerd under the kubelet leaves the pods running, untouched", async () => {
    const before = await webContainers();
    expect(Object.values(before).every((c) => c.endsWith("running=true"))).toBe(true);
    expect(await d.stop()).toBe(0);
    d = await startTestDaemon({ args: ["--config", configToml], dir: `${dir}/k8sc` });
    // A few PLEG relists (1 s each) and a node status update (10 s) against the new daemon.
    await sleep(12_000);
    expect(await webContainers()).toEqual(before);
    const name = Object.keys(before)[0];
    expect((await kubectl(["exec", name, "--", "echo", "still here"])).stdout).toBe("still here\n");
    const ready = await kubectl([
      "get",
      "node",
      NODE,
      "-o",
      `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
    ]);
    expect(ready.stdout).toBe("True");
  });

  it("k8scontainerd killed -9 under the kubelet: pods untouched, exec and logs work after", async () => {
    const before = await webContainers();
    await d.kill();
    d = await startTestDaemon({ args: ["--config", configToml], dir: `${dir}/k8sc` });
    await sleep(12_000);
    expect(await webContainers()).toEqual(before);
    const name = Object.keys(before)[0];
    expect((await kubectl(["exec", name, "--", "echo", "after kill"])).stdout).toBe("after kill\n");
    expect((await kubectl(["logs", name])).stdout).toBe(`started on ${name}\n`);
  });

  it("restarting the kubelet: it adopts the running pods without restarting them", async () => {
    const before = await webContainers();
    await cluster.restartKubelet();
    await waitFor(
      "the kubelet's healthz",
      async () => {
        const r = await kubectl([
          "--server",
          `https://127.0.0.1:${kubeletPort}`,
          "get",
          "--raw",
          "/healthz",
        ], {
          allowFail: true,
        });
        return r.stdout === "ok" ? true : undefined;
      },
      60_000,
      1000,
    );
    await sleep(12_000);
    expect(await webContainers()).toEqual(before);
    const name = Object.keys(before)[0];
    expect((await kubectl(["logs", name])).stdout).toBe(`started on ${name}\n`);
  });

  it("kubectl cp copies a file into a container and back", async () => {
    const name = Object.keys(await webContainers())[0];
    const src = `${dir}/cp-in.txt`, back = `${dir}/cp-back.txt`;
    const text = "copied by kubectl cp\n".repeat(100);
    await Deno.writeTextFile(src, text);
    await kubectl(["cp", src, `${name}:/tmp/cp.txt`]);
    expect((await kubectl(["exec", name, "--", "md5sum", "/tmp/cp.txt"])).stdout.split(" ")[0])
      .toBe((await sh(`md5sum ${src}`)).split(" ")[0]);
    await kubectl(["cp", `${name}:/tmp/cp.txt`, back]);
    expect(await Deno.readTextFile(back)).toBe(text);
  });

  it("probes over HTTP and TCP, postStart and preStop hooks", async () => {
    const out = `${dir}/hooks`;
    await Deno.mkdir(out);
    await apply(simplePod("probed", {
      volumes: [{ name: "out", hostPath: { path: out } }],
      containers: [{
        name: "web",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "mkdir -p /www; echo ready > /www/index.html; exec httpd -f -p 8080 -h /www",
        ],
        volumeMounts: [{ name: "out", mountPath: "/out" }],
        // The kubelet itself connects to the pod IP (on the test's bridge).
        readinessProbe: { httpGet: { path: "/", port: 8080 }, periodSeconds: 2 },
        livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2 },
        startupProbe: { exec: { command: ["test", "-e", "/www/index.html"] }, periodSeconds: 1 },
        lifecycle: {
          postStart: { exec: { command: ["sh", "-c", "echo poststart > /out/poststart"] } },
          preStop: { exec: { command: ["sh", "-c", "echo prestop > /out/prestop"] } },
        },
      }],
    }));
    await waitPod("probed", (p) => p.status.containerStatuses?.[0]?.ready === true, "Ready");
    expect(await Deno.readTextFile(`${out}/poststart`)).toBe("poststart\n");
    await sleep(6_000);
    const p = await getJson(["pod", "probed"]);
    expect(p.status.containerStatuses[0].restartCount).toBe(0);
    expect(p.status.containerStatuses[0].ready).toBe(true);
    await kubectl(["delete", "pod", "probed", "--wait=true", "--timeout=60s"]);
    expect(await Deno.readTextFile(`${out}/prestop`)).toBe("prestop\n");
  });

  it("a finished container: exit code, termination message, downward API env", async () => {
    await apply(simplePod("done", {
      restartPolicy: "Never",
      containers: [{
        name: "app",
        image: busybox(),
        command: [
          "sh",
          "-c",
          "echo $POD_NAME $POD_IP $MEM_LIMIT; echo all done > /dev/termination-log; exit 7",
        ],
        env: [
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          {
            name: "MEM_LIMIT",
            valueFrom: { resourceFieldRef: { resource: "limits.memory", divisor: "1Mi" } },
          },
        ],
        resources: { limits: { memory: "48Mi" } },
      }],
    }));
    const p = await waitPod("done", (p) => p.status.phase === "Failed", "Failed");
    const t = p.status.containerStatuses[0].state.terminated;
    expect(t.exitCode).toBe(7);
    expect(t.reason).toBe("Error");
    expect(t.message).toBe("all done\n");
    const logs = (await kubectl(["logs", "done"])).stdout;
    expect(logs).toBe(`done ${p.status.podIP} 48\n`);
  });

  it("an image that does not exist: ErrImagePull / ImagePullBackOff with the registry's reason", async () => {
    await apply(simplePod("missing", {
      containers: [{ name: "app", image: `${reg}/does-not-exist:v0`, command: ["true"] }],
    }));
    const p = await waitPod(
      "missing",
      (p) => {
        const w = p.status.containerStatuses?.[0]?.state?.waiting;
        return w && ["ErrImagePull", "ImagePullBackOff"].includes(w.reason);
      },
      "failing to pull",
      90_000,
    );
    const w = p.status.containerStatuses[0].state.waiting;
    console.log(`  ${w.reason}: ${w.message}`);
    expect(w.message).toContain("does-not-exist");
    expect(w.message).toMatch(/not found|unknown/i);
    await kubectl(["delete", "pod", "missing", "--wait=true", "--timeout=60s"]);
  });

  it("a command that does not exist: the kubelet shows the runtime's reason", async () => {
    await apply(simplePod("nocmd", {
      restartPolicy: "Never",
      containers: [{ name: "app", image: busybox(), command: ["/no/such/binary"] }],
    }));
    // runc finds the missing executable at create (CreateContainerError) or at start
    // (RunContainerError / StartError): either way the message names it.
    const p = await waitPod(
      "nocmd",
      (p) => {
        const s = p.status.containerStatuses?.[0]?.state;
        return ["CreateContainerError", "RunContainerError"].includes(s?.waiting?.reason) ||
          s?.terminated?.reason === "StartError";
      },
      "a create or start error",
    );
    const s = p.status.containerStatuses[0].state;
    const message = s.waiting?.message ?? s.terminated?.message ?? "";
    expect(message).toContain("/no/such/binary");
    expect(message).toMatch(/no such file or directory|not found/);
    await kubectl(["delete", "pod", "nocmd", "--wait=true", "--timeout=60s"]);
  });

  it("a pod whose CNI ADD fails: a FailedCreatePodSandBox event with the plugin's message", async () => {
    await apply(simplePod("cni-fail", {
      containers: [{ name: "app", image: busybox(), command: ["sleep", "3600"] }],
    }));
    const ev = await waitFor(
      "a FailedCreatePodSandBox event",
      async () => {
        const evs = await getJson([
          "events",
          "--field-selector",
          "involvedObject.name=cni-fail,reason=FailedCreatePodSandBox",
        ]);
        return evs.items[0];
      },
      120_000,
      2000,
    );
    expect(ev.message).toContain("ADD refused by the e2e plugin");
    const p = await getJson(["pod", "cni-fail"]);
    expect(p.status.phase).toBe("Pending");
    await kubectl(["delete", "pod", "cni-fail", "--wait=true", "--timeout=120s"]);
    // Every attempt's sandbox is torn down again: no netns of it left.
  });

  it("image garbage collection: under disk pressure the kubelet removes unused images", async () => {
    // An image only a finished pod used, then no pod at all.
    await apply(simplePod("gc-victim", {
      restartPolicy: "Never",
      containers: [{ name: "app", image: `${reg}/user-uid:latest` }],
    }));
    await waitPod("gc-victim", (p) => p.status.phase === "Succeeded", "Succeeded");
    await kubectl(["delete", "pod", "gc-victim", "--wait=true", "--timeout=60s"]);
    const images = async () =>
      (await runCli(["--address", d.socket, "-n", "k8s.io", "images", "ls", "-q"])).stdout;
    expect(await images()).toContain(`${reg}/user-uid:latest`);
    // The threshold above what this disk has free: the eviction manager reclaims node-level
    // resources first, which deletes every image no container uses (the pause image is pinned).
    const cfgPath = `${dir}/kubelet.yaml`;
    const original = await Deno.readTextFile(cfgPath);
    const cfg = JSON.parse(original);
    cfg.evictionHard = {
      ...cfg.evictionHard,
      "imagefs.available": "99%",
      "nodefs.available": "99%",
    };
    await Deno.writeTextFile(cfgPath, JSON.stringify(cfg));
    try {
      await cluster.restartKubelet();
      await waitFor(
        "the unused image to be collected",
        async () => (await images()).includes(`${reg}/user-uid:latest`) ? undefined : true,
        180_000,
        2000,
      );
      const pressure = await kubectl([
        "get",
        "node",
        NODE,
        "-o",
        `jsonpath={.status.conditions[?(@.type=="DiskPressure")].status}`,
      ]);
      expect(pressure.stdout).toBe("True");
      expect(await images()).toContain(`${reg}/pause:latest`);
    } finally {
      await Deno.writeTextFile(cfgPath, original);
      await cluster.restartKubelet();
    }
  });

  it("once the pods are deleted nothing is left: no sandboxes, netns, mounts, conmon, IPs, cgroups", async () => {
    await kubectl(["delete", "deployment,pod", "--all", "--wait=true", "--timeout=120s"]);
    const rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
    try {
      // The kubelet stops sandboxes when a pod goes and removes them in its next GC (once a
      // minute).
      await waitFor(
        "the kubelet to remove every sandbox",
        async () => {
          const r = await call(d.socket, "k8s.io", rt.listPodSandbox.bind(rt), {
            filter: undefined,
          });
          return r.items.length === 0 ? true : undefined;
        },
        150_000,
        2000,
      );
      const cs = await call(d.socket, "k8s.io", rt.listContainers.bind(rt), { filter: undefined });
      expect(cs.containers).toEqual([]);
    } finally {
      rt.close();
    }
    const left = await sh(`
      ps -eo args | grep '[c]onmon.*${d.dir}' || true
      grep -o ' ${d.dir}/[^ ]*' /proc/self/mountinfo || true
      grep -rhoE '/run/netns/k8sc-[0-9a-f]+' ${d.dir}/state/cni 2>/dev/null | sort -u |
        while read -r ns; do [ -e "$ns" ] && echo "$ns"; done
      # IP leases of the pod network (host-local keeps one file per address in use).
      ls ${dir}/ipam/kube-e2e 2>/dev/null | grep -E '^[0-9.]+$' || true`);
    expect(left).toBe("");
    // The pods' cgroups: the kubelet removes a pod's cgroup once its containers are gone
    // (its pod cleanup runs every few seconds); ours are inside and must not keep it busy.
    const podCgroups = () =>
      sh(`find /sys/fs/cgroup/*${cluster.cgroupRoot} -mindepth 2 -type d -name '*pod*' \
        2>/dev/null | head -5; true`);
    await waitFor(
      "pod cgroups removed",
      async () => (await podCgroups()) === "" || undefined,
      90_000,
      2000,
    )
      .catch(async (e) => {
        throw new Error(`${e}\nleft: ${await podCgroups()}`);
      });
  });
});
