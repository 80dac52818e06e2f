import { afterAll, beforeAll, describe, expect, isRoot, it, ROOT_REASON } from "../testing/bdd.ts";
import { errorKind } from "../errdefs/errors.ts";
import { buildSpec } from "../runtime/spec/builder.ts";
import { criDevices, devicePermissions, devicesUnder, mergeDevices } from "./devices.ts";

async function failure(
  p: Promise<unknown>,
): Promise<{ kind: string; message: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return { kind: errorKind(e), message: (e as Error).message };
  }
}

const dev = (containerPath: string, hostPath: string, permissions = "rwm") => ({
  containerPath,
  hostPath,
  permissions,
});

describe("CRI devices", () => {
  it("takes permissions made of r, w and m, once each, in any order", () => {
    for (const p of ["r", "w", "m", "rw", "mrw", "rwm", "wm"]) {
      expect(devicePermissions(p, "devices[0].permissions")).toBe(p);
    }
    expect(devicePermissions("", "devices[0].permissions")).toBe("rwm");
    for (const p of ["x", "rwx", "rr", "RW", "rwmr", " r"]) {
      expect(() => devicePermissions(p, "devices[2].permissions")).toThrow(
        `devices[2].permissions must be a combination of r, w and m: got ${JSON.stringify(p)}`,
      );
    }
  });

  it("resolves a host device at its container path with the host's numbers and mode", async () => {
    const [d] = await criDevices([dev("/dev/mynull", "/dev/null", "rw")], false);
    // The owner as this process sees /dev/null (under qemu-user, the sysroot's copy).
    const host = await Deno.stat("/dev/null");
    expect(d).toEqual({
      path: "/dev/mynull",
      hostPath: "/dev/null",
      type: "c",
      major: 1,
      minor: 3,
      fileMode: 0o666,
      uid: host.uid,
      gid: host.gid,
      permissions: "rw",
    });
    // No container path: the host's.
    expect((await criDevices([dev("", "/dev/zero")], false))[0].path).toBe("/dev/zero");
    // The builder creates the node and allows it with the permissions asked for.
    const spec = buildSpec({ id: "c", rootfs: { path: "rootfs" }, args: ["sh"], devices: [d] });
    expect(spec.linux?.devices).toEqual([
      {
        path: "/dev/mynull",
        type: "c",
        major: 1,
        minor: 3,
        fileMode: 0o666,
        uid: host.uid,
        gid: host.gid,
      },
    ]);
    expect(spec.linux?.resources?.devices?.at(-1)).toEqual({
      allow: true,
      type: "c",
      major: 1,
      minor: 3,
      access: "rw",
    });
  });

  it("refuses a missing host device (not found), a non-device and relative paths, naming the field", async () => {
    expect(
      await failure(
        criDevices([dev("/dev/a", "/dev/null"), dev("/dev/b", "/dev/k8sc-nope")], false),
      ),
    )
      .toEqual({
        kind: "not-found",
        message: expect.stringContaining(
          "devices[1].host_path: host device /dev/k8sc-nope does not exist",
        ),
      });
    const notDev = await failure(criDevices([dev("/dev/a", "/etc/hostname")], false));
    expect(notDev?.kind).toBe("invalid-argument");
    expect(notDev?.message).toContain("devices[0].host_path: /etc/hostname is not a device node");
    expect((await failure(criDevices([dev("dev/a", "/dev/null")], false)))?.message)
      .toContain("devices[0].container_path must be an absolute path");
    expect((await failure(criDevices([dev("/dev/a", "null")], false)))?.message)
      .toContain("devices[0].host_path must be an absolute path");
    expect((await failure(criDevices([dev("/dev/a", "/dev/null", "rwx")], false)))?.kind)
      .toBe("invalid-argument");
  });

  it("lets a later device, and CDI's, replace one on the same container path", async () => {
    const list = await criDevices(
      [dev("/dev/x", "/dev/null"), dev("/dev/x/", "/dev/zero", "r")],
      false,
    );
    expect(list.map((d) => [d.path, d.minor, d.permissions])).toEqual([["/dev/x/", 5, "r"]]);
    const cdi = [{ path: "/dev/x", type: "c" as const, major: 1, minor: 7 }];
    expect(mergeDevices(list, cdi)).toEqual(cdi);
    expect(mergeDevices(list, [])).toEqual(list);
  });
});

describe.skipIf(!isRoot, ROOT_REASON)("CRI device directories", () => {
  let dir: string;
  const mknod = (path: string, type: string, major: number, minor: number) =>
    new Deno.Command("mknod", { args: ["-m", "0640", path, type, `${major}`, `${minor}`] })
      .output();
  beforeAll(async () => {
    // A fake /dev: nodes, a nested directory, and what containerd skips.
    dir = await Deno.makeTempDir({ prefix: "k8sc-devdir-" });
    await Deno.mkdir(`${dir}/snd`);
    await Deno.mkdir(`${dir}/pts`);
    await mknod(`${dir}/null`, "c", 1, 3);
    await mknod(`${dir}/snd/pcm`, "c", 116, 2);
    await mknod(`${dir}/sda`, "b", 8, 0);
    await mknod(`${dir}/pts/0`, "c", 136, 0);
    await mknod(`${dir}/console`, "c", 5, 1);
    await Deno.symlink("null", `${dir}/link`);
    await Deno.writeTextFile(`${dir}/regular`, "");
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  it("takes every device node under a directory, at the same relative path", async () => {
    const got = await devicesUnder(dir, "/dev/host", "rw");
    expect(got.map((d) => [d.path, d.type, d.major, d.minor, d.fileMode, d.permissions])).toEqual([
      ["/dev/host/null", "c", 1, 3, 0o640, "rw"],
      ["/dev/host/sda", "b", 8, 0, 0o640, "rw"],
      ["/dev/host/snd/pcm", "c", 116, 2, 0o640, "rw"],
    ]);
    // The same through a CRI device whose host path is the directory.
    const cri = await criDevices([dev("/dev/host", dir, "rw")], false);
    expect(cri).toEqual(got);
  });

  it("gives a privileged container every host device, its own devices winning", async () => {
    const got = await criDevices([dev("/dev/null", "/dev/zero", "r")], true, dir);
    expect(got.map((d) => [d.path, d.minor, d.permissions])).toEqual([
      ["/dev/sda", 0, "rwm"],
      ["/dev/snd/pcm", 2, "rwm"],
      ["/dev/null", 5, "r"],
    ]);
  });
});
