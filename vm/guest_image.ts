/**
 * A Debian bookworm guest disk for the VM end-to-end suites, built only from Debian's
 * repository: debootstrap (minbase) with systemd, runc, conmon, the CNI plugins, iptables and
 * Debian's kernel, then turned into an ext4 image without mounting anything (`mkfs.ext4 -d`).
 *
 * Images are cached under `<cacheDir>/<arch>-<key>/` where the key hashes every input (suite,
 * mirror, packages, the guest's own files below): a second run with the same inputs reuses the
 * image; a change to any of them builds a new one. A build that dies half way leaves only a
 * `.tmp-*` directory, removed by the next build.
 *
 * The guest boots Debian's kernel and initramfs straight from the image's /boot (copied next to
 * the image), with / on virtio-blk and two 9p shares: `project` (this repository, read-only,
 * seen in the guest as a writable overlay at /opt/k8scontainerd) and `job` (read-write: the
 * host's script for this boot and the results it writes back). The unit `k8sc-vm-job.service`
 * runs /mnt/job/run.sh once the system is up and powers the guest off when it ends.
 */
import { digestOf } from "../src/content/digest.ts";

/** Guest CPU architectures the harness builds. */
export type GuestArch = "amd64" | "arm64";

/** A built guest: an ext4 root image and the kernel/initramfs to boot it with. */
export interface GuestImage {
  arch: GuestArch;
  /** Raw ext4 image of the root filesystem (never written by a boot: boots use an overlay). */
  disk: string;
  kernel: string;
  initrd: string;
  /** True when this call reused a cached image. */
  cached: boolean;
}

