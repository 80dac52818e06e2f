/**
 * The kubelet's flows against the CRI socket, through the project's own CRI client (grpc-js +
 * generated runtime.v1 types): pull, run a pod on a real CNI bridge, create/start containers
 * sharing the pod's network, IPC and /dev/shm, exec, logs in the CRI format, stop/remove
 * (idempotent), and the errors the kubelet expects for duplicates and unknown ids.
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
import {
  type ContainerConfig,
  ContainerState,
  type PodSandboxConfig,
  PodSandboxState,
} from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/grpc/clients.ts";
import { frozenAtFailpoint, runCli, startTestDaemon, type TestDaemon } from "./harness.ts";
import { openPortForward, remoteCommand } from "../src/streaming/client.ts";
import { containerConfig as container, podConfig as pod } from "./cri_requests.ts";
import { cleanUpAfterDaemon, pullCriImage, writeCniConf, writeCriConfig } from "./cri_env.ts";
import { ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";

const subnetByte = 100 + Math.floor(Math.random() * 100);
const bridge = `k8sce2e${subnetByte}`;

function podConfig(name: string, logDir: string): PodSandboxConfig {
  return pod(name, {
    hostname: `${name}-host`,
    logDirectory: logDir,
    dnsConfig: {
      servers: ["10.96.0.10"],
      searches: ["e2e.svc.cluster.local"],
      options: ["ndots:5"],
    },
    labels: { app: name },
    annotations: { "e2e/annotation": "yes" },
  });
}

function containerConfig(name: string, image: string, command: string[]): ContainerConfig {
  return container(name, image, command, {
    envs: [{ key: "E2E", value: Buffer.from("1") }],
    labels: { c: name },
  });
}

describe.skipIf(!isRoot, ROOT_REASON)("cri", () => {
  let registry: Registry;
  let d: TestDaemon;
  let dir: string;
  let rt: RuntimeServiceClient;
  let img: ImageServiceClient;
  let busybox: string;
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    call<Req, Res>(d.socket, "k8s.io", fn, req, 60_000);

  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox", "pause"]);
    busybox = `${registry.address}/busybox:latest`;
    dir = await Deno.makeTempDir({ prefix: "k8sc-cri-e2e-" });
    await writeCniConf(dir, {
      name: "e2e",
      bridge,
      subnet: `10.223.${subnetByte}.0/24`,
      after: [{ type: "portmap", capabilities: { portMappings: true } }],
    });
    const configToml = await writeCriConfig(dir, {
      sandboxImage: `${registry.address}/pause:latest`,
    });
    d = await startTestDaemon({ args: ["--config", configToml] });
    rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
    img = new ImageServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    rt?.close();
    img?.close();
    await cleanUpAfterDaemon(d, bridge);
    await registry?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  it("runs a pod with a container: network, DNS, hostname, exec, logs, stop and remove", async () => {
    await r(img.pullImage.bind(img), {
      image: {
        image: busybox,
        annotations: {},
        userSpecifiedImage: "",
        runtimeHandler: "",
        imageRef: "",
      },
      auth: undefined,
      sandboxConfig: undefined,
    });
    const logDir = `${dir}/logs/web`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("web", logDir);
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    expect(podSandboxId).toMatch(/^[0-9a-f]{64}$/);

    const st = await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false });
    expect(st.status!.state).toBe(PodSandboxState.SANDBOX_READY);
    const ip = st.status!.network!.ip;
    expect(ip).toMatch(new RegExp(`^10\\.223\\.${subnetByte}\\.\\d+$`));
    expect(st.status!.labels).toEqual({ app: "web" });
    // The pod's IP answers from the host, through the bridge the test created.
    const ping = await new Deno.Command("busybox", {
      args: ["ping", "-c1", "-W2", ip],
      stdout: "null",
    }).output();
    expect(ping.success).toBe(true);

    const cc = containerConfig("app", busybox, [
      "sh",
      "-c",
      "echo hello from app; echo shared > /dev/shm/token; sleep 1000",
    ]);
    const { containerId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: cc,
      sandboxConfig: config,
    });
    expect((await r(rt.containerStatus.bind(rt), { containerId, verbose: false })).status!.state)
      .toBe(ContainerState.CONTAINER_CREATED);
    await r(rt.startContainer.bind(rt), { containerId });
    const cs = await r(rt.containerStatus.bind(rt), { containerId, verbose: false });
    expect(cs.status!.state).toBe(ContainerState.CONTAINER_RUNNING);
    expect(cs.status!.logPath).toBe(`${logDir}/app.log`);

    const exec = (containerId: string, cmd: string[]) =>
      r(rt.execSync.bind(rt), { containerId, cmd, timeout: 10n });
    expect(new TextDecoder().decode((await exec(containerId, ["hostname"])).stdout).trim()).toBe(
      "web-host",
    );
    const resolv = new TextDecoder().decode(
      (await exec(containerId, ["cat", "/etc/resolv.conf"])).stdout,
    );
    expect(resolv).toContain("nameserver 10.96.0.10");
    expect(resolv).toContain("search e2e.svc.cluster.local");
    expect((await exec(containerId, ["sh", "-c", "exit 3"])).exitCode).toBe(3);
    const addr = new TextDecoder().decode(
      (await exec(containerId, ["ip", "-o", "-4", "addr", "show", "eth0"])).stdout,
    );
    expect(addr).toContain(ip);

    // Exec through the streaming server (SPDY, as crictl and the kubelet use it).
    const { url } = await r(rt.exec.bind(rt), {
      containerId,
      cmd: ["sh", "-c", "cat; echo err >&2; exit 3"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\//);
    const rc = await remoteCommand(url, {
      stdin: new TextEncoder().encode("piped in\n"),
      stdout: true,
      stderr: true,
    });
    expect(new TextDecoder().decode(rc.stdout)).toBe("piped in\n");
    expect(new TextDecoder().decode(rc.stderr)).toBe("err\n");
    expect(rc.exitCode).toBe(3);

    // Attach to a container that reads its stdin (stdin_once), as kubectl attach -i does.
    const shell = { ...containerConfig("shell", busybox, ["sh"]), stdin: true, stdinOnce: true };
    const { containerId: shellId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: shell,
      sandboxConfig: config,
    });
    await r(rt.startContainer.bind(rt), { containerId: shellId });
    const attach = await r(rt.attach.bind(rt), {
      containerId: shellId,
      stdin: true,
      tty: false,
      stdout: true,
      stderr: true,
    });
    const att = await remoteCommand(attach.url, {
      stdin: new TextEncoder().encode("echo attached; echo e >&2\n"),
      stdout: true,
      stderr: true,
    });
    expect(new TextDecoder().decode(att.stdout)).toBe("attached\n");
    expect(new TextDecoder().decode(att.stderr)).toBe("e\n");
    await r(rt.removeContainer.bind(rt), { containerId: shellId });

    // The same over WebSocket (v5.channel.k8s.io, as newer kubectl speaks): channel-prefixed
    // binary frames, stdin closed with the v5 close frame, the exit status on channel 3.
    const wsUrl = (await r(rt.exec.bind(rt), {
      containerId,
      cmd: ["sh", "-c", "cat; echo err >&2; exit 4"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    })).url
      .replace(/^http:/, "ws:");
    const ws = new WebSocket(wsUrl, ["v5.channel.k8s.io"]);
    ws.binaryType = "arraybuffer";
    const got: Record<number, string> = { 1: "", 2: "", 3: "" };
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        ws.send(new Uint8Array([0, ...new TextEncoder().encode("over websocket\n")]));
        ws.send(new Uint8Array([255, 0])); // close stdin
      };
      ws.onmessage = (ev) => {
        const b = new Uint8Array(ev.data as ArrayBuffer);
        if (b.length && b[0] in got) got[b[0]] += new TextDecoder().decode(b.subarray(1));
      };
      ws.onclose = () => resolve();
      ws.onerror = () => reject(new Error("websocket error"));
    });
    expect(ws.protocol).toBe("v5.channel.k8s.io");
    expect(got[1]).toBe("over websocket\n");
    expect(got[2]).toBe("err\n");
    expect(JSON.parse(got[3])).toMatchObject({
      status: "Failure",
      reason: "NonZeroExitCode",
      details: { causes: [{ reason: "ExitCode", message: "4" }] },
    });

    // A second container shares the pod's network and /dev/shm.
    const side = containerConfig("side", busybox, ["sleep", "1000"]);
    const { containerId: sideId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: side,
      sandboxConfig: config,
    });
    await r(rt.startContainer.bind(rt), { containerId: sideId });
    expect(new TextDecoder().decode((await exec(sideId, ["cat", "/dev/shm/token"])).stdout).trim())
      .toBe("shared");
    expect(
      new TextDecoder().decode(
        (await exec(sideId, ["ip", "-o", "-4", "addr", "show", "eth0"])).stdout,
      ),
    ).toContain(ip);

    // Port-forward reaches a server on the pod's loopback.
    await exec(sideId, [
      "sh",
      "-c",
      "mkdir -p /www && echo served-from-pod > /www/index.html && httpd -p 127.0.0.1:8080 -h /www",
    ]);
    const pf = await openPortForward(
      (await r(rt.portForward.bind(rt), { podSandboxId, port: [8080] })).url,
    );
    try {
      const s = await pf.forward(8080);
      const w = s.writable.getWriter();
      await w.write(new TextEncoder().encode("GET /index.html HTTP/1.0\r\n\r\n"));
      const body = new TextDecoder().decode(
        new Uint8Array(await new Response(s.readable).arrayBuffer()),
      );
      expect(body).toContain("served-from-pod");
    } finally {
      pf.close();
    }

    const log = await Deno.readTextFile(`${logDir}/app.log`);
    expect(log).toMatch(/^\S+ stdout F hello from app\n/);

    // Stats the kubelet reads for eviction and metrics.
    const stats = (await r(rt.containerStats.bind(rt), { containerId })).stats!;
    expect(stats.cpu!.usageCoreNanoSeconds!.value).toBeGreaterThan(0n);
    expect(stats.memory!.workingSetBytes!.value).toBeGreaterThan(0n);
    expect(stats.writableLayer!.fsId!.mountpoint).not.toBe("");
    const podStats = (await r(rt.podSandboxStats.bind(rt), { podSandboxId })).stats!;
    expect(podStats.linux!.containers.map((c) => c.attributes!.id).sort()).toEqual(
      [containerId, sideId].sort(),
    );
    const listedStats = await r(rt.listContainerStats.bind(rt), {
      filter: { id: "", podSandboxId, labelSelector: { c: "side" } },
    });
    expect(listedStats.stats.map((s) => s.attributes!.id)).toEqual([sideId]);

    // Resource updates reach the cgroup; log rotation makes conmon write a new file.
    await r(rt.updateContainerResources.bind(rt), {
      containerId: sideId,
      linux: {
        cpuPeriod: 0n,
        cpuQuota: 0n,
        cpuShares: 0n,
        memoryLimitInBytes: 64n << 20n,
        oomScoreAdj: 0n,
        cpusetCpus: "",
        cpusetMems: "",
        hugepageLimits: [],
        unified: {},
        memorySwapLimitInBytes: 0n,
      },
      windows: undefined,
      annotations: {},
    });
    const limit = new TextDecoder().decode(
      (await exec(sideId, [
        "sh",
        "-c",
        // cgroup v2 (private cgroup namespace) or v1's memory controller.
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
      ])).stdout,
    ).trim();
    expect(limit).toBe(String(64 << 20));
    await Deno.rename(`${logDir}/app.log`, `${logDir}/app.log.1`);
    await r(rt.reopenContainerLog.bind(rt), { containerId });
    await exec(containerId, ["sh", "-c", "echo after rotation > /proc/1/fd/1"]);
    await new Promise((res) => setTimeout(res, 200));
    expect(await Deno.readTextFile(`${logDir}/app.log`)).toMatch(/stdout F after rotation\n/);

    const listed = await r(rt.listContainers.bind(rt), {
      filter: { id: "", state: undefined, podSandboxId, labelSelector: { c: "app" } },
    });
    expect(listed.containers.map((c) => c.id)).toEqual([containerId]);

    await r(rt.stopContainer.bind(rt), { containerId, timeout: 1n });
    const stopped = await r(rt.containerStatus.bind(rt), { containerId, verbose: false });
    expect(stopped.status!.state).toBe(ContainerState.CONTAINER_EXITED);
    expect(stopped.status!.exitCode).toBe(137);
    await r(rt.removeContainer.bind(rt), { containerId });
    await r(rt.removeContainer.bind(rt), { containerId }); // idempotent

    await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
    await r(rt.stopPodSandbox.bind(rt), { podSandboxId }); // idempotent
    const after = await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false });
    expect(after.status!.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId }); // idempotent
    expect((await r(rt.listPodSandbox.bind(rt), { filter: undefined })).items).toEqual([]);
    expect((await r(rt.listContainers.bind(rt), { filter: undefined })).containers).toEqual([]);
    // Nothing of the pod is left: its netns and IP lease are gone.
    const netns = new TextDecoder().decode(
      (await new Deno.Command("ip", { args: ["netns", "list"] }).output()).stdout,
    );
    expect(netns).not.toContain(podSandboxId.slice(0, 12));
    const leases = [...Deno.readDirSync(`${dir}/ipam/e2e`)].map((e) => e.name);
    expect(leases).not.toContain(ip);
  });

  it("streams container events (evented PLEG)", async () => {
    const stream = rt.getContainerEvents({});
    const seen: { id: string; type: number; podState?: number }[] = [];
    stream.on(
      "data",
      (e) =>
        seen.push({
          id: e.containerId,
          type: e.containerEventType,
          podState: e.podSandboxStatus?.state,
        }),
    );
    stream.on("error", () => {});
    await new Promise((res) => setTimeout(res, 200));
    const logDir = `${dir}/logs/ev`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("ev", logDir);
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const { containerId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: containerConfig("once", busybox, ["true"]),
      sandboxConfig: config,
    });
    await r(rt.startContainer.bind(rt), { containerId });
    const deadline = Date.now() + 5000;
    while (!seen.some((e) => e.id === containerId && e.type === 2) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
    }
    stream.cancel();
    const mine = seen.filter((e) => e.id === containerId).map((e) => e.type);
    expect(mine).toEqual([0, 1, 2]); // CREATED, STARTED, STOPPED
    expect(seen.find((e) => e.id === podSandboxId && e.type === 1)?.podState).toBe(
      PodSandboxState.SANDBOX_READY,
    );
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });

  it("turns a pod NOTREADY when its pause process dies", async () => {
    const logDir = `${dir}/logs/pausekill`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("pausekill", logDir);
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const verbose = await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: true });
    expect(verbose.status!.state).toBe(PodSandboxState.SANDBOX_READY);
    const pid = JSON.parse(verbose.info.info).pid as number;
    expect(pid).toBeGreaterThan(1);
    // runc's init execs the pause binary right after the start it was released by: on a busy
    // machine the pid may still be "runc init" for a moment.
    let cmdline = "";
    for (let i = 0; i < 100 && !cmdline.includes("catatonit"); i++) {
      if (i) await new Promise((res) => setTimeout(res, 20));
      cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    }
    expect(cmdline).toContain("catatonit");
    Deno.kill(pid, "SIGKILL");
    const deadline = Date.now() + 10_000;
    let state = PodSandboxState.SANDBOX_READY;
    while (state === PodSandboxState.SANDBOX_READY && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      state = (await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false })).status!
        .state;
    }
    expect(state).toBe(PodSandboxState.SANDBOX_NOTREADY);
    const listed = await r(rt.listPodSandbox.bind(rt), {
      filter: {
        id: podSandboxId,
        state: { state: PodSandboxState.SANDBOX_NOTREADY },
        labelSelector: {},
      },
    });
    expect(listed.items.map((p) => p.id)).toEqual([podSandboxId]);
    await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });

  it("StopContainer right after StartContainer: a stop signal the init was not ready for is sent again", async () => {
    // The container's init is its PID namespace's init, which gets only signals it handles:
    // this one traps SIGTERM a second after it starts, so the StopContainer's first SIGTERM is
    // dropped by the kernel. Without a second one the stop would wait its 30 s and end in
    // SIGKILL (137); with it the trap runs and the container exits 0 in about a second.
    const logDir = `${dir}/logs/lateterm`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("lateterm", logDir);
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const cc = containerConfig("late", busybox, [
      "sh",
      "-c",
      "sleep 1; trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    const { containerId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: cc,
      sandboxConfig: config,
    });
    await r(rt.startContainer.bind(rt), { containerId });
    const started = Date.now();
    await r(rt.stopContainer.bind(rt), { containerId, timeout: 30n });
    const took = Date.now() - started;
    const st = (await r(rt.containerStatus.bind(rt), { containerId, verbose: false })).status!;
    expect({ state: st.state, exitCode: st.exitCode, fast: took < 10_000 })
      .toEqual({ state: ContainerState.CONTAINER_EXITED, exitCode: 0, fast: true });
    await r(rt.removeContainer.bind(rt), { containerId });
    await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });

  it("reports a container killed over its memory limit as OOMKilled (status, list, events)", async () => {
    const stream = rt.getContainerEvents({});
    const stopped: { id: string; reason?: string; state?: number; exitCode?: number }[] = [];
    stream.on("data", (e) => {
      if (e.containerEventType !== 2) return; // STOPPED
      const s = e.containersStatuses[0];
      stopped.push({
        id: e.containerId,
        reason: s?.reason,
        state: s?.state,
        exitCode: s?.exitCode,
      });
    });
    stream.on("error", () => {});
    await new Promise((res) => setTimeout(res, 200));
    const logDir = `${dir}/logs/oom`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("oom", logDir);
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const limit = 24n << 20n;
    // The shell doubles a string until the cgroup's memory (and memory+swap) limit is hit.
    const cc: ContainerConfig = {
      ...containerConfig("hog", busybox, ["sh", "-c", "x=a; while true; do x=$x$x; done"]),
      linux: {
        resources: {
          cpuPeriod: 0n,
          cpuQuota: 0n,
          cpuShares: 0n,
          memoryLimitInBytes: limit,
          oomScoreAdj: 0n,
          cpusetCpus: "",
          cpusetMems: "",
          hugepageLimits: [],
          unified: {},
          memorySwapLimitInBytes: 0n,
        },
        securityContext: undefined,
      },
    };
    const { containerId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: cc,
      sandboxConfig: config,
    });
    const started = Date.now();
    await r(rt.startContainer.bind(rt), { containerId });
    const deadline = Date.now() + 30_000;
    let status = (await r(rt.containerStatus.bind(rt), { containerId, verbose: false })).status!;
    while (status.state !== ContainerState.CONTAINER_EXITED && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      status = (await r(rt.containerStatus.bind(rt), { containerId, verbose: false })).status!;
    }
    expect(status.state).toBe(ContainerState.CONTAINER_EXITED);
    expect(status.reason).toBe("OOMKilled");
    expect(status.exitCode).toBe(137);
    const finishedMs = Number(status.finishedAt / 1_000_000n);
    expect(finishedMs).toBeGreaterThanOrEqual(started - 1000);
    expect(finishedMs).toBeLessThanOrEqual(Date.now() + 1000);
    expect(status.finishedAt).toBeGreaterThanOrEqual(status.startedAt);

    const listed = await r(rt.listContainers.bind(rt), {
      filter: { id: containerId, state: undefined, podSandboxId: "", labelSelector: {} },
    });
    expect(listed.containers.map((c) => [c.id, c.state])).toEqual([[
      containerId,
      ContainerState.CONTAINER_EXITED,
    ]]);
    const exitedOnly = await r(rt.listContainers.bind(rt), {
      filter: {
        id: "",
        state: { state: ContainerState.CONTAINER_EXITED },
        podSandboxId,
        labelSelector: {},
      },
    });
    expect(exitedOnly.containers.map((c) => c.id)).toEqual([containerId]);

    const evDeadline = Date.now() + 5000;
    while (!stopped.some((e) => e.id === containerId) && Date.now() < evDeadline) {
      await new Promise((res) => setTimeout(res, 50));
    }
    stream.cancel();
    expect(stopped.filter((e) => e.id === containerId)).toEqual([{
      id: containerId,
      reason: "OOMKilled",
      state: ContainerState.CONTAINER_EXITED,
      exitCode: 137,
    }]);

    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });

  it("a RunPodSandbox that fails leaves nothing behind, whichever half fails (CNI or pause)", async () => {
    // The CNI ADD and the pause container's creation overlap: each failure must also undo the
    // other half, whether it is still running or done.
    const netnsList = async () =>
      new TextDecoder().decode(
        (await new Deno.Command("ip", { args: ["netns", "list"] }).output()).stdout,
      ).split("\n").filter((l) => l.startsWith("k8sc-")).sort();
    const leases = () =>
      [...Deno.readDirSync(`${dir}/ipam/e2e`)].map((e) => e.name).filter((n) => /^\d/.test(n));
    const shmMounts = async () =>
      (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .filter((l) => l.includes(d.dir) && l.includes("/shm ")).length;
    // The pause containers, as the management API sees them (the CRI lists only whole pods).
    const containers = async () =>
      (await runCli(["--address", d.socket, "-n", "k8s.io", "containers", "ls", "-q"])).stdout
        .trim().split("\n").filter(Boolean).sort();
    const before = {
      netns: await netnsList(),
      leases: leases(),
      shm: await shmMounts(),
      containers: await containers(),
    };
    const expectNothingLeft = async () => {
      expect((await r(rt.listPodSandbox.bind(rt), { filter: undefined })).items).toEqual([]);
      expect(await containers()).toEqual(before.containers);
      expect(await netnsList()).toEqual(before.netns);
      expect(leases()).toEqual(before.leases);
      expect(await shmMounts()).toBe(before.shm);
    };
    const logDir = `${dir}/logs/undo`;
    await Deno.mkdir(logDir, { recursive: true });

    // The pause container fails (runc cannot write an unknown sysctl) while CNI ADD succeeds.
    const bad = pod("undo", {
      logDirectory: logDir,
      linux: { sysctls: { "net.ipv4.k8sc_no_such_sysctl": "1" } },
    });
    const e1 = await r(rt.runPodSandbox.bind(rt), { config: bad, runtimeHandler: "" })
      .catch((e) => e);
    expect(e1.code).not.toBe(grpc.status.OK);
    expect(String(e1.message)).toMatch(/k8sc_no_such_sysctl/);
    await expectNothingLeft();

    // CNI ADD fails (a bridge name Linux refuses) while the pause container starts fine.
    const broken = `${dir}/net.d/05-broken.conflist`;
    await Deno.writeTextFile(
      broken,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "broken",
        plugins: [{
          type: "bridge",
          bridge: "k8sc-bridge-name-too-long",
          ipam: { type: "host-local", ranges: [[{ subnet: "10.224.0.0/24" }]] },
        }],
      }),
    );
    try {
      const e2 = await r(rt.runPodSandbox.bind(rt), {
        config: podConfig("undo", logDir),
        runtimeHandler: "",
      }).catch((e) => e);
      expect(e2.code).not.toBe(grpc.status.OK);
      expect(String(e2.message)).toMatch(/bridge/);
    } finally {
      await Deno.remove(broken);
    }
    await expectNothingLeft();
    expect(new TextDecoder().decode(
      (await new Deno.Command("ip", { args: ["link", "show", "k8sc-bridge-name-too-long"] })
        .output()).stdout,
    )).toBe("");

    // The name was released both times: the same pod now runs.
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), {
      config: podConfig("undo", logDir),
      runtimeHandler: "",
    });
    const st = await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false });
    expect(st.status!.state).toBe(PodSandboxState.SANDBOX_READY);
    await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
    await expectNothingLeft();
  });

  it("lists a pod only once RunPodSandbox has returned it (READY), as containerd does", async () => {
    const logDir = `${dir}/logs/listed`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("listed", logDir);
    let done = false;
    const run = r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" }).finally(() =>
      done = true
    );
    const seenWhileRunning: string[] = [];
    let lists = 0;
    while (!done) {
      const { items } = await r(rt.listPodSandbox.bind(rt), { filter: undefined });
      lists++;
      // NOTREADY is what a half-built pod looked like (a list answered after the pod was
      // done, but read before its RunPodSandbox answer, shows it READY: that is fine).
      for (const p of items) {
        if (p.metadata?.name === "listed" && p.state !== PodSandboxState.SANDBOX_READY) {
          seenWhileRunning.push(`${p.id} ${p.state}`);
        }
      }
    }
    const { podSandboxId } = await run;
    expect(lists).toBeGreaterThan(0);
    expect(seenWhileRunning).toEqual([]);
    const { items } = await r(rt.listPodSandbox.bind(rt), { filter: undefined });
    expect(items.filter((p) => p.metadata?.name === "listed").map((p) => [p.id, p.state]))
      .toEqual([[podSandboxId, PodSandboxState.SANDBOX_READY]]);
    await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });

  it("answers duplicates and unknown ids the way the kubelet expects", async () => {
    const logDir = `${dir}/logs/dup`;
    await Deno.mkdir(logDir, { recursive: true });
    const config = podConfig("dup", logDir);
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    await expect(r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" })).rejects
      .toMatchObject({
        code: grpc.status.ALREADY_EXISTS,
      });
    await expect(r(rt.podSandboxStatus.bind(rt), { podSandboxId: "f".repeat(64), verbose: false }))
      .rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
    await expect(r(rt.containerStatus.bind(rt), { containerId: "e".repeat(64), verbose: false }))
      .rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
    await expect(
      r(rt.runPodSandbox.bind(rt), {
        config: { ...config, metadata: { name: "", uid: "", namespace: "", attempt: 0 } },
        runtimeHandler: "",
      }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("cri: daemon killed with -9", () => {
  it("keeps pods running; after the restart they are listed, exec and logs work, removal frees the IP", async () => {
    const registry = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "k8sc-cri-restart-" });
    const bridge2 = `k8scrs${subnetByte}`;
    let d: TestDaemon | undefined;
    try {
      await pushFixtures(registry.address, ["busybox", "pause"]);
      await writeCniConf(dir, { name: "rs", bridge: bridge2, subnet: `10.224.${subnetByte}.0/24` });
      const configToml = await writeCriConfig(dir, {
        sandboxImage: `${registry.address}/pause:latest`,
      });
      d = await startTestDaemon({ args: ["--config", configToml] });
      const connect = () =>
        new RuntimeServiceClient(`unix://${d!.socket}`, grpc.credentials.createInsecure());
      let rt = connect();
      const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
        call<Req, Res>(d!.socket, "k8s.io", fn, req, 60_000);
      const busybox = `${registry.address}/busybox:latest`;
      await pullCriImage(d.socket, busybox);
      await Deno.mkdir(`${dir}/logs`);
      const config = podConfig("survivor", `${dir}/logs`);
      const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
      const ip =
        (await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false })).status!.network!
          .ip;
      const { containerId } = await r(rt.createContainer.bind(rt), {
        podSandboxId,
        config: containerConfig("app", busybox, ["sh", "-c", "echo before; sleep 1000"]),
        sandboxConfig: config,
      });
      await r(rt.startContainer.bind(rt), { containerId });
      rt.close();
      await d.kill();

      d = await startTestDaemon({ dir: d.dir, args: ["--config", `${dir}/config.toml`] });
      rt = connect();
      // (Under systemd the daemon is shared with the suite above: only this test's pods count.)
      const pods = (await r(rt.listPodSandbox.bind(rt), { filter: undefined })).items.filter((
        p,
      ) => p.metadata!.name === "survivor");
      expect(pods.map((p) => [p.id, p.state])).toEqual([[
        podSandboxId,
        PodSandboxState.SANDBOX_READY,
      ]]);
      expect(
        (await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: false })).status!.network!
          .ip,
      ).toBe(ip);
      expect((await r(rt.containerStatus.bind(rt), { containerId, verbose: false })).status!.state)
        .toBe(ContainerState.CONTAINER_RUNNING);
      const out = await r(rt.execSync.bind(rt), {
        containerId,
        cmd: ["echo", "after restart"],
        timeout: 10n,
      });
      expect(new TextDecoder().decode(out.stdout)).toBe("after restart\n");
      expect(await Deno.readTextFile(`${dir}/logs/app.log`)).toContain("stdout F before");

      // The container dies while the daemon is down: the next daemon reports it exited (137),
      // in ContainerStatus and in ListContainers, not the running state the last one saw.
      rt.close();
      await d.kill();
      const { pid } = JSON.parse(
        await Deno.readTextFile(`${d.state}/runtime/k8s.io/${containerId}/meta.json`),
      );
      Deno.kill(pid, "SIGKILL");
      for (let i = 0; i < 100; i++) {
        try {
          await Deno.stat(`/proc/${pid}`);
          await new Promise((res) => setTimeout(res, 50));
        } catch {
          break;
        }
      }
      d = await startTestDaemon({ dir: d.dir, args: ["--config", `${dir}/config.toml`] });
      rt = connect();
      const exited = (await r(rt.containerStatus.bind(rt), { containerId, verbose: false }))
        .status!;
      expect([exited.state, exited.exitCode]).toEqual([ContainerState.CONTAINER_EXITED, 137]);
      const listed = (await r(rt.listContainers.bind(rt), { filter: undefined })).containers;
      expect(listed.map((c) => [c.id, c.state])).toEqual([[
        containerId,
        ContainerState.CONTAINER_EXITED,
      ]]);
      await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
      await r(rt.removePodSandbox.bind(rt), { podSandboxId });
      expect([...Deno.readDirSync(`${dir}/ipam/rs`)].map((e) => e.name)).not.toContain(ip);
      rt.close();
    } finally {
      await cleanUpAfterDaemon(d, bridge2);
      await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("cri: daemon killed during RunPodSandbox", () => {
  it("the next start releases the netns and the IP, and keeps the pod NOTREADY for Stop/Remove", async () => {
    const registry = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "k8sc-cri-halfpod-" });
    const bridge3 = `k8schp${subnetByte}`;
    const made: string[] = []; // netns names, for clean-up should an assertion fail
    let d: TestDaemon | undefined;
    try {
      await pushFixtures(registry.address, ["pause"]);
      // A chained plugin after the bridge: on ADD it says so, then blocks (the bridge has
      // assigned the pod's IP by then) until released or 60 s pass. DEL fails while the file
      // fail-del exists, and succeeds otherwise.
      await Deno.mkdir(`${dir}/bin`);
      await Deno.writeTextFile(
        `${dir}/bin/e2e-block`,
        `#!/bin/sh
case "$CNI_COMMAND" in
ADD)
  echo "$$" > ${dir}/blocked
  i=0
  while [ ! -e ${dir}/release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  echo '{"cniVersion":"1.0.0","code":11,"msg":"released by the test"}'
  exit 1 ;;
DEL)
  if [ -e ${dir}/fail-del ]; then
    echo '{"cniVersion":"1.0.0","code":11,"msg":"DEL refused by the test"}'
    exit 1
  fi ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`,
        { mode: 0o755 },
      );
      await writeCniConf(dir, {
        name: "hp",
        bridge: bridge3,
        subnet: `10.225.${subnetByte}.0/24`,
        after: [{ type: "e2e-block" }],
      });
      await writeCriConfig(dir, {
        sandboxImage: `${registry.address}/pause:latest`,
        extraCri: `cni_bin_dirs = ["${dir}/bin", "/usr/lib/cni", "/opt/cni/bin"]\n`,
      });
      await Deno.mkdir(`${dir}/logs`);
      d = await startTestDaemon({ args: ["--config", `${dir}/config.toml`] });
      const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
        call<Req, Res>(d!.socket, "k8s.io", fn, req, 60_000);
      const leases = () =>
        [...Deno.readDirSync(`${dir}/ipam/hp`)].map((e) => e.name).filter((n) =>
          /^\d+\.\d+\.\d+\.\d+$/.test(n)
        );
      const netnsList = () => [...Deno.readDirSync("/run/netns")].map((e) => e.name);
      const connect = () =>
        new RuntimeServiceClient(`unix://${d!.socket}`, grpc.credentials.createInsecure());

      /** Starts RunPodSandbox, kills the daemon -9 while CNI ADD blocks, starts it again. */
      const killMidRun = async (name: string) => {
        await Deno.remove(`${dir}/blocked`).catch(() => {});
        await Deno.remove(`${dir}/release`).catch(() => {});
        const rt = connect();
        const config = podConfig(name, `${dir}/logs`);
        const running = r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" }).then(
          () => "returned",
          (e: Error) => `failed: ${e.message}`,
        );
        const deadline = Date.now() + 30_000;
        while (!(await Deno.stat(`${dir}/blocked`).catch(() => null)) && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, 50));
        }
        expect(await Deno.stat(`${dir}/blocked`).catch(() => null)).not.toBeNull();
        // Mid-RunPodSandbox: the pod has its netns and an IP lease, nothing answered yet.
        const [ip, ...more] = leases();
        expect(more).toEqual([]);
        expect(ip).toMatch(new RegExp(`^10\\.225\\.${subnetByte}\\.\\d+$`));
        const podId = (await Deno.readTextFile(`${dir}/ipam/hp/${ip}`)).split(/\s/)[0];
        expect(podId).toMatch(/^[0-9a-f]{64}$/);
        const netns = `k8sc-${podId.slice(0, 16)}`;
        made.push(netns);
        expect(netnsList()).toContain(netns);

        rt.close();
        await d!.kill();
        expect(await running).toMatch(/^failed: /); // the daemon died before answering
        // The orphaned plugin is the test's to end, not the daemon's.
        await Deno.writeTextFile(`${dir}/release`, "");
        d = await startTestDaemon({ dir: d!.dir, args: ["--config", `${dir}/config.toml`] });
        return { podId, netns, ip };
      };
      const listed = async () => {
        const rt = connect();
        const items = (await r(rt.listPodSandbox.bind(rt), { filter: undefined })).items;
        rt.close();
        // Only this test's pods (under systemd the daemon is shared with the suites above).
        return items.filter((p) => p.metadata?.name.startsWith("halfpod"))
          .map((p) => [p.id, p.state, p.metadata?.name]);
      };
      const stopAndRemove = async (podSandboxId: string) => {
        const rt = connect();
        await r(rt.stopPodSandbox.bind(rt), { podSandboxId });
        await r(rt.removePodSandbox.bind(rt), { podSandboxId });
        rt.close();
      };

      // 1. The restart undoes it all; the pod is listed NOTREADY until the kubelet removes it.
      const a = await killMidRun("halfpod");
      expect(netnsList()).not.toContain(a.netns);
      expect(leases()).toEqual([]);
      const procs = new TextDecoder().decode(
        (await new Deno.Command("ps", { args: ["-eo", "args"] }).output()).stdout,
      );
      expect(procs).not.toContain(a.podId); // no pause process, no conmon
      const ctrs = await runCli(["--address", d.socket, "-n", "k8s.io", "containers", "ls", "-q"]);
      expect(ctrs.code).toBe(0);
      expect(ctrs.stdout).not.toContain(a.podId);
      expect(d.log()).toContain("half built");
      expect(await listed()).toEqual([[a.podId, PodSandboxState.SANDBOX_NOTREADY, "halfpod"]]);
      const rt = connect();
      const st = (await r(rt.podSandboxStatus.bind(rt), { podSandboxId: a.podId, verbose: false }))
        .status!;
      rt.close();
      expect(st.state).toBe(PodSandboxState.SANDBOX_NOTREADY);
      expect(st.network!.ip).toBe("");
      await stopAndRemove(a.podId);
      expect(await listed()).toEqual([]);

      // 2. The undo at start fails (a plugin refuses DEL): the pod is still NOTREADY, and the
      // kubelet's StopPodSandbox finishes the tear-down once DEL works again.
      await Deno.writeTextFile(`${dir}/fail-del`, "");
      const b = await killMidRun("halfpod2");
      expect(d.log()).toContain("cannot undo a half-built pod sandbox");
      expect(d.log()).toContain("DEL refused by the test");
      expect(netnsList()).toContain(b.netns);
      expect(await listed()).toEqual([[b.podId, PodSandboxState.SANDBOX_NOTREADY, "halfpod2"]]);
      await Deno.remove(`${dir}/fail-del`);
      await stopAndRemove(b.podId);
      expect(netnsList()).not.toContain(b.netns);
      expect(leases()).toEqual([]);
      expect(await listed()).toEqual([]);
    } finally {
      await Deno.writeTextFile(`${dir}/release`, "").catch(() => {});
      await cleanUpAfterDaemon(
        d,
        bridge3,
        made.map((n) => `ip netns del ${n} 2>/dev/null; `).join(""),
      );
      await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
});

