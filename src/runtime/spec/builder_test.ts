import { describe, expect, it } from "../../testing/bdd.ts";
import { isKind } from "../../errdefs/errors.ts";
import {
  buildSpec,
  clampOomScoreAdj,
  cleanPath,
  DEFAULT_DEVICE_RULES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH,
  DEFAULT_READONLY_PATHS,
  type SpecOptions,
} from "./builder.ts";
import {
  ALL_CAPABILITIES,
  applyCapabilityChanges,
  capabilitiesFromMask,
  DEFAULT_CAPABILITIES,
} from "./capabilities.ts";

const PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
const GROUP = "root:x:0:\napp:x:1000:\nextra:x:2000:app\n";

function opts(extra: Partial<SpecOptions> = {}): SpecOptions {
  return {
    id: "c1",
    rootfs: { path: "rootfs" },
    image: { Cmd: ["sh"] },
    passwd: PASSWD,
    group: GROUP,
    ...extra,
  };
}

function err(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

function invalidMessage(extra: Partial<SpecOptions>): string {
  const e = err(() => buildSpec(opts(extra)));
  expect(isKind(e, "invalid-argument")).toBe(true);
  return e.message;
}

describe("buildSpec: process", () => {
  describe("args (CRI command/args over image Entrypoint/Cmd)", () => {
    const image = { Entrypoint: ["/entry"], Cmd: ["--cmd"] };
    const cases: [string, Partial<SpecOptions>, string[]][] = [
      ["image only: Entrypoint + Cmd", {}, ["/entry", "--cmd"]],
      ["command replaces Entrypoint and drops Cmd", { command: ["/bin/cmd"] }, ["/bin/cmd"]],
      ["command + args", { command: ["/bin/cmd"], args: ["a", "b"] }, ["/bin/cmd", "a", "b"]],
      ["args alone replace Cmd", { args: ["x"] }, ["/entry", "x"]],
      ["empty lists count as not given", { command: [], args: [] }, ["/entry", "--cmd"]],
    ];
    for (const [name, extra, want] of cases) {
      it(name, () => expect(buildSpec(opts({ image, ...extra })).process!.args).toEqual(want));
    }
    it("Cmd without Entrypoint, and null fields from the image config", () => {
      expect(buildSpec(opts({ image: { Entrypoint: null, Cmd: ["sh", "-c", "x"] } })).process!.args)
        .toEqual(["sh", "-c", "x"]);
      expect(
        buildSpec(opts({ image: { Entrypoint: ["/e"], Cmd: null }, args: ["1"] })).process!.args,
      )
        .toEqual(["/e", "1"]);
    });
    it("nothing to run is an error", () => {
      expect(invalidMessage({ image: {} })).toContain("no command specified");
      expect(invalidMessage({ image: undefined, command: [""] })).toContain("empty");
    });
  });

  describe("env", () => {
    it("image env then overrides, same key replaced in place, PATH and HOME filled in", () => {
      const spec = buildSpec(opts({
        image: { Cmd: ["sh"], Env: ["A=1", "B=2"], User: "app" },
        env: [{ key: "B", value: "3" }, { key: "C", value: "x=y" }],
      }));
      expect(spec.process!.env).toEqual([
        "A=1",
        "B=3",
        "C=x=y",
        `PATH=${DEFAULT_PATH}`,
        "HOME=/home/app",
      ]);
    });
    it("keeps the image PATH and an explicit HOME", () => {
      const env = buildSpec(opts({
        image: { Cmd: ["sh"], Env: ["PATH=/opt/bin"] },
        env: [{ key: "HOME", value: "/data" }],
      })).process!.env;
      expect(env).toEqual(["PATH=/opt/bin", "HOME=/data"]);
    });
    it("HOSTNAME comes from the hostname and can be overridden", () => {
      expect(buildSpec(opts({ hostname: "web-0" })).process!.env![0]).toBe("HOSTNAME=web-0");
      expect(
        buildSpec(opts({ hostname: "web-0", env: [{ key: "HOSTNAME", value: "x" }] })).process!
          .env![0],
      ).toBe("HOSTNAME=x");
    });
    it("HOME of a uid without passwd entry is /", () => {
      expect(buildSpec(opts({ user: "4242" })).process!.env).toContain("HOME=/");
    });
    it("rejects bad keys", () => {
      expect(invalidMessage({ env: [{ key: "A=B", value: "1" }] })).toContain("env[0].key");
      expect(invalidMessage({ env: [{ key: "", value: "1" }] })).toContain("env[0].key");
    });
  });

  describe("user and cwd", () => {
    it("the image User is resolved against passwd/group, with supplementary groups", () => {
      const p = buildSpec(opts({ image: { Cmd: ["id"], User: "app" } })).process!;
      expect(p.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
    });
    it("the override wins over the image User; CRI supplemental groups are appended", () => {
      const p = buildSpec(opts({
        image: { Cmd: ["id"], User: "app" },
        user: { uid: 0 },
        supplementalGroups: [3000],
      })).process!;
      expect(p.user).toEqual({ uid: 0, gid: 0, additionalGids: [0, 3000] });
    });
    it("a missing user name fails", () => {
      expect(invalidMessage({ user: "ghost" })).toBe(
        "unable to find user ghost: no matching entries in passwd file",
      );
    });
    it("cwd: override, image WorkingDir, then /", () => {
      expect(buildSpec(opts()).process!.cwd).toBe("/");
      expect(buildSpec(opts({ image: { Cmd: ["sh"], WorkingDir: "/srv" } })).process!.cwd).toBe(
        "/srv",
      );
      expect(
        buildSpec(opts({ image: { Cmd: ["sh"], WorkingDir: "/srv" }, workingDir: "/tmp" }))
          .process!.cwd,
      ).toBe("/tmp");
      expect(invalidMessage({ workingDir: "rel" })).toContain("workingDir must be absolute");
    });
    it("terminal, noNewPrivileges, apparmor and selinux only when asked", () => {
      const plain = buildSpec(opts()).process!;
      expect(plain.terminal).toBe(false);
      expect(plain.noNewPrivileges).toBe(false);
      expect(plain.apparmorProfile).toBeUndefined();
      expect(plain.selinuxLabel).toBeUndefined();
      const s = buildSpec(opts({
        terminal: true,
        noNewPrivileges: true,
        apparmorProfile: "cri-containerd.apparmor.d",
        selinuxLabel: "system_u:system_r:container_t:s0:c1,c2",
        mountLabel: "system_u:object_r:container_file_t:s0:c1,c2",
      }));
      expect(s.process!.terminal).toBe(true);
      expect(s.process!.noNewPrivileges).toBe(true);
      expect(s.process!.apparmorProfile).toBe("cri-containerd.apparmor.d");
      expect(s.process!.selinuxLabel).toContain("container_t");
      expect(s.linux!.mountLabel).toContain("container_file_t");
    });
  });

  describe("rlimits", () => {
    it("default RLIMIT_NOFILE 1024:524288, lowered to a ceiling", () => {
      expect(buildSpec(opts()).process!.rlimits).toEqual([
        { type: "RLIMIT_NOFILE", soft: 1024, hard: 524288 },
      ]);
      expect(buildSpec(opts({ rlimitCeiling: { RLIMIT_NOFILE: 20000 } })).process!.rlimits)
        .toEqual([{ type: "RLIMIT_NOFILE", soft: 1024, hard: 20000 }]);
      expect(buildSpec(opts({ rlimits: [] })).process!.rlimits).toEqual([]);
    });
    it("validates", () => {
      expect(invalidMessage({ rlimits: [{ type: "NOFILE", soft: 1, hard: 1 }] })).toContain(
        "rlimits[0].type",
      );
      expect(invalidMessage({ rlimits: [{ type: "RLIMIT_CORE", soft: 2, hard: 1 }] })).toContain(
        "soft (2) must be <= hard (1)",
      );
    });
  });

  describe("oom_score_adj", () => {
    it("clampOomScoreAdj raises to the daemon's value and says so", () => {
      expect(clampOomScoreAdj(-999, 0)).toEqual({ value: 0, clamped: true });
      expect(clampOomScoreAdj(-999, -999)).toEqual({ value: -999, clamped: false });
      expect(clampOomScoreAdj(500, -100)).toEqual({ value: 500, clamped: false });
    });
    it("buildSpec applies the floor when given", () => {
      expect(buildSpec(opts({ oomScoreAdj: -999 })).process!.oomScoreAdj).toBe(-999);
      expect(buildSpec(opts({ oomScoreAdj: -999, oomScoreAdjFloor: -500 })).process!.oomScoreAdj)
        .toBe(-500);
      expect(buildSpec(opts()).process!.oomScoreAdj).toBeUndefined();
      expect(invalidMessage({ oomScoreAdj: 1001 })).toContain("oomScoreAdj");
    });
  });
});

describe("capabilities", () => {
  it("default set, sorted by bit", () => {
    const caps = buildSpec(opts()).process!.capabilities!;
    expect(new Set(caps.bounding)).toEqual(new Set(DEFAULT_CAPABILITIES));
    expect(caps.bounding![0]).toBe("CAP_CHOWN");
    expect(caps.effective).toEqual(caps.bounding);
    expect(caps.permitted).toEqual(caps.bounding);
    expect(caps.inheritable).toBeUndefined(); // CVE-2022-24769: never inheritable
    expect(caps.ambient).toBeUndefined();
  });
  it("add/drop accept CAP_X, X and lower case", () => {
    const caps = buildSpec(opts({
      capabilities: { add: ["NET_ADMIN", "cap_sys_time"], drop: ["CAP_KILL", "chown"] },
    })).process!.capabilities!.bounding!;
    expect(caps).toContain("CAP_NET_ADMIN");
    expect(caps).toContain("CAP_SYS_TIME");
    expect(caps).not.toContain("CAP_KILL");
    expect(caps).not.toContain("CAP_CHOWN");
  });
  it("ALL: add ALL then drop one; drop ALL then add one; drop wins over add", () => {
    expect(applyCapabilityChanges(DEFAULT_CAPABILITIES, { add: ["ALL"], drop: ["CHOWN"] }))
      .toEqual(ALL_CAPABILITIES.filter((c) => c !== "CAP_CHOWN"));
    expect(applyCapabilityChanges(DEFAULT_CAPABILITIES, { drop: ["ALL"], add: ["KILL"] }))
      .toEqual(["CAP_KILL"]);
    expect(
      applyCapabilityChanges(DEFAULT_CAPABILITIES, { add: ["NET_ADMIN"], drop: ["NET_ADMIN"] }),
    )
      .not.toContain("CAP_NET_ADMIN");
  });
  it("unknown names are invalid, naming the field", () => {
    expect(invalidMessage({ capabilities: { add: ["CAP_FOO"] } })).toBe(
      'capabilities.add[0]: unknown capability "CAP_FOO"',
    );
    expect(invalidMessage({ capabilities: { drop: ["KILL", "BAR"] } })).toContain(
      "capabilities.drop[1]",
    );
  });
  it("privileged gets every capability the daemon holds, ignoring add/drop", () => {
    expect(
      buildSpec(opts({ privileged: true, capabilities: { drop: ["ALL"] } })).process!
        .capabilities!.bounding,
    ).toEqual(ALL_CAPABILITIES);
    const host = ALL_CAPABILITIES.filter((c) => c !== "CAP_SYS_RESOURCE");
    expect(
      buildSpec(opts({ privileged: true, hostCapabilities: host })).process!.capabilities!
        .bounding,
    ).toEqual(host);
  });
  it("hostCapabilities limit ALL; adding a capability the daemon lacks fails", () => {
    const host = ALL_CAPABILITIES.filter((c) => c !== "CAP_SYS_RESOURCE");
    expect(
      buildSpec(opts({ hostCapabilities: host, capabilities: { add: ["ALL"] } })).process!
        .capabilities!.bounding,
    ).toEqual(host);
    const e = err(() =>
      buildSpec(opts({ hostCapabilities: host, capabilities: { add: ["SYS_RESOURCE"] } }))
    );
    expect(isKind(e, "failed-precondition")).toBe(true);
    expect(e.message).toContain("CAP_SYS_RESOURCE");
  });
  it("capabilitiesFromMask reads /proc/<pid>/status masks", () => {
    expect(capabilitiesFromMask("00000000a80425fb")).toEqual(
      [...DEFAULT_CAPABILITIES].sort((a, b) =>
        ALL_CAPABILITIES.indexOf(a) - ALL_CAPABILITIES.indexOf(b)
      ),
    );
    expect(capabilitiesFromMask("000001ffffffffff")).toEqual(ALL_CAPABILITIES);
    expect(() => capabilitiesFromMask("xyz")).toThrow("hex");
  });
});

describe("security profile sections", () => {
  it("RuntimeDefault seccomp by default, expanded for the granted caps", () => {
    const s = buildSpec(opts({ arch: "arm64" }));
    expect(s.linux!.seccomp!.architectures).toEqual(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    const admin = buildSpec(opts({ capabilities: { add: ["SYS_ADMIN"] } }));
    expect(admin.linux!.seccomp!.syscalls!.some((r) => r.names.includes("mount"))).toBe(true);
  });
  it("Unconfined: no seccomp section; Localhost: the given profile", () => {
    expect(buildSpec(opts({ seccomp: { type: "Unconfined" } })).linux!.seccomp).toBeUndefined();
    const profile = { defaultAction: "SCMP_ACT_ALLOW" as const };
    expect(buildSpec(opts({ seccomp: { type: "Localhost", profile } })).linux!.seccomp).toEqual(
      profile,
    );
  });
  it("masked and readonly paths: defaults, overrides, none when privileged", () => {
    const s = buildSpec(opts());
    expect(s.linux!.maskedPaths).toEqual(DEFAULT_MASKED_PATHS);
    expect(s.linux!.readonlyPaths).toEqual(DEFAULT_READONLY_PATHS);
    const o = buildSpec(opts({ maskedPaths: [], readonlyPaths: ["/proc/sys"] }));
    expect(o.linux!.maskedPaths).toEqual([]);
    expect(o.linux!.readonlyPaths).toEqual(["/proc/sys"]);
    const p = buildSpec(opts({ privileged: true }));
    expect(p.linux!.maskedPaths).toBeUndefined();
    expect(p.linux!.readonlyPaths).toBeUndefined();
    expect(p.linux!.seccomp).toBeUndefined();
    expect(invalidMessage({ maskedPaths: ["proc/kcore"] })).toContain(
      "maskedPaths[0] must be absolute",
    );
  });
});

describe("mounts", () => {
  const dests = (o: Partial<SpecOptions>) => buildSpec(opts(o)).mounts!.map((m) => m.destination);

  it("the defaults, in order", () => {
    const m = buildSpec(opts()).mounts!;
    expect(m.map((x) => `${x.destination} ${x.type}`)).toEqual([
      "/proc proc",
      "/dev tmpfs",
      "/dev/pts devpts",
      "/dev/shm tmpfs",
      "/dev/mqueue mqueue",
      "/sys sysfs",
      "/sys/fs/cgroup cgroup",
    ]);
    expect(m[1].options).toContain("size=65536k");
    expect(m[2].options).toEqual([
      "nosuid",
      "noexec",
      "newinstance",
      "ptmxmode=0666",
      "mode=0620",
      "gid=5",
    ]);
    expect(m[3].options).toContain("size=65536k");
    expect(m[5].options).toContain("ro");
    expect(m[6].options).toContain("ro");
  });
  it("privileged: sysfs and cgroup read-write", () => {
    const m = buildSpec(opts({ privileged: true })).mounts!;
    expect(m.find((x) => x.destination === "/sys")!.options).toContain("rw");
    expect(m.find((x) => x.destination === "/sys/fs/cgroup")!.options).toContain("rw");
  });
  it("shmPath binds the sandbox's /dev/shm", () => {
    const shm = buildSpec(opts({ shmPath: "/run/k8scontainerd/sb/shm" })).mounts!.find((x) =>
      x.destination === "/dev/shm"
    );
    expect(shm).toEqual({
      destination: "/dev/shm",
      type: "bind",
      source: "/run/k8scontainerd/sb/shm",
      options: ["rbind", "rprivate", "rw"],
    });
  });
  it("user binds and tmpfs follow the defaults with ro and propagation", () => {
    const m = buildSpec(opts({
      mounts: [
        { destination: "/data", source: "/srv/data", readonly: true },
        { destination: "/shared", source: "/srv/shared", propagation: "rshared" },
        { destination: "/scratch", type: "tmpfs", options: ["size=16m"] },
      ],
    }));
    expect(m.mounts!.slice(-3)).toEqual([
      {
        destination: "/data",
        type: "bind",
        source: "/srv/data",
        options: ["rbind", "rprivate", "ro"],
      },
      {
        destination: "/shared",
        type: "bind",
        source: "/srv/shared",
        options: ["rbind", "rshared", "rw"],
      },
      {
        destination: "/scratch",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "size=16m", "rw"],
      },
    ]);
    expect(m.linux!.rootfsPropagation).toBe("rshared");
    expect(
      buildSpec(opts({ mounts: [{ destination: "/a", source: "/a", propagation: "rslave" }] }))
        .linux!
        .rootfsPropagation,
    ).toBe("rslave");
    expect(buildSpec(opts()).linux!.rootfsPropagation).toBeUndefined();
  });
  it("a user mount on a default's destination (however spelled) replaces it", () => {
    const s = buildSpec(opts({ mounts: [{ destination: "/dev//shm/", source: "/host/shm" }] }));
    const shm = s.mounts!.filter((m) => m.destination === "/dev/shm");
    expect(shm).toEqual([{
      destination: "/dev/shm",
      type: "bind",
      source: "/host/shm",
      options: ["rbind", "rprivate", "rw"],
    }]);
  });
  it("a user mount on a parent of defaults replaces them too (/dev hides /dev/pts …)", () => {
    expect(dests({ mounts: [{ destination: "/dev", source: "/dev" }] })).toEqual([
      "/proc",
      "/sys",
      "/sys/fs/cgroup",
      "/dev",
    ]);
  });
  it("user mounts are ordered by depth, so parents come first (stable otherwise)", () => {
    expect(
      dests({
        mounts: [
          { destination: "/a/b/c", source: "/x" },
          { destination: "/a", source: "/y" },
          { destination: "/z/q", source: "/w" },
        ],
      }).slice(-3),
    ).toEqual(["/a", "/z/q", "/a/b/c"]);
  });
  it("validates, naming the mount", () => {
    expect(invalidMessage({
      mounts: [{ destination: "/a", source: "/a" }, { destination: "/b", source: "/b" }, {
        destination: "data",
        source: "/x",
      }],
    })).toBe('mounts[2].destination must be absolute: got "data"');
    expect(invalidMessage({ mounts: [{ destination: "/a", source: "rel" }] })).toContain(
      "mounts[0].source must be absolute",
    );
    expect(invalidMessage({ mounts: [{ destination: "/a" }] })).toContain("mounts[0].source");
    expect(invalidMessage({ mounts: [{ destination: "/", source: "/x" }] })).toContain(
      "mounts[0].destination must not be",
    );
    expect(invalidMessage({
      mounts: [{ destination: "/a", source: "/x" }, { destination: "/a/", source: "/y" }],
    })).toContain("mounts[1].destination /a duplicates mounts[0]");
    expect(invalidMessage({
      // deno-lint-ignore no-explicit-any
      mounts: [{ destination: "/a", source: "/x", propagation: "shared" as any }],
    })).toContain("mounts[0].propagation");
    expect(invalidMessage({
      // deno-lint-ignore no-explicit-any
      mounts: [{ destination: "/a", source: "/x", type: "nfs" as any }],
    })).toContain("mounts[0].type");
  });
  it("cleanPath", () => {
    expect(cleanPath("/a/./b/../c//")).toBe("/a/c");
    expect(cleanPath("/..")).toBe("/");
  });
});

describe("namespaces", () => {
  const ns = (o: Partial<SpecOptions>) => buildSpec(opts(o)).linux!.namespaces;
  it("defaults: new pid, ipc, uts, network, mount; host cgroup", () => {
    expect(ns({})).toEqual([
      { type: "pid" },
      { type: "ipc" },
      { type: "uts" },
      { type: "network" },
      { type: "mount" },
    ]);
  });
  it("on cgroup v2 hosts a private cgroup namespace by default; host keeps the host's", () => {
    const types = (o: Partial<SpecOptions>) => ns(o)!.map((n) => n.type);
    expect(types({ cgroupV2: true })).toContain("cgroup");
    expect(types({ cgroupV2: true, namespaces: { cgroup: "host" } })).not.toContain("cgroup");
    expect(types({ cgroupV2: true, namespaces: { pid: "host" } }))
      .toEqual(["ipc", "uts", "network", "mount", "cgroup"]);
  });
  it("host omits, a path joins, new creates", () => {
    expect(ns({
      namespaces: {
        pid: "host",
        network: "/run/netns/cni-1",
        ipc: "/proc/42/ns/ipc",
        cgroup: "new",
      },
    })).toEqual([
      { type: "ipc", path: "/proc/42/ns/ipc" },
      { type: "uts" },
      { type: "network", path: "/run/netns/cni-1" },
      { type: "mount" },
      { type: "cgroup" },
    ]);
  });
  it("hostname is set only with a new UTS namespace", () => {
    expect(buildSpec(opts({ hostname: "h" })).hostname).toBe("h");
    expect(buildSpec(opts({ hostname: "h", namespaces: { uts: "host" } })).hostname)
      .toBeUndefined();
    expect(buildSpec(opts({ hostname: "h", namespaces: { uts: "/proc/1/ns/uts" } })).hostname)
      .toBeUndefined();
    expect(invalidMessage({ hostname: "bad name" })).toContain("hostname");
  });
  it("validates", () => {
    expect(invalidMessage({ namespaces: { network: "netns" } })).toContain(
      "namespaces.network must be absolute",
    );
    expect(invalidMessage({ namespaces: { mount: "host" } })).toContain("namespaces.mount");
    // deno-lint-ignore no-explicit-any
    expect(invalidMessage({ namespaces: { user: "new" } as any })).toContain("namespaces.user");
  });
  it("sysctls need the namespace they belong to", () => {
    expect(
      buildSpec(opts({ sysctls: { "net.ipv4.ip_forward": "1", "kernel.shmmax": "1" } }))
        .linux!.sysctl,
    ).toEqual({ "net.ipv4.ip_forward": "1", "kernel.shmmax": "1" });
    expect(invalidMessage({
      namespaces: { network: "host" },
      sysctls: { "net.ipv4.ip_forward": "1" },
    })).toContain("needs a private network namespace");
    expect(invalidMessage({ namespaces: { ipc: "host" }, sysctls: { "fs.mqueue.msg_max": "1" } }))
      .toContain("ipc");
    expect(invalidMessage({ sysctls: { "not a sysctl": "1" } })).toContain("not a sysctl name");
  });
});

describe("resources", () => {
  const res = (r: SpecOptions["resources"], extra: Partial<SpecOptions> = {}) =>
    buildSpec(opts({ resources: r, ...extra })).linux!.resources!;

  it("cpu mapping; zero values mean unset", () => {
    expect(
      res({ cpu: { shares: 512, quota: 50000, period: 100000, cpus: "0-1,3", mems: "0" } }).cpu,
    )
      .toEqual({ shares: 512, quota: 50000, period: 100000, cpus: "0-1,3", mems: "0" });
    expect(res({ cpu: { shares: 0, quota: 0, period: 0, cpus: "" } }).cpu).toBeUndefined();
    expect(res({ cpu: { quota: -1 } }).cpu).toEqual({ quota: -1 });
  });
  it("memory: swap = limit when unset (no swapping), unless the host lacks swap accounting", () => {
    expect(res({ memory: { limit: 64 << 20 } }).memory).toEqual({
      limit: 64 << 20,
      swap: 64 << 20,
    });
    expect(res({ memory: { limit: 64 << 20 } }, { swapAccounting: false }).memory).toEqual({
      limit: 64 << 20,
    });
    expect(res({ memory: { limit: 64 << 20, swap: -1 } }).memory).toEqual({
      limit: 64 << 20,
      swap: -1,
    });
    expect(res({ memory: { limit: 64 << 20, swap: 128 << 20 } }).memory!.swap).toBe(128 << 20);
    expect(res({ memory: { limit: 0 } }).memory).toBeUndefined();
  });
  it("pids and hugepages", () => {
    const r = res({ pids: { limit: 20 }, hugepageLimits: [{ pageSize: "2MB", limit: 4 << 20 }] });
    expect(r.pids).toEqual({ limit: 20 });
    expect(r.hugepageLimits).toEqual([{ pageSize: "2MB", limit: 4 << 20 }]);
    expect(res({ pids: { limit: 0 } }).pids).toBeUndefined();
  });
  it("blockIO weight and unified pass through", () => {
    const r = res({ blockIO: { weight: 300 }, unified: { "memory.high": "1000000" } });
    expect(r.blockIO).toEqual({ weight: 300 });
    expect(r.unified).toEqual({ "memory.high": "1000000" });
  });
  it("validates, naming the field", () => {
    const msg = (r: SpecOptions["resources"]) => invalidMessage({ resources: r });
    expect(msg({ cpu: { shares: 1 } })).toContain("resources.cpu.shares");
    expect(msg({ cpu: { period: 10 } })).toContain("resources.cpu.period");
    expect(msg({ cpu: { quota: 5 } })).toContain("resources.cpu.quota");
    expect(msg({ cpu: { cpus: "0-" } })).toContain("resources.cpu.cpus");
    expect(msg({ memory: { limit: -5 } })).toContain("resources.memory.limit");
    expect(msg({ memory: { limit: 100, swap: 50 } })).toContain(
      "must be >= resources.memory.limit",
    );
    expect(msg({ memory: { swap: 50 } })).toContain("needs resources.memory.limit");
    expect(msg({ pids: { limit: -7 } })).toContain("resources.pids.limit");
    expect(msg({ hugepageLimits: [{ pageSize: "2M", limit: 1 }] })).toContain(
      "resources.hugepageLimits[0].pageSize",
    );
    expect(msg({ blockIO: { weight: 5 } })).toContain("resources.blockIO.weight");
  });
  it("cgroupsPath: cgroupfs or systemd form", () => {
    expect(buildSpec(opts({ cgroupsPath: "/k8scontainerd/c1" })).linux!.cgroupsPath).toBe(
      "/k8scontainerd/c1",
    );
    expect(buildSpec(opts({ cgroupsPath: "kubepods.slice:k8scontainerd:c1" })).linux!.cgroupsPath)
      .toBe("kubepods.slice:k8scontainerd:c1");
    expect(invalidMessage({ cgroupsPath: "k8s/c1" })).toContain("cgroupsPath");
  });
});

describe("devices", () => {
  it("default rules: deny all first, mknod of anything, the basic char devices", () => {
    const rules = buildSpec(opts()).linux!.resources!.devices!;
    expect(rules).toEqual(DEFAULT_DEVICE_RULES);
    expect(rules[0]).toEqual({ allow: false, access: "rwm" });
    expect(rules).toContainEqual({ allow: true, type: "c", major: 136, access: "rwm" });
    expect(buildSpec(opts()).linux!.devices).toBeUndefined();
  });
  it("resolved user devices become nodes and cgroup rules", () => {
    const s = buildSpec(opts({
      devices: [{
        path: "/dev/fuse",
        type: "c",
        major: 10,
        minor: 229,
        fileMode: 0o666,
        uid: 0,
        gid: 0,
        permissions: "rw",
      }],
    }));
    expect(s.linux!.devices).toEqual([
      { path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
    ]);
    expect(s.linux!.resources!.devices!.at(-1)).toEqual({
      allow: true,
      type: "c",
      major: 10,
      minor: 229,
      access: "rw",
    });
  });
  it("privileged allows every device", () => {
    expect(buildSpec(opts({ privileged: true })).linux!.resources!.devices).toEqual([
      { allow: true, access: "rwm" },
    ]);
  });
  it("validates", () => {
    const d = { path: "/dev/x", type: "c" as const, major: 1, minor: 1 };
    expect(invalidMessage({ devices: [{ ...d, path: "dev/x" }] })).toContain("devices[0].path");
    expect(invalidMessage({ devices: [{ ...d, permissions: "rx" }] })).toContain(
      "devices[0].permissions",
    );
    expect(invalidMessage({ devices: [{ ...d, major: -1 }] })).toContain("devices[0].major");
  });
});

describe("hooks", () => {
  it("none by default; given ones are copied per point", () => {
    expect(buildSpec(opts()).hooks).toBeUndefined();
    expect(buildSpec(opts({ hooks: {} })).hooks).toBeUndefined();
    const s = buildSpec(opts({
      hooks: {
        createRuntime: [{ path: "/usr/bin/h", args: ["h", "a"], env: ["K=V"], timeout: 5 }],
        poststop: [{ path: "/bin//true" }],
      },
    }));
    expect(s.hooks).toEqual({
      createRuntime: [{ path: "/usr/bin/h", args: ["h", "a"], env: ["K=V"], timeout: 5 }],
      poststop: [{ path: "/bin/true" }],
    });
  });
  it("validates", () => {
    expect(invalidMessage({ hooks: { prestart: [{ path: "rel" }] } })).toContain(
      "hooks.prestart[0].path must be absolute",
    );
    expect(invalidMessage({ hooks: { poststart: [{ path: "/x", timeout: 0 }] } })).toContain(
      "hooks.poststart[0].timeout",
    );
    expect(invalidMessage({ hooks: { poststart: [{ path: "/x", env: ["NOPE"] }] } })).toContain(
      "hooks.poststart[0].env[0] must be KEY=VALUE",
    );
    expect(
      invalidMessage({ hooks: { preStart: [{ path: "/x" }] } as unknown as SpecOptions["hooks"] }),
    ).toContain("hooks.preStart: unknown hook point");
  });
});

describe("the rest", () => {
  it("root, annotations, ociVersion, and JSON round-trip", () => {
    const s = buildSpec(opts({
      rootfs: { path: "/r", readonly: true },
      annotations: { "io.kubernetes.cri.container-type": "container" },
    }));
    expect(s.ociVersion).toBe("1.0.2");
    expect(s.root).toEqual({ path: "/r", readonly: true });
    expect(s.annotations).toEqual({ "io.kubernetes.cri.container-type": "container" });
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });
  it("id and rootfs are required", () => {
    expect(invalidMessage({ id: "" })).toContain("id");
    expect(invalidMessage({ rootfs: { path: "" } })).toContain("rootfs.path");
  });
  it("is pure: the same options give the same spec and are not modified", () => {
    const o = opts({
      mounts: [{ destination: "/b/c", source: "/x" }, { destination: "/a", source: "/y" }],
    });
    const before = JSON.stringify(o);
    expect(buildSpec(o)).toEqual(buildSpec(o));
    expect(JSON.stringify(o)).toBe(before);
  });
});
