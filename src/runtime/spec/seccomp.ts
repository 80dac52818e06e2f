/**
 * Seccomp for containers: the RuntimeDefault profile (the allowlist Docker and containerd
 * ship, kept here as data and expanded for an architecture and a capability set) and the
 * parser for Localhost profile files.
 *
 * @example
 * ```ts
 * import { defaultSeccompProfile } from "./seccomp.ts";
 * const p = defaultSeccompProfile("amd64", ["CAP_CHOWN", "CAP_KILL"]);
 * p.defaultAction; // "SCMP_ACT_ERRNO"
 * ```
 */

import { InvalidArgumentError } from "../../errdefs/errors.ts";
import { DEFAULT_CAPABILITIES } from "./capabilities.ts";
import type {
  LinuxSeccomp,
  LinuxSeccompArg,
  LinuxSyscall,
  SeccompAction,
  SeccompOperator,
} from "./types.ts";

/**
 * The architectures k8scontainerd builds for, in Go/OCI image naming.
 *
 * @example
 * ```ts
 * import type { SeccompArch } from "./seccomp.ts";
 * const a: SeccompArch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
 * ```
 */
export type SeccompArch = "amd64" | "arm64";

/**
 * The libseccomp architectures a filter must cover for each host architecture: the native one
 * plus the compat ABIs a 64-bit kernel also accepts syscalls from (x86 and x32 on amd64, 32-bit
 * arm on arm64). Leaving one out would let a process dodge the filter by switching ABI.
 *
 * @example
 * ```ts
 * import { SECCOMP_ARCHITECTURES } from "./seccomp.ts";
 * SECCOMP_ARCHITECTURES.arm64; // ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
 * ```
 */
export const SECCOMP_ARCHITECTURES: Readonly<Record<SeccompArch, readonly string[]>> = {
  amd64: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  arm64: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
};

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;

// The namespace flags of clone(2). Added, not OR-ed: CLONE_NEWNET is bit 30 and JS bitwise
// operators work on signed 32-bit integers.
const CLONE_NAMESPACE_FLAGS = 0x00020000 + // CLONE_NEWNS
  0x02000000 + // CLONE_NEWCGROUP
  0x04000000 + // CLONE_NEWUTS
  0x08000000 + // CLONE_NEWIPC
  0x10000000 + // CLONE_NEWUSER
  0x20000000 + // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

/** A rule of the default profile with the conditions under which it applies. */
interface DefaultRule {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
  /** Only on these architectures. */
  arches?: SeccompArch[];
  /** Only when the container holds at least one of these capabilities. */
  anyCap?: string[];
  /** Only when the container holds none of these capabilities. */
  noCap?: string[];
}

/**
 * Syscalls every container may make. The list is the Docker/containerd allowlist: everything
 * a normal program needs, and none of the calls that reach outside the container (mount,
 * namespaces, modules, clock, keyring, reboot …), which come back below only with the
 * capability that makes them meaningful. Names the running kernel or libseccomp does not know
 * (e.g. 32-bit-only or newer calls) are skipped by runc, so one list serves every kernel.
 */
