/**
 * The security features of current kubelets, through the project's own CRI client against a
 * real daemon (real registry, runc, a CNI bridge of its own): per-handler features in Status,
 * user-namespaced pods (POD mode: the mapping in /proc/self/uid_map, an idmapped rootfs and
 * volume; NODE mode; every refusal), recursive read-only mounts (a submount is read-only too;
 * refusals), SupplementalGroupsPolicy Merge and Strict with ContainerStatus.user, a
 * ContainerConfig stop_signal honoured by StopContainer, and StopContainer of an unknown id; and
 * one user-namespaced pod with a CDI device and an image volume at once.
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
  ContainerState,
  NamespaceMode,
  type PodSandboxConfig,
  Signal,
  SupplementalGroupsPolicy,
} from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/grpc/clients.ts";
import type { TestDaemon } from "./harness.ts";
import { containerConfig, podConfig } from "./cri_requests.ts";
import { type CriSuite, startCriSuite } from "./cri_env.ts";
import { mount, MS_PRIVATE, umount2 } from "../ffi/mount.ts";
import { probeHostIdmap } from "../src/runtime/features.ts";
import { RuntimeServiceClient } from "../src/grpc/clients.ts";

const bridge = "k8ssec1";
const subnet = "10.223.81.0/24";
const MAP = [{ containerId: 0, hostId: 165536, length: 65536 }];
const hostIdmap = isRoot && await probeHostIdmap("/var/tmp");
const IDMAP_REASON = "the kernel or the filesystem of /var/tmp has no idmapped mounts";

describe.skipIf(!isRoot, ROOT_REASON)("cri security features", () => {
  let s: CriSuite;
  let d: TestDaemon;
  let dir: string;
  let rt: RuntimeServiceClient;
  let busybox: string;
  let layers: string;
  const pods: string[] = [];
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    s.call<Req, Res>(fn, req);
  const text = (b: Uint8Array) => new TextDecoder().decode(b);

  async function runPod(config: PodSandboxConfig): Promise<string> {
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    pods.push(podSandboxId);
    return podSandboxId;
  }

  /** Creates and starts a container; returns its id. */
  async function start(
    podSandboxId: string,
    sandboxConfig: PodSandboxConfig,
    c: ReturnType<typeof containerConfig>,
  ): Promise<string> {
    const { containerId } = await r(rt.createContainer.bind(rt), {
      podSandboxId,
      config: c,
      sandboxConfig,
    });
    await r(rt.startContainer.bind(rt), { containerId });
    return containerId;
  }

  const exec = async (containerId: string, cmd: string[]) => {
    const o = await r(rt.execSync.bind(rt), { containerId, cmd, timeout: 10n });
    return { exit: o.exitCode, out: text(o.stdout), err: text(o.stderr) };
  };

  beforeAll(async () => {
    s = await startCriSuite({
      name: "security",
      bridge,
      subnet,
      fixtures: ["busybox", "layers"],
      pull: ["busybox", "layers"],
      // A CDI device backed by /dev/null, for the pod that has everything at once.
      prepare: async (dir) => {
        await Deno.mkdir(`${dir}/cdi`);
        await Deno.writeTextFile(
          `${dir}/cdi/vendor.json`,
          JSON.stringify({
            cdiVersion: "0.6.0",
            kind: "vendor.com/device",
            devices: [{
              name: "foo",
              containerEdits: {
                deviceNodes: [{ path: "/dev/foo", hostPath: "/dev/null" }],
                env: ["FOO_DEVICE=1"],
              },
            }],
          }),
        );
      },
      extraCri: (dir) => `cdi_spec_dirs = ["${dir}/cdi"]\n`,
    });
    ({ daemon: d, dir, rt } = s);
    busybox = s.image("busybox");
    layers = s.image("layers");
  });
  afterAll(async () => {
    for (const id of pods) {
      await r(rt.stopPodSandbox.bind(rt), { podSandboxId: id }).catch(() => {});
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: id }).catch(() => {});
    }
    await s?.stop(`grep -o ' ${dir}/[^ ]*' /proc/self/mountinfo | sort -r | xargs -r umount -l;`);
  });

  it("Status advertises each handler's features and the supplemental groups policy", async () => {
    const s = await r(rt.status.bind(rt), { verbose: true });
    const names = s.runtimeHandlers.map((h) => h.name);
    expect(names.slice(0, 2)).toEqual(["", "runc"]);
    const runc = s.runtimeHandlers.find((h) => h.name === "runc")!;
    // runc 1.1 lists rro in `runc features`; kernel 5.12+ has mount_setattr.
    expect(runc.features?.recursiveReadOnlyMounts).toBe(true);
    expect(runc.features?.userNamespaces).toBe(hostIdmap);
    expect(s.runtimeHandlers[0].features).toEqual(runc.features);
    expect(s.features?.supplementalGroupsPolicy).toBe(true);
    expect(JSON.parse(s.info.config).stateDir).toBe(`${d.dir}/state`);
  });

  describe.skipIf(!hostIdmap, IDMAP_REASON)("user namespaces", () => {
    it("a POD-mode pod runs in its own user namespace, rootfs and volume idmapped", async () => {
      const config = podConfig("userns", {
        linux: {
          securityContext: {
            namespaceOptions: { usernsOptions: { mode: NamespaceMode.POD, uids: MAP, gids: MAP } },
          },
        },
      });
      const pod = await runPod(config);
      const vol = `${dir}/vol`, plain = `${dir}/plain`;
      await Deno.mkdir(vol);
      await Deno.mkdir(plain);
      await Deno.writeTextFile(`${vol}/owned-by-root`, "x");
      const c = await start(
        pod,
        config,
        containerConfig("app", busybox, ["sleep", "1000"], {
          linux: {
            securityContext: {
              namespaceOptions: config.linux!.securityContext!.namespaceOptions,
            },
          },
          mounts: [
            { containerPath: "/vol", hostPath: vol, uidMappings: MAP, gidMappings: MAP },
            { containerPath: "/plain", hostPath: plain },
          ],
        }),
      );
      expect((await exec(c, ["cat", "/proc/self/uid_map"])).out).toMatch(
        /^\s+0\s+165536\s+65536\n$/,
      );
      expect((await exec(c, ["cat", "/proc/self/gid_map"])).out).toMatch(/^\s+0\s+165536\s+65536/);
      // The image's root-owned files are the container root's; so is what it writes.
      expect((await exec(c, ["stat", "-c", "%u:%g", "/bin/busybox", "/"])).out).toBe("0:0\n0:0\n");
      expect((await exec(c, ["sh", "-c", "echo hi > /new && stat -c %u /new"])).out).toBe("0\n");
      // The idmapped volume: the host's root-owned file is root's inside, and a file written
      // there lands on the host owned by host root again.
      expect((await exec(c, ["stat", "-c", "%u", "/vol/owned-by-root"])).out).toBe("0\n");
      expect((await exec(c, ["touch", "/vol/from-pod"])).exit).toBe(0);
      expect((await Deno.stat(`${vol}/from-pod`)).uid).toBe(0);
      // A volume without mappings shows host root as the overflow id.
      expect((await exec(c, ["stat", "-c", "%u", "/plain"])).out).toBe("65534\n");
      const ps = await r(rt.containerStatus.bind(rt), { containerId: c, verbose: false });
      expect(ps.status?.state).toBe(ContainerState.CONTAINER_RUNNING);

      await r(rt.stopPodSandbox.bind(rt), { podSandboxId: pod });
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: pod });
      // Nothing of the pod stays mounted: rootfs, idmapped lowers and volume, the userns file.
      const mounts = await Deno.readTextFile("/proc/self/mountinfo");
      expect(mounts.split("\n").filter((l) => l.includes(`${d.dir}/`))).toEqual([]);
    });

    it("a user-namespaced pod with a CDI device and an image volume together", async () => {
      const ns = { usernsOptions: { mode: NamespaceMode.POD, uids: MAP, gids: MAP } };
      const config = podConfig("userns-all", {
        linux: { securityContext: { namespaceOptions: ns } },
      });
      const pod = await runPod(config);
      const c = await start(
        pod,
        config,
        containerConfig("app", busybox, ["sleep", "1000"], {
          linux: { securityContext: { namespaceOptions: ns } },
          CDIDevices: [{ name: "vendor.com/device=foo" }],
          mounts: [{
            containerPath: "/img",
            image: { image: layers, userSpecifiedImage: layers },
            readonly: true,
          }],
        }),
      );
      expect((await exec(c, ["cat", "/proc/self/uid_map"])).out).toMatch(/^\s+0\s+165536\s+65536/);
      // The CDI device node, writable by the container's root, and its env.
      expect((await exec(c, ["stat", "-c", "%F %t:%T", "/dev/foo"])).out).toBe(
        "character special file 1:3\n",
      );
      expect((await exec(c, ["sh", "-c", "echo x > /dev/foo"])).exit).toBe(0);
      expect((await exec(c, ["sh", "-c", "echo $FOO_DEVICE"])).out).toBe("1\n");
      // The image volume: the multi-layer image's merged files, owned by the container's root
      // through the idmapped lowers, read-only.
      expect((await exec(c, ["cat", "/img/data/keep.txt", "/img/opaque/new.txt"])).out).toBe(
        "keep v2\nnew\n",
      );
      expect((await exec(c, ["test", "-e", "/img/data/gone.txt"])).exit).not.toBe(0);
      expect((await exec(c, ["stat", "-c", "%u:%g", "/img/bin/busybox", "/img/data"])).out).toBe(
        "0:0\n0:0\n",
      );
      expect((await exec(c, ["touch", "/img/x"])).err).toContain("Read-only file system");

      await r(rt.stopPodSandbox.bind(rt), { podSandboxId: pod });
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: pod });
      const mounts = await Deno.readTextFile("/proc/self/mountinfo");
      expect(mounts.split("\n").filter((l) => l.includes(`${d.dir}/`))).toEqual([]);
    });

    it("a NODE-mode pod shares the host's user namespace", async () => {
      const config = podConfig("userns-node", {
        linux: {
          securityContext: { namespaceOptions: { usernsOptions: { mode: NamespaceMode.NODE } } },
        },
      });
      const pod = await runPod(config);
      const c = await start(pod, config, containerConfig("app", busybox, ["sleep", "1000"]));
      const host = (await Deno.readTextFile("/proc/self/uid_map")).trim().split(/\s+/);
      expect((await exec(c, ["cat", "/proc/self/uid_map"])).out.trim().split(/\s+/)).toEqual(host);
    });

    it("refuses other modes, bad mappings and foreign volume mappings, leaving nothing", async () => {
      const refused = async (name: string, usernsOptions: object, network?: NamespaceMode) => {
        const config = podConfig(name, {
          linux: { securityContext: { namespaceOptions: { usernsOptions, network } } },
        });
        const e = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" }).catch((
          e,
        ) => e);
        expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
        return e.message as string;
      };
      expect(await refused("m-container", { mode: NamespaceMode.CONTAINER })).toContain(
        "userns_options.mode CONTAINER is not supported",
      );
      expect(await refused("m-target", { mode: NamespaceMode.TARGET })).toContain("TARGET");
      expect(
        await refused("two", {
          mode: NamespaceMode.POD,
          uids: [...MAP, { containerId: 0, hostId: 300000, length: 10 }],
          gids: MAP,
        }),
      ).toContain("userns_options.uids: exactly one mapping is supported, got 2");
      expect(
        await refused("zero", {
          mode: NamespaceMode.POD,
          uids: [{ containerId: 1, hostId: 165536, length: 65536 }],
          gids: MAP,
        }),
      ).toContain("container uid 0 must be mapped");
      expect(
        await refused(
          "hostnet",
          { mode: NamespaceMode.POD, uids: MAP, gids: MAP },
          NamespaceMode.NODE,
        ),
      ).toContain("host networking");
      const listed = await r(rt.listPodSandbox.bind(rt), { filter: undefined });
      expect(listed.items.map((p) => p.metadata?.name).filter((n) => n !== "userns-node")).toEqual(
        [],
      );

      // A volume may carry only the pod's own mapping.
      const config = podConfig("userns-vol", {
        linux: {
          securityContext: {
            namespaceOptions: { usernsOptions: { mode: NamespaceMode.POD, uids: MAP, gids: MAP } },
          },
        },
      });
      const pod = await runPod(config);
      const e = await r(rt.createContainer.bind(rt), {
        podSandboxId: pod,
        config: containerConfig("app", busybox, ["true"], {
          mounts: [{
            containerPath: "/vol",
            hostPath: dir,
            uidMappings: [{ containerId: 0, hostId: 1000, length: 10 }],
            gidMappings: MAP,
          }],
        }),
        sandboxConfig: config,
      }).catch((e) => e);
      expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(e.message).toContain("mounts[0].uid_mappings/gid_mappings must equal the pod's");
    });
  });

  it("a recursive read-only mount makes submounts read-only; a plain one does not", async () => {
    const config = podConfig("rro");
    const pod = await runPod(config);
    const src = `${dir}/rro`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    mount("tmpfs", `${src}/sub`, "tmpfs", 0, "size=1m");
    mount(null, `${src}/sub`, null, MS_PRIVATE);
    try {
      const c = await start(
        pod,
        config,
        containerConfig("app", busybox, ["sleep", "1000"], {
          mounts: [
            { containerPath: "/rro", hostPath: src, readonly: true, recursiveReadOnly: true },
            { containerPath: "/ro", hostPath: src, readonly: true },
          ],
        }),
      );
      const rro = await exec(c, ["touch", "/rro/sub/x"]);
      expect(rro.exit).not.toBe(0);
      expect(rro.err).toContain("Read-only file system");
      expect((await exec(c, ["touch", "/ro/x"])).err).toContain("Read-only file system");
      // Without rro the submount keeps its own (writable) flags.
      expect((await exec(c, ["touch", "/ro/sub/y"])).exit).toBe(0);

      const refuse = async (m: object) => {
        const e = await r(rt.createContainer.bind(rt), {
          podSandboxId: pod,
          config: containerConfig(`bad-${Math.random()}`, busybox, ["true"], { mounts: [m] }),
          sandboxConfig: config,
        }).catch((e) => e);
        expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
        return e.message as string;
      };
      expect(await refuse({ containerPath: "/x", hostPath: src, recursiveReadOnly: true }))
        .toContain("a recursive read-only mount must also be read-only");
      expect(
        await refuse({
          containerPath: "/x",
          hostPath: src,
          readonly: true,
          recursiveReadOnly: true,
          propagation: 1, // PROPAGATION_HOST_TO_CONTAINER
        }),
      ).toContain("needs private propagation");
    } finally {
      await r(rt.stopPodSandbox.bind(rt), { podSandboxId: pod });
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: pod });
      umount2(`${src}/sub`);
    }
  });

  it("SupplementalGroupsPolicy Merge and Strict, and ContainerStatus.user", async () => {
    const config = podConfig("groups");
    const pod = await runPod(config);
    const run = async (name: string, policy: SupplementalGroupsPolicy) => {
      const c = await start(
        pod,
        config,
        containerConfig(name, busybox, ["sleep", "1000"], {
          linux: {
            securityContext: {
              runAsUser: { value: 1000n },
              supplementalGroups: [1234n],
              supplementalGroupsPolicy: policy,
            },
          },
        }),
      );
      const st = await r(rt.containerStatus.bind(rt), { containerId: c, verbose: false });
      return { idG: (await exec(c, ["id", "-G"])).out, user: st.status?.user?.linux };
    };
    // The image's /etc/group puts app (1000) in extra (2000).
    expect(await run("merge", SupplementalGroupsPolicy.Merge)).toEqual({
      idG: "1000 1234 2000\n", // the kernel keeps groups sorted
      user: { uid: 1000n, gid: 1000n, supplementalGroups: [1000n, 2000n, 1234n] },
    });
    expect(await run("strict", SupplementalGroupsPolicy.Strict)).toEqual({
      idG: "1000 1234\n",
      user: { uid: 1000n, gid: 1000n, supplementalGroups: [1000n, 1234n] },
    });
  });

  it("StopContainer sends the container's stop_signal; an unknown id is fine", async () => {
    const config = podConfig("stopsig", { logDirectory: `${dir}/logs` });
    await Deno.mkdir(`${dir}/logs`, { recursive: true });
    const pod = await runPod(config);
    const c = await start(
      pod,
      config,
      containerConfig("app", busybox, [
        "sh",
        "-c",
        "trap 'echo got USR1; exit 3' USR1; echo ready; while true; do sleep 0.1; done",
      ], { stopSignal: Signal.SIGUSR1 }),
    );
    // Wait until the trap is set (the script printed ready).
    for (let i = 0; i < 100; i++) {
      if ((await Deno.readTextFile(`${dir}/logs/app.log`).catch(() => "")).includes("ready")) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const t0 = Date.now();
    await r(rt.stopContainer.bind(rt), { containerId: c, timeout: 20n });
    expect(Date.now() - t0).toBeLessThan(10_000);
    const st = await r(rt.containerStatus.bind(rt), { containerId: c, verbose: false });
    expect(st.status?.exitCode).toBe(3);
    expect(st.status?.stopSignal).toBe(Signal.SIGUSR1);
    expect(await Deno.readTextFile(`${dir}/logs/app.log`)).toContain("got USR1");
    // Idempotent, as critest 1.32 expects: an unknown container stops without error.
    expect(await r(rt.stopContainer.bind(rt), { containerId: "0".repeat(64), timeout: 1n }))
      .toEqual({});
  });
});
