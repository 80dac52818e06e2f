/**
 * Image volumes (KEP 4639) and host devices through the CRI, as the kubelet asks for them:
 * a container with `Mount.image` sees the image's files read-only (a write is EROFS), with
 * `image_sub_path` only that directory (reached through an in-image symlink); an escaping sub
 * path is INVALID_ARGUMENT naming the field, a missing one NOT_FOUND; RemoveImage of the
 * mounted image is FAILED_PRECONDITION naming the container until RemoveContainer, after
 * which nothing stays mounted under the bundle and the removal works. A container with
 * `devices` gets the host's node at its container path (char 1:3 for /dev/null), allowed in
 * the device cgroup as its permissions say; a missing host device is NOT_FOUND.
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
  type ContainerConfig,
  ContainerState,
  type DeepPartial,
  PodSandboxConfig,
} from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/grpc/clients.ts";
import { runCli, type TestDaemon } from "./harness.ts";
import { containerConfig, podConfig } from "./cri_requests.ts";
import { type CriSuite, startCriSuite } from "./cri_env.ts";
import { ImageServiceClient, RuntimeServiceClient } from "../src/grpc/clients.ts";

const bridge = "k8sivol1";

describe.skipIf(!isRoot, ROOT_REASON)("cri image volumes and devices", () => {
  let s: CriSuite;
  let d: TestDaemon;
  let rt: RuntimeServiceClient;
  let img: ImageServiceClient;
  let busybox: string;
  let layers: string;
  let layersId: string;
  let pod: { id: string; config: PodSandboxConfig };
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    s.call<Req, Res>(fn, req);
  const imageSpec = (image: string) => ({
    image,
    annotations: {},
    userSpecifiedImage: "",
    runtimeHandler: "",
    imageRef: "",
  });
  const pull = async (image: string) =>
    (await r(img.pullImage.bind(img), {
      image: imageSpec(image),
      auth: undefined,
      sandboxConfig: undefined,
    })).imageRef;
  const create = (name: string, o: DeepPartial<ContainerConfig>) =>
    r(rt.createContainer.bind(rt), {
      podSandboxId: pod.id,
      config: containerConfig(name, busybox, ["sleep", "1000"], o),
      sandboxConfig: pod.config,
    });
  const run = async (name: string, o: DeepPartial<ContainerConfig>) => {
    const { containerId } = await create(name, o);
    await r(rt.startContainer.bind(rt), { containerId });
    return containerId;
  };
  const sh = async (containerId: string, script: string) => {
    const out = await r(rt.execSync.bind(rt), {
      containerId,
      cmd: ["sh", "-c", script],
      timeout: 10n,
    });
    return {
      exit: out.exitCode,
      out: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    };
  };
  const bundleMounts = async (id: string) =>
    (await Deno.readTextFile("/proc/self/mountinfo")).split("\n").filter((l) =>
      l.includes(`/bundles/k8s.io/${id}`)
    );
  /** The CRI namespace's snapshots, as the management API lists them. */
  const snapshots = async () => {
    const out = await runCli(["--address", d.socket, "-n", "k8s.io", "snapshots", "ls"]);
    expect(out.code).toBe(0);
    return out.stdout;
  };
  const listed = async () =>
    (await r(rt.listContainers.bind(rt), {
      filter: { id: "", state: undefined, podSandboxId: pod.id, labelSelector: {} },
    })).containers;

  beforeAll(async () => {
    s = await startCriSuite({
      name: "ivol",
      bridge,
      subnet: "10.223.79.0/24",
      fixtures: ["busybox", "layers"],
    });
    ({ daemon: d, rt, img } = s);
    busybox = s.image("busybox");
    layers = s.image("layers");
    await pull(busybox);
    const config = podConfig("ivol");
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    pod = { id: podSandboxId, config };
  });
  afterAll(async () => {
    if (pod) await r(rt.removePodSandbox.bind(rt), { podSandboxId: pod.id }).catch(() => {});
    await s?.stop();
  });

  it("mounts an image read-only, a sub path alone, and holds the image until removal", async () => {
    // The kubelet pulls the image and passes the image_ref it got back.
    layersId = await pull(layers);
    const mounts = [
      { containerPath: "/vol", image: imageSpec(layersId) },
      { containerPath: "/sub", image: imageSpec(layersId), imageSubPath: "links/dir-rel" },
    ];
    const id = await run("ivol", { mounts });
    const st = await r(rt.containerStatus.bind(rt), { containerId: id, verbose: false });
    expect(st.status!.state).toBe(ContainerState.CONTAINER_RUNNING);
    // Reported as the kubelet sent them.
    expect(st.status!.mounts.map((m) => [m.containerPath, m.image?.image, m.imageSubPath]))
      .toEqual([["/vol", layersId, ""], ["/sub", layersId, "links/dir-rel"]]);
    expect(await sh(id, "cat /vol/data/keep.txt /vol/opaque/kept-name.txt; ls /sub")).toEqual({
      exit: 0,
      out: "keep v2\nupper\nadded.txt\nkeep.txt\n",
    });
    const write = await sh(id, "touch /vol/new 2>&1; echo x 2>&1 > /sub/keep.txt; echo $?");
    expect(write.out).toContain("Read-only file system");
    expect(write.out.trim().endsWith("1")).toBe(true);
    expect((await sh(id, "grep ' /vol ' /proc/self/mountinfo")).out).toMatch(/ ro[, ]/);
    expect((await bundleMounts(id)).length).toBe(3); // rootfs and two image views

    const e = await r(img.removeImage.bind(img), { image: imageSpec(layersId) }).catch((e) => e);
    expect(e.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(e.message).toContain(id);
    const still = await r(img.imageStatus.bind(img), {
      image: imageSpec(layersId),
      verbose: false,
    });
    expect(still.image?.id).toBe(layersId);

    expect(await snapshots()).toContain(`${id}-imagevolume-1`);
    await r(rt.removeContainer.bind(rt), { containerId: id });
    expect(await bundleMounts(id)).toEqual([]);
    expect(await snapshots()).not.toContain("imagevolume");
    await r(img.removeImage.bind(img), { image: imageSpec(layersId) });
    const gone = await r(img.imageStatus.bind(img), { image: imageSpec(layersId), verbose: false });
    expect(gone.image).toBeUndefined();
  });

  it("refuses escaping and missing sub paths and absent images, and records nothing", async () => {
    layersId = await pull(layers);
    const vol = (imageSubPath: string, image = layersId) => ({
      mounts: [{ containerPath: "/vol", image: imageSpec(image), imageSubPath }],
    });
    for (const p of ["../etc", "/etc", "data/../../x"]) {
      const e = await create("bad", vol(p)).catch((e) => e);
      expect({ p, code: e.code }).toEqual({ p, code: grpc.status.INVALID_ARGUMENT });
      expect(e.message).toContain("mounts[0].image_sub_path");
    }
    const missing = await create("bad", vol("no/such/dir")).catch((e) => e);
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.message).toContain("mounts[0].image_sub_path");
    const absent = `${s.registry.address}/layers:absent`;
    const noImage = await create("bad", vol("", absent)).catch((e) => e);
    expect(noImage.code).toBe(grpc.status.NOT_FOUND);
    expect(noImage.message).toContain(absent);
    expect(await listed()).toEqual([]);
    // Nothing of the refused creates is left mounted, and the image is not held.
    const left = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
      .filter((l) => l.includes("/imagevolumes/"));
    expect(left).toEqual([]);
    expect(await snapshots()).not.toContain("imagevolume");
    await r(img.removeImage.bind(img), { image: imageSpec(layersId) });
  });

  it("creates host devices at their container paths, allowed as their permissions say", async () => {
    const has = (p: string) => Deno.stat(p).then(() => true, () => false);
    const [loopControl, tun] = [await has("/dev/loop-control"), await has("/dev/net/tun")];
    const devices = [
      { containerPath: "/dev/mynull", hostPath: "/dev/null", permissions: "rw" },
      // 10:237 is in no default allow list (runc's or ours): only `permissions` opens it.
      ...(loopControl
        ? [{ containerPath: "/dev/roloop", hostPath: "/dev/loop-control", permissions: "r" }]
        : []),
      // A directory: every device node under it, at the same relative path.
      ...(tun ? [{ containerPath: "/dev/hostnet", hostPath: "/dev/net", permissions: "rw" }] : []),
    ];
    const id = await run("devs", { devices });
    try {
      expect(await sh(id, "stat -c '%F %t:%T' /dev/mynull && echo x > /dev/mynull")).toEqual({
        exit: 0,
        out: "character special file 1:3\n",
      });
      if (loopControl) {
        expect(await sh(id, "stat -c '%F %t:%T' /dev/roloop && : < /dev/roloop")).toEqual({
          exit: 0,
          out: "character special file a:ed\n",
        });
        const w = await sh(id, ": > /dev/roloop");
        expect(w.exit).not.toBe(0);
        expect(w.out).toContain("Operation not permitted");
      }
      if (tun) {
        expect(await sh(id, "stat -c '%t:%T' /dev/hostnet/tun")).toEqual({
          exit: 0,
          out: "a:c8\n",
        });
      }
    } finally {
      await r(rt.removeContainer.bind(rt), { containerId: id });
    }
  });

  it("gives a privileged container the host's devices", async () => {
    const id = await run("priv", {
      linux: { securityContext: { privileged: true } },
      devices: [{ containerPath: "/dev/mynull", hostPath: "/dev/null", permissions: "rw" }],
    });
    try {
      // Every char/block device of the host's /dev (not pts, not the console), and its own.
      const host: string[] = [];
      for await (const e of Deno.readDir("/dev")) {
        const st = await Deno.lstat(`/dev/${e.name}`);
        if ((st.isCharDevice || st.isBlockDevice) && e.name !== "console") host.push(e.name);
      }
      const out = await sh(id, "cd /dev && for f in *; do [ -c $f -o -b $f ] && echo $f; done");
      expect(out.exit).toBe(0);
      const seen = out.out.split("\n").filter(Boolean);
      for (const name of host) {
        expect({ name, seen: seen.includes(name) }).toEqual({ name, seen: true });
      }
      expect(seen).toContain("mynull");
    } finally {
      await r(rt.removeContainer.bind(rt), { containerId: id });
    }
  });

  it("refuses a missing host device (NOT_FOUND) and bad permissions (INVALID_ARGUMENT)", async () => {
    const missing = await create("nodev", {
      devices: [{
        containerPath: "/dev/x",
        hostPath: "/dev/k8sc-no-such-device",
        permissions: "rw",
      }],
    }).catch((e) => e);
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.message).toContain("/dev/k8sc-no-such-device");
    expect(missing.message).toContain("devices[0].host_path");
    const bad = await create("nodev", {
      devices: [{ containerPath: "/dev/x", hostPath: "/dev/null", permissions: "rwx" }],
    }).catch((e) => e);
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.message).toContain("devices[0].permissions");
    expect(await listed()).toEqual([]);
  });
});