const ALLOWED_SYSCALLS = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
_llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile
sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32
setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`.trim().split(/\s+/);

const allow = (names: string[], extra: Omit<DefaultRule, "names" | "action"> = {}) => ({
  names,
  action: "SCMP_ACT_ALLOW" as const,
  ...extra,
});
const eq = (index: number, value: number): LinuxSeccompArg => ({ index, value, op: "SCMP_CMP_EQ" });

/** The whole default profile as data; `defaultSeccompProfile` filters it. */
const DEFAULT_RULES: DefaultRule[] = [
  allow(ALLOWED_SYSCALLS),
  // personality(2): only the harmless domains (Linux, 32-bit uname, "query" 0xffffffff);
  // others such as ADDR_NO_RANDOMIZE would turn ASLR off.
  ...[0x0, 0x0008, 0x20000, 0x20008, 0xffffffff].map((v) =>
    allow(["personality"], { args: [eq(0, v)] })
  ),
  // socket(2) for every family but AF_VSOCK, which reaches the hypervisor's host side.
  allow(["socket"], { args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }] }),
  // Architecture-specific calls libc needs (TLS set-up, cache maintenance, LDT).
  allow([
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
  ], {
    arches: ["arm64"],
  }),
  allow(["arch_prctl", "modify_ldt"], { arches: ["amd64"] }),
  // Capability-gated groups: a syscall is only useful with its capability, so it is allowed
  // exactly when the container holds it (the kernel still checks the capability itself).
  allow(["open_by_handle_at"], { anyCap: ["CAP_DAC_READ_SEARCH"] }),
  allow([
    "bpf",
    "clone",
    "clone3",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "perf_event_open",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
  ], { anyCap: ["CAP_SYS_ADMIN"] }),
  // Without CAP_SYS_ADMIN, clone may create threads and processes but no namespaces.
  allow(["clone"], {
    noCap: ["CAP_SYS_ADMIN"],
    args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
  }),
  // clone3 passes its flags in a struct seccomp cannot inspect: answer ENOSYS so libc falls
  // back to clone, which the rule above can check (EPERM would be a hard failure instead).
  { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS, noCap: ["CAP_SYS_ADMIN"] },
  allow(["reboot"], { anyCap: ["CAP_SYS_BOOT"] }),
  allow(["chroot"], { anyCap: ["CAP_SYS_CHROOT"] }),
  allow(["delete_module", "init_module", "finit_module"], { anyCap: ["CAP_SYS_MODULE"] }),
  allow(["acct"], { anyCap: ["CAP_SYS_PACCT"] }),
  allow(
    ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
    { anyCap: ["CAP_SYS_PTRACE"] },
  ),
  allow(["iopl", "ioperm"], { anyCap: ["CAP_SYS_RAWIO"] }),
  allow(["settimeofday", "stime", "clock_settime", "clock_settime64"], {
    anyCap: ["CAP_SYS_TIME"],
  }),
  allow(["vhangup"], { anyCap: ["CAP_SYS_TTY_CONFIG"] }),
  allow(["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], {
    anyCap: ["CAP_SYS_NICE"],
  }),
  allow(["syslog"], { anyCap: ["CAP_SYSLOG"] }),
  allow(["bpf"], { anyCap: ["CAP_BPF"] }),
  allow(["perf_event_open"], { anyCap: ["CAP_PERFMON"] }),
];

/**
 * The RuntimeDefault seccomp profile for `arch`, expanded for the container's capability set
 * (use the bounding set the spec grants): everything not allowed fails with EPERM.
 *
 * @example
 * ```ts
 * import { defaultSeccompProfile } from "./seccomp.ts";
 * const admin = defaultSeccompProfile("arm64", ["CAP_SYS_ADMIN"]);
 * admin.syscalls!.some((s) => s.names.includes("mount")); // true
 * ```
 */
export function defaultSeccompProfile(
  arch: SeccompArch,
  capabilities: readonly string[] = DEFAULT_CAPABILITIES,
): LinuxSeccomp {
  const arches = SECCOMP_ARCHITECTURES[arch];
  if (!arches) {
    throw new InvalidArgumentError(`seccomp: unsupported architecture ${JSON.stringify(arch)}`);
  }
  const held = new Set(capabilities);
  const syscalls: LinuxSyscall[] = [];
  // Names already allowed without conditions (e.g. bpf via CAP_SYS_ADMIN, then via CAP_BPF):
  // listing them twice is redundant, so later unconditional allows skip them.
  const allowed = new Set<string>();
  for (const r of DEFAULT_RULES) {
    if (r.arches && !r.arches.includes(arch)) continue;
    if (r.anyCap && !r.anyCap.some((c) => held.has(c))) continue;
    if (r.noCap && r.noCap.some((c) => held.has(c))) continue;
    const plain = r.action === "SCMP_ACT_ALLOW" && !r.args;
    const names = plain ? r.names.filter((n) => !allowed.has(n)) : [...r.names];
    if (names.length === 0) continue;
    if (plain) names.forEach((n) => allowed.add(n));
    const s: LinuxSyscall = { names, action: r.action };
    if (r.errnoRet !== undefined) s.errnoRet = r.errnoRet;
    if (r.args) s.args = r.args.map((a) => ({ ...a }));
    syscalls.push(s);
  }
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: EPERM,
    architectures: [...arches],
    syscalls,
  };
}

const ACTIONS: readonly SeccompAction[] = [
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
  "SCMP_ACT_NOTIFY",
];
const OPERATORS: readonly SeccompOperator[] = [
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
];
const FLAGS = [
  "SECCOMP_FILTER_FLAG_TSYNC",
  "SECCOMP_FILTER_FLAG_LOG",
  "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/**
 * What `seccompFromJson` evaluates Docker-format `includes`/`excludes`/`archMap` against.
 *
 * @example
 * ```ts
 * import type { SeccompContext } from "./seccomp.ts";
 * const ctx: SeccompContext = { arch: "amd64", capabilities: ["CAP_CHOWN"] };
 * ```
 */
export interface SeccompContext {
  arch?: SeccompArch;
  capabilities?: readonly string[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(where: string, msg: string): never {
  throw new InvalidArgumentError(`seccomp profile: ${where} ${msg}`);
}

function uint(v: unknown, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    fail(where, `must be a non-negative integer: got ${JSON.stringify(v)}`);
  }
  return v;
}

function action(v: unknown, where: string): SeccompAction {
  if (typeof v !== "string" || !ACTIONS.includes(v as SeccompAction)) {
    fail(where, `must be one of ${ACTIONS.join(", ")}: got ${JSON.stringify(v)}`);
  }
  return v as SeccompAction;
}

function stringList(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || x === "")) {
    fail(where, "must be a list of non-empty strings");
  }
  return v as string[];
}

/** Evaluates Docker's includes/excludes condition: true when the rule applies. */
function condition(
  v: unknown,
  where: string,
  ctx: Required<SeccompContext>,
  include: boolean,
): boolean {
  if (v === undefined) return true;
  if (!isObject(v)) fail(where, "must be an object");
  for (const k of Object.keys(v)) {
    if (k !== "caps" && k !== "arches") {
      fail(`${where}.${k}`, "is not supported (only caps and arches are evaluated)");
    }
  }
  const caps = v.caps === undefined ? [] : stringList(v.caps, `${where}.caps`);
  const arches = v.arches === undefined ? [] : stringList(v.arches, `${where}.arches`);
  const archNames = ctx.arch === "amd64"
    ? ["amd64", "x86_64", "x32", "x86"]
    : ["arm64", "aarch64", "arm"];
  if (include) {
    // Every listed condition must hold.
    if (caps.length > 0 && !caps.every((c) => ctx.capabilities.includes(c))) return false;
    if (arches.length > 0 && !arches.some((a) => archNames.includes(a))) return false;
    return true;
  }
  // excludes: the rule is dropped when any listed condition holds.
  if (caps.some((c) => ctx.capabilities.includes(c))) return false;
  if (arches.some((a) => archNames.includes(a))) return false;
  return true;
}

/**
 * Parses and validates a Localhost seccomp profile: the OCI `LinuxSeccomp` JSON, or Docker's
 * format (with `archMap`, per-rule `includes`/`excludes` on caps and arches, `name` instead of
 * `names`), which is evaluated for `ctx` (default: this host's arch and the default caps).
 * Errors name the offending field.
 *
 * @throws InvalidArgumentError for malformed JSON or an invalid field.
 * @example
 * ```ts
 * import { seccompFromJson } from "./seccomp.ts";
 * const p = seccompFromJson('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}');
 * p.syscalls![0].names; // ["mount"]
 * ```
 */
export function seccompFromJson(text: string, ctx: SeccompContext = {}): LinuxSeccomp {
  const full: Required<SeccompContext> = {
    arch: ctx.arch ?? (Deno.build.arch === "aarch64" ? "arm64" : "amd64"),
    capabilities: ctx.capabilities ?? DEFAULT_CAPABILITIES,
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`seccomp profile: invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) fail("document", "must be a JSON object");

  const out: LinuxSeccomp = { defaultAction: action(doc.defaultAction, "defaultAction") };
  const errno = doc.defaultErrnoRet ?? doc.defaultErrno;
  if (errno !== undefined) {
    out.defaultErrnoRet = uint(
      errno,
      doc.defaultErrnoRet !== undefined ? "defaultErrnoRet" : "defaultErrno",
    );
  }
  if (doc.architectures !== undefined) {
    out.architectures = stringList(doc.architectures, "architectures");
  } else if (doc.archMap !== undefined) {
    if (!Array.isArray(doc.archMap)) fail("archMap", "must be a list");
    const native = SECCOMP_ARCHITECTURES[full.arch][0];
    for (const [i, m] of (doc.archMap as unknown[]).entries()) {
      if (!isObject(m) || typeof m.architecture !== "string") {
        fail(`archMap[${i}]`, "must have an architecture");
      }
      if (m.architecture !== native) continue;
      const subs = m.subArchitectures === undefined
        ? []
        : stringList(m.subArchitectures, `archMap[${i}].subArchitectures`);
      out.architectures = [native, ...subs];
    }
  }
  for (const [i, a] of (out.architectures ?? []).entries()) {
    if (!a.startsWith("SCMP_ARCH_")) {
      fail(`architectures[${i}]`, `must be an SCMP_ARCH_* name: got ${JSON.stringify(a)}`);
    }
  }
  if (doc.flags !== undefined) {
    out.flags = stringList(doc.flags, "flags");
    for (const [i, f] of out.flags.entries()) {
      if (!FLAGS.includes(f)) {
        fail(`flags[${i}]`, `must be one of ${FLAGS.join(", ")}: got ${JSON.stringify(f)}`);
      }
    }
  }
  if (doc.syscalls !== undefined) {
    if (!Array.isArray(doc.syscalls)) fail("syscalls", "must be a list");
    out.syscalls = [];
    for (const [i, s] of (doc.syscalls as unknown[]).entries()) {
      const where = `syscalls[${i}]`;
      if (!isObject(s)) fail(where, "must be an object");
      if (!condition(s.includes, `${where}.includes`, full, true)) continue;
      if (!condition(s.excludes, `${where}.excludes`, full, false)) continue;
      let names: string[];
      if (s.names !== undefined) names = stringList(s.names, `${where}.names`);
      else if (typeof s.name === "string" && s.name !== "") names = [s.name];
      else fail(`${where}.names`, "is required");
      if (names.length === 0) fail(`${where}.names`, "must not be empty");
      const rule: LinuxSyscall = { names, action: action(s.action, `${where}.action`) };
      if (s.errnoRet !== undefined) rule.errnoRet = uint(s.errnoRet, `${where}.errnoRet`);
      if (s.args !== undefined && s.args !== null) {
        if (!Array.isArray(s.args)) fail(`${where}.args`, "must be a list");
        rule.args = (s.args as unknown[]).map((a, j) => {
          const aw = `${where}.args[${j}]`;
          if (!isObject(a)) fail(aw, "must be an object");
          const index = uint(a.index, `${aw}.index`);
          if (index > 5) {
            fail(`${aw}.index`, `must be 0..5 (syscalls have six arguments): got ${index}`);
          }
          if (typeof a.op !== "string" || !OPERATORS.includes(a.op as SeccompOperator)) {
            fail(`${aw}.op`, `must be one of ${OPERATORS.join(", ")}: got ${JSON.stringify(a.op)}`);
          }
          const arg: LinuxSeccompArg = {
            index,
            value: uint(a.value, `${aw}.value`),
            op: a.op as SeccompOperator,
          };
          if (a.valueTwo !== undefined) arg.valueTwo = uint(a.valueTwo, `${aw}.valueTwo`);
          return arg;
        });
        if (rule.args.length === 0) delete rule.args;
      }
      out.syscalls.push(rule);
    }
  }
  return out;
}
