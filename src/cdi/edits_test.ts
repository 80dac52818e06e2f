import { describe, expect, it } from "../testing/bdd.ts";
import { isKind } from "../errdefs/errors.ts";
import { buildSpec } from "../runtime/spec/builder.ts";
import {
  cdiMountToUserMount,
  type DeviceStat,
  editsToInjection,
  hostDeviceStat,
  mergeMounts,
  resolveDeviceNode,
  splitDevT,
} from "./edits.ts";
import { CdiRegistry } from "./registry.ts";

const fakeStat: DeviceStat = (path) => {
  if (path === "/dev/null") return Promise.resolve({ type: "c", major: 1, minor: 3, mode: 0o666 });
  if (path === "/dev/sda") return Promise.resolve({ type: "b", major: 8, minor: 0, mode: 0o660 });
  return Promise.reject(new Error("No such file or directory"));
};

describe("CDI edits", () => {
  it("splits dev_t numbers", () => {
    expect(splitDevT(0x103)).toEqual({ major: 1, minor: 3 });
    expect(splitDevT((226 << 8) | 128)).toEqual({ major: 226, minor: 128 });
    // Large minors spill into the high bits.
    expect(splitDevT(0x12345 << 12 & 0xfff00000 | (0x45 & 0xff) | (10 << 8))).toEqual({
      major: 10,
      minor: 0x12345 & ~0xff | 0x45,
    });
  });

  it("stats /dev/null on the host", async () => {
    expect(await hostDeviceStat("/dev/null")).toEqual({
      type: "c",
      major: 1,
      minor: 3,
      mode: 0o666,
    });
    await expect(hostDeviceStat("/etc/hostname")).rejects.toThrow("not a device node");
  });

  it("fills a device node's type and numbers from its host path, keeps given ones", async () => {
    expect(await resolveDeviceNode({ path: "/dev/foo", hostPath: "/dev/null" }, "d", fakeStat))
      .toEqual({
        path: "/dev/foo",
        hostPath: "/dev/null",
        type: "c",
        major: 1,
        minor: 3,
        permissions: "rwm",
        fileMode: 0o666,
      });
    // No hostPath: the container path is looked up on the host.
    expect(await resolveDeviceNode({ path: "/dev/sda", permissions: "r" }, "d", fakeStat))
      .toEqual({
        path: "/dev/sda",
        hostPath: "/dev/sda",
        type: "b",
        major: 8,
        minor: 0,
        permissions: "r",
        fileMode: 0o660,
      });
    // Complete: no stat at all.
    const none: DeviceStat = () => Promise.reject(new Error("must not stat"));
    expect(
      await resolveDeviceNode(
        { path: "/dev/x", type: "c", major: 10, minor: 200, fileMode: 0o600, uid: 1, gid: 2 },
        "d",
        none,
      ),
    ).toEqual({
      path: "/dev/x",
      hostPath: "/dev/x",
      type: "c",
      major: 10,
      minor: 200,
      fileMode: 0o600,
      uid: 1,
      gid: 2,
      permissions: "rwm",
    });
  });

  it("refuses a missing host device or a type mismatch, naming the source", async () => {
    const e = await resolveDeviceNode({ path: "/dev/gone" }, 'CDI device "v.com/d=x"', fakeStat)
      .catch((e) => e);
    expect(isKind(e, "failed-precondition")).toBe(true);
    expect(e.message).toContain('CDI device "v.com/d=x": device node /dev/gone');
    const m = await resolveDeviceNode(
      { path: "/dev/foo", hostPath: "/dev/null", type: "b" },
      "s",
      fakeStat,
    )
      .catch((e) => e);
    expect(m.message).toContain("is of type b, but host device /dev/null is of type c");
  });

  it("turns mounts into builder mounts", () => {
    expect(cdiMountToUserMount({
      hostPath: "/h",
      containerPath: "/c",
      options: ["ro", "nosuid", "nodev", "bind", "rslave"],
    }, "s")).toEqual({
      destination: "/c",
      source: "/h",
      type: "bind",
      readonly: true,
      propagation: "rslave",
      options: ["nosuid", "nodev"],
    });
    expect(
      cdiMountToUserMount({
        hostPath: "tmpfs",
        containerPath: "/t",
        type: "tmpfs",
        options: ["size=1m"],
      }, "s"),
    )
      .toEqual({ destination: "/t", type: "tmpfs", options: ["size=1m"] });
    expect(() =>
      cdiMountToUserMount({ hostPath: "proc", containerPath: "/p", type: "proc" }, "src")
    )
      .toThrow('src: mount on /p is of type "proc"');
    expect(() => cdiMountToUserMount({ hostPath: "rel", containerPath: "/p" }, "src"))
      .toThrow("absolute hostPath");
  });

  it("applies groups in order: later nodes and mounts on one path replace, hooks add up", async () => {
    const inj = await editsToInjection([
      {
        source: "spec",
        edits: {
          env: ["A=1"],
          deviceNodes: [{ path: "/dev/foo", hostPath: "/dev/null" }],
          mounts: [{ hostPath: "/h1", containerPath: "/m" }],
          hooks: [{ hookName: "createContainer", path: "/bin/h1" }],
          additionalGids: [5],
        },
      },
      {
        source: "device",
        edits: {
          env: ["A=2", "B=1"],
          deviceNodes: [{ path: "/dev/foo/", hostPath: "/dev/sda" }, {
            path: "/dev/bar",
            hostPath: "/dev/null",
          }],
          mounts: [{ hostPath: "/h2", containerPath: "/m" }],
          hooks: [
            { hookName: "createContainer", path: "/bin/h2", args: ["h2", "x"], timeout: 3 },
            { hookName: "poststop", path: "/bin/h3", env: ["K=V"] },
          ],
          additionalGids: [5, 6],
        },
      },
    ], fakeStat);
    expect(inj.env).toEqual(["A=1", "A=2", "B=1"]);
    expect(inj.devices.map((d) => [d.path, d.type, d.major])).toEqual([
      ["/dev/foo/", "b", 8],
      ["/dev/bar", "c", 1],
    ]);
    expect(inj.mounts).toEqual([{ destination: "/m", source: "/h2", type: "bind" }]);
    expect(inj.hooks).toEqual({
      createContainer: [{ path: "/bin/h1" }, { path: "/bin/h2", args: ["h2", "x"], timeout: 3 }],
      poststop: [{ path: "/bin/h3", env: ["K=V"] }],
    });
    expect(inj.additionalGids).toEqual([5, 6]);
    expect((await editsToInjection([], fakeStat)).hooks).toBeUndefined();
  });

  it("merges CDI mounts over the container's on the same destination", () => {
    expect(mergeMounts(
      [{ destination: "/a", source: "/x" }, { destination: "/b", source: "/y" }],
      [{ destination: "/a/", source: "/z" }],
    )).toEqual([{ destination: "/b", source: "/y" }, { destination: "/a/", source: "/z" }]);
  });

  it("gives the spec builder devices, cgroup rules, mounts, env and hooks", async () => {
    const reg = CdiRegistry.fromSources(["/etc/cdi"], [{
      path: "/etc/cdi/vendor.yaml",
      dirIndex: 0,
      text: `cdiVersion: 0.6.0
kind: vendor.com/device
containerEdits:
  env: [VENDOR=1]
devices:
  - name: foo
    containerEdits:
      env: [FOO=bar]
      deviceNodes:
        - path: /dev/foo
          hostPath: /dev/null
          permissions: rw
      mounts:
        - hostPath: /srv/file
          containerPath: /etc/file
          options: [ro, bind]
      hooks:
        - hookName: createContainer
          path: /usr/bin/vendor-hook
          args: [vendor-hook, setup]
`,
    }]);
    const inj = await editsToInjection(reg.resolve(["vendor.com/device=foo"]), fakeStat);
    const spec = buildSpec({
      id: "c1",
      rootfs: { path: "rootfs" },
      image: { Cmd: ["sh"] },
      env: inj.env.map((e) => ({ key: e.split("=")[0], value: e.slice(e.indexOf("=") + 1) })),
      devices: inj.devices,
      mounts: inj.mounts,
      hooks: inj.hooks,
    });
    expect(spec.linux!.devices).toEqual([
      { path: "/dev/foo", type: "c", major: 1, minor: 3, fileMode: 0o666 },
    ]);
    expect(spec.linux!.resources!.devices!.at(-1)).toEqual({
      allow: true,
      type: "c",
      major: 1,
      minor: 3,
      access: "rw",
    });
    expect(spec.mounts!.at(-1)).toEqual({
      destination: "/etc/file",
      type: "bind",
      source: "/srv/file",
      options: ["rbind", "rprivate", "ro"],
    });
    expect(spec.process!.env).toEqual(expect.arrayContaining(["VENDOR=1", "FOO=bar"]));
    expect(spec.hooks).toEqual({
      createContainer: [{ path: "/usr/bin/vendor-hook", args: ["vendor-hook", "setup"] }],
    });
  });
});
