/**
 * SandboxService's pod /dev/shm (root only): a private tmpfs with the options containers rely
 * on, gone after unmount, and an unmount that may be repeated. And the pod network's
 * readiness (the CRI NetworkReady condition) as the service reports it.
 */
import {
  afterEach,
  beforeEach,
  describe,
  expect,
  isRoot,
  it,
  ROOT_REASON,
} from "../../testing/bdd.ts";
import { SandboxService } from "./service.ts";

function mountOf(path: string): { fsType: string; options: string } | undefined {
  for (const l of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const f = l.split(" ");
    if (f[4] !== path) continue;
    const rest = f.slice(f.indexOf("-") + 1);
    return { fsType: rest[0], options: `${f[5]},${rest[2]}` };
  }
  return undefined;
}

describe.skipIf(!isRoot, ROOT_REASON)("SandboxService: pod /dev/shm", () => {
  let dir: string;
  const svc = new SandboxService();
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-sandboxes-" });
  });
  afterEach(async () => {
    svc.unmountShm(`${dir}/shm`);
    await Deno.remove(dir, { recursive: true });
  });

  it("mounts a 64 MiB nosuid,nodev,noexec tmpfs, mode 1777, and unmounts it (twice is fine)", async () => {
    await svc.mountShm(`${dir}/shm`);
    const m = mountOf(`${dir}/shm`);
    expect(m?.fsType).toBe("tmpfs");
    for (const o of ["nosuid", "nodev", "noexec", "size=65536k"]) {
      expect(m?.options.split(",")).toContain(o);
    }
    expect(Deno.statSync(`${dir}/shm`).mode! & 0o7777).toBe(0o1777);
    svc.unmountShm(`${dir}/shm`);
    expect(mountOf(`${dir}/shm`)).toBeUndefined();
    svc.unmountShm(`${dir}/shm`);
    svc.unmountShm(`${dir}/never-there`);
  });

  it("refuses a path that exists already (a pod's shm is made once)", async () => {
    await Deno.mkdir(`${dir}/shm`);
    await expect(svc.mountShm(`${dir}/shm`)).rejects.toThrow(Deno.errors.AlreadyExists);
    expect(mountOf(`${dir}/shm`)).toBeUndefined();
  });
});

describe("SandboxService: pod network readiness", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await Deno.makeTempDir({ prefix: "k8sc-sandboxes-net-" });
    await Deno.mkdir(`${dir}/net.d`);
    await Deno.mkdir(`${dir}/bin`);
  });
  afterEach(async () => {
    await Deno.remove(dir, { recursive: true });
  });
  const service = () =>
    new SandboxService({
      network: { confDir: `${dir}/net.d`, binDirs: [`${dir}/bin`], cacheDir: `${dir}/cache` },
    });

  it("is not ready without a CNI config, naming the directory", async () => {
    const s = await service().networkStatus();
    expect(s.ready).toBe(false);
    expect(s.reason).toBe("NetworkPluginNotReady");
    expect(s.message).toContain(`${dir}/net.d`);
  });

  it("is not ready while a plugin the config names is missing, and ready once it is there", async () => {
    await Deno.writeTextFile(
      `${dir}/net.d/10-t.conflist`,
      JSON.stringify({ cniVersion: "1.0.0", name: "t", plugins: [{ type: "t-plugin" }] }),
    );
    const svc = service();
    const missing = await svc.networkStatus();
    expect(missing.ready).toBe(false);
    expect(missing.message).toContain(`CNI plugin "t-plugin"`);
    await Deno.writeTextFile(`${dir}/bin/t-plugin`, "#!/bin/sh\n", { mode: 0o755 });
    expect(await svc.networkStatus()).toEqual({ ready: true });
  });
});