/** Options for {@link buildGuestImage}. */
export interface GuestImageOptions {
  arch?: GuestArch;
  /** Where images are kept; `K8SC_VM_CACHE` or `<repo>/.cache/vm` by default. */
  cacheDir?: string;
  mirror?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export const SUITE = "bookworm";
export const DEFAULT_MIRROR = "http://deb.debian.org/debian";

/** What the guest needs: systemd as PID 1 (with D-Bus for runc's systemd driver), the runtime's
 * components, kmod (veth/bridge/overlay are modules), AppArmor's userspace, and what the CRI e2e
 * suite's fixtures use (a registry, busybox, catatonit). */
export function guestPackages(arch: GuestArch): string[] {
  return [
    "systemd",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "runc",
    "crun",
    "conmon",
    "containernetworking-plugins",
    "iptables",
    "iproute2",
    "procps",
    "busybox-static",
    "catatonit",
    "docker-registry",
    // apparmor_parser and the policy includes: the guest boots with AppArmor on, and the CRI
    // AppArmor suite loads profiles.
    "apparmor",
    // kubeadm's preflight wants these on a node.
    "conntrack",
    "ethtool",
    "socat",
    arch === "amd64" ? "linux-image-amd64" : "linux-image-arm64",
  ];
}

/** Files written into the guest root (path → [mode, content]); part of the cache key. */
export function guestFiles(): Record<string, [number, string]> {
  return {
    "/etc/hostname": [0o644, "k8sc-vm\n"],
    "/etc/hosts": [0o644, "127.0.0.1 localhost\n127.0.1.1 k8sc-vm\n::1 localhost\n"],
    "/etc/fstab": [
      0o644,
      [
        "/dev/vda / ext4 rw,errors=remount-ro 0 1",
        "project /mnt/project 9p trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose 0 0",
        "job /mnt/job 9p trans=virtio,version=9p2000.L,rw,msize=524288 0 0",
        // kubeadm, kubelet, kubectl and control-plane image archives, when the host has them.
        "kube /mnt/kube 9p trans=virtio,version=9p2000.L,ro,msize=524288,nofail 0 0",
        // The project read-only from the host, writable in the guest (fixture caches, lock).
        "overlay /opt/k8scontainerd overlay lowerdir=/mnt/project,upperdir=/var/lib/k8sc-vm/upper," +
        "workdir=/var/lib/k8sc-vm/work,x-systemd.requires=mnt-project.mount 0 0",
        "",
      ].join("\n"),
    ],
    // DHCP on the one NIC the kubeadm phase adds (QEMU's user network, restricted: nothing
    // leaves the host); without a NIC nothing waits for it.
    "/etc/systemd/network/10-eth0.network": [0o644, "[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n"],
    "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service": [
      0o777,
      "/lib/systemd/system/systemd-networkd.service",
    ],
    // Containers whose PID 1 ignores SIGTERM would hold every shutdown for systemd's 90 s.
    "/etc/systemd/system.conf.d/k8sc-vm.conf": [0o644, "[Manager]\nDefaultTimeoutStopSec=10s\n"],
    // 9p and overlay are modules in Debian's kernel; load them before the mounts.
    "/etc/modules-load.d/k8sc-vm.conf": [0o644, "9p\n9pnet_virtio\noverlay\nbr_netfilter\n"],
    "/etc/systemd/system/k8sc-vm-job.service": [
      0o644,
      [
        "[Unit]",
        "Description=k8scontainerd VM test job (/mnt/job/run.sh)",
        "After=multi-user.target mnt-job.mount opt-k8scontainerd.mount",
        "Requires=mnt-job.mount opt-k8scontainerd.mount",
        // A job that fails powers the guest off at once; one that succeeds powers off itself
        // (or not, when it asks the host for a reboot by shutting down cleanly).
        "FailureAction=poweroff-force",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/bin/sh /mnt/job/run.sh",
        "StandardOutput=journal+console",
        "StandardError=journal+console",
        "TimeoutStartSec=infinity",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    ],
    "/etc/systemd/system/multi-user.target.wants/k8sc-vm-job.service": [
      0o777, // a symlink, see below
      "/etc/systemd/system/k8sc-vm-job.service",
    ],
  };
}

function defaultCacheDir(): string {
  return Deno.env.get("K8SC_VM_CACHE") ||
    new URL("../.cache/vm", import.meta.url).pathname;
}

async function run(cmd: string, args: string[], what: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(`${what}: ${cmd} exited with ${out.code}:\n${text.slice(-4000)}`);
  }
  return text;
}

/** The cache key: every input that changes the image. */
export function imageKey(arch: GuestArch, mirror: string): string {
  const inputs = JSON.stringify({
    v: 1,
    suite: SUITE,
    arch,
    mirror,
    packages: guestPackages(arch),
    files: guestFiles(),
  });
  return digestOf(inputs).slice("sha256:".length, "sha256:".length + 16);
}

function hostArch(): GuestArch {
  return Deno.build.arch === "aarch64" ? "arm64" : "amd64";
}

/**
 * Builds (or reuses) the guest image for `arch`. Needs root, debootstrap and e2fsprogs; a
 * foreign architecture also needs qemu-user-static's binfmt handlers for debootstrap's second
 * stage.
 *
 * @example
 * ```ts
 * import { buildGuestImage } from "./guest_image.ts";
 * const img = await buildGuestImage({ arch: "amd64", log: console.log });
 * console.log(img.disk, img.kernel, img.cached);
 * ```
 */
export async function buildGuestImage(o: GuestImageOptions = {}): Promise<GuestImage> {
  const arch = o.arch ?? hostArch();
  const mirror = o.mirror ?? DEFAULT_MIRROR;
  const log = o.log ?? (() => {});
  const cacheDir = o.cacheDir ?? defaultCacheDir();
  const key = imageKey(arch, mirror);
  const dir = `${cacheDir}/${arch}-${key}`;
  const image: GuestImage = {
    arch,
    disk: `${dir}/root.ext4`,
    kernel: `${dir}/vmlinuz`,
    initrd: `${dir}/initrd.img`,
    cached: true,
  };
  try {
    await Deno.stat(`${dir}/complete`);
    log(`guest image ${arch}-${key}: cached`);
    return image;
  } catch { /* build it */ }

  await Deno.mkdir(cacheDir, { recursive: true });
  // Half-built images of earlier, killed runs.
  for await (const e of Deno.readDir(cacheDir)) {
    if (e.name.startsWith(".tmp-")) {
      await Deno.remove(`${cacheDir}/${e.name}`, { recursive: true }).catch(() => {});
    }
  }
  const tmp = await Deno.makeTempDir({ dir: cacheDir, prefix: `.tmp-${arch}-${key}-` });
  try {
    const root = `${tmp}/root`;
    const foreign = arch !== hostArch();
    const started = Date.now();
    log(`guest image ${arch}-${key}: debootstrap ${SUITE} from ${mirror}`);
    await run("debootstrap", [
      "--variant=minbase",
      `--arch=${arch}`,
      `--include=${guestPackages(arch).join(",")}`,
      ...(foreign ? ["--foreign"] : []),
      SUITE,
      root,
      mirror,
    ], "debootstrap");
    if (foreign) {
      // The second stage runs the guest's own binaries: through binfmt + qemu-user-static.
      await run("chroot", [root, "/debootstrap/debootstrap", "--second-stage"], "debootstrap");
    }
    log(
      `guest image ${arch}-${key}: debootstrap took ${
        ((Date.now() - started) / 1000).toFixed(0)
      } s`,
    );
    for (const [path, [mode, content]] of Object.entries(guestFiles())) {
      const target = `${root}${path}`;
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
      if (mode === 0o777) {
        await Deno.remove(target).catch(() => {});
        await Deno.symlink(content, target);
      } else {
        await Deno.writeTextFile(target, content, { mode });
        await Deno.chmod(target, mode);
      }
    }
    const dirs = ["/mnt/project", "/mnt/job", "/mnt/kube", "/opt/k8scontainerd"];
    for (const m of [...dirs, "/var/lib/k8sc-vm/upper", "/var/lib/k8sc-vm/work"]) {
      await Deno.mkdir(`${root}${m}`, { recursive: true });
    }
    // Root may log in on the console without a password (a disposable test guest).
    await run("chroot", [root, "passwd", "-d", "root"], "passwd");
    // Apt caches are not needed in the image.
    await Deno.remove(`${root}/var/cache/apt/archives`, { recursive: true }).catch(() => {});
    await Deno.mkdir(`${root}/var/cache/apt/archives/partial`, { recursive: true });

    const boot = [...Deno.readDirSync(`${root}/boot`)].map((e) => e.name);
    const vmlinuz = boot.find((n) => n.startsWith("vmlinuz-"));
    const initrd = boot.find((n) => n.startsWith("initrd.img-"));
    if (!vmlinuz || !initrd) {
      throw new Error(
        `guest image: no kernel/initramfs in ${root}/boot (found ${boot.join(", ")})`,
      );
    }
    await Deno.copyFile(`${root}/boot/${vmlinuz}`, `${tmp}/vmlinuz`);
    await Deno.copyFile(`${root}/boot/${initrd}`, `${tmp}/initrd.img`);
    log(`guest image ${arch}-${key}: writing ext4 image`);
    // Room for images, containers and Deno's cache on top of the ~0.9 GB system.
    await run(
      "mkfs.ext4",
      ["-q", "-F", "-L", "k8sc-vm", "-d", root, `${tmp}/root.ext4`, "4G"],
      "mkfs.ext4",
    );
    await Deno.remove(root, { recursive: true });
    await Deno.writeTextFile(`${tmp}/complete`, new Date().toISOString() + "\n");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, dir);
    log(`guest image ${arch}-${key}: built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return { ...image, cached: false };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
