/**
 * CDI devices through the CRI, as the kubelet asks for them: a spec in a directory the daemon's
 * `[cri] cdi_spec_dirs` names, a container with `CDI_devices` (and one with the older
 * `cdi.k8s.io/` annotation) that sees the device node, the env var, the bind-mounted file, and
 * whose hook ran; an unknown device is NOT_FOUND naming it and leaves no container behind.
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
import { ContainerState } from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/grpc/clients.ts";
import { containerConfig, podConfig } from "./cri_requests.ts";
import { type CriSuite, startCriSuite } from "./cri_env.ts";
import { RuntimeServiceClient } from "../src/grpc/clients.ts";

const bridge = "k8scdi1";

describe.skipIf(!isRoot, ROOT_REASON)("cri cdi", () => {
  let s: CriSuite;
  let dir: string;
  let rt: RuntimeServiceClient;
  let busybox: string;
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    s.call<Req, Res>(fn, req);

  beforeAll(async () => {
    s = await startCriSuite({
      name: "cdi",
      bridge,
      subnet: "10.223.77.0/24",
      fixtures: ["busybox"],
      pull: ["busybox"],
      prepare: async (dir) => {
        await Deno.mkdir(`${dir}/cdi-etc`);
        await Deno.mkdir(`${dir}/cdi-run`);
        await Deno.writeTextFile(`${dir}/mounted.txt`, "from the host\n");
        // YAML, with every edit the test checks, and a hook that leaves a mark on the host.
        await Deno.writeTextFile(
          `${dir}/cdi-run/vendor.yaml`,
          `cdiVersion: "0.6.0"
kind: vendor.com/device
containerEdits:
  env:
    - VENDOR_SPEC=1
devices:
  - name: foo
    containerEdits:
      env:
        - CDI_FOO=bar
      deviceNodes:
        - path: /dev/foo
          hostPath: /dev/null
      mounts:
        - hostPath: ${dir}/mounted.txt
          containerPath: /etc/cdi-file
          options: [ro, nosuid, nodev, bind]
      hooks:
        - hookName: createRuntime
          path: /bin/sh
          args: [sh, -c, "echo ran >> ${dir}/hook-ran"]
`,
        );
        // A broken file beside it is skipped, and does not hide the good one.
        await Deno.writeTextFile(`${dir}/cdi-etc/broken.json`, '{"cdiVersion": ');
      },
      extraCri: (dir) => `cdi_spec_dirs = ["${dir}/cdi-etc", "${dir}/cdi-run"]\n`,
    });
    ({ dir, rt } = s);
    busybox = s.image("busybox");
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("gives a container its CDI device node, env, mount and hook (field and annotation)", async () => {
    const config = podConfig("cdi", { logDirectory: `${dir}/logs` });
    await Deno.mkdir(`${dir}/logs`, { recursive: true });
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const probe = "stat -c '%F %t:%T' /dev/foo; echo $CDI_FOO $VENDOR_SPEC; cat /etc/cdi-file";
    const variants = {
      field: { CDIDevices: [{ name: "vendor.com/device=foo" }] },
      annotation: { annotations: { "cdi.k8s.io/test": "vendor.com/device=foo" } },
    };
    for (const [name, extra] of Object.entries(variants)) {
      const { containerId } = await r(rt.createContainer.bind(rt), {
        podSandboxId,
        config: containerConfig(name, busybox, ["sleep", "1000"], extra),
        sandboxConfig: config,
      });
      await r(rt.startContainer.bind(rt), { containerId });
      const st = await r(rt.containerStatus.bind(rt), { containerId, verbose: false });
      expect(st.status!.state).toBe(ContainerState.CONTAINER_RUNNING);
      const out = await r(rt.execSync.bind(rt), {
        containerId,
        cmd: ["sh", "-c", probe],
        timeout: 10n,
      });
      expect({ name, exit: out.exitCode, out: new TextDecoder().decode(out.stdout) }).toEqual({
        name,
        exit: 0,
        out: "character special file 1:3\nbar 1\nfrom the host\n",
      });
      // The device is usable (the cgroup allows 1:3) and the mount is read-only.
      const rw = await r(rt.execSync.bind(rt), {
        containerId,
        cmd: ["sh", "-c", "echo x > /dev/foo && ! echo y 2>/dev/null > /etc/cdi-file"],
        timeout: 10n,
      });
      expect(rw.exitCode).toBe(0);
      await r(rt.removeContainer.bind(rt), { containerId });
    }
    // The createRuntime hook ran once per container, on the host.
    expect(await Deno.readTextFile(`${dir}/hook-ran`)).toBe("ran\nran\n");
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });

  it("refuses an unknown device with NOT_FOUND naming it, and records nothing", async () => {
    const config = podConfig("cdi-missing");
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const create = (extra: Parameters<typeof containerConfig>[3]) =>
      r(rt.createContainer.bind(rt), {
        podSandboxId,
        config: containerConfig("missing", busybox, ["sleep", "1000"], extra),
        sandboxConfig: config,
      });
    const e = await create({ CDIDevices: [{ name: "vendor.com/device=bar" }] }).catch((e) => e);
    expect(e.code).toBe(grpc.status.NOT_FOUND);
    expect(e.message).toContain('CDI device "vendor.com/device=bar"');
    expect(e.message).toContain(`${dir}/cdi-etc, ${dir}/cdi-run`);
    const bad = await create({ annotations: { "cdi.k8s.io/x": "not-qualified" } }).catch((e) => e);
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.message).toContain('"not-qualified"');
    const listed = await r(rt.listContainers.bind(rt), {
      filter: { id: "", state: undefined, podSandboxId, labelSelector: {} },
    });
    expect(listed.containers).toEqual([]);
    // The name is free: the same container without the device is created.
    const { containerId } = await create({});
    await r(rt.removeContainer.bind(rt), { containerId });
    await r(rt.removePodSandbox.bind(rt), { podSandboxId });
  });
});