// Failpoints are set through the daemon's environment: only a daemon the test starts itself.
const SYSTEMD_UNIT = !!Deno.env.get("K8SC_E2E_SYSTEMD_UNIT");

describe.skipIf(
  !isRoot || SYSTEMD_UNIT,
  SYSTEMD_UNIT ? "failpoints need a daemon the test starts (not the systemd unit)" : ROOT_REASON,
)("cri: daemon killed during CreateContainer, StartContainer and RemoveContainer", () => {
  it("a create cut short frees the name; a start cut short leaves the container startable or running; a remove cut short is finished", async () => {
    const registry = await startRegistry();
    const dir = await Deno.makeTempDir({ prefix: "k8sc-cri-halfctr-" });
    const bridge4 = `k8schc${subnetByte}`;
    let d: TestDaemon | undefined;
    try {
      await pushFixtures(registry.address, ["busybox", "pause"]);
      await writeCniConf(dir, { name: "hc", bridge: bridge4, subnet: `10.226.${subnetByte}.0/24` });
      await writeCriConfig(dir, { sandboxImage: `${registry.address}/pause:latest` });
      await Deno.mkdir(`${dir}/logs`);
      /** A daemon on the same dirs that freezes itself (SIGSTOP) at `failpoint`. */
      const start = async (failpoint?: string) => {
        d = await startTestDaemon({
          dir: d?.dir,
          args: ["--config", `${dir}/config.toml`],
          env: failpoint ? { K8SCONTAINERD_FAILPOINTS: failpoint } : undefined,
        });
      };
      const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
        call<Req, Res>(d!.socket, "k8s.io", fn, req, 60_000);
      const rpc = async <T>(fn: (rt: RuntimeServiceClient) => Promise<T>) => {
        const rt = new RuntimeServiceClient(
          `unix://${d!.socket}`,
          grpc.credentials.createInsecure(),
        );
        try {
          return await fn(rt);
        } finally {
          rt.close();
        }
      };
      /** Runs `call` until the daemon freezes at its failpoint, kills it -9, starts it again. */
      const killAt = async (call: Promise<unknown>, next?: string) => {
        const outcome = call.then(() => "answered", () => "failed");
        expect(await frozenAtFailpoint(d!)).toBe(true);
        await d!.kill();
        // The daemon died before answering.
        expect(await outcome).toBe("failed");
        await start(next);
      };

      await start("cri-container-create-after-record");
      const busybox = `${registry.address}/busybox:latest`;
      await pullCriImage(d!.socket, busybox);
      const sandboxConfig = podConfig("halfctr", `${dir}/logs`);
      const { podSandboxId } = await rpc((rt) =>
        r(rt.runPodSandbox.bind(rt), { config: sandboxConfig, runtimeHandler: "" })
      );
      const config = containerConfig("app", busybox, ["sh", "-c", "echo up; sleep 1000"]);
      const create = () =>
        rpc((rt) => r(rt.createContainer.bind(rt), { podSandboxId, config, sandboxConfig }));
      const listed = () =>
        rpc(async (rt) =>
          (await r(rt.listContainers.bind(rt), { filter: undefined })).containers.map((c) => [
            c.id,
            c.state,
          ])
        );
      const state = (containerId: string) =>
        rpc(async (rt) =>
          (await r(rt.containerStatus.bind(rt), { containerId, verbose: false })).status!.state
        );
      const ctrs = async () =>
        (await runCli(["--address", d!.socket, "-n", "k8s.io", "containers", "ls", "-q"])).stdout
          .trim().split("\n").filter((id) => id && id !== podSandboxId);

      // 1. Killed with the CRI record written, before the containers service was called.
      await killAt(create(), "container-create-before-record");
      expect(d!.log()).toContain("container record left by a CreateContainer cut short");
      expect(await listed()).toEqual([]);
      // 2. Killed inside the service's create (bundle and snapshot made, no record there):
      // the service undoes its half, the CRI its record.
      await killAt(create(), "cri-container-start-after-task-create");
      expect(d!.log()).toContain("removed the bundle of a container create cut short");
      expect(d!.log()).toContain("container record left by a CreateContainer cut short");
      expect(await listed()).toEqual([]);
      expect(await ctrs()).toEqual([]);

      // The kubelet's retry with the same name succeeds.
      const { containerId } = await create();
      expect(await listed()).toEqual([[containerId, ContainerState.CONTAINER_CREATED]]);

      // 3. Killed in StartContainer with the task created, not started: CREATED again, and
      // the next StartContainer runs it.
      const startIt = () => rpc((rt) => r(rt.startContainer.bind(rt), { containerId }));
      await killAt(startIt(), "cri-container-start-before-record");
      expect(d!.log()).toContain("never started: deleted, the container is CREATED again");
      expect(await state(containerId)).toBe(ContainerState.CONTAINER_CREATED);

      // 4. Killed in StartContainer after the process started, before it was recorded: RUNNING.
      // (The next daemon freezes inside a container's delete, for 5.)
      await killAt(startIt(), "container-delete-snapshot-removed");
      expect(d!.log()).toContain("recorded as started");
      expect(await state(containerId)).toBe(ContainerState.CONTAINER_RUNNING);
      const out = await rpc((rt) =>
        r(rt.execSync.bind(rt), { containerId, cmd: ["echo", "alive"], timeout: 10n })
      );
      expect(new TextDecoder().decode(out.stdout)).toBe("alive\n");
      // Recorded as started: a second start is refused, a stop ends it as EXITED.
      expect(await startIt().then(() => "started", (e: Error) => e.message)).toMatch(
        /already (been )?started/,
      );
      await rpc((rt) => r(rt.stopContainer.bind(rt), { containerId, timeout: 0n }));
      expect(await state(containerId)).toBe(ContainerState.CONTAINER_EXITED);

      // 5. Killed in RemoveContainer halfway through the container's delete (snapshot gone,
      // record not): the next start finishes the delete, then drops the CRI record.
      await killAt(rpc((rt) => r(rt.removeContainer.bind(rt), { containerId })));
      expect(d!.log()).toContain("finished the delete of a container cut short");
      expect(d!.log()).toContain("container record left by a RemoveContainer cut short");
      expect(await listed()).toEqual([]);
      expect(await ctrs()).toEqual([]);
      // Removing it again is the no-op the kubelet expects.
      await rpc((rt) => r(rt.removeContainer.bind(rt), { containerId }));
      await rpc((rt) => r(rt.stopPodSandbox.bind(rt), { podSandboxId }));
      await rpc((rt) => r(rt.removePodSandbox.bind(rt), { podSandboxId }));
    } catch (e) {
      console.error("daemon log (tail):\n", d?.log().slice(-8000));
      throw e;
    } finally {
      await cleanUpAfterDaemon(d, bridge4);
      await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
});
