/**
 * AppArmor through the CRI, as the kubelet asks for it (the structured `apparmor` field and the
 * deprecated `apparmor_profile` string).
 *
 * On a host without AppArmor (this project's build machines): RuntimeDefault, unset and
 * Unconfined containers run with no profile, and a Localhost profile — for a container or a
 * sandbox — is FAILED_PRECONDITION naming it and saying AppArmor is off, leaving nothing listed.
 *
 * On a host with AppArmor (the VM guest, booted with `apparmor=1 security=apparmor`): inside the
 * container /proc/self/attr/current reads `k8scontainerd-default (enforce)` for RuntimeDefault
 * and unset, `unconfined` for Unconfined and for a privileged container, and the name of a
 * profile this test loads for Localhost, which is enforced (it denies writes under /tmp); a
 * Localhost profile that is not loaded is refused naming it.
 *
 * `K8SC_E2E_APPARMOR=required` (the VM guest sets it) fails instead of skipping the enabled-host
 * checks when AppArmor is off.
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
  ContainerState,
  type DeepPartial,
  type LinuxContainerSecurityContext,
  type LinuxSandboxSecurityContext,
  SecurityProfile_ProfileType as T,
} from "../src/gen/runtime/v1/api.ts";
import { call } from "../src/grpc/clients.ts";
import { DEFAULT_PROFILE, SystemAppArmor } from "../src/runtime/apparmor.ts";
import { startTestDaemon, type TestDaemon } from "./harness.ts";
import { containerConfig, podConfig } from "./cri_requests.ts";
import { cleanUpAfterDaemon, pullCriImage, writeCniConf, writeCriConfig } from "./cri_env.ts";
import { RuntimeServiceClient } from "../src/grpc/clients.ts";

const bridge = "k8sapp1";
/** The Localhost profile the enabled-host checks load (and unload afterwards). */
const TEST_PROFILE = "k8sc-e2e-deny-tmp";

const enabled = new SystemAppArmor().enabled();
const required = Deno.env.get("K8SC_E2E_APPARMOR") === "required";
const OFF_REASON =
  "AppArmor is off on this host (/sys/module/apparmor/parameters/enabled is not Y or " +
  "securityfs lacks apparmor/); the VM suite's guest runs these checks";

