/**
 * Booting a guest image headless under QEMU: TCG (software emulation) by default, because the
 * /dev/kvm these machines offer is a paravirtual flavour under which Debian's kernels abort or
 * hang (see ../shared/ENVIRONMENT.md); `K8SC_VM_ACCEL=kvm` opts into KVM where it works.
 *
 * A {@link GuestMachine} owns a copy-on-write overlay of the cached image, so the image stays
 * pristine and the same guest disk survives a reboot (two boots of one machine). Each boot
 * writes the serial console to a file, is killed when it overruns its timeout, and
 * {@link GuestMachine.cleanup} always removes the overlay.
 */
import type { GuestArch, GuestImage } from "./guest_image.ts";

/** A host directory exported to the guest over virtio-9p. */
export interface Share {
  /** The mount tag the guest's fstab names. */
  tag: string;
  path: string;
  readonly: boolean;
}

/** Options for a guest machine. */
export interface MachineOptions {
  image: GuestImage;
  shares: Share[];
  /** Where the overlay disk and console logs go (a fresh temp dir when omitted). */
  workDir?: string;
  memoryMiB?: number;
  cpus?: number;
  /**
   * Give the guest one NIC on QEMU's user network with `restrict=on`: DHCP and a default route
   * for software that insists on one (kubeadm), while no packet leaves for the host's network.
   */
  restrictedNic?: boolean;
}

/** How one boot ended. */
export interface BootResult {
  /** QEMU's exit code (0 after a guest power-off), or null when killed. */
  code: number | null;
  timedOut: boolean;
  seconds: number;
  /** The serial console of this boot. */
  consoleLog: string;
}

function qemuBinary(arch: GuestArch): string {
  return arch === "amd64" ? "qemu-system-x86_64" : "qemu-system-aarch64";
}

/** QEMU arguments that boot `image` from the overlay with the shares (no network device). */
export function qemuArgs(
  o: {
    image: GuestImage;
    overlay: string;
    shares: Share[];
    memoryMiB: number;
    cpus: number;
    restrictedNic?: boolean;
  },
  consoleLog: string,
  accel = Deno.env.get("K8SC_VM_ACCEL") || "tcg",
): string[] {
  const amd64 = o.image.arch === "amd64";
  const console = amd64 ? "ttyS0" : "ttyAMA0";
  const args = amd64
    ? ["-machine", "q35", "-cpu", accel === "kvm" ? "host" : "max", "-vga", "none"]
    // cortex-a72: `-cpu max` is ~4x slower under TCG here.
    : ["-machine", "virt", "-cpu", "cortex-a72"];
  args.push(
    "-accel",
    accel === "tcg" ? "tcg,thread=multi" : accel,
    "-smp",
    String(o.cpus),
    "-m",
    String(o.memoryMiB),
    "-kernel",
    o.image.kernel,
    "-initrd",
    o.image.initrd,
    "-append",
    [
      "root=/dev/vda",
      "rw",
      `console=${console}`,
      // A panic ends the boot (with -no-reboot) instead of looping.
      "panic=-1",
      "systemd.unified_cgroup_hierarchy=1",
      // AppArmor on (Debian's kernel has it built in), so the CRI AppArmor suite tests the
      // enabled path.
      "apparmor=1",
      "security=apparmor",
      "net.ifnames=0",
      "systemd.show_status=0",
    ].join(" "),
    "-drive",
    `file=${o.overlay},if=virtio,format=qcow2`,
    "-nic",
    o.restrictedNic ? "user,restrict=on,model=virtio-net-pci" : "none",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    `file:${consoleLog}`,
    "-no-reboot",
  );
  for (const s of o.shares) {
    args.push(
      "-virtfs",
      `local,path=${s.path},mount_tag=${s.tag},security_model=none${
        s.readonly ? ",readonly=on" : ""
      }`,
    );
  }
  return args;
}

/**
 * One guest: an overlay disk on a cached image, booted as many times as asked.
 *
 * @example
 * ```ts
 * import { GuestMachine } from "./qemu.ts";
 * const m = await GuestMachine.create({ image, shares: [{ tag: "job", path: jobDir, readonly: false }] });
 * try {
 *   const first = await m.boot({ timeoutMs: 600_000 });
 *   const again = await m.boot({ timeoutMs: 600_000 }); // the same disk: a reboot
 * } finally {
 *   await m.cleanup();
 * }
 * ```
 */
export class GuestMachine {
  #boots = 0;
  #child?: Deno.ChildProcess;

  private constructor(
    readonly opts: Required<MachineOptions>,
    readonly overlay: string,
    readonly ownsWorkDir: boolean,
  ) {}

  /** Creates the overlay disk (qcow2 backed by the raw image). */
  static async create(o: MachineOptions): Promise<GuestMachine> {
    const own = !o.workDir;
    const workDir = o.workDir ?? await Deno.makeTempDir({ prefix: "k8sc-vm-" });
    const overlay = `${workDir}/disk.qcow2`;
    const r = await new Deno.Command("qemu-img", {
      args: ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", o.image.disk, overlay],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      if (own) await Deno.remove(workDir, { recursive: true }).catch(() => {});
      throw new Error(`qemu-img create: ${new TextDecoder().decode(r.stderr)}`);
    }
    return new GuestMachine(
      { memoryMiB: 2048, cpus: 2, restrictedNic: false, ...o, workDir },
      overlay,
      own,
    );
  }

  /** Boots until the guest powers off, or kills it after `timeoutMs`. */
  async boot(o: { timeoutMs: number }): Promise<BootResult> {
    const consoleLog = `${this.opts.workDir}/console-${++this.#boots}.log`;
    const args = qemuArgs({ ...this.opts, overlay: this.overlay }, consoleLog);
    const started = Date.now();
    // setpriv makes the kernel kill QEMU when this process dies, even by SIGKILL (a test run
    // killed mid-boot left its VM running). It follows the spawning thread, which lives as long
    // as the test that boots.
    const child = new Deno.Command("setpriv", {
      args: ["--pdeathsig", "KILL", qemuBinary(this.opts.image.arch), ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, o.timeoutMs);
    const out = await child.output();
    clearTimeout(timer);
    this.#child = undefined;
    const seconds = (Date.now() - started) / 1000;
    if (!timedOut && out.code !== 0) {
      const err = new TextDecoder().decode(out.stderr);
      if (err.trim()) await Deno.writeTextFile(consoleLog, `\n[qemu] ${err}`, { append: true });
    }
    return { code: timedOut ? null : out.code, timedOut, seconds, consoleLog };
  }

  /** Kills a running boot and removes the overlay (and the work dir it made). */
  async cleanup(): Promise<void> {
    try {
      this.#child?.kill("SIGKILL");
    } catch { /* gone */ }
    await Deno.remove(this.overlay).catch(() => {});
    if (this.ownsWorkDir) {
      await Deno.remove(this.opts.workDir, { recursive: true }).catch(() => {});
    }
  }
}
