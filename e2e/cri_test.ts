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
  ImageServiceClient,
  type PodSandboxConfig,
  PodSandboxState,
  RuntimeServiceClient,
} from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/cli/client.ts";
import { startTestDaemon, type TestDaemon } from "./harness.ts";
import { openPortForward, remoteCommand } from "../src/cri/streaming/client.ts";

const subnetByte = 100 + Math.floor(Math.random() * 100);
const bridge = `k8sce2e${subnetByte}`;

function podConfig(name: string, logDir: string): PodSandboxConfig {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: "e2e", attempt: 0 },
    hostname: `${name}-host`,
    logDirectory: logDir,
    dnsConfig: {
      servers: ["10.96.0.10"],
      searches: ["e2e.svc.cluster.local"],
      options: ["ndots:5"],
    },
    portMappings: [],
    labels: { app: name },
    annotations: { "e2e/annotation": "yes" },
    linux: undefined,
    windows: undefined,
  };
}

function containerConfig(name: string, image: string, command: string[]): ContainerConfig {
  return {
    metadata: { name, attempt: 0 },
    image: { image, annotations: {}, userSpecifiedImage: image, runtimeHandler: "", imageRef: "" },
    command,
    args: [],
    workingDir: "",
    envs: [{ key: "E2E", value: Buffer.from("1") }],
    mounts: [],
    devices: [],
    labels: { c: name },
    annotations: {},
    logPath: `${name}.log`,
    stdin: false,
    stdinOnce: false,
    tty: false,
    linux: undefined,
    windows: undefined,
    CDIDevices: [],
    stopSignal: 0,
  };
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
    await Deno.mkdir(`${dir}/net.d`);
    await Deno.writeTextFile(
      `${dir}/net.d/10-e2e.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "e2e",
        plugins: [
          {
            type: "bridge",
            bridge,
            isGateway: true,
            ipMasq: false,
            ipam: {
              type: "host-local",
              ranges: [[{ subnet: `10.223.${subnetByte}.0/24` }]],
              dataDir: `${dir}/ipam`,
            },
          },
          { type: "portmap", capabilities: { portMappings: true } },
        ],
      }),
    );
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      `[cri]\nsandbox_image = "${registry.address}/pause:latest"\ncni_conf_dir = "${dir}/net.d"\n`,
    );
    d = await startTestDaemon({ args: ["--config", `${dir}/config.toml`] });
    rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
    img = new ImageServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    rt?.close();
    img?.close();
    await d?.kill();
    await new Deno.Command("sh", {
      args: [
        "-c",
        `pkill -9 -f 'conmon.*${d?.dir}'; grep -o ' ${d?.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l; ip link del ${bridge} 2>/dev/null; true`,
      ],
    }).output();
    await d?.cleanup();
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
      (await exec(sideId, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])).stdout,
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
      await Deno.mkdir(`${dir}/net.d`);
      await Deno.writeTextFile(
        `${dir}/net.d/10-rs.conflist`,
        JSON.stringify({
          cniVersion: "1.0.0",
          name: "rs",
          plugins: [{
            type: "bridge",
            bridge: bridge2,
            isGateway: true,
            ipam: {
              type: "host-local",
              ranges: [[{ subnet: `10.224.${subnetByte}.0/24` }]],
              dataDir: `${dir}/ipam`,
            },
          }],
        }),
      );
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        `[cri]\nsandbox_image = "${registry.address}/pause:latest"\ncni_conf_dir = "${dir}/net.d"\n`,
      );
      d = await startTestDaemon({ args: ["--config", `${dir}/config.toml`] });
      const connect = () =>
        new RuntimeServiceClient(`unix://${d!.socket}`, grpc.credentials.createInsecure());
      let rt = connect();
      const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
        call<Req, Res>(d!.socket, "k8s.io", fn, req, 60_000);
      const busybox = `${registry.address}/busybox:latest`;
      const images = new ImageServiceClient(
        `unix://${d.socket}`,
        grpc.credentials.createInsecure(),
      );
      await r(images.pullImage.bind(images), {
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
      images.close();
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
      const pods = (await r(rt.listPodSandbox.bind(rt), { filter: undefined })).items;
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
      await d?.kill();
      await new Deno.Command("sh", {
        args: [
          "-c",
          `pkill -9 -f 'conmon.*${d?.dir}'; grep -o ' ${d?.dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l; ip link del ${bridge2} 2>/dev/null; true`,
        ],
      }).output();
      await d?.cleanup();
      await registry.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
});