describe.skipIf(!isRoot, ROOT_REASON)("cri apparmor", () => {
  let registry: Registry;
  let d: TestDaemon;
  let dir: string;
  let rt: RuntimeServiceClient;
  let busybox: string;
  let loadedTestProfile = false;
  const r = <Req, Res>(fn: Parameters<typeof call<Req, Res>>[2], req: Req) =>
    call<Req, Res>(d.socket, "k8s.io", fn, req, 60_000);

  beforeAll(async () => {
    registry = await startRegistry();
    await pushFixtures(registry.address, ["busybox", "pause"]);
    busybox = `${registry.address}/busybox:latest`;
    dir = await Deno.makeTempDir({ prefix: "k8sc-cri-apparmor-" });
    await writeCniConf(dir, { name: "apparmor", bridge, subnet: "10.223.80.0/24" });
    // Where systemd is PID 1 (the VM guest), its cgroup driver, as a node there would use.
    const systemd = await Deno.stat("/run/systemd/system").then(() => true, () => false);
    const configToml = await writeCriConfig(dir, {
      sandboxImage: `${registry.address}/pause:latest`,
      extraCri: systemd ? `cgroup_driver = "systemd"\n` : "",
    });
    d = await startTestDaemon({ args: ["--config", configToml] });
    rt = new RuntimeServiceClient(`unix://${d.socket}`, grpc.credentials.createInsecure());
    await pullCriImage(d.socket, busybox);
  });
  afterAll(async () => {
    rt?.close();
    await cleanUpAfterDaemon(d, bridge);
    await registry?.stop();
    if (loadedTestProfile) {
      await new Deno.Command("apparmor_parser", { args: ["-R", `${dir}/${TEST_PROFILE}`] })
        .output().catch(() => {});
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });

  /** Runs a pod and one container per security context; returns the containers' ids. */
  async function podWith(
    name: string,
    contexts: Record<string, DeepPartial<LinuxContainerSecurityContext>>,
    sandbox: DeepPartial<LinuxSandboxSecurityContext> = {},
  ): Promise<{ podSandboxId: string; ids: Record<string, string> }> {
    const config = podConfig(name, { linux: { securityContext: sandbox } });
    const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
    const ids: Record<string, string> = {};
    for (const [c, securityContext] of Object.entries(contexts)) {
      const { containerId } = await r(rt.createContainer.bind(rt), {
        podSandboxId,
        config: containerConfig(c, busybox, ["sleep", "1000"], { linux: { securityContext } }),
        sandboxConfig: config,
      });
      await r(rt.startContainer.bind(rt), { containerId });
      const st = await r(rt.containerStatus.bind(rt), { containerId, verbose: false });
      expect({ c, state: st.status!.state }).toEqual({
        c,
        state: ContainerState.CONTAINER_RUNNING,
      });
      ids[c] = containerId;
    }
    return { podSandboxId, ids };
  }

  async function exec(containerId: string, script: string) {
    const out = await r(rt.execSync.bind(rt), {
      containerId,
      cmd: ["sh", "-c", script],
      timeout: 10n,
    });
    const dec = new TextDecoder();
    return { exit: out.exitCode, out: dec.decode(out.stdout).trim(), err: dec.decode(out.stderr) };
  }

  /** The OCI spec the daemon gave runc for a container (its copy in the state directory). */
  async function runtimeSpec(id: string): Promise<{ process?: { apparmorProfile?: string } }> {
    const found = await new Deno.Command("find", {
      args: [d.state, "-path", `*/${id}/config.json`],
      stdout: "piped",
    }).output();
    const path = new TextDecoder().decode(found.stdout).trim().split("\n")[0];
    if (!path) throw new Error(`no config.json for container ${id} under ${d.state}`);
    return JSON.parse(await Deno.readTextFile(path));
  }

  /** The AppArmor label of a pod's pause process, read on the host. */
  async function pauseLabel(podSandboxId: string): Promise<string> {
    const st = await r(rt.podSandboxStatus.bind(rt), { podSandboxId, verbose: true });
    const { pid } = JSON.parse(st.info.info);
    return (await Deno.readTextFile(`/proc/${pid}/attr/current`)).trim();
  }

  async function listed(podSandboxId: string) {
    return (await r(rt.listContainers.bind(rt), {
      filter: { id: "", state: undefined, podSandboxId, labelSelector: {} },
    })).containers;
  }

  const profiles = {
    runtimeDefault: { apparmor: { profileType: T.RuntimeDefault } },
    deprecatedDefault: { apparmorProfile: "runtime/default" },
    unset: {},
    unconfined: { apparmor: { profileType: T.Unconfined } },
    deprecatedUnconfined: { apparmorProfile: "unconfined" },
    privileged: { privileged: true },
  };

  it.skipIf(enabled, "AppArmor is on here: the enabled-host checks below run instead")(
    "host without AppArmor: RuntimeDefault, unset and Unconfined containers run unconfined",
    async () => {
      // The sandbox asks for RuntimeDefault too: it runs, without a profile.
      const { podSandboxId, ids } = await podWith("aa-off", profiles, {
        apparmor: { profileType: T.RuntimeDefault },
      });
      for (const [c, id] of Object.entries(ids)) {
        // The spec names no profile (runc would refuse one on this kernel) …
        expect({ c, profile: (await runtimeSpec(id)).process?.apparmorProfile }).toEqual({ c });
        // … and the process carries no AppArmor label.
        const res = await exec(id, "cat /proc/self/attr/current 2>/dev/null || echo none");
        expect({ c, exit: res.exit }).toEqual({ c, exit: 0 });
        expect(res.out).not.toContain(DEFAULT_PROFILE);
      }
      await r(rt.removePodSandbox.bind(rt), { podSandboxId });
    },
  );

  it.skipIf(enabled, "AppArmor is on here: a loaded profile is tested below instead")(
    "host without AppArmor: a Localhost profile is FAILED_PRECONDITION naming it, nothing listed",
    async () => {
      const config = podConfig("aa-off-localhost");
      const { podSandboxId } = await r(rt.runPodSandbox.bind(rt), { config, runtimeHandler: "" });
      const create = (securityContext: DeepPartial<LinuxContainerSecurityContext>) =>
        r(rt.createContainer.bind(rt), {
          podSandboxId,
          config: containerConfig("local", busybox, ["sleep", "1000"], {
            linux: { securityContext },
          }),
          sandboxConfig: config,
        });
      for (
        const sc of [
          { apparmor: { profileType: T.Localhost, localhostRef: "k8s-apparmor-example" } },
          { apparmorProfile: "localhost/k8s-apparmor-example" },
        ]
      ) {
        const e = await create(sc).then(() => undefined, (e) => e);
        expect(e?.code).toBe(grpc.status.FAILED_PRECONDITION);
        expect(e.message).toContain('AppArmor profile "localhost/k8s-apparmor-example"');
        expect(e.message).toContain("AppArmor is not enabled on this host");
      }
      expect(await listed(podSandboxId)).toEqual([]);
      // The name is free again: the same container without the profile is created.
      const { containerId } = await create({});
      await r(rt.removeContainer.bind(rt), { containerId });
      await r(rt.removePodSandbox.bind(rt), { podSandboxId });
      // A sandbox asking for one is refused the same way, and leaves no pod behind.
      const pod = podConfig("aa-off-pod", {
        linux: {
          securityContext: {
            apparmor: { profileType: T.Localhost, localhostRef: "k8s-apparmor-example" },
          },
        },
      });
      const e = await r(rt.runPodSandbox.bind(rt), { config: pod, runtimeHandler: "" })
        .then(() => undefined, (e) => e);
      expect(e?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(e.message).toContain("AppArmor is not enabled on this host");
      const pods = await r(rt.listPodSandbox.bind(rt), { filter: undefined });
      expect(pods.items.filter((p) => p.metadata?.name === "aa-off-pod")).toEqual([]);
    },
  );

  it.skipIf(!enabled && !required, OFF_REASON)(
    "host with AppArmor: RuntimeDefault and unset get k8scontainerd-default, Unconfined and privileged none",
    async () => {
      expect({ enabled, required }).toMatchObject({ enabled: true });
      const { podSandboxId, ids } = await podWith("aa-on", profiles);
      // A sandbox that asks for nothing runs its pause process unconfined (as containerd) …
      expect(await pauseLabel(podSandboxId)).toBe("unconfined");
      const want: Record<string, string> = {
        runtimeDefault: `${DEFAULT_PROFILE} (enforce)`,
        deprecatedDefault: `${DEFAULT_PROFILE} (enforce)`,
        unset: `${DEFAULT_PROFILE} (enforce)`,
        unconfined: "unconfined",
        deprecatedUnconfined: "unconfined",
        privileged: "unconfined",
      };
      for (const [c, id] of Object.entries(ids)) {
        const res = await exec(id, "cat /proc/self/attr/current");
        expect({ c, exit: res.exit, out: res.out }).toEqual({ c, exit: 0, out: want[c] });
        expect({ c, profile: (await runtimeSpec(id)).process?.apparmorProfile }).toEqual({
          c,
          profile: want[c] === "unconfined" ? undefined : DEFAULT_PROFILE,
        });
      }
      // The daemon loaded its profile, in enforce mode.
      const loaded = await Deno.readTextFile("/sys/kernel/security/apparmor/profiles");
      expect(loaded).toContain(`${DEFAULT_PROFILE} (enforce)\n`);
      await r(rt.removePodSandbox.bind(rt), { podSandboxId });
      // The profile is enforced: with CAP_SYS_ADMIN the seccomp filter allows mount(2), and
      // only AppArmor's "deny mount" stops it; unconfined, the same mount works.
      const admin = { capabilities: { addCapabilities: ["SYS_ADMIN"] } };
      const mounts = await podWith("aa-on-mount", {
        confined: { ...admin, apparmor: { profileType: T.RuntimeDefault } },
        free: { ...admin, apparmor: { profileType: T.Unconfined } },
      }, { apparmor: { profileType: T.RuntimeDefault } });
      // … and one that asks for RuntimeDefault runs it under the default profile.
      expect(await pauseLabel(mounts.podSandboxId)).toBe(`${DEFAULT_PROFILE} (enforce)`);
      const mnt = "mkdir -p /m && mount -t tmpfs none /m && echo mounted || echo refused";
      expect((await exec(mounts.ids.confined, mnt)).out).toBe("refused");
      expect((await exec(mounts.ids.free, mnt)).out).toBe("mounted");
      await r(rt.removePodSandbox.bind(rt), { podSandboxId: mounts.podSandboxId });
    },
  );

  it.skipIf(!enabled && !required, OFF_REASON)(
    "host with AppArmor: a loaded Localhost profile applies by name; one not loaded is refused",
    async () => {
      expect({ enabled, required }).toMatchObject({ enabled: true });
      // Everything allowed but writes under /tmp: enforced, and visible from inside.
      await Deno.writeTextFile(
        `${dir}/${TEST_PROFILE}`,
        `#include <tunables/global>\nprofile ${TEST_PROFILE} flags=(attach_disconnected) {\n` +
          `  #include <abstractions/base>\n  file,\n  network,\n  capability,\n` +
          `  signal,\n  deny /tmp/** w,\n}\n`,
      );
      const load = await new Deno.Command("apparmor_parser", {
        args: ["-Kr", `${dir}/${TEST_PROFILE}`],
        stderr: "piped",
      }).output();
      expect({ ok: load.success, err: new TextDecoder().decode(load.stderr) }).toMatchObject({
        ok: true,
      });
      loadedTestProfile = true;
      const { podSandboxId, ids } = await podWith("aa-local", {
        field: { apparmor: { profileType: T.Localhost, localhostRef: TEST_PROFILE } },
        deprecated: { apparmorProfile: `localhost/${TEST_PROFILE}` },
      });
      for (const [c, id] of Object.entries(ids)) {
        const res = await exec(id, "cat /proc/self/attr/current; touch /tmp/x || echo denied");
        expect({ c, out: res.out }).toEqual({ c, out: `${TEST_PROFILE} (enforce)\ndenied` });
      }
      const e = await r(rt.createContainer.bind(rt), {
        podSandboxId,
        config: containerConfig("absent", busybox, ["sleep", "1000"], {
          linux: {
            securityContext: {
              apparmor: { profileType: T.Localhost, localhostRef: "k8sc-e2e-absent" },
            },
          },
        }),
        sandboxConfig: podConfig("aa-local"),
      }).then(() => undefined, (e) => e);
      expect(e?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(e.message).toContain('AppArmor profile "k8sc-e2e-absent" is not loaded on this host');
      expect((await listed(podSandboxId)).length).toBe(2);
      await r(rt.removePodSandbox.bind(rt), { podSandboxId });
    },
  );
});
