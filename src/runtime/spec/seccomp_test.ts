import { describe, expect, it } from "../../testing/bdd.ts";
import { isKind } from "../../errdefs/errors.ts";
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES } from "./capabilities.ts";
import { defaultSeccompProfile, seccompFromJson } from "./seccomp.ts";
import type { LinuxSeccomp } from "./types.ts";

/** Names allowed without argument conditions. */
function plainAllowed(p: LinuxSeccomp): Set<string> {
  return new Set(
    (p.syscalls ?? []).filter((s) => s.action === "SCMP_ACT_ALLOW" && !s.args).flatMap((s) =>
      s.names
    ),
  );
}

function rulesFor(p: LinuxSeccomp, name: string) {
  return (p.syscalls ?? []).filter((s) => s.names.includes(name));
}

function err(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

describe("defaultSeccompProfile", () => {
  it("denies with EPERM by default and covers the compat ABIs of the arch", () => {
    const amd = defaultSeccompProfile("amd64");
    expect(amd.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(amd.defaultErrnoRet).toBe(1);
    expect(amd.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    expect(defaultSeccompProfile("arm64").architectures).toEqual([
      "SCMP_ARCH_AARCH64",
      "SCMP_ARCH_ARM",
    ]);
  });
  it("allows ordinary syscalls, never the host-reaching ones without their capability", () => {
    const p = plainAllowed(defaultSeccompProfile("amd64"));
    for (const n of ["read", "write", "openat", "execve", "futex", "epoll_wait", "rseq"]) {
      expect(p.has(n)).toBe(true);
    }
    for (
      const n of [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "ptrace",
        "reboot",
        "init_module",
        "kexec_load",
        "bpf",
        "settimeofday",
        "open_by_handle_at",
        "keyctl",
        "add_key",
        "userfaultfd",
      ]
    ) {
      expect(p.has(n)).toBe(false);
    }
  });
  it("arch-specific calls follow the arch", () => {
    const amd = plainAllowed(defaultSeccompProfile("amd64"));
    const arm = plainAllowed(defaultSeccompProfile("arm64"));
    expect(amd.has("arch_prctl")).toBe(true);
    expect(arm.has("arch_prctl")).toBe(false);
    expect(arm.has("set_tls")).toBe(true);
    expect(amd.has("set_tls")).toBe(false);
  });
  it("personality only for the harmless domains", () => {
    const values = rulesFor(defaultSeccompProfile("amd64"), "personality").map((r) =>
      r.args?.[0].value
    );
    expect(values).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff]);
  });
  it("socket is allowed for every family but AF_VSOCK", () => {
    expect(rulesFor(defaultSeccompProfile("amd64"), "socket")).toEqual([
      {
        names: ["socket"],
        action: "SCMP_ACT_ALLOW",
        args: [{ index: 0, value: 40, op: "SCMP_CMP_NE" }],
      },
    ]);
  });
  it("without CAP_SYS_ADMIN clone masks the namespace flags and clone3 gets ENOSYS", () => {
    const p = defaultSeccompProfile("amd64", DEFAULT_CAPABILITIES);
    expect(rulesFor(p, "clone")).toEqual([{
      names: ["clone"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
    }]);
    expect(rulesFor(p, "clone3")).toEqual([
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
    ]);
  });
  it("with CAP_SYS_ADMIN clone, clone3, mount, unshare … are allowed outright", () => {
    const p = defaultSeccompProfile("amd64", [...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]);
    const plain = plainAllowed(p);
    for (const n of ["clone", "clone3", "mount", "umount2", "unshare", "setns", "sethostname"]) {
      expect(plain.has(n)).toBe(true);
    }
    expect(rulesFor(p, "clone").every((r) => !r.args)).toBe(true);
    expect(rulesFor(p, "clone3").every((r) => r.action === "SCMP_ACT_ALLOW")).toBe(true);
  });
  it("each capability unlocks its own group", () => {
    const groups: Record<string, string[]> = {
      CAP_SYS_PTRACE: ["ptrace", "process_vm_readv", "kcmp"],
      CAP_SYS_MODULE: ["init_module", "finit_module", "delete_module"],
      CAP_SYS_TIME: ["settimeofday", "clock_settime"],
      CAP_SYS_BOOT: ["reboot"],
      CAP_SYS_NICE: ["mbind", "set_mempolicy"],
      CAP_SYS_PACCT: ["acct"],
      CAP_SYS_RAWIO: ["iopl", "ioperm"],
      CAP_SYSLOG: ["syslog"],
      CAP_SYS_TTY_CONFIG: ["vhangup"],
      CAP_SYS_CHROOT: ["chroot"],
      CAP_BPF: ["bpf"],
      CAP_PERFMON: ["perf_event_open"],
      CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
    };
    for (const [cap, names] of Object.entries(groups)) {
      const without = plainAllowed(defaultSeccompProfile("amd64", []));
      const withCap = plainAllowed(defaultSeccompProfile("amd64", [cap]));
      for (const n of names) {
        expect({ cap, n, allowed: without.has(n) }).toEqual({ cap, n, allowed: false });
        expect({ cap, n, allowed: withCap.has(n) }).toEqual({ cap, n, allowed: true });
      }
    }
    // The default capability set includes CAP_SYS_CHROOT.
    expect(plainAllowed(defaultSeccompProfile("amd64")).has("chroot")).toBe(true);
  });
  it("a syscall unlocked by two held capabilities is listed once", () => {
    const p = defaultSeccompProfile("amd64", ALL_CAPABILITIES);
    const names = (p.syscalls ?? []).filter((s) => s.action === "SCMP_ACT_ALLOW" && !s.args)
      .flatMap((s) => s.names);
    expect(names.length).toBe(new Set(names).size);
  });
  it("returns a fresh object each time (callers may edit it)", () => {
    const a = defaultSeccompProfile("amd64");
    a.syscalls![0].names.push("mount");
    expect(plainAllowed(defaultSeccompProfile("amd64")).has("mount")).toBe(false);
  });
});

describe("seccompFromJson", () => {
  it("parses an OCI profile", () => {
    const p = seccompFromJson(JSON.stringify({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64"],
      flags: ["SECCOMP_FILTER_FLAG_LOG"],
      syscalls: [
        { names: ["mount"], action: "SCMP_ACT_ERRNO", errnoRet: 1 },
        {
          names: ["personality"],
          action: "SCMP_ACT_ALLOW",
          args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }],
        },
      ],
    }));
    expect(p).toEqual({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64"],
      flags: ["SECCOMP_FILTER_FLAG_LOG"],
      syscalls: [
        { names: ["mount"], action: "SCMP_ACT_ERRNO", errnoRet: 1 },
        {
          names: ["personality"],
          action: "SCMP_ACT_ALLOW",
          args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }],
        },
      ],
    });
  });
  it("evaluates the Docker format (archMap, includes/excludes, name, defaultErrno)", () => {
    const text = JSON.stringify({
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrno: 38,
      archMap: [
        { architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86"] },
        { architecture: "SCMP_ARCH_AARCH64", subArchitectures: ["SCMP_ARCH_ARM"] },
      ],
      syscalls: [
        { name: "read", action: "SCMP_ACT_ALLOW", args: null },
        { names: ["mount"], action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_ADMIN"] } },
        { names: ["arch_prctl"], action: "SCMP_ACT_ALLOW", includes: { arches: ["amd64"] } },
        { names: ["chroot"], action: "SCMP_ACT_ERRNO", excludes: { caps: ["CAP_SYS_CHROOT"] } },
      ],
    });
    const amd = seccompFromJson(text, { arch: "amd64", capabilities: ["CAP_SYS_ADMIN"] });
    expect(amd.defaultErrnoRet).toBe(38);
    expect(amd.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
    expect(amd.syscalls!.map((s) => s.names[0])).toEqual(["read", "mount", "arch_prctl", "chroot"]);
    const arm = seccompFromJson(text, { arch: "arm64", capabilities: ["CAP_SYS_CHROOT"] });
    expect(arm.architectures).toEqual(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    expect(arm.syscalls!.map((s) => s.names[0])).toEqual(["read"]);
  });
  it("rejects bad input naming the field", () => {
    const cases: [unknown, string][] = [
      ["{", "invalid JSON"],
      [[], "must be a JSON object"],
      [{}, "defaultAction must be one of"],
      [{ defaultAction: "SCMP_ACT_NOPE" }, "defaultAction must be one of"],
      [
        { defaultAction: "SCMP_ACT_ALLOW", architectures: ["x86_64"] },
        "architectures[0] must be an SCMP_ARCH_*",
      ],
      [{ defaultAction: "SCMP_ACT_ALLOW", flags: ["FLAG"] }, "flags[0] must be one of"],
      [{ defaultAction: "SCMP_ACT_ALLOW", syscalls: {} }, "syscalls must be a list"],
      [
        { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ action: "SCMP_ACT_ALLOW" }] },
        "syscalls[0].names is required",
      ],
      [
        { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: [], action: "SCMP_ACT_ALLOW" }] },
        "syscalls[0].names must not be empty",
      ],
      [
        { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "ALLOW" }] },
        "syscalls[0].action must be one of",
      ],
      [{
        defaultAction: "SCMP_ACT_ALLOW",
        syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO", errnoRet: -1 }],
      }, "syscalls[0].errnoRet must be a non-negative integer"],
      [
        {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [{
            names: ["read"],
            action: "SCMP_ACT_ALLOW",
            args: [{ index: 6, value: 0, op: "SCMP_CMP_EQ" }],
          }],
        },
        "syscalls[0].args[0].index must be 0..5",
      ],
      [
        {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [{
            names: ["read"],
            action: "SCMP_ACT_ALLOW",
            args: [{ index: 0, value: 0, op: "EQ" }],
          }],
        },
        "syscalls[0].args[0].op must be one of",
      ],
      [
        {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", includes: { minKernel: "4.8" } }],
        },
        "syscalls[0].includes.minKernel is not supported",
      ],
    ];
    for (const [doc, msg] of cases) {
      const e = err(() => seccompFromJson(typeof doc === "string" ? doc : JSON.stringify(doc)));
      expect(isKind(e, "invalid-argument")).toBe(true);
      expect(e.message).toContain(msg);
    }
  });
});
